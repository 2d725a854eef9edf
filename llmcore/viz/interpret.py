"""Figures for interpretability: attention, logit lens, features, concepts, steering.

Each builder takes the data an `llmcore.interpret` function returned and gives a
themed plotly figure (or HTML, for highlighted text). Long inputs stay readable: a
heatmap shows a *window* of at most `max_tokens` tokens (by default the last ones),
with the token pieces as tick labels, and says in its title which part it shows,
never a 1000 x 1000 smear.
"""

from __future__ import annotations

from llmcore.errors import UserError
from llmcore.viz.common import OKABE_ITO, PALETTE, apply_theme, token_html

MAX_TOKENS = 40  # the most tokens a heatmap axis shows
_SHOW = {" ": "\u00b7", "\n": "\u21b5", "\t": "\u2192"}


def _label(piece: str) -> str:
    """A token as a tick label: spaces as ·, newlines as ↵, never empty."""
    return "".join(_SHOW.get(ch, ch) for ch in piece) or "\u2205"


def _window(n: int, max_tokens: int, start: int | None) -> tuple[int, int]:
    """[lo, hi): the last `max_tokens` of n positions, or those from `start`."""
    if isinstance(max_tokens, bool) or not isinstance(max_tokens, int) or max_tokens < 1:
        raise UserError(f"max_tokens must be a positive whole number, got {max_tokens!r}")
    if start is None:
        return max(0, n - max_tokens), n
    if isinstance(start, bool) or not isinstance(start, int) or not 0 <= start < n:
        raise UserError(f"start must be a token position from 0 to {n - 1}, got {start!r}")
    return start, min(n, start + max_tokens)


def _axis_labels(pieces, lo: int, hi: int) -> dict:
    """Numeric positions with token text as tick labels (repeated tokens stay separate)."""
    return {"tickmode": "array", "tickvals": list(range(lo, hi)),
            "ticktext": [_label(p) for p, _ in pieces[lo:hi]], "tickangle": -60}


def attention_figure(attn, layer: int, head: int, *, max_tokens: int = MAX_TOKENS, start: int | None = None,
                     projector: bool = False):
    """One head's attention pattern as a heatmap: rows are queries, columns the keys they read."""
    import plotly.graph_objects as go

    pattern = attn.head(layer, head)  # [query, key]
    n = pattern.shape[0]
    lo, hi = _window(n, max_tokens, start)
    z = pattern[lo:hi, lo:hi].numpy()
    text = [[f"{_label(attn.pieces[q][0])} \u2190 {_label(attn.pieces[k][0])}" for k in range(lo, hi)] for q in range(lo, hi)]
    fig = go.Figure(go.Heatmap(z=z, x=list(range(lo, hi)), y=list(range(lo, hi)), zmin=0, zmax=1, text=text,
                               colorscale="Blues", colorbar={"title": "attention"},
                               hovertemplate="%{text}<br>%{z:.3f}<extra></extra>"))
    fig.update_xaxes(title="key (the token read)", side="bottom", **_axis_labels(attn.pieces, lo, hi))
    fig.update_yaxes(title="query (the token reading)", autorange="reversed", **_axis_labels(attn.pieces, lo, hi))
    part = "" if (lo, hi) == (0, n) else f", tokens {lo}..{hi - 1} of {n}"
    return apply_theme(fig, title=f"Attention, layer {layer} head {head}{part}", projector=projector)


def attention_heads_figure(attn, layer: int, *, max_tokens: int = 20, projector: bool = False):
    """Every head of one layer side by side, on the last `max_tokens` tokens."""
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    n_heads = attn.patterns.shape[1]
    n = attn.patterns.shape[2]
    lo, hi = _window(n, max_tokens, None)
    fig = make_subplots(rows=1, cols=n_heads, subplot_titles=[f"head {h}" for h in range(n_heads)],
                        horizontal_spacing=0.02)
    for h in range(n_heads):
        z = attn.head(layer, h)[lo:hi, lo:hi].numpy()
        fig.add_trace(go.Heatmap(z=z, x=list(range(lo, hi)), y=list(range(lo, hi)), zmin=0, zmax=1,
                                 colorscale="Blues", showscale=h == n_heads - 1), row=1, col=h + 1)
        fig.update_xaxes(showticklabels=False, row=1, col=h + 1)
        fig.update_yaxes(autorange="reversed", showticklabels=h == 0, row=1, col=h + 1,
                         **(_axis_labels(attn.pieces, lo, hi) if h == 0 else {}))
    return apply_theme(fig, title=f"Layer {layer}, all heads (last {hi - lo} tokens)", projector=projector)


