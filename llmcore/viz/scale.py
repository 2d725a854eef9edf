"""Figures for the Scale stage: the calculator's numbers, and speed against model size.

`headline_numbers` turns one `llmcore.scale.estimate` into eight numbers written the
way people read them ("68.977 B", "138 GB", "$0.33", "1.71 million"), each with the
sum behind it; `calculator_figure` draws them as big numbers (parameters, file size,
data, FLOPs, GPU-hours, days, dollars, decode speed), with the paper's GPU-hours
beside ours where a paper reports them. `ladder_figure` plots measured
training and decoding speed of a ladder of model sizes against the memory-bandwidth
bound, so a learner sees why 70B decodes ~10x slower than 7B, and where small models
fall short of the bound because per-token overhead, not memory, limits them.
`sizes_figure` puts the same recipe at three sizes side by side: held-out loss at
equal steps (bigger is better) and at equal compute (bigger costs more per step).

Builders return a plotly `go.Figure` and never show it.
"""

from __future__ import annotations

import math

from llmcore.errors import UserError
from llmcore.viz.common import apply_theme

# Below this fraction of the bandwidth bound a decode measurement is labelled
# overhead-bound: Python, kernel launches and sampling cost more than reading weights.
OVERHEAD_FRACTION = 0.5


_SUPERSCRIPT = str.maketrans("0123456789-", "\u2070\u00b9\u00b2\u00b3\u2074\u2075\u2076\u2077\u2078\u2079\u207b")
_WORDS = ((1e12, "trillion"), (1e9, "billion"), (1e6, "million"))


def _number(value: float, fmt: str, prefix: str = "", suffix: str = "") -> dict:
    """A number as shown: its display value, the format that shows it, and the whole text."""
    return {"number": value, "format": fmt, "prefix": prefix, "suffix": suffix,
            "text": f"{prefix}{value:{fmt}}{suffix}"}


def format_count(value: float, unit: str = "") -> dict:
    """1_713_791 -> "1.71 million", 3.85 -> "3.8", 12_345 -> "12,345": numbers read aloud right."""
    unit = f" {unit}" if unit else ""
    for factor, word in _WORDS:
        if abs(value) >= factor:
            return _number(value / factor, ",.3g" if value / factor < 1000 else ",.0f", "", f" {word}{unit}")
    return _number(value, ",.0f" if abs(value) >= 100 else ".2g", "", unit)


def format_dollars(value: float) -> dict:
    """0.326 -> "$0.33" (not "$326m"), 4424.6 -> "$4,425", 1.97e6 -> "$1.97 million"."""
    for factor, word in _WORDS:
        if abs(value) >= factor:
            return _number(value / factor, ".3g", "$", f" {word}")
    return _number(value, ",.2f" if abs(value) < 1000 else ",.0f", "$")


def format_bytes(n_bytes: float) -> dict:
    """137.95e9 -> "138 GB", 248.9e6 -> "249 MB", 8e12 -> "8 TB" (decimal units, as disks are sold)."""
    for factor, unit in ((1e15, "PB"), (1e12, "TB"), (1e9, "GB"), (1e6, "MB"), (1e3, "kB")):
        if abs(n_bytes) >= factor:
            value = n_bytes / factor
            return _number(value, ".0f" if value >= 99.5 else ".3g", "", f" {unit}")
    return _number(n_bytes, ",.0f", "", " bytes")


def format_params(n: float) -> dict:
    """68_976_648_192 -> "68.977 B", 124_439_808 -> "124.440 M" (B = billion, M = million)."""
    for factor, prefix in ((1e12, "T"), (1e9, "B"), (1e6, "M"), (1e3, "k")):
        if abs(n) >= factor:
            return _number(n / factor, ",.3f", "", f" {prefix}")
    return _number(n, ",.0f")


def format_flops(flops: float) -> dict:
    """8.277e23 -> "8.28 × 10²³ FLOP": an exponent a class reads as a power of ten, not "e+23"."""
    if flops <= 0 or not math.isfinite(flops):
        return _number(flops, ".3g", "", " FLOP")
    exponent = math.floor(math.log10(flops))
    return _number(flops / 10 ** exponent, ".3g", "", f" \u00d7 10{str(exponent).translate(_SUPERSCRIPT)} FLOP")


def format_duration(days: float) -> dict:
    """11.9 -> "11.9 days"; shorter spans in hours, minutes or seconds ("2.3 seconds")."""
    for length, unit in ((1.0, "days"), (1 / 24, "hours"), (1 / 1440, "minutes")):
        if days >= length:
            return _number(days / length, ".3g", "", f" {unit}")
    return _number(days * 86_400, ".2g", "", " seconds")


