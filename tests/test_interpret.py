"""Tests for llmcore.interpret and llmcore.viz.interpret, on tiny models built here.

Hooks and caches (batched equals unbatched), the SAE (learns, unit-norm decoder, file
round trip, hostile files), feature scoring on a case with a known answer, the logit
lens against the model's own logits, steering at strength 0, cropped figures, and
bad settings as one-line UserErrors.
"""

import json
import math
import struct

import pytest
import torch

from llmcore.errors import UserError
from llmcore.interpret import activations as A
from llmcore.interpret import features as F
from llmcore.interpret import lens, steer
from llmcore.interpret.sae import (
    SAE,
    SAEConfig,
    evaluate_sae,
    load_sae,
    load_sae_file,
    save_sae,
    search_steering_for_run,
    train_sae,
    train_sae_for_run,
)
from llmcore.model import GPT, GPTConfig


@pytest.fixture(scope="module")
def run(tiny_run):
    from llmcore.run import load_run

    return load_run(tiny_run)


def tiny_sae(d_model=32, **kw) -> SAE:
    cfg = SAEConfig(hook_name="blocks.1.hook_resid_post", d_model=d_model, d_sae=64, k=4, **kw)
    return SAE(cfg).eval().requires_grad_(False)


def sparse_data(n=3000, d=16, n_dirs=48, k=3, seed=0):
    """Vectors that *are* sparse sums of unit directions: an SAE should find them."""
    g = torch.Generator().manual_seed(seed)
    dirs = torch.randn(n_dirs, d, generator=g)
    dirs /= dirs.norm(dim=1, keepdim=True)
    idx = torch.stack([torch.randperm(n_dirs, generator=g)[:k] for _ in range(n)])
    coef = torch.rand(n, k, generator=g) * 3 + 0.5
    return (coef[..., None] * dirs[idx]).sum(1) + 0.3  # [n, d]


# --- activations -------------------------------------------------------------------


def test_collect_batched_equals_unbatched_and_full_cache(run):
    ids = run.tokenizer.encode("Mia went to the park with her dog. " * 6)
    tokens = A.windows(ids, 16)  # [n, 16]
    hook = "blocks.0.hook_resid_post"
    one = A.collect(run.model, tokens, hook, batch_size=1)
    many = A.collect(run.model, tokens, hook, batch_size=4)
    assert one.shape == (len(tokens), 16, 32) and one.dtype == torch.float32
    torch.testing.assert_close(one, many)
    _, cache = run.model.run_with_cache(tokens)  # the full forward pass, every hook
    torch.testing.assert_close(many, cache[hook])
    kept = A.collect(run.model, tokens, hook, positions=slice(8, None))
    torch.testing.assert_close(kept, many[:, 8:])


def test_collect_stream_gives_every_token_its_context(run):
    ids = run.tokenizer.encode("Tom found a shiny key under the old bench. " * 4)  # > n_ctx = 32 tokens
    hook = "blocks.1.hook_resid_post"
    acts = A.collect_stream(run.model, ids, hook, context=16)
    assert acts.shape == (len(ids), 32)
    s = 40  # windows start every 16 tokens; position 40 comes from the one starting at 16
    starts = list(range(0, len(ids) - 32 + 1, 16))
    w = max(i for i, st in enumerate(starts) if st + 16 <= s)
    direct = A.collect(run.model, torch.tensor([ids[starts[w] : starts[w] + 32]]), hook)[0]
    torch.testing.assert_close(acts[s], direct[s - starts[w]])
    torch.testing.assert_close(acts[:32], A.collect(run.model, torch.tensor([ids[:32]]), hook)[0])


