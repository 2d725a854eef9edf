"""Tests for llmcore.serve, openai_api and batching: the OpenAI API, batching, bad requests.

One server per module (uvicorn in a thread, on a free port) serves the random tiny GPT
from conftest. It is driven by the official `openai` client and by raw HTTP. The
reference for every text is `llmcore.generate` on the same prompt and settings: at
temperature 0 and with a seed the server must say exactly what `llmcore generate` says,
however the requests are batched. No test measures speed (benchmarks/bench_serve.py does).
"""

import contextlib
import io
import json
import math
import socket
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest
import torch

from llmcore.batching import Busy, Done, Engine, Request, Token, held_back
from llmcore.cli import main
from llmcore.generate import Sampling, generate
from llmcore.openai_api import MAX_TOKENS_CAP, ApiError, chat_prompt, complete
from llmcore.run import load_run
from llmcore.serve import MAX_BODY_BYTES, serve_in_background

openai = pytest.importorskip("openai")
uvicorn = pytest.importorskip("uvicorn")

PROMPTS = ["Once upon a time", "Mia", "The cat sat on the mat", "a"]


@pytest.fixture(scope="module")
def run(tiny_run):
    return load_run(tiny_run)


@pytest.fixture(scope="module")
def server(run):
    """The app served on 127.0.0.1 at a free port, in a thread, for the whole module."""
    with serve_in_background(run, max_batch=4, max_waiting=8) as server:
        yield server


@pytest.fixture(scope="module")
def client(server):
    return openai.OpenAI(base_url=server.url, api_key="unused", max_retries=0, timeout=30)


def reference(run, prompt, **kw):
    """What `llmcore generate` says: the library call behind the command."""
    return generate(run.model, run.tokenizer, prompt, Sampling(**{"temperature": 0, "max_new_tokens": 20, **kw}))


def post(server, path, body, **kw):
    data = body if isinstance(body, (bytes, str)) else json.dumps(body)
    return httpx.post(server.url.removesuffix("/v1") + path, content=data, timeout=30, **kw)


# --- text in, text out ------------------------------------------------------------------


def test_models_lists_the_run(client, run):
    assert [m.id for m in client.models.list().data] == [run.name]
    assert client.models.retrieve(run.name).id == run.name


def test_completion_is_generate_at_temperature_0(client, run):
    r = client.completions.create(model=run.name, prompt="Once upon a time", max_tokens=20, temperature=0)
    assert r.choices[0].text == reference(run, "Once upon a time")
    assert r.choices[0].finish_reason == "length"
    n_prompt = len(run.tokenizer.encode("Once upon a time"))
    assert (r.usage.prompt_tokens, r.usage.completion_tokens, r.usage.total_tokens) == (n_prompt, 20, n_prompt + 20)


def test_greedy_equals_the_generate_command(client, run, tiny_run):
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert main(["generate", str(tiny_run), "--prompt", "Mia", "--temperature", "0", "--max-new-tokens", "25"]) == 0
    r = client.completions.create(model=run.name, prompt="Mia", max_tokens=25, temperature=0)
    assert out.getvalue() == "Mia" + r.choices[0].text + "\n"


def test_seeded_sampling_equals_generate(client, run):
    for seed in (0, 7):
        r = client.completions.create(model=run.name, prompt="Mia", max_tokens=20, temperature=0.9, top_p=0.9, seed=seed)
        assert r.choices[0].text == reference(run, "Mia", temperature=0.9, top_p=0.9, seed=seed)


def test_temperature_0_is_deterministic(client, run):
    texts = {client.completions.create(model=run.name, prompt="The cat", max_tokens=30, temperature=0).choices[0].text
             for _ in range(3)}
    assert len(texts) == 1


def test_chat_continues_the_template(client, run):
    messages = [{"role": "system", "content": "A story."}, {"role": "user", "content": "Once upon a time"}]
    r = client.chat.completions.create(model=run.name, messages=messages, max_tokens=15, temperature=0)
    assert r.choices[0].message.role == "assistant"
    assert r.choices[0].message.content == reference(run, "A story.\nOnce upon a time", max_new_tokens=15)
    assert r.usage.prompt_tokens == len(run.tokenizer.encode(chat_prompt(messages)))
    parts = [{"role": "user", "content": [{"type": "text", "text": "Once upon "}, {"type": "text", "text": "a time"}]}]
    r2 = client.chat.completions.create(model=run.name, messages=parts, max_tokens=15, temperature=0)
    assert r2.choices[0].message.content == reference(run, "Once upon a time", max_new_tokens=15)


