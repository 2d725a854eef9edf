"""Tests for llmcore.model: the two attention paths, hooks, the KV cache, counts, config.

Every model here is a tiny random GPT built in the test. The reference for the fast
path is the glass path (softmax written out by hand), for the cache the full forward
pass, and for the parameter count PyTorch's own `numel`.
"""

import doctest
import threading

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import llmcore.model as M
from llmcore.errors import UserError
from llmcore.model import GPT, PRESETS, GPTConfig, KVCache, config_from_preset, loss_fn, model_lock, parameter_breakdown

CFG = dict(d_vocab=50, n_ctx=32, d_model=32, n_layers=2, n_heads=2)
FUZZ = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


@pytest.fixture(scope="module")
def model():
    return GPT(GPTConfig(**CFG), seed=0).eval()


def tokens(batch=2, pos=10, seed=0):
    return torch.randint(0, CFG["d_vocab"], (batch, pos), generator=torch.Generator().manual_seed(seed))


def documented_hooks(cfg):
    """Every hook name the module docstring promises, with its shape for [batch=B, pos=T]."""

    def shapes(B, T):
        d, h, dh, dm = cfg.d_model, cfg.n_heads, cfg.d_head, cfg.d_mlp
        out = {"hook_embed": (B, T, d), "hook_pos_embed": (B, T, d), "ln_final.hook_normalized": (B, T, d)}
        for i in range(cfg.n_layers):
            b = f"blocks.{i}."
            for name in ("hook_resid_pre", "hook_resid_mid", "hook_resid_post", "hook_attn_out", "hook_mlp_out"):
                out[b + name] = (B, T, d)
            for name in ("hook_q", "hook_k", "hook_v", "hook_z"):
                out[b + "attn." + name] = (B, T, h, dh)
            for name in ("hook_attn_scores", "hook_pattern"):
                out[b + "attn." + name] = (B, h, T, T)
            for name in ("hook_pre", "hook_post"):
                out[b + "mlp." + name] = (B, T, dm)
        return out

    return shapes


def no_hooks_attached(model) -> bool:
    return all(not hp._forward_hooks and not hp._backward_hooks for hp in model.hook_dict.values())


# --- the two attention paths --------------------------------------------------------


def test_fast_path_equals_glass_path(model):
    t = tokens()
    fast = model(t)
    assert not any(b.attn._glass() for b in model.blocks)
    glass = model.run_with_hooks(t, fwd_hooks=[(lambda n: n.endswith("hook_pattern"), lambda x, hook: x)])
    assert torch.allclose(fast, glass, atol=1e-5)
    logits, _ = model.run_with_cache(t)
    assert torch.allclose(fast, logits, atol=1e-5)


def test_fast_path_equals_glass_path_in_training_mode_without_dropout():
    m = GPT(GPTConfig(**CFG), seed=3).train()  # dropout 0: training mode changes nothing
    t = tokens(seed=3)
    glass = m.run_with_hooks(t, fwd_hooks=[("blocks.1.attn.hook_attn_scores", lambda x, hook: x)])
    assert torch.allclose(m(t), glass, atol=1e-5)


def test_backward_hook_on_the_pattern_fires(model):
    """A gradient hook on hook_pattern must see the pattern's gradient, so the explicit path must run."""
    seen = []
    model.add_hook("blocks.0.attn.hook_pattern", lambda grad, hook: seen.append(tuple(grad.shape)), dir="bwd")
    try:
        assert model.blocks[0].attn._glass()
        model(tokens(batch=1, pos=5)).sum().backward()
    finally:
        model.reset_hooks(including_permanent=True)
        model.zero_grad(set_to_none=True)
    assert seen == [(1, model.cfg.n_heads, 5, 5)]  # [batch, head, query_pos, key_pos]
    assert no_hooks_attached(model)


