"""Benchmark: how good a model each training recipe reaches in the same CPU time budget, on several texts.

Three texts, each with the tokenizer a learner would pick for it:

    storyworld      the generated story world (2.4 MB), BPE 1024; validation is a different world
    python-docs     the Python language reference's prose (175 kB, in the stdlib), characters
    vim-manual      the Vim user manual as it ships with Vim (36 files, 640 kB, tables and all):
                    a book-length text a learner might bring, characters and BPE 1024

On each text two recipes train the same model (the shape `llmcore.recipe.pick` chooses
for that text and budget), from the same initial weights, on the same batches' source,
for the same budget:

    llmcore   llmcore.train's recipe: AdamW betas (0.9, 0.95), the picked lr (5e-3) with 50
              warm-up steps then a cosine to 3e-4 at the end of the budget, weight decay 0.1
              on matrices (W_E included, W_pos not), clipping at 1.0, the picked batch
    plain     nanoGPT's recipe for a CPU (its README's `train_shakespeare_char` line for a
              MacBook): lr 1e-3, min_lr 1e-4, 100 warm-up steps, betas (0.9, 0.99), weight
              decay 0.1 on every matrix, clipping at 1.0, batch 12; its cosine is fitted to
              the budget too, as if its user had guessed --max_iters right (the strongest
              version of it)

Goal per text (issue 16): llmcore trained for half the budget reaches plain's full-budget
held-out loss, and in the full budget a clearly lower one. The half-budget run is what
anyone who had only that long would get from `llmcore train --max-seconds`: the model
`pick` chooses for half the time (which can be smaller), its cosine ending at half time.
Where that model differs, the full budget's model trained for half the time is reported too. Reported: validation loss
(nats/token) and bits per byte, and the seconds each needed to reach plain's final loss
(interpolated between evaluations).

`--sweep` measures the rule behind `llmcore.recipe.pick`: each CPU model preset trained
with the llmcore recipe for the same budget on a 50 kB, a 640 kB and a 10 MB text
(characters), so the best model for a text size and budget is read off, not guessed.
`--tricks` adds single changes to the llmcore recipe on the first text (bf16 autocast,
z-loss, no decay on W_E, a context ramp, twice the batch).

    .venv/bin/python benchmarks/bench_recipe.py --clock cpu              # 120 s per recipe per text
    .venv/bin/python benchmarks/bench_recipe.py --clock cpu --sweep      # the picker's measurements
    .venv/bin/python benchmarks/bench_recipe.py --quick --clock cpu      # 20 s, smoke

With --clock cpu the budget counts this process's CPU seconds (all threads): robust when
other programs share the machine (the load average is recorded), but it charges a
2-thread run for both threads. Writes benchmarks/results/recipe.json (the sweep and the
comparison are kept side by side: a run of one keeps the other's rows).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402

from benchmarks.common import RESULTS, machine_info, table, write_result  # noqa: E402
from llmcore.model import GPT, config_from_preset, loss_fn  # noqa: E402
from llmcore.recipe import pick  # noqa: E402
from llmcore.train import TrainConfig, evaluate, get_batch, make_optimizer, prepare_data  # noqa: E402

GOAL = 2.0  # the plain recipe's final loss in at most half the budget
VIM_DOCS = Path("/usr/share/vim/vim90/doc")  # Debian's vim-runtime; the user manual is usr_*.txt


@dataclass(frozen=True)
class Recipe:
    """One way to train. Everything not here is shared (shape, init, data, budget)."""

    name: str
    lr: float = 5e-3  # peak learning rate
    min_lr: float = 3e-4  # the cosine's end
    warmup: int = 50  # linear warm-up steps
    betas: tuple[float, float] = (0.9, 0.95)
    weight_decay: float = 0.1
    decay_embedding: bool = True  # weight decay on W_E too (nanoGPT's rule and llmcore's)
    decay_positions: bool = False  # weight decay on W_pos (nanoGPT: yes, every matrix)
    grad_clip: float = 1.0  # 0 = off
    batch_size: int = 12
    threads: int = 1
    bf16: bool = False  # torch.autocast("cpu", bfloat16) around the forward pass (weights stay fp32)
    z_loss: float = 0.0  # PaLM's auxiliary loss on log(sum(exp(logits)))^2
    ctx_ramp: float = 0.0  # share of the budget over which the context grows from n_ctx/4 to n_ctx
    note: str = ""


def llmcore_recipe(choice) -> Recipe:
    """The llmcore recipe for a text: llmcore.train's optimizer settings with pick()'s lr and batch."""
    d = TrainConfig()
    return Recipe("llmcore", lr=choice.lr, min_lr=d.min_lr, warmup=d.warmup, weight_decay=d.weight_decay,
                  grad_clip=d.grad_clip, batch_size=choice.batch_size, note="llmcore.train + llmcore.recipe.pick")


PLAIN = Recipe("plain (nanoGPT)", lr=1e-3, min_lr=1e-4, warmup=100, betas=(0.9, 0.99), weight_decay=0.1,
               decay_positions=True, grad_clip=1.0, batch_size=12,
               note="nanoGPT's CPU shakespeare_char recipe, cosine fitted to the budget")


def tricks(base: Recipe) -> list[Recipe]:
    return [
        replace(base, name="llmcore bf16 autocast", bf16=True, note="bf16 matmuls (avx512_bf16 / AMX where the CPU has it)"),
        replace(base, name="llmcore z-loss 1e-4", z_loss=1e-4, note="PaLM's z-loss on the softmax normaliser"),
        replace(base, name="llmcore no decay on W_E", decay_embedding=False, note="weight decay on block matrices only"),
        replace(base, name="llmcore context ramp", ctx_ramp=0.3, note="context n_ctx/4 -> n_ctx over the first 30%"),
        replace(base, name="llmcore batch 24", batch_size=24, note="twice the batch"),
    ]


def texts(quick: bool) -> dict[str, dict]:
    """The texts: name -> TrainConfig fields for its corpus and tokenizer."""
    out = {"storyworld": dict(corpus="storyworld", tokenizer="bpe"),
           "python-docs": dict(corpus="python-docs", tokenizer="char")}
    manual = vim_manual()
    if manual:
        out |= {"vim-manual": dict(corpus=str(manual), tokenizer="char"),
                "vim-manual-bpe": dict(corpus=str(manual), tokenizer="bpe")}
    if quick:
        out = {k: v | {"n_chars": 300_000} for k, v in out.items()}
    return out


def vim_manual() -> Path | None:
    """The Vim user manual's chapters joined into one .txt file (as a learner would bring it), or None."""
    files = sorted(VIM_DOCS.glob("usr_*.txt"))
    if not files:
        print(f"(no Vim user manual under {VIM_DOCS}: skipping that text)")
        return None
    path = Path(tempfile.gettempdir()) / "llmcore-bench" / "vim-user-manual.txt"
    path.parent.mkdir(exist_ok=True)
    path.write_text("\n".join(f.read_text(encoding="utf-8", errors="replace") for f in files), encoding="utf-8")
    return path


