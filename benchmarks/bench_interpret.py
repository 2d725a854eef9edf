"""Benchmark: is the SAE good, does it find the planted concepts, does steering work?

    .venv/bin/python benchmarks/bench_interpret.py             # shipped run + its SAE (trains one if missing)
    .venv/bin/python benchmarks/bench_interpret.py --retrain   # train the SAE afresh, timed
    .venv/bin/python benchmarks/bench_interpret.py --sweep     # the recipe search: layer x activation x width

Measures, on the story world's held-out validation split:
  1. SAE quality, as SAELens reports it: L0, variance explained, dead features,
     loss recovered (the SAE's reconstruction spliced into the forward pass)
  2. concept recovery: for every planted concept, the best single feature's
     precision / recall / F1 (feature and threshold chosen on a separate labelling world)
  3. steering: >= 50 seeded generations from neutral prompts, how often they mention the
     Golden Gate Bridge plain, with the feature clamped, and with the prompting baseline,
     and their fluency (mean loss of the generated tokens under the unsteered model)
Prints tables and writes benchmarks/results/interpret.json with the machine's details.
Goals: bridge precision and recall >= 0.9; >= 6 of 8 concepts with F1 >= 0.8;
mentions from < 5% to > 80% while readable.
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
from llmcore.interpret.sae import load_sae, train_sae_for_run
from llmcore.interpret.steer import NEUTRAL_PROMPTS, recommended_strength, steering_eval
from llmcore.run import SAE_FILE, load_run

RESULTS = Path(__file__).parent / "results" / "interpret.json"
CONCEPT = "golden_gate_bridge"


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
    """Train one SAE per config into a temporary file and measure it."""
    from llmcore.interpret.sae import load_sae_file

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for i, cfg in enumerate(configs):
            path = train_sae_for_run(run, out=Path(tmp) / f"sae{i}.safetensors", **cfg)
            m = load_sae_file(path)[1]["metrics"]
            rows.append({**cfg, **sae_summary(m)})
            print_table(rows[-1:], f"sweep {i + 1}/{len(configs)}")
    return rows


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--run", default="storyworld", help="a run directory or shipped run name")
    p.add_argument("--retrain", action="store_true", help="train the SAE again (timed) before measuring")
    p.add_argument("--sweep", action="store_true", help="also search layer, activation and width")
    p.add_argument("--strength", type=float, default=None, help="clamp strength (default: the recipe's)")
    p.add_argument("--seeds", type=int, default=5, help="seeds per prompt (10 prompts)")
    p.add_argument("--max-new-tokens", type=int, default=40, help="tokens per generation")
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

    strength = a.strength if a.strength is not None else recommended_strength(sae, CONCEPT)
    sampling = Sampling(temperature=0.8, max_new_tokens=a.max_new_tokens)
    t0 = time.perf_counter()
    res = steering_eval(run, sae, CONCEPT, strength, prompts=NEUTRAL_PROMPTS, seeds=range(a.seeds), sampling=sampling)
    res["seconds"] = round(time.perf_counter() - t0, 1)
    out["steering"] = res
    print_table([{"condition": c, "mention_rate": f"{100 * res[c]['mention_rate']:.0f}%",
                  "fluency_loss": round(res[c]["fluency_loss"], 3)} for c in ("plain", "prompted", "steered")],
                f"Steering: feature {res['settings']['feature']} clamped to {strength} ({res['n']} generations each)")
    for c in ("plain", "prompted", "steered"):
        print(f"  {c:>8}: {res[c]['examples'][0]!r}")

    if a.sweep:
        configs = [dict(layer=layer, activation=act, **kw) for layer in range(run.model.cfg.n_layers)
                   for act, kw in (("topk", {"k": 8}), ("relu", {"l1_coeff": 2.0}))]
        out["sweep"] = sweep(run, configs)
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(out, indent=2) + "\n")
    print(f"\nwrote {RESULTS}")


if __name__ == "__main__":
    main()
