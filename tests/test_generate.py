"""Tests for llmcore.generate: sampling knobs, the step loop, odd input, bad settings.

The model is a random tiny GPT from conftest (its distribution is nearly flat, so
sampled texts differ by seed). The reference for greedy decoding is a hand-written
argmax loop over full forward passes; for the knobs, the definitions of top-k and top-p.
"""

import math

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from llmcore.errors import UserError
from llmcore.generate import (
    MAX_NEW_TOKENS,
    MAX_PROMPT_CHARS,
    Sampling,
    Step,
    distribution,
    encode_prompt,
    generate,
    next_token_probs,
    steps,
)
from llmcore.model import GPT, GPTConfig
from llmcore.run import load_run

FUZZ = settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
GREEDY = Sampling(temperature=0, max_new_tokens=20)


@pytest.fixture(scope="module")
def run(tiny_run):
    return load_run(tiny_run)


@pytest.fixture(scope="module")
def bpe_run(tiny_bpe_run):
    return load_run(tiny_bpe_run)


def no_hooks_attached(model) -> bool:
    return all(not hp._forward_hooks for hp in model.hook_dict.values())


def token_ids(run, prompt, sampling, **kw):
    return [s.token_id for s in steps(run.model, run.tokenizer, prompt, sampling, **kw)]


# --- greedy and seeds ----------------------------------------------------------------


def test_temperature_zero_is_the_argmax_chain(run):
    m, tok = run.model, run.tokenizer
    ids = tok.encode("Mia went")
    want = []
    with torch.no_grad():
        for _ in range(GREEDY.max_new_tokens):
            nxt = int(m(torch.tensor([ids]))[0, -1].argmax())
            ids.append(nxt)
            want.append(nxt)
    assert token_ids(run, "Mia went", GREEDY) == want
    assert generate(m, tok, "Mia went", GREEDY) == tok.decode(want)
    assert generate(m, tok, "Mia went", Sampling(temperature=0, max_new_tokens=20, seed=7)) == tok.decode(want)


def test_same_seed_same_text_and_different_seeds_differ(run):
    def text(seed):
        return generate(run.model, run.tokenizer, "Once", Sampling(temperature=1.0, max_new_tokens=30, seed=seed))

    assert text(1) == text(1)
    assert len({text(seed) for seed in range(5)}) > 1
    fresh = {generate(run.model, run.tokenizer, "Once", Sampling(temperature=1.0, max_new_tokens=30, seed=None)) for _ in range(3)}
    assert len(fresh) > 1  # seed=None draws a new seed each time


@pytest.mark.parametrize(
    "knob",
    [dict(top_k=1), dict(top_p=1e-6), dict(top_k=1, top_p=0.5), dict(temperature=1e-30), dict(temperature=1e-320), dict(top_p=5e-324)],
)
def test_knobs_that_leave_one_token_equal_greedy(run, knob):
    greedy = token_ids(run, "The fox", GREEDY)
    for seed in (0, 1, 2):
        s = Sampling(**{"temperature": 1.0, "max_new_tokens": 20, "seed": seed, **knob})
        assert token_ids(run, "The fox", s) == greedy


def test_cache_and_no_cache_give_the_same_tokens_within_the_context(run, bpe_run):
    for r in (run, bpe_run):
        n_prompt = len(r.tokenizer.encode("Once upon a time"))
        s = Sampling(temperature=0, max_new_tokens=r.model.cfg.n_ctx - n_prompt)
        assert token_ids(r, "Once upon a time", s) == token_ids(r, "Once upon a time", s, use_cache=False)
        s = Sampling(temperature=0.9, max_new_tokens=r.model.cfg.n_ctx - n_prompt, seed=3)
        assert token_ids(r, "Once upon a time", s) == token_ids(r, "Once upon a time", s, use_cache=False)


# --- the distribution ----------------------------------------------------------------


