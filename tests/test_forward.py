"""llmcore.forward and llmcore.viz.model: the Model stage's walk through the forward pass.

Every step of the walk must be the model's own number (its hooks, its logits), the
last step must agree with the inference engine, and the pictures must follow the
config and the walk.
"""

import math
import re

import pytest
import torch

from llmcore.errors import UserError
from llmcore.forward import MAX_WALK_TOKENS, parts, walk
from llmcore.generate import next_token_probs
from llmcore.model import GPT, GPTConfig, config_from_preset
from llmcore.run import load_run
from llmcore.viz.model import architecture_figure, forward_figure, step_figure, stream_figure

PROMPT = "Mia went to the"


@pytest.fixture(scope="module")
def run(tiny_bpe_run):
    return load_run(tiny_bpe_run)


@pytest.mark.parametrize("layer,head", [(0, 0), (1, 1)])
def test_every_step_is_the_models_own_number(run, layer, head):
    w = walk(run.model, run.tokenizer, PROMPT, layer=layer, head=head)
    ids = torch.tensor([w.token_ids])
    logits, cache = run.model.run_with_cache(ids)
    for step in w.steps:
        if step.hook is None:
            continue
        want = cache[step.hook][0]
        if step.key in ("q", "k", "v", "z"):
            want = want[:, head]  # [pos, head, d_head] -> this head
        elif step.key in ("masked", "pattern"):
            want = want[head]  # [head, q, k] -> this head
        assert torch.equal(step.values, want.float()), step.key
    assert torch.equal(w.step("logits").values, logits[0].float())
    # The derived steps: ids, token + position, the unmasked scores, the softmax.
    assert w.step("tokens").values.tolist() == run.tokenizer.encode(PROMPT)
    assert torch.allclose(w.step("resid").values, w.step("embed").values + w.step("pos_embed").values)
    q, k = w.step("q").values, w.step("k").values
    assert torch.allclose(w.step("scores").values, q @ k.T / math.sqrt(q.shape[-1]))
    masked = w.step("masked").values
    future = torch.ones_like(masked, dtype=torch.bool).triu(1)
    assert torch.isinf(masked[future]).all() and torch.isfinite(masked[~future]).all()
    assert torch.allclose(w.step("pattern").values.sum(-1), torch.ones(len(ids[0])))
    # The detail is for the chosen block; the others are one step each, in order.
    others = [s.key for s in w.steps if s.key.startswith("block")]
    assert others == [f"block{i}" for i in range(run.model.cfg.n_layers) if i != layer]
    assert w.step("ln1").hook == f"blocks.{layer}.ln1.hook_normalized"


def test_the_last_step_agrees_with_the_inference_engine(run):
    w = walk(run.model, run.tokenizer, PROMPT)
    engine = next_token_probs(run.model, run.tokenizer, PROMPT, k=5)
    assert [t for _, t in w.top[:5]] == [t for t, _ in engine]
    assert [float(w.probs[i]) for i, _ in w.top[:5]] == pytest.approx([p for _, p in engine], abs=1e-6)
    assert w.next_token == engine[0][0]
    assert torch.allclose(w.step("probs").values, w.step("logits").values[-1].softmax(-1))


def test_the_walk_names_every_parameter_of_the_file(run):
    w = walk(run.model, run.tokenizer, PROMPT)
    used = {name for s in w.steps for name in s.params}
    assert used == set(run.model.state_dict())  # every tensor of the file is used once
    assert sum(w.param_counts[n] for n in used) == run.model.n_params()
    assert w.n_params(w.step("embed")) == run.model.W_E.numel()
    assert list(w.added) == ["embed"] + [p for p in parts(run.model.cfg) if p.startswith("block")]


@pytest.mark.parametrize("prompt,message", [
    ("", "empty"), ("   \n", "empty"), ("x" * 100_000, "shorten"), ("Mia " * (MAX_WALK_TOKENS + 5), "shorten"),
    (None, "must be text"), (b"bytes", "must be text"),
])
def test_bad_prompts_get_one_line(run, prompt, message):
    with pytest.raises(UserError, match=message):
        walk(run.model, run.tokenizer, prompt)


@pytest.mark.parametrize("kw", [{"layer": 2}, {"layer": -1}, {"head": 5}, {"head": 1.0}, {"layer": True}])
def test_layer_and_head_are_checked(run, kw):
    with pytest.raises(UserError, match="whole number"):
        walk(run.model, run.tokenizer, PROMPT, **kw)


def test_hostile_text_is_only_data(run):
    w = walk(run.model, run.tokenizer, "<script>alert(1)</script>")
    fig = forward_figure(w)
    assert len(fig.frames) == len(w.steps)  # it draws; the text travels as data, never as markup


def test_the_architecture_picture_follows_the_config():
    small = config_from_preset("nano", 1000)
    big = config_from_preset("gpt2-124m", 50257)
    def labels(fig):  # noqa: E306
        return [a.text for a in fig.layout.annotations]
    a, b = architecture_figure(small), architecture_figure(big, lit="block 5")
    assert sum("attention" in t for t in labels(a)) == small.n_layers
    assert any("50,256" in t for t in labels(b)) and any("more blocks" in t for t in labels(b))
    assert f"{small.n_params():,}" in a.layout.title.text and f"{big.n_params():,}" in b.layout.title.text
    assert len(b.data[-1].x) > 0  # block 5 is hidden among "more blocks", which lights up
    with pytest.raises(UserError, match="no part"):
        architecture_figure(small, lit="block 7")
    with pytest.raises(UserError, match="model config"):
        architecture_figure({"d_model": 4})


def test_the_picture_counts_add_up_to_the_model():
    cfg = GPTConfig(d_vocab=50, n_ctx=16, d_model=16, n_layers=3, n_heads=2)
    model = GPT(cfg, seed=0)
    text = " ".join(a.text for a in architecture_figure(cfg).layout.annotations)
    counts = [int(n.replace(",", "")) for n in re.findall(r"([\d,]+) (?:new )?parameters", text)]
    assert len(counts) == 2 + 2 * cfg.n_layers  # embedding, attention + MLP per block, final LayerNorm
    assert sum(counts) == model.n_params()


def test_every_step_draws_and_the_animation_has_a_frame_per_step(run):
    w = walk(run.model, run.tokenizer, PROMPT)
    for step in w.steps:
        fig = step_figure(w, step.key, projector=True)
        assert step.title in fig.layout.title.text and step.shape in fig.layout.title.text
    fig = forward_figure(w)
    assert [f.name for f in fig.frames] == [s.key for s in w.steps]
    assert len(fig.layout.sliders[0].steps) == len(w.steps)
    assert len(stream_figure(w).data[0].y) == len(w.added)
    with pytest.raises(UserError, match="no step"):
        step_figure(w, "nonsense")
