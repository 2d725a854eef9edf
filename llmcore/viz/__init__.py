"""Plotly figure builders shared by the notebooks and the dashboard, one module per stage.

    data         corpus_sizes_figure
    training     loss_figure, timeline_figure, embedding_figure
    params       histogram_figure, treemap_figure, dtype_figure, raw_bytes_html
    model        architecture_figure, step_figure, forward_figure, stream_figure
    inference    next_token_figure, generation_figure, sampling_figure, kv_cache_figure
    interpret    attention_figure, logit_lens_figure, feature_histogram_figure, steering_figure, ...
    compress     compression_figure
    scale        calculator_figure, ladder_figure, sizes_figure
    common       apply_theme, token_html, PALETTE, STAGE_COLOURS
    static       notebook_figures (live figure + still PNG in notebooks), figure_png, still_bundle

`import llmcore.viz` is cheap: a builder's module (and plotly) loads the first time
the builder is used, e.g. `llmcore.viz.loss_figure(run.metrics())`.
"""

from __future__ import annotations

import importlib

# name -> the submodule that defines it
_EXPORTS: dict[str, str] = {
    **dict.fromkeys(("apply_theme", "token_html", "PALETTE", "PROJECTOR_PALETTE", "OKABE_ITO", "STAGE_COLOURS"),
                    "common"),
    "corpus_sizes_figure": "data",
    **dict.fromkeys(("loss_figure", "timeline_figure", "embedding_figure"), "training"),
    **dict.fromkeys(("histogram_figure", "treemap_figure", "dtype_figure", "raw_bytes_html"), "params"),
    **dict.fromkeys(("architecture_figure", "step_figure", "forward_figure", "stream_figure"), "model"),
    **dict.fromkeys(("next_token_figure", "generation_figure", "sampling_figure", "kv_cache_figure"), "inference"),
    **dict.fromkeys(("attention_figure", "attention_heads_figure", "logit_lens_figure", "feature_histogram_figure",
                     "feature_logits_figure", "contexts_html", "concepts_figure", "steering_figure"), "interpret"),
    "compression_figure": "compress",
    **dict.fromkeys(("calculator_figure", "ladder_figure", "sizes_figure"), "scale"),
    **dict.fromkeys(("notebook_figures", "figure_png", "still_bundle"), "static"),
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name not in _EXPORTS:
        raise AttributeError(f"module 'llmcore.viz' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"llmcore.viz.{_EXPORTS[name]}"), name)
    globals()[name] = value  # the next lookup is a plain attribute
    return value


def __dir__():
    return sorted(set(globals()) | set(__all__))
