"""`llmcore serve`: the inference engine behind an OpenAI-compatible HTTP API.

Every engine a learner will meet later (llama.cpp's server, vLLM, Ollama, LM Studio,
Groq's and OpenAI's own APIs) speaks one HTTP dialect: text goes in as JSON, text
comes back as JSON, or as server-sent events one token at a time. This module speaks
it for any llmcore run, so the official `openai` client and `curl` talk to a model
trained on your own laptop:

    GET  /v1/models             the one model served (its id is the run's name)
    POST /v1/completions        {"model", "prompt", "max_tokens", ...} -> the continuation
    POST /v1/chat/completions   {"model", "messages", ...} -> the assistant's reply

Supported settings: max_tokens (or max_completion_tokens), temperature (0 = greedy,
deterministic), top_p, seed, stop, n = 1, stream (with stream_options.include_usage),
logprobs (the model's own probabilities and top alternatives, the step view's numbers),
and the non-standard top_k that vLLM and llama.cpp also accept. Every request joins the
continuously batched engine in llmcore/batching.py.

Hard to break: every bad request gets a 4xx JSON body in OpenAI's error shape,
{"error": {"message", "type", "param", "code"}}; a client that goes away frees its row
at the next step. Caps: the body (1 MiB), the prompt (it must fit the context),
max_tokens (1,024), requests running (`max_batch`) and waiting (`max_waiting`, then 429).
It binds to 127.0.0.1 unless told otherwise: it has no API keys.

From Python: `serve_in_background(run)` starts it in a thread (a notebook, a test), and
`complete(run, body)` answers one request body in-process, exactly as the server would.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import math
import socket
import threading
import time
import uuid
from dataclasses import dataclass

from llmcore.batching import Busy, Done, Engine, Request, Token, held_back
from llmcore.errors import UserError
from llmcore.generate import MAX_PROMPT_CHARS, Sampling, encode_prompt

log = logging.getLogger(__name__)

MAX_BODY_BYTES = 1 << 20  # a request body larger than 1 MiB is refused (413)
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


def _show(v) -> str:
    try:
        return f"{json.dumps(v)!s:.40}"
    except (TypeError, ValueError):
        return type(v).__name__


def _bad(param: str, message: str) -> ApiError:
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
        raise _bad(param, f"{param} must be a string, got {_show(v)}")
    try:
        v.encode("utf-8")
    except UnicodeEncodeError as e:
        raise _bad(param, f"{param} has a lone surrogate at position {e.start}, which is not a character") from None
    if "\x00" in v:
        raise _bad(param, f"{param} has a NUL character at position {v.index(chr(0))}")
    return v


def _integer(body: dict, name: str, lo: int, hi: int, default=None):
    v = body.get(name)
    if v is None:
        return default
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not (lo <= v <= hi and v == int(v)):
        raise _bad(name, f"{name} must be a whole number from {lo:,} to {hi:,}, got {_show(v)}")
    return int(v)


def _number(body: dict, name: str, lo: float, hi: float, default: float) -> float:
    v = body.get(name)
    if v is None:
        return default
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not lo <= v <= hi:  # (NaN fails too)
        raise _bad(name, f"{name} must be a number from {lo:g} to {hi:g}, got {_show(v)}")
    return float(v)


def parse_job(body: dict, kind: str, tokenizer, n_ctx: int) -> Job:
    """Check an OpenAI request body and turn it into a Job; ApiError (400) on anything wrong."""
    for name, off in UNSUPPORTED.items():
        if body.get(name) not in (None, off):
            raise _bad(name, f"{name}={_show(body[name])} is not supported by llmcore serve")
    if kind == "chat":
        messages = body.get("messages")
        if not isinstance(messages, list) or not 1 <= len(messages) <= MAX_MESSAGES:
            raise _bad("messages", f"messages must be a list of 1 to {MAX_MESSAGES} messages")
        checked = []
        for i, m in enumerate(messages):
            where = f"messages[{i}]"
            if not isinstance(m, dict) or m.get("role") not in ("system", "developer", "user", "assistant"):
                raise _bad(where, f"{where} must be an object with a role of system, developer, user or assistant")
            content = m.get("content")
            if isinstance(content, list):  # the newer form: a list of parts; text parts only here
                if not all(isinstance(p, dict) and p.get("type") == "text" for p in content):
                    raise _bad(f"{where}.content", f"{where}.content: only text parts are supported")
                content = "".join(_check_text(f"{where}.content", p.get("text")) for p in content)
            checked.append({"role": m["role"], "content": _check_text(f"{where}.content", content)})
        prompt = chat_prompt(checked)
    else:
        prompt = body.get("prompt")
        if isinstance(prompt, list) and len(prompt) == 1 and isinstance(prompt[0], str):
            prompt = prompt[0]  # ["text"]: one prompt in a list, as some clients send it
        prompt = _check_text("prompt", prompt)
    if len(prompt) > MAX_PROMPT_CHARS:
        raise _bad("prompt", f"the prompt has {len(prompt):,} characters; the limit is {MAX_PROMPT_CHARS:,}")
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
        raise _bad("stop", f"stop must be a string or a list of up to {MAX_STOPS} strings")
    for s in stop:
        if len(_check_text("stop", s)) > MAX_STOP_CHARS:
            raise _bad("stop", f"a stop string may have at most {MAX_STOP_CHARS} characters")
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
        raise _bad("stream", f"stream must be true or false, got {_show(stream)}")
    options = body.get("stream_options") or {}
    if not isinstance(options, dict):
        raise _bad("stream_options", "stream_options must be an object")
    if kind == "chat":  # logprobs: true, top_logprobs: k
        if not isinstance(body.get("logprobs", False), (bool, type(None))):
            raise _bad("logprobs", "logprobs must be true or false")
        top = _integer(body, "top_logprobs", 0, MAX_TOP_LOGPROBS, 0)
        n_logprobs = top if body.get("logprobs") else None
    else:  # logprobs: k (the legacy completions form)
        n_logprobs = _integer(body, "logprobs", 0, MAX_TOP_LOGPROBS)
    return Job(kind, ids, sampling, stream, bool(options.get("include_usage")), n_logprobs)


# --- the HTTP side ----------------------------------------------------------------------


class Api:
    """The routes, around one run and one engine."""

    def __init__(self, run, *, max_batch: int = 16, max_waiting: int = 64):
        self.run, self.model_id = run, run.name
        self.engine = Engine(run.model, run.tokenizer, max_batch=max_batch, max_waiting=max_waiting)
        self.created = int(time.time())

    # GET /v1/models
    async def models(self, request):
        from starlette.responses import JSONResponse

        card = {"id": self.model_id, "object": "model", "created": self.created, "owned_by": "llmcore"}
        if "model" in request.path_params:
            if request.path_params["model"] != self.model_id:
                raise self._unknown_model(request.path_params["model"])
            return JSONResponse(card)
        return JSONResponse({"object": "list", "data": [card]})

    async def completions(self, request):
        return await self._respond(request, "completion")

    async def chat(self, request):
        return await self._respond(request, "chat")

    def _unknown_model(self, name) -> ApiError:
        return ApiError(404, f"the model {_show(name)} does not exist; this server has {self.model_id!r}",
                        param="model", code="model_not_found")

    async def _respond(self, request, kind: str):
        from starlette.concurrency import run_in_threadpool
        from starlette.responses import JSONResponse, StreamingResponse

        body = await _read_json(request)
        if "model" not in body:
            raise _bad("model", "you must provide a model parameter (GET /v1/models lists it)")
        if body["model"] != self.model_id:
            raise self._unknown_model(body["model"])
        try:  # tokenizing a long prompt takes a while: off the event loop
            job = await run_in_threadpool(parse_job, body, kind, self.run.tokenizer, self.run.model.cfg.n_ctx)
        except ApiError:
            raise
        except UserError as e:  # (from the library's own checks, e.g. Sampling)
            raise ApiError(400, str(e)) from None
        loop, queue = asyncio.get_running_loop(), asyncio.Queue()

        quiet = not job.stream and job.n_logprobs is None  # a whole reply needs only the Done

        def emit(event):  # called in the engine's thread
            if quiet and isinstance(event, Token):
                return  # (waking the event loop for every token costs more than the token)
            with contextlib.suppress(RuntimeError):  # the loop is closed: the server is stopping
                loop.call_soon_threadsafe(queue.put_nowait, event)

        req = Request(job.prompt_ids, job.sampling, emit, n_alternatives=job.n_logprobs or 0)
        try:
            self.engine.submit(req)
        except Busy as e:
            raise ApiError(429, f"the server is busy ({e}); try again shortly", code="server_busy",
                           type="rate_limit_error") from None
        reply = Reply(self.model_id, self.run.tokenizer, job)
        if job.stream:
            return StreamingResponse(reply.stream(self.engine, req, queue), media_type="text/event-stream",
                                     headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})
        done, tokens = await _collect(request, self.engine, req, queue)
        if done.reason == "error":
            raise ApiError(500, done.message, type="server_error")
        return JSONResponse(reply.whole(done, tokens))


async def _read_json(request) -> dict:
    """The body as a JSON object, read with a size cap."""
    try:
        declared = int(request.headers.get("content-length", 0))
    except ValueError:
        raise ApiError(400, "the Content-Length header is not a number") from None
    if declared > MAX_BODY_BYTES:
        raise ApiError(413, f"the request body is {declared:,} bytes; the limit is {MAX_BODY_BYTES:,}")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > MAX_BODY_BYTES:
            raise ApiError(413, f"the request body is over the limit of {MAX_BODY_BYTES:,} bytes")
        chunks.append(chunk)
    try:
        body = json.loads(b"".join(chunks))  # (bytes: UTF-8, -16 or -32; invalid bytes fail here)
    except (ValueError, RecursionError) as e:
        raise ApiError(400, f"the body is not valid JSON ({str(e)[:80]})") from None
    if not isinstance(body, dict):
        raise ApiError(400, f"the body must be a JSON object, got a {type(body).__name__}")
    return body


async def _collect(request, engine: Engine, req: Request, queue: asyncio.Queue):
    """Wait for a whole reply; if the client goes away first, free its row."""

    async def gone():
        while (await request.receive())["type"] != "http.disconnect":
            pass

    watcher, tokens = asyncio.ensure_future(gone()), []
    try:
        while True:
            getter = asyncio.ensure_future(queue.get())
            await asyncio.wait({getter, watcher}, return_when=asyncio.FIRST_COMPLETED)
            if not getter.done():
                getter.cancel()
                engine.cancel(req)
                return Done("cancelled", "", len(tokens)), tokens
            event = getter.result()
            if isinstance(event, Done):
                return event, tokens
            tokens.append(event)
    finally:
        watcher.cancel()


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
        raise ApiError(404, f"the model {_show(body.get('model'))} does not exist; this one is {run.name!r}",
                       param="model", code="model_not_found")
    kind = "chat" if "messages" in body else "completion"
    job = parse_job(body, kind, run.tokenizer, run.model.cfg.n_ctx)
    if job.stream:
        raise _bad("stream", "complete() answers whole replies; stream from a running server")
    engine, events = Engine(run.model, run.tokenizer, max_batch=1, max_waiting=1), []
    engine.submit(Request(job.prompt_ids, job.sampling, events.append, n_alternatives=job.n_logprobs or 0))
    while not events or not isinstance(events[-1], Done):
        engine.step()
    return Reply(run.name, run.tokenizer, job).whole(events[-1], events[:-1])


# --- the app -----------------------------------------------------------------------------


def create_app(run, *, max_batch: int = 16, max_waiting: int = 64):
    """The ASGI app (Starlette) serving `run` (a `llmcore.run.Run`). Its engine thread starts
    and stops with the app's lifespan."""
    try:
        from starlette.applications import Starlette
        from starlette.exceptions import HTTPException
        from starlette.responses import JSONResponse
        from starlette.routing import Route
    except ImportError:
        raise UserError("llmcore serve needs Starlette and uvicorn: pip install 'llmcore[serve]'") from None

    api = Api(run, max_batch=max_batch, max_waiting=max_waiting)

    @contextlib.asynccontextmanager
    async def lifespan(app):
        api.engine.start()
        yield
        api.engine.stop()

    async def api_error(request, e: ApiError):
        return JSONResponse(e.body(), status_code=e.status)

    async def http_error(request, e: HTTPException):  # 404 no such route, 405 wrong method
        code = {404: "not_found", 405: "method_not_allowed"}.get(e.status_code)
        return JSONResponse(ApiError(e.status_code, f"{request.method} {request.url.path}: {e.detail}",
                                     code=code).body(), status_code=e.status_code, headers=e.headers)

    async def bug(request, e: Exception):
        log.exception("unexpected error")
        return JSONResponse(ApiError(500, f"internal error ({type(e).__name__})", type="server_error").body(),
                            status_code=500)

    routes = [
        Route("/v1/models", api.models, methods=["GET"]),
        Route("/v1/models/{model:path}", api.models, methods=["GET"]),
        Route("/v1/completions", api.completions, methods=["POST"]),
        Route("/v1/chat/completions", api.chat, methods=["POST"]),
    ]
    app = Starlette(routes=routes, lifespan=lifespan,
                    exception_handlers={ApiError: api_error, HTTPException: http_error, Exception: bug})
    app.state.api = api
    return app


