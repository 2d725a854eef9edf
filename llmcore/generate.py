"""The inference engine: prompt -> tokens -> probabilities -> next token, repeated.

A language model only ever answers one question: given these tokens, how likely is
each possible next token? Generating text is a loop around that answer:

    1. cut the prompt into tokens
    2. run the model: one probability for every token in the vocabulary
    3. reshape the distribution (temperature, top-k, top-p) and draw one token
    4. append it and go back to 2 (with a KV cache only the new token is computed)

`steps()` yields each turn of the loop with the chosen token, its probability and
the alternatives the model considered, for the teaching views; `generate()` returns
just the text. Bad settings raise `UserError`; odd but usable input (an empty prompt,
a prompt longer than the context, characters the tokenizer never saw) is handled
and explained in the step's `notice`.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass

import torch

from llmcore.errors import UserError
from llmcore.model import KVCache, model_lock

log = logging.getLogger(__name__)

MAX_NEW_TOKENS = 2000  # a cap that keeps one request from holding a shared server
MAX_PROMPT_CHARS = 100_000  # longer prompts are refused outright; long ones slide the window


@dataclass
class Sampling:
    """How the next token is drawn from the model's distribution."""

    temperature: float = 0.8  # < 1 sharpens, > 1 flattens; 0 means always the most likely (greedy)
    top_k: int = 0  # keep only the k most likely tokens (0 = all)
    top_p: float = 1.0  # keep the smallest set whose probabilities add up to p (1 = all)
    max_new_tokens: int = 100  # stop after this many tokens
    seed: int | None = 0  # same seed, same text; None draws a fresh seed
    stop: tuple[str, ...] = ()  # stop when the text contains one of these strings

    def __post_init__(self):
        def number(name, kind=float):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, float)) or v != v:
                raise UserError(f"{name} must be a number, got {_show(v)}")
            try:
                return kind(v) if kind is float or float(v).is_integer() else v
            except OverflowError:  # an int with hundreds of digits
                raise UserError(f"{name} is far too large") from None

        self.temperature = number("temperature")
        if not 0.0 <= self.temperature <= 100.0:
            raise UserError(f"temperature must be between 0 (greedy) and 100, got {self.temperature}")
        self.top_p = number("top_p")
        if not 0.0 < self.top_p <= 1.0:
            raise UserError(f"top_p must be in (0, 1], got {self.top_p}")
        for name, hi in (("top_k", 10_000_000), ("max_new_tokens", MAX_NEW_TOKENS)):
            v = number(name, int)
            if not isinstance(v, int) or not 0 <= v <= hi:
                raise UserError(f"{name} must be a whole number from 0 to {hi:,}, got {_show(getattr(self, name))}")
            setattr(self, name, v)
        if self.seed is not None and (
            isinstance(self.seed, bool) or not isinstance(self.seed, int) or not 0 <= self.seed < 2**63
        ):  # torch's generator takes at most 64 bits
            raise UserError(f"seed must be a whole number from 0 to 2**63 - 1, or None; got {_show(self.seed)}")
        if isinstance(self.stop, str):
            self.stop = (self.stop,)
        if not isinstance(self.stop, (tuple, list)) or not all(isinstance(s, str) for s in self.stop):
            raise UserError(f"stop must be a string or a list of strings, got {_show(self.stop)}")
        self.stop = tuple(s for s in self.stop if s)


def _show(v) -> str:
    """A short repr for an error message (an int of 5,000 digits cannot even be printed)."""
    try:
        return f"{v!r:.40}"
    except ValueError:
        return f"a {type(v).__name__} too large to show"


@dataclass
class Step:
    """One turn of the loop: the token chosen and what else the model considered."""

    token_id: int
    text: str  # the token as text (a teaching view; partial UTF-8 shows as <0x..>)
    prob: float  # the model's own probability for it (temperature 1)
    alternatives: list[tuple[str, float]]  # the model's top tokens with their probabilities
    notice: str = ""  # set when the input was adjusted (long prompt, unknown characters)
    index: int = 0  # 0 for the first new token


