"""llmcore.hooks behaves as TransformerLens's HookPoint and HookedRootModule.

The same GPT is built twice: once as llmcore ships it (over llmcore.hooks), and once
from the same source file over TransformerLens's own classes. Each scenario below runs
on both, with the same weights, and records what a user would see (cache names and
values, outputs, which hooks ran with which names, gradients, hooks left behind); the
two records must be equal. Skipped only where TransformerLens is not installed (it is
in the test dependencies, not the app's).
"""

import importlib.util
import sys
import types

import pytest
import torch

import llmcore.model as ours_module
from llmcore import hooks

tl_hooks = pytest.importorskip("transformer_lens.hook_points", reason="TransformerLens is not installed")
tl_root = pytest.importorskip("transformer_lens.HookedRootModule")

CFG = dict(d_vocab=40, n_ctx=12, d_model=16, n_layers=2, n_heads=2, d_mlp=32)


def gpt_over_transformer_lens():
    """llmcore/model.py executed with `llmcore.hooks` standing for TransformerLens's classes."""
    shim = types.ModuleType("llmcore.hooks")
    shim.HookPoint, shim.HookedRootModule = tl_hooks.HookPoint, tl_root.HookedRootModule
    spec = importlib.util.spec_from_file_location("llmcore_model_over_tl", ours_module.__file__)
    module = importlib.util.module_from_spec(spec)
    saved = sys.modules.get("llmcore.hooks")
    sys.modules["llmcore.hooks"], sys.modules[spec.name] = shim, module  # dataclasses look their module up
    try:
        spec.loader.exec_module(module)
    finally:
        sys.modules["llmcore.hooks"] = saved
    return module


@pytest.fixture(scope="module")
def pair():
    tl = gpt_over_transformer_lens()
    ours = ours_module.GPT(ours_module.GPTConfig(**CFG), seed=0)
    theirs = tl.GPT(tl.GPTConfig(**CFG), seed=1)
    theirs.load_state_dict(ours.state_dict())
    assert isinstance(theirs, tl_root.HookedRootModule) and not isinstance(ours, tl_root.HookedRootModule)
    return ours, theirs


def tokens(batch=2, T=7):
    return torch.arange(batch * T).reshape(batch, T) % CFG["d_vocab"]


def attached(model) -> dict:
    """Hooks left on the model: name -> (forward, backward) counts, as the HookPoints list them."""
    return {n: (len(h.fwd_hooks), len(h.bwd_hooks)) for n, h in model.hook_dict.items() if h.fwd_hooks or h.bwd_hooks}


def same(a, b):
    """Records equal: tensors to 1e-6, everything else exactly."""
    if isinstance(a, torch.Tensor):
        assert isinstance(b, torch.Tensor) and a.shape == b.shape and torch.allclose(a, b, atol=1e-6), (a, b)
    elif isinstance(a, dict):
        assert list(a) == list(b), (list(a), list(b))
        for k in a:
            same(a[k], b[k])
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b), (a, b)
        for x, y in zip(a, b):
            same(x, y)
    else:
        assert a == b, (a, b)


def scenario_cache(model):
    logits, cache = model.run_with_cache(tokens())
    return {"logits": logits, "cache": dict(cache), "left": attached(model)}


def scenario_filters(model):
    out = {}
    for f in (None, "blocks.1.attn.hook_pattern", ["hook_embed", "blocks.0.hook_resid_post"],
              lambda n: n.endswith("hook_z")):
        _, cache = model.run_with_cache(tokens(1, 5), names_filter=f, remove_batch_dim=True)
        out[repr(f) if not callable(f) else "fn"] = dict(cache)
    return out


def scenario_hooks(model):
    """Hooks that look, hooks that replace, filters, the name each hook is given, the order they run."""
    seen = []

    def look(x, hook):
        seen.append((hook.name, tuple(x.shape), hook.layer() if hook.name.startswith("blocks") else None))

    def zero_head(z, hook):  # [batch, pos, head, d_head]
        z = z.clone()
        z[:, :, 0] = 0
        return z

    out = model.run_with_hooks(tokens(), fwd_hooks=[(lambda n: n.endswith(("hook_resid_post", "hook_pattern")), look),
                                                    ("blocks.1.attn.hook_z", zero_head), ("hook_embed", look)])
    return {"out": out, "seen": seen, "left": attached(model)}


def scenario_nesting(model):
    """hooks() blocks nest: the inner one's hooks go at its end, the outer's stay until its own."""
    calls = []
    with model.hooks(fwd_hooks=[("hook_embed", lambda x, hook: calls.append("outer"))]):
        with model.hooks(fwd_hooks=[("hook_embed", lambda x, hook: calls.append("inner"))]):
            model(tokens())
            inside = attached(model)
        model(tokens())
        between = attached(model)
    return {"calls": calls, "inside": inside, "between": between, "after": attached(model)}