def test_token_offsets_cover_the_text(tiny_bpe_run, run):
    from llmcore.tokenizer import load_tokenizer

    bpe = load_tokenizer(tiny_bpe_run / "tokenizer.json")
    for tok in (bpe, run.tokenizer):
        for text in ("Mia ran to the park.", "caf\u00e9 \u2603 snow"):
            tt = A.token_offsets(tok, text)
            assert tt.starts[0] == 0 and tt.ends[-1] == len(text)
            assert all(a <= b for a, b in zip(tt.starts, tt.ends)) and tt.starts[1:] == tt.ends[:-1]
    tt = A.token_offsets(bpe, "Mia ran")
    assert "".join("Mia ran"[a:b] for a, b in zip(tt.starts, tt.ends)) == "Mia ran"


def test_unknown_hook_and_layer_are_user_errors(run):
    with pytest.raises(UserError, match="unknown hook"):
        A.check_hook(run.model, "blocks.9.hook_resid_post")
    with pytest.raises(UserError, match="unknown hook"):
        A.collect(run.model, torch.zeros(1, 4, dtype=torch.long), "blocks.0.hook_nope")
    for bad in (2, -1, 1.5, True):
        with pytest.raises(UserError, match="layer"):
            A.resid_hook(run.model, bad)


# --- attention and logit lens ------------------------------------------------------


def test_logit_lens_last_stage_equals_model_logits(run):
    text = "Once upon a time, there was a kind girl named Mia."
    ll = lens.logit_lens(run.model, run.tokenizer, text, k=3)
    ids = torch.tensor([run.tokenizer.encode(text)[-32:]])
    torch.testing.assert_close(ll.logits[-1], run.model(ids)[0].float())
    assert ll.stages[0] == "embed" and len(ll.stages) == 3 and ll.top_ids.shape == (3, 32, 3)
    assert len(ll.at(-1)) == 3 and ll.next_probs.shape == (3, 31)
    with pytest.raises(UserError):
        ll.at(99)


def test_attention_rows_sum_to_one_and_figure_stays_cropped():
    from llmcore.tokenizer import CharTokenizer
    from llmcore.viz.interpret import attention_figure, attention_heads_figure

    text = "The fog rolled over the bay, and the bridge towers showed. " * 4  # 236 characters
    tok = CharTokenizer.train(text)
    model = GPT(GPTConfig(d_vocab=tok.vocab_size, n_ctx=256, d_model=16, n_layers=2, n_heads=2), seed=0).eval()
    attn = lens.attention_patterns(model, tok, text)
    assert attn.patterns.shape == (2, 2, len(text), len(text))
    torch.testing.assert_close(attn.patterns.sum(-1), torch.ones(2, 2, len(text)))
    fig = attention_figure(attn, 1, 0, max_tokens=40)
    assert fig.data[0].z.shape == (40, 40)
    assert len(fig.layout.xaxis.ticktext) == 40 and fig.layout.xaxis.ticktext[-1] == "\u00b7"  # the last space
    assert "196..235 of 236" in fig.layout.title.text
    assert attention_figure(attn, 0, 1, max_tokens=10, start=0).data[0].z.shape == (10, 10)
    assert len(attention_heads_figure(attn, 0).data) == 2
    for bad in (dict(layer=2, head=0), dict(layer=0, head=5)):
        with pytest.raises(UserError):
            attention_figure(attn, **bad)


# --- the sparse autoencoder --------------------------------------------------------


@pytest.mark.parametrize("activation", ["topk", "relu"])
def test_sae_learns_and_keeps_unit_decoder(activation):
    x = sparse_data()
    kw = dict(k=3) if activation == "topk" else dict(l1_coeff=0.3)
    cfg = SAEConfig(hook_name="h", d_model=16, d_sae=64, activation=activation, steps=300, batch_size=256, lr=1e-2, **kw)
    untrained = SAE(cfg)
    with torch.no_grad():
        untrained.b_dec.copy_(x.mean(0))
    sae = train_sae(x, cfg)
    err = lambda s: float((s(x) - x).pow(2).sum(-1).mean().detach())  # noqa: E731
    fvu = err(sae) / float(x.var(0).sum())
    assert err(sae) < 0.5 * err(untrained) and fvu < 0.3, fvu
    torch.testing.assert_close(sae.W_dec.norm(dim=1), torch.ones(64))
    f = sae.encode(x)
    assert (f >= 0).all()
    if activation == "topk":
        assert int((f > 0).sum(-1).max()) <= 3


