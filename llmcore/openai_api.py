"""The OpenAI API's dialect: checking a request body, and writing the reply.

`llmcore serve` (serve.py) is the transport; this module is the language. A request
is a JSON object; `parse_job` checks every field (naming it in the error, as OpenAI's
`param` does) and tokenizes the prompt, and `Reply` writes what the engine produced as
OpenAI's JSON, whole or as server-sent events:

    {"model": "storyworld", "prompt": "Once upon a time", "max_tokens": 3, "temperature": 0}
    -> {"id": "cmpl-...", "object": "text_completion", "model": "storyworld",
        "choices": [{"index": 0, "text": ", there was", "logprobs": null, "finish_reason": "length"}],
        "usage": {"prompt_tokens": 4, "completion_tokens": 3, "total_tokens": 7}}

Supported settings: max_tokens (or max_completion_tokens), temperature (0 = greedy,
deterministic), top_p, seed, stop, n = 1, stream (with stream_options.include_usage),
logprobs (the model's own probabilities and top alternatives: the step view's numbers),
and the non-standard top_k that vLLM and llama.cpp also accept. `complete` answers one
body in this process, exactly as the server would.
"""

from __future__ import annotations

import asyncio
import json
import math
import time
import uuid
from dataclasses import dataclass

from llmcore.batching import Done, Engine, Request, Token, held_back
from llmcore.errors import UserError
from llmcore.generate import MAX_PROMPT_CHARS, Sampling, encode_prompt

MAX_TOKENS_CAP = 1024  # the most tokens one request may ask for
DEFAULT_MAX_TOKENS = {"completion": 16, "chat": 100}  # OpenAI's completions default is 16
MAX_STOPS, MAX_STOP_CHARS = 4, 200  # OpenAI allows up to 4 stop strings
MAX_TOP_LOGPROBS = 20
MAX_MESSAGES = 1000
# Settings that change what is computed but that this engine does not do: refused unless
# left at the value that means "off", rather than silently ignored.
UNSUPPORTED = {"n": 1, "best_of": 1, "echo": False, "suffix": "", "presence_penalty": 0, "frequency_penalty": 0,
               "logit_bias": {}, "tools": [], "functions": [], "response_format": {"type": "text"}}


# --- the chat template --------------------------------------------------------------


def chat_prompt(messages: list[dict]) -> str:
    """The chat template: the messages' texts, one per line, for the model to continue.

    Chat models are trained on conversations written in a template with role markers
    (ChatML writes "<|im_start|>user\\nHi<|im_end|>"), so they learn to answer in turn.
    A model pre-trained on stories never saw one: all it can do is continue text. So
    this template is the honest one: it joins the message texts (system first, in
    order) with newlines, adds no markers, and the "assistant's reply" is the model's
    continuation of the last message.

    >>> chat_prompt([{"role": "system", "content": "A story."}, {"role": "user", "content": "Once upon a time"}])
    'A story.\\nOnce upon a time'
    """
    return "\n".join(m["content"] for m in messages)


# --- errors in OpenAI's shape ---------------------------------------------------------


class ApiError(UserError):
    """A request the server refuses: HTTP status + OpenAI's error object (a UserError: bad input)."""

    def __init__(self, status: int, message: str, param: str | None = None, code: str | None = None,
                 type: str = "invalid_request_error"):
        super().__init__(message)
        self.status, self.message, self.param, self.code, self.type = status, message, param, code, type

    def body(self) -> dict:
        return {"error": {"message": self.message, "type": self.type, "param": self.param, "code": self.code}}


def show_value(v) -> str:
    try:
        return f"{json.dumps(v)!s:.40}"
    except (TypeError, ValueError):
        return type(v).__name__


def bad_param(param: str, message: str) -> ApiError:
    return ApiError(400, message, param=param)


# --- reading a request ------------------------------------------------------------------