def logit_lens_figure(lens, *, max_tokens: int = 16, start: int | None = None, projector: bool = False):
    """Stage x position: colour = probability of the top guess, text = that guess."""
    import plotly.graph_objects as go

    n = len(lens.pieces)
    lo, hi = _window(n, max_tokens, start)
    z = lens.top_probs[:, lo:hi, 0].numpy()  # [n_stages, window]
    guess = [[_label(lens.top_strs[s][p][0]) for p in range(lo, hi)] for s in range(len(lens.stages))]
    hover = [["<br>".join(f"{_label(t)} {float(pr):.2f}" for t, pr in zip(lens.top_strs[s][p], lens.top_probs[s, p]))
              for p in range(lo, hi)] for s in range(len(lens.stages))]
    fig = go.Figure(go.Heatmap(z=z, x=list(range(lo, hi)), y=lens.stages, zmin=0, zmax=1, text=guess,
                               texttemplate="%{text}", customdata=hover, colorscale="Purples",
                               colorbar={"title": "p(top)"}, hovertemplate="%{customdata}<extra></extra>"))
    fig.update_xaxes(title="input token (the guess is for the token after it)", **_axis_labels(lens.pieces, lo, hi))
    fig.update_yaxes(title="stopped after", autorange="reversed")
    part = "" if (lo, hi) == (0, n) else f", tokens {lo}..{hi - 1} of {n}"
    return apply_theme(fig, title=f"Logit lens: the model's guess after each layer{part}", projector=projector)


def feature_histogram_figure(hist: dict, feature: int, *, projector: bool = False):
    """Bars over a feature's non-zero activations (`features.activation_histogram`)."""
    import plotly.graph_objects as go

    edges = hist["edges"]
    mids = [(a + b) / 2 for a, b in zip(edges[:-1], edges[1:])]
    fig = go.Figure(go.Bar(x=mids, y=hist["counts"], marker_color=OKABE_ITO["reddish_purple"]))
    fig.update_xaxes(title="activation (when on)")
    fig.update_yaxes(title="tokens")
    pct = 100 * hist["fraction_active"]
    return apply_theme(fig, title=f"Feature {feature}: on for {pct:.2f}% of tokens", projector=projector)


def feature_logits_figure(effects: dict, feature: int, *, projector: bool = False):
    """The tokens a feature pushes up (right) and down (left) (`features.logit_effects`)."""
    import plotly.graph_objects as go

    rows = sorted(effects["down"] + effects["up"], key=lambda r: r[1])  # most suppressed at the bottom
    colours = [OKABE_ITO["bluish_green"] if v > 0 else OKABE_ITO["vermillion"] for _, v in rows]
    fig = go.Figure(go.Bar(x=[v for _, v in rows], y=[f"{_label(t)} " for t, _ in rows], orientation="h",
                           marker_color=colours))
    fig.update_xaxes(title="change in logit per unit of activation (approx.)")
    return apply_theme(fig, title=f"Feature {feature}: tokens it promotes and suppresses", projector=projector)


def contexts_html(contexts: list[dict]) -> str:
    """Top-activating contexts as rows of token chips shaded by the feature's activation."""
    if not contexts:
        return "<p>This feature never fires on the text.</p>"
    top = max(c["max"] for c in contexts) or 1.0
    rows = [token_html(c["pieces"], highlight=[min(1.0, max(0.0, a / top)) for a in c["acts"]], show_ids=False)
            for c in contexts]
    return "".join(f'<div title="max {c["max"]:.2f}">{r}</div>' for c, r in zip(contexts, rows))


def concepts_figure(matches: dict, *, projector: bool = False):
    """Precision, recall and F1 of each concept's best feature (`features.label_features`)."""
    import plotly.graph_objects as go

    names = list(matches)
    fig = go.Figure()
    for i, metric in enumerate(("precision", "recall", "f1")):
        vals = [m[metric] if isinstance(m, dict) else getattr(m, metric) for m in matches.values()]
        fig.add_trace(go.Bar(name=metric, x=names, y=vals, marker_color=PALETTE[i]))
    fig.update_yaxes(title="held-out score", range=[0, 1.05])
    fig.update_layout(barmode="group")
    return apply_theme(fig, title="Did the SAE find the planted concepts?", projector=projector)


def steering_figure(result: dict, *, projector: bool = False):
    """How often the text mentions the concept: plain, steered and prompted (`steer.steering_eval`)."""
    import plotly.graph_objects as go

    names = ["plain", "prompted", "steered"]
    rates = [100 * result[n]["mention_rate"] for n in names]
    loss = [result[n]["fluency_loss"] for n in names]
    fig = go.Figure(go.Bar(x=names, y=rates, marker_color=[PALETTE[0], PALETTE[1], OKABE_ITO["reddish_purple"]],
                           text=[f"{r:.0f}% (loss {lo:.2f})" for r, lo in zip(rates, loss)], textposition="outside"))
    fig.update_yaxes(title=f"generations mentioning {result['settings']['concept']} (%)", range=[0, 110])
    return apply_theme(fig, title=f"Steering with feature {result['settings']['feature']} ({result['n']} generations each)",
                       projector=projector)
