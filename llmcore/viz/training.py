"""Figures for the Pre-training stage: the loss falling, and the model learning to write.

- `loss_figure(metrics)`: training loss, validation loss and validation bits per byte
  against the step, from the rows of `metrics.jsonl` (or the live rows a dashboard
  collects from `TrainEvent`s; a partial or empty list draws fine).
- `timeline_figure(timeline)`: "watch it learn". One frame per row of `timeline.jsonl`:
  the model's greedy continuation of each fixed prompt at that step, with a slider
  and a play button; with `metrics`, a loss curve below with a dot on the current step.
- `embedding_figure(timeline)`: the token embeddings' top two principal components,
  animated over the steps: from a random cloud to groups (words, pieces, punctuation).

Builders return a plotly `go.Figure` and never show it.
"""

from __future__ import annotations

import math

from llmcore.errors import UserError
from llmcore.viz.common import (
    MONO_FAMILY,
    OKABE_ITO,
    TITLE_WRAP,
    animation_controls,
    apply_theme,
    cell_text,
    continuation_html,
    title_room,
    wrap_text,
)

_SHOW = {" ": "\u00b7", "\n": "\u21b5", "\t": "\u2192"}


def _number(row: dict, key: str) -> float | None:
    v = row.get(key)
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
        return None
    return float(v)


def loss_figure(metrics: list[dict], *, projector: bool = False):
    """Three traces against the step: train loss, val loss (nats/token), val bits/byte (right axis).

    metrics: rows with "step" and any of "loss", "val_loss", "val_bpb" (metrics.jsonl).
    Rows missing a value are skipped for that trace, so a live run's first rows draw.
    """
    import plotly.graph_objects as go

    if not isinstance(metrics, (list, tuple)):
        raise UserError("loss_figure wants a list of metric rows (dicts with 'step' and 'loss')")
    rows = [r for r in metrics if isinstance(r, dict) and _number(r, "step") is not None]

    def series(key):
        pts = [(r["step"], _number(r, key)) for r in rows if _number(r, key) is not None]
        return [s for s, _ in pts], [v for _, v in pts]

    fig = go.Figure()
    x, y = series("loss")
    fig.add_trace(go.Scatter(x=x, y=y, mode="lines", name="train loss", line={"color": OKABE_ITO["blue"], "width": 1.5},
                             hovertemplate="step %{x}<br>train loss %{y:.3f}<extra></extra>"))
    x, y = series("val_loss")
    fig.add_trace(go.Scatter(x=x, y=y, mode="lines+markers", name="val loss (held-out text)",
                             line={"color": OKABE_ITO["vermillion"]},
                             hovertemplate="step %{x}<br>val loss %{y:.3f}<extra></extra>"))
    x, y = series("val_bpb")
    fig.add_trace(go.Scatter(x=x, y=y, mode="lines+markers", name="val bits per byte (right)", yaxis="y2",
                             line={"color": OKABE_ITO["bluish_green"], "dash": "dot"},
                             hovertemplate="step %{x}<br>%{y:.3f} bits per byte<extra></extra>"))
    fig.update_layout(
        xaxis={"title": "step"},
        yaxis={"title": "loss (nats per token)", "rangemode": "tozero"},
        yaxis2={"title": "bits per byte", "overlaying": "y", "side": "right", "rangemode": "tozero", "showgrid": False,
                "tickmode": "auto", "nticks": 6, "tickformat": ".2f"},
        # In the plot's top-right corner, which a falling loss leaves empty: below the plot it ran
        # into the x axis's title in projector mode's type.
        legend={"x": 0.99, "xanchor": "right", "y": 0.99, "yanchor": "top", "bgcolor": "rgba(255,255,255,0.8)"},
        height=460 if projector else 380,
    )
    title = "Loss while training"
    if not rows:
        title += " (waiting for the first step)"
    elif (last := _number(rows[-1], "loss")) is not None:
        title += f": step {rows[-1]['step']:,}, train loss {last:.3f}"
    apply_theme(fig, title=title, projector=projector)
    fig.update_yaxes(showgrid=False, selector={"overlaying": "y"})
    return fig


