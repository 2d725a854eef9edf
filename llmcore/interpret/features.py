"""Features: what each SAE feature means, and which one is the Golden Gate Bridge.

A feature is one SAE dictionary direction. We read its meaning four ways:

1. top-activating contexts: the token windows where it fires hardest, with each
   token's activation (for highlighting with `llmcore.viz.common.token_html`)
2. its activation histogram over a corpus (how often, and how strongly, it fires)
3. the tokens it pushes up and down: its decoder direction W_dec[f], centred and
   multiplied by ln_final's scale w, then @ W_U. This treats ln_final as linear:
   the centring and w are exact, only the division by the residual norm (one
   positive number per token) is dropped, so the *ranking* of tokens is exact for
   the direction alone, though the real effect also depends on the rest of the stream.
4. an automatic label, when it matches a concept planted in the story world.

Scoring against a concept is token-level. A token is *positive* for a concept when
its characters overlap one of that concept's `Span`s; a feature *predicts* positive
where its activation > threshold. Then precision = tp / (tp + fp), recall = tp / (tp + fn),
F1 = 2 tp / (2 tp + fp + fn). For each concept, `label_features` picks the feature and
threshold with the best F1 on a *labelling* text (a story world drawn with seed
LABEL_SEED) and reports precision, recall and F1 on the *held-out* validation split
(another seed), so the numbers are not fitted to the text they are measured on.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch

from llmcore.errors import UserError
from llmcore.interpret.activations import TokenizedText, collect_stream, token_offsets

LABEL_SEED, LABEL_CHARS = 2, 300_000  # the labelling text: a third story world, neither train nor val
N_BINS, N_REFINE = 64, 8  # threshold screening grid, and how many candidates get an exact search


@dataclass
class Encoded:
    """A text's tokens and every SAE feature's activation on them."""

    tokens: TokenizedText
    acts: torch.Tensor  # [n_tokens, d_sae]


@torch.no_grad()
def encode_text(run, sae, text: str) -> Encoded:
    """Tokenize `text` (any length), run the model to the SAE's hook, encode: acts [n_tokens, d_sae]."""
    tt = token_offsets(run.tokenizer, text)
    if not tt.ids:
        raise UserError("the text has no tokens; give some text")
    resid = collect_stream(run.model, tt.ids, sae.cfg.hook_name)  # [n_tokens, d_model]
    return Encoded(tt, torch.cat([sae.encode(chunk) for chunk in resid.split(8192)]))


def check_feature(sae, feature) -> int:
    """`feature` as an int index into the SAE's dictionary, or a UserError."""
    n = sae.cfg.d_sae
    if isinstance(feature, bool) or not isinstance(feature, int) or not 0 <= feature < n:
        raise UserError(f"feature must be a whole number from 0 to {n - 1} (the SAE has {n} features), got {feature!r}")
    return feature


# ---------------------------------------------------------------------------
# Token-level scoring against labelled spans
# ---------------------------------------------------------------------------


def token_labels(tokens: TokenizedText, spans, concept: str) -> torch.Tensor:
    """bool [n_tokens]: True where a token's characters overlap a Span of `concept`.

    Tokens [0,3) [3,7) [7,12) and a span [5,9) -> [False, True, True].
    """
    ss = sorted((s.start, s.end) for s in spans if s.concept == concept)
    if not ss:
        return torch.zeros(len(tokens.ids), dtype=torch.bool)
    starts, ends = torch.tensor([s for s, _ in ss]), torch.tensor([e for _, e in ss])
    t_start, t_end = torch.tensor(tokens.starts), torch.tensor(tokens.ends)
    # the last span starting before the token ends overlaps it if it ends after the token starts
    # (story-world spans never overlap each other, so the last such span is the only candidate)
    i = torch.searchsorted(starts, t_end, side="left") - 1  # [n_tokens]
    return (i >= 0) & (ends[i.clamp(min=0)] > t_start)


