"""Figures for the Pre-training data stage: how big our corpus is next to Llama 2's.

`corpus_sizes_figure` puts the corpora a learner has (from `Corpus.stats()`) beside
the explainer's "~10 TB of text" on one logarithmic axis; each bar says what that
much text means to a person (books, and years of reading, from
`llmcore.scale.reading_equivalents`, whose assumptions go in the caption).

Builders return a plotly `go.Figure` and never show it.
"""

from __future__ import annotations

from llmcore.errors import UserError
from llmcore.viz.common import OKABE_ITO, apply_theme, wrap_text

LLAMA2_LABEL = "Llama 2 (~10 TB)"


def _size_text(n_bytes: float) -> str:
    """1_234_567 -> '1.2 MB' (decimal units, as disks are sold)."""
    for factor, unit in ((1e12, "TB"), (1e9, "GB"), (1e6, "MB"), (1e3, "KB")):
        if n_bytes >= factor:
            return f"{n_bytes / factor:,.1f} {unit}"
    return f"{n_bytes:,.0f} bytes"


def corpus_sizes_figure(corpora: dict, *, include_llama2: bool = True, projector: bool = False):
    """Horizontal bars of bytes per corpus on a log axis, with reading-time equivalents.

    corpora: {name: stats} where stats has at least "bytes" (as `Corpus.stats()` gives),
        e.g. {"storyworld": {"bytes": 1_200_000, ...}}.
    include_llama2: add the explainer's ~10 TB (`llmcore.scale.LLAMA2_DATA_BYTES`) for scale.
    One bar trace; Llama 2's bar is grey, ours take the data stage's colour.
    """
    import plotly.graph_objects as go

    from llmcore.scale import LLAMA2_DATA_BYTES, reading_equivalents, reading_time_text

    if not isinstance(corpora, dict):
        raise UserError("corpus_sizes_figure wants {name: stats dict with 'bytes'}")
    rows = []
    for name, stats in corpora.items():
        n = stats.get("bytes") if isinstance(stats, dict) else None
        if isinstance(n, bool) or not isinstance(n, (int, float)) or n < 1:
            raise UserError(f"corpus {name!r} needs a positive 'bytes' count (from Corpus.stats())")
        rows.append((str(name), float(n)))
    if include_llama2:
        rows.append((LLAMA2_LABEL, LLAMA2_DATA_BYTES))
    if not rows:
        raise UserError("corpus_sizes_figure needs at least one corpus")
    rows.sort(key=lambda r: r[1])  # smallest at the bottom, Llama 2 on top
    colours = ["#999999" if name == LLAMA2_LABEL else OKABE_ITO["sky_blue"] for name, _ in rows]
    # The bar shows the size; the reading time is in the hover (beside a bar it ran off narrow figures).
    text = [_size_text(n) for _, n in rows]
    reading = [reading_time_text(n) for _, n in rows]
    fig = go.Figure(go.Bar(
        x=[n for _, n in rows], y=[name for name, _ in rows], orientation="h", marker_color=colours,
        text=text, customdata=reading, textposition="auto", insidetextanchor="start", cliponaxis=False,
        hovertemplate="%{y}: %{x:,.0f} bytes<br>%{customdata}<extra></extra>",
    ))
    fig.update_xaxes(type="log", title="bytes of text (log scale)")
    assumptions = reading_equivalents(1)["assumptions"]["text"]
    ratio = ""
    ours = [n for name, n in rows if name != LLAMA2_LABEL]
    if include_llama2 and ours:
        ratio = f" Llama 2 read {LLAMA2_DATA_BYTES / max(ours):,.0f}x more than our largest."
    note = wrap_text(f"Assumptions: {assumptions}.", 48)
    ratio = wrap_text(ratio, 48)
    fig.add_annotation(text=f"{note}<br>{ratio.strip()}", xref="paper", yref="paper", x=0, y=-0.2 if projector else -0.28,
                       xanchor="left", yanchor="top", showarrow=False, font={"size": 11, "color": "#555"})
    fig.update_layout(height=160 + (110 if projector else 60) * len(rows), margin={"b": 90})
    apply_theme(fig, title="How much text? Our corpora against Llama 2's", projector=projector)
    fig.update_layout(margin={"b": 190 if projector else 120})  # room for the assumptions under the axis
    return fig