def test_run_with_cache_has_every_documented_hook_with_its_shape(model):
    B, T = 3, 7
    _, cache = model.run_with_cache(tokens(B, T))
    want = documented_hooks(model.cfg)(B, T)
    missing = sorted(set(want) - set(cache.keys()))
    assert not missing, missing
    for name, shape in want.items():
        assert tuple(cache[name].shape) == shape, name
    # the pattern is a distribution over earlier positions only
    pattern = cache["blocks.0.attn.hook_pattern"]
    assert torch.allclose(pattern.sum(-1), torch.ones(B, model.cfg.n_heads, T), atol=1e-6)
    assert (pattern.triu(diagonal=1) == 0).all()
    assert no_hooks_attached(model)


def test_cached_activations_fit_together(model):
    """The cache tells one consistent story: each hook is computed from the ones before it."""
    t = tokens()
    logits, c = model.run_with_cache(t)
    assert torch.allclose(c["hook_embed"] + c["hook_pos_embed"], c["blocks.0.hook_resid_pre"])
    for i in range(model.cfg.n_layers):
        b = f"blocks.{i}."
        assert torch.allclose(c[b + "hook_resid_pre"] + c[b + "hook_attn_out"], c[b + "hook_resid_mid"], atol=1e-6)
        assert torch.allclose(c[b + "hook_resid_mid"] + c[b + "hook_mlp_out"], c[b + "hook_resid_post"], atol=1e-6)
    assert torch.allclose(model.unembed(c[f"blocks.{model.cfg.n_layers - 1}.hook_resid_post"]), logits, atol=1e-5)
    assert torch.allclose(model(t, stop_at_layer=1), c["blocks.1.hook_resid_pre"], atol=1e-6)


def test_per_head_weights_have_transformer_lens_shapes_and_meaning(model):
    cfg = model.cfg
    attn = model.blocks[0].attn
    for W in (attn.W_Q, attn.W_K, attn.W_V):
        assert W.shape == (cfg.n_heads, cfg.d_model, cfg.d_head)
    assert attn.W_O.shape == (cfg.n_heads, cfg.d_head, cfg.d_model)
    assert model.W_U.shape == (cfg.d_model, cfg.d_vocab)
    assert model.W_E.shape == (cfg.d_vocab, cfg.d_model) and model.W_pos.shape == (cfg.n_ctx, cfg.d_model)
    # the per-head views compute exactly what the fused matrix does
    _, c = model.run_with_cache(tokens())
    x = c["blocks.0.ln1.hook_normalized"]  # [B, T, d_model]
    b_q, b_k, b_v = attn.qkv.bias.view(3, cfg.n_heads, cfg.d_head)
    for W, b, name in ((attn.W_Q, b_q, "q"), (attn.W_K, b_k, "k"), (attn.W_V, b_v, "v")):
        mine = torch.einsum("btd,hde->bthe", x, W) + b
        assert torch.allclose(mine, c[f"blocks.0.attn.hook_{name}"], atol=1e-5), name
    out = torch.einsum("bthe,hed->btd", c["blocks.0.attn.hook_z"], attn.W_O) + attn.out.bias
    assert torch.allclose(out, c["blocks.0.hook_attn_out"], atol=1e-5)


# --- hooks ---------------------------------------------------------------------------


def test_run_with_hooks_ablation_changes_logits_and_leaves_no_hooks(model):
    t = tokens()
    clean = model(t)

    def zero(x, hook):
        return torch.zeros_like(x)

    ablated = model.run_with_hooks(t, fwd_hooks=[("blocks.0.hook_attn_out", zero)])
    assert not torch.allclose(clean, ablated, atol=1e-3)
    assert no_hooks_attached(model)
    assert torch.equal(model(t), clean)  # nothing left behind


def test_ablating_one_head_changes_only_what_it_should(model):
    t = tokens()

    def kill_head_0(z, hook):  # [B, T, head, d_head]
        z = z.clone()
        z[:, :, 0] = 0
        return z

    _, c = model.run_with_cache(t)
    cache = {}

    def keep(x, hook):
        cache[hook.name] = x.detach()

    ablated = model.run_with_hooks(t, fwd_hooks=[("blocks.1.attn.hook_z", kill_head_0), ("blocks.1.hook_resid_pre", keep)])
    assert torch.allclose(cache["blocks.1.hook_resid_pre"], c["blocks.1.hook_resid_pre"])  # upstream untouched
    assert not torch.allclose(ablated, model(t), atol=1e-4)


