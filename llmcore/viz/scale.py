"""Figures for the Scale stage: the calculator's numbers, and speed against model size.

`calculator_figure` shows one `llmcore.scale.estimate` as big numbers (parameters,
file size, data, FLOPs, GPU-hours, days, dollars, decode speed), with the paper's
GPU-hours beside ours where a paper reports them. `ladder_figure` plots measured
training and decoding speed of a ladder of model sizes against the memory-bandwidth
bound, so a learner sees why 70B decodes ~10x slower than 7B, and where small models
fall short of the bound because per-token overhead, not memory, limits them.

Builders return a plotly `go.Figure` and never show it.
"""

from __future__ import annotations

import math

from llmcore.errors import UserError
from llmcore.viz.common import apply_theme

# Below this fraction of the bandwidth bound a decode measurement is labelled
# overhead-bound: Python, kernel launches and sampling cost more than reading weights.
OVERHEAD_FRACTION = 0.5


def _scaled(value: float, unit: str) -> tuple[float, str]:
    """124.4e6 parameters -> (124.4, " M parameters"), 68.98e9 -> (68.98, " B ...")."""
    for factor, prefix in ((1e12, "T"), (1e9, "B"), (1e6, "M"), (1e3, "k")):
        if abs(value) >= factor:
            return value / factor, f" {prefix} {unit}"
    return value, f" {unit}"