def score(acts: torch.Tensor, labels: torch.Tensor, threshold: float) -> dict:
    """Precision, recall and F1 of "acts > threshold" against bool `labels` (both [n])."""
    pred = acts > threshold
    tp = int((pred & labels).sum())
    fp, fn = int(pred.sum()) - tp, int(labels.sum()) - tp
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    f1 = 2 * tp / (2 * tp + fp + fn) if tp + fp + fn else 0.0
    return {"precision": precision, "recall": recall, "f1": f1, "tp": tp, "fp": fp, "fn": fn}


def best_threshold(acts: torch.Tensor, labels: torch.Tensor) -> tuple[float, float]:
    """(threshold, F1): the cut on `acts` [n] with the best F1 against `labels` [n], exactly.

    Sort activations from high to low; predicting the top i tokens positive gives
    tp_i true positives and F1_i = 2 tp_i / (i + n_positive). The threshold is halfway
    between the i-th and (i+1)-th distinct values, so "acts > threshold" is exactly that set.
    """
    vals, order = acts.float().sort(descending=True)
    tp = labels[order].long().cumsum(0)  # [n] true positives among the top i + 1
    f1 = 2 * tp / (torch.arange(1, len(vals) + 1) + labels.sum())
    last_of_tie = torch.ones(len(vals), dtype=torch.bool)
    last_of_tie[:-1] = vals[:-1] > vals[1:]  # a cut can only fall between different values
    f1 = torch.where(last_of_tie & (vals > 0), f1, torch.tensor(-1.0))
    i = int(f1.argmax())
    if f1[i] < 0:
        return float("inf"), 0.0  # never fires: nothing to cut
    below = float(vals[i + 1]) if i + 1 < len(vals) else 0.0
    return (float(vals[i]) + max(below, 0.0)) / 2, float(f1[i])


def screen(acts: torch.Tensor, labels: torch.Tensor, n_bins: int = N_BINS) -> torch.Tensor:
    """Approximate best F1 of every feature for one concept: [d_sae], on a grid of thresholds.

    Feature f is tried at thresholds max_f * b / n_bins; counting uses only the non-zero
    activations (an SAE's are few), so this is fast for thousands of features.
    """
    n_feat = acts.shape[1]
    top = acts.max(0).values.clamp(min=1e-12)  # [d_sae]
    rows, cols = acts.nonzero(as_tuple=True)  # the non-zero entries
    bins = (acts[rows, cols] / top[cols] * n_bins).long().clamp(max=n_bins - 1)
    index = cols * n_bins + bins

    def above(weights):  # [d_sae, n_bins]: how many (weighted) entries sit in bin >= b
        counts = torch.bincount(index, weights=weights, minlength=n_feat * n_bins).view(n_feat, n_bins)
        return counts.flip(1).cumsum(1).flip(1)

    pred, tp = above(None), above(labels[rows].double())
    f1 = 2 * tp / (pred + labels.sum()).clamp(min=1)
    return f1.max(1).values.float()  # [d_sae]


@dataclass
class ConceptMatch:
    """The feature that best finds one concept, and how well (held-out numbers)."""

    concept: str
    feature: int
    threshold: float  # predict the concept where activation > threshold
    precision: float  # on the held-out text
    recall: float
    f1: float
    label_f1: float  # F1 on the labelling text, where feature and threshold were chosen
    n_positive: int  # positive tokens in the held-out text

    def to_dict(self) -> dict:
        return asdict(self)