def test_hooked_context_attaches_then_removes(model):
    t = tokens()
    seen = []
    with model.hooked([("hook_embed", lambda x, hook: seen.append(x.shape))]) as m:
        m(t)
    assert seen == [t.shape + (model.cfg.d_model,)]
    assert no_hooks_attached(model)
    model(t)
    assert len(seen) == 1


def test_pos_embed_hook_can_be_edited_in_place_safely(model):
    """hook_pos_embed is [batch, pos, d_model] like TransformerLens; editing it changes the output."""
    t = tokens()
    clean = model(t)
    out = model.run_with_hooks(t, fwd_hooks=[("hook_pos_embed", lambda x, hook: x * 0)])
    assert not torch.allclose(out, clean, atol=1e-4)
    assert torch.equal(model(t), clean)


# --- KV cache ------------------------------------------------------------------------


@pytest.mark.parametrize("chunks", [[10], [1] * 10, [4, 1, 1, 4], [3, 7]])
@pytest.mark.parametrize("glass", [False, True])
def test_kv_cache_incremental_logits_equal_full_forward(model, chunks, glass):
    t = tokens(batch=2, pos=sum(chunks))
    full = model(t)
    cache = KVCache(model.cfg, batch=2)
    hooks = [(lambda n: n.endswith("hook_pattern"), lambda x, hook: x)] if glass else []
    parts, at = [], 0
    for n in chunks:
        parts.append(model.run_with_hooks(t[:, at : at + n], cache, fwd_hooks=hooks))
        at += n
        assert len(cache) == at
    assert torch.allclose(torch.cat(parts, dim=1), full, atol=1e-5)


def test_kv_cache_fills_the_context_exactly_then_refuses(model):
    n_ctx = model.cfg.n_ctx
    cache = KVCache(model.cfg, batch=1)
    t = tokens(batch=1, pos=n_ctx)
    incremental = model(t[:, : n_ctx - 1], cache)
    last = model(t[:, n_ctx - 1 :], cache)
    assert torch.allclose(torch.cat([incremental, last], 1), model(t), atol=1e-5)
    with pytest.raises(UserError, match="context"):
        model(t[:, :1], cache)


@pytest.mark.parametrize("glass", [False, True])
def test_per_row_cache_rows_at_their_own_positions(model, glass):
    # three texts of different lengths read into rows of one cache (row 1 through a view),
    # then a step of 2 tokens for all rows at once: each row's logits equal its own forward
    t = tokens(batch=3, pos=12)
    lengths = [3, 9, 5]
    cache = KVCache(model.cfg, batch=4, per_row=True)
    hooks = [(lambda n: n.endswith("hook_pattern"), lambda x, hook: x)] if glass else []
    for row, n in enumerate(lengths):
        model.run_with_hooks(t[row : row + 1, :n], cache.rows(row, row + 1), fwd_hooks=hooks)
    assert cache.pos.tolist() == [*lengths, 0] and len(cache) == 9
    step = torch.stack([t[row, n : n + 2] for row, n in enumerate(lengths)])  # [3, 2]
    out = model.run_with_hooks(step, cache.rows(0, 3), fwd_hooks=hooks)
    assert cache.pos.tolist() == [5, 11, 7, 0]
    for row, n in enumerate(lengths):
        assert torch.allclose(out[row], model(t[row : row + 1, : n + 2])[0, n:], atol=1e-5)
    with pytest.raises(UserError, match="context"):
        model(tokens(3, model.cfg.n_ctx - 10), cache.rows(0, 3))  # the longest row no longer fits


def test_context_overflow_raises_user_error(model):
    n_ctx = model.cfg.n_ctx
    model(tokens(1, n_ctx))  # exactly the context: fine
    with pytest.raises(UserError, match=f"context of {n_ctx}"):
        model(tokens(1, n_ctx + 1))


# --- parameter counts ----------------------------------------------------------------


