"""Benchmark: training-step throughput of llmcore's GPT against Hugging Face's GPT2LMHeadModel.

One training step = forward, cross-entropy, backward, gradient clipping (1.0) and an AdamW
step, exactly what `llmcore.train` does. Both models get the same configuration, the same
weights (copied with `llmcore.hf.to_hf_state`, logits checked equal first), the same batch
and the same optimizer (llmcore's `make_optimizer`: fused AdamW, betas 0.9/0.95, decay on
matrices; fused is also Hugging Face Trainer's default, "adamw_torch_fused"). Hugging Face
runs with attn_implementation="sdpa" (its fast path) and "eager" (for reference); dropout is 0 in both. Measurements are interleaved round by round, so
background load hits every engine alike; each engine's best round counts.

A second table measures what-if variants of the llmcore step (AdamW foreach / for-loop,
bf16 autocast, torch.compile, HookPoints skipped when nothing hooks them): candidate
engine changes, measured, not applied.

    .venv/bin/python benchmarks/bench_speed.py             # tiny, storyworld, ~10M; 1 and 2 threads
    .venv/bin/python benchmarks/bench_speed.py --quick     # smoke run: tiny + storyworld, few steps

Goal: llmcore >= 1.3x Hugging Face (sdpa) tokens/s at every size.
Writes benchmarks/results/speed.json.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402

from benchmarks.common import table, write_result  # noqa: E402
from llmcore.hf import hf_config, to_hf_state  # noqa: E402
from llmcore.model import GPT, config_from_preset, loss_fn  # noqa: E402
from llmcore.train import TrainConfig, make_optimizer  # noqa: E402

GOAL = 1.3
D_VOCAB = 1024  # the storyworld BPE vocabulary
# name -> (llmcore preset, batch size); n_ctx comes from the preset
SIZES = {"tiny": ("nano", 32), "storyworld": ("storyworld", 32), "10m": ("small-10m", 8)}


def hf_model(model, attn: str):
    """A GPT2LMHeadModel with `model`'s configuration and weights."""
    from transformers import GPT2Config, GPT2LMHeadModel
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    c = {k: v for k, v in hf_config(model.cfg).items() if k not in ("architectures", "torch_dtype")}
    hf = GPT2LMHeadModel(GPT2Config(**c, bos_token_id=0, eos_token_id=0, attn_implementation=attn))
    result = hf.load_state_dict(to_hf_state(model), strict=False)
    assert set(result.missing_keys) <= {"lm_head.weight"} and not result.unexpected_keys, result
    assert hf.lm_head.weight.data_ptr() == hf.transformer.wte.weight.data_ptr(), "lm_head is not tied"
    return hf.train()


def check_parity(model, hf, x):
    with torch.no_grad():
        diff = (model(x) - hf(input_ids=x).logits).abs().max().item()
    assert diff < 1e-3, f"llmcore and Hugging Face logits differ by {diff}"
    return diff


def make_step(model, forward, x, y, opt, ctx=contextlib.nullcontext):
    """One optimizer step on the fixed batch (x, y), as llmcore.train runs it."""

    def step():
        with ctx():
            loss = loss_fn(forward(x), y)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)

    return step


def adamw_like(model, fused=True, **kw):
    """llmcore's optimizer settings (same groups, betas, eps) for any model. Fused by default,
    as llmcore.train and as Hugging Face's Trainer ("adamw_torch_fused", its default optim)."""
    groups = make_optimizer(model, TrainConfig()).param_groups
    return torch.optim.AdamW([{"params": g["params"], "weight_decay": g["weight_decay"]} for g in groups],
                             lr=TrainConfig().lr, betas=(0.9, 0.95), eps=1e-8, fused=fused, **kw)


def interleaved(steps: dict, n_steps: int, rounds: int, warmup: int = 2) -> tuple[dict, dict]:
    """Seconds per step of each entry over `rounds` rounds of `n_steps` steps: (wall, CPU).

    CPU seconds (this process, all its threads) barely move when other programs share the
    machine; with one thread they are the wall time a quiet machine would show.
    """
    for fn, enter in steps.values():
        with enter():
            for _ in range(warmup):
                fn()
    wall, cpu = {k: [] for k in steps}, {k: [] for k in steps}
    for _ in range(rounds):
        for k, (fn, enter) in steps.items():
            with enter():
                t0, c0 = time.perf_counter(), time.process_time()
                for _ in range(n_steps):
                    fn()
                wall[k].append((time.perf_counter() - t0) / n_steps)
                cpu[k].append((time.process_time() - c0) / n_steps)
    return wall, cpu