def headline_numbers(estimate_dict: dict) -> list[dict]:
    """The calculator's eight numbers, in the order of the story, each as text a class reads right.

    Each: {"key", "label", "text" (e.g. "68.977 B"), "number", "format", "prefix", "suffix"
    (the same number for a plotly Indicator), "help" (the sum behind it), "delta" (against
    the paper, or None)}. llama-2-70b: "68.977 B", "138 GB", "8 TB", "8.28 × 10²³ FLOP",
    "1.71 million", "11.9 days", "$1.97 million", "14.8 tokens/s".
    """
    try:
        r, inputs = estimate_dict["results"], estimate_dict["inputs"]
        model = estimate_dict["model"]
    except (KeyError, TypeError) as e:
        raise UserError(f"headline_numbers needs the dict from llmcore.scale.estimate (missing {e}).") from e
    n = inputs["n_params"]["value"]
    tokens = inputs["train_tokens"]["value"]
    dtype, bytes_per = inputs["dtype"]["value"], inputs["dtype"]["unit"].split()[0]
    n_gpus, price = inputs["n_gpus"]["value"], inputs["price_per_gpu_hour"]["value"]
    hours = r["gpu_hours"]["value"]
    reported_hours = estimate_dict.get("reported", {}).get("gpu_hours", {}).get("value")
    reported_n = estimate_dict.get("reported", {}).get("n_params", {}).get("value") or model.get("n_params")
    file_bytes = r["file_size"]["value"]
    file_help = f"{n:,.0f} parameters \u00d7 {bytes_per} bytes ({dtype}) = {file_bytes / 1e9:,.2f} GB."
    if reported_n and abs(reported_n - n) / n > 0.001:
        rounded = format_bytes(reported_n * float(bytes_per))["text"]
        file_help += (f" The name's round {reported_n / 1e9:g} B \u00d7 {bytes_per} bytes gives "
                      f"{rounded}: the explainer's figure is that rounded sum.")
    cells = [
        ("n_params", "parameters", format_params(n),
         f"{n:,.0f} numbers (B = billion, M = million), counted from the model's shapes."),
        ("file_size", f"parameter file ({dtype})", format_bytes(file_bytes), file_help),
        ("train_data", f"training data ({format_count(tokens)['text']} tokens)", format_bytes(r["train_data"]["value"]),
         f"{tokens:,.0f} tokens \u00d7 {inputs['bytes_per_token']['value']:g} bytes per token."),
        ("training_flops", "training compute (6 \u00d7 N \u00d7 D)", format_flops(r["training_flops"]["value"]),
         f"6 \u00d7 {n:.3g} parameters \u00d7 {tokens:.3g} tokens = {r['training_flops']['value']:.3g} FLOP."),
        ("gpu_hours", "GPU-hours", format_count(hours),
         f"{hours:,.0f} hours of one GPU" + (f"; the paper reports {reported_hours:,.0f}." if reported_hours else ".")),
        ("wall_clock_days", f"time on {n_gpus:,} GPUs", format_duration(r["wall_clock_days"]["value"]),
         f"{hours:,.0f} GPU-hours / {n_gpus:,} GPUs / 24 hours."),
        ("cost", f"cost at ${price:g} per GPU-hour", format_dollars(r["cost"]["value"]),
         f"{hours:,.1f} GPU-hours \u00d7 ${price:g} = ${r['cost']['value']:,.2f}."),
        ("decode_tokens_per_s", "writing speed, 1 user (at most)",
         _number(r["decode_tokens_per_s"]["value"], ",.1f" if r["decode_tokens_per_s"]["value"] < 1000 else ",.0f",
                 "", " tokens/s"),
         "One token needs every weight read from memory once: memory bandwidth / file size."),
    ]
    out = []
    for key, label, shown, help_text in cells:
        delta = None
        if key == "gpu_hours" and reported_hours:
            delta = f"{(hours - reported_hours) / reported_hours:+.1%} vs the paper"
        out.append({"key": key, "label": label, **shown, "help": help_text, "delta": delta})
    return out


