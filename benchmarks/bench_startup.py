"""Benchmark: how long a learner waits before anything happens.

Each measurement runs in a fresh Python process (nothing cached in memory between
them, though the OS file cache is warm after the first), best of --repeat:

    python                      the interpreter alone (the floor everything else sits on)
    import llmcore              the package: must stay cheap (no torch, plotly, transformers)
    import llmcore.model        the model module: pays for torch (its hook points are llmcore.hooks)
    load_run("storyworld")      open the shipped run: weights + tokenizer, ready to generate
    import transformers GPT2    the peer: what `from transformers import GPT2LMHeadModel` costs

Then `python -X importtime -c "import llmcore.model"` lists the ten heaviest imports
(cumulative microseconds), so a slow start has a name.

    .venv/bin/python benchmarks/bench_startup.py           # best of 5
    .venv/bin/python benchmarks/bench_startup.py --quick   # best of 2

Writes benchmarks/results/startup.json.
"""

from __future__ import annotations

import argparse
import resource
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.common import table, write_result  # noqa: E402

CASES = {
    "python": "pass",
    "import llmcore": "import llmcore",
    "import llmcore.model": "import llmcore.model",
    "load_run('storyworld')": "import llmcore.run as r; r.load_run('storyworld')",
    "import transformers GPT2": "from transformers import GPT2LMHeadModel",
}


def run_once(code: str) -> tuple[float, float]:
    """(wall seconds, CPU seconds) of `python -c code` in a fresh process (raises if it fails).

    CPU seconds (user + system of the child) barely move when other programs share the
    machine; wall seconds are what a learner waits.
    """
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT, capture_output=True)
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def heaviest_imports(module: str, n: int = 10) -> list[dict]:
    """The n imports with the largest cumulative time, from `python -X importtime`."""
    r = subprocess.run([sys.executable, "-X", "importtime", "-c", f"import {module}"], cwd=ROOT,
                       capture_output=True, text=True, check=True)
    rows = []
    for line in r.stderr.splitlines():  # "import time:   self [us] | cumulative | imported package"
        if not line.startswith("import time:") or "cumulative" in line:
            continue
        self_us, cum_us, name = (part.strip() for part in line.removeprefix("import time:").split("|"))
        rows.append({"module": name.strip(), "self_us": int(self_us), "cumulative_us": int(cum_us),
                     "depth": (len(name) - len(name.lstrip())) // 2})
    # top-level and second-level entries only: deeper ones are already inside their parents
    return sorted((r for r in rows if r["depth"] <= 1), key=lambda r: -r["cumulative_us"])[:n]


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="best of 2 instead of 5")
    p.add_argument("--repeat", type=int, help="runs per case (default 5; --quick 2)")
    a = p.parse_args(argv)
    repeat = a.repeat or (2 if a.quick else 5)

    from llmcore.run import shipped_runs

    rows, skipped = [], {}
    for name, code in CASES.items():
        if "storyworld" in code and "storyworld" not in shipped_runs():
            skipped[name] = "llmcore/assets/storyworld is not built yet (scripts/build_assets.py)"
            print(f"skip {name}: {skipped[name]}")
            continue
        runs = [run_once(code) for _ in range(repeat)]
        times, cpu = [w for w, _ in runs], [c for _, c in runs]
        rows.append({"case": name, "code": code, "best_s": min(times), "median_s": sorted(times)[len(times) // 2],
                     "best_cpu_s": min(cpu), "runs_s": times, "runs_cpu_s": cpu})
    floor = rows[0]["best_s"]
    for r in rows:
        r["above_python_s"] = r["best_s"] - floor
    heavy = heaviest_imports("llmcore.model")
    light = heaviest_imports("llmcore", n=5)

    print(f"\nfresh-process start-up, best of {repeat}")
    print(table(rows, ["case", "best_s", "median_s", "above_python_s", "best_cpu_s"]))
    print("\nheaviest imports under `import llmcore.model` (cumulative)")
    print(table([{"module": h["module"], "cumulative ms": h["cumulative_us"] / 1000, "self ms": h["self_us"] / 1000}
                 for h in heavy], ["module", "cumulative ms", "self ms"]))
    write_result("startup", {
        "benchmark": "fresh-process start-up times",
        "settings": {"quick": a.quick, "repeat": repeat, "python": sys.executable},
        "rows": rows,
        "skipped": skipped,
        "heaviest_imports_llmcore_model": heavy,
        "heaviest_imports_llmcore": light,
        "notes": "import llmcore must not import torch: its time above bare python should be a few ms.",
    })
    return 0


if __name__ == "__main__":
    sys.exit(main())