def label_features(run, sae, concepts=None, *, label_corpus=None, eval_corpus=None) -> dict[str, ConceptMatch]:
    """For each concept, the best single feature: {concept: ConceptMatch}.

    Corpora (text + spans): labelling default storyworld(LABEL_SEED, LABEL_CHARS),
    held-out default the story world's validation split (seed VAL_SEED).
    """
    from llmcore.corpus import CONCEPTS, load_corpus, storyworld

    concepts = list(CONCEPTS if concepts is None else concepts)
    for c in concepts:
        if c not in CONCEPTS:
            raise UserError(f"unknown concept {c!r}; choose from: {', '.join(CONCEPTS)}")
    lab = label_corpus or storyworld(LABEL_SEED, LABEL_CHARS)
    held = eval_corpus or load_corpus("storyworld", "val")
    enc = encode_text(run, sae, lab.text)
    picks = {}
    for c in concepts:
        labels = token_labels(enc.tokens, lab.spans, c)
        if not labels.any():
            raise UserError(f"the labelling text has no {c!r} spans; use a longer story-world text")
        candidates = screen(enc.acts, labels).topk(min(N_REFINE, enc.acts.shape[1])).indices
        exact = [(best_threshold(enc.acts[:, int(f)], labels), int(f)) for f in candidates]
        (threshold, f1), feature = max(exact, key=lambda e: (e[0][1], -e[1]))
        picks[c] = (feature, threshold, f1)
    del enc
    enc = encode_text(run, sae, held.text)
    out = {}
    for c, (feature, threshold, f1) in picks.items():
        labels = token_labels(enc.tokens, held.spans, c)
        s = score(enc.acts[:, feature], labels, threshold)
        out[c] = ConceptMatch(c, feature, threshold, s["precision"], s["recall"], s["f1"], f1, int(labels.sum()))
    return out


# ---------------------------------------------------------------------------
# One feature, up close
# ---------------------------------------------------------------------------


def top_contexts(enc: Encoded, tokenizer, feature: int, n: int = 8, before: int = 12, after: int = 4) -> list[dict]:
    """The `n` strongest activations of `feature`, each with its window of tokens.

    Returns [{"position", "max", "pieces": [(text, id)], "acts": [float], "peak": index in window}].
    Windows do not overlap: a peak next to a stronger one is skipped.
    """
    a = enc.acts[:, feature]  # [n_tokens]
    taken = torch.zeros(len(a), dtype=torch.bool)
    out = []
    for i in a.argsort(descending=True).tolist():
        if len(out) >= n or a[i] <= 0:
            break
        lo, hi = max(0, i - before), min(len(a), i + after + 1)
        if taken[lo:hi].any():
            continue
        taken[lo:hi] = True
        ids = enc.tokens.ids[lo:hi]
        out.append({"position": i, "max": float(a[i]), "pieces": [(tokenizer.token_str(t), t) for t in ids],
                    "acts": [round(float(v), 4) for v in a[lo:hi]], "peak": i - lo})
    return out


def activation_histogram(enc: Encoded, feature: int, bins: int = 30) -> dict:
    """How often `feature` fires, and how strongly: counts over its non-zero activations."""
    a = enc.acts[:, feature]
    on = a[a > 0]
    hi = float(on.max()) if len(on) else 1.0
    counts = torch.histc(on, bins=bins, min=0.0, max=hi)
    edges = torch.linspace(0.0, hi, bins + 1)
    return {"counts": counts.long().tolist(), "edges": edges.tolist(), "fraction_active": len(on) / max(1, len(a))}


@torch.no_grad()
def logit_effects_all(model, sae) -> torch.Tensor:
    """Every feature's direct effect on every logit: [d_sae, d_vocab] = ((W_dec - mean) * w) @ W_U.

    LayerNorm's centring and scale w are applied exactly; its division by the residual
    stream's norm is dropped (one positive number per token, so rankings are unchanged).
    """
    return _direct_effect(model, sae.W_dec)


def _direct_effect(model, directions: torch.Tensor) -> torch.Tensor:
    """Directions [..., d_model] through ln_final (centring and w; not 1/norm) and W_U: [..., d_vocab]."""
    return ((directions - directions.mean(-1, keepdim=True)) * model.ln_final.w) @ model.W_U