def optimizer(model, r: Recipe):
    if r.decay_embedding and not r.decay_positions:  # llmcore.train.make_optimizer, with this recipe's betas
        groups = make_optimizer(model, TrainConfig(weight_decay=r.weight_decay)).param_groups
        groups = [{"params": g["params"], "weight_decay": g["weight_decay"]} for g in groups]
    else:
        skip = {"W_pos"} if not r.decay_positions else set()
        skip |= {"W_E"} if not r.decay_embedding else set()
        named = list(model.named_parameters())
        groups = [{"params": [p for n, p in named if p.ndim == 2 and n not in skip], "weight_decay": r.weight_decay},
                  {"params": [p for n, p in named if not (p.ndim == 2 and n not in skip)], "weight_decay": 0.0}]
    return torch.optim.AdamW(groups, lr=r.lr, betas=r.betas, eps=1e-8, fused=True)


def learning_rate(r: Recipe, step: int, progress: float) -> float:
    """Warm-up by steps, then a cosine over the share of the budget used (as llmcore.schedule)."""
    if step < r.warmup:
        return r.lr * (step + 1) / r.warmup
    return r.min_lr + 0.5 * (r.lr - r.min_lr) * (1 + math.cos(math.pi * min(1.0, progress)))


def train_for(r: Recipe, data, preset: str, n_ctx: int, budget: float, clock, n_evals: int, eval_batches: int,
              seed: int = 0) -> dict:
    """Train with recipe `r` until `budget` seconds of `clock` have gone; the curve of val losses."""
    torch.set_num_threads(r.threads)
    cfg = config_from_preset(preset, data.tokenizer.vocab_size, n_ctx=n_ctx)
    torch.manual_seed(seed)
    model = GPT(cfg, seed=seed).train()
    opt = optimizer(model, r)
    gen = torch.Generator().manual_seed(seed + 1)  # the data order

    def val():
        return evaluate(model, data, cfg.n_ctx, 32, eval_batches, "cpu")

    loss0, bpb0 = val()
    curve = [{"seconds": 0.0, "step": 0, "val_loss": loss0, "val_bpb": bpb0}]
    trained, step, tokens, next_eval, t_wall = 0.0, 0, 0, budget / n_evals, time.perf_counter()
    while trained < budget:
        t0 = clock()
        for g in opt.param_groups:
            g["lr"] = learning_rate(r, step, trained / budget)
        ctx = cfg.n_ctx  # a context ramp trains on shorter windows first (more of them per second)
        if r.ctx_ramp and trained < r.ctx_ramp * budget:
            ctx = max(8, int(cfg.n_ctx * (0.25 + 0.75 * trained / (r.ctx_ramp * budget))))
        x, y = get_batch(data.train, r.batch_size, ctx, gen)  # [batch, ctx] each
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=r.bf16):
            logits = model(x)
        loss = loss_fn(logits.float(), y)
        if r.z_loss:
            loss = loss + r.z_loss * logits.float().logsumexp(-1).pow(2).mean()
        loss.backward()
        if r.grad_clip:
            torch.nn.utils.clip_grad_norm_(model.parameters(), r.grad_clip)
        opt.step()
        opt.zero_grad(set_to_none=True)
        step += 1
        tokens += r.batch_size * ctx
        trained += clock() - t0
        if trained >= next_eval or trained >= budget:  # the clock is paused while we measure
            vl, vb = val()
            curve.append({"seconds": trained, "step": step, "val_loss": vl, "val_bpb": vb, "train_loss": loss.item()})
            next_eval += budget / n_evals
    return {"recipe": asdict(r), "name": r.name, "preset": preset, "n_ctx": cfg.n_ctx, "steps": step, "tokens": tokens,
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


def compare(name: str, spec: dict, budget: float, clock, n_evals: int, eval_batches: int, with_tricks: bool) -> dict:
    """One text: plain and llmcore for the budget, llmcore for half of it (and the tricks)."""
    data = prepare_data(TrainConfig(**spec))
    n_chars = len(data.tokenizer.decode(data.train.tolist()))
    choice = pick(n_chars, seconds=budget, tokenizer=spec["tokenizer"])
    print(f"\n== {name}: {choice.reason}", flush=True)
    base = llmcore_recipe(choice)
    recipes = [base, PLAIN] + (tricks(base) if with_tricks else [])
    runs = []
    load = []
    for r in recipes:
        print(f"... {name} / {r.name}: {budget:g} s", flush=True)
        load.append(os.getloadavg()[0])
        runs.append(train_for(r, data, choice.preset, choice.n_ctx, budget, clock, n_evals, eval_batches))
    # A learner with half the time runs `llmcore train --max-seconds <half>`: pick() chooses for that
    # budget, which may be a smaller model. The same model for half the time is kept beside it.
    short = pick(n_chars, seconds=budget / GOAL, tokenizer=spec["tokenizer"])
    print(f"... {name} / llmcore, half the budget: {budget / GOAL:g} s ({short.preset})", flush=True)
    load.append(os.getloadavg()[0])
    half = train_for(llmcore_recipe(short), data, short.preset, short.n_ctx, budget / GOAL, clock, n_evals, eval_batches)
    half["pick"] = short.to_dict()
    same = half
    if (short.preset, short.n_ctx, short.batch_size) != (choice.preset, choice.n_ctx, choice.batch_size):
        print(f"... {name} / llmcore, half the budget, the full budget's {choice.preset}", flush=True)
        same = train_for(base, data, choice.preset, choice.n_ctx, budget / GOAL, clock, n_evals, eval_batches)
    plain_final = runs[1]["final_val_loss"]
    for run in runs:
        t = time_to_reach(run["curve"], plain_final)
        run["seconds_to_plain_final_loss"] = t
        run["speedup_vs_plain"] = budget / t if t else None
    met_half = half["final_val_loss"] <= plain_final
    gain = plain_final - runs[0]["final_val_loss"]
    print(table([{"recipe": r["name"], "steps": r["steps"], "tokens": r["tokens"], "val loss": r["final_val_loss"],
                  "bits/byte": r["final_val_bpb"], "to plain (s)": r["seconds_to_plain_final_loss"],
                  "x faster": r["speedup_vs_plain"]} for r in runs],
                ["recipe", "steps", "tokens", "val loss", "bits/byte", "to plain (s)", "x faster"]))
    print(f"{name}: llmcore in {budget / GOAL:g} s: {half['final_val_loss']:.3f} vs plain in {budget:g} s: "
          f"{plain_final:.3f} ({'met' if met_half else 'not met'}); in {budget:g} s: "
          f"{runs[0]['final_val_loss']:.3f} vs {plain_final:.3f} ({gain:+.3f} nats/token)")
    return {"text": name, "spec": spec, "pick": choice.to_dict(), "train_tokens": len(data.train),
            "val_tokens": len(data.val), "vocab": data.tokenizer.vocab_size, "load_average_during": load,
            "plain_final_val_loss": plain_final, "llmcore_final_val_loss": runs[0]["final_val_loss"],
            "llmcore_half_budget_final_val_loss": half["final_val_loss"], "llmcore_half_budget_preset": short.preset,
            "llmcore_half_budget_same_model_final_val_loss": same["final_val_loss"],
            "llmcore_seconds_to_plain_final_loss": runs[0]["seconds_to_plain_final_loss"],
            "goal_half_time_met": met_half, "loss_gain_same_time": gain,
            "runs": runs, "llmcore_half_budget": half, "llmcore_half_budget_same_model": same}


SWEEP_TEXTS = {"50 kB": ("vim", 50_000), "640 kB": ("vim", None), "10 MB": ("storyworld", 10_000_000)}
SWEEP_PRESETS = ("nano", "micro", "storyworld")


def sweep(budget: float, clock, n_evals: int, eval_batches: int) -> list[dict]:
    """Each CPU preset, the llmcore recipe, the same budget, three text sizes (characters)."""
    manual = vim_manual()
    rows = []
    for label, (source, n_chars) in SWEEP_TEXTS.items():
        corpus = str(manual) if source == "vim" else "storyworld"
        data = prepare_data(TrainConfig(corpus=corpus, tokenizer="char", n_chars=n_chars))
        for preset in SWEEP_PRESETS:
            print(f"... sweep {label} / {preset}: {budget:g} s", flush=True)
            r = Recipe("llmcore")  # llmcore.train's lr 5e-3 and batch 12
            load = os.getloadavg()[0]
            run = train_for(r, data, preset, config_from_preset(preset, 2).n_ctx, budget, clock, n_evals, eval_batches)
            rows.append({"text": label, "corpus": source, "train_tokens": len(data.train), "preset": preset,
                         "n_params": run["n_params"], "tokens_seen": run["tokens"],
                         "tokens_per_param": run["tokens"] / run["n_params"],
                         "epochs": run["tokens"] / len(data.train), "tokens_per_s": run["tokens"] / run["seconds"],
                         "final_val_loss": run["final_val_loss"], "final_val_bpb": run["final_val_bpb"],
                         "best_val_bpb": min(c["val_bpb"] for c in run["curve"]), "load_average": load})
    print(table(rows, ["text", "preset", "n_params", "tokens_seen", "tokens_per_param", "epochs", "final_val_bpb",
                       "best_val_bpb"]))
    return rows


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="smoke run: 20 s per recipe, 300 kB of each text")
    p.add_argument("--budget", type=float, help="seconds of training per recipe (default 120; --quick 20)")
    p.add_argument("--clock", choices=["wall", "cpu"], default="wall",
                   help="what the budget counts: wall-clock seconds, or this process's CPU seconds")
    p.add_argument("--evals", type=int, help="validation measurements per run (default 20; --quick 5)")
    p.add_argument("--texts", nargs="+", help="only these texts (by name)")
    p.add_argument("--tricks", action="store_true", help="also the single changes to the llmcore recipe "
                   "(on the first text given)")
    p.add_argument("--sweep", action="store_true", help="measure the picker's rule instead (presets x text sizes)")
    a = p.parse_args(argv)
    budget = a.budget or (20.0 if a.quick else 120.0)
    n_evals = a.evals or (5 if a.quick else 20)
    eval_batches = 2 if a.quick else 4
    clock = time.process_time if a.clock == "cpu" else time.perf_counter
    settings = {"quick": a.quick, "budget_s": budget, "clock": a.clock, "n_evals": n_evals,
                "eval_windows": 32 * eval_batches, "seed": 0, "machine": machine_info()}
    old = RESULTS / "recipe.json"
    result = json.loads(old.read_text()) if old.exists() else {}
    result = {k: v for k, v in result.items() if k in ("sweep", "texts")}  # the other mode's rows stay
    if a.sweep:
        result["sweep"] = {"settings": settings, "rows": sweep(budget, clock, n_evals, eval_batches)}
    else:
        known = texts(a.quick)
        chosen = {k: known[k] for k in a.texts if k in known} if a.texts else known  # in the order given
        rows = {t["text"]: t for t in result.get("texts", {}).get("rows", [])} if not a.quick else {}
        for i, (name, spec) in enumerate(chosen.items()):
            rows[name] = compare(name, spec, budget, clock, n_evals, eval_batches, a.tricks and i == 0) \
                | {"settings": settings}
        result["texts"] = {"rows": list(rows.values())}
        print("\n" + table([{"text": t["text"], "plain": t["plain_final_val_loss"], "llmcore": t["llmcore_final_val_loss"],
                             "llmcore half time": t["llmcore_half_budget_final_val_loss"],
                             "to plain (s)": t["llmcore_seconds_to_plain_final_loss"],
                             "half-time goal": "met" if t["goal_half_time_met"] else "not met"}
                            for t in result["texts"]["rows"]],
                           ["text", "plain", "llmcore", "llmcore half time", "to plain (s)", "half-time goal"]))
    write_result("recipe", {
        "benchmark": "held-out loss reached in a fixed CPU time budget: llmcore's recipe vs nanoGPT's, per text",
        "goal": f"per text, llmcore trained for 1/{GOAL:g} of the budget reaches plain's full-budget val loss, "
                "and a clearly lower loss in the same budget",
        **result,
    })
    return 0


if __name__ == "__main__":
    sys.exit(main())
