"""Figures for the Parameters stage: the file of numbers a trained model *is*.

- `histogram_figure(info)`: every parameter's value, binned (`llmcore.params.inspect_file`).
- `treemap_figure(cfg)`: where the parameters live, per component and per layer
  (`llmcore.model.parameter_breakdown`); areas are parameter counts.
- `dtype_figure(rows)`: file size against quality for fp32/bf16/fp16/int8
  (`llmcore.params.compare_dtypes`).
- `raw_bytes_html(path)`: the file's first bytes as a hex dump, split into the
  8-byte header length, the JSON header and the first numbers, all escaped.

Builders return a plotly `go.Figure` (or an HTML string) and never show it.
"""

from __future__ import annotations

import html
import json
import struct
from pathlib import Path

from llmcore.errors import UserError
from llmcore.viz.common import MONO_FAMILY, OKABE_ITO, STAGE_COLOURS, apply_theme

MAX_RAW_BYTES = 4096  # raw_bytes_html shows at most this many bytes


def histogram_figure(info: dict, *, log_y: bool = False, projector: bool = False):
    """Bars of how many parameters fall in each value range: one Bar trace.

    info: the dict from `inspect_file` (uses "histogram", "n_params", "dtype"), or just
    its {"counts", "edges"}. log_y=True shows the rare values far from zero (LayerNorm
    scales sit near 1, most weights near 0).
    """
    import plotly.graph_objects as go

    hist = info.get("histogram", info) if isinstance(info, dict) else None
    try:
        counts, edges = list(hist["counts"]), list(hist["edges"])
    except (KeyError, TypeError):
        raise UserError("histogram_figure wants the dict from llmcore.params.inspect_file") from None
    if len(edges) != len(counts) + 1 or not counts:
        raise UserError(f"a histogram needs one more edge than counts, got {len(edges)} and {len(counts)}")
    mids = [(a + b) / 2 for a, b in zip(edges[:-1], edges[1:])]
    widths = [b - a for a, b in zip(edges[:-1], edges[1:])]
    fig = go.Figure(go.Bar(x=mids, y=counts, width=widths, marker_color=STAGE_COLOURS["parameters"],
                           marker_line_width=0, customdata=list(zip(edges[:-1], edges[1:])),
                           hovertemplate="%{customdata[0]:.3f} to %{customdata[1]:.3f}: %{y:,} numbers<extra></extra>"))
    fig.update_xaxes(title="value of the parameter")
    fig.update_yaxes(title="how many parameters" + ((" (log scale)" if not projector else "<br>(log scale)") if log_y
                                                    else ""), type="log" if log_y else "linear")
    if projector:
        fig.update_layout(height=520)  # room for the axis title in large type
    title = "Every number in the file"
    if isinstance(info.get("n_params"), int):
        title = f"All {info['n_params']:,} numbers in the file" + (f" ({info['dtype']})" if info.get("dtype") else "")
    return apply_theme(fig, title=title, projector=projector)


