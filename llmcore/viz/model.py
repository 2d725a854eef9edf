"""Figures for the Model stage: the transformer opened, one prompt flowing through it.

- `architecture_figure(cfg, lit=...)`: the GPT drawn from its config: tokens, the
  embedding, every block (attention and MLP beside the residual stream), the
  unembedding and the softmax, each box labelled with its real sizes and parameter
  count. A different preset draws a different picture. `lit` lights one box.
- `step_figure(walk, key)`: the real numbers of one step of `llmcore.forward.walk`,
  as a heatmap with the tokens on its rows (scores and patterns: tokens on both axes;
  logits and probabilities: the top ten tokens after the prompt).
- `forward_figure(walk)`: both side by side, animated: press play (or drag the slider)
  and the lit box walks down the model while the numbers of each step appear.
- `stream_figure(walk)`: how big a vector each part adds to the last token's
  residual stream.

Builders only draw: every number comes from the `Walk` (the model's hook points).
"""

from __future__ import annotations

import textwrap

from llmcore.errors import UserError
from llmcore.viz.common import FONT_SIZE, OKABE_ITO, PROJECTOR_FONT_SIZE, STAGE_COLOURS, apply_theme

LIT_FILL = "#ffd54f"  # the same amber as the flowchart's lit stage (llmcore.diagrams)
LIT_LINE = "#e65100"
_FILL = {"tokens": "#f2f2f2", "embed": "#d7ecf8", "attention": "#cfe3f1", "MLP": "#fbe3c2",
         "unembed": "#e8e8e8", "softmax": "#d9efe6", "block": "#fafafa"}
MAX_DRAWN_BLOCKS = 4  # deeper models draw the first two blocks, "...", and the last


def _boxes(cfg) -> list[dict]:
    """Where each box of the architecture goes: [{part, x0, x1, y0, y1, label, fill}], top to bottom."""
    from llmcore.model import parameter_breakdown

    d, d_head = cfg.d_model, cfg.d_head
    per = parameter_breakdown(cfg)
    n_attn = per["attention"] // cfg.n_layers + 2 * d  # W_Q..W_O and biases, plus ln1
    n_mlp = per["mlp"] // cfg.n_layers + 2 * d  # W_in, W_out and biases, plus ln2
    shown = list(range(cfg.n_layers))
    if cfg.n_layers > MAX_DRAWN_BLOCKS:
        shown = [0, 1, None, cfg.n_layers - 1]  # None: the blocks in between, as one row

    boxes, y = [], 0.0
    def box(part, label, fill, h=1.0, x0=3.0, x1=10.0):  # noqa: E306 - a tiny local helper
        nonlocal y
        boxes.append({"part": part, "x0": x0, "x1": x1, "y0": y - h, "y1": y, "label": label, "fill": fill})
        y -= h + 0.35

    box("tokens", f"<b>Tokens</b><br>ids from 0 to {cfg.d_vocab - 1:,}", _FILL["tokens"], x0=0.0)
    box("embed", f"<b>Embedding</b>  W_E [{cfg.d_vocab:,}\u00d7{d}] + W_pos [{cfg.n_ctx}\u00d7{d}]"
        f"<br>{per['embeddings']:,} parameters", _FILL["embed"], x0=0.0)
    for i in shown:
        if i is None:
            hidden = cfg.n_layers - 3
            box("block ...", f"<b>\u22ee {hidden} more blocks</b>, the same shape", _FILL["block"], h=0.7)
            continue
        box(f"block {i} attention", f"<b>Block {i} \u00b7 attention</b>  {cfg.n_heads} heads \u00d7 {d_head}"
            f"<br>{n_attn:,} parameters", _FILL["attention"])
        box(f"block {i} MLP", f"<b>Block {i} \u00b7 MLP</b>  {d} \u2192 {cfg.d_mlp} \u2192 {d}"
            f"<br>{n_mlp:,} parameters", _FILL["MLP"])
    box("unembed", f"<b>Final LayerNorm + unembedding</b>  W_E\u1d40 (shared)<br>{2 * d:,} new parameters",
        _FILL["unembed"], x0=0.0)
    box("softmax", f"<b>Softmax</b> \u2192 {cfg.d_vocab:,} probabilities", _FILL["softmax"], x0=0.0)
    return boxes