def distribution(logits: torch.Tensor, s: Sampling) -> torch.Tensor:
    """Logits [d_vocab] -> the probabilities actually sampled from, after the three knobs."""
    if s.temperature == 0:
        probs = torch.zeros_like(logits)
        probs[logits.argmax()] = 1.0  # greedy: all the mass on the most likely token
        return probs
    # Shift the largest logit to 0 first: the softmax is the same, and a tiny temperature
    # then sends the others to -inf instead of overflowing to inf - inf = NaN. (Below 1e-30
    # every temperature is greedy anyway, and a float32 cannot hold 1e-320: it would be 0.)
    logits = (logits - logits.max()) / max(s.temperature, 1e-30)
    if s.top_k and s.top_k < logits.numel():  # drop everything below the k-th largest logit
        kth = torch.topk(logits, s.top_k).values[-1]
        logits = logits.masked_fill(logits < kth, float("-inf"))
    probs = logits.softmax(-1)
    if s.top_p < 1.0:  # keep the smallest head of the sorted distribution reaching top_p
        sorted_p, order = probs.sort(descending=True)
        outside = sorted_p.cumsum(0) - sorted_p >= s.top_p  # mass before this token already enough
        outside[0] = False  # the most likely token always stays (even if top_p rounds to 0 in float32)
        sorted_p[outside] = 0.0
        probs = torch.zeros_like(probs).scatter(0, order, sorted_p)
        probs /= probs.sum()
    return probs


def encode_prompt(tokenizer, prompt: str, n_ctx: int) -> tuple[list[int], list[str]]:
    """Prompt -> token ids that fit the context, plus notices about what was adjusted."""
    if not isinstance(prompt, str):
        raise UserError(f"the prompt must be text, got {type(prompt).__name__}")
    if len(prompt) > MAX_PROMPT_CHARS:
        raise UserError(f"the prompt has {len(prompt):,} characters; the limit is {MAX_PROMPT_CHARS:,}")
    notices = []
    if not prompt:
        prompt = "\n"
        notices.append("empty prompt: the model starts from a new line, as at the start of a story")
    ids = tokenizer.encode(prompt)
    unk = getattr(tokenizer, "unk_id", None)
    if unk is not None and unk in ids:
        notices.append(f"{ids.count(unk)} character(s) the model never saw became the unknown token")
    if len(ids) >= n_ctx:
        notices.append(f"the prompt is {len(ids)} tokens; the model reads {n_ctx}, so it sees only the last {n_ctx - 1}")
        ids = ids[-max(1, n_ctx - 1) :]  # (a context of 1 still holds the last token)
    return ids, notices


