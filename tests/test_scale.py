"""Tests for llmcore.scale and llmcore.viz.scale: the explainer's numbers, reproduced."""

import json
import math

import pytest

from llmcore import scale
from llmcore.errors import UserError
from llmcore.scale import (
    ACCELERATORS,
    PRESETS,
    ModelShape,
    cost_usd,
    decode_tokens_per_s,
    estimate,
    file_size_bytes,
    gpu_hours,
    llama2_70b_check,
    shape_from_llmcore,
    training_flops,
    wall_clock_days,
)

A100 = ACCELERATORS["a100-80gb"]
GPT2_CONFIG = {"d_model": 768, "n_layers": 12, "n_heads": 12, "d_mlp": 3072,
               "d_vocab": 50257, "n_ctx": 1024}


# --- parameter counts against the published ones --------------------------------

def test_gpt2_124m_from_llmcore_config_matches_hugging_face():
    shape = shape_from_llmcore({**GPT2_CONFIG, "dropout": 0.1}, "gpt2")  # extra keys ignored
    assert shape.computed_params() == 124_439_808
    assert PRESETS["gpt2-124m"].computed_params() == 124_439_808


@pytest.mark.parametrize("name, exact", [
    ("llama-2-7b", 6_738_415_616),
    ("llama-2-13b", 13_015_864_320),
    ("llama-2-70b", 68_976_648_192),
])
def test_llama_2_counts_match_released_checkpoints(name, exact):
    assert PRESETS[name].computed_params() == exact


def test_every_preset_shape_agrees_with_its_reported_count():
    for shape in PRESETS.values():
        assert shape.computed_params() == pytest.approx(shape.n_params, rel=0.04), shape.name


def test_reported_count_is_used_when_the_shape_is_incomplete():
    shape = ModelShape("rumour", n_params=1.8e12)
    assert shape.computed_params() is None and shape.param_count() == 1.8e12


def test_shape_round_trips_through_a_dict():
    shape = PRESETS["llama-2-70b"]
    assert ModelShape.from_dict(json.loads(json.dumps(shape.to_dict()))) == shape
    with pytest.raises(UserError, match="Unknown model shape keys"):
        ModelShape.from_dict({**shape.to_dict(), "n_experts": 8})


@pytest.mark.parametrize("kwargs", [
    {"d_model": -1, "n_params": 1e6},
    {"n_params": 0},
    {"n_params": 1e30},
    {"n_layers": 2.5, "n_params": 1e6},
    {"d_model": 100, "n_heads": 3, "n_params": 1e6},
    {"arch": "rnn", "n_params": 1e6},
    {"d_model": 64},  # neither a count nor a full shape
])
def test_absurd_shapes_are_refused(kwargs):
    with pytest.raises(UserError):
        ModelShape("bad", **kwargs)


def test_llmcore_config_missing_a_key_is_refused():
    with pytest.raises(UserError, match="n_ctx"):
        shape_from_llmcore({k: v for k, v in GPT2_CONFIG.items() if k != "n_ctx"}, "x")


# --- the identities, one by one ----------------------------------------------------

def test_70b_in_bf16_is_exactly_140_gb():
    assert file_size_bytes(70e9, "bf16") == 140e9
    assert file_size_bytes(70e9, "int4") == 35e9
    with pytest.raises(UserError, match="bf16"):
        file_size_bytes(70e9, "fp8")


def test_llama_2_70b_gpu_hours_from_6nd():
    flops = training_flops(PRESETS["llama-2-70b"].param_count(), 2e12)
    assert flops == pytest.approx(6 * 68_976_648_192 * 2e12)
    assert gpu_hours(flops, A100, 0.43) == pytest.approx(1_720_320, rel=0.10)
    # Even taking the rounded 70B, the default MFU stays within 10% of the paper.
    assert gpu_hours(training_flops(70e9, 2e12), A100) == pytest.approx(1_720_320, rel=0.10)


def test_paper_gpu_hours_on_6000_gpus_take_12_days():
    assert wall_clock_days(1_720_320, 6000) == pytest.approx(11.95, abs=0.01)


def test_paper_gpu_hours_cost_about_2m():
    assert cost_usd(1_720_320, A100.price_per_hour) == pytest.approx(2e6, rel=0.15)