def calculator_figure(estimate_dict: dict, *, projector: bool = False, columns: int | None = None):
    """Eight big numbers from `llmcore.scale.estimate`, in the order of the story.

    One go.Indicator per number of `headline_numbers`, in units a class reads right
    ("68.977 B", "$1.97 million"); GPU-hours carry a delta against the paper's reported
    hours when the model has them. `columns`: numbers per row (default 4, 2 on a
    projector, where each number is larger). Plotly sizes each number to fit its cell,
    so a long one shrinks instead of being cut at the cell's edge.
    """
    import plotly.graph_objects as go

    cells = headline_numbers(estimate_dict)
    name, accel = estimate_dict["model"]["name"], estimate_dict["accelerator"]["name"]
    inputs = estimate_dict["inputs"]
    reported_hours = estimate_dict.get("reported", {}).get("gpu_hours", {}).get("value")
    columns = columns or (2 if projector else 4)
    rows = math.ceil(len(cells) / columns)
    title_size = 20 if projector else 14
    fig = go.Figure()
    for k, cell in enumerate(cells):
        delta = None
        if cell["key"] == "gpu_hours":  # every hour, with the paper's count as the reference
            hours = estimate_dict["results"]["gpu_hours"]["value"]
            cell = {**cell, **_number(hours, ",.0f" if hours >= 100 else ".2g")}
            if reported_hours:
                # Relative difference from the paper: +0.4% means we predict 0.4% more hours.
                delta = {"reference": reported_hours, "relative": True, "valueformat": "+.1%"}
        fig.add_trace(go.Indicator(
            mode="number+delta" if delta else "number", value=cell["number"], delta=delta,
            number={"valueformat": cell["format"], "prefix": cell["prefix"], "suffix": cell["suffix"]},
            title={"text": cell["label"], "font": {"size": title_size}},
            domain={"row": k // columns, "column": k % columns}))
    fig.update_layout(grid={"rows": rows, "columns": columns, "pattern": "independent"},
                      height=rows * (200 if projector else 150) + 80)
    mfu, dtype = inputs["mfu"]["value"], inputs["dtype"]["value"]
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
                    arrowhead=2, ay=30, ax=30, xanchor="left", font={"size": 11})

    fig.update_xaxes(type="log", title="parameters")
    fig.update_yaxes(type="log", title="tokens per second")
    return apply_theme(fig, title="Speed against size: decoding reads every weight for every token", projector=projector)



def sizes_figure(rows: list[dict], *, projector: bool = False):
    """Held-out loss of the same recipe at several model sizes: against the step (equal steps,
    left) and against training compute, 6 x parameters x tokens (equal compute, right).

    rows: `llmcore.sizes.compare()`, each with "name", "n_params", "val" [(step, val_loss)] and
    "flops_per_step". The same colour marks a size in both panels; on a projector the panels
    stack, one above the other.
    """
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    if not rows:
        raise UserError("sizes_figure needs at least one model size.")
    # Side by side on a screen; one above the other on a projector, where large type needs the width.
    n_rows, n_cols = (2, 1) if projector else (1, 2)
    fig = make_subplots(rows=n_rows, cols=n_cols, shared_yaxes=not projector, horizontal_spacing=0.06,
                        vertical_spacing=0.22, subplot_titles=("equal steps", "equal compute"))
    where = ((1, 1), (2, 1)) if projector else ((1, 1), (1, 2))
    for row in sorted(rows, key=lambda r: r["n_params"]):
        steps, losses = [s for s, _ in row["val"]], [v for _, v in row["val"]]
        label = f"{row['name']} ({row['n_params']:,} parameters)"
        for (r, c), x, unit in zip(where, (steps, [s * row["flops_per_step"] for s in steps]), ("step %{x}", "%{x:.3s}FLOP")):
            fig.add_trace(go.Scatter(
                x=x, y=losses, mode="lines+markers", name=label, legendgroup=row["name"], showlegend=c == 1 and r == 1,
                hovertemplate=f"{row['name']}<br>{unit}<br>held-out loss %{{y:.3f}} nats per token<extra></extra>"),
                row=r, col=c)
    fig.update_xaxes(title_text="training step", row=1, col=1)
    fig.update_xaxes(title_text="compute (FLOPs, log)", type="log", row=where[1][0], col=where[1][1])
    for r, c in where[: 2 if projector else 1]:
        fig.update_yaxes(title_text="held-out loss", row=r, col=c)
    fig.update_layout(legend={"orientation": "h", "y": -0.3 if not projector else -0.22},
                      height=860 if projector else 440)
    apply_theme(fig, title="Bigger learns more from the same steps, but each step costs more", projector=projector)
    fig.update_annotations(font={"size": fig.layout.font.size})  # the panels' titles in the body's size
    colours = list(fig.layout.colorway)  # one colour per size, the same in both panels
    for i, trace in enumerate(fig.data):
        trace.update(line={"color": colours[i // 2 % len(colours)]}, marker={"color": colours[i // 2 % len(colours)]})
    return fig