def test_fold_scale_makes_the_sae_read_raw_activations():
    sae = tiny_sae(d_model=16)
    with torch.no_grad():
        sae.b_enc.uniform_(-0.5, 0.5)
        sae.b_dec.normal_()
    x = torch.randn(10, 16) * 7
    f_scaled, xhat_scaled = sae.encode(x * 3.0), sae(x * 3.0)
    sae.fold_scale(3.0)
    torch.testing.assert_close(sae.encode(x) * 3.0, f_scaled)
    torch.testing.assert_close(sae(x) * 3.0, xhat_scaled)


def test_evaluate_sae_metrics_are_sane(run):
    sae = tiny_sae()
    tokens = A.windows(run.tokenizer.encode("Mia and Leo walked across the bridge. " * 8), 32)
    m = evaluate_sae(run.model, sae, tokens)
    assert m["l0"] <= 4 and 0 <= m["dead_fraction"] <= 1 and m["variance_explained"] <= 1
    assert m["n_tokens"] == len(tokens) * 31
    assert math.isfinite(m["loss_recovered"])


def test_sae_file_round_trip(tmp_path):
    sae = tiny_sae()
    path = tmp_path / "sae.safetensors"
    save_sae(sae, path, metrics={"l0": 4.0}, model_sha256="abc")
    back, meta = load_sae_file(path)
    assert back.cfg == sae.cfg and meta["metrics"] == {"l0": 4.0} and meta["model_sha256"] == "abc"
    for name in ("W_enc", "b_enc", "W_dec", "b_dec"):
        torch.testing.assert_close(getattr(back, name), getattr(sae, name))


def _write_sae(path, tensors, meta):
    from safetensors.torch import save_file

    save_file(tensors, str(path), metadata=meta)


def test_hostile_sae_files_are_user_errors(tmp_path):
    sae = tiny_sae()
    good = {n: getattr(sae, n).detach().contiguous() for n in ("W_enc", "b_enc", "W_dec", "b_dec")}
    meta = {"format": "llmcore-sae", "format_version": "1", "config": json.dumps(sae.cfg.to_dict())}
    nan = dict(good, b_enc=torch.full((64,), float("nan")))
    cases = {
        "empty": b"",
        "pickle": b"\x80\x04\x95" + b"\0" * 64,
        "huge_header": struct.pack("<Q", 10**12) + b"{}",
        "not_json": struct.pack("<Q", 4) + b"nope",
    }
    for name, data in cases.items():
        (tmp_path / name).write_bytes(data)
    _write_sae(tmp_path / "no_format", good, {})
    _write_sae(tmp_path / "future", good, dict(meta, format_version="99"))
    _write_sae(tmp_path / "bad_config", good, dict(meta, config="{"))
    _write_sae(tmp_path / "bad_value", good, dict(meta, config=json.dumps(dict(sae.cfg.to_dict(), k=0))))
    _write_sae(tmp_path / "nan", nan, meta)
    _write_sae(tmp_path / "wrong_shape", dict(good, W_dec=torch.zeros(3, 3)), meta)
    _write_sae(tmp_path / "missing", {k: v for k, v in good.items() if k != "b_dec"}, meta)
    _write_sae(tmp_path / "not_unit", dict(good, W_dec=good["W_dec"] * 2), meta)
    _write_sae(tmp_path / "int", dict(good, b_dec=torch.zeros(32, dtype=torch.int32)), meta)
    full = tmp_path / "full"
    _write_sae(full, good, meta)
    (tmp_path / "truncated").write_bytes(full.read_bytes()[:-100])
    for p in sorted(tmp_path.iterdir()):
        if p.name != "full":
            with pytest.raises(UserError):
                load_sae_file(p)
    load_sae_file(full)


