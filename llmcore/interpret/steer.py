"""Steering: change one feature while the model writes, and watch the text follow.

Golden Gate Claude (Anthropic, May 2024) was Claude with one SAE feature clamped
high: whatever you asked, it talked about the bridge. Here the same thing is one
TransformerLens hook at the SAE's hook point (an activation that is added to the
residual stream), applied at every position while `llmcore.generate.steps` runs:

    raise:  f = encode(resid)[feature]            lift the feature to at least `strength`:
            resid <- resid + (max(f, strength) - f) * W_dec[feature]
    clamp:  resid <- resid + (strength - f) * W_dec[feature]   hold it at exactly `strength`
    add:    resid <- resid + strength * direction  (any direction; W_dec[feature] by default)

All three keep the SAE's reconstruction error and every other feature: only this
feature's share of the stream changes. (Replacing the stream by the SAE's reconstruction
instead loses the error term, and `benchmarks/bench_interpret.py` measures how much less
readable that makes the text.) "raise" is the default: "clamp" also *lowers* the feature
on the very tokens where the text already talks about the bridge, and the measured
stories read better when it does not. Strength 0 with "add" changes nothing, to the last
bit (a test holds it). How hard to steer when nobody says is one rule,
`llmcore.interpret.features.default_strength`.

The honest comparison is prompting. Claude was *told* "talk about the Golden Gate
Bridge"; a toy story model follows no instructions, so its analogue is to put the
bridge in its context: `PROMPT_PREFIX`, a story-world sentence about the bridge, is
written before the prompt (and not counted as output).
"""

from __future__ import annotations

import math

import torch

from llmcore.errors import UserError
from llmcore.interpret.features import DEFAULT_MODE, check_feature, default_strength, resolve_feature

MODES = ("raise", "clamp", "add")
MAX_STRENGTH = 1000.0  # far past any useful value: residual norms here are tens
PROMPT_PREFIX = "Mia looked up at the tall towers of the Golden Gate Bridge. "
NEUTRAL_PROMPTS = ("Once upon a time", "Mia went to the", "One day,", "Tom and his dog", "It was a",
                   "Leo found a", "After lunch,", "The little girl", "Every morning,", "Sam said,")
SEARCH_PROMPTS = ("There once was a", "Nina and Ben", "It was a cold", "The next day,", "Omar looked at",
                  "Ella and her cat", "On a windy day,", "Grandpa said,", "The boy ran to", "In the evening,")
SEARCH_FACTORS = (0.4, 0.45, 0.5, 0.55, 0.6, 0.65, 0.7, 0.85, 1.0)  # strengths tried, x the feature's peak
READABLE = 0.15  # nats/token: how much less fluent than plain text a steered story may read
ENOUGH = 0.85  # mention rate at which turning the strength up further buys little but broken words
STORY_TOKENS = 40  # how long a story the search and the benchmark write: one length, so the pick fits what is reported


def story_sampling():
    """How a steering story is written, in the search and in every report: temperature 0.8, STORY_TOKENS tokens."""
    from llmcore.generate import Sampling

    return Sampling(temperature=0.8, max_new_tokens=STORY_TOKENS)


def check_strength(strength) -> float:
    if isinstance(strength, bool) or not isinstance(strength, (int, float)) or not math.isfinite(strength):
        raise UserError(f"strength must be a finite number, got {strength!r}")
    if abs(strength) > MAX_STRENGTH:
        raise UserError(f"strength {strength} is too large; use a value between {-MAX_STRENGTH:g} and {MAX_STRENGTH:g}")
    return float(strength)


def clamp_hook(sae, feature: int, strength: float, at_least: bool = False):
    """(hook name, fn) that holds `feature` at `strength` everywhere (or at least there), for fwd_hooks=[...]."""
    f, s = check_feature(sae, feature), check_strength(strength)
    direction = sae.W_dec[f]  # [d_model], unit length

    def clamp(resid, hook):  # resid: [batch, pos, d_model]
        act = sae.encode(resid)[..., f]  # [batch, pos]
        target = act.clamp(min=s) if at_least else torch.full_like(act, s)
        return resid + (target - act)[..., None] * direction

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