def _layer_breakdown(cfg) -> list[tuple[str, str, int]]:
    """(label, parent, parameters) rows for a treemap: model -> embeddings, blocks -> parts.

    Splits `parameter_breakdown(cfg)`: attention and MLP are the same in every block;
    each block has two LayerNorms (4 x d_model numbers), plus one final LayerNorm.
    """
    from llmcore.model import GPTConfig, parameter_breakdown

    if isinstance(cfg, dict):
        cfg = GPTConfig.from_dict(cfg)
    total = parameter_breakdown(cfg)
    L, d = cfg.n_layers, cfg.d_model
    rows = [("model", "", 0),
            ("embeddings", "model", 0),
            ("W_E (tokens; also the unembedding)", "embeddings", cfg.d_vocab * d),
            ("W_pos (positions)", "embeddings", cfg.n_ctx * d)]
    for i in range(L):
        block = f"block {i}"
        rows += [(block, "model", 0),
                 (f"attention {i}", block, total["attention"] // L),
                 (f"MLP {i}", block, total["mlp"] // L),
                 (f"LayerNorms {i}", block, 4 * d)]
    rows.append(("final LayerNorm", "model", 2 * d))
    assert sum(n for _, _, n in rows) == sum(total.values())  # the split adds up to the whole
    return rows


def treemap_figure(breakdown, *, projector: bool = False):
    """Where the parameters live, as areas: one Treemap trace.

    breakdown: a GPTConfig or its dict (model -> embeddings and blocks -> attention,
    MLP, LayerNorms per layer), or a flat {component: count} such as
    `parameter_breakdown(cfg)`.
    """
    import plotly.graph_objects as go

    from llmcore.model import GPTConfig

    if isinstance(breakdown, GPTConfig) or (isinstance(breakdown, dict) and "d_model" in breakdown):
        rows = _layer_breakdown(breakdown)
    elif isinstance(breakdown, dict) and breakdown and all(
            isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in breakdown.values()):
        rows = [("model", "", 0)] + [(str(k), "model", v) for k, v in breakdown.items()]
    else:
        raise UserError("treemap_figure wants a model config or {component: parameter count}")
    n_total = sum(n for _, _, n in rows)
    # Colour by kind (embeddings, attention, MLP, norms); the blocks themselves stay pale.
    kinds = (("w_", STAGE_COLOURS["data"]), ("embeddings", STAGE_COLOURS["data"]), ("attention", OKABE_ITO["blue"]),
             ("mlp", OKABE_ITO["orange"]), ("layernorm", "#bbbbbb"), ("final", "#bbbbbb"), ("norms", "#bbbbbb"))

    def colour_of(label):
        return next((c for k, c in kinds if label.lower().startswith(k)), "#f4f4f4")

    fig = go.Figure(go.Treemap(
        labels=[r[0] for r in rows], parents=[r[1] for r in rows], values=[r[2] for r in rows],
        branchvalues="remainder", marker={"colors": [colour_of(r[0]) for r in rows]},
        texttemplate="%{label}<br>%{value:,}<br>%{percentRoot:.1%}",
        hovertemplate="%{label}: %{value:,} parameters (%{percentRoot:.1%})<extra></extra>",
    ))
    fig.update_layout(height=460)
    return apply_theme(fig, title=f"Where the {n_total:,} parameters live", projector=projector)


def dtype_figure(rows: list[dict], *, projector: bool = False):
    """File size and quality per number format, side by side: two Bar traces.

    rows: `compare_dtypes` output, [{"dtype", "bytes", "loss", "bpb"}, ...], or
    `llmcore.params.dtype_differences` output. Left: the file's size. Right: with differences, each
    format's change in bits per byte against the first (fp32), with error bars of two
    standard errors, so noise looks like noise; without them, bits per byte on an axis
    from zero (a zoomed axis made noise look like a better model).
    """
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    try:
        names = [str(r["dtype"]) for r in rows]
        sizes = [float(r["bytes"]) for r in rows]
        bpb = [float(r["bpb"]) for r in rows]
    except (KeyError, TypeError, ValueError):
        raise UserError("dtype_figure wants the rows from llmcore.params.compare_dtypes") from None
    if not rows:
        raise UserError("dtype_figure needs at least one row")
    deltas = all("delta_bpb" in r and "delta_se" in r for r in rows)
    right = (f"change in bits per byte vs {names[0]}<br>(bars: \u00b12 standard errors)" if deltas
             else "quality: bits per byte (lower is better)")
    fig = make_subplots(rows=1, cols=2, subplot_titles=["file size", right], horizontal_spacing=0.14)
    fig.add_trace(go.Bar(x=names, y=sizes, marker_color=STAGE_COLOURS["parameters"], name="bytes",
                         text=[f"{s / 1e6:.2f} MB" for s in sizes], textposition="outside", cliponaxis=False,
                         hovertemplate="%{x}: %{y:,.0f} bytes<extra></extra>"), row=1, col=1)
    fig.update_yaxes(title="bytes on disk", range=[0, max(sizes) * 1.2], row=1, col=1)
    if deltas:
        d = [float(r["delta_bpb"]) for r in rows]
        err = [2 * float(r["delta_se"]) for r in rows]
        fig.add_trace(go.Bar(x=names, y=d, marker_color=OKABE_ITO["blue"], name="change",
                             error_y={"type": "data", "array": err, "visible": True, "thickness": 2},
                             text=[f"{v:+.4f}" for v in d], textposition="outside", cliponaxis=False,
                             hovertemplate="%{x}: %{y:+.5f} bits per byte<extra></extra>"), row=1, col=2)
        reach = max([abs(v) + e for v, e in zip(d, err)] + [1e-4]) * 1.4
        fig.update_yaxes(title="bits per byte (+ = worse)", range=[-reach, reach], zeroline=True,
                         zerolinewidth=2, row=1, col=2)
    else:
        fig.add_trace(go.Bar(x=names, y=bpb, marker_color=OKABE_ITO["blue"], name="bits per byte",
                             text=[f"{b:.4f}" for b in bpb], textposition="outside", cliponaxis=False,
                             hovertemplate="%{x}: %{y:.4f} bits per byte<extra></extra>"), row=1, col=2)
        fig.update_yaxes(title="bits per byte", range=[0, max(bpb) * 1.2], row=1, col=2)
    fig.update_layout(showlegend=False, height=520 if projector else 420)
    fig.update_annotations(font={"size": 20 if projector else 14})  # the two panels' titles
    return apply_theme(fig, title="Fewer bytes per number: a smaller file, almost the same model", projector=projector)


def raw_bytes_html(path, n: int = 256) -> str:
    """The first `n` bytes of a parameter file as an escaped hex dump, with the parts named.

    Colours: the 8-byte little-endian header length (vermillion), the JSON header (blue),
    and the numbers after it (orange). Below the dump, the header's first characters as
    text. `n` is clamped to 16..MAX_RAW_BYTES.
    """
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path}: no such file")
    if isinstance(n, bool) or not isinstance(n, int):
        raise UserError(f"n must be a whole number of bytes, got {n!r}")
    n = max(16, min(n, MAX_RAW_BYTES))
    with open(path, "rb") as f:
        head = f.read(n)
        f.seek(0)
        prefix = f.read(8)
        header_len = struct.unpack("<Q", prefix)[0] if len(prefix) == 8 else 0
        json_start = f.read(min(header_len, 1200)).decode("utf-8", errors="replace")
    colours = {"len": OKABE_ITO["vermillion"], "json": OKABE_ITO["blue"], "data": OKABE_ITO["orange"]}

    def part(i):
        return "len" if i < 8 else "json" if i < 8 + header_len else "data"

    lines = []
    for off in range(0, len(head), 16):
        chunk = head[off:off + 16]
        hexes = " ".join(f'<span style="color:{colours[part(off + j)]}">{b:02x}</span>' for j, b in enumerate(chunk))
        hexes += "   " * (16 - len(chunk))
        text = "".join(html.escape(chr(b)) if 32 <= b < 127 else "." for b in chunk)
        # The text column is a span of its own: a narrow screen can hide it and keep the bytes.
        lines.append(f'<span style="color:#888">{off:08x}</span>  {hexes}<span class="llmcore-ascii">  {text}</span>')
    try:
        pretty = json.dumps(json.loads(json_start), indent=1)[:1200] if len(json_start) == header_len else json_start
    except ValueError:
        pretty = json_start
    more = "\u2026" if header_len > len(json_start) else ""
    legend = " ".join(f'<span style="color:{c}">\u25a0 {label}</span>' for label, c in
                      (("8-byte header length", colours["len"]), ("JSON header", colours["json"]),
                       ("the numbers", colours["data"])))
    return (
        f'<div class="llmcore-rawbytes" style="font-family:{MONO_FAMILY};font-size:clamp(9px, 2.4vw, 13px)">'
        f"<div>{legend}</div>"
        f'<pre style="margin:6px 0;white-space:pre;overflow-x:auto">{chr(10).join(lines)}</pre>'
        f"<div>The first 8 bytes say the header is <b>{header_len:,}</b> bytes of JSON. It starts:</div>"
        f'<pre style="margin:6px 0;white-space:pre-wrap;max-height:18em;overflow-y:auto">'
        f"{html.escape(pretty)}{more}</pre></div>"
    )
