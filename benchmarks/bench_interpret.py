"""Benchmark: is the SAE good, does it find the planted concepts, does steering work?

    .venv/bin/python benchmarks/bench_interpret.py             # shipped run + its SAE (trains one if missing)
    .venv/bin/python benchmarks/bench_interpret.py --retrain   # train the SAE afresh, timed
    .venv/bin/python benchmarks/bench_interpret.py --sweep     # the recipe search: hook x layer, then k, width, ReLU
    .venv/bin/python benchmarks/bench_interpret.py --probe     # linear probes: the best any one direction can do

Measures, on the story world's held-out validation split:
  1. SAE quality, as SAELens reports it: L0, variance explained, dead features,
     loss recovered (the SAE's reconstruction spliced into the forward pass)
  2. concept recovery: for every planted concept, the best single feature's
     precision / recall / F1 (feature and threshold chosen on a separate labelling world)
  3. steering: >= 50 seeded generations from neutral prompts, how often they mention the
     Golden Gate Bridge plain, steered with the SAE's stored pick, and with the prompting
     baseline, and their fluency (mean loss of the generated tokens under the unsteered
     model, nats/token)
  4. the steering options, each swept over strength on the same 50 stories: raise the
     feature to at least s (the default), clamp it to exactly s, add its decoder direction
     s times, clamp without the SAE's error term (the stream replaced by the SAE's
     reconstruction), raise only from the prompt's last token on, and the direction added
     in later blocks; then the default strength rule on every planted concept's feature
Prints tables and writes benchmarks/results/interpret.json with the machine's details
(the sweep: interpret_sweep.json).
Goals: bridge precision and recall >= 0.9; >= 6 of 8 concepts with F1 >= 0.8;
mentions from < 5% to >= 80% with fluency within 0.15 nats/token of plain ("readable").
"""

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import torch

from llmcore.generate import Sampling
from llmcore.interpret import steer
from llmcore.interpret.features import STRENGTH_FACTOR, default_strength, feature_peak
from llmcore.interpret.sae import load_sae, train_sae_for_run
from llmcore.run import SAE_FILE, load_run

RESULTS = Path(__file__).parent / "results" / "interpret.json"
SWEEP_RESULTS = RESULTS.with_name("interpret_sweep.json")
CONCEPT = "golden_gate_bridge"
SWEEP_HOOKS = ("hook_resid_post", "hook_attn_out")  # where the sweep and the probes look, in every block


def machine() -> dict:
    return {"python": sys.version.split()[0], "torch": torch.__version__, "platform": platform.platform(),
            "processor": platform.processor() or platform.machine(), "cpu_count": os.cpu_count(),
            "torch_threads": torch.get_num_threads()}


def sae_summary(m: dict) -> dict:
    concepts = m.get("concepts", {})
    ggb = concepts.get(CONCEPT, {})
    st = m.get("steering", {}).get(CONCEPT, {})
    return {k: round(m[k], 4) for k in ("l0", "variance_explained", "dead_fraction", "loss_recovered") if k in m} | {
        "train_seconds": m.get("train_seconds"), "ggb_precision": round(ggb.get("precision", 0), 3),
        "ggb_recall": round(ggb.get("recall", 0), 3), "concepts_f1_ge_0.8": sum(c["f1"] >= 0.8 for c in concepts.values()),
        "mean_f1": round(sum(c["f1"] for c in concepts.values()) / max(1, len(concepts)), 3),
        "label_mean_f1": round(sum(c["label_f1"] for c in concepts.values()) / max(1, len(concepts)), 3),
        "steer_feature": st.get("feature"), "steer_strength": st.get("strength"),
        "search_mentions": st.get("mention_rate"), "search_fluency": st.get("fluency_loss")}


def print_table(rows: list[dict], title: str):
    print(f"\n{title}")
    cols = list(rows[0])
    width = {c: max(len(c), *(len(f"{r[c]}") for r in rows)) for c in cols}
    print("  ".join(c.rjust(width[c]) for c in cols))
    for r in rows:
        print("  ".join(f"{r[c]}".rjust(width[c]) for c in cols))