@dataclass
class Job:
    """A checked request, ready for the engine."""

    kind: str  # "completion" or "chat"
    prompt_ids: list[int]
    sampling: Sampling
    stream: bool
    include_usage: bool  # stream_options.include_usage: a last chunk with the usage counts
    n_logprobs: int | None  # None: no logprobs; k: each token's logprob and its top k


def _check_text(param: str, v) -> str:
    if not isinstance(v, str):
        raise bad_param(param, f"{param} must be a string, got {show_value(v)}")
    try:
        v.encode("utf-8")
    except UnicodeEncodeError as e:
        raise bad_param(param, f"{param} has a lone surrogate at position {e.start}, which is not a character") from None
    if "\x00" in v:
        raise bad_param(param, f"{param} has a NUL character at position {v.index(chr(0))}")
    return v


def _integer(body: dict, name: str, lo: int, hi: int, default=None):
    v = body.get(name)
    if v is None:
        return default
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not (lo <= v <= hi and v == int(v)):
        raise bad_param(name, f"{name} must be a whole number from {lo:,} to {hi:,}, got {show_value(v)}")
    return int(v)


def _number(body: dict, name: str, lo: float, hi: float, default: float) -> float:
    v = body.get(name)
    if v is None:
        return default
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not lo <= v <= hi:  # (NaN fails too)
        raise bad_param(name, f"{name} must be a number from {lo:g} to {hi:g}, got {show_value(v)}")
    return float(v)


def parse_job(body: dict, kind: str, tokenizer, n_ctx: int) -> Job:
    """Check an OpenAI request body and turn it into a Job; ApiError (400) on anything wrong."""
    for name, off in UNSUPPORTED.items():
        if body.get(name) not in (None, off):
            raise bad_param(name, f"{name}={show_value(body[name])} is not supported by llmcore serve")
    if kind == "chat":
        messages = body.get("messages")
        if not isinstance(messages, list) or not 1 <= len(messages) <= MAX_MESSAGES:
            raise bad_param("messages", f"messages must be a list of 1 to {MAX_MESSAGES} messages")
        checked = []
        for i, m in enumerate(messages):
            where = f"messages[{i}]"
            if not isinstance(m, dict) or m.get("role") not in ("system", "developer", "user", "assistant"):
                raise bad_param(where, f"{where} must be an object with a role of system, developer, user or assistant")
            content = m.get("content")
            if isinstance(content, list):  # the newer form: a list of parts; text parts only here
                if not all(isinstance(p, dict) and p.get("type") == "text" for p in content):
                    raise bad_param(f"{where}.content", f"{where}.content: only text parts are supported")
                content = "".join(_check_text(f"{where}.content", p.get("text")) for p in content)
            checked.append({"role": m["role"], "content": _check_text(f"{where}.content", content)})
        prompt = chat_prompt(checked)
    else:
        prompt = body.get("prompt")
        if isinstance(prompt, list) and len(prompt) == 1 and isinstance(prompt[0], str):
            prompt = prompt[0]  # ["text"]: one prompt in a list, as some clients send it
        prompt = _check_text("prompt", prompt)
    if len(prompt) > MAX_PROMPT_CHARS:
        raise bad_param("prompt", f"the prompt has {len(prompt):,} characters; the limit is {MAX_PROMPT_CHARS:,}")
    n_prompt = len(tokenizer.encode(prompt)) if prompt else 1
    if n_prompt >= n_ctx:
        raise ApiError(400, f"the prompt is {n_prompt:,} tokens; this model reads {n_ctx}, so a prompt may have at "
                       f"most {n_ctx - 1}", param="messages" if kind == "chat" else "prompt",
                       code="context_length_exceeded")
    ids, _ = encode_prompt(tokenizer, prompt, n_ctx)  # (an empty prompt becomes a new line)

    max_tokens = _integer(body, "max_completion_tokens", 1, MAX_TOKENS_CAP)
    max_tokens = _integer(body, "max_tokens", 1, MAX_TOKENS_CAP, max_tokens or DEFAULT_MAX_TOKENS[kind])
    stop = body.get("stop")
    stop = [stop] if isinstance(stop, str) else stop if stop is not None else []
    if not isinstance(stop, list) or len(stop) > MAX_STOPS:
        raise bad_param("stop", f"stop must be a string or a list of up to {MAX_STOPS} strings")
    for s in stop:
        if len(_check_text("stop", s)) > MAX_STOP_CHARS:
            raise bad_param("stop", f"a stop string may have at most {MAX_STOP_CHARS} characters")
    sampling = Sampling(
        temperature=_number(body, "temperature", 0.0, 2.0, 1.0),  # OpenAI's range and default
        top_p=_number(body, "top_p", 1e-9, 1.0, 1.0),
        top_k=_integer(body, "top_k", 0, 1_000_000, 0),
        max_new_tokens=max_tokens,
        seed=_integer(body, "seed", 0, 2**63 - 1),
        stop=tuple(stop),
    )

    stream = body.get("stream", False)
    if not isinstance(stream, bool):
        raise bad_param("stream", f"stream must be true or false, got {show_value(stream)}")
    options = body.get("stream_options") or {}
    if not isinstance(options, dict):
        raise bad_param("stream_options", "stream_options must be an object")
    if kind == "chat":  # logprobs: true, top_logprobs: k
        if not isinstance(body.get("logprobs", False), (bool, type(None))):
            raise bad_param("logprobs", "logprobs must be true or false")
        top = _integer(body, "top_logprobs", 0, MAX_TOP_LOGPROBS, 0)
        n_logprobs = top if body.get("logprobs") else None
    else:  # logprobs: k (the legacy completions form)
        n_logprobs = _integer(body, "logprobs", 0, MAX_TOP_LOGPROBS)
    return Job(kind, ids, sampling, stream, bool(options.get("include_usage")), n_logprobs)


