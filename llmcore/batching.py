"""Continuous batching: many requests share each forward pass of one model.

`llmcore.generate` runs one prompt: every new token is one forward pass of the model
with a batch of 1. A small model on a CPU spends most of such a pass on overhead
(Python, dispatching ~50 small kernels, reading the weights), not on arithmetic, so a
pass over 8 rows costs little more than a pass over 1. A server that runs all its
requests together therefore makes many more tokens per second. This is the engine
behind `llmcore serve` (llmcore/serve.py), the same idea as vLLM's and TGI's:

    rows of one KV cache      one request per row, each at its own length
                              (`KVCache(per_row=True)`, [batch, head, n_ctx, d_head])
    every step                1. new requests join: each reads its prompt into a free row
                              2. one forward pass feeds every row its latest token ([rows, 1])
                              3. each row draws its own next token with its own settings
                              4. finished rows leave; the last row moves into the gap

"Continuous" because requests join and leave between any two steps; a static batch
would wait for its slowest member. Each token is drawn exactly as `generate.steps`
draws it (same distribution, same seeded generator), so at temperature 0 a request's
text equals `llmcore generate` on the same prompt (tests/test_serve.py checks it).

The engine runs in one thread of its own. `submit` is called from any thread; results
come back through the request's `emit` callback, from the engine thread.
"""

from __future__ import annotations

import collections
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field

import torch

from llmcore.generate import Sampling, distribution
from llmcore.model import KVCache, model_lock

log = logging.getLogger(__name__)


class Busy(Exception):
    """The engine's queue is full: try again later (HTTP 429)."""


@dataclass
class Token:
    """One new token of a request, as the engine reports it."""

    token_id: int
    text: str  # the whole completion so far, decoded (a partial character shows as U+FFFD)
    prob: float  # the model's own probability for the token (temperature 1), as in Step.prob
    alternatives: list[tuple[int, float]]  # the model's top tokens (id, probability), if asked
    index: int  # 0 for the first new token


@dataclass
class Done:
    """A request's end: why, and its final text (cut before any stop string)."""

    reason: str  # "stop" (a stop string), "length" (max_new_tokens), "cancelled" or "error"
    text: str
    n_tokens: int  # tokens generated (the usage count)
    message: str = ""  # what went wrong, for "error"


@dataclass
class Request:
    """One prompt to continue. `emit` receives Token events, then one Done."""

    ids: list[int]  # the prompt's token ids: 1 to n_ctx - 1 of them (generate.encode_prompt)
    sampling: Sampling
    emit: Callable[[Token | Done], None]
    n_alternatives: int = 0  # top tokens to report with each new token (0 = none)
    cancelled: bool = False  # set by `Engine.cancel` (a client went away); the engine drops it

    # the engine's bookkeeping
    window: list[int] = field(default_factory=list)  # the ids the model sees (slides past n_ctx)
    generated: list[int] = field(default_factory=list)
    text: str = ""
    _clean: str = ""  # decoded text up to the last whole character
    _clean_at: int = 0  # how many of `generated` `_clean` covers
    gen: torch.Generator | None = None


