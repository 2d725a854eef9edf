"""Steering: change one feature while the model writes, and watch the text follow.

Golden Gate Claude (Anthropic, May 2024) was Claude with one SAE feature clamped
high: whatever you asked, it talked about the bridge. Here the same thing is one
TransformerLens hook at the SAE's hook point (an activation that is added to the
residual stream), applied at every position while `llmcore.generate.steps` runs:

    clamp:  f = encode(resid)[feature]            set the feature to `strength`:
            resid <- resid + (strength - f) * W_dec[feature]
    add:    resid <- resid + strength * direction  (any direction; W_dec[feature] by default)

Clamping leaves the SAE's reconstruction error and every other feature alone and
changes only this feature's share of the stream. Strength 0 with "add" changes
nothing, to the last bit (a test holds it).

The honest comparison is prompting. Claude was *told* "talk about the Golden Gate
Bridge"; a toy story model follows no instructions, so its analogue is to put the
bridge in its context: `PROMPT_PREFIX`, a story-world sentence about the bridge, is
written before the prompt (and not counted as output).
"""

from __future__ import annotations

import math

import torch

from llmcore.errors import UserError
from llmcore.interpret.features import check_feature

MODES = ("clamp", "add")
MAX_STRENGTH = 1000.0  # far past any useful value: residual norms here are tens
PROMPT_PREFIX = "Mia looked up at the tall towers of the Golden Gate Bridge. "
NEUTRAL_PROMPTS = ("Once upon a time", "Mia went to the", "One day,", "Tom and his dog", "It was a",
                   "Leo found a", "After lunch,", "The little girl", "Every morning,", "Sam said,")
SEARCH_PROMPTS = ("There once was a", "Nina and Ben", "It was a cold", "The next day,", "Omar looked at")


def check_strength(strength) -> float:
    if isinstance(strength, bool) or not isinstance(strength, (int, float)) or not math.isfinite(strength):
        raise UserError(f"strength must be a finite number, got {strength!r}")
    if abs(strength) > MAX_STRENGTH:
        raise UserError(f"strength {strength} is too large; use a value between {-MAX_STRENGTH:g} and {MAX_STRENGTH:g}")
    return float(strength)


def resolve_feature(sae, feature, purpose: str = "steer") -> int:
    """A feature index from an int, a digit string, or a concept name ("golden_gate_bridge").

    For a concept name, purpose "steer" prefers the feature `find_steering` picked (stored
    in the SAE file), "label" the one `label_features` picked as the concept's detector.
    """
    if isinstance(feature, str) and feature.strip().isdigit():
        feature = int(feature)
    if isinstance(feature, str):
        metrics = getattr(sae, "metrics", None) or {}
        concepts = metrics.get("concepts", {})
        picked = metrics.get("steering", {}) if purpose == "steer" else {}
        if feature not in concepts and feature not in picked:
            known = ", ".join(concepts) or "none (train the SAE on a story-world run to label them)"
            raise UserError(f"no feature is labelled {feature!r}; labelled concepts: {known}")
        feature = (picked.get(feature) or concepts[feature])["feature"]
    return check_feature(sae, feature)


def recommended_strength(sae, concept: str = "golden_gate_bridge") -> float | None:
    """The clamp strength `find_steering` chose for `concept`, if the SAE file has one."""
    return ((getattr(sae, "metrics", None) or {}).get("steering", {}).get(concept) or {}).get("strength")


def clamp_hook(sae, feature: int, strength: float):
    """(hook name, fn) that holds `feature` at `strength` everywhere, for fwd_hooks=[...]."""
    f, s = check_feature(sae, feature), check_strength(strength)
    direction = sae.W_dec[f]  # [d_model], unit length

    def clamp(resid, hook):  # resid: [batch, pos, d_model]
        act = sae.encode(resid)[..., f]  # [batch, pos]
        return resid + (s - act)[..., None] * direction

    return sae.cfg.hook_name, clamp


