"""Bigger is better, but slower: one recipe, three model sizes, measured.

The shipped run (`storyworld`) has two smaller siblings in llmcore/assets/sizes/,
`nano` and `micro`, trained by scripts/build_assets.py with the shipped run's own
recipe: the same corpus, tokenizer, batch, context, learning rate, steps and seed.
Only the shape differs, so any difference in loss comes from size alone.

    >>> rows = compare()                       # loss from the shipped runs, speed from their build
    >>> [r["name"] for r in rows]
    ['nano', 'micro', 'storyworld']
    >>> here = measure_here()                  # the same three shapes, timed on this computer
    >>> rows = compare(here)                   # ... and the seconds they would take here

Two ways to call a race between sizes:

- equal steps: each model sees the same tokens; the bigger one learns more from them;
- equal compute: the same amount of arithmetic (6 x parameters x tokens, chapter 07's
  calculator), which is what equal time means wherever arithmetic sets the pace (big
  models on GPUs). A smaller model takes more steps for the same compute, so with a
  small budget it can be ahead. `winner` says which size is lowest at a given step or
  compute.

Our models are so small that on a CPU Python's own work per step costs as much as the
arithmetic, so their measured seconds differ less than their compute does: the speeds
are measured and shown beside the compute, never derived from it.

Speeds are measured the same way everywhere (`measure_training_speed`,
`measure_decode_speed`): the best of a few repeats, so a busy moment on a shared
computer does not count.
"""

from __future__ import annotations

import json
import time
from dataclasses import replace

from llmcore.errors import UserError
from llmcore.run import ASSETS, load_run

BIGGEST = "storyworld"  # the shipped run: the biggest of the three
SMALLER = ("nano", "micro")  # its siblings, trained by scripts/build_assets.py
SIZES_DIR = ASSETS / "sizes"
SPEEDS_FILE = "speeds.json"  # training and writing speed of all three, measured back to back at build time


def sibling_config(preset: str):
    """The shipped run's training recipe with another model shape (same context length)."""
    from llmcore.train import TrainConfig

    shipped = load_run(BIGGEST)
    cfg = TrainConfig.from_dict(shipped.provenance["train_config"])
    return replace(cfg, preset=preset, n_ctx=shipped.model.cfg.n_ctx)


def _runs() -> dict:
    runs = {name: load_run(SIZES_DIR / name) for name in SMALLER if (SIZES_DIR / name / "model.safetensors").is_file()}
    if len(runs) < len(SMALLER):
        raise UserError("the size runs are not built yet: run scripts/build_assets.py --only-sizes")
    return {**runs, BIGGEST: load_run(BIGGEST)}


def measure_training_speed(model, batch_size: int, repeats: int = 5, steps: int = 2) -> float:
    """Training tokens per second of `model` on this computer: forward, backward and AdamW on random
    tokens (the speed does not depend on what the tokens say), the best of `repeats` runs of `steps` steps."""
    import copy

    import torch

    from llmcore.model import loss_fn
    from llmcore.train import TrainConfig, make_optimizer

    model = copy.deepcopy(model).float().train()  # a copy: the caller's model (maybe a shipped one) is never changed
    model.requires_grad_(True)  # a loaded run's parameters are frozen
    cfg = model.cfg
    opt = make_optimizer(model, TrainConfig())
    gen = torch.Generator().manual_seed(0)
    x = torch.randint(0, cfg.d_vocab, (batch_size, cfg.n_ctx + 1), generator=gen)  # [batch, pos + 1]
    best = float("inf")
    for round_ in range(repeats + 1):  # round 0 warms up and is not counted
        t0 = time.perf_counter()
        for _ in range(steps):
            loss = loss_fn(model(x[:, :-1]), x[:, 1:])
            loss.backward()
            opt.step()
            opt.zero_grad(set_to_none=True)
        if round_:
            best = min(best, time.perf_counter() - t0)
    return steps * batch_size * cfg.n_ctx / best