def _lit_boxes(boxes: list[dict], lit: str | None) -> list[dict]:
    """The boxes a part lights: itself; both halves of a block; the '...' row for a hidden block."""
    if lit is None:
        return []
    hit = [b for b in boxes if b["part"] == lit or b["part"].startswith(lit + " ")]
    if not hit and lit.startswith("block "):
        hit = [b for b in boxes if b["part"] == "block ..."]
    if not hit:
        raise UserError(f"no part {lit!r} in this model; the parts are {', '.join(b['part'] for b in boxes)}")
    return hit


def _outline(hit: list[dict]) -> tuple[list, list]:
    """x, y of rectangles around the lit boxes (None between them), for a filled scatter trace."""
    xs, ys = [], []
    for b in hit:
        xs += [b["x0"], b["x1"], b["x1"], b["x0"], b["x0"], None]
        ys += [b["y0"], b["y0"], b["y1"], b["y1"], b["y0"], None]
    return xs, ys


def _draw_architecture(fig, cfg, *, projector: bool, xref="x", yref="y", row=None, col=None):
    """Add the boxes, the residual stream and the labels to `fig` (on the given axes)."""
    import plotly.graph_objects as go

    boxes = _boxes(cfg)
    font = 16 if projector else 12
    first_block = next((b for b in boxes if b["part"].startswith("block")), boxes[1])
    last_block = [b for b in boxes if b["part"].startswith("block")][-1] if cfg.n_layers else boxes[1]
    # The residual stream: a thick line down the left, from the embedding to the unembedding.
    stream_top, stream_bottom = boxes[1]["y0"], boxes[-2]["y1"]
    fig.add_shape(type="line", x0=1.2, x1=1.2, y0=stream_top, y1=stream_bottom, xref=xref, yref=yref,
                  line={"color": STAGE_COLOURS["model"], "width": 8 if projector else 6}, layer="below")
    fig.add_annotation(x=1.2, y=(first_block["y1"] + last_block["y0"]) / 2, xref=xref, yref=yref,
                       text=f"residual stream<br>[pos, {cfg.d_model}]", textangle=-90, showarrow=False,
                       xshift=-(font + 4), font={"size": font, "color": STAGE_COLOURS["model"]})
    for b in boxes:
        fig.add_shape(type="rect", x0=b["x0"], x1=b["x1"], y0=b["y0"], y1=b["y1"], xref=xref, yref=yref,
                      fillcolor=b["fill"], line={"color": "#666666", "width": 1}, layer="below")
        fig.add_annotation(x=(b["x0"] + b["x1"]) / 2, y=(b["y0"] + b["y1"]) / 2, xref=xref, yref=yref,
                           text=b["label"], showarrow=False, font={"size": font, "color": "#000000"})
        if b["part"].startswith("block") and b["part"] != "block ...":  # read from the stream, add back
            mid = (b["y0"] + b["y1"]) / 2
            fig.add_shape(type="line", x0=1.2, x1=b["x0"], y0=mid, y1=mid, xref=xref, yref=yref,
                          line={"color": "#666666", "width": 2}, layer="below")
            fig.add_annotation(x=2.1, y=mid, xref=xref, yref=yref, text="+", showarrow=False,
                               font={"size": font + 4, "color": STAGE_COLOURS["model"]}, yshift=font)
    hidden = {"visible": False, "showgrid": False, "zeroline": False, "fixedrange": True}
    fig.update_xaxes(range=[-0.2, 10.2], **hidden, row=row, col=col)
    fig.update_yaxes(range=[boxes[-1]["y0"] - 0.2, 0.2], **hidden, row=row, col=col)
    fig.add_trace(go.Scatter(x=[], y=[], fill="toself", mode="lines", fillcolor="rgba(255, 213, 79, 0.55)",
                             line={"color": LIT_LINE, "width": 4}, hoverinfo="skip", showlegend=False),
                  row=row, col=col)
    return boxes