def _check_timeline(timeline) -> list[dict]:
    if not isinstance(timeline, (list, tuple)):
        raise UserError("the timeline must be a list of rows (timeline.jsonl)")
    rows = [r for r in timeline if isinstance(r, dict) and isinstance(r.get("step"), int)]
    if not rows:
        raise UserError("the timeline is empty: train a run (it writes timeline.jsonl) or pick one that has one")
    return sorted(rows, key=lambda r: r["step"])


def timeline_figure(timeline: list[dict], metrics: list[dict] | None = None, *, projector: bool = False,
                    wrap: int | None = None):
    """"Watch it learn": the samples at each timeline step as frames, with a slider and play button.

    timeline: rows of timeline.jsonl, {"step", "tokens_seen", "samples": {prompt: text}}.
    metrics: optional metrics rows; then a loss curve sits below the samples with a
    marker on the frame's step. Traces: the samples table (+ loss line and marker).
    One frame per timeline row, named by its step.
    wrap: characters per line of a sample (a plotly table cell never wraps by itself):
    `CELL_WRAP`, or `PROJECTOR_CELL_WRAP` in projector mode; `NARROW_CELL_WRAP` for a phone.
    """
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    rows = _check_timeline(timeline)
    prompts = list(rows[-1].get("samples") or {})
    loss_pts = [(r["step"], _number(r, "loss")) for r in (metrics or []) if isinstance(r, dict)
                and isinstance(r.get("step"), int) and _number(r, "loss") is not None]

    wrap, size = cell_text(projector, wrap)

    def cells(row):  # one per prompt: the prompt in grey, then what the model writes in bold
        samples = row.get("samples") or {}
        return [continuation_html(p, str(samples.get(p, "")), newlines="mark", width=wrap) for p in prompts]

    def table(row):  # traces and frames as dicts: plotly checks each once (objects were checked twice)
        return {"type": "table",
                "header": {"values": [f"what the model writes at step {row['step']:,} (the prompt in grey)"],
                           "align": "left", "fill": {"color": "#e8eef6"}, "font": {"size": size + 1}},
                "cells": {"values": [cells(row)], "align": "left", "height": round(size * 2.3),
                          "fill": {"color": "#ffffff"}, "font": {"family": MONO_FAMILY, "size": size}}}

    # Tall enough for the longest frame's lines: a table shorter than its text scrolls, and
    # in an animation only its first rows showed.
    lines = max(sum(c.count("<br>") + 1 for c in cells(r)) for r in rows)
    table_px = round(size * (2.3 + 1.2 * len(prompts) + 1.45 * lines))
    loss_px = round(size * 12) if loss_pts else 0

    def loss_at(step):  # the last logged loss at or before `step` (the first one before any)
        before = [v for s, v in loss_pts if s <= step]
        return before[-1] if before else loss_pts[0][1]

    if loss_pts:
        gap = round(size * 3)  # between the table and the loss plot, in pixels
        fig = make_subplots(rows=2, cols=1, row_heights=[table_px, loss_px],
                            vertical_spacing=gap / (table_px + gap + loss_px),
                            specs=[[{"type": "table"}], [{"type": "xy"}]])
        fig.add_trace(table(rows[0]), row=1, col=1)
        fig.add_trace(go.Scatter(x=[s for s, _ in loss_pts], y=[v for _, v in loss_pts], mode="lines",
                                 name="train loss", line={"color": OKABE_ITO["blue"], "width": 1.5},
                                 hovertemplate="step %{x}<br>loss %{y:.3f}<extra></extra>"), row=2, col=1)
        first = loss_at(rows[0]["step"])
        fig.add_trace(go.Scatter(x=[rows[0]["step"]], y=[first], mode="markers", name="this step",
                                 marker={"color": OKABE_ITO["vermillion"], "size": 12}), row=2, col=1)
        fig.update_xaxes(title="step", row=2, col=1)
        fig.update_yaxes(title="loss", row=2, col=1)
    else:
        fig = go.Figure([table(rows[0])])

    def title(row):
        seen = row.get("tokens_seen")
        sub = f" after {seen:,} tokens" if isinstance(seen, int) else ""
        return wrap_text(f"Watch it learn: step {row['step']:,}{sub}", round(wrap * TITLE_WRAP))

    frames = []
    for r in rows:
        data, traces = [table(r)], [0]
        if loss_pts:
            data.append({"type": "scatter", "x": [r["step"]], "y": [loss_at(r["step"])]})
            traces.append(2)
        frames.append({"data": data, "traces": traces, "name": str(r["step"]), "layout": {"title": {"text": title(r)}}})
    fig.frames = frames
    fig.update_layout(showlegend=False)
    apply_theme(fig, title=title(rows[0]), projector=projector)
    fig.update_layout(margin={"t": title_room([f.layout.title.text for f in fig.frames], projector=projector)})
    animation_controls(fig, [str(r["step"]) for r in rows], prefix="step ", redraw=True, duration=900,
                       projector=projector)
    fig.update_layout(height=fig.layout.margin.t + table_px + (gap + loss_px if loss_pts else 0) + fig.layout.margin.b)
    return fig