def scenario_permanent_and_reset(model):
    calls = []
    model.add_perma_hook("blocks.0.hook_mlp_out", lambda x, hook: calls.append(("perma", hook.name)))
    model.run_with_hooks(tokens(), fwd_hooks=[("blocks.0.hook_mlp_out", lambda x, hook: calls.append(("temp", 1)))])
    kept = attached(model)
    model.run_with_hooks(tokens(), fwd_hooks=[("hook_pos_embed", lambda x, hook: x * 0)], reset_hooks_end=False)
    not_reset = attached(model)
    model.reset_hooks()
    after_reset = attached(model)
    model.reset_hooks(including_permanent=True)
    return {"calls": calls, "kept": kept, "not_reset": not_reset, "after_reset": after_reset, "end": attached(model)}


def scenario_prepend_and_ctx(model):
    order = []
    hp = model.hook_dict["blocks.1.hook_resid_pre"]

    def count(x, hook):
        hook.ctx["n"] = hook.ctx.get("n", 0) + 1
        order.append(("count", hook.ctx["n"]))

    hp.add_hook(count)
    hp.add_hook(lambda x, hook: order.append("first"), prepend=True)
    model(tokens())
    model(tokens())
    ctx = dict(hp.ctx)
    model.reset_hooks()  # clears contexts too
    return {"order": order, "ctx": ctx, "ctx_after": dict(hp.ctx), "left": attached(model)}


def scenario_incl_bwd(model):
    model.zero_grad()
    original = model.forward

    def scalar(tok):  # a scalar loss, as run_with_cache(incl_bwd=True) expects
        return original(tok).logsumexp(-1).mean()

    model.forward = scalar
    try:
        loss, cache = model.run_with_cache(tokens(), names_filter=lambda n: n.endswith("hook_resid_post"),
                                           incl_bwd=True)
    finally:
        del model.forward
    return {"loss": loss.detach(), "cache": dict(cache), "end": attached(model)}


SCENARIOS = [scenario_cache, scenario_filters, scenario_hooks, scenario_nesting, scenario_permanent_and_reset,
             scenario_prepend_and_ctx, scenario_incl_bwd]


@pytest.mark.parametrize("scenario", SCENARIOS, ids=lambda f: f.__name__.removeprefix("scenario_"))
def test_same_as_transformer_lens(pair, scenario):
    ours, theirs = pair
    same(scenario(ours), scenario(theirs))


def test_backward_hooks_same_as_transformer_lens(pair):
    ours, theirs = pair
    records = []
    for model in (ours, theirs):
        model.zero_grad()
        grads = {}

        def keep(g, hook, grads=grads):
            grads[hook.name] = g.clone()

        logits = model.run_with_hooks(tokens(), reset_hooks_end=False,
                                      bwd_hooks=[("blocks.0.hook_resid_post", keep),
                                                 ("blocks.1.hook_attn_out", lambda g, hook: g * 0.5)])  # replaces it
        logits.logsumexp(-1).mean().backward()
        left = attached(model)
        model.reset_hooks()
        records.append({"grads": grads, "left": left, "W_E.grad": model.W_E.grad.clone(), "end": attached(model)})
        model.zero_grad()
    same(*records)
    assert records[0]["left"] == {"blocks.0.hook_resid_post": (0, 1), "blocks.1.hook_attn_out": (0, 1)}


def test_same_hook_names_and_modules(pair):
    ours, theirs = pair
    assert list(ours.hook_dict) == list(theirs.hook_dict)
    assert list(ours.mod_dict) == list(theirs.mod_dict)
    assert all(hp.name == name for name, hp in ours.hook_dict.items())


def test_the_hooks_really_act(pair):
    """The comparisons above compare something: a replacing hook changes the output, a looking one does not."""
    ours, _ = pair
    plain = ours(tokens())
    assert torch.equal(ours.run_with_hooks(tokens(), fwd_hooks=[("hook_embed", lambda x, hook: None)]), plain)
    assert not torch.allclose(ours.run_with_hooks(tokens(), fwd_hooks=[("hook_embed", lambda x, hook: x * 0)]), plain)
    assert scenario_hooks(ours)["seen"]  # hooks ran
    assert attached(ours) == {}


def test_bad_arguments_fail_as_transformer_lens_does(pair):
    ours, theirs = pair
    for model in (ours, theirs):
        with pytest.raises(KeyError):
            model.run_with_hooks(tokens(), fwd_hooks=[("no.such.hook", lambda x, hook: x)])
        with pytest.raises(ValueError):
            model.run_with_cache(tokens(), names_filter=3)
        with pytest.raises(AssertionError):
            model.run_with_cache(tokens(2, 3), remove_batch_dim=True)
        with pytest.raises(ValueError):
            model.hook_dict["hook_embed"].add_hook(lambda x, hook: x, dir="sideways")
        model.reset_hooks(including_permanent=True)
        assert attached(model) == {}


def test_importing_the_model_does_not_import_transformer_lens():
    """The point of llmcore.hooks: a server imports neither TransformerLens nor what it pulls in."""
    import subprocess

    code = ("import sys, llmcore.model, llmcore.generate, llmcore.forward, llmcore.interpret.activations; "
            "print(sorted(m for m in ('transformer_lens', 'transformers', 'datasets') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
    assert hooks.HookPoint.__module__ == "llmcore.hooks"