def architecture_figure(cfg, *, lit: str | None = None, projector: bool = False, width: int | None = None):
    """The GPT of `cfg`, drawn box by box with its sizes; `lit` (a part) lit up in amber.

    Parts: "tokens", "embed", "block {i} attention", "block {i} MLP", "block {i}" (both),
    "unembed", "softmax" (`llmcore.forward.parts(cfg)`). `width` wraps the title at that
    many characters, for a narrow column of a web page.
    """
    import plotly.graph_objects as go

    from llmcore.model import GPTConfig

    if not isinstance(cfg, GPTConfig):
        raise UserError("architecture_figure wants a model config (run.model.cfg)")
    fig = go.Figure()
    boxes = _draw_architecture(fig, cfg, projector=projector)
    xs, ys = _outline(_lit_boxes(boxes, lit))
    fig.data[-1].update(x=xs, y=ys)
    rows = len(boxes)
    fig.update_layout(height=round((70 if projector else 52) * rows + 60), showlegend=False)
    title = f"A GPT with {cfg.n_params():,} parameters: {cfg.n_layers} blocks, d_model {cfg.d_model}"
    if width is None:
        return apply_theme(fig, title=title, projector=projector)
    title = "<br>".join(textwrap.wrap(title, width))
    apply_theme(fig, title=title, projector=projector)
    top = _top_margin(title, projector)
    fig.update_layout(height=fig.layout.height - fig.layout.margin.t + top, margin={"t": top},
                      title=_title_place(projector))
    return fig


def _view(walk, step) -> dict:
    """What the heatmap shows for a step: z (rows of numbers), cell text, tick labels, colours, titles.

    Axes are numeric (0, 1, 2, ...) with the tokens as tick labels, so one animated figure
    can move from a 1-row picture to a 5 x 512 one without keeping stale categories.
    """
    import math

    rows = [f"{i}: {p!r}" for i, p in enumerate(walk.pieces)]
    v = step.values
    if step.axes[-1] == "d_vocab":  # logits or probabilities: the top tokens after the prompt
        last = v[-1] if v.dim() == 2 else v
        fmt = ".0%" if step.key == "probs" else ".2f"
        z = [[float(last[i])] for i, _ in walk.top]
        return {"z": z, "text": [[format(x[0], fmt)] for x in z], "x": [step.title.lower()],
                "y": [repr(text) for _, text in walk.top], "scale": "Greens" if step.key == "probs" else "Purples",
                "mid": None, "xtitle": "", "ytitle": f"the top {len(z)} next tokens (last position)"}
    if step.axes == ("pos",):  # token ids: one row of cells, all one colour
        ids = v.tolist()
        return {"z": [[0.0] * len(ids)], "text": [[str(i) for i in ids]], "x": rows, "y": ["id"],
                "scale": [[0, "#eeeeee"], [1, "#eeeeee"]], "mid": None, "xtitle": "token", "ytitle": ""}
    if step.axes == ("query_pos", "key_pos"):  # scores or pattern: who reads whom
        z = [[None if math.isinf(x) else round(float(x), 3) for x in r] for r in v.tolist()]
        text = [["\u2212\u221e" if math.isinf(x) else f"{x:.2f}" for x in r] for r in v.tolist()]
        pattern = step.key == "pattern"
        return {"z": z, "text": text, "x": rows, "y": rows, "scale": "Oranges" if pattern else "RdBu_r",
                "mid": None if pattern else 0.0, "xtitle": "key: the token read", "ytitle": "query: the reader"}
    z = [[round(float(x), 2) for x in r] for r in v.tolist()]  # [pos, numbers]; 2 decimals keep notebooks small
    return {"z": z, "text": None, "x": None, "y": rows, "scale": "RdBu_r", "mid": 0.0,
            "xtitle": f"{step.axes[1]}: {v.shape[1]} numbers per token", "ytitle": ""}