def measure_decode_speed(model, tokenizer, n_tokens: int = 64, repeats: int = 5) -> float:
    """Tokens per second the engine writes for one conversation (batch 1, KV cache), best of `repeats`."""
    from llmcore.scale import measure_kv_cache

    rows = measure_kv_cache(model, tokenizer, lengths=(n_tokens,), repeats=repeats)
    return next(r["tokens_per_s"] for r in rows if r["cache"])


def measure_here(batch_size: int | None = None) -> dict[str, dict]:
    """Each size's training and writing speed on this computer: {name: {"train_tokens_per_s", "decode_tokens_per_s"}}."""
    runs = _runs()
    batch = batch_size or runs[BIGGEST].provenance["train_config"]["batch_size"]
    return {name: {"train_tokens_per_s": measure_training_speed(run.model, batch),
                   "decode_tokens_per_s": measure_decode_speed(run.model, run.tokenizer)}
            for name, run in runs.items()}


def shipped_speeds() -> dict:
    """The speeds measured when the size runs were built (file speeds.json): {"machine", "sizes": {name: ...}}."""
    path = SIZES_DIR / SPEEDS_FILE
    if not path.is_file():
        raise UserError("the size runs are not built yet: run scripts/build_assets.py --only-sizes")
    return json.loads(path.read_text())


def compare(speeds: dict | None = None) -> list[dict]:
    """One row per size, smallest first: its shape, what it learnt and how fast it runs.

    Each row: name, n_params, steps, tokens_per_step, flops_per_step (6 x parameters x
    tokens), final_val_loss, val (a list of (step, val_loss)), train_tokens_per_s,
    decode_tokens_per_s and seconds (the time its steps take at that training speed).
    `speeds` is `measure_here()`'s result; without it, the speeds measured when the runs
    were built (speeds.json).
    """
    from llmcore.scale import training_flops

    speeds = speeds or shipped_speeds()["sizes"]
    rows = []
    for name, run in _runs().items():
        p, tc = run.provenance, run.provenance["train_config"]
        per_step = tc["batch_size"] * run.model.cfg.n_ctx
        speed = speeds[name]
        rows.append({
            "name": name, "n_params": run.model.n_params(), "steps": p["steps"], "tokens_per_step": per_step,
            "flops_per_step": training_flops(run.model.n_params(), per_step),
            "final_val_loss": p["val_loss"],
            "val": [(m["step"], m["val_loss"]) for m in run.metrics() if m.get("val_loss") is not None],
            "train_tokens_per_s": speed["train_tokens_per_s"], "decode_tokens_per_s": speed["decode_tokens_per_s"],
            "seconds": p["steps"] * per_step / speed["train_tokens_per_s"],
        })
    return sorted(rows, key=lambda r: r["n_params"])


def val_loss_at_step(row: dict, step: float) -> float | None:
    """A size's held-out loss at `step`, read off its curve (straight lines between evaluations);
    None before its first evaluation."""
    pts = row["val"]
    if not pts or step < pts[0][0]:
        return None
    for (s0, v0), (s1, v1) in zip(pts, pts[1:]):
        if s0 <= step <= s1:
            return v0 + (v1 - v0) * (step - s0) / (s1 - s0)
    return pts[-1][1]


def val_loss_at_flops(row: dict, flops: float) -> float | None:
    """A size's held-out loss once its training has done `flops` of arithmetic."""
    return val_loss_at_step(row, flops / row["flops_per_step"])


def winner(rows: list[dict], *, step: float | None = None, flops: float | None = None) -> str:
    """The size with the lowest held-out loss at an equal `step`, or after equal compute (`flops`)."""
    if (step is None) == (flops is None):
        raise UserError("give either step= or flops=")
    losses = {r["name"]: val_loss_at_step(r, step) if step is not None else val_loss_at_flops(r, flops)
              for r in rows}
    reached = {k: v for k, v in losses.items() if v is not None}
    if not reached:
        raise UserError("no size has been evaluated that early")
    return min(reached, key=reached.get)