def test_70b_decodes_about_10x_slower_than_7b():
    fast = decode_tokens_per_s(PRESETS["llama-2-7b"].param_count(), "bf16", A100.mem_bandwidth)
    slow = decode_tokens_per_s(PRESETS["llama-2-70b"].param_count(), "bf16", A100.mem_bandwidth)
    assert fast / slow == pytest.approx(68.98 / 6.74, rel=0.01)
    assert fast / slow == pytest.approx(10, rel=0.10)
    # Batch b makes b tokens per weight read.
    assert decode_tokens_per_s(70e9, "bf16", 2e12, batch=8) == pytest.approx(8 * 2e12 / 140e9)


def test_2t_tokens_are_about_10_tb_of_text():
    assert scale.data_bytes(2e12, 5.0) == 10e12
    assert scale.data_bytes(2e12) == pytest.approx(10e12, rel=0.25)


@pytest.mark.parametrize("call", [
    lambda: wall_clock_days(1000, -5),
    lambda: wall_clock_days(1000, 0),
    lambda: gpu_hours(1e20, A100, 0.0),
    lambda: gpu_hours(1e20, A100, 1.5),
    lambda: cost_usd(-1, 1.0),
    lambda: training_flops(float("nan"), 1e9),
    lambda: gpu_hours(1e20, "tpu-v9"),
])
def test_nonsense_raises_user_error(call):
    with pytest.raises(UserError):
        call()


# --- the explainer's claims, together -----------------------------------------------

def test_llama2_70b_check_reproduces_every_claim():
    check = llama2_70b_check()
    assert check["ok"], [c for c in check["claims"] if not c["ok"]]
    by_id = {c["id"]: c for c in check["claims"]}
    assert set(by_id) == {"file_size", "gpu_hours", "days", "cost", "decode_ratio", "data"}
    assert by_id["file_size"]["computed"] == 140e9
    assert 0.40 <= check["implied"]["mfu"] <= 0.45
    for c in check["claims"]:
        assert set(c) >= {"claim", "computed", "reported", "tolerance", "ok"}
    json.dumps(check)


def test_llama2_70b_check_fails_honestly_with_a_bad_assumption():
    check = llama2_70b_check(mfu=0.2)  # half the utilisation doubles the hours
    assert not {c["id"]: c for c in check["claims"]}["gpu_hours"]["ok"]
    assert not check["ok"]


# --- estimate: the calculator behind `llmcore scale` ----------------------------------

def test_estimate_llama_2_70b_defaults():
    est = estimate("llama-2-70b")
    r = est["results"]
    assert r["gpu_hours"]["value"] == pytest.approx(1_720_320, rel=0.10)
    assert r["wall_clock_days"]["value"] == pytest.approx(12, rel=0.05)
    assert r["cost"]["value"] == pytest.approx(2e6, rel=0.15)
    assert r["file_size_gb"]["value"] == pytest.approx(137.95, abs=0.01)
    assert r["gpus_to_hold_weights"]["value"] == 2
    assert est["reported"]["gpu_hours"]["value"] == 1_720_320
    assert {"kaplan", "model", "accelerator"} <= set(est["sources"])
    for q in [*est["inputs"].values(), *est["results"].values()]:
        assert set(q) >= {"value", "unit"}
    assert json.loads(json.dumps(est)) == est


def test_estimate_overrides_flow_through():
    base = estimate("llama-2-70b")["results"]
    est = estimate("llama-2-70b", params=70e9, tokens=1e12, gpus=3000, price=2.0, mfu=0.5,
                   accelerator="h100-sxm", dtype="int8")
    i, r = est["inputs"], est["results"]
    assert i["n_params"]["basis"] == "override" and r["file_size_gb"]["value"] == 70.0
    assert r["training_flops"]["value"] == 6 * 70e9 * 1e12
    hours = 6 * 70e9 * 1e12 / (989e12 * 0.5) / 3600
    assert r["gpu_hours"]["value"] == pytest.approx(hours)
    assert r["wall_clock_days"]["value"] == pytest.approx(hours / 3000 / 24)
    assert r["cost"]["value"] == pytest.approx(hours * 2.0)
    assert r["decode_tokens_per_s"]["value"] > base["decode_tokens_per_s"]["value"]


def test_estimate_without_reported_tokens_uses_chinchilla():
    est = estimate(shape_from_llmcore(GPT2_CONFIG, "mine"), gpus=1, accelerator=A100)
    assert est["inputs"]["train_tokens"]["value"] == 20 * 124_439_808
    assert "Chinchilla" in est["inputs"]["train_tokens"]["basis"]
    assert est["reported"] == {}
    assert "mine on 1 x a100-80gb" in scale.format_estimate(est)


