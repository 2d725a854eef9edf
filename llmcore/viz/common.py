"""The shared look of every llmcore chart, and token chips as HTML.

Notebooks and dashboard pages draw the same figures, so they share one palette,
one plotly theme and one way of showing tokens:

- PALETTE: the Okabe-Ito colours, readable with every common colour-vision
  deficiency; STAGE_COLOURS gives each stage of the flowchart its own.
- apply_theme(fig): fonts, margins, axes and colours, in place; with
  projector=True, large type and thick lines for the back of a classroom.
- token_html(pieces): tokens as coloured chips with their ids, shaded by a
  value in [0, 1] (a feature's activation, a probability) when given one.

Nothing here imports plotly: apply_theme only calls the figure's own methods.
In Streamlit, pass `theme=None` to `st.plotly_chart`, or its own theme
replaces this one.
"""

from __future__ import annotations

import html
import math
import operator
from collections.abc import Sequence
from typing import TYPE_CHECKING

from llmcore.errors import UserError

if TYPE_CHECKING:
    import plotly.graph_objects as go

# Okabe & Ito (2008), "Color Universal Design": eight colours that stay distinct
# for deuteranopes, protanopes and tritanopes.
OKABE_ITO: dict[str, str] = {
    "black": "#000000",
    "orange": "#E69F00",
    "sky_blue": "#56B4E9",
    "bluish_green": "#009E73",
    "yellow": "#F0E442",
    "blue": "#0072B2",
    "vermillion": "#D55E00",
    "reddish_purple": "#CC79A7",
}
# The order traces take their colours in (plotly's colorway): strong colours first.
PALETTE: tuple[str, ...] = tuple(
    OKABE_ITO[name]
    for name in (
        "blue", "orange", "bluish_green", "vermillion",
        "sky_blue", "reddish_purple", "yellow", "black",
    )
)  # fmt: skip
# Yellow on white is too faint for a projector (contrast 1.3:1): leave it out there.
PROJECTOR_PALETTE: tuple[str, ...] = tuple(c for c in PALETTE if c != OKABE_ITO["yellow"])

# One colour per stage of llmcore.diagrams. Eight colours for ten stages: stages
# that belong together share one (inference makes the text; features and
# steering are interpretability's tools); scale, a side note, is grey.
STAGE_COLOURS: dict[str, str] = {
    "data": OKABE_ITO["sky_blue"],
    "pretraining": OKABE_ITO["blue"],
    "parameters": OKABE_ITO["orange"],
    "model": OKABE_ITO["vermillion"],
    "inference": OKABE_ITO["bluish_green"],
    "text": OKABE_ITO["bluish_green"],
    "interpretability": OKABE_ITO["reddish_purple"],
    "features": OKABE_ITO["reddish_purple"],
    "steering": OKABE_ITO["reddish_purple"],
    "scale": "#999999",
}

FONT_FAMILY = "Inter, 'Segoe UI', Helvetica, Arial, sans-serif"
MONO_FAMILY = "ui-monospace, SFMono-Regular, Menlo, Consolas, monospace"
FONT_SIZE = 14  # screen: notebook and dashboard
PROJECTOR_FONT_SIZE = 24  # readable from the back row
PROJECTOR_LINE_WIDTH = 4  # px; plotly's default is 2
PROJECTOR_TITLE_CHARS = 60  # a projector title wraps after this many characters (plotly never wraps)
HIGHLIGHT_COLOUR = OKABE_ITO["orange"]  # token chips at value 1.0
# A plotly table cell never wraps its text, so the figures that show a model's writing in one
# (the timeline, the generation) break its lines themselves, at a width that fits the figure:
CELL_WRAP = 90  # characters per line at CELL_FONT_SIZE, a laptop's or a notebook's figure
PROJECTOR_CELL_WRAP = 50  # ... at PROJECTOR_CELL_FONT_SIZE in projector mode
NARROW_CELL_WRAP = 30  # ... in a phone-wide figure (about 330 px)
TITLE_WRAP = 0.85  # the title's characters per line, for a cell wrap (its type is larger and proportional)
CELL_FONT_SIZE, PROJECTOR_CELL_FONT_SIZE = 13, 20  # projector mode's theme does not reach a table's cells