class Engine:
    """Runs every submitted request in one continuously batched loop (a thread).

    max_batch: rows of the KV cache = requests computed together
    max_waiting: requests queued beyond those (while every row is busy); more are refused with `Busy`
    """

    def __init__(self, model, tokenizer, max_batch: int = 16, max_waiting: int = 64):
        self.model, self.tokenizer = model, tokenizer
        self.max_batch, self.max_waiting = max_batch, max_waiting
        self.n_ctx = model.cfg.n_ctx
        self.device = next(model.parameters()).device
        self.cache = KVCache(model.cfg, max_batch, device=self.device, per_row=True)
        self.rows: list[Request] = []  # rows[i] lives in cache row i
        self.waiting: collections.deque[Request] = collections.deque()
        self.wake = threading.Condition()
        self.steps = 0  # forward passes run (a teaching number: tokens / steps = mean batch)
        self._stop = False
        self._thread: threading.Thread | None = None

    # --- the public side, called from any thread ----------------------------------------

    def start(self) -> Engine:
        self._thread = threading.Thread(target=self._loop, name="llmcore-engine", daemon=True)
        self._thread.start()
        return self

    def stop(self):
        with self.wake:
            self._stop = True
            self.wake.notify()
        if self._thread:
            self._thread.join(timeout=10)

    def submit(self, req: Request) -> Request:
        if not 1 <= len(req.ids) < self.n_ctx:
            raise ValueError(f"a prompt must be 1 to {self.n_ctx - 1} tokens")  # the server checks first
        with self.wake:
            if len(self.rows) + len(self.waiting) >= self.max_batch + self.max_waiting:
                raise Busy(f"{len(self.rows)} requests running and {len(self.waiting)} waiting")
            self.waiting.append(req)
            self.wake.notify()
        return req

    def cancel(self, req: Request):
        """Drop `req` at the next step (its Done(cancelled) is still emitted)."""
        req.cancelled = True
        with self.wake:
            self.wake.notify()

    # --- the loop, in the engine thread ---------------------------------------------------

    def _loop(self):
        while True:
            with self.wake:
                while not self._stop and not self.rows and not self.waiting:
                    self.wake.wait()
                if self._stop:
                    break
            try:
                self.step()
            except Exception as e:  # a bug: fail the requests in flight, keep serving the next ones
                log.exception("engine step failed")
                for req in self.rows:
                    req.emit(Done("error", req.text, len(req.generated), f"the engine failed: {type(e).__name__}"))
                self.rows = []
        for req in [*self.rows, *self.waiting]:  # shutting down
            req.emit(Done("cancelled", req.text, len(req.generated)))

    @torch.inference_mode()
    def step(self):
        """One turn: admit, one batched forward pass, one token per row, retire."""
        self._retire([i for i, r in enumerate(self.rows) if r.cancelled], "cancelled")
        with model_lock(self.model):  # (a dashboard may hook the same model from another thread)
            self._admit()
            for i, req in enumerate(self.rows):
                if len(req.window) > self.n_ctx:  # the row is full: slide, as generate.steps does
                    req.window = req.window[-max(1, self.n_ctx // 2) :]
                    self._prefill(i, req.window)
            if not self.rows:
                return
            n = len(self.rows)
            last = torch.tensor([[req.window[-1]] for req in self.rows], device=self.device)  # [n, 1]
            logits = self.model(last, self.cache.rows(0, n))[:, -1].float().cpu()  # [n, d_vocab]
        self.steps += 1
        probs = logits.softmax(-1)  # the model's own distribution (temperature 1), per row
        finished = []
        for i, req in enumerate(self.rows):
            reason = self._take(req, logits[i], probs[i])
            if reason:
                finished.append((i, reason))
        for reason in ("stop", "length"):
            self._retire([i for i, r in finished if r == reason], reason)

    def _admit(self):
        """Move waiting requests into free rows: each reads its prompt but the last token."""
        while len(self.rows) < self.max_batch:
            with self.wake:  # (under the lock, so `submit` counts it either waiting or running)
                if not self.waiting:
                    return
                req = self.waiting.popleft()
                if not req.cancelled:
                    self.rows.append(req)
            if req.cancelled:
                req.emit(Done("cancelled", "", 0))
                continue
            req.window = list(req.ids)
            seed = req.sampling.seed if req.sampling.seed is not None else int(torch.seed() % 2**31)
            req.gen = torch.Generator().manual_seed(seed)  # as generate.steps seeds it
            self._prefill(len(self.rows) - 1, req.window)

    def _prefill(self, i: int, window: list[int]):
        """Fill row i with all of `window` but its last token (the next step feeds that one)."""
        self.cache.pos[i] = 0
        if len(window) > 1:
            self.model(torch.tensor([window[:-1]], device=self.device), self.cache.rows(i, i + 1))

    def _take(self, req: Request, logits: torch.Tensor, probs: torch.Tensor) -> str | None:
        """Draw req's next token from its row of logits [d_vocab]; report it; say if it is done."""
        s = req.sampling
        if s.temperature:
            token = int(torch.multinomial(distribution(logits, s), 1, generator=req.gen))
        else:  # greedy
            token = int(logits.argmax())
        alternatives = []
        if req.n_alternatives:
            top = torch.topk(probs, min(req.n_alternatives, probs.numel()))
            alternatives = list(zip(top.indices.tolist(), top.values.tolist()))
        req.window.append(token)
        req.generated.append(token)
        req.text = self._decode(req)
        req.emit(Token(token, req.text, float(probs[token]), alternatives, len(req.generated) - 1))
        if s.stop and any(stop in req.text for stop in s.stop):
            return "stop"
        if len(req.generated) >= s.max_new_tokens:
            return "length"
        return None

    def _decode(self, req: Request) -> str:
        """The completion as text, decoding only the tokens since the last whole character."""
        tail = self.tokenizer.decode(req.generated[req._clean_at :])
        if not tail.endswith("\ufffd"):  # ends on a whole character: later tokens cannot change it
            req._clean, req._clean_at = req._clean + tail, len(req.generated)
            return req._clean
        return req._clean + tail

    def _retire(self, indices: list[int], reason: str):
        """Remove finished rows; the last row moves into each gap so rows stay 0..n-1."""
        for i in sorted(indices, reverse=True):
            req = self.rows[i]
            text = req.text
            for stop in req.sampling.stop:  # cut before the stop string, as generate() does
                if stop in text:
                    text = text[: text.index(stop)]
            req.emit(Done(reason, text, len(req.generated)))
            j = len(self.rows) - 1
            if i != j:
                p = int(self.cache.pos[j])
                for k, v in zip(self.cache.k, self.cache.v):  # [batch, head, n_ctx, d_head]
                    k[i, :, :p] = k[j, :, :p]
                    v[i, :, :p] = v[j, :, :p]
                self.cache.pos[i] = p
                self.rows[i] = self.rows[j]
            self.rows.pop()


def held_back(text: str, stops: tuple[str, ...]) -> int:
    """How many characters at the end of `text` a stream must hold back for now.

    A stream must never send text that a stop string will later cut: "... the e" ends
    with "the e", which could grow into the stop string "the end". It also holds back
    a partial character (U+FFFD, the rest of its bytes still to come).

    >>> held_back("Once upon a ti", ("time",))
    2
    """
    found = [text.index(stop) for stop in stops if stop in text]
    if found:  # a whole stop string: nothing from its start on is ever sent
        return len(text) - min(found)
    n = len(text) - len(text.rstrip("\ufffd"))
    for stop in stops:
        for k in range(min(len(stop) - 1, len(text)), 0, -1):
            if text.endswith(stop[:k]):
                n = max(n, k)
                break
    return n
