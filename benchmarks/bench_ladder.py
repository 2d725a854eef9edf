"""Benchmark: a ladder of llmcore model sizes, measured training and decoding speed.

For each rung (random weights, d_vocab 1024, the shapes below) it measures

    training tokens/s   forward + backward + clip + AdamW on a batch of --train-tokens tokens
    decode tokens/s     batch 1, greedy, KV cache: the bare engine loop model(token, cache)
                        (also llmcore.generate.steps(), the user path, for comparison)

at each thread count, beside two bounds for this machine:

    decode bound   = memory bandwidth / (n_params x 4 bytes)   every weight read once per token
    training bound = matmul FLOP/s / (6 x n_params)            Kaplan's 6N FLOPs per token

`llmcore.scale.measure_cpu_bandwidth` and `measure_cpu_matmul_flops` measure the machine.
The results go to benchmarks/results/ladder.json in the shape
`llmcore.viz.scale.ladder_figure` takes ({"ladder": [...], "bandwidth_bytes_per_s": ...}),
and the figure to benchmarks/results/ladder.html (plotly.js embedded: opens offline).

    .venv/bin/python benchmarks/bench_ladder.py            # nano .. ~30M, threads 1 and 2
    .venv/bin/python benchmarks/bench_ladder.py --quick    # nano .. ~3M, 1 thread, few repeats
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402

from benchmarks.common import RESULTS, table, write_result  # noqa: E402
from llmcore.model import GPT, GPTConfig, KVCache, loss_fn  # noqa: E402
from llmcore.train import TrainConfig, make_optimizer  # noqa: E402

D_VOCAB = 1024
BYTES_PER_PARAM = 4  # decoding reads fp32 weights from memory
# name -> shape (d_vocab added); the ladder's rungs, smallest first
RUNGS = {
    "nano": dict(d_model=32, n_layers=2, n_heads=2, n_ctx=64),  # llmcore preset "nano"
    "micro": dict(d_model=64, n_layers=4, n_heads=4, n_ctx=128),  # preset "micro"
    "storyworld": dict(d_model=128, n_layers=4, n_heads=4, n_ctx=128),  # preset "storyworld"
    "3m": dict(d_model=256, n_layers=4, n_heads=4, n_ctx=128),
    "small-10m": dict(d_model=384, n_layers=6, n_heads=6, n_ctx=256),  # preset "small-10m"
    "30m": dict(d_model=512, n_layers=10, n_heads=8, n_ctx=256),
}
QUICK_RUNGS = ("nano", "micro", "storyworld", "3m")
PROMPT_TOKENS, NEW_TOKENS = 8, 64


def train_speed(model, n_tokens: int, repeat: int) -> float:
    """Training tokens/s: best of `repeat` steps on a batch of about n_tokens tokens."""
    n_ctx = model.cfg.n_ctx
    batch = max(1, n_tokens // n_ctx)
    gen = torch.Generator().manual_seed(0)
    x = torch.randint(0, D_VOCAB, (batch, n_ctx), generator=gen)  # [batch, n_ctx]
    y = torch.randint(0, D_VOCAB, (batch, n_ctx), generator=gen)
    opt = make_optimizer(model, TrainConfig())
    model.train()

    def step():
        loss_fn(model(x), y).backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)

    step()  # warm-up: allocations, optimizer state
    best = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        step()
        best = min(best, time.perf_counter() - t0)
    return batch * n_ctx / best


@torch.no_grad()
def decode_speed(model, repeat: int) -> float:
    """Batch-1 greedy tokens/s through the KV cache (the engine alone), best of `repeat`."""
    model.eval()
    prompt = torch.arange(PROMPT_TOKENS)[None] % D_VOCAB  # [1, PROMPT_TOKENS]
    n_new = new_tokens(model)

    def run():
        cache = KVCache(model.cfg, 1)
        logits = model(prompt, cache)[0, -1]
        for _ in range(n_new):
            logits = model(logits.argmax().view(1, 1), cache)[0, -1]

    run()
    best = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        run()
        best = min(best, time.perf_counter() - t0)
    return n_new / best


def new_tokens(model) -> int:
    """NEW_TOKENS, or fewer when they and the prompt would not fit the context (nano: 56)."""
    return min(NEW_TOKENS, model.cfg.n_ctx - PROMPT_TOKENS)


def steps_speed(model, tok, repeat: int) -> float:
    """The same through llmcore.generate.steps (top-5 alternatives and text each step)."""
    from llmcore.generate import Sampling, steps

    prompt = "Once upon a time there was a"
    n_new = min(NEW_TOKENS, model.cfg.n_ctx - len(tok.encode(prompt)))  # no sliding of the window
    s = Sampling(temperature=0, max_new_tokens=n_new)

    def run():
        for _ in steps(model, tok, prompt, s):
            pass

    run()
    best = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        run()
        best = min(best, time.perf_counter() - t0)
    return n_new / best


def notes(ladder: list[dict], bandwidth: float) -> list[str]:
    """Plain-language reading of the measurements: where overhead rules, where the line bends."""
    from llmcore.viz.scale import OVERHEAD_FRACTION

    out = []
    smallest = ladder[0]
    floor_ms = 1000 / smallest["decode_tokens_per_s"]
    out.append(f"The smallest rung ({smallest['name']}, {smallest['n_params']:,} parameters) decodes at "
               f"{smallest['decode_tokens_per_s']:,.0f} tokens/s: {floor_ms:.2f} ms per token is the fixed cost of "
               "one step (Python, ~20 module calls and ~25 small kernels per layer), not reading weights.")
    for r in ladder:
        frac = r["decode_fraction_of_bound"]
        kind = "overhead-bound" if frac < OVERHEAD_FRACTION else "near the bandwidth bound"
        out.append(f"{r['name']}: {r['decode_tokens_per_s']:,.0f} tokens/s = {frac:.1%} of the bound "
                   f"{r['decode_bound_tokens_per_s']:,.0f} ({kind}).")
    # where the measured curve turns from flat (overhead) to falling like 1/n_params
    for a, b in zip(ladder, ladder[1:]):
        size_x = b["n_params"] / a["n_params"]
        speed_x = a["decode_tokens_per_s"] / b["decode_tokens_per_s"]
        if speed_x > size_x ** 0.5:
            out.append(f"The line bends between {a['name']} and {b['name']}: {size_x:.1f}x the parameters cost "
                       f"{speed_x:.1f}x the time per token; below that, growing the model barely slows decoding.")
            break
    else:
        out.append("The measured decode line stays flat across the ladder: every rung is overhead-bound here.")
    llc = last_level_cache_bytes()
    if llc:
        fits = [r["name"] for r in ladder if r["n_params"] * BYTES_PER_PARAM < llc]
        out.append(f"This CPU's last-level cache holds {llc / 2**20:,.0f} MiB (shared with other programs): the fp32 "
                   f"weights of {', '.join(fits) or 'no rung'} fit in it, so for those the DRAM bandwidth line "
                   f"({bandwidth / 1e9:.1f} GB/s measured) is a pessimistic bound and the real limit is per-token overhead.")
    return out


def last_level_cache_bytes() -> int | None:
    """Size of the largest CPU cache from Linux sysfs (None elsewhere)."""
    sizes = []
    for f in Path("/sys/devices/system/cpu/cpu0/cache").glob("index*/size"):
        text = f.read_text().strip()
        mult = {"K": 2**10, "M": 2**20, "G": 2**30}.get(text[-1:], 1)
        sizes.append(int(text.rstrip("KMG")) * mult)
    return max(sizes) if sizes else None


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="smoke run: nano..3m, 1 thread, 1 repeat")
    p.add_argument("--rungs", nargs="+", choices=list(RUNGS), help="which sizes (default all)")
    p.add_argument("--threads", nargs="+", type=int, help="torch.set_num_threads values (default 1 2; --quick 1)")
    p.add_argument("--repeat", type=int, help="timed repeats (default 3; --quick 1)")
    p.add_argument("--train-tokens", type=int, default=4096, help="tokens per training step")
    p.add_argument("--no-html", action="store_true", help="do not write ladder.html")
    a = p.parse_args(argv)
    rungs = a.rungs or (list(QUICK_RUNGS) if a.quick else list(RUNGS))
    threads_list = a.threads or ([1] if a.quick else [1, 2])
    repeat = a.repeat or (1 if a.quick else 3)

    from llmcore.corpus import storyworld
    from llmcore.scale import measure_cpu_bandwidth, measure_cpu_matmul_flops
    from llmcore.tokenizer import BPETokenizer

    torch.set_num_threads(1)
    bandwidth = measure_cpu_bandwidth(seconds=1.0)
    flops = {t: (torch.set_num_threads(t), measure_cpu_matmul_flops(seconds=1.0))[1] for t in threads_list}
    tok = BPETokenizer.train(storyworld(seed=0, n_chars=100_000).text, vocab_size=D_VOCAB)

    measured = []
    for name in rungs:
        cfg = GPTConfig(d_vocab=tok.vocab_size, **RUNGS[name])
        model = GPT(cfg, seed=0)
        n = model.n_params()
        for threads in threads_list:
            torch.set_num_threads(threads)
            print(f"... {name} ({n:,} parameters), {threads} thread(s)", flush=True)
            measured.append({
                "name": name, "threads": threads, "n_params": n, "config": cfg.to_dict(),
                "train_tokens_per_s": train_speed(model, a.train_tokens, repeat),
                "decode_tokens_per_s": decode_speed(model, repeat),
                "steps_tokens_per_s": steps_speed(model, tok, repeat),
                "decode_bound_tokens_per_s": bandwidth / (n * BYTES_PER_PARAM),
                "train_bound_tokens_per_s": flops[threads] / (6 * n),
            })

    # one rung per size for the figure: the faster thread count of each measurement
    ladder = []
    for name in rungs:
        rows = [m for m in measured if m["name"] == name]
        best_train = max(rows, key=lambda m: m["train_tokens_per_s"])
        best_dec = max(rows, key=lambda m: m["decode_tokens_per_s"])
        ladder.append({
            "name": name, "n_params": rows[0]["n_params"], "bytes_per_param": BYTES_PER_PARAM,
            "train_tokens_per_s": best_train["train_tokens_per_s"], "train_threads": best_train["threads"],
            "decode_tokens_per_s": best_dec["decode_tokens_per_s"], "decode_threads": best_dec["threads"],
            "decode_bound_tokens_per_s": best_dec["decode_bound_tokens_per_s"],
            "decode_fraction_of_bound": best_dec["decode_tokens_per_s"] / best_dec["decode_bound_tokens_per_s"],
            "train_fraction_of_flops_bound": best_train["train_tokens_per_s"] / best_train["train_bound_tokens_per_s"],
        })

    print(f"\nmemory bandwidth {bandwidth / 1e9:.1f} GB/s; matmul "
          + ", ".join(f"{f / 1e9:.0f} GFLOP/s @ {t} thread(s)" for t, f in flops.items()))
    print(table([{"rung": m["name"], "threads": m["threads"], "params": m["n_params"],
                  "train tok/s": m["train_tokens_per_s"], "train bound": m["train_bound_tokens_per_s"],
                  "decode tok/s": m["decode_tokens_per_s"], "steps() tok/s": m["steps_tokens_per_s"],
                  "decode bound": m["decode_bound_tokens_per_s"],
                  "% of bound": f"{m['decode_tokens_per_s'] / m['decode_bound_tokens_per_s']:.1%}"}
                 for m in measured],
                ["rung", "threads", "params", "train tok/s", "train bound", "decode tok/s", "steps() tok/s",
                 "decode bound", "% of bound"]))
    explained = notes(ladder, bandwidth)
    print("\n" + "\n".join(explained))
    write_result("ladder", {
        "benchmark": "llmcore model-size ladder: training and batch-1 decode tokens/s against the bounds",
        "settings": {"quick": a.quick, "repeat": repeat, "threads_tried": threads_list, "d_vocab": tok.vocab_size,
                     "train_tokens_per_step": a.train_tokens, "prompt_tokens": PROMPT_TOKENS,
                     "new_tokens": f"{NEW_TOKENS} (fewer where n_ctx is smaller)", "decode": "engine loop model(token, KVCache) + argmax"},
        "bandwidth_bytes_per_s": bandwidth,
        "matmul_flops_per_s": {str(t): f for t, f in flops.items()},
        "ladder": ladder,
        "measurements": measured,
        "notes": explained,
    })
    if not a.no_html:
        from llmcore.viz.scale import ladder_figure

        path = RESULTS / "ladder.html"
        ladder_figure(ladder, bandwidth).write_html(path, include_plotlyjs=True)  # embedded: no download
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