def test_stop_cuts_the_text(client, run):
    full = reference(run, "Mia", max_new_tokens=40)
    stop = full[10:12]  # a string the greedy text certainly contains
    r = client.completions.create(model=run.name, prompt="Mia", max_tokens=40, temperature=0, stop=[stop])
    assert r.choices[0].text == reference(run, "Mia", max_new_tokens=40, stop=(stop,)) == full[: full.index(stop)]
    assert r.choices[0].finish_reason == "stop"


def test_logprobs_are_the_models_probabilities(client, run):
    r = client.completions.create(model=run.name, prompt="Mia", max_tokens=5, temperature=0, logprobs=3)
    lp = r.choices[0].logprobs
    assert "".join(lp.tokens) == r.choices[0].text and len(lp.token_logprobs) == 5
    assert all(len(top) == 3 and max(top.values()) >= lp.token_logprobs[i] - 1e-6 for i, top in enumerate(lp.top_logprobs))
    ids = run.tokenizer.encode("Mia")  # the first token's probability, from the model itself
    p = run.model(torch.tensor([ids]))[0, -1].softmax(-1).max().item()
    assert lp.token_logprobs[0] == pytest.approx(torch.tensor(p).log().item(), abs=1e-4)
    c = client.chat.completions.create(model=run.name, messages=[{"role": "user", "content": "Mia"}], max_tokens=5,
                                       temperature=0, logprobs=True, top_logprobs=2)
    assert [t.token for t in c.choices[0].logprobs.content] == lp.tokens
    assert all(len(t.top_logprobs) == 2 for t in c.choices[0].logprobs.content)


def test_complete_answers_in_process_as_the_server_does(server, run):
    body = {"model": run.name, "prompt": "Mia", "max_tokens": 6, "temperature": 0, "logprobs": 3}
    local, remote = complete(run, body), post(server, "/v1/completions", body).json()
    for r in (local, remote):
        del r["id"], r["created"]
    assert json.loads(json.dumps(local)) == remote
    chat = complete(run, {"model": run.name, "messages": [{"role": "user", "content": "Mia"}], "max_tokens": 6,
                          "temperature": 0})
    assert chat["choices"][0]["message"]["content"] == local["choices"][0]["text"]
    with pytest.raises(ApiError, match="max_tokens"):
        complete(run, {"model": run.name, "prompt": "Mia", "max_tokens": 0})


def test_logprobs_are_the_step_views_numbers(run):
    from llmcore.generate import steps

    r = complete(run, {"model": run.name, "prompt": "Mia", "max_tokens": 8, "temperature": 0, "logprobs": 5})
    lp = r["choices"][0]["logprobs"]
    view = list(steps(run.model, run.tokenizer, "Mia", Sampling(temperature=0, max_new_tokens=8)))
    assert lp["tokens"] == [s.text for s in view]
    assert lp["token_logprobs"] == pytest.approx([math.log(s.prob) for s in view], abs=1e-5)
    for top, s in zip(lp["top_logprobs"], view):
        assert list(top) == [t for t, _ in s.alternatives]
        assert list(top.values()) == pytest.approx([math.log(p) for _, p in s.alternatives], abs=1e-5)


# --- streaming ----------------------------------------------------------------------------


def test_streamed_completion_equals_the_whole_one(client, run):
    chunks = list(client.completions.create(model=run.name, prompt="Mia", max_tokens=20, temperature=0, stream=True,
                                            stream_options={"include_usage": True}))
    text = "".join(c.choices[0].text for c in chunks if c.choices)
    assert text == reference(run, "Mia")
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "length"
    assert chunks[-1].usage.completion_tokens == 20 and not chunks[-1].choices


def test_streamed_chat_with_stop_never_sends_past_it(client, run):
    full = reference(run, "Mia", max_new_tokens=40)
    stop = full[15:18]
    stream = client.chat.completions.create(model=run.name, messages=[{"role": "user", "content": "Mia"}],
                                            max_tokens=40, temperature=0, stop=stop, stream=True)
    chunks = list(stream)
    assert chunks[0].choices[0].delta.role == "assistant"
    assert "".join(c.choices[0].delta.content or "" for c in chunks) == full[: full.index(stop)]
    assert chunks[-1].choices[0].finish_reason == "stop"