def sweep(run, configs: list[dict]) -> list[dict]:
    """Train one SAE per config into a temporary file and score its concept recovery.

    Steering is not searched here (it takes minutes per SAE); the shipped SAE's is measured above.
    """
    from llmcore.interpret.features import label_features
    from llmcore.interpret.sae import load_sae_file

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for i, cfg in enumerate(configs):
            path = train_sae_for_run(run, out=Path(tmp) / f"sae{i}.safetensors", label=False, **cfg)
            sae, meta = load_sae_file(path)
            concepts = {c: m.to_dict() for c, m in label_features(run, sae).items()}
            rows.append({**cfg, **sae_summary({**meta["metrics"], "concepts": concepts})})
            print_table([{k: v for k, v in rows[-1].items() if v is not None}], f"sweep {i + 1}/{len(configs)}")
    return rows


def probe_ceiling(run, hooks, steps: int = 400) -> list[dict]:
    """The best any single linear direction can do: a logistic-regression probe per concept.

    An SAE feature predicts a concept by thresholding one linear read-out of the activation,
    so a supervised probe (fit on the labelling world, threshold by F1 there, scored on the
    validation world) bounds what any feature at that hook can reach.
    """
    from llmcore.corpus import CONCEPTS, load_corpus, storyworld
    from llmcore.interpret import features as F
    from llmcore.interpret.activations import collect_stream, token_offsets

    lab, held = storyworld(F.LABEL_SEED, F.LABEL_CHARS), load_corpus("storyworld", "val")
    tl, th = token_offsets(run.tokenizer, lab.text), token_offsets(run.tokenizer, held.text)
    rows = []
    for hook in hooks:
        xl = collect_stream(run.model, tl.ids, hook)  # [n_tokens, d_model]
        xh = collect_stream(run.model, th.ids, hook)
        mu, sd = xl.mean(0), xl.std(0) + 1e-6
        xl, xh = (xl - mu) / sd, (xh - mu) / sd
        row = {"hook": hook}
        for c in CONCEPTS:
            yl, yh = F.token_labels(tl, lab.spans, c), F.token_labels(th, held.spans, c)
            w = torch.zeros(xl.shape[1], requires_grad=True)
            b = torch.zeros(1, requires_grad=True)
            opt = torch.optim.Adam([w, b], lr=0.05)
            for _ in range(steps):
                loss = torch.nn.functional.binary_cross_entropy_with_logits(xl @ w + b, yl.float())
                opt.zero_grad()
                loss.backward()
                opt.step()
            with torch.no_grad():
                threshold, _ = F.best_threshold(xl @ w + b - (xl @ w + b).min(), yl)
                s = F.score(xh @ w + b - (xl @ w + b).min(), yh, threshold)
            row[c] = {k: round(s[k], 3) for k in ("precision", "recall", "f1")}
        rows.append(row)
        print_table([{"hook": hook, **{c: row[c]["f1"] for c in CONCEPTS}}], "Linear-probe F1 (the ceiling for any one feature)")
    return rows


