"""The compression figure: the model against gzip, bz2 and xz, in bits per byte.

`compression_figure(result)` draws the dict from `llmcore.compress.compare_compressors`
as grouped bars, one group per compressor, two bars each:

- "the receiver has nothing": a classical compressor alone; for the model, its file
  plus the parameter file the receiver needs to decode it.
- "the receiver has the training text": a classical compressor given the training
  text as context; for the model, its file alone, because the parameters (made from
  the training text) are already there.

The model wins the second comparison and loses the first by a mile: the parameters
are the training text, compressed. The y axis is logarithmic so both show.
"""

from __future__ import annotations

import math

from llmcore.errors import UserError
from llmcore.viz.common import OKABE_ITO, apply_theme

RAW_BITS_PER_BYTE = 8  # UTF-8 stored as is


def compression_figure(result: dict, *, projector: bool = False):
    """Bits per byte for every method in `result` (lower is better), as a plotly Figure."""
    import plotly.graph_objects as go

    try:
        methods = result["methods"]
        n_bytes = result["text_bytes"]
        model, adjusted = methods["model"], methods["model + parameter file"]
        classical = {k: v for k, v in methods.items() if k not in ("model", "model + parameter file")}
        alone = [adjusted["bits_per_byte"]] + [v["bits_per_byte"] for v in classical.values()]
        given = [model["bits_per_byte"]] + [v.get("given_train_bits_per_byte") for v in classical.values()]
        sizes_alone = [adjusted["bytes"]] + [v["bytes"] for v in classical.values()]
        sizes_given = [model["bytes"]] + [v.get("given_train_bytes") for v in classical.values()]
    except (KeyError, TypeError, AttributeError) as e:
        raise UserError(
            f"compression_figure needs the dict from llmcore.compress.compare_compressors (missing {e})"
        ) from None
    names = ["model"] + list(classical)

    def bars(label, values, sizes, colour, note):
        return go.Bar(
            name=label,
            x=names,
            y=values,
            marker_color=colour,
            text=[f"{v:.2f}" if v is not None else "" for v in values],
            textposition="outside",
            customdata=[[s if s is not None else 0, n] for s, n in zip(sizes, note)],
            hovertemplate="%{x}: %{y:.3f} bits per byte<br>%{customdata[0]:,} bytes<br>%{customdata[1]}<extra></extra>",
        )

    fig = go.Figure(
        [
            bars(
                "the receiver has nothing",
                alone,
                sizes_alone,
                OKABE_ITO["sky_blue"],
                ["the file + the parameter file"] + ["alone"] * len(classical),
            ),
            bars(
                "the receiver has the training text",
                given,
                sizes_given,
                OKABE_ITO["blue"],
                ["the file; the parameters are the training text, compressed"]
                + ["what the text adds to the compressed training text"] * len(classical),
            ),
        ]
    )
    fig.add_hline(y=RAW_BITS_PER_BYTE, line_dash="dash", line_color="#888888")
    # plotly places annotations on a log axis by log10 of the value (shapes by the value)
    fig.add_annotation(
        text="no compression (8 bits per byte)",
        x=0,
        xref="paper",
        xanchor="left",
        y=math.log10(RAW_BITS_PER_BYTE),
        yref="y",
        yanchor="bottom",
        showarrow=False,
    )
    fig.update_layout(barmode="group", legend={"orientation": "h", "y": -0.15})
    fig.update_yaxes(type="log", title_text="bits per byte (log scale, lower is better)" if not projector
                     else "bits per byte<br>(log scale, lower is better)")
    title = f"Compressing {n_bytes:,} bytes of text: the model against gzip, bz2 and xz"
    if model.get("cross_entropy_bits_per_byte") is not None:
        title += f"<br><sup>the model's cross-entropy: {model['cross_entropy_bits_per_byte']:.3f} bits per byte</sup>"
    return apply_theme(fig, title=title, projector=projector)