def _heatmap(view: dict, *, projector: bool):
    import plotly.graph_objects as go

    n_cols = len(view["z"][0])
    return go.Heatmap(z=view["z"], colorscale=view["scale"], zmid=view["mid"], text=view["text"],
                      texttemplate="%{text}" if view["text"] else "",  # "" clears an earlier frame's text
                      textfont={"size": 18 if projector else 12}, showscale=False,
                      xgap=1 if n_cols <= 64 else 0, ygap=1, hoverinfo="z" if view["text"] is None else "text")


def _axes(view: dict) -> tuple[dict, dict]:
    """Layout for the heatmap's x and y axes: fixed ranges, the tokens as tick labels."""
    n_rows, n_cols = len(view["z"]), len(view["z"][0])
    x = {"range": [-0.5, n_cols - 0.5], "title": {"text": view["xtitle"]}, "showgrid": False, "zeroline": False}
    x |= {"tickmode": "array", "tickvals": list(range(n_cols)), "ticktext": view["x"]} if view["x"] else \
         {"tickmode": "auto", "tickvals": None, "ticktext": None}
    y = {"range": [n_rows - 0.5, -0.5], "title": {"text": view["ytitle"]}, "showgrid": False, "zeroline": False,
         "tickmode": "array", "tickvals": list(range(n_rows)), "ticktext": view["y"]}
    return x, y


def _caption(walk, step, number: int, width: int, brief: bool = False) -> str:
    """The step's title, shape and sentence (wrapped), and the parameters it used (brief: title and shape)."""
    if brief:
        head = "<br>".join(f"<b>{line}</b>" for line in textwrap.wrap(f"{number}/{len(walk.steps)} \u00b7 {step.title}",
                                                                     width))
        return f"{head}<br>{step.shape}"
    used = ""
    if step.params:
        names = ", ".join(step.params) if len(step.params) <= 2 else f"all {len(step.params)} tensors of {step.part}"
        used = "<br><i>" + "<br>".join(textwrap.wrap(
            f"parameters used: {names} ({walk.n_params(step):,} numbers of the file)", width)) + "</i>"
    sentence = "<br>".join(textwrap.wrap(step.text, width))
    return f"<b>{number}/{len(walk.steps)} \u00b7 {step.title}</b> {step.shape}<br>{sentence}{used}"


def _title_place(projector: bool) -> dict:
    """A caption of several lines, pinned to the top of the figure (plotly places its first line)."""
    return {"yref": "container", "y": 1, "yanchor": "top",
            "pad": {"t": round((PROJECTOR_FONT_SIZE if projector else FONT_SIZE) * 1.3) + 6}}


def _top_margin(caption: str, projector: bool) -> int:
    """Room above the plot for a caption of several lines."""
    line = (PROJECTOR_FONT_SIZE if projector else FONT_SIZE) * 1.3 * 1.2
    return round(line * (caption.count("<br>") + 1) + 30)


def step_figure(walk, key: str, *, projector: bool = False, width: int | None = None, brief: bool = False):
    """The real numbers of one step (`walk.step(key)`) as a heatmap, titled with its sentence.

    `width` wraps the title at that many characters (default: 60 on a projector, else 90);
    `brief` titles it with the step's name and shape only, for a page that prints the rest.
    """
    import plotly.graph_objects as go

    step = walk.step(key)
    view = _view(walk, step)
    fig = go.Figure(_heatmap(view, projector=projector))
    caption = _caption(walk, step, walk.steps.index(step) + 1, width or (60 if projector else 90), brief)
    apply_theme(fig, title=caption, projector=projector)
    x, y = _axes(view)
    fig.update_xaxes(**x)
    fig.update_yaxes(**y)
    top = _top_margin(caption, projector)
    fig.update_layout(height=top + (480 if projector else 320), margin={"t": top},
                      title=_title_place(projector))
    return fig