def test_distribution_examples():
    logits = torch.tensor([2.0, 1.0, 0.0, -1.0])
    assert distribution(logits, Sampling(temperature=0)).tolist() == [1.0, 0.0, 0.0, 0.0]
    assert torch.allclose(distribution(logits, Sampling(temperature=1)), logits.softmax(-1))
    assert torch.allclose(distribution(logits, Sampling(temperature=2)), (logits / 2).softmax(-1))
    two = distribution(logits, Sampling(temperature=1, top_k=2))
    assert torch.allclose(two[:2], torch.tensor([2.0, 1.0]).softmax(-1)) and (two[2:] == 0).all()
    p = logits.softmax(-1)  # [0.64, 0.24, 0.09, 0.03]: top_p 0.7 keeps the first two
    kept = distribution(logits, Sampling(temperature=1, top_p=0.7))
    assert torch.allclose(kept[:2], p[:2] / p[:2].sum()) and (kept[2:] == 0).all()
    assert (distribution(logits, Sampling(temperature=1, top_p=0.5)) == torch.tensor([1.0, 0, 0, 0])).all()
    for tiny in (dict(temperature=1e-30), dict(temperature=5e-324), dict(top_p=5e-324), dict(top_p=1e-320, temperature=1e-320)):
        assert distribution(logits * 1e30, Sampling(**tiny)).tolist() == [1.0, 0.0, 0.0, 0.0], tiny


@FUZZ
@given(
    logits=st.lists(st.floats(-30, 30, width=32), min_size=1, max_size=40),
    temperature=st.one_of(st.just(0.0), st.floats(1e-6, 100)),
    top_k=st.integers(0, 45),
    top_p=st.floats(1e-6, 1.0),
)
def test_distribution_sums_to_one_and_respects_top_k_and_top_p(logits, temperature, top_k, top_p):
    x = torch.tensor(logits)
    s = Sampling(temperature=temperature, top_k=top_k, top_p=top_p)
    probs = distribution(x, s)
    assert probs.shape == x.shape and torch.isfinite(probs).all() and (probs >= 0).all()
    assert abs(probs.sum().item() - 1.0) < 1e-5
    support = probs > 0
    if temperature == 0:
        assert support.sum() == 1 and x[probs.argmax()] == x.max()
        return
    if 0 < top_k < len(logits):  # only tokens at or above the k-th largest logit survive
        kth = torch.topk(x, top_k).values[-1]
        assert (x[support] >= kth).all()
    # top-p: the kept tokens are the most likely ones, and without the least likely of them the
    # mass (in the distribution before top-p) would be below top_p
    before = distribution(x, Sampling(temperature=temperature, top_k=top_k))
    kept = before[support]
    assert before[~support].max().item() <= kept.min().item() + 1e-7 if (~support).any() else True
    if top_p < 1.0 and support.sum() > 1:
        assert kept.sum().item() - kept.min().item() < top_p + 1e-5


# --- the step loop -------------------------------------------------------------------


def test_steps_report_what_the_model_considered(run):
    m, tok = run.model, run.tokenizer
    got = list(steps(m, tok, "Mia", Sampling(temperature=1.0, max_new_tokens=12, seed=4), n_alternatives=5))
    assert len(got) == 12 and [s.index for s in got] == list(range(12))
    ids = tok.encode("Mia")
    for s in got:
        assert isinstance(s, Step) and s.text == tok.token_str(s.token_id)
        probs = [p for _, p in s.alternatives]
        assert len(s.alternatives) == 5 and probs == sorted(probs, reverse=True)
        assert all(0.0 <= p <= 1.0 for p in probs) and 0.0 <= s.prob <= 1.0
        with torch.no_grad():
            model_probs = m(torch.tensor([ids]))[0, -1].softmax(-1)
        assert math.isclose(s.prob, float(model_probs[s.token_id]), rel_tol=1e-4)
        assert math.isclose(probs[0], float(model_probs.max()), rel_tol=1e-4)
        ids.append(s.token_id)
    assert all(s.notice == "" for s in got)


def test_next_token_probs_are_the_first_step_alternatives(run):
    top = next_token_probs(run.model, run.tokenizer, "Mia went", k=4)
    first = next(steps(run.model, run.tokenizer, "Mia went", GREEDY, n_alternatives=4))
    assert [t for t, _ in top] == [t for t, _ in first.alternatives]
    assert all(math.isclose(a, b, rel_tol=1e-5) for (_, a), (_, b) in zip(top, first.alternatives))
    assert len(next_token_probs(run.model, run.tokenizer, "x", k=10_000)) == run.model.cfg.d_vocab