# --- writing the reply ----------------------------------------------------------------


class Reply:
    """Builds one response (whole, or as a stream of chunks) in OpenAI's format."""

    def __init__(self, model_id: str, tokenizer, job: Job):
        self.model_id, self.tok, self.job = model_id, tokenizer, job
        self.id = f"{'chatcmpl' if job.kind == 'chat' else 'cmpl'}-{uuid.uuid4().hex[:24]}"
        self.created = int(time.time())
        self._text_len = 0  # the completion's length before the next token, for text_offset

    def _head(self, obj: str) -> dict:
        return {"id": self.id, "object": obj, "created": self.created, "model": self.model_id}

    def usage(self, n: int) -> dict:
        p = len(self.job.prompt_ids)
        return {"prompt_tokens": p, "completion_tokens": n, "total_tokens": p + n}

    def _token(self, token_id: int, prob: float) -> dict:
        text = self.tok.token_str(token_id)
        raw = self.tok.token_bytes(token_id) if hasattr(self.tok, "token_bytes") else text.encode()
        return {"token": text, "logprob": math.log(prob) if prob > 0 else -9999.0, "bytes": list(raw)}

    def logprobs(self, tokens: list[Token]):
        """The tokens' log-probabilities in the endpoint's shape (None if not asked for).
        Called once per token, in order (text offsets count on it)."""
        if self.job.n_logprobs is None:
            return None
        rows = [{**self._token(t.token_id, t.prob), "top_logprobs": [self._token(i, p) for i, p in t.alternatives]}
                for t in tokens]
        if self.job.kind == "chat":
            return {"content": rows}
        starts = []  # where each token's text begins in the completion
        for t in tokens:
            starts.append(self._text_len)
            self._text_len = len(t.text)
        return {"tokens": [r["token"] for r in rows], "token_logprobs": [r["logprob"] for r in rows],
                "top_logprobs": [{a["token"]: a["logprob"] for a in r["top_logprobs"]} for r in rows],
                "text_offset": starts}

    def whole(self, done: Done, tokens: list[Token]) -> dict:
        finish = done.reason if done.reason in ("stop", "length") else "stop"
        if self.job.kind == "chat":
            choice = {"index": 0, "message": {"role": "assistant", "content": done.text},
                      "logprobs": self.logprobs(tokens), "finish_reason": finish}
            return {**self._head("chat.completion"), "choices": [choice], "usage": self.usage(done.n_tokens)}
        choice = {"index": 0, "text": done.text, "logprobs": self.logprobs(tokens), "finish_reason": finish}
        return {**self._head("text_completion"), "choices": [choice], "usage": self.usage(done.n_tokens)}

    def _chunk(self, text: str | None, tokens: list[Token], finish: str | None) -> dict:
        if self.job.kind == "chat":
            delta = {} if text is None else {"content": text}
            choice = {"index": 0, "delta": delta, "logprobs": self.logprobs(tokens) if tokens else None,
                      "finish_reason": finish}
            return {**self._head("chat.completion.chunk"), "choices": [choice]}
        choice = {"index": 0, "text": text or "", "logprobs": self.logprobs(tokens) if tokens else None,
                  "finish_reason": finish}
        return {**self._head("text_completion"), "choices": [choice]}

    async def stream(self, engine: Engine, req: Request, queue: asyncio.Queue):
        """Server-sent events: one chunk per token (text held back while a stop string may be
        forming), a last chunk with the finish reason, [DONE]. A client that goes away
        cancels this generator, and its row is freed."""
        sent, pending, done = 0, [], None
        try:
            if self.job.kind == "chat":  # the first chunk names the role
                first = self._chunk(None, [], None)
                first["choices"][0]["delta"] = {"role": "assistant", "content": ""}
                yield _sse(first)
            while True:
                event = await queue.get()
                if isinstance(event, Done):
                    done = event
                    break
                pending.append(event)
                safe = len(event.text) - held_back(event.text, self.job.sampling.stop)
                if safe > sent or self.job.n_logprobs is not None:
                    yield _sse(self._chunk(event.text[sent:max(safe, sent)], pending, None))
                    sent, pending = max(safe, sent), []
        finally:
            if done is None:  # the client went away (or the server is stopping)
                engine.cancel(req)
        if done.reason == "error":
            yield _sse(ApiError(500, done.message, type="server_error").body())
            return
        last = self._chunk(done.text[sent:] or None, pending, done.reason if done.reason != "cancelled" else "stop")
        yield _sse(last)
        if self.job.include_usage:
            yield _sse({**self._head(last["object"]), "choices": [], "usage": self.usage(done.n_tokens)})
        yield "data: [DONE]\n\n"