def apply_theme(fig: go.Figure, *, title: str | None = None, projector: bool = False) -> go.Figure:
    """Give `fig` llmcore's look, in place, and return it (so calls chain).

    Screen: white background, 14px type, light grid, Okabe-Ito colours.
    projector=True: 24px black type, black 2px axis lines, lines 4px thick,
    markers 10px, no yellow; for a projected room where contrast is washed out.

    Traces that already carry a colour keep it (plotly express assigns colours
    when it builds a figure): give px `color_discrete_sequence=PALETTE`.
    """
    size = PROJECTOR_FONT_SIZE if projector else FONT_SIZE
    ink = "#000000" if projector else "#222222"
    fig.update_layout(
        template="plotly_white",
        colorway=list(PROJECTOR_PALETTE if projector else PALETTE),
        font={"family": FONT_FAMILY, "size": size, "color": ink},
        title={"x": 0.01, "xanchor": "left", "font": {"size": round(size * 1.3)}},
        hoverlabel={"font": {"family": FONT_FAMILY, "size": size}},
        paper_bgcolor="#ffffff",
        plot_bgcolor="#ffffff",
    )
    if title is not None:
        fig.update_layout(title_text=title)
    # Large type: a long one-line title wraps instead of running off the figure (a title
    # already broken with <br> was laid out by its builder and stays as it is).
    if projector and fig.layout.title.text and "<br>" not in fig.layout.title.text:
        fig.update_layout(title_text=wrap_text(fig.layout.title.text, PROJECTOR_TITLE_CHARS))
    # Room at the top only for a title; axes grow their own margins (automargin).
    top = title_room([fig.layout.title.text], projector=projector) if fig.layout.title.text else round(size * 1.5)
    fig.update_layout(margin={"l": 10, "r": 10, "t": top, "b": 10})

    axes = {
        "automargin": True,
        "showline": True,
        "linecolor": ink if projector else "#888888",
        "linewidth": 2 if projector else 1,
        "ticks": "outside",
        "tickwidth": 2 if projector else 1,
        "gridcolor": "#d0d0d0" if projector else "#ececec",
        "zerolinecolor": "#a0a0a0",
    }
    fig.update_xaxes(**axes)
    fig.update_yaxes(**axes)

    if projector:
        # Thicken thin lines and grow small markers; larger ones set on purpose stay.
        for trace in fig.data:
            if trace.type not in ("scatter", "scattergl"):
                continue
            if trace.line.width is None or trace.line.width < PROJECTOR_LINE_WIDTH:
                trace.line.width = PROJECTOR_LINE_WIDTH
            marker_size = trace.marker.size
            if marker_size is None or (isinstance(marker_size, (int, float)) and marker_size < 10):
                trace.marker.size = 10
    return fig


def cell_text(projector: bool = False, wrap: int | None = None) -> tuple[int, int]:
    """(characters per line, type size) for a model's writing in a table cell: `wrap` if given
    (NARROW_CELL_WRAP for a phone), else the laptop's or projector mode's."""
    if projector:
        return wrap or PROJECTOR_CELL_WRAP, PROJECTOR_CELL_FONT_SIZE
    return wrap or CELL_WRAP, CELL_FONT_SIZE


def animation_controls(fig, labels: list[str], *, prefix: str, redraw: bool, duration: int = 700,
                       projector: bool = False):
    """A play/pause button and, on its own row below them, a slider over the frames named `labels`.

    One row each, so the two never overlap on a narrow figure (on a phone the slider
    beside the buttons ran under them), spaced for the figure's type size. Sets the
    bottom margin that holds them; call after `apply_theme`.
    """
    size = PROJECTOR_FONT_SIZE if projector else FONT_SIZE
    buttons_at = round(size * 4.5)  # below the x axis's numbers and title
    slider_at = buttons_at + round(size * 3.5)
    args_play = [None, {"frame": {"duration": duration, "redraw": redraw}, "fromcurrent": True,
                        "transition": {"duration": 0 if redraw else 300}}]
    args_pause = [[None], {"frame": {"duration": 0, "redraw": redraw}, "mode": "immediate"}]
    fig.update_layout(
        updatemenus=[{"type": "buttons", "showactive": False, "x": 0, "y": 0, "xanchor": "left", "yanchor": "top",
                      "direction": "left", "pad": {"t": buttons_at},
                      "buttons": [{"label": "\u25b6 Play", "method": "animate", "args": args_play},
                                  {"label": "\u275a\u275a Pause", "method": "animate", "args": args_pause}]}],
        sliders=[{"active": 0, "x": 0, "len": 1, "y": 0, "yanchor": "top", "pad": {"t": slider_at},
                  "currentvalue": {"prefix": prefix, "xanchor": "right"},
                  "steps": [{"label": lab, "method": "animate",
                             "args": [[lab], {"frame": {"duration": 0, "redraw": redraw}, "mode": "immediate",
                                              "transition": {"duration": 0}}]} for lab in labels]}],
        margin={"b": slider_at + round(size * 5)},  # the slider's current value, track and labels
    )