@pytest.mark.parametrize(
    "kw",
    [CFG, dict(d_vocab=7, n_ctx=5, d_model=12, n_layers=3, n_heads=4, d_mlp=20), dict(d_vocab=2, n_ctx=1, d_model=1, n_layers=1, n_heads=1)],
)
def test_n_params_agrees_three_ways(kw):
    cfg = GPTConfig(**kw)
    m = GPT(cfg)
    assert m.n_params() == cfg.n_params() == sum(parameter_breakdown(cfg).values())
    assert m.n_params() == sum(p.numel() for p in m.state_dict().values())  # tied: W_E counted once


@settings(max_examples=15, deadline=None)
@given(
    d_vocab=st.integers(1, 40),
    n_ctx=st.integers(1, 20),
    n_heads=st.integers(1, 4),
    d_head=st.integers(1, 6),
    n_layers=st.integers(1, 3),
    d_mlp=st.integers(0, 30),
)
def test_n_params_fuzz(d_vocab, n_ctx, n_heads, d_head, n_layers, d_mlp):
    cfg = GPTConfig(d_vocab=d_vocab, n_ctx=n_ctx, d_model=n_heads * d_head, n_layers=n_layers, n_heads=n_heads, d_mlp=d_mlp)
    assert GPT(cfg).n_params() == cfg.n_params()


def test_breakdown_docstring_and_gpt2_small():
    assert parameter_breakdown(config_from_preset("storyworld", 1024)) == {
        "embeddings": 147456,
        "attention": 264192,
        "mlp": 526848,
        "norms": 2304,
    }
    assert config_from_preset("gpt2-124m", 0).n_params() == 124_439_808  # GPT-2 small, as published


@pytest.mark.parametrize("preset", list(PRESETS))
def test_every_preset_is_a_valid_config(preset):
    cfg = config_from_preset(preset, 1024)
    assert cfg.d_head * cfg.n_heads == cfg.d_model and cfg.n_params() > 0


def test_unknown_preset_is_user_error():
    with pytest.raises(UserError, match="nano"):
        config_from_preset("huge", 100)


# --- config --------------------------------------------------------------------------


def test_config_round_trip():
    cfg = GPTConfig(d_vocab=11, n_ctx=9, d_model=12, n_layers=3, n_heads=3, d_mlp=0, ln_eps=1e-6, dropout=0.1)
    d = cfg.to_dict()
    assert d["d_mlp"] == 48  # 0 means 4 * d_model, written out
    assert GPTConfig.from_dict(d) == cfg
    assert GPTConfig.from_dict({**d, "from_the_future": 1}) == cfg  # unknown keys ignored
    assert cfg.d_head == 4


@pytest.mark.parametrize("bad", [None, [], "d_vocab=3", {}, {"n_ctx": 4}])
def test_config_from_bad_dict_is_user_error(bad):
    with pytest.raises(UserError):
        GPTConfig.from_dict(bad)


INT_FIELDS = ("d_vocab", "n_ctx", "d_model", "n_layers", "n_heads", "d_mlp")
BAD_INT = st.one_of(
    st.integers(max_value=0),
    st.integers(min_value=1_000_001),
    st.floats(allow_nan=True),
    st.text(max_size=3),
    st.booleans(),
    st.none(),
    st.lists(st.integers(), max_size=2),
)
BAD_FLOAT = st.one_of(
    st.floats(max_value=-1e-12),
    st.floats(min_value=1.0),
    st.just(float("nan")),
    st.text(max_size=3),
    st.booleans(),
    st.none(),
    st.lists(st.floats(), max_size=2),
)


@FUZZ
@given(field=st.sampled_from(INT_FIELDS), value=BAD_INT)
def test_config_rejects_bad_sizes(field, value):
    if field == "d_mlp" and type(value) is int and value == 0:
        return  # 0 is the "4 x d_model" default
    with pytest.raises(UserError):
        GPTConfig(**{**CFG, field: value})


@FUZZ
@given(field=st.sampled_from(("dropout", "ln_eps")), value=BAD_FLOAT)
def test_config_rejects_bad_rates(field, value):
    with pytest.raises(UserError):
        GPTConfig(**{**CFG, field: value})