@contextlib.contextmanager
def hooks_skipped():
    """While active, a HookPoint with no hooks returns its input without nn.Module.__call__.

    Measures what an engine fast path `x if not hp._forward_hooks else hp(x)` would save.
    """
    from llmcore.hooks import HookPoint

    original = HookPoint.__call__

    def call(self, *args, **kwargs):
        if self._forward_hooks or self._forward_pre_hooks or self._backward_hooks:
            return original(self, *args, **kwargs)
        return args[0]

    HookPoint.__call__ = call
    try:
        yield
    finally:
        HookPoint.__call__ = original


def bench_size(name: str, preset: str, batch: int, threads: int, n_steps: int, rounds: int, variants: bool):
    torch.set_num_threads(threads)
    cfg = config_from_preset(preset, D_VOCAB)
    gen = torch.Generator().manual_seed(0)
    x = torch.randint(0, D_VOCAB, (batch, cfg.n_ctx), generator=gen)  # [batch, n_ctx]
    y = torch.randint(0, D_VOCAB, (batch, cfg.n_ctx), generator=gen)
    model = GPT(cfg, seed=0).train()
    hf_sdpa, hf_eager = hf_model(model, "sdpa"), hf_model(model, "eager")
    parity = max(check_parity(model, hf_sdpa, x), check_parity(model, hf_eager, x))

    none = contextlib.nullcontext
    engines = {
        "llmcore": (make_step(model, model, x, y, make_optimizer(model, TrainConfig())), none),
        "hf_sdpa": (make_step(hf_sdpa, lambda t: hf_sdpa(input_ids=t).logits, x, y, adamw_like(hf_sdpa)), none),
        "hf_eager": (make_step(hf_eager, lambda t: hf_eager(input_ids=t).logits, x, y, adamw_like(hf_eager)), none),
    }
    if variants:  # each on its own copy of the model, so optimizer states do not mix
        def fresh():
            return GPT(cfg, seed=0).train()

        m1, m2, m3, m4, m5 = (fresh() for _ in range(5))
        bf16 = lambda: torch.autocast("cpu", dtype=torch.bfloat16)  # noqa: E731
        compiled = torch.compile(m4)
        engines |= {
            "llmcore+adamw_foreach": (make_step(m1, m1, x, y, adamw_like(m1, fused=False, foreach=True)), none),
            "llmcore+adamw_for_loop": (make_step(m2, m2, x, y, adamw_like(m2, fused=False, foreach=False)), none),
            "llmcore+bf16_autocast": (make_step(m3, m3, x, y, make_optimizer(m3, TrainConfig()), ctx=bf16), none),
            "llmcore+torch_compile": (make_step(m4, compiled, x, y, make_optimizer(m4, TrainConfig())), none),
            "llmcore+skip_idle_hooks": (make_step(m5, m5, x, y, make_optimizer(m5, TrainConfig())), hooks_skipped),
        }
    t_start = time.perf_counter()
    per_round, cpu_round = interleaved(engines, n_steps, rounds)
    tokens = batch * cfg.n_ctx
    best = {k: min(v) for k, v in per_round.items()}
    best_cpu = {k: min(v) for k, v in cpu_round.items()}
    row = {
        "size": name, "preset": preset, "threads": threads, "batch": batch, "n_ctx": cfg.n_ctx,
        "n_params": model.n_params(), "max_logit_diff": parity,
        "seconds_per_step": per_round,
        "cpu_seconds_per_step": cpu_round,
        "tokens_per_s": {k: tokens / s for k, s in best.items()},
        "tokens_per_cpu_s": {k: tokens / s for k, s in best_cpu.items()},
        "ratio_vs_hf_sdpa": best["hf_sdpa"] / best["llmcore"],
        "ratio_vs_hf_eager": best["hf_eager"] / best["llmcore"],
        "cpu_ratio_vs_hf_sdpa": best_cpu["hf_sdpa"] / best_cpu["llmcore"],
        "variant_speedup": {k: best["llmcore"] / s for k, s in best.items() if k.startswith("llmcore+")},
        "variant_cpu_speedup": {k: best_cpu["llmcore"] / s for k, s in best_cpu.items() if k.startswith("llmcore+")},
        "wall_s": time.perf_counter() - t_start,
    }
    return row


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="smoke run: tiny + storyworld, 1 thread, 2 steps x 2 rounds")
    p.add_argument("--sizes", nargs="+", choices=list(SIZES), help="which sizes (default: all; --quick: tiny storyworld)")
    p.add_argument("--threads", nargs="+", type=int, help="torch.set_num_threads values (default 1 2; --quick 1)")
    p.add_argument("--steps", type=int, help="steps per round (default 5; --quick 2)")
    p.add_argument("--rounds", type=int, help="interleaved rounds (default 5; --quick 2)")
    p.add_argument("--no-variants", action="store_true", help="skip the what-if llmcore variants")
    a = p.parse_args(argv)
    logging.getLogger("torch._inductor").setLevel(logging.ERROR)
    sizes = a.sizes or (["tiny", "storyworld"] if a.quick else list(SIZES))
    threads_list = a.threads or ([1] if a.quick else [1, 2])
    n_steps = a.steps or (2 if a.quick else 5)
    rounds = a.rounds or (2 if a.quick else 5)

    rows = []
    for threads in threads_list:
        for name in sizes:
            preset, batch = SIZES[name]
            print(f"... {name} ({preset}, batch {batch}), {threads} thread(s)", flush=True)
            rows.append(bench_size(name, preset, batch, threads, n_steps, rounds, not a.no_variants))

    print("\ntraining tokens/s (forward + backward + clip + AdamW), best of interleaved rounds")
    print(table([{"size": r["size"], "threads": r["threads"], "params": r["n_params"],
                  "llmcore": r["tokens_per_s"]["llmcore"], "hf_sdpa": r["tokens_per_s"]["hf_sdpa"],
                  "hf_eager": r["tokens_per_s"]["hf_eager"], "x vs sdpa": r["ratio_vs_hf_sdpa"],
                  "x vs eager": r["ratio_vs_hf_eager"], "cpu x vs sdpa": r["cpu_ratio_vs_hf_sdpa"],
                  "goal": f">= {GOAL}", "met": r["ratio_vs_hf_sdpa"] >= GOAL} for r in rows],
                ["size", "threads", "params", "llmcore", "hf_sdpa", "hf_eager", "x vs sdpa", "x vs eager",
                 "cpu x vs sdpa", "goal", "met"]))
    print("(x = wall-clock ratio; cpu x = ratio of CPU seconds, robust to other load on the machine)")
    if not a.no_variants:
        print("\nwhat-if variants of the llmcore step: speed-up over plain llmcore (> 1 = faster), wall / cpu")
        names = sorted({k for r in rows for k in r["variant_speedup"]})
        print(table([{"size": r["size"], "threads": r["threads"],
                      **{n.removeprefix("llmcore+"): f"{r['variant_speedup'][n]:.2f} / {r['variant_cpu_speedup'][n]:.2f}"
                         for n in names if n in r["variant_speedup"]}} for r in rows],
                    ["size", "threads", *[n.removeprefix("llmcore+") for n in names]]))
    write_result("speed", {
        "benchmark": "training step throughput, llmcore vs transformers GPT2LMHeadModel",
        "goal": f"llmcore tokens/s >= {GOAL} x hf_sdpa at every size",
        "settings": {"quick": a.quick, "steps_per_round": n_steps, "rounds": rounds, "d_vocab": D_VOCAB,
                     "threads_tried": threads_list, "step": "forward, cross-entropy, backward, clip_grad_norm 1.0, AdamW",
                     "transformers": __import__("transformers").__version__},
        "rows": rows,
        "goal_met": {f"{r['size']}@{r['threads']}t": r["ratio_vs_hf_sdpa"] >= GOAL for r in rows},
    })
    return 0


if __name__ == "__main__":
    sys.exit(main())