def title_room(titles: list[str], *, projector: bool = False) -> int:
    """Pixels above the plot for the tallest of `titles` (an animation's frames change its title)."""
    size = PROJECTOR_FONT_SIZE if projector else FONT_SIZE
    lines = max(t.count("<br>") + 1 for t in titles)
    return round(size * (4 + 1.6 * (lines - 1)))


def wrap_text(text: str, width: int) -> str:
    """Break plotly text into lines of about `width` characters with <br> (plotly never wraps).

    Lines already broken with <br> are wrapped one by one; markup like <sup> is kept whole.
    "How the knobs reshape the distribution: temperature 0.8" (width 30) ->
    "How the knobs reshape the<br>distribution: temperature 0.8".
    """
    import textwrap

    return "<br>".join("<br>".join(textwrap.wrap(line, width, break_long_words=False)) or line
                       for line in text.split("<br>"))


# How token_html shows characters a chip would otherwise hide or lose.
_VISIBLE = {" ": "\u00b7", "\n": "\u21b5", "\t": "\u2192", "\r": "\u240d"}


def _mix(colour: str, other: str, t: float) -> str:
    """Blend two '#rrggbb' colours: t=0 -> colour, t=1 -> other."""
    a = [int(colour[i : i + 2], 16) for i in (1, 3, 5)]
    b = [int(other[i : i + 2], 16) for i in (1, 3, 5)]
    return "#" + "".join(f"{round(x + (y - x) * t):02x}" for x, y in zip(a, b))


def _chip_text(text: str) -> str:
    """A token's text as safe HTML, with whitespace and control characters made visible.

    ' a<b\\n' -> '<span ...>·</span>a&lt;b<span ...>↵</span>'. Markers are faded
    so they read as markers, not as text the model produced.
    """
    if text == "":
        return '<span style="color:#999">\u2205</span>'  # an empty token: ∅
    out = []
    for ch in text:
        if ch in _VISIBLE:
            out.append(f'<span style="color:#999">{_VISIBLE[ch]}</span>')
        elif not ch.isprintable():
            out.append(f'<span style="color:#999">{html.escape(ascii(ch)[1:-1])}</span>')
        else:
            out.append(html.escape(ch, quote=True))
    return "".join(out)