def test_prompt_longer_than_the_context_slides_with_a_notice(run):
    n_ctx = run.model.cfg.n_ctx
    prompt = "Once upon a time there was a fox who lived by the river and " * 3
    ids, notices = encode_prompt(run.tokenizer, prompt, n_ctx)
    assert ids == run.tokenizer.encode(prompt)[-(n_ctx - 1) :]
    assert len(notices) == 1 and str(n_ctx) in notices[0]
    for use_cache in (True, False):
        got = list(steps(run.model, run.tokenizer, prompt, Sampling(max_new_tokens=3), use_cache=use_cache))
        assert len(got) == 3 and f"reads {n_ctx}" in got[0].notice and got[1].notice == ""


@pytest.mark.parametrize("use_cache", [True, False])
def test_generation_beyond_the_context_keeps_going_with_a_notice(run, use_cache):
    n_ctx = run.model.cfg.n_ctx
    got = list(steps(run.model, run.tokenizer, "Mia", Sampling(max_new_tokens=3 * n_ctx), use_cache=use_cache))
    assert len(got) == 3 * n_ctx
    noticed = [s.index for s in got if "outgrew" in s.notice]
    assert noticed and noticed[0] == n_ctx - len("Mia") + 1  # the first token read from a slid window


def test_empty_prompt_starts_from_a_new_line(run, bpe_run):
    for r in (run, bpe_run):
        got = list(steps(r.model, r.tokenizer, "", Sampling(max_new_tokens=4)))
        assert len(got) == 4 and "empty prompt" in got[0].notice
        assert generate(r.model, r.tokenizer, "", GREEDY) == generate(r.model, r.tokenizer, "\n", GREEDY)


def test_unknown_characters_become_the_unknown_token_with_a_notice(run):
    first = next(steps(run.model, run.tokenizer, "Mia 東京 😀", Sampling(max_new_tokens=2)))
    assert "3 character(s)" in first.notice
    first = next(steps(run.model, run.tokenizer, "Mia", Sampling(max_new_tokens=2)))
    assert first.notice == ""


def test_bpe_run_generates_text(bpe_run):
    text = generate(bpe_run.model, bpe_run.tokenizer, "Once upon a time", Sampling(max_new_tokens=15, seed=2))
    assert isinstance(text, str) and text
    first = next(steps(bpe_run.model, bpe_run.tokenizer, "café 東京", GREEDY))  # bytes: nothing is unknown
    assert first.notice == ""


def test_a_context_of_one_token_still_generates():
    from llmcore.tokenizer import CharTokenizer

    tok = CharTokenizer.train("abc")
    m = GPT(GPTConfig(d_vocab=tok.vocab_size, n_ctx=1, d_model=4, n_layers=1, n_heads=1)).eval()
    for use_cache in (True, False):
        assert len(generate(m, tok, "abcabc", Sampling(max_new_tokens=5), use_cache=use_cache)) == 5


# --- settings ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "bad",
    [
        dict(temperature=-0.1),
        dict(temperature=101),
        dict(temperature=float("nan")),
        dict(temperature=float("inf")),
        dict(temperature="hot"),
        dict(temperature=None),
        dict(top_p=0),
        dict(top_p=1.5),
        dict(top_p=float("nan")),
        dict(max_new_tokens=-1),
        dict(max_new_tokens=10**9),
        dict(max_new_tokens=MAX_NEW_TOKENS + 1),
        dict(max_new_tokens=2.5),
        dict(top_k=2.5),
        dict(top_k=-1),
        dict(top_k=float("inf")),
        dict(top_k=True),
        dict(seed="x"),
        dict(seed=1.5),
        dict(seed=True),
        dict(seed=-1),
        dict(seed=2**64),
        dict(stop=None),
        dict(stop=5),
        dict(stop=["ok", 5]),
        dict(stop=[0]),
        dict(temperature=10**400),
        dict(top_k=10**400),
        dict(seed=10**5000),
    ],
)
def test_bad_settings_are_user_errors(bad):
    with pytest.raises(UserError) as e:
        Sampling(**bad)
    assert "\n" not in str(e.value) and len(str(e.value)) < 200