def steering_options(run, sae, feature: int, sampling, seeds, plain_loss: float) -> list[dict]:
    """Every way of steering the bridge feature tried here, each at several strengths, on the benchmark's stories."""
    peak = feature_peak(run, sae, feature)
    direction, hook_name = sae.W_dec[feature], sae.cfg.hook_name

    def reconstructed(s):  # clamp, but the stream becomes the SAE's reconstruction: the error term is lost
        def fn(resid, hook):
            f = sae.encode(resid)
            f[..., feature] = s
            return sae.decode(f)
        return hook_name, fn

    def from_prompt_end(s):  # raise, but in the prompt only at its last token (the KV cache feeds it at once)
        name, raise_ = steer.clamp_hook(sae, feature, s, at_least=True)

        def fn(resid, hook):
            out = raise_(resid, hook)
            return torch.cat([resid[:, :-1], out[:, -1:]], 1) if resid.shape[1] > 1 else out
        return name, fn

    factors = (0.4, 0.5, 0.55, 0.6, 0.7, 0.85, 1.0)
    options = [("raise", f"raise to at least s at {hook_name} (default)", lambda s: steer.steering_hook(sae, feature, s, "raise")),
               ("clamp", f"clamp to exactly s at {hook_name}", lambda s: steer.steering_hook(sae, feature, s, "clamp")),
               ("add", f"add s x W_dec[{feature}] at {hook_name}", lambda s: steer.steering_hook(sae, feature, s, "add")),
               ("clamp_no_error", "clamp, stream replaced by the SAE's reconstruction", reconstructed),
               ("raise_from_prompt_end", "raise, in the prompt only at its last token", from_prompt_end)]
    rows = []
    for name, what, make in options:
        for k in factors if name in ("raise", "clamp", "add") else (0.5, 0.6, 0.7):
            rows.append({"option": name, "what": what, "strength": round(k * peak, 3), "x_peak": k,
                         **measured(run, [make(round(k * peak, 3))], sampling, seeds, plain_loss)})
    for layer in range(1, run.model.cfg.n_layers):  # the block-0 direction, added later in the stream
        name = f"blocks.{layer}.hook_resid_pre"
        for s in (1.0, 2.0, 4.0):
            rows.append({"option": f"add_block_{layer}", "what": f"add s x W_dec[{feature}] at {name}", "strength": s,
                         "x_peak": round(s / peak, 2), **measured(run, [steer.add_hook(name, direction, s)], sampling,
                                                                  seeds, plain_loss)})
    print_table([{k: v for k, v in r.items() if k not in ("what", "example")} for r in rows],
                f"Steering options for feature {feature} (peak {peak:.3f}; readable = within {steer.READABLE} of plain)")
    return rows


def measured(run, hooks, sampling, seeds, plain_loss: float, concept: str = CONCEPT) -> dict:
    m = steer.measure(run, steer.NEUTRAL_PROMPTS, seeds, concept, sampling, hooks=hooks)
    return {"mention_rate": m["mention_rate"], "fluency_loss": round(m["fluency_loss"], 3),
            "fluency_increase": round(m["fluency_loss"] - plain_loss, 3),
            "goal_met": m["mention_rate"] >= 0.8 and m["fluency_loss"] <= plain_loss + steer.READABLE,
            "example": m["examples"][0]}