def test_train_sae_for_run_is_deterministic_and_checked_against_its_model(tiny_run, tmp_path):
    import shutil

    from llmcore.run import load_run

    folder = tmp_path / "run"
    shutil.copytree(tiny_run, folder)
    with pytest.raises(UserError, match="no sae.safetensors"):
        load_sae(folder)
    events = []
    kw = dict(d_sae=64, k=4, steps=30, batch_size=128, n_tokens=2048, label=False)
    path = train_sae_for_run(folder, layer=1, callbacks=(events.append,), **kw)
    assert path == folder / "sae.safetensors" and events[0].kind == "collect" and events[-1].kind == "done"
    assert any(e.kind == "step" for e in events)
    sae = load_sae(load_run(folder))
    assert sae.cfg.hook_name == "blocks.1.hook_attn_out" and 0 <= sae.metrics["variance_explained"] <= 1
    again = train_sae_for_run(folder, layer=1, out=tmp_path / "again.safetensors", **kw)
    torch.testing.assert_close(load_sae_file(again)[0].W_dec, sae.W_dec, rtol=0, atol=0)
    with pytest.raises(UserError, match="layer"):
        train_sae_for_run(folder, layer=5, **kw)
    from llmcore.params import save_params

    save_params(GPT(load_run(folder).model.cfg, seed=9), folder / "model.safetensors")  # a different model
    with pytest.raises(UserError, match="different model"):
        load_sae(folder)


# --- features and concepts ---------------------------------------------------------


def test_concept_scoring_on_a_known_answer():
    from llmcore.corpus import Span

    # Ten tokens of 3 characters each; the concept spans characters 7..16 -> tokens 2, 3, 4, 5.
    tt = A.TokenizedText("x" * 30, list(range(10)), list(range(0, 30, 3)), list(range(3, 33, 3)))
    spans = [Span(7, 16, "ocean"), Span(27, 29, "rain")]
    labels = F.token_labels(tt, spans, "ocean")
    assert labels.tolist() == [False, False, True, True, True, True, False, False, False, False]
    assert F.token_labels(tt, spans, "rain").tolist() == [False] * 9 + [True]
    acts = torch.tensor([0.0, 0.9, 2.0, 3.0, 0.5, 2.5, 0.0, 1.0, 0.0, 0.0])
    s = F.score(acts, labels, 0.7)  # predicts tokens 1, 2, 3, 5, 7: tp 3, fp 2, fn 1
    assert (s["tp"], s["fp"], s["fn"]) == (3, 2, 1)
    assert s["precision"] == 3 / 5 and s["recall"] == 3 / 4 and s["f1"] == 6 / 9
    threshold, f1 = F.best_threshold(acts, labels)  # best: top 3 (2.0, 2.5, 3.0) -> F1 = 6 / 7
    assert threshold == (2.0 + 1.0) / 2 and f1 == pytest.approx(6 / 7)
    assert F.score(acts, labels, threshold)["f1"] == pytest.approx(6 / 7)
    many = torch.stack([torch.zeros(10), acts, labels.float() * 5], dim=1)  # feature 2 is perfect
    best = F.screen(many, labels)
    assert int(best.argmax()) == 2 and float(best[2]) == pytest.approx(1.0)
    assert F.best_threshold(torch.zeros(10), labels) == (float("inf"), 0.0)