def steering_hook(sae, feature, strength: float, mode: str = DEFAULT_MODE):
    """The hook for `mode` ("raise", "clamp" or "add") on an SAE feature (index or concept name)."""
    if mode not in MODES:
        raise UserError(f"mode must be one of {', '.join(MODES)}, got {mode!r}")
    f = resolve_feature(sae, feature)
    if mode == "add":
        return add_hook(sae.cfg.hook_name, sae.W_dec[f], strength)
    return clamp_hook(sae, f, strength, at_least=mode == "raise")


def steer_side_by_side(run, sae, feature, strength: float | None, prompt: str, sampling=None,
                       mode: str | None = None) -> tuple[str, str]:
    """(plain text, steered text): the same prompt and seed, without and with the hook.

    `strength` or `mode` None: `default_strength`'s rule (the stored pick for a concept's
    steering feature, by name or number; else half the feature's peak, raised).
    """
    from llmcore.generate import Sampling, generate

    if strength is None or mode is None:
        rule = default_strength(run, sae, feature)
        strength = rule["strength"] if strength is None else strength
        mode = rule["mode"] if mode is None else mode
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


def find_steering(run, sae, concept: str = "golden_gate_bridge", *, n_candidates: int = 3,
                  factors=SEARCH_FACTORS, prompts=SEARCH_PROMPTS, seeds=range(20), mode: str = DEFAULT_MODE,
                  max_loss_increase: float = READABLE, enough: float = ENOUGH, sampling=None) -> dict:
    """Find the feature and strength that best steer towards `concept`, by trying them.

    A feature that *detects* a concept does not always *steer* towards it: one that fires
    on the token "bridge" may, raised, only make the model stutter. So candidates come two
    ways: the best detectors (F1 on a labelling text) and the features whose direction most
    raises the concept's keywords through the unembedding. Strengths are multiples
    (`factors`) of a feature's peak on held-out text (`feature_peak`, the unit of the
    default rule); stories start from `prompts`, kept apart from NEUTRAL_PROMPTS, on which
    the benchmark reports. A setting is "readable" when its fluency loss stays within
    `max_loss_increase` nats/token of plain text.

    1. Each candidate at three strengths (0.5, 0.7, 1 x peak), on the first fifth of the
       seeds: the feature is the one with the most mentions in a readable setting.
    2. That feature at every factor, on all the seeds (many stories: one story with a
       broken word moves the mean loss a lot): the pick is the gentlest readable
       strength that mentions the concept in at least `enough` of the stories (turn the
       dial only as far as it needs to go: past that, words break); if none gets there,
       the readable one with the most mentions; if nothing is readable, the most readable.

    Returns {"feature", "strength", "mode", "mention_rate", "fluency_loss", "readable",
    "plain_mention_rate", "plain_fluency_loss", "tried": [every setting tried]}.
    """
    from llmcore.corpus import CONCEPT_WORDS, storyworld
    from llmcore.interpret import features as F

    lab = storyworld(F.LABEL_SEED, 60_000)
    enc = F.encode_text(run, sae, lab.text)  # acts [n_tokens, d_sae]
    detectors = F.screen(enc.acts, F.token_labels(enc.tokens, lab.spans, concept)).topk(n_candidates).indices
    words = CONCEPT_WORDS[concept]
    ids = sorted({run.tokenizer.encode(" " + w)[0] for w in words} | {run.tokenizer.encode(" " + w.title())[0] for w in words})
    effects = F.logit_effects_all(run.model, sae)  # [d_sae, d_vocab]
    push = effects[:, ids].mean(1) - effects.mean(1)  # [d_sae]: raises the keywords more than the rest
    candidates = list(dict.fromkeys(detectors.tolist() + push.topk(n_candidates).indices.tolist()))
    del enc
    held = F.encode_text(run, sae, _held_out_text())
    s = sampling or story_sampling()
    seeds = list(seeds)
    few = seeds[: max(1, len(seeds) // 5)]

    def trial(f, k, seeds):
        strength = round(k * F.feature_peak(run, sae, f, held), 3)
        m = measure(run, prompts, seeds, concept, s, hooks=[steering_hook(sae, f, strength, mode)])
        return {"feature": f, "strength": strength, "x_peak": k, "stories": len(prompts) * len(seeds),
                "mention_rate": m["mention_rate"], "fluency_loss": round(m["fluency_loss"], 4)}

    plain, plain_few = measure(run, prompts, seeds, concept, s), measure(run, prompts, few, concept, s)
    rough = [trial(f, k, few) for f in candidates for k in (0.5, 0.7, 1.0)]
    ok = [t for t in rough if t["fluency_loss"] <= plain_few["fluency_loss"] + max_loss_increase] or rough
    feature = max(ok, key=lambda t: (t["mention_rate"], -t["fluency_loss"]))["feature"]
    fine = [trial(feature, k, seeds) for k in factors]
    readable = [t for t in fine if t["fluency_loss"] <= plain["fluency_loss"] + max_loss_increase]
    strong = [t for t in readable if t["mention_rate"] >= enough]
    if strong:
        best = min(strong, key=lambda t: t["strength"])
    elif readable:
        best = max(readable, key=lambda t: (t["mention_rate"], -t["fluency_loss"]))
    else:
        best = min(fine, key=lambda t: t["fluency_loss"])
    return {**best, "mode": mode, "readable": bool(readable), "plain_mention_rate": plain["mention_rate"],
            "plain_fluency_loss": round(plain["fluency_loss"], 4), "tried": rough + fine}


def _held_out_text() -> str:
    """The text feature peaks are read on (the same as `features.feature_peak`'s default)."""
    from llmcore.corpus import load_corpus
    from llmcore.interpret.features import PEAK_CHARS

    return load_corpus("storyworld", "val", n_chars=PEAK_CHARS).text


def steering_eval(run, sae, feature, strength: float | None = None, *, prompts=NEUTRAL_PROMPTS, seeds=range(5),
                  concept: str = "golden_gate_bridge", sampling=None, mode: str | None = None,
                  prefix: str = PROMPT_PREFIX, conditions=("plain", "steered", "prompted")):
    """Mention rate and fluency without steering, steered, and with the prompting baseline.

    `strength` or `mode` None: `default_strength`'s rule. Each condition is one `measure`
    over the same prompts and seeds. Returns {"plain"|"steered"|"prompted":
    {"mention_rate", "fluency_loss", "examples"}, "n": stories per condition, "settings": ...}.
    """

    if strength is None or mode is None:
        rule = default_strength(run, sae, feature)
        strength = rule["strength"] if strength is None else strength
        mode = rule["mode"] if mode is None else mode
    hook = steering_hook(sae, feature, strength, mode)
    base = sampling or story_sampling()
    setups = {"plain": ("", []), "steered": ("", [hook]), "prompted": (prefix, [])}
    out = {name: measure(run, prompts, seeds, concept, base, hooks=setups[name][1], prefix=setups[name][0])
           for name in conditions}
    out["n"] = len(prompts) * len(list(seeds))
    out["settings"] = {"feature": resolve_feature(sae, feature), "strength": strength, "mode": mode,
                       "concept": concept, "prefix": prefix, "max_new_tokens": base.max_new_tokens,
                       "temperature": base.temperature}
    return out


def measure(run, prompts, seeds, concept: str, sampling, *, hooks=(), prefix: str = "") -> dict:
    """One story per (prompt, seed), written with `hooks` after `prefix` + prompt: how many mention `concept`, how fluent.

    A story "mentions" the concept if `llmcore.corpus.mentions` finds a keyword in its new
    text; its fluency is the mean loss (nats/token) of the new tokens under the plain model
    (`continuation_loss`). The same seeds in every condition: differences come from the
    condition. Returns {"mention_rate", "fluency_loss", "examples": the first seed's stories}.
    """
    from dataclasses import replace

    from llmcore.corpus import mentions
    from llmcore.generate import steps

    tok, model, seeds = run.tokenizer, run.model, list(seeds)
    hits, losses, examples = 0, [], []
    for prompt in prompts:
        for seed in seeds:
            new = [st.token_id for st in steps(model, tok, prefix + prompt, replace(sampling, seed=seed),
                                               fwd_hooks=list(hooks), n_alternatives=0)]
            text = tok.decode(new)
            hits += mentions(text, concept)
            losses.append(continuation_loss(model, tok.encode(prefix + prompt), new))
            if seed == seeds[0]:
                examples.append(prompt + text)
    return {"mention_rate": hits / len(losses), "fluency_loss": sum(losses) / len(losses), "examples": examples}