def _listen(host: str, port: int) -> socket.socket:
    if isinstance(port, bool) or not isinstance(port, int) or not 0 <= port <= 65535:
        raise UserError(f"port must be a whole number from 0 to 65535, got {port!r}")
    try:
        return socket.create_server((host, port))
    except OSError as e:
        raise UserError(f"cannot listen on {host}:{port}: {e.strerror or e}; choose another --port") from None


def _uvicorn():
    try:
        import uvicorn
    except ImportError:
        raise UserError("llmcore serve needs Starlette and uvicorn: pip install 'llmcore[serve]'") from None
    return uvicorn


def _check_caps(max_batch, max_waiting):
    for name, v, lo, hi in (("max_batch", max_batch, 1, 256), ("max_waiting", max_waiting, 0, 10_000)):
        if isinstance(v, bool) or not isinstance(v, int) or not lo <= v <= hi:
            raise UserError(f"{name} must be a whole number from {lo} to {hi}, got {v!r}")


def serve(run_name, host: str = "127.0.0.1", port: int = 8000, *, max_batch: int = 16, max_waiting: int = 64):
    """Serve a run until interrupted (the `llmcore serve` command). Blocks."""
    from llmcore.run import load_run

    uvicorn = _uvicorn()
    _check_caps(max_batch, max_waiting)
    run = load_run(run_name)
    if host not in ("127.0.0.1", "localhost", "::1"):
        log.warning("listening on %s: anyone who can reach this machine can use the model (there are no API keys)", host)
    sock = _listen(host, port)
    app = create_app(run, max_batch=max_batch, max_waiting=max_waiting)
    config = uvicorn.Config(app, log_level="info", timeout_graceful_shutdown=5,
                            limit_concurrency=4 * (max_batch + max_waiting))  # past that many connections: 503
    with sock:
        uvicorn.Server(config).run(sockets=[sock])


