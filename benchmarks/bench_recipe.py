"""Benchmark: how good a model each training recipe reaches in the same CPU time budget.

Same model shape (the storyworld preset: d_model 128, 4 layers, n_ctx 128, BPE 1024),
same initial weights, same data (the storyworld corpus; validation is a different world,
never trained on), same time budget. What differs is the recipe:

    llmcore   llmcore.train's defaults: AdamW betas (0.9, 0.95), lr 5e-3 with 50 warm-up
              steps then a cosine down to 3e-4 at the end of the budget, weight decay 0.1
              on matrices only, gradient clipping at 1.0, batch 12 x 128, tied embeddings
    plain     what a tutorial does when it uses the usual defaults: torch AdamW betas
              (0.9, 0.999), lr 6e-4 (GPT-2 small's), the same 50 warm-up steps then
              constant, weight decay 0.01 on every parameter, no clipping, batch 12 x 128
              (nanoGPT's default micro-batch)

plus one row per single change to the llmcore recipe (lr, batch size, context length,
schedule, beta2, thread count, torch.compile, bf16 autocast), each trained for the full
budget as well.

The loop is llmcore.train's, built from the library's pieces (`get_batch`, `make_optimizer`,
`loss_fn`, `evaluate`), with one change: the cosine runs over the time budget instead of
a step count, because a time budget fixes no step count in advance. The clock pauses
while validation loss is measured (every budget/--evals seconds, same windows for all).

Reported: validation loss (nats/token) and bits per byte each recipe reached, and the
time each needed to reach the plain recipe's final loss (interpolated between
evaluations). Goal: the same loss in half the time, measured directly: the llmcore recipe
trains once more with half the budget (its cosine then ends at half time, as it would for
anyone who had only that long) and must reach the plain recipe's full-budget loss.

    .venv/bin/python benchmarks/bench_recipe.py                  # 180 s per recipe, + trick rows
    .venv/bin/python benchmarks/bench_recipe.py --quick          # 20 s per recipe
    .venv/bin/python benchmarks/bench_recipe.py --clock cpu      # budget in CPU seconds (shared machine)

With --clock cpu the budget counts this process's CPU seconds (all threads): robust when
other programs share the machine, but it charges the 2-thread row for both threads.
Writes benchmarks/results/recipe.json.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path

os.environ.setdefault("TORCHINDUCTOR_COMPILE_THREADS", "1")  # compile in this process: its CPU time counts
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402

from benchmarks.common import table, write_result  # noqa: E402
from llmcore.model import GPT, config_from_preset, loss_fn  # noqa: E402
from llmcore.train import TrainConfig, evaluate, get_batch, make_optimizer, prepare_data  # noqa: E402

GOAL = 2.0  # the plain recipe's final loss in at most half the budget


@dataclass(frozen=True)
class Recipe:
    """One way to train. Everything not here is shared (shape, init, data, budget)."""

    name: str
    lr: float = 3e-3  # peak learning rate
    min_lr: float = 3e-4  # the cosine's end (schedule "cosine")
    schedule: str = "cosine"  # "cosine" over the budget after warm-up, or "constant" after warm-up
    warmup: int = 50  # linear warm-up steps
    betas: tuple[float, float] = (0.9, 0.95)
    weight_decay: float = 0.1
    decay_matrices_only: bool = True  # llmcore's rule; False = decay every parameter
    grad_clip: float = 1.0  # 0 = off
    batch_size: int = 32
    n_ctx: int = 128
    threads: int = 1
    compile: bool = False
    bf16: bool = False  # torch.autocast("cpu", bfloat16) around the forward pass (weights stay fp32)
    note: str = ""


_DEFAULTS = TrainConfig()
LLMCORE = Recipe("llmcore", lr=_DEFAULTS.lr, min_lr=_DEFAULTS.min_lr, warmup=_DEFAULTS.warmup,
                 weight_decay=_DEFAULTS.weight_decay, grad_clip=_DEFAULTS.grad_clip,
                 batch_size=_DEFAULTS.batch_size, note="llmcore.train defaults")
PLAIN = Recipe("plain", lr=6e-4, schedule="constant", betas=(0.9, 0.999), weight_decay=0.01,
               decay_matrices_only=False, grad_clip=0.0, batch_size=12,
               note="torch AdamW defaults, GPT-2's lr 6e-4, constant, no clipping, batch 12")
TRICKS = [
    replace(LLMCORE, name="llmcore lr 3e-3", lr=3e-3, note="the previous default lr"),
    replace(LLMCORE, name="llmcore lr 1e-3", lr=1e-3, min_lr=1e-4, note="lower peak lr"),
    replace(LLMCORE, name="llmcore lr 6e-4", lr=6e-4, min_lr=6e-5, note="the plain recipe's lr"),
    replace(LLMCORE, name="llmcore batch 32", batch_size=32, note="bigger batch, fewer steps per second"),
    replace(LLMCORE, name="llmcore batch 32 lr 3e-3", batch_size=32, lr=3e-3,
            note="the previous defaults (the shipped run's recipe)"),
    replace(LLMCORE, name="llmcore batch 16", batch_size=16, note="a little bigger batch"),
    replace(LLMCORE, name="llmcore batch 8", batch_size=8, note="smaller still: more steps per second"),
    replace(LLMCORE, name="llmcore n_ctx 64", n_ctx=64, note="shorter context (val loss at 64 tokens of context)"),
    replace(LLMCORE, name="llmcore constant lr", schedule="constant", note="no cosine"),
    replace(LLMCORE, name="llmcore betas .999", betas=(0.9, 0.999), note="AdamW's default beta2"),
    replace(LLMCORE, name="llmcore 2 threads", threads=2, note="torch.set_num_threads(2)"),
    replace(LLMCORE, name="llmcore compile", compile=True, note="torch.compile(model); compile time counts"),
    replace(LLMCORE, name="llmcore bf16 autocast", bf16=True, note="bf16 matmuls (AMX where the CPU has it)"),
]


def learning_rate(r: Recipe, step: int, progress: float) -> float:
    """Warm-up by steps, then constant or a cosine over the fraction of the budget used."""
    if step < r.warmup:
        return r.lr * (step + 1) / r.warmup
    if r.schedule == "constant":
        return r.lr
    return r.min_lr + 0.5 * (r.lr - r.min_lr) * (1 + math.cos(math.pi * min(1.0, progress)))


def optimizer(model, r: Recipe):
    if r.decay_matrices_only:  # llmcore.train.make_optimizer, with this recipe's betas
        groups = make_optimizer(model, TrainConfig(weight_decay=r.weight_decay)).param_groups
        groups = [{"params": g["params"], "weight_decay": g["weight_decay"]} for g in groups]
    else:
        groups = [{"params": list(model.parameters()), "weight_decay": r.weight_decay}]
    return torch.optim.AdamW(groups, lr=r.lr, betas=r.betas, eps=1e-8)


def train_for(r: Recipe, data, budget: float, clock, n_evals: int, eval_batches: int, seed: int = 0) -> dict:
    """Train with recipe `r` until `budget` seconds of `clock` have gone; the curve of val losses."""
    torch.set_num_threads(r.threads)
    cfg = config_from_preset("storyworld", data.tokenizer.vocab_size, n_ctx=r.n_ctx)
    torch.manual_seed(seed)
    model = GPT(cfg, seed=seed).train()
    forward = torch.compile(model) if r.compile else model
    opt = optimizer(model, r)
    gen = torch.Generator().manual_seed(seed + 1)  # the data order

    def val():
        return evaluate(model, data, cfg.n_ctx, 32, eval_batches, "cpu")

    loss0, bpb0 = val()
    curve = [{"seconds": 0.0, "step": 0, "val_loss": loss0, "val_bpb": bpb0}]
    trained, step, next_eval, t_wall = 0.0, 0, budget / n_evals, time.perf_counter()
    while trained < budget:
        t0 = clock()
        for g in opt.param_groups:
            g["lr"] = learning_rate(r, step, trained / budget)
        x, y = get_batch(data.train, r.batch_size, cfg.n_ctx, gen)  # [batch, n_ctx] each
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=r.bf16):
            loss = loss_fn(forward(x), y)
        loss.backward()
        if r.grad_clip:
            torch.nn.utils.clip_grad_norm_(model.parameters(), r.grad_clip)
        opt.step()
        opt.zero_grad(set_to_none=True)
        step += 1
        trained += clock() - t0
        if trained >= next_eval or trained >= budget:  # the clock is paused while we measure
            vl, vb = val()
            curve.append({"seconds": trained, "step": step, "val_loss": vl, "val_bpb": vb, "train_loss": loss.item()})
            next_eval += budget / n_evals
    return {"recipe": asdict(r), "name": r.name, "steps": step, "tokens": step * r.batch_size * cfg.n_ctx,
            "seconds": trained, "wall_seconds": time.perf_counter() - t_wall, "n_params": model.n_params(),
            "final_val_loss": curve[-1]["val_loss"], "final_val_bpb": curve[-1]["val_bpb"],
            "best_val_loss": min(c["val_loss"] for c in curve), "curve": curve}


def time_to_reach(curve: list[dict], target: float) -> float | None:
    """First time the curve's val loss is <= target, interpolated between evaluations."""
    for a, b in zip(curve, curve[1:]):
        if b["val_loss"] <= target:
            if a["val_loss"] <= target:
                return a["seconds"]
            f = (a["val_loss"] - target) / (a["val_loss"] - b["val_loss"])
            return a["seconds"] + f * (b["seconds"] - a["seconds"])
    return None


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="smoke run: 20 s per recipe, a smaller corpus")
    p.add_argument("--budget", type=float, help="seconds of training per recipe (default 180; --quick 20)")
    p.add_argument("--clock", choices=["wall", "cpu"], default="wall",
                   help="what the budget counts: wall-clock seconds, or this process's CPU seconds")
    p.add_argument("--evals", type=int, help="validation measurements per run (default 30; --quick 10)")
    p.add_argument("--no-tricks", action="store_true", help="only the llmcore and plain recipes")
    p.add_argument("--tricks", nargs="+", help="only these trick rows (by name)")
    a = p.parse_args(argv)
    budget = a.budget or (20.0 if a.quick else 180.0)
    n_evals = a.evals or (10 if a.quick else 30)
    eval_batches = 2 if a.quick else 4
    clock = time.process_time if a.clock == "cpu" else time.perf_counter

    # the same data for every recipe: BPE 1024 trained on the storyworld training split
    data = prepare_data(TrainConfig(n_chars=300_000 if a.quick else None))
    recipes = [LLMCORE, PLAIN]
    if not a.no_tricks:
        recipes += [t for t in TRICKS if not a.tricks or t.name in a.tricks]
    runs = []
    for r in recipes:
        print(f"... {r.name}: {budget:g} s ({a.clock} clock)", flush=True)
        runs.append(train_for(r, data, budget, clock, n_evals, eval_batches))

    plain_final = runs[1]["final_val_loss"]
    for run in runs:
        t = time_to_reach(run["curve"], plain_final)
        run["seconds_to_plain_final_loss"] = t
        run["speedup_vs_plain"] = budget / t if t else None
    print(f"... llmcore again, half the budget: {budget / GOAL:g} s", flush=True)
    half = train_for(LLMCORE, data, budget / GOAL, clock, n_evals, eval_batches)
    print(f"\nvalidation loss after {budget:g} s of training ({a.clock} clock); "
          f"'to plain' = seconds to reach the plain recipe's final loss {plain_final:.3f}")
    print(table([{"recipe": r["name"], "steps": r["steps"], "tokens": r["tokens"], "val loss": r["final_val_loss"],
                  "bits/byte": r["final_val_bpb"], "to plain (s)": r["seconds_to_plain_final_loss"],
                  "x faster": r["speedup_vs_plain"]} for r in runs],
                ["recipe", "steps", "tokens", "val loss", "bits/byte", "to plain (s)", "x faster"]))
    met = half["final_val_loss"] <= plain_final
    print(f"llmcore with half the budget ({budget / GOAL:g} s): val loss {half['final_val_loss']:.3f} vs plain's "
          f"{plain_final:.3f} after {budget:g} s; goal (the same loss in half the time): {'met' if met else 'not met'}")
    write_result("recipe", {
        "benchmark": "validation loss reached in a fixed time budget: llmcore's recipe vs a plain one",
        "goal": f"llmcore trained for 1/{GOAL:g} of the budget reaches the plain recipe's full-budget val loss",
        "settings": {"quick": a.quick, "budget_s": budget, "clock": a.clock, "n_evals": n_evals,
                     "eval_windows": 32 * eval_batches, "model_preset": "storyworld", "seed": 0,
                     "corpus": "storyworld (train) / storyworld val world", "train_tokens": len(data.train),
                     "val_tokens": len(data.val), "vocab": data.tokenizer.vocab_size},
        "plain_final_val_loss": plain_final,
        "llmcore_seconds_to_plain_final_loss": runs[0]["seconds_to_plain_final_loss"],
        "llmcore_speedup_vs_plain": runs[0]["speedup_vs_plain"],
        "llmcore_half_budget_final_val_loss": half["final_val_loss"],
        "goal_met": met,
        "runs": runs,
        "llmcore_half_budget": half,
    })
    return 0


if __name__ == "__main__":
    sys.exit(main())