def test_held_back_keeps_what_a_stop_string_may_cut():
    assert held_back("Once upon a ti", ("time",)) == 2
    assert held_back("Once upon a ti", ("x", "a tim")) == 4
    assert held_back("abc", ("zzz",)) == 0
    assert held_back("xaaa", ("aaa",)) == 3  # a whole stop string is never sent
    assert held_back("ab\ufffd", ()) == 1  # a partial character waits for its other bytes


# --- batching -----------------------------------------------------------------------------


def run_engine(run, jobs, max_batch):
    """Submit every (prompt, sampling) at once; return the engine and each one's events."""
    engine = Engine(run.model, run.tokenizer, max_batch=max_batch, max_waiting=len(jobs))
    events = [[] for _ in jobs]
    for out, (prompt, s) in zip(events, jobs):
        engine.submit(Request(run.tokenizer.encode(prompt), s, out.append))
    while any(not ev or not isinstance(ev[-1], Done) for ev in events):
        engine.step()
    return engine, events


def test_batched_rows_equal_one_at_a_time(run):
    # different prompt lengths and lengths to generate: rows join and leave at different steps;
    # 3 rows for 6 requests: the waiting ones join as others finish. 40 tokens outgrow the
    # tiny model's context of 32, so rows also slide their window, as generate does.
    jobs = [(p, Sampling(temperature=0, max_new_tokens=n)) for p, n in zip(PROMPTS + PROMPTS[:2], (5, 40, 12, 3, 25, 8))]
    jobs.append(("Mia", Sampling(temperature=1.0, top_k=5, max_new_tokens=30, seed=3)))
    engine, events = run_engine(run, jobs, max_batch=3)
    for (prompt, s), ev in zip(jobs, events):
        done = ev[-1]
        assert done.text == generate(run.model, run.tokenizer, prompt, s) and done.reason == "length"
        assert [t.index for t in ev[:-1]] == list(range(s.max_new_tokens))
    n_tokens = sum(s.max_new_tokens for _, s in jobs)
    assert engine.steps < n_tokens  # rows shared forward passes
    assert not engine.rows and not engine.waiting


def test_concurrent_http_requests_each_get_their_own_answer(client, run):
    def one(i):
        prompt, n = PROMPTS[i % len(PROMPTS)], 5 + 3 * i
        r = client.completions.create(model=run.name, prompt=prompt, max_tokens=n, temperature=0)
        return r.choices[0].text == reference(run, prompt, max_new_tokens=n)

    with ThreadPoolExecutor(8) as pool:
        assert all(pool.map(one, range(8)))


def test_busy_is_429(server, run, monkeypatch):
    engine = Engine(run.model, run.tokenizer, max_batch=1, max_waiting=1)
    engine.submit(Request([1], Sampling(), lambda e: None))
    engine.submit(Request([1], Sampling(), lambda e: None))
    with pytest.raises(Busy):
        engine.submit(Request([1], Sampling(), lambda e: None))
    monkeypatch.setattr(server.engine, "max_waiting", -100)
    r = post(server, "/v1/completions", {"model": run.name, "prompt": "Mia"})
    assert r.status_code == 429 and r.json()["error"]["type"] == "rate_limit_error"


def test_an_engine_failure_fails_one_request_not_the_server(server, run, monkeypatch):
    def broken(*a):
        monkeypatch.undo()
        raise RuntimeError("boom")

    monkeypatch.setattr(server.engine, "_prefill", broken)
    r = post(server, "/v1/completions", {"model": run.name, "prompt": "Mia", "max_tokens": 3})
    assert r.status_code == 500 and r.json()["error"]["type"] == "server_error"
    r = post(server, "/v1/completions", {"model": run.name, "prompt": "Mia", "max_tokens": 3, "temperature": 0})
    assert r.status_code == 200 and r.json()["choices"][0]["text"] == reference(run, "Mia", max_new_tokens=3)


# --- hard to break --------------------------------------------------------------------------

