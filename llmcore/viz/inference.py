"""Figures for the Inference stage: one token at a time, each drawn from a distribution.

- `next_token_figure(alternatives, chosen)`: the model's top guesses for the next
  token as bars, the one it drew highlighted.
- `generation_figure(steps, prompt)`: the text growing token by token (frames, with a
  slider and a play button), each frame with that step's probability bars.
- `sampling_figure(before, after, labels)` (from `llmcore.generate.sampling_data`): how temperature,
  top-k and top-p reshape the model's distribution before a token is drawn
  (`llmcore.generate.distribution` does the reshaping).
- `kv_cache_figure(rows)`: time to generate n tokens with and without the KV cache
  (`llmcore.scale.measure_kv_cache`).

Builders return a plotly `go.Figure` and never show it.
"""

from __future__ import annotations

import html
import math

from llmcore.errors import UserError
from llmcore.viz.common import (
    HIGHLIGHT_COLOUR,
    MONO_FAMILY,
    OKABE_ITO,
    STAGE_COLOURS,
    TITLE_WRAP,
    animation_controls,
    apply_theme,
    cell_text,
    continuation_html,
    title_room,
    wrap_text,
)

_SHOW = {" ": "\u00b7", "\n": "\u21b5", "\t": "\u2192"}
BAR_COLOUR = OKABE_ITO["sky_blue"]


def _label(token: str) -> str:
    """A token as an axis label: spaces as ·, newlines as ↵, never empty; escaped for plotly."""
    shown = "".join(_SHOW.get(c, c if c.isprintable() else ascii(c)[1:-1]) for c in token) or "\u2205"
    return html.escape(shown, quote=False)


def _check_alternatives(alternatives) -> list[tuple[str, float]]:
    try:
        out = [(str(t), float(p)) for t, p in alternatives]
    except (TypeError, ValueError):
        raise UserError("alternatives must be (token text, probability) pairs") from None
    if not out:
        raise UserError("there are no alternatives to show")
    if any(not math.isfinite(p) or p < 0 for _, p in out):
        raise UserError("probabilities must be finite and not negative")
    return out


def _unique_labels(tokens: list[str]) -> list[str]:
    """Axis labels for bar categories; two tokens that look alike get a numbered suffix."""
    seen: dict[str, int] = {}
    out = []
    for t in tokens:
        lab = _label(t)
        seen[lab] = seen.get(lab, 0) + 1
        out.append(lab if seen[lab] == 1 else f"{lab} ({seen[lab]})")
    return out


def _bars(alternatives, chosen: str | None) -> dict:
    """One horizontal Bar trace, as a plain dict: plotly checks it once, where it lands (an
    animation's frames built as objects were checked twice, most of a figure's build time)."""
    labels = _unique_labels([t for t, _ in alternatives])
    colours = [HIGHLIGHT_COLOUR if chosen is not None and t == chosen else BAR_COLOUR for t, _ in alternatives]
    return {"type": "bar", "x": [p for _, p in alternatives], "y": labels, "orientation": "h",
            "marker": {"color": colours}, "text": [f"{p:.1%}" for _, p in alternatives], "textposition": "outside",
            "cliponaxis": False, "hovertemplate": "%{y}: %{x:.2%}<extra></extra>"}


def next_token_figure(alternatives, chosen: str | None = None, *, title: str | None = None, projector: bool = False):
    """Horizontal bars of the top next tokens (most likely on top); `chosen` in orange.

    alternatives: [(token text, probability)], e.g. a `Step.alternatives` or the result
    of `llmcore.generate.next_token_probs`. One Bar trace.
    """
    import plotly.graph_objects as go

    alts = _check_alternatives(alternatives)
    fig = go.Figure([_bars(alts, chosen)])
    fig.update_xaxes(title="probability", range=[0, min(1.0, max(p for _, p in alts) * 1.25 + 0.02)], tickformat=".0%")
    fig.update_yaxes(autorange="reversed", tickfont={"family": MONO_FAMILY})
    fig.update_layout(height=120 + (44 if projector else 32) * len(alts), showlegend=False)  # a label per bar
    if title is None:
        title = "What the model expects next" + (f": it drew {_label(chosen)!s}" if chosen is not None else "")
    return apply_theme(fig, title=title, projector=projector)