def test_whole_floats_are_accepted_as_counts():
    s = Sampling(top_k=3.0, max_new_tokens=4.0, temperature=1, stop="x")
    assert s.top_k == 3 and type(s.top_k) is int and s.max_new_tokens == 4 and s.temperature == 1.0
    assert s.stop == ("x",) and Sampling(stop=["", "a"]).stop == ("a",)


def test_bad_prompts_are_user_errors(run):
    with pytest.raises(UserError, match="text"):
        generate(run.model, run.tokenizer, 123, GREEDY)
    with pytest.raises(UserError, match="limit"):
        generate(run.model, run.tokenizer, "a" * (MAX_PROMPT_CHARS + 1), GREEDY)


ANY = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-5, 3000),
    st.integers(),
    st.floats(allow_nan=True, allow_infinity=True),
    st.floats(0, 2),
    st.text(max_size=3),
    st.lists(st.one_of(st.text(max_size=2), st.integers()), max_size=2),
)


@FUZZ
@given(
    temperature=st.one_of(ANY, st.floats(0, 1e-30)),  # subnormal temperatures and top_p included
    top_k=ANY,
    top_p=st.one_of(ANY, st.floats(0, 1e-30)),
    max_new_tokens=ANY,
    seed=ANY,
    stop=ANY,
)
def test_random_settings_give_user_error_or_text(run, temperature, top_k, top_p, max_new_tokens, seed, stop):
    try:
        s = Sampling(temperature=temperature, top_k=top_k, top_p=top_p, max_new_tokens=max_new_tokens, seed=seed, stop=stop)
    except UserError:
        return
    s.max_new_tokens = min(s.max_new_tokens, 3)  # the settings were valid; keep the run short
    text = generate(run.model, run.tokenizer, "Mia", s)
    assert isinstance(text, str) and len(text) <= 3
    assert not any(x in text for x in s.stop)


# --- stop strings and hooks ----------------------------------------------------------


def test_stop_strings_cut_the_text(run):
    m, tok = run.model, run.tokenizer
    full = generate(m, tok, "Mia", Sampling(temperature=0, max_new_tokens=30))
    stop = full[10:12]
    cut = generate(m, tok, "Mia", Sampling(temperature=0, max_new_tokens=30, stop=(stop, "never-there")))
    assert cut == full[: full.index(stop)]
    n = len(list(steps(m, tok, "Mia", Sampling(temperature=0, max_new_tokens=30, stop=stop))))
    assert n == full.index(stop) + len(stop)  # char tokens: the loop stops as soon as the stop string appears


def test_fwd_hooks_change_the_output_and_are_removed(run):
    m, tok = run.model, run.tokenizer
    clean = generate(m, tok, "Mia", GREEDY)
    direction = m.W_E[tok.encode("z")[0]].detach() * 50  # push every position towards "z"

    def steer(resid, hook):
        return resid + direction

    steered = generate(m, tok, "Mia", GREEDY, fwd_hooks=[("blocks.1.hook_resid_post", steer)])
    assert steered != clean
    assert no_hooks_attached(m)
    assert generate(m, tok, "Mia", GREEDY) == clean
    for use_cache in (True, False):  # hooks apply on both paths, and the two agree
        assert generate(m, tok, "Mia", GREEDY, fwd_hooks=[("blocks.1.hook_resid_post", steer)], use_cache=use_cache) == steered


def test_hooks_are_removed_even_when_the_caller_stops_early(run):
    m, tok = run.model, run.tokenizer
    gen = steps(m, tok, "Mia", GREEDY, fwd_hooks=[("blocks.0.hook_resid_pre", lambda x, hook: x)])
    next(gen)
    assert no_hooks_attached(m)  # hooks live only while one token is being computed
    gen.close()
    assert no_hooks_attached(m)