def forward_figure(walk, *, projector: bool = False):
    """The architecture (left) and the numbers of each step (right), animated step by step.

    One frame per step of the walk: the lit box moves to the part the step belongs to,
    the heatmap shows that step's tensor, the title says what it is. Play, pause, or
    drag the slider to any step.
    """
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    fig = make_subplots(rows=1, cols=2, column_widths=[0.4, 0.6], horizontal_spacing=0.08)
    cfg_boxes = _draw_architecture(fig, walk.cfg, projector=projector, xref="x", yref="y", row=1, col=1)
    width = 55 if projector else 80
    views = [_view(walk, s) for s in walk.steps]
    first = _heatmap(views[0], projector=projector)
    fig.add_trace(first, row=1, col=2)
    lit_trace, heat_trace = len(fig.data) - 2, len(fig.data) - 1
    frames, slider = [], []
    for i, (step, view) in enumerate(zip(walk.steps, views)):
        xs, ys = _outline(_lit_boxes(cfg_boxes, step.part))
        frames.append(go.Frame(
            name=step.key,
            data=[go.Scatter(x=xs, y=ys), _heatmap(view, projector=projector)],
            traces=[lit_trace, heat_trace],
            layout={"title": {"text": _caption(walk, step, i + 1, width)}, "xaxis2": _axes(view)[0],
                    "yaxis2": _axes(view)[1]},
        ))
        slider.append({"label": str(i + 1), "method": "animate",
                       "args": [[step.key], {"mode": "immediate", "frame": {"duration": 0, "redraw": True}}]})
    fig.frames = frames
    fig.data[lit_trace].update(x=frames[0].data[0].x, y=frames[0].data[0].y)
    play = {"frame": {"duration": 1800, "redraw": True}, "fromcurrent": True, "transition": {"duration": 0}}
    fig.update_layout(
        showlegend=False,
        updatemenus=[{"type": "buttons", "direction": "left", "x": 0, "y": -0.08, "xanchor": "left", "yanchor": "top",
                      "buttons": [{"label": "\u25b6 play", "method": "animate", "args": [None, play]},
                                  {"label": "\u275a\u275a pause", "method": "animate",
                                   "args": [[None], {"mode": "immediate", "frame": {"duration": 0}}]}]}],
        sliders=[{"steps": slider, "x": 0.2, "len": 0.8, "y": -0.08, "yanchor": "top",
                  "currentvalue": {"prefix": "step ", "visible": True}, "pad": {"t": 10}}],
    )
    apply_theme(fig, title=_caption(walk, walk.steps[0], 1, width), projector=projector)
    x, y = _axes(views[0])
    fig.update_xaxes(**x, row=1, col=2)
    fig.update_yaxes(**y, row=1, col=2)
    top = max(_top_margin(f.layout.title.text, projector) for f in frames)  # the longest caption fits
    fig.update_layout(height=top + (760 if projector else 560), margin={"t": top, "b": 130},
                      title=_title_place(projector))
    return fig


def stream_figure(walk, *, projector: bool = False, width: int | None = None):
    """Bars: how big a vector (its length) each part adds to the last token's residual stream.

    `width` wraps the title at that many characters, for a narrow screen.
    """
    import plotly.graph_objects as go

    names, sizes = list(walk.added), list(walk.added.values())
    colours = [STAGE_COLOURS["data"] if n == "embed" else OKABE_ITO["blue"] if n.endswith("attention")
               else OKABE_ITO["orange"] for n in names]
    fig = go.Figure(go.Bar(x=names, y=sizes, marker_color=colours,
                           hovertemplate="%{x}: adds a vector of length %{y:.2f}<extra></extra>"))
    fig.update_xaxes(title="part of the model, in order", tickangle=-45 if len(names) > 6 else 0)
    fig.update_yaxes(title="length of what it adds")
    last = walk.pieces[-1]
    title = f"What each part adds to the stream of the last token, {last!r}"
    if width is None:
        return apply_theme(fig, title=title, projector=projector)
    title = "<br>".join(textwrap.wrap(title, width))
    apply_theme(fig, title=title, projector=projector)
    fig.update_layout(margin={"t": _top_margin(title, projector)}, title=_title_place(projector))
    return fig