def _sse(data: dict) -> str:
    return f"data: {json.dumps(data, ensure_ascii=False)}\n\n"


def complete(run, body: dict) -> dict:
    """Answer one request body in this process, exactly as the server would, no network.

    For the lesson's "text in, text out" view: the JSON a client sends, the JSON it gets.
    ApiError for a body the server would refuse; `stream` is not available here.

    >>> complete(run, {"model": run.name, "prompt": "Once upon a time", "max_tokens": 3,
    ...                "temperature": 0})["choices"][0]["text"]
    ', there was'
    """
    if not isinstance(body, dict):
        raise ApiError(400, "the body must be a JSON object")
    if body.get("model") != run.name:
        raise ApiError(404, f"the model {show_value(body.get('model'))} does not exist; this one is {run.name!r}",
                       param="model", code="model_not_found")
    kind = "chat" if "messages" in body else "completion"
    job = parse_job(body, kind, run.tokenizer, run.model.cfg.n_ctx)
    if job.stream:
        raise bad_param("stream", "complete() answers whole replies; stream from a running server")
    engine, events = Engine(run.model, run.tokenizer, max_batch=1, max_waiting=1), []
    engine.submit(Request(job.prompt_ids, job.sampling, events.append, n_alternatives=job.n_logprobs or 0))
    while not events or not isinstance(events[-1], Done):
        engine.step()
    return Reply(run.name, run.tokenizer, job).whole(events[-1], events[:-1])