def test_label_features_and_describe_feature(run):
    from llmcore.corpus import storyworld

    sae = tiny_sae()
    small = storyworld(seed=0, n_chars=6000)  # (holds bridge and rain stories)
    matches = F.label_features(run, sae, ["golden_gate_bridge", "rain"], label_corpus=small, eval_corpus=small)
    assert set(matches) == {"golden_gate_bridge", "rain"}
    for m in matches.values():
        assert 0 <= m.precision <= 1 and 0 <= m.recall <= 1 and 0 <= m.f1 <= 1 and 0 <= m.feature < 64
    with pytest.raises(UserError, match="unknown concept"):
        F.label_features(run, sae, ["dragons"], label_corpus=small, eval_corpus=small)
    enc = F.encode_text(run, sae, small.text[:2000])
    sae.metrics = {"concepts": {"rain": dict(matches["rain"].to_dict(), f1=0.9)}}
    d = F.describe_feature(run, sae, matches["rain"].feature, enc, n_contexts=3)
    json.dumps(d)
    assert d["label"] == "rain" and len(d["logits"]["up"]) == 10 and len(d["contexts"]) <= 3
    for c in d["contexts"]:
        assert len(c["pieces"]) == len(c["acts"]) and c["acts"][c["peak"]] == pytest.approx(c["max"], abs=1e-4)
    for bad in (64, -1, 2.0, "3"):
        with pytest.raises(UserError, match="feature"):
            F.describe_feature(run, sae, bad, enc)


def test_shipped_sae_finds_the_planted_concepts():
    """The issue's goals, re-scored from scratch on the shipped run (not read from its metadata):
    the bridge at precision and recall >= 0.9, six of eight concepts at F1 >= 0.8."""
    from llmcore.run import load_run, shipped_runs

    if "storyworld" not in shipped_runs():
        pytest.skip("the shipped run llmcore/assets/storyworld is not built yet (scripts/build_assets.py)")
    run = load_run("storyworld")
    matches = F.label_features(run, load_sae(run))
    bridge = matches["golden_gate_bridge"]
    assert bridge.precision >= 0.9 and bridge.recall >= 0.9, bridge
    assert sum(m.f1 >= 0.8 for m in matches.values()) >= 6, {c: round(m.f1, 3) for c, m in matches.items()}


# --- steering ----------------------------------------------------------------------


def test_add_at_strength_zero_equals_plain_generation(run):
    from llmcore.generate import Sampling, generate

    sae = tiny_sae()
    s = Sampling(temperature=0.9, max_new_tokens=20, seed=3)
    plain = generate(run.model, run.tokenizer, "Once upon a time", s)
    hook = steer.steering_hook(sae, 5, 0.0, mode="add")
    assert generate(run.model, run.tokenizer, "Once upon a time", s, fwd_hooks=[hook]) == plain
    a, b = steer.steer_side_by_side(run, sae, 5, 0.0, "Mia went to the", s, mode="add")
    assert a == b
    _, strong = steer.steer_side_by_side(run, sae, 5, 200.0, "Mia went to the", s, mode="add")
    assert strong != a


def test_clamp_hook_moves_only_along_the_feature(run):
    sae = tiny_sae()
    name, fn = steer.clamp_hook(sae, 7, 4.0)
    resid = torch.randn(2, 5, 32)
    out = fn(resid, None)
    delta = out - resid  # [2, 5, 32], every row a multiple of W_dec[7]
    expected = (4.0 - sae.encode(resid)[..., 7])[..., None] * sae.W_dec[7]
    torch.testing.assert_close(delta, expected)
    assert name == "blocks.1.hook_resid_post"


def test_raise_lifts_the_feature_but_never_lowers_it():
    sae = tiny_sae()
    resid = torch.randn(4, 6, 32) * 3
    act = sae.encode(resid)[..., 7]  # [4, 6]
    s = float(act[act > 0].median()) if (act > 0).any() else 0.5  # some positions above, some below
    _, fn = steer.steering_hook(sae, 7, s, "raise")
    delta = fn(resid, None) - resid
    torch.testing.assert_close(delta, (act.clamp(min=s) - act)[..., None] * sae.W_dec[7])
    assert (delta[act >= s] == 0).all() and (delta[act < s].norm(dim=-1) > 0).all()