def token_html(
    pieces: Sequence[tuple[str, int]],
    *,
    highlight: Sequence[float] | None = None,
    show_ids: bool = True,
) -> str:
    """Tokens as a row of coloured chips, one HTML string with inline styles.

    pieces: (text, token id) per token, e.g. [("Once", 412), (" upon", 977)].
    highlight: optional value in [0, 1] per token; a chip's background goes
        from white (0) to orange (1). Without it, chips take turns in pale
        palette colours so the boundaries between tokens show.
    show_ids: print each token's id small beside its text.

    All token text is escaped: text from a stranger's file or prompt cannot
    add tags or attributes. Spaces show as ·, newlines as ↵, tabs as →; the
    tooltip gives the exact text and id. Show it with `IPython.display.HTML`
    or `st.html`.
    """
    pieces = list(pieces)
    values: list[float] | None = None
    if highlight is not None:
        values = [float(v) for v in highlight]
        if len(values) != len(pieces):
            raise UserError(f"highlight has {len(values)} values for {len(pieces)} tokens: give one per token")
        for v in values:
            if not math.isfinite(v) or not -1e-6 <= v <= 1 + 1e-6:
                raise UserError(f"highlight value {v} is outside [0, 1]: divide by the largest value first")

    chips = []
    pale = [_mix(c, "#ffffff", 0.7) for c in PALETTE[:6]]  # strong colours, 30% strength
    for i, piece in enumerate(pieces):
        try:
            text, token_id = piece
            token_id = operator.index(token_id)  # ints and numpy ints, not floats
        except (TypeError, ValueError):
            raise UserError(f"token {i} is {piece!r}: token_html wants (text, id) pairs") from None
        if not isinstance(text, str):
            raise UserError(f"token {i} text is {text!r}: token_html wants (text, id) pairs")

        tooltip = f"id {token_id}: {text!r}"
        if values is None:
            background = pale[i % len(pale)]
        else:
            v = min(max(values[i], 0.0), 1.0)
            background = _mix("#ffffff", HIGHLIGHT_COLOUR, v)
            tooltip += f" \u2014 {v:.2f}"
        ids = f'<sub style="font-size:0.7em;color:#555;margin-left:2px">{token_id}</sub>' if show_ids else ""
        chips.append(
            f'<span class="llmcore-token" title="{html.escape(tooltip, quote=True)}" '
            f'style="display:inline-block;margin:2px 1px;padding:1px 4px;border-radius:4px;'
            f"border:1px solid #bbb;background:{background};color:#000;white-space:pre;"
            f'font-family:{MONO_FAMILY}">{_chip_text(text)}{ids}</span>'
        )
    return f'<div class="llmcore-tokens" style="line-height:1.9">{"".join(chips)}</div>'


def continuation_html(prompt: str, text: str, newest: str = "", *, newlines: str = "break",
                      width: int | None = None) -> str:
    """The prompt in grey, then what the model wrote in bold (`newest`, its last token, underlined).

    Escaped HTML; characters that print as nothing show as escapes (``\\x07``).
    newlines: "break" shows ↵ and starts a new line; "mark" shows a faint ↵ and goes on
    (an early model writes little but new lines: as breaks they make a page very tall).
    width: for a plotly table cell, which does not wrap: break lines longer than this after a
    space (a marked new line counts as one character), and end with a line break if there is
    none. Plotly re-wraps a cell without one by splitting the raw text at its spaces, tags
    included, measured as text: a `<span style=...>` cut in two showed as letters.

    >>> continuation_html("Mia", " ran\\n", "!")
    '<span style="color:#888">Mia</span><b> ran↵<br><u>!</u></b>'
    """
    if newlines not in ("break", "mark"):
        raise ValueError(f"newlines must be 'break' or 'mark', not {newlines!r}")
    new_line = "\u21b5<br>" if newlines == "break" else '<span style="color:#999">\u21b5</span>'
    column = 0  # where the next piece starts on its line, for wrapping

    mark = "\0"  # a marked new line while wrapping (no printable text holds it)

    def show(s: str) -> str:
        nonlocal column
        s = "".join(ch if ch.isprintable() or ch == "\n" else ascii(ch)[1:-1] for ch in s)
        lines = s.split("\n") if newlines == "break" else [s.replace("\n", mark)]
        out = []
        for k, line in enumerate(lines):
            start = column if k == 0 else 0
            parts = _wrap(line, width, first=width - start) if width else [line]
            out.append("<br>".join(html.escape(part, quote=False) for part in parts))
            column = (start + len(line)) % width if width else 0
        return new_line.join(out).replace(mark, new_line)

    grey = f'<span style="color:#888">{show(prompt)}</span>'
    if not text and not newest:
        out = grey
    else:
        done = show(text)
        out = f"{grey}<b>{done}<u>{show(newest)}</u></b>" if newest else f"{grey}<b>{done}</b>"
    return out + "<br>" if width and "<br>" not in out else out


def _wrap(s: str, width: int, first: int | None = None) -> list[str]:
    """Lines of one line `s`, at most `width` characters (the first at most `first`), broken after a space."""
    out, room = [], width if first is None else max(1, first)
    while len(s) > room:
        cut = s.rfind(" ", 0, room) + 1 or room  # after the last space, else mid-run
        out.append(s[:cut])
        s, room = s[cut:], width
    out.append(s)
    return out