def add_hook(hook_name: str, direction: torch.Tensor, strength: float):
    """(hook name, fn) that adds `strength * direction` [d_model] to the activation everywhere."""
    s = check_strength(strength)
    direction = torch.as_tensor(direction, dtype=torch.float32)
    if direction.ndim != 1 or not torch.isfinite(direction).all():
        raise UserError("direction must be one finite vector of d_model numbers")

    def add(resid, hook):  # resid: [batch, pos, d_model]
        if resid.shape[-1] != direction.shape[0]:
            raise UserError(f"direction has {direction.shape[0]} numbers but {hook.name} has {resid.shape[-1]}")
        return resid + s * direction.to(resid.device)

    return hook_name, add


def steering_hook(sae, feature, strength: float, mode: str = "clamp"):
    """The hook for `mode` ("clamp" or "add") on an SAE feature (index or concept name)."""
    if mode not in MODES:
        raise UserError(f"mode must be one of {', '.join(MODES)}, got {mode!r}")
    f = resolve_feature(sae, feature)
    if mode == "clamp":
        return clamp_hook(sae, f, strength)
    return add_hook(sae.cfg.hook_name, sae.W_dec[f], strength)


def steer_side_by_side(run, sae, feature, strength: float | None, prompt: str, sampling=None, mode: str = "clamp"):
    """(plain text, steered text): the same prompt and seed, without and with the hook.

    `strength` None uses the strength found for that concept when the SAE was trained.
    """
    from llmcore.generate import Sampling, generate

    if strength is None:
        strength = recommended_strength(sae, feature) if isinstance(feature, str) else None
        if strength is None:
            raise UserError("give a strength: this SAE has no recommended one for that feature")
    hook = steering_hook(sae, feature, strength, mode)
    s = sampling or Sampling(max_new_tokens=60)
    plain = generate(run.model, run.tokenizer, prompt, s)
    steered = generate(run.model, run.tokenizer, prompt, s, fwd_hooks=[hook])
    return plain, steered


# ---------------------------------------------------------------------------
# Measuring it: how often the text mentions the concept, and how readable it stays
# ---------------------------------------------------------------------------


@torch.no_grad()
def continuation_loss(model, context_ids: list[int], new_ids: list[int]) -> float:
    """Mean loss (nats/token) of `new_ids` after `context_ids` under the plain model: fluency."""
    ids = (context_ids + new_ids)[-model.cfg.n_ctx :]
    n_new = min(len(new_ids), len(ids) - 1)
    if n_new < 1:
        return float("nan")
    x = torch.tensor([ids], device=next(model.parameters()).device)
    with model.hooked([]):  # holds the lock; no hooks: the unsteered model
        logp = model(x)[0, :-1].float().log_softmax(-1)  # [pos - 1, d_vocab]
    targets = x[0, 1:]
    nll = -logp.gather(-1, targets[:, None])[:, 0]  # [pos - 1]
    return float(nll[-n_new:].mean())


