"""`llmcore serve`: the inference engine behind an OpenAI-compatible HTTP API.

Every engine a learner will meet later (llama.cpp's server, vLLM, Ollama, LM Studio,
Groq's and OpenAI's own APIs) speaks one HTTP dialect: text goes in as JSON, text
comes back as JSON, or as server-sent events one token at a time. This module serves
it for any llmcore run (Starlette + uvicorn), so the official `openai` client and
`curl` talk to a model trained on your own laptop:

    GET  /v1/models             the one model served (its id is the run's name)
    POST /v1/completions        {"model", "prompt", "max_tokens", ...} -> the continuation
    POST /v1/chat/completions   {"model", "messages", ...} -> the assistant's reply

The dialect itself (the fields, the checks, the replies) is llmcore/openai_api.py;
every request joins the continuously batched engine in llmcore/batching.py.

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
import socket
import threading
import time

from llmcore.batching import Busy, Done, Engine, Request, Token
from llmcore.errors import UserError
from llmcore.openai_api import ApiError, Reply, bad_param, chat_prompt, complete, parse_job, show_value

__all__ = ["ApiError", "chat_prompt", "complete", "create_app", "serve", "serve_in_background"]

log = logging.getLogger(__name__)

MAX_BODY_BYTES = 1 << 20  # a request body larger than 1 MiB is refused (413)


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
        return ApiError(404, f"the model {show_value(name)} does not exist; this server has {self.model_id!r}",
                        param="model", code="model_not_found")

    async def _respond(self, request, kind: str):
        from starlette.concurrency import run_in_threadpool
        from starlette.responses import JSONResponse, StreamingResponse

        body = await _read_json(request)
        if "model" not in body:
            raise bad_param("model", "you must provide a model parameter (GET /v1/models lists it)")
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