M = "MODEL"  # replaced by the run's name
BAD = {
    "malformed JSON": (b'{"model": "MODEL", "prompt": ', 400, None),
    "not an object": (b'["MODEL"]', 400, None),
    "invalid UTF-8": (b'{"model": "MODEL", "prompt": "\xff\xfe"}', 400, None),
    "deeply nested": (b"[" * 100_000 + b"]" * 100_000, 400, None),
    "missing model": ({"prompt": "Mia"}, 400, "model"),
    "unknown model": ({"model": "gpt-4", "prompt": "Mia"}, 404, "model"),
    "model not a string": ({"model": ["x"], "prompt": "Mia"}, 404, "model"),
    "prompt not text": ({"model": M, "prompt": 5}, 400, "prompt"),
    "missing prompt": ({"model": M}, 400, "prompt"),
    "prompt of token ids": ({"model": M, "prompt": [1, 2]}, 400, "prompt"),
    "temperature a string": ({"model": M, "prompt": "a", "temperature": "hot"}, 400, "temperature"),
    "temperature too high": ({"model": M, "prompt": "a", "temperature": 5}, 400, "temperature"),
    "temperature NaN": (b'{"model": "MODEL", "prompt": "a", "temperature": NaN}', 400, "temperature"),
    "top_p zero": ({"model": M, "prompt": "a", "top_p": 0}, 400, "top_p"),
    "max_tokens negative": ({"model": M, "prompt": "a", "max_tokens": -1}, 400, "max_tokens"),
    "max_tokens zero": ({"model": M, "prompt": "a", "max_tokens": 0}, 400, "max_tokens"),
    "max_tokens absurd": ({"model": M, "prompt": "a", "max_tokens": 10**9}, 400, "max_tokens"),
    "max_tokens 400 digits": (b'{"model": "MODEL", "prompt": "a", "max_tokens": 1' + b"0" * 400 + b"}", 400, "max_tokens"),
    "max_tokens 1e400": (b'{"model": "MODEL", "prompt": "a", "max_tokens": 1e400}', 400, "max_tokens"),
    "max_tokens a string": ({"model": M, "prompt": "a", "max_tokens": "10"}, 400, "max_tokens"),
    "max_tokens fractional": ({"model": M, "prompt": "a", "max_tokens": 2.5}, 400, "max_tokens"),
    "seed negative": ({"model": M, "prompt": "a", "seed": -1}, 400, "seed"),
    "stream a string": ({"model": M, "prompt": "a", "stream": "yes"}, 400, "stream"),
    "stop a number": ({"model": M, "prompt": "a", "stop": 3}, 400, "stop"),
    "five stops": ({"model": M, "prompt": "a", "stop": list("abcde")}, 400, "stop"),
    "n = 2": ({"model": M, "prompt": "a", "n": 2}, 400, "n"),
    "logprobs 100": ({"model": M, "prompt": "a", "logprobs": 100}, 400, "logprobs"),
    "NUL byte": ({"model": M, "prompt": "Mia\x00"}, 400, "prompt"),
    "lone surrogate": (b'{"model": "MODEL", "prompt": "Mia \\ud800"}', 400, "prompt"),
    "prompt longer than the context": ({"model": M, "prompt": "Mia " * 40}, 400, "prompt"),
    "prompt over the character cap": ({"model": M, "prompt": "a" * 100_001}, 400, "prompt"),
}
BAD_CHAT = {
    "messages missing": ({"model": M}, 400, "messages"),
    "messages empty": ({"model": M, "messages": []}, 400, "messages"),
    "message not an object": ({"model": M, "messages": ["hi"]}, 400, "messages[0]"),
    "unknown role": ({"model": M, "messages": [{"role": "robot", "content": "hi"}]}, 400, "messages[0]"),
    "content a number": ({"model": M, "messages": [{"role": "user", "content": 1}]}, 400, "messages[0].content"),
    "image part": ({"model": M, "messages": [{"role": "user", "content": [{"type": "image_url"}]}]}, 400, "messages[0].content"),
    "NUL in content": ({"model": M, "messages": [{"role": "user", "content": "\x00"}]}, 400, "messages[0].content"),
    "top_logprobs 50": ({"model": M, "messages": [{"role": "user", "content": "a"}], "logprobs": True, "top_logprobs": 50},
                        400, "top_logprobs"),
}


def check_error(r, status, param):
    assert r.status_code == status, r.text
    err = r.json()["error"]
    assert isinstance(err["message"], str) and err["message"] and err["type"]
    assert set(err) == {"message", "type", "param", "code"}
    if param:
        assert err["param"] == param


def with_model(body, run):
    if isinstance(body, bytes):
        return body.replace(b"MODEL", run.name.encode())
    return {k: (run.name if v == M else v) for k, v in body.items()}