def find_steering(run, sae, concept: str = "golden_gate_bridge", *, n_candidates: int = 4,
                  factors=(0.75, 1.0, 1.5, 2.0, 3.0), prompts=SEARCH_PROMPTS, seeds=range(3),
                  max_loss_increase: float = 1.0, sampling=None) -> dict:
    """Find the feature and strength that best steer towards `concept`, by trying them.

    A feature that *detects* a concept does not always *steer* towards it: one that fires
    on the token "bridge" may, clamped, only make the model stutter. So candidates come two
    ways: the best detectors (F1 on a labelling text) and the features whose direction most
    raises the concept's keywords through the unembedding. Each is clamped at `factors` x
    its largest activation on the labelling text, generating from `prompts` (kept apart
    from NEUTRAL_PROMPTS, on which the benchmark reports). The pick has the highest mention
    rate among settings whose fluency loss stays within `max_loss_increase` nats of plain.
    """
    from llmcore.corpus import CONCEPT_WORDS, storyworld
    from llmcore.generate import Sampling
    from llmcore.interpret import features as F

    lab = storyworld(F.LABEL_SEED, 60_000)
    enc = F.encode_text(run, sae, lab.text)  # acts [n_tokens, d_sae]
    detectors = F.screen(enc.acts, F.token_labels(enc.tokens, lab.spans, concept)).topk(n_candidates).indices
    words = CONCEPT_WORDS[concept]
    ids = sorted({run.tokenizer.encode(" " + w)[0] for w in words} | {run.tokenizer.encode(" " + w.title())[0] for w in words})
    effects = F.logit_effects_all(run.model, sae)  # [d_sae, d_vocab]
    push = effects[:, ids].mean(1) - effects.mean(1)  # [d_sae]: raises the keywords more than the rest
    candidates = list(dict.fromkeys(detectors.tolist() + push.topk(n_candidates).indices.tolist()))
    s = sampling or Sampling(temperature=0.8, max_new_tokens=24)
    plain = steering_eval(run, sae, candidates[0], 0.0, prompts=prompts, seeds=seeds, concept=concept,
                          sampling=s, conditions=("plain",))["plain"]
    tried = []
    for f in candidates:
        top = float(enc.acts[:, f].max())
        for k in factors:
            r = steering_eval(run, sae, f, round(k * top, 3), prompts=prompts, seeds=seeds, concept=concept,
                              sampling=s, conditions=("steered",))["steered"]
            tried.append({"feature": f, "strength": round(k * top, 3), "mention_rate": r["mention_rate"],
                          "fluency_loss": round(r["fluency_loss"], 4)})
    readable = [t for t in tried if t["fluency_loss"] <= plain["fluency_loss"] + max_loss_increase] or tried
    best = max(readable, key=lambda t: (t["mention_rate"], -t["fluency_loss"]))
    return {**best, "plain_mention_rate": plain["mention_rate"], "plain_fluency_loss": round(plain["fluency_loss"], 4),
            "tried": tried}


def steering_eval(run, sae, feature, strength: float, *, prompts=NEUTRAL_PROMPTS, seeds=range(5),
                  concept: str = "golden_gate_bridge", sampling=None, mode: str = "clamp", prefix: str = PROMPT_PREFIX,
                  conditions=("plain", "steered", "prompted")):
    """Mention rate and fluency without steering, steered, and with the prompting baseline.

    One generation per (prompt, seed) and condition; a generation "mentions" the concept
    if `llmcore.corpus.mentions` finds a keyword in the new text. Returns
    {"plain"|"steered"|"prompted": {"mention_rate", "fluency_loss", "examples"}, "n": ...}.
    """
    from dataclasses import replace

    from llmcore.corpus import mentions
    from llmcore.generate import Sampling, steps

    hook = steering_hook(sae, feature, strength, mode)
    base = sampling or Sampling(temperature=0.8, max_new_tokens=40)
    tok, model = run.tokenizer, run.model
    setups = {"plain": ("", []), "steered": ("", [hook]), "prompted": (prefix, [])}
    seeds, out = list(seeds), {}
    for name in conditions:
        pre, hooks = setups[name]
        hits, losses, examples = 0, [], []
        for prompt in prompts:
            for seed in seeds:  # the same seeds in every condition: differences come from the condition
                s = replace(base, seed=seed)
                new = [st.token_id for st in steps(model, tok, pre + prompt, s, fwd_hooks=hooks)]
                text = tok.decode(new)
                hits += mentions(text, concept)
                losses.append(continuation_loss(model, tok.encode(pre + prompt), new))
                if seed == seeds[0]:
                    examples.append(prompt + text)
        n = len(losses)
        out[name] = {"mention_rate": hits / n, "fluency_loss": sum(losses) / n, "examples": examples}
    out["n"] = n
    out["settings"] = {"feature": resolve_feature(sae, feature), "strength": strength, "mode": mode,
                       "concept": concept, "prefix": prefix, "max_new_tokens": base.max_new_tokens,
                       "temperature": base.temperature}
    return out