def strength_rule(run, sae, sampling, seeds) -> list[dict]:
    """The default rule (STRENGTH_FACTOR x peak, raised) on each planted concept's detector feature."""
    rows = []
    for concept, match in sae.metrics.get("concepts", {}).items():
        f = match["feature"]
        rule = default_strength(run, sae, f)
        plain = steer.measure(run, steer.NEUTRAL_PROMPTS, seeds, concept, sampling)
        hook = steer.steering_hook(sae, f, rule["strength"], rule["mode"])
        rows.append({"concept": concept, "feature": f, "strength": rule["strength"], "mode": rule["mode"],
                     "rule": rule["why"], "plain_mention_rate": plain["mention_rate"],
                     "plain_fluency_loss": round(plain["fluency_loss"], 3),
                     **measured(run, [hook], sampling, seeds, plain["fluency_loss"], concept)})
    print_table([{k: v for k, v in r.items() if k not in ("rule", "example")} for r in rows],
                f"The default strength rule on each concept's feature (stored pick, else {STRENGTH_FACTOR} x peak)")
    return rows


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--run", default="storyworld", help="a run directory or shipped run name")
    p.add_argument("--retrain", action="store_true", help="train the SAE again (timed) before measuring")
    p.add_argument("--sweep", action="store_true", help="also search hook, layer, k, width and activation")
    p.add_argument("--probe", action="store_true", help="also fit linear probes: the ceiling for any one feature")
    p.add_argument("--strength", type=float, default=None, help="steering strength (default: the stored pick)")
    p.add_argument("--seeds", type=int, default=5, help="seeds per prompt (10 prompts)")
    p.add_argument("--max-new-tokens", type=int, default=steer.STORY_TOKENS, help="tokens per generation")
    a = p.parse_args()

    run = load_run(a.run)
    out = {"machine": machine(), "run": str(run.path), "model": run.model.cfg.to_dict(), "provenance": run.provenance}
    if a.retrain or not (run.path / SAE_FILE).is_file():
        t0 = time.perf_counter()
        train_sae_for_run(run)
        out["sae_train_wall_seconds"] = round(time.perf_counter() - t0, 1)
    sae = load_sae(run)
    out["sae_config"] = sae.cfg.to_dict()
    out["sae"] = {k: v for k, v in sae.metrics.items() if k != "concepts"}
    print_table([sae_summary(sae.metrics)], f"SAE at {sae.cfg.hook_name} ({sae.cfg.activation}, d_sae={sae.cfg.d_sae})")

    out["concepts"] = sae.metrics["concepts"]
    rows = [{"concept": c, **{k: (round(v, 3) if isinstance(v, float) else v) for k, v in m.items() if k != "concept"}}
            for c, m in out["concepts"].items()]
    print_table(rows, "Concept recovery (held-out validation world)")

    sampling = Sampling(temperature=0.8, max_new_tokens=a.max_new_tokens)
    t0 = time.perf_counter()
    rule = default_strength(run, sae, CONCEPT)
    strength = a.strength if a.strength is not None else rule["strength"]
    res = steer.steering_eval(run, sae, CONCEPT, strength, mode=rule["mode"], seeds=range(a.seeds), sampling=sampling)
    res["seconds"] = round(time.perf_counter() - t0, 1)
    plain = res["plain"]["fluency_loss"]
    for c in ("plain", "prompted", "steered"):
        res[c]["readable"] = res[c]["fluency_loss"] <= plain + steer.READABLE
    res["goal_met"] = res["steered"]["mention_rate"] >= 0.8 and res["steered"]["readable"]
    out["steering"] = res
    print_table([{"condition": c, "mention_rate": f"{100 * res[c]['mention_rate']:.0f}%",
                  "fluency_loss": round(res[c]["fluency_loss"], 3), "readable": res[c]["readable"]}
                 for c in ("plain", "prompted", "steered")],
                f"Steering: feature {res['settings']['feature']}, {rule['mode']} at {strength} "
                f"({res['n']} generations each; goal met: {res['goal_met']})")
    for c in ("plain", "prompted", "steered"):
        print(f"  {c:>8}: {res[c]['examples'][0]!r}")
    out["steering_options"] = steering_options(run, sae, res["settings"]["feature"], sampling, range(a.seeds), plain)
    out["strength_rule"] = strength_rule(run, sae, sampling, range(a.seeds))

    if a.probe:
        out["probe_ceiling"] = probe_ceiling(run, [f"blocks.{layer}.{kind}" for kind in SWEEP_HOOKS
                                                   for layer in range(run.model.cfg.n_layers)])
    if a.sweep:
        n = run.model.cfg.n_layers
        configs = [dict(hook_name=f"blocks.{layer}.{kind}") for kind in SWEEP_HOOKS for layer in range(n)]
        configs += [dict(k=4), dict(k=6), dict(k=16), dict(d_sae=256), dict(d_sae=512), dict(d_sae=1024),
                    dict(activation="relu", l1_coeff=1.5)]
        rows = sweep(run, configs)
        SWEEP_RESULTS.parent.mkdir(parents=True, exist_ok=True)
        SWEEP_RESULTS.write_text(json.dumps({"machine": out["machine"], "run": out["run"], "sweep": rows}, indent=2) + "\n")
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(out, indent=2) + "\n")
    print(f"\nwrote {RESULTS}")


if __name__ == "__main__":
    main()