class Background:
    """A server running in a thread of this process: `.url` ("http://127.0.0.1:PORT/v1"), `.stop()`."""

    def __init__(self, run, host: str, port: int, max_batch: int, max_waiting: int):
        uvicorn = _uvicorn()
        _check_caps(max_batch, max_waiting)
        self.sock = _listen(host, port)
        self.app = create_app(run, max_batch=max_batch, max_waiting=max_waiting)
        self.engine = self.app.state.api.engine
        self.port = self.sock.getsockname()[1]
        self.url = f"http://{host}:{self.port}/v1"
        self._server = uvicorn.Server(uvicorn.Config(self.app, log_level="warning"))
        self._thread = threading.Thread(target=self._server.run, kwargs={"sockets": [self.sock]}, daemon=True)
        self._thread.start()
        deadline = time.monotonic() + 30
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                self.stop()
                raise UserError(f"the server did not start on {host}:{self.port}")
            time.sleep(0.01)

    def stop(self):
        self._server.should_exit = True
        self._thread.join(timeout=10)
        self.sock.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()


def serve_in_background(run, host: str = "127.0.0.1", port: int = 0, *, max_batch: int = 16,
                        max_waiting: int = 64) -> Background:
    """Start `llmcore serve` for `run` (a Run or a run name) in a thread; returns once it answers.

    For a notebook or a test: port 0 picks a free port. UserError if it cannot start.

    >>> server = serve_in_background("storyworld")
    >>> server.url                      # give this to OpenAI(base_url=...)
    'http://127.0.0.1:43127/v1'
    >>> server.stop()
    """
    from llmcore.run import Run, load_run

    return Background(run if isinstance(run, Run) else load_run(run), host, port, max_batch, max_waiting)
