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


def resolve_feature(sae, feature, purpose: str = "steer") -> int:
    """A feature index from an int, a digit string, or a concept name ("golden_gate_bridge").

    For a concept name, purpose "steer" prefers the feature `find_steering` picked (stored
    in the SAE file), "label" the one `label_features` picked as the concept's detector.
    """
    if isinstance(feature, str) and feature.strip().isdigit():
        feature = int(feature)
    if isinstance(feature, str):
        concepts = sae.metrics.get("concepts", {})
        picked = sae.metrics.get("steering", {}) if purpose == "steer" else {}
        if feature not in concepts and feature not in picked:
            known = ", ".join(concepts) or "none (train the SAE on a story-world run to label them)"
            raise UserError(f"no feature is labelled {feature!r}; labelled concepts: {known}")
        feature = (picked.get(feature) or concepts[feature])["feature"]
    return check_feature(sae, feature)


# ---------------------------------------------------------------------------
# How hard to steer: one rule for the CLI, the notebooks and the dashboard
# ---------------------------------------------------------------------------

STRENGTH_FACTOR = 0.5  # no stored pick: half the feature's peak (bench_interpret measures it per concept)
PEAK_CHARS = 30_000  # the peak is read on the first characters of the held-out stories
DEFAULT_MODE = "raise"  # see llmcore.interpret.steer: lift the feature to at least the strength


def stored_steering(sae, feature) -> tuple[str, dict] | None:
    """(concept, what `find_steering` stored) when `feature` (index or concept name) is a concept's steering pick.

    The bridge's pick is found by its number too: feature 2 -> ("golden_gate_bridge", {...}).
    """
    steering = sae.metrics.get("steering", {})
    if isinstance(feature, str) and not feature.strip().isdigit():
        return (feature, steering[feature]) if feature in steering else None
    f = resolve_feature(sae, feature)
    return next(((c, s) for c, s in steering.items() if s.get("feature") == f), None)


def feature_peak(run, sae, feature: int, enc: Encoded | None = None) -> float:
    """The most `feature` fires on held-out text (`enc`, else the first PEAK_CHARS of the validation split)."""
    from llmcore.corpus import load_corpus

    f = check_feature(sae, feature)
    enc = enc or encode_text(run, sae, load_corpus("storyworld", "val", n_chars=PEAK_CHARS).text)
    return float(enc.acts[:, f].max())


def default_strength(run, sae, feature, enc: Encoded | None = None) -> dict:
    """How hard to steer `feature` when nobody says: {"strength", "mode", "why"}.

    The rule: the strength and mode `find_steering` stored for the concept whose steering
    feature this is (found by number or by concept name); for any other feature,
    STRENGTH_FACTOR x the most it fires in held-out stories (`feature_peak`), in DEFAULT_MODE.
    """
    stored = stored_steering(sae, feature)
    if stored is not None:
        concept, s = stored
        return {"strength": s["strength"], "mode": s.get("mode", "clamp"),
                "why": f"the strength stored for {concept} when the SAE was trained"}
    peak = feature_peak(run, sae, resolve_feature(sae, feature), enc)
    if peak <= 0:
        raise UserError(f"feature {resolve_feature(sae, feature)} never fires in held-out stories, so it has "
                        "no natural size to steer at; give a strength")
    return {"strength": round(STRENGTH_FACTOR * peak, 3), "mode": DEFAULT_MODE,
            "why": f"{STRENGTH_FACTOR:g} x the most it fires in held-out stories ({peak:.3f})"}


def feature_on_text(run, sae, text: str, feature: int, enc: Encoded | None = None) -> tuple[list, list[float]]:
    """Token pieces of `text` [(text, id)] and one feature's activation on each, scaled to [0, 1] (for token_html)."""
    f = check_feature(sae, feature)
    enc = enc or encode_text(run, sae, text)
    acts = enc.acts[:, f]  # [n_tokens]
    top = float(acts.max()) or 1.0
    pieces = [(run.tokenizer.token_str(i), i) for i in enc.tokens.ids]
    return pieces, [max(0.0, float(a) / top) for a in acts]