def test_config_rejects_heads_that_do_not_divide():
    with pytest.raises(UserError, match="n_heads"):
        GPTConfig(d_vocab=10, d_model=30, n_heads=4)
    with pytest.raises(UserError):
        GPTConfig(d_vocab=10, ln_eps=0.0)
    GPTConfig(d_vocab=10, dropout=0.0)  # the edges that are allowed
    GPTConfig(d_vocab=10, dropout=0.99)


# --- sharing one model between threads -----------------------------------------------


def test_threads_sharing_one_model_never_see_each_others_hooks(model):
    """8 threads hook one model at once; each must get what it gets alone (the model lock)."""
    n_threads, repeats = 8, 30

    def hook_for(i):
        layer = i % model.cfg.n_layers
        if i % 4 == 0:
            return (f"blocks.{layer}.hook_resid_post", lambda x, hook: torch.zeros_like(x))
        if i % 4 == 1:
            return (f"blocks.{layer}.attn.hook_pattern", lambda x, hook: torch.ones_like(x) / x.shape[-1])
        if i % 4 == 2:
            return (f"blocks.{layer}.mlp.hook_post", lambda x, hook: x * -1.0)
        return ("hook_embed", lambda x, hook: x * (1 + i))

    def work(i):
        t = tokens(batch=1, pos=5 + i, seed=i)
        logits, cache = model.run_with_cache(t, names_filter=lambda n: n.endswith(("hook_pattern", "hook_resid_post")))
        hooked = model.run_with_hooks(t, fwd_hooks=[hook_for(i)])
        return logits, cache["blocks.1.hook_resid_post"], cache["blocks.0.attn.hook_pattern"], hooked

    reference = [work(i) for i in range(n_threads)]
    for i in range(n_threads):  # every hook really does change the output
        assert not torch.allclose(reference[i][0], reference[i][3], atol=1e-4), i
    errors = []

    def thread(i):
        try:
            for _ in range(repeats):
                got = work(i)
                for a, b in zip(got, reference[i]):
                    if a.shape != b.shape or not torch.allclose(a, b, atol=1e-6):
                        errors.append(f"thread {i}: result differs from its single-threaded reference")
                        return
        except Exception as e:  # noqa: BLE001 - report any failure from the thread
            errors.append(f"thread {i}: {type(e).__name__}: {e}")

    threads = [threading.Thread(target=thread, args=(i,)) for i in range(n_threads)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors[:3]
    assert no_hooks_attached(model)


def test_model_lock_is_one_reentrant_lock_per_model(model):
    other = GPT(GPTConfig(**CFG))
    assert model_lock(model) is model_lock(model)
    assert model_lock(model) is not model_lock(other)
    with model_lock(model):
        with model_lock(model):  # re-entrant: run_with_cache inside hooked() must not deadlock
            model.run_with_cache(tokens(1, 3))


# --- the rest ------------------------------------------------------------------------


def test_init_is_seeded_and_gpt2_like():
    a, b, c = GPT(GPTConfig(**CFG), seed=5), GPT(GPTConfig(**CFG), seed=5), GPT(GPTConfig(**CFG), seed=6)
    assert torch.equal(a.W_E, b.W_E) and not torch.equal(a.W_E, c.W_E)
    assert (a.ln_final.w == 1).all() and (a.blocks[0].attn.qkv.bias == 0).all()
    assert abs(a.W_E.std().item() - 0.02) < 0.003
    assert a.blocks[0].mlp.fc_out.weight.std().item() < 0.015  # residual projections scaled down


def test_loss_of_uniform_logits_is_log_vocab():
    V = 50
    logits = torch.zeros(2, 3, V)
    assert abs(loss_fn(logits, torch.zeros(2, 3, dtype=torch.long)).item() - torch.log(torch.tensor(V)).item()) < 1e-6


def test_docstring_examples_run():
    result = doctest.testmod(M, extraglobs={"torch": torch}, optionflags=doctest.ELLIPSIS)
    assert result.failed == 0 and result.attempted > 0