@torch.no_grad()
def logit_effects(model, tokenizer, sae, feature: int, k: int = 10) -> dict:
    """Tokens the feature's direction pushes up and down: (W_dec[f] - mean) * ln_final.w @ W_U."""
    check_feature(sae, feature)
    logits = _direct_effect(model, sae.W_dec[feature])  # [d_vocab]
    k = min(k, len(logits))
    up, down = logits.topk(k), (-logits).topk(k)
    return {"up": [(tokenizer.token_str(int(i)), round(float(v), 4)) for v, i in zip(up.values, up.indices)],
            "down": [(tokenizer.token_str(int(i)), round(-float(v), 4)) for v, i in zip(down.values, down.indices)]}


def describe_feature(run, sae, feature: int, enc: Encoded, *, n_contexts: int = 8) -> dict:
    """Everything about one feature as JSON-able data, with its concept label if it has one."""
    check_feature(sae, feature)
    concepts = (getattr(sae, "metrics", None) or {}).get("concepts", {})
    label = next((c for c, m in concepts.items() if m["feature"] == feature and m["f1"] >= 0.5), None)
    return {"feature": feature, "label": label, "concept_match": concepts.get(label),
            "contexts": top_contexts(enc, run.tokenizer, feature, n_contexts),
            "histogram": activation_histogram(enc, feature),
            "logits": logit_effects(run.model, run.tokenizer, sae, feature)}


def report(run, sae, *, concept: str | None = None, feature: int | None = None, top: int = 8,
           n_chars: int = 40_000) -> dict:
    """What `llmcore features` prints: the concept table, and one feature up close if asked.

    The table comes from the SAE file (found when it was trained). `concept` picks that
    concept's best feature; `feature` picks one by index. Contexts come from the first
    `n_chars` characters of the story world's validation text.
    """
    from llmcore.corpus import load_corpus
    from llmcore.interpret.steer import resolve_feature

    if isinstance(top, bool) or not isinstance(top, int) or not 1 <= top <= 100:
        raise UserError(f"top must be a whole number from 1 to 100, got {top!r}")
    out = {"hook": sae.cfg.hook_name, "d_sae": sae.cfg.d_sae,
           "metrics": {k: v for k, v in (getattr(sae, "metrics", None) or {}).items() if k != "concepts"},
           "concepts": (getattr(sae, "metrics", None) or {}).get("concepts", {})}
    if concept is not None or feature is not None:
        f = resolve_feature(sae, concept if feature is None else feature, purpose="label")
        enc = encode_text(run, sae, load_corpus("storyworld", "val", n_chars=n_chars).text)
        out["feature"] = describe_feature(run, sae, f, enc, n_contexts=top)
    return out


def format_report(r: dict) -> str:
    """`report`'s data as lines of text for a terminal."""
    m = r["metrics"]
    lines = [f"SAE at {r['hook']}: {r['d_sae']} features"]
    if m:
        lines.append("  " + ", ".join(f"{k} {m[k]:.3f}" for k in ("l0", "variance_explained", "dead_fraction", "loss_recovered") if k in m))
    lines.append(f"  {'concept':<20} {'feature':>7} {'precision':>9} {'recall':>7} {'F1':>6}")
    for c, x in r["concepts"].items():
        lines.append(f"  {c:<20} {x['feature']:>7} {x['precision']:>9.3f} {x['recall']:>7.3f} {x['f1']:>6.3f}")
    f = r.get("feature")
    if f:
        lines.append(f"feature {f['feature']}" + (f" ({f['label']})" if f["label"] else ""))
        lines.append("  pushes up:   " + " ".join(repr(t) for t, _ in f["logits"]["up"]))
        lines.append("  pushes down: " + " ".join(repr(t) for t, _ in f["logits"]["down"]))
        for c in f["contexts"]:
            text = "".join(p for p, _ in c["pieces"]).replace("\n", " ")
            lines.append(f"  {c['max']:6.2f}  {text}")
    return "\n".join(lines)