def test_unknown_preset_lists_the_presets():
    with pytest.raises(UserError) as err:
        estimate("llama-9-1t")
    for name in PRESETS:
        assert name in str(err.value)


@pytest.mark.parametrize("kwargs", [
    {"gpus": -1}, {"gpus": 0}, {"gpus": 2.5}, {"mfu": 0}, {"mfu": 1.01},
    {"price": -1.0}, {"tokens": -5}, {"params": 0}, {"dtype": "fp64"},
    {"accelerator": "abacus"},
])
def test_estimate_refuses_nonsense(kwargs):
    with pytest.raises(UserError):
        estimate("llama-2-7b", **kwargs)


def test_estimate_mfu_of_exactly_one_is_allowed():
    assert estimate("llama-2-7b", mfu=1.0)["inputs"]["mfu"]["value"] == 1.0


def test_format_check_marks_every_claim():
    text = scale.format_check(llama2_70b_check())
    assert text.count("[ok ]") == 6 and "implied: MFU 0.428" in text


# --- this machine, measured -------------------------------------------------------------

def test_measure_cpu_bandwidth_returns_a_positive_rate_quickly():
    bw = scale.measure_cpu_bandwidth(seconds=0.01, n_bytes=2**20)
    assert isinstance(bw, float) and bw > 0 and math.isfinite(bw)
    flops = scale.measure_cpu_matmul_flops(seconds=0.01, n=32)
    assert isinstance(flops, float) and flops > 0
    with pytest.raises(UserError):
        scale.measure_cpu_bandwidth(seconds=-1)


# --- figures ----------------------------------------------------------------------------

def test_calculator_figure_has_one_indicator_per_number():
    import plotly.graph_objects as go

    from llmcore.viz.scale import calculator_figure

    fig = calculator_figure(estimate("llama-2-70b"))
    assert isinstance(fig, go.Figure) and len(fig.data) == 8
    assert all(t.type == "indicator" for t in fig.data)
    deltas = [t for t in fig.data if t.mode == "number+delta"]
    assert len(deltas) == 1 and deltas[0].delta.reference == 1_720_320
    # No reported hours, no delta.
    fig = calculator_figure(estimate("gpt2-124m"))
    assert all(t.mode == "number" for t in fig.data)
    with pytest.raises(UserError):
        calculator_figure({"not": "an estimate"})


LADDER = [
    {"name": "tiny", "n_params": 1e5, "train_tokens_per_s": 5e4, "decode_tokens_per_s": 300,
     "bytes_per_param": 4},
    {"name": "mid", "n_params": 1e7, "train_tokens_per_s": 5e3, "decode_tokens_per_s": 200,
     "bytes_per_param": 4},
    {"name": "big", "n_params": 1e9, "train_tokens_per_s": None, "decode_tokens_per_s": 4,
     "bytes_per_param": 2},
]


def test_ladder_figure_with_the_bandwidth_bound():
    from llmcore.viz.scale import ladder_figure

    fig = ladder_figure(LADDER, bandwidth_bytes_per_s=1e10)
    assert len(fig.data) == 3
    train, decode, bound = fig.data
    assert len(train.x) == 2 and len(decode.x) == 3  # the unmeasured point is skipped
    assert list(bound.y) == pytest.approx([25_000, 250, 5])
    assert fig.layout.xaxis.type == "log" and fig.layout.yaxis.type == "log"
    # Only "tiny" (300 of 25,000 tokens/s) falls far below the bound.
    notes = fig.layout.annotations
    assert len(notes) == 1 and "overhead-bound" in notes[0].text
    assert notes[0].x == pytest.approx(5.0)


def test_ladder_figure_without_bandwidth_and_bad_input():
    from llmcore.viz.scale import ladder_figure

    fig = ladder_figure(LADDER, None)
    assert len(fig.data) == 2 and len(fig.layout.annotations) == 0
    with pytest.raises(UserError):
        ladder_figure([], 1e10)
    with pytest.raises(UserError, match="missing"):
        ladder_figure([{"name": "x", "n_params": 1e6}], 1e10)
    with pytest.raises(UserError):
        ladder_figure(LADDER, -1.0)
