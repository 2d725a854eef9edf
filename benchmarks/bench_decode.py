"""Benchmark: batch-1 greedy decoding speed, llmcore's KV cache against Hugging Face `generate`.

One model shape for every row: the storyworld shape (d_model 128, 4 layers, 4 heads,
d_vocab 1024 from a BPE tokenizer trained on storyworld text) with n_ctx 1024, random
weights, so 512 new tokens fit without sliding the window. Hugging Face's
GPT2LMHeadModel gets the same weights (`llmcore.hf.to_hf_state`) and decodes with
`generate(do_sample=False, use_cache=True)`; both must produce the same tokens.

Rows, each at 64 and 512 new tokens, threads 1 and 2:

    llmcore generate()     the user path: llmcore.generate.generate, greedy, KV cache, text out
    llmcore steps()        the teaching view: llmcore.generate.steps, which also lists the
                           top-5 alternatives and their text at every step
    llmcore loop           the engine alone: model(token, cache) + argmax, nothing else
    hf generate            transformers GPT2LMHeadModel.generate, greedy, use_cache=True
                           (attn_implementation="sdpa")
    llmcore no cache       steps(use_cache=False): every step re-reads the whole text (512 only)

Goals: llmcore generate() >= 2x hf generate; the KV cache >= 3x faster than no cache at 512.

    .venv/bin/python benchmarks/bench_decode.py           # 64 and 512 tokens, 1 and 2 threads
    .venv/bin/python benchmarks/bench_decode.py --quick   # smoke run (fewer repeats)

Writes benchmarks/results/decode.json.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402

from benchmarks.common import table, write_result  # noqa: E402
from llmcore.generate import Sampling, generate, steps  # noqa: E402
from llmcore.hf import hf_config, to_hf_state  # noqa: E402
from llmcore.model import GPT, KVCache, config_from_preset  # noqa: E402

GOAL_VS_HF, GOAL_CACHE = 2.0, 3.0
PROMPT = "Once upon a time"
N_CTX = 1024


def build(vocab_size: int, seed: int = 0):
    """The tokenizer, an llmcore GPT (storyworld shape, n_ctx 1024) and HF's twin of it."""
    from transformers import GPT2Config, GPT2LMHeadModel
    from transformers.utils import logging as hf_logging

    from llmcore.corpus import storyworld
    from llmcore.tokenizer import BPETokenizer

    hf_logging.set_verbosity_error()
    tok = BPETokenizer.train(storyworld(seed=0, n_chars=200_000).text, vocab_size=vocab_size)
    cfg = config_from_preset("storyworld", tok.vocab_size, n_ctx=N_CTX)
    model = GPT(cfg, seed=seed).eval()
    c = {k: v for k, v in hf_config(cfg).items() if k not in ("architectures", "torch_dtype")}
    # no end-of-text token: both engines must produce every one of the requested tokens
    hf = GPT2LMHeadModel(GPT2Config(**c, bos_token_id=None, eos_token_id=None, attn_implementation="sdpa"))
    hf.load_state_dict(to_hf_state(model), strict=False)
    assert hf.lm_head.weight.data_ptr() == hf.transformer.wte.weight.data_ptr()
    return tok, model.eval(), hf.eval()


def llmcore_steps(model, tok, n, use_cache=True, n_alternatives=5):
    s = Sampling(temperature=0, max_new_tokens=n)
    return [st.token_id for st in steps(model, tok, PROMPT, s, use_cache=use_cache, n_alternatives=n_alternatives)]


def llmcore_generate(model, tok, n) -> str:
    return generate(model, tok, PROMPT, Sampling(temperature=0, max_new_tokens=n))


@torch.no_grad()
def llmcore_loop(model, ids: list[int], n: int) -> list[int]:
    """The bare engine: prefill the prompt, then one token at a time through the cache."""
    cache = KVCache(model.cfg, 1)
    logits = model(torch.tensor([ids]), cache)[0, -1]  # [d_vocab]
    out = []
    for _ in range(n):
        token = int(logits.argmax())
        out.append(token)
        logits = model(torch.tensor([[token]]), cache)[0, -1]
    return out


@torch.no_grad()
def hf_generate(hf, ids: list[int], n: int) -> list[int]:
    x = torch.tensor([ids])
    out = hf.generate(x, attention_mask=torch.ones_like(x), max_new_tokens=n, do_sample=False,
                      use_cache=True, pad_token_id=0)
    return out[0, len(ids):].tolist()