def test_bad_steering_settings_are_user_errors():
    sae = tiny_sae()
    assert tiny_sae().metrics == {}  # declared on every SAE: nothing measured yet
    sae.metrics = {"concepts": {"golden_gate_bridge": {"feature": 3}}}
    assert F.resolve_feature(sae, "golden_gate_bridge") == 3 and F.resolve_feature(sae, "12") == 12
    for feature, strength, mode in [(64, 1.0, "clamp"), (-1, 1.0, "clamp"), ("dragons", 1.0, "clamp"),
                                    (1, float("nan"), "clamp"), (1, float("inf"), "add"), (1, 1e6, "clamp"),
                                    (1, "5", "add"), (1, 1.0, "sideways")]:
        with pytest.raises(UserError):
            steer.steering_hook(sae, feature, strength, mode)
    with pytest.raises(UserError):
        steer.add_hook("blocks.0.hook_resid_post", torch.tensor([1.0, float("nan")]), 1.0)


def test_steering_eval_counts_mentions(run):
    from llmcore.generate import Sampling

    sae = tiny_sae()
    r = steer.steering_eval(run, sae, 2, 3.0, prompts=("Mia", "One day,"), seeds=range(2),
                            sampling=Sampling(max_new_tokens=6))
    assert r["n"] == 4 and set(r) >= {"plain", "steered", "prompted"}
    for cond in ("plain", "steered", "prompted"):
        assert 0 <= r[cond]["mention_rate"] <= 1 and math.isfinite(r[cond]["fluency_loss"])


# --- the other figures -------------------------------------------------------------


def test_interpret_figures_build(run):
    from llmcore.viz import interpret as V

    ll = lens.logit_lens(run.model, run.tokenizer, "Once upon a time, there was a girl named Mia who loved music.")
    fig = V.logit_lens_figure(ll, max_tokens=16)
    assert fig.data[0].z.shape == (3, 16) and len(fig.layout.xaxis.ticktext) == 16
    sae = tiny_sae()
    enc = F.encode_text(run, sae, "Mia went to the park. The fog rolled over the bay.")
    f = int(enc.acts.sum(0).argmax())
    V.feature_histogram_figure(F.activation_histogram(enc, f), f)
    V.feature_logits_figure(F.logit_effects(run.model, run.tokenizer, sae, f), f)
    html = V.contexts_html(F.top_contexts(enc, run.tokenizer, f, n=2))
    assert "llmcore-token" in html and "<script" not in html
    match = {"ocean": {"precision": 0.9, "recall": 0.8, "f1": 0.85}}
    assert len(V.concepts_figure(match).data) == 3
    result = {c: {"mention_rate": r, "fluency_loss": 1.0} for c, r in (("plain", 0), ("prompted", 0.5), ("steered", 1))}
    V.steering_figure(result | {"n": 50, "settings": {"concept": "golden_gate_bridge", "feature": 3}})
    with pytest.raises(UserError):
        V.logit_lens_figure(ll, max_tokens=0)


def test_find_steering_picks_a_readable_setting(run):
    from llmcore.generate import Sampling

    sae = tiny_sae()
    r = steer.find_steering(run, sae, "golden_gate_bridge", n_candidates=1, factors=(1.0, 2.0), prompts=("Mia",),
                            seeds=range(1), sampling=Sampling(max_new_tokens=4))
    assert 1 <= len({t["feature"] for t in r["tried"]}) <= 2 and r["mode"] == "raise"
    assert {"feature", "strength", "mention_rate", "fluency_loss", "plain_fluency_loss", "readable"} <= set(r)
    assert [t["x_peak"] for t in r["tried"] if t["stories"] == 1][-2:] == [1.0, 2.0]  # the fine sweep, on one feature
    assert any(t["feature"] == r["feature"] and t["strength"] == r["strength"] for t in r["tried"])
    sae.metrics = {"concepts": {"golden_gate_bridge": {"feature": 9}}, "steering": {"golden_gate_bridge": r}}
    assert F.resolve_feature(sae, "golden_gate_bridge") == r["feature"]
    assert F.resolve_feature(sae, "golden_gate_bridge", purpose="label") == 9