@torch.inference_mode()
def steps(
    model,
    tokenizer,
    prompt: str,
    sampling: Sampling | None = None,
    *,
    fwd_hooks=(),
    n_alternatives: int = 5,
    use_cache: bool = True,
) -> Iterator[Step]:
    """Yield one `Step` per new token. `fwd_hooks` (e.g. a steering hook) apply throughout.

    `n_alternatives` top tokens are listed per step for the teaching views (0 skips them).
    """
    s = sampling or Sampling()
    n_ctx = model.cfg.n_ctx
    ids, notices = encode_prompt(tokenizer, prompt, n_ctx)
    seed = s.seed if s.seed is not None else int(torch.seed() % 2**31)
    gen = torch.Generator().manual_seed(seed)
    device = next(model.parameters()).device
    cache, fed = None, 0  # fed: how many of `ids` the cache already holds
    generated = []
    for i in range(s.max_new_tokens):
        with model.hooked(fwd_hooks) if fwd_hooks else model_lock(model):
            if use_cache:
                if cache is None or len(ids) > n_ctx:
                    # (re)start the cache; past the context, slide to the last half of it
                    if len(ids) > n_ctx:
                        ids = ids[-max(1, n_ctx // 2) :]
                        notices.append(f"the text outgrew the context of {n_ctx} tokens: the model now sees only the latest ones")
                    cache, fed = KVCache(model.cfg, 1, device=device), 0
                logits = model(torch.tensor([ids[fed:]], device=device), cache)[0, -1]
                fed = len(ids)
            else:
                if len(ids) == n_ctx + 1:  # the first time the text no longer fits: say so once
                    notices.append(f"the text outgrew the context of {n_ctx} tokens: the model now sees only the latest ones")
                window = ids[-n_ctx:]
                logits = model(torch.tensor([window], device=device))[0, -1]
        logits = logits.float().cpu()  # (the generator lives on the CPU)
        model_probs = logits.softmax(-1)
        if s.temperature:
            token = int(torch.multinomial(distribution(logits, s), 1, generator=gen))
        else:  # greedy: the most likely token, no distribution to build
            token = int(logits.argmax())
        alternatives = []
        if n_alternatives:
            top = torch.topk(model_probs, min(n_alternatives, model_probs.numel()))
            alternatives = [(tokenizer.token_str(t), p) for p, t in zip(top.values.tolist(), top.indices.tolist())]
        ids.append(token)
        generated.append(token)
        yield Step(token, tokenizer.token_str(token), float(model_probs[token]), alternatives, "; ".join(notices), i)
        notices = []
        if s.stop:
            text = tokenizer.decode(generated)
            if any(stop in text for stop in s.stop):
                return


def generate(model, tokenizer, prompt: str, sampling: Sampling | None = None, **kw) -> str:
    """The continuation of `prompt` as text, cut before any stop string."""
    s = sampling or Sampling()
    ids = [step.token_id for step in steps(model, tokenizer, prompt, s, n_alternatives=0, **kw)]
    text = tokenizer.decode(ids)
    for stop in s.stop:
        if stop in text:
            text = text[: text.index(stop)]
    return text


@torch.no_grad()
def next_token_probs(model, tokenizer, prompt: str, k: int = 10) -> list[tuple[str, float]]:
    """The model's top-k guesses for the token after `prompt` (for "guess the next token")."""
    if isinstance(k, bool) or not isinstance(k, int) or k < 1:
        raise UserError(f"k must be a positive whole number, got {k!r}")
    ids, _ = encode_prompt(tokenizer, prompt, model.cfg.n_ctx)
    with model_lock(model):
        logits = model(torch.tensor([ids], device=next(model.parameters()).device))[0, -1]
    top = torch.topk(logits.float().softmax(-1), min(k, logits.numel()))
    return [(tokenizer.token_str(int(t)), float(p)) for p, t in zip(top.values, top.indices)]


def sampling_data(model, tokenizer, prompt: str, sampling, k: int = 12) -> tuple[list[float], list[float], list[str]]:
    """(model's probabilities, probabilities after the knobs, token labels) for the top `k` tokens.

    "Top" means the model's own top k at temperature 1; the knobs (`sampling`: temperature,
    top-k, top-p) are applied by `llmcore.generate.distribution`, exactly as when generating.
    """
    if isinstance(k, bool) or not isinstance(k, int) or not 1 <= k <= 100:
        raise UserError(f"k must be a whole number from 1 to 100, got {k!r}")
    ids, _ = encode_prompt(tokenizer, prompt, model.cfg.n_ctx)
    with torch.no_grad(), model_lock(model):
        logits = model(torch.tensor([ids], device=next(model.parameters()).device))[0, -1].float().cpu()
    before = logits.softmax(-1)
    after = distribution(logits, sampling)
    top = torch.topk(before, min(k, before.numel())).indices.tolist()
    return [float(before[t]) for t in top], [float(after[t]) for t in top], [tokenizer.token_str(t) for t in top]