@pytest.mark.parametrize("case", BAD)
def test_bad_completion_requests_get_4xx(server, run, case):
    body, status, param = BAD[case]
    check_error(post(server, "/v1/completions", with_model(body, run)), status, param)


@pytest.mark.parametrize("case", BAD_CHAT)
def test_bad_chat_requests_get_4xx(server, run, case):
    body, status, param = BAD_CHAT[case]
    check_error(post(server, "/v1/chat/completions", with_model(body, run)), status, param)


def test_bad_requests_that_ask_to_stream_still_get_json(server, run):
    r = post(server, "/v1/completions", {"model": run.name, "prompt": "a", "max_tokens": -5, "stream": True})
    check_error(r, 400, "max_tokens")


def test_oversized_body_is_413(server, run):
    check_error(post(server, "/v1/completions", b"x" * (MAX_BODY_BYTES + 1)), 413, None)
    chunked = (b"x" * 65536 for _ in range(MAX_BODY_BYTES // 65536 + 2))  # no Content-Length: counted as it comes
    check_error(httpx.post(server.url + "/completions", content=chunked, timeout=30), 413, None)


def test_unknown_routes_and_methods(server):
    check_error(httpx.get(server.url + "/nothing"), 404, None)
    check_error(httpx.get(server.url + "/completions"), 405, None)
    check_error(httpx.get(server.url + "/models/gpt-4"), 404, "model")


def test_the_openai_client_sees_errors_as_exceptions(client, run):
    with pytest.raises(openai.NotFoundError):
        client.completions.create(model="gpt-4", prompt="Mia")
    with pytest.raises(openai.BadRequestError, match="max_tokens"):
        client.completions.create(model=run.name, prompt="Mia", max_tokens=MAX_TOKENS_CAP + 1)


def wait_idle(engine, seconds=10):
    end = time.monotonic() + seconds
    while (engine.rows or engine.waiting) and time.monotonic() < end:
        time.sleep(0.01)
    return not engine.rows and not engine.waiting


@pytest.mark.parametrize("stream", [True, False])
def test_a_client_that_disconnects_frees_its_row(server, run, stream):
    assert wait_idle(server.engine)
    body = json.dumps({"model": run.name, "prompt": "Mia", "max_tokens": MAX_TOKENS_CAP, "stream": stream}).encode()
    with socket.create_connection(("127.0.0.1", server.port)) as s:
        s.sendall(b"POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                  b"Content-Length: %d\r\n\r\n%s" % (len(body), body))
        if stream:
            got = b""
            while b"data: " not in got:  # the stream has started
                got += s.recv(4096)
        else:
            end = time.monotonic() + 10
            while not server.engine.rows and time.monotonic() < end:  # the request is running
                time.sleep(0.005)
        before = server.engine.steps
    assert wait_idle(server.engine)  # the row was freed...
    assert server.engine.steps - before < MAX_TOKENS_CAP // 2  # ...long before its 1,024 tokens
    r = post(server, "/v1/completions", {"model": run.name, "prompt": "Mia", "max_tokens": 5, "temperature": 0})
    assert r.json()["choices"][0]["text"] == reference(run, "Mia", max_new_tokens=5)  # and the server carries on


def test_engine_reports_tokens_then_done(run):
    _, (events,) = run_engine(run, [("Mia", Sampling(temperature=0, max_new_tokens=4))], max_batch=2)
    assert all(isinstance(e, Token) for e in events[:-1]) and len(events) == 5
    assert events[-1].text == events[-2].text == reference(run, "Mia", max_new_tokens=4)


def test_bpe_text_is_whole_characters(tiny_bpe_run):
    run = load_run(tiny_bpe_run)  # a random model happily emits half of a character
    s = Sampling(temperature=1.0, max_new_tokens=60, seed=5)
    _, (events,) = run_engine(run, [("héllo wörld 🙂", s)], max_batch=1)
    ids = [e.token_id for e in events[:-1]]
    assert events[-1].text == run.tokenizer.decode(ids) == generate(run.model, run.tokenizer, "héllo wörld 🙂", s)


def test_serve_command_refuses_a_taken_port(run, tiny_run, capsys):
    with socket.create_server(("127.0.0.1", 0)) as taken:
        code = main(["serve", str(tiny_run), "--port", str(taken.getsockname()[1])])
    assert code == 2 and "cannot listen" in capsys.readouterr().err
    assert main(["serve", str(tiny_run), "--port", "70000"]) == 2
