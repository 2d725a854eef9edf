"""The learning-rate schedule: warm up, then a cosine down to a floor, by steps or by a time budget.

A run given only `steps` walks the schedule by its step count (nanoGPT's `get_lr`).
A run given a time budget (`max_seconds`) walks it by the share of the budget used,
read from the wall clock as training goes: the learning rate reaches its floor as the
time runs out, whatever speed the machine trains at, and a machine that slows down
halfway only decays sooner in steps, never stops at the peak. Both measures are kept
and the further one wins, so a budgeted run that reaches its step cap first ends on
the floor too:

    progress = max(step / steps, seconds used / seconds planned)     # 0 .. 1

Warm-up ends at `warmup` steps or at the same share of the budget (`warmup / steps`),
whichever comes first; the cosine fills the rest. Example, lr=5e-3, min_lr=3e-4,
steps=4000, warmup=50, a 45 s budget: warm-up over the first 0.56 s (or 50 steps),
5e-3 just after, 2.65e-3 at 22.8 s, 3e-4 at 45 s.

`BudgetClock` measures "seconds used" across a resume: a checkpoint stores the
seconds trained so far and the seconds planned, and the resumed run carries on from
there instead of starting the clock at zero.
"""

from __future__ import annotations

import math
import time


def lr_at(step: int, cfg, progress: float | None = None) -> float:
    """The learning rate for optimizer step `step` (0-based) of a run configured by `cfg`.

    `progress` is the share of the time budget used so far (None: a run by steps only).
    With `progress=None` this is exactly the step schedule: linear warm-up to `lr` over
    `warmup` steps, then a cosine from `lr` down to `min_lr` at step `steps`.
    """
    if progress is None:
        if step < cfg.warmup:
            return cfg.lr * (step + 1) / cfg.warmup
        p = (step - cfg.warmup) / max(1, cfg.steps - cfg.warmup)
        return cfg.min_lr + 0.5 * (cfg.lr - cfg.min_lr) * (1 + math.cos(math.pi * min(1.0, p)))
    p = min(1.0, max(step / cfg.steps, progress))  # the further of the two measures
    w = cfg.warmup / cfg.steps  # warm-up's share of the run
    if step < cfg.warmup and p < w:  # still warming up by steps and by time
        return cfg.lr * max((step + 1) / cfg.warmup, p / w)
    p = (p - w) / (1 - w) if w < 1 else 1.0  # share of the cosine done
    return cfg.min_lr + 0.5 * (cfg.lr - cfg.min_lr) * (1 + math.cos(math.pi * min(1.0, max(0.0, p))))


class BudgetClock:
    """Seconds of training used against seconds planned, carried across a resume.

    `planned` is fixed when a run starts (its budget less the set-up already spent,
    such as training the tokenizer) and stored in every checkpoint with `used()`;
    a resumed run passes both back so its schedule continues where it left off.
    """

    def __init__(self, planned: float, used_before: float = 0.0):
        self.planned = planned  # seconds the whole schedule spans
        self.used_before = used_before  # seconds trained before this process started
        self.t0 = time.perf_counter()
        self.last_step = 0.0  # seconds the latest step took (predicts the next one)

    def used(self) -> float:
        """Seconds of training so far, earlier segments included."""
        return self.used_before + time.perf_counter() - self.t0

    def progress(self) -> float:
        """Share of the planned time used, 0 .. 1 (and past 1 once it ran over)."""
        return self.used() / self.planned

    def next_step_fits(self) -> bool:
        """Whether another step, as long as the last one, still ends inside the budget."""
        return self.used() + self.last_step <= self.planned