def test_one_default_strength_rule(run):
    """A concept's steering feature gets its stored strength and mode by name or by number;
    any other feature STRENGTH_FACTOR x its peak on held-out text; one that never fires, a UserError."""
    from llmcore.corpus import storyworld

    sae = tiny_sae()
    enc = F.encode_text(run, sae, storyworld(seed=0, n_chars=3000).text)
    fires = enc.acts.max(0).values  # [d_sae]
    on, off = int(fires.argmax()), int(fires.argmin())
    pick = {"feature": on, "strength": 1.25, "mode": "clamp"}
    sae.metrics = {"concepts": {"golden_gate_bridge": {"feature": 9}}, "steering": {"golden_gate_bridge": pick}}
    for ask in ("golden_gate_bridge", on, str(on)):
        rule = F.default_strength(run, sae, ask, enc)
        assert (rule["strength"], rule["mode"]) == (1.25, "clamp") and "golden_gate_bridge" in rule["why"]
    other = int(fires.clone().index_fill_(0, torch.tensor([on]), -1).argmax())  # fires, but no stored pick
    rule = F.default_strength(run, sae, other, enc)
    assert rule["mode"] == F.DEFAULT_MODE and rule["strength"] == pytest.approx(F.STRENGTH_FACTOR * float(fires[other]), abs=1e-3)
    if float(fires[off]) == 0:
        with pytest.raises(UserError, match="never fires"):
            F.default_strength(run, sae, off, enc)
    # steer_side_by_side with no strength uses the rule; a wrong feature is still a UserError
    from llmcore.generate import Sampling

    plain, steered = steer.steer_side_by_side(run, sae, "golden_gate_bridge", None, "Mia", Sampling(max_new_tokens=3, seed=1))
    assert isinstance(steered, str)
    with pytest.raises(UserError):
        F.default_strength(run, sae, 64, enc)


def test_search_steering_for_run_keeps_the_weights(tiny_run, tmp_path):
    import shutil

    from llmcore.generate import Sampling

    folder = tmp_path / "run"
    shutil.copytree(tiny_run, folder)
    train_sae_for_run(folder, layer=1, d_sae=64, k=4, steps=20, batch_size=128, n_tokens=2048, label=False)
    before = load_sae(folder)
    picks = search_steering_for_run(folder, n_candidates=1, factors=(0.5,), prompts=("Mia",), seeds=range(1),
                                            sampling=Sampling(max_new_tokens=3))
    after = load_sae(folder)
    assert after.metrics["steering"] == picks and set(picks) == {"golden_gate_bridge"}
    assert {k: v for k, v in after.metrics.items() if k != "steering"} == {
        k: v for k, v in before.metrics.items() if k != "steering"}
    for name in ("W_enc", "b_enc", "W_dec", "b_dec"):
        torch.testing.assert_close(getattr(after, name), getattr(before, name), rtol=0, atol=0)


def test_features_report_is_json(run):
    sae = tiny_sae()
    sae.metrics = {"l0": 4.0, "concepts": {"ocean": {"feature": 3, "precision": 0.5, "recall": 0.5, "f1": 0.5}}}
    r = F.report(run, sae, concept="ocean", top=2, n_chars=3000)
    json.dumps(r)
    assert r["metrics"] == {"l0": 4.0} and r["feature"]["feature"] == 3 and r["feature"]["label"] == "ocean"
    assert "feature" not in F.report(run, sae)
    text = F.format_report(r)
    assert "ocean" in text and "pushes up" in text
    with pytest.raises(UserError):
        F.report(run, sae, top=0)