def calculator_figure(estimate_dict: dict, *, projector: bool = False):
    """Eight big numbers from `llmcore.scale.estimate`, in the order of the story.

    One go.Indicator per number on a 2 x 4 grid; GPU-hours carry a delta against the
    paper's reported hours when the model has them.
    """
    import plotly.graph_objects as go

    try:
        r, inputs = estimate_dict["results"], estimate_dict["inputs"]
        name = estimate_dict["model"]["name"]
        accel = estimate_dict["accelerator"]["name"]
    except (KeyError, TypeError) as e:
        raise UserError("calculator_figure needs the dict from llmcore.scale.estimate "
                        f"(missing {e}).") from e
    n_params, n_params_suffix = _scaled(inputs["n_params"]["value"], "parameters")
    tokens, tokens_suffix = _scaled(inputs["train_tokens"]["value"], "tokens")
    hours = r["gpu_hours"]["value"]
    reported_hours = estimate_dict.get("reported", {}).get("gpu_hours", {}).get("value")
    # (title, value, number format, prefix, suffix): the parameters -> data -> compute -> use story.
    cells = [
        ("parameters", n_params, ",.3~f", "", n_params_suffix),
        ("parameter file", r["file_size_gb"]["value"], ",.1f", "", " GB"),
        (f"training data ({tokens:.3g}{tokens_suffix})", r["train_data_tb"]["value"],
         ",.2~f", "", " TB"),
        ("training compute, 6ND", r["training_flops"]["value"], ".2e", "", " FLOP"),
        ("GPU-hours" + (" (vs paper)" if reported_hours else ""), hours, ",.0f", "", ""),
        (f"days on {inputs['n_gpus']['value']:,} GPUs", r["wall_clock_days"]["value"],
         ",.1f", "", ""),
        (f"cost at ${inputs['price_per_gpu_hour']['value']:g}/GPU-hour", r["cost"]["value"],
         ".3s", "$", ""),
        ("decode, batch 1 (upper bound)", r["decode_tokens_per_s"]["value"],
         ",.1f", "", " tokens/s"),
    ]
    fig = go.Figure()
    for k, (title, value, fmt, prefix, suffix) in enumerate(cells):
        delta = None
        if title.startswith("GPU-hours") and reported_hours:
            # Relative difference from the paper: +0.4% means we predict 0.4% more hours.
            delta = {"reference": reported_hours, "relative": True, "valueformat": "+.1%"}
        fig.add_trace(go.Indicator(
            mode="number+delta" if delta else "number", value=value, delta=delta,
            number={"valueformat": fmt, "prefix": prefix, "suffix": suffix, "font": {"size": 26}},
            title={"text": title, "font": {"size": 14}},
            domain={"row": k // 4, "column": k % 4}))
    fig.update_layout(grid={"rows": 2, "columns": 4, "pattern": "independent"}, height=380)
    mfu = inputs["mfu"]["value"]
    dtype = inputs["dtype"]["value"]
    return apply_theme(fig, title=f"{name} on {accel}: what it takes (MFU {mfu:g}, {dtype})", projector=projector)


def ladder_figure(ladder: list[dict], bandwidth_bytes_per_s: float | None = None, *, projector: bool = False):
    """Measured tokens/s against parameters, log-log, beside the bandwidth bound.

    Each rung: {"name", "n_params", "train_tokens_per_s", "decode_tokens_per_s",
    "bytes_per_param"}; a speed may be None if it was not measured. With a bandwidth,
    the bound bandwidth / (n_params x bytes_per_param) is drawn as a dashed line, and
    decode points below OVERHEAD_FRACTION of it are labelled "overhead-bound".
    Traces: training, decode, and (with a bandwidth) the bound.
    """
    import plotly.graph_objects as go

    needed = ("name", "n_params", "train_tokens_per_s", "decode_tokens_per_s", "bytes_per_param")
    if not ladder:
        raise UserError("ladder_figure needs at least one measured model size.")
    for rung in ladder:
        missing = [k for k in needed if k not in rung]
        if missing:
            raise UserError(f"Ladder entry {rung.get('name', '?')!r} is missing {missing}.")
        if not rung["n_params"] or rung["n_params"] <= 0:
            raise UserError(f"Ladder entry {rung['name']!r} needs n_params above 0.")
    if bandwidth_bytes_per_s is not None and bandwidth_bytes_per_s <= 0:
        raise UserError(f"bandwidth_bytes_per_s must be above 0, got {bandwidth_bytes_per_s}.")
    rungs = sorted(ladder, key=lambda d: d["n_params"])

    fig = go.Figure()
    for key, label, symbol in (("train_tokens_per_s", "training (measured)", "circle"),
                               ("decode_tokens_per_s", "decode, batch 1 (measured)", "diamond")):
        pts = [d for d in rungs if d[key] is not None]
        fig.add_trace(go.Scatter(
            x=[d["n_params"] for d in pts], y=[d[key] for d in pts], text=[d["name"] for d in pts],
            mode="lines+markers", name=label, marker={"symbol": symbol, "size": 10},
            hovertemplate="%{text}<br>%{x:.3s} parameters<br>%{y:,.1f} tokens/s<extra></extra>"))

    if bandwidth_bytes_per_s is not None:
        # The bound: each decode step streams every weight once from memory.
        bound = [bandwidth_bytes_per_s / (d["n_params"] * d["bytes_per_param"]) for d in rungs]
        fig.add_trace(go.Scatter(
            x=[d["n_params"] for d in rungs], y=bound, mode="lines", name=(
                f"bandwidth bound: {bandwidth_bytes_per_s / 1e9:,.1f} GB/s / (parameters x bytes)"),
            line={"dash": "dash"},
            hovertemplate="%{x:.3s} parameters<br>bound %{y:,.1f} tokens/s<extra></extra>"))
        for d, b in zip(rungs, bound):
            measured = d["decode_tokens_per_s"]
            if measured is not None and measured < OVERHEAD_FRACTION * b:
                fig.add_annotation(x=math.log10(d["n_params"]), y=math.log10(measured), text=(
                    f"overhead-bound ({measured / b:.0%} of bound)"), showarrow=True,
                    arrowhead=2, ay=30, font={"size": 11})

    fig.update_xaxes(type="log", title="parameters")
    fig.update_yaxes(type="log", title="tokens per second")
    return apply_theme(fig, title="Speed against size: decoding reads every weight for every token", projector=projector)