def best_of(fns: dict, repeat: int) -> tuple[dict, dict]:
    """Seconds per call of each fn, interleaved, `repeat` times after one warm-up: (wall, CPU).

    CPU seconds (this process) barely move when other programs share the machine; with
    one thread they are the wall time a quiet machine would show.
    """
    for fn in fns.values():
        fn()
    wall, cpu = {k: [] for k in fns}, {k: [] for k in fns}
    for _ in range(repeat):
        for k, fn in fns.items():
            t0, c0 = time.perf_counter(), time.process_time()
            fn()
            wall[k].append(time.perf_counter() - t0)
            cpu[k].append(time.process_time() - c0)
    return wall, cpu


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="smoke run: 1 repeat, 1 thread")
    p.add_argument("--threads", nargs="+", type=int, help="torch.set_num_threads values (default 1 2; --quick 1)")
    p.add_argument("--tokens", nargs="+", type=int, default=[64, 512], help="new tokens per generation")
    p.add_argument("--repeat", type=int, help="timed repeats per engine (default 5; --quick 1)")
    a = p.parse_args(argv)
    threads_list = a.threads or ([1] if a.quick else [1, 2])
    repeat = a.repeat or (1 if a.quick else 5)
    if max(a.tokens) > N_CTX - 16:
        p.error(f"--tokens must stay below {N_CTX - 16} (the context is {N_CTX})")

    tok, model, hf = build(1024)
    ids = tok.encode(PROMPT)
    rows = []
    for threads in threads_list:
        torch.set_num_threads(threads)
        for n in a.tokens:
            # same weights, same greedy rule: the engines must agree token for token
            ours, bare, theirs = llmcore_steps(model, tok, n), llmcore_loop(model, ids, n), hf_generate(hf, ids, n)
            agree = sum(1 for u, v in zip(ours, theirs) if u == v) if ours == bare else -1
            assert tok.decode(ours) == llmcore_generate(model, tok, n)
            fns = {"llmcore_generate": lambda n=n: llmcore_generate(model, tok, n),
                   "llmcore_steps": lambda n=n: llmcore_steps(model, tok, n),
                   "llmcore_loop": lambda n=n: llmcore_loop(model, ids, n),
                   "hf_generate": lambda n=n: hf_generate(hf, ids, n)}
            if n == max(a.tokens):
                fns["llmcore_no_cache"] = lambda n=n: llmcore_steps(model, tok, n, use_cache=False)
            print(f"... {n} tokens, {threads} thread(s)", flush=True)
            times, cpu = best_of(fns, repeat)
            tps = {k: n / min(v) for k, v in times.items()}
            tpc = {k: n / min(v) for k, v in cpu.items()}
            row = {"threads": threads, "new_tokens": n, "prompt_tokens": len(ids), "seconds": times,
                   "cpu_seconds": cpu, "tokens_per_s": tps, "tokens_per_cpu_s": tpc,
                   "tokens_agree_with_hf": agree, "tokens_compared": n,
                   "ratio_generate_vs_hf": tps["llmcore_generate"] / tps["hf_generate"],
                   "ratio_steps_vs_hf": tps["llmcore_steps"] / tps["hf_generate"],
                   "ratio_loop_vs_hf": tps["llmcore_loop"] / tps["hf_generate"],
                   "cpu_ratio_generate_vs_hf": tpc["llmcore_generate"] / tpc["hf_generate"]}
            if "llmcore_no_cache" in tps:
                row["ratio_cache_vs_no_cache"] = tps["llmcore_steps"] / tps["llmcore_no_cache"]  # both list alternatives
            rows.append(row)

    print("\nbatch-1 greedy decode, tokens/s (best of interleaved repeats)")
    print(table([{"threads": r["threads"], "new tokens": r["new_tokens"],
                  "llmcore generate()": r["tokens_per_s"]["llmcore_generate"],
                  "llmcore steps()": r["tokens_per_s"]["llmcore_steps"],
                  "llmcore loop": r["tokens_per_s"]["llmcore_loop"],
                  "hf generate": r["tokens_per_s"]["hf_generate"],
                  "no cache": r["tokens_per_s"].get("llmcore_no_cache"),
                  "x vs hf": r["ratio_generate_vs_hf"], "steps x vs hf": r["ratio_steps_vs_hf"],
                  "loop x vs hf": r["ratio_loop_vs_hf"], "cpu x vs hf": r["cpu_ratio_generate_vs_hf"], "cache x": r.get("ratio_cache_vs_no_cache"),
                  "same tokens": f"{r['tokens_agree_with_hf']}/{r['tokens_compared']}"} for r in rows],
                ["threads", "new tokens", "llmcore generate()", "llmcore steps()", "llmcore loop", "hf generate",
                 "no cache", "x vs hf", "steps x vs hf", "loop x vs hf", "cpu x vs hf", "cache x", "same tokens"]))
    print("(x = wall-clock ratio; cpu x = ratio of CPU seconds, robust to other load on the machine)")
    write_result("decode", {
        "benchmark": "batch-1 greedy decode, llmcore KV cache vs transformers generate",
        "goals": {"llmcore generate() / hf generate": GOAL_VS_HF, "cache / no cache at the longest": GOAL_CACHE},
        "settings": {"quick": a.quick, "repeat": repeat, "threads_tried": threads_list, "prompt": PROMPT,
                     "model": model.cfg.to_dict(), "n_params": model.n_params(),
                     "transformers": __import__("transformers").__version__, "hf_attn_implementation": "sdpa"},
        "rows": rows,
        "goal_met": {
            **{f"vs_hf@{r['new_tokens']}tok@{r['threads']}t": r["ratio_generate_vs_hf"] >= GOAL_VS_HF for r in rows},
            **{f"cache@{r['new_tokens']}tok@{r['threads']}t": r["ratio_cache_vs_no_cache"] >= GOAL_CACHE
               for r in rows if "ratio_cache_vs_no_cache" in r},
        },
    })
    return 0


if __name__ == "__main__":
    sys.exit(main())
