"""Benchmark: does the trained model compress held-out text better than gzip, bz2 and xz?

Takes the first --chars characters of the storyworld validation split (a world drawn
from a different seed, never seen in training), compresses them with the model's
arithmetic coder, decompresses and checks the bytes, and compares the size with
gzip -9, bz2 -9 and xz -9e, alone and given the training text. Prints a table and
writes benchmarks/results/compress.json with the machine it ran on.

    .venv/bin/python benchmarks/bench_compress.py                  # the shipped storyworld run
    .venv/bin/python benchmarks/bench_compress.py --run /tmp/run --chars 20000
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.common import RESULTS as RESULTS_DIR  # noqa: E402
from benchmarks.common import machine_info  # noqa: E402
from llmcore.compress import compare_compressors, compress, decompress  # noqa: E402
from llmcore.corpus import load_corpus  # noqa: E402
from llmcore.errors import UserError  # noqa: E402
from llmcore.run import load_run  # noqa: E402

RESULTS = RESULTS_DIR / "compress.json"


def held_out_text(n_chars: int) -> str:
    """The first ~n_chars of the validation world, cut at a line break."""
    text = load_corpus("storyworld", "val").text
    if len(text) <= n_chars:
        return text
    return text[: text.rfind("\n", 0, n_chars) + 1 or n_chars]


def table(r: dict) -> str:
    n = r["text_bytes"]
    lines = [
        f"{n:,} bytes of held-out text ({r['tokens']:,} tokens); "
        f"training text {r['train_text_bytes'] or 0:,} bytes; parameter file {r['params_file_bytes']:,} bytes",
        f"{'method':<24} {'bytes':>10} {'bits/byte':>10} {'given training text':>20} {'bits/byte':>10}",
    ]
    for name, row in r["methods"].items():
        given, given_bpb = row.get("given_train_bytes"), row.get("given_train_bits_per_byte")
        lines.append(
            f"{name:<24} {row['bytes']:>10,} {row['bits_per_byte']:>10.3f} "
            + (f"{given:>20,} {given_bpb:>10.3f}" if given is not None else f"{'':>20} {'':>10}")
        )
    m = r["methods"]["model"]
    lines.append(
        f"{'model cross-entropy':<24} {m['cross_entropy_bytes']:>10,.1f} {m['cross_entropy_bits_per_byte']:>10.3f}"
        f"   (the ideal size; the file adds a {m['header_bytes']}-byte header)"
    )
    return "\n".join(lines)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--run", default="storyworld", help="a run directory or a shipped run name")
    p.add_argument("--chars", type=int, default=40_000, help="how much held-out text to compress")
    p.add_argument(
        "--train-corpus",
        default=None,
        help="the training text for the conditioned rows (default: the corpus the run was trained on)",
    )
    p.add_argument("--out", default=str(RESULTS), help="where to write the JSON")
    a = p.parse_args(argv)

    try:
        run = load_run(a.run)
        text = held_out_text(a.chars)
        corpus = a.train_corpus or run.provenance.get("corpus") or "storyworld"
        train_text = load_corpus(corpus, "train").text
    except UserError as e:
        print(f"bench_compress: {e}", file=sys.stderr)
        return 2

    def progress(done, total):
        print(f"\r  model: {done:,}/{total:,} tokens", end="", file=sys.stderr, flush=True)

    t0 = time.perf_counter()
    r = compare_compressors(run, text, train_text=train_text, progress=progress)
    compare_s = time.perf_counter() - t0
    print(file=sys.stderr)

    # Decompress the model's file and check it is the text, byte for byte.
    t0 = time.perf_counter()
    blob = compress(run, text.encode("utf-8"))
    compress_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    exact = decompress(run, blob, progress=progress) == text.encode("utf-8")
    decompress_s = time.perf_counter() - t0
    print(file=sys.stderr)

    model = r["methods"]["model"]["bytes"]
    classical = {k: v for k, v in r["methods"].items() if not k.startswith("model")}
    rivals = {k: v["bytes"] for k, v in classical.items()}
    rivals |= {f"{k} given training text": v["given_train_bytes"] for k, v in classical.items()}
    best = min(rivals, key=rivals.get)
    r |= {
        "corpus": "storyworld:val",
        "train_corpus": f"{corpus}:train",
        "run_path": str(run.path),
        "run_val_bpb_from_training": run.provenance.get("val_bpb"),
        "round_trip_exact": exact,
        "seconds": {
            "compress": round(compress_s, 2),
            "decompress": round(decompress_s, 2),
            "compare_all": round(compare_s, 2),
        },
        "tokens_per_s_compress": round(r["tokens"] / compress_s, 1),
        "best_classical": {"method": best, "bytes": rivals[best]},
        "model_beats_every_classical": all(model < b for b in rivals.values()),
        "model_vs_best_classical": round(model / rivals[best], 4),
        "machine": machine_info() | {"torch_threads_compress": 1},  # llmcore.compress runs on one thread
    }
    print(table(r))
    print(
        f"round trip exact: {exact}; compress {compress_s:.1f}s, decompress {decompress_s:.1f}s "
        f"({r['tokens_per_s_compress']:,.0f} tokens/s)"
    )
    print(
        f"model file / best classical ({best}): {r['model_vs_best_classical']:.3f}; "
        f"beats every classical compressor: {r['model_beats_every_classical']}"
    )
    Path(a.out).parent.mkdir(parents=True, exist_ok=True)
    Path(a.out).write_text(json.dumps(r, indent=2) + "\n")
    print(f"wrote {a.out}")
    return 0 if exact else 1


if __name__ == "__main__":
    sys.exit(main())