def _token_group(token: str) -> str:
    """Which kind of token: a whole word (leading space), a piece of a word, or punctuation/space."""
    if token[:1] == " " and token[1:2].isalnum():
        return "word"
    if token[:1].isalnum():
        return "word piece"
    return "punctuation"


_GROUPS = ("word", "word piece", "punctuation")  # short: the legend fits one row on a phone
_GROUP_COLOURS = (OKABE_ITO["blue"], OKABE_ITO["orange"], OKABE_ITO["bluish_green"])


def embedding_figure(timeline: list[dict], *, projector: bool = False):
    """The frequent tokens' embeddings in 2-D (top two principal components), one frame per step.

    timeline rows carry "embedding_2d": {"tokens": [...], "xy": [[x, y], ...]} (written by
    `llmcore.train`). One scatter trace per kind of token (words, pieces, punctuation),
    so colour shows whether similar tokens gather. Axes are fixed over all frames: the
    cloud starts small (random weights) and spreads as the model learns.
    """
    import plotly.graph_objects as go

    rows = [r for r in _check_timeline(timeline) if isinstance(r.get("embedding_2d"), dict)
            and r["embedding_2d"].get("xy") and r["embedding_2d"].get("tokens")]
    if not rows:
        raise UserError("this run's timeline has no embedding maps (older runs lack them): train a new run")

    def traces(row):  # dicts, as in timeline_figure
        emb = row["embedding_2d"]
        out = []
        for group, colour in zip(_GROUPS, _GROUP_COLOURS):
            pts = [(t, xy) for t, xy in zip(emb["tokens"], emb["xy"]) if _token_group(t) == group]
            out.append({"type": "scatter", "x": [xy[0] for _, xy in pts], "y": [xy[1] for _, xy in pts],
                        "mode": "markers+text", "name": group,
                        "text": ["".join(_SHOW.get(c, c) for c in t) for t, _ in pts], "textposition": "top center",
                        "marker": {"color": colour, "size": 9}, "textfont": {"size": 12, "family": MONO_FAMILY},
                        "hovertemplate": "%{text}<extra></extra>"})
        return out

    xs = [xy[0] for r in rows for xy in r["embedding_2d"]["xy"]]
    ys = [xy[1] for r in rows for xy in r["embedding_2d"]["xy"]]
    pad_x, pad_y = 0.08 * (max(xs) - min(xs) or 1), 0.08 * (max(ys) - min(ys) or 1)
    fig = go.Figure(traces(rows[0]))
    fig.frames = [{"data": traces(r), "traces": [0, 1, 2], "name": str(r["step"]),
                   "layout": {"title": {"text": f"Token embeddings at step {r['step']:,}"}}} for r in rows]
    fig.update_xaxes(range=[min(xs) - pad_x, max(xs) + pad_x], title="principal component 1", zeroline=False)
    fig.update_yaxes(range=[min(ys) - pad_y, max(ys) + pad_y], title="principal component 2", zeroline=False)
    fig.update_layout(height=760 if projector else 600)  # room for the plot under large type's margins
    apply_theme(fig, title=f"Token embeddings at step {rows[0]['step']:,}", projector=projector)
    animation_controls(fig, [str(r["step"]) for r in rows], prefix="step ", redraw=False, duration=800,
                       projector=projector)
    # The legend in the plot's top-left corner, on a faint white card: at the side it took half a
    # phone's width, and in a row above the plot it wrapped into the title on a phone.
    fig.update_layout(legend={"x": 0.01, "xanchor": "left", "y": 0.99, "yanchor": "top",
                              "bgcolor": "rgba(255,255,255,0.8)"}, margin={"r": 20})
    return fig