def word_feature(run, sae, text: str, word: str, exclude: int) -> tuple[int, list, list[float]] | None:
    """The feature (other than `exclude`) most active on `word`'s tokens in `text`, and its activations.

    Feature absorption made visible: on "Golden Gate Bridge" the SAE switches on features
    for the words themselves, which carry part of the bridge's direction, so the bridge
    feature fires there only weakly. Returns (feature, pieces, activations in [0, 1]), or
    None when `word` is not in `text` or nothing else fires on it.
    """
    at = text.find(word)
    if at < 0:
        return None
    enc = encode_text(run, sae, text)
    rows = [i for i, (a, b) in enumerate(zip(enc.tokens.starts, enc.tokens.ends)) if a < at + len(word) and b > at]
    on_word = enc.acts[rows].sum(0)  # [d_sae]: each feature's total on the word's tokens
    on_word[check_feature(sae, exclude)] = 0.0
    feature = int(on_word.argmax())
    if float(on_word[feature]) <= 0:
        return None
    return (feature, *feature_on_text(run, sae, text, feature, enc))


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
    concepts = sae.metrics.get("concepts", {})
    label = next((c for c, m in concepts.items() if m["feature"] == feature and m["f1"] >= 0.5), None)
    steer = default_strength(run, sae, feature, enc) if float(enc.acts[:, feature].max()) > 0 else None
    return {"feature": feature, "label": label, "concept_match": concepts.get(label),
            "contexts": top_contexts(enc, run.tokenizer, feature, n_contexts),
            "histogram": activation_histogram(enc, feature),
            "logits": logit_effects(run.model, run.tokenizer, sae, feature), "steer": steer}


def report(run, sae, *, concept: str | None = None, feature: int | None = None, top: int = 8,
           n_chars: int = PEAK_CHARS) -> dict:
    """What `llmcore features` prints: the concept table, and one feature up close if asked.

    The table comes from the SAE file (found when it was trained). `concept` picks that
    concept's best feature; `feature` picks one by index. Contexts come from the first
    `n_chars` characters of the story world's validation text.
    """
    from llmcore.corpus import load_corpus

    if isinstance(top, bool) or not isinstance(top, int) or not 1 <= top <= 100:
        raise UserError(f"top must be a whole number from 1 to 100, got {top!r}")
    out = {"hook": sae.cfg.hook_name, "d_sae": sae.cfg.d_sae,
           "metrics": {k: v for k, v in sae.metrics.items() if k not in ("concepts", "steering")},
           "concepts": sae.metrics.get("concepts", {}),
           "steering": {c: {k: v for k, v in s.items() if k != "tried"} for c, s in sae.metrics.get("steering", {}).items()}}
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
    for c, s in r.get("steering", {}).items():
        found = f"in the search's {s['stories']} stories: " if "stories" in s else ""
        lines.append(f"  steering {c}: feature {s['feature']}, {s.get('mode', 'clamp')} at {s['strength']:g} "
                     f"({found}mentions {s['mention_rate']:.0%}, fluency {s['fluency_loss']:.2f} "
                     f"vs {s['plain_fluency_loss']:.2f} plain)")
    f = r.get("feature")
    if f:
        lines.append(f"feature {f['feature']}" + (f" ({f['label']})" if f["label"] else ""))
        lines.append("  pushes up:   " + " ".join(repr(t) for t, _ in f["logits"]["up"]))
        lines.append("  pushes down: " + " ".join(repr(t) for t, _ in f["logits"]["down"]))
        if f.get("steer"):
            st = f["steer"]
            lines.append(f"  steer it:    --strength {st['strength']:g} --mode {st['mode']} ({st['why']})")
        for c in f["contexts"]:
            text = "".join(p for p, _ in c["pieces"]).replace("\n", " ")
            lines.append(f"  {c['max']:6.2f}  {text}")
    return "\n".join(lines)