def generation_figure(steps, prompt: str, *, projector: bool = False, wrap: int | None = None):
    """The text growing one token per frame, with that token's probability bars.

    steps: the `llmcore.generate.Step`s of one generation (a list; each has `.text`,
    `.prob`, `.alternatives`). Two traces, the text (a table cell) and the bars; one
    frame per step, named by its index, with a slider and a play button.
    wrap: characters per line of the text (a plotly table cell never wraps by itself):
    `CELL_WRAP`, or `PROJECTOR_CELL_WRAP` in projector mode; `NARROW_CELL_WRAP` for a phone.
    """
    from plotly.subplots import make_subplots

    steps = list(steps)
    if not steps:
        raise UserError("nothing was generated: ask for at least one token")
    if not isinstance(prompt, str):
        raise UserError("the prompt must be text")
    n_alt = max(len(s.alternatives) for s in steps)
    wrap, size = cell_text(projector, wrap)

    def text(i):
        return continuation_html(prompt, "".join(s.text for s in steps[:i]), steps[i].text, width=wrap)

    # The table as tall as the whole text's lines (a shorter one scrolls and hid the newest token),
    # the bars as tall as their rows, the gap between them for the table's last line and the axis.
    table_px = round(size * (3.5 + 1.45 * (text(len(steps) - 1).count("<br>") + 1)))
    bars_px, gap = round(size * 2.1 * (n_alt + 1)), round(size * 3)
    fig = make_subplots(rows=2, cols=1, row_heights=[table_px, bars_px],
                        vertical_spacing=gap / (table_px + gap + bars_px),
                        specs=[[{"type": "table"}], [{"type": "xy"}]])

    def cell(i):  # traces and frames as dicts, as in _bars
        return {"type": "table", "header": {"values": [f"token {i + 1} of {len(steps)}"], "align": "left",
                                            "fill": {"color": "#e8f5ef"}, "font": {"size": size + 1}},
                "cells": {"values": [[text(i)]], "align": "left", "font": {"family": MONO_FAMILY, "size": size},
                          "fill": {"color": "#ffffff"}}}

    def bars(i):
        s = steps[i]
        alts = _check_alternatives(s.alternatives)
        if s.text not in [t for t, _ in alts]:  # a token drawn from outside the top few: show it too
            alts = alts + [(s.text, s.prob)]
        return _bars(alts, s.text)

    def title(i):
        s = steps[i]
        return wrap_text(f"Token {i + 1}: the model drew {_label(s.text)} (p = {s.prob:.1%})", round(wrap * TITLE_WRAP))

    fig.add_trace(cell(0), row=1, col=1)
    fig.add_trace(bars(0), row=2, col=1)
    fig.frames = [{"data": [cell(i), bars(i)], "traces": [0, 1], "name": str(i),
                   "layout": {"title": {"text": title(i)}}}
                  for i in range(len(steps))]
    top = max([p for s in steps for _, p in s.alternatives] + [s.prob for s in steps])
    fig.update_xaxes(title="probability", range=[0, min(1.05, top * 1.3 + 0.02)], tickformat=".0%", row=2, col=1)
    fig.update_yaxes(autorange="reversed", tickfont={"family": MONO_FAMILY}, row=2, col=1)
    fig.update_layout(showlegend=False)
    apply_theme(fig, title=title(0), projector=projector)
    fig.update_layout(margin={"t": title_room([f.layout.title.text for f in fig.frames], projector=projector)})
    animation_controls(fig, [str(i) for i in range(len(steps))], prefix="token ", redraw=True, duration=500,
                       projector=projector)
    for i, step in enumerate(fig.layout.sliders[0].steps):  # show tokens counted from 1
        step.label = str(i + 1)
    fig.update_layout(height=fig.layout.margin.t + table_px + gap + bars_px + fig.layout.margin.b)
    return fig


def sampling_figure(probs_before, probs_after, labels, *, settings: str = "", projector: bool = False):
    """Grouped bars: the model's probabilities and those actually sampled from, per token.

    Two Bar traces over the same tokens. Temperature below 1 makes the tall bars taller,
    above 1 flattens them; top-k and top-p set the tail to zero (and the rest grows).
    """
    import plotly.graph_objects as go

    try:
        before = [float(p) for p in probs_before]
        after = [float(p) for p in probs_after]
        labels = [str(t) for t in labels]
    except (TypeError, ValueError):
        raise UserError("sampling_figure wants two lists of probabilities and a list of token texts") from None
    if not (len(before) == len(after) == len(labels)) or not labels:
        raise UserError(f"one probability before and after per token: got {len(before)}, {len(after)}, {len(labels)}")
    names = _unique_labels(labels)
    fig = go.Figure([
        go.Bar(x=names, y=before, name="the model's probabilities", marker_color=BAR_COLOUR,
               hovertemplate="%{x}: %{y:.2%}<extra>model</extra>"),
        go.Bar(x=names, y=after, name="after the knobs (what is sampled from)",
               marker_color=STAGE_COLOURS["inference"], hovertemplate="%{x}: %{y:.2%}<extra>sampled</extra>"),
    ])
    fig.update_layout(barmode="group", legend={"orientation": "h", "y": -0.25}, height=440)
    fig.update_xaxes(tickfont={"family": MONO_FAMILY}, title="token")
    fig.update_yaxes(title="probability", tickformat=".0%", rangemode="tozero")
    return apply_theme(fig, title="How the knobs reshape the distribution" + (f": {settings}" if settings else ""),
                       projector=projector)


def kv_cache_figure(rows: list[dict], *, projector: bool = False):
    """Seconds to generate n tokens, with and without the KV cache: two line traces.

    rows: [{"n_tokens", "cache": bool, "seconds"}] (`llmcore.scale.measure_kv_cache`).
    Without the cache the time grows faster than the length (each token re-reads all
    before it); with it, each new token costs about the same.
    """
    import plotly.graph_objects as go

    try:
        pts = {c: sorted((int(r["n_tokens"]), float(r["seconds"])) for r in rows if bool(r["cache"]) == c)
               for c in (True, False)}
    except (KeyError, TypeError, ValueError):
        raise UserError("kv_cache_figure wants rows with n_tokens, cache and seconds") from None
    if not pts[True] and not pts[False]:
        raise UserError("kv_cache_figure needs at least one measurement")
    fig = go.Figure()
    for cache, name, colour in ((True, "with KV cache", STAGE_COLOURS["inference"]),
                                (False, "without (re-read everything each token)", OKABE_ITO["vermillion"])):
        fig.add_trace(go.Scatter(x=[n for n, _ in pts[cache]], y=[s for _, s in pts[cache]], mode="lines+markers",
                                 name=name, line={"color": colour},
                                 hovertemplate="%{x} tokens: %{y:.3f} s<extra>" + name + "</extra>"))
    fig.update_xaxes(title="tokens generated", rangemode="tozero")
    fig.update_yaxes(title="seconds", rangemode="tozero")
    fig.update_layout(legend={"orientation": "h", "y": -0.25}, height=400)
    return apply_theme(fig, title="What the KV cache saves", projector=projector)
