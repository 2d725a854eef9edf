"""Throw bad input at the `llmcore` command for as long as asked, and count what happens.

    .venv/bin/python scripts/soak_fuzz.py --known              the issue's fixed cases, once each
    .venv/bin/python scripts/soak_fuzz.py --minutes 30         ... then generated cases for 30 minutes
    .venv/bin/python scripts/soak_fuzz.py --known --label before --out benchmarks/results/fuzz.json

Every case is a real `llmcore` process (tests/fuzz_cases.py has the cases and the
generators the fuzz tests use), run under a time limit and a 4 GiB address-space limit
in a scratch folder. Outcomes per class: ok, clean (one line, documented exit code),
traceback, messy, hang, memory. A case also fails if it changed anything in the scratch
folder outside out/. The report (JSON) keeps the counts per class under `--label`, so
one file can hold "before" and "after" side by side, and lists every failing case.
"""

from __future__ import annotations

import argparse
import json
import platform
import random
import sys
import tempfile
import time
from collections import Counter, defaultdict
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

import fuzz_cases as fc  # noqa: E402  (tests/fuzz_cases.py, found through sys.path above)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--known", action="store_true", help="run the issue's fixed cases")
    p.add_argument("--minutes", type=float, default=0.0, help="then generate random cases for this long")
    p.add_argument("--seed", type=int, default=0, help="seed for the generated cases")
    p.add_argument("-j", "--jobs", type=int, default=2, help="cases run at once")
    p.add_argument("--label", default="after", help="the name these counts go under in the report")
    p.add_argument("--only", help="run only the known cases of these classes (comma-separated)")
    p.add_argument("--merge", action="store_true", help="replace only the classes run here in the label's counts")
    p.add_argument("--code", default=str(ROOT), help="the folder whose llmcore/ is tested (e.g. an older checkout)")
    p.add_argument("--out", default=str(ROOT / "benchmarks/results/fuzz.json"), help="the JSON report to update")
    a = p.parse_args(argv)
    if not a.known and a.minutes <= 0:
        p.error("give --known, --minutes N, or both")

    with tempfile.TemporaryDirectory(prefix="llmcore-fuzz-") as tmp:
        work = fc.prepare(Path(tmp) / "work")
        fc.crafted_files(work)
        before = fc.snapshot(work)
        only = set(a.only.split(",")) if a.only else None
        cases = [c for c in fc.known_cases(work) if not only or c.cls in only] if a.known else []
        done: list[fc.Case] = []
        with ThreadPoolExecutor(a.jobs) as pool:
            for c in pool.map(lambda c: fc.run_case(c, work / "out", code_root=Path(a.code)), cases):
                done.append(c)
                _show(c)
            rnd, deadline, n = random.Random(a.seed), time.monotonic() + 60 * a.minutes, 0
            while time.monotonic() < deadline:
                batch = [fc.random_case(rnd, work, n + i) for i in range(a.jobs)]
                n += len(batch)
                for c in pool.map(lambda c: fc.run_case(c, work / "out", code_root=Path(a.code)), batch):
                    done.append(c)
                    _show(c)
        changed = sorted(k for k in set(before) | set(fc.snapshot(work)) if before.get(k) != fc.snapshot(work).get(k))

    counts: dict[str, Counter] = defaultdict(Counter)
    for c in done:
        counts[c.cls][c.outcome] += 1
    report = json.loads(Path(a.out).read_text()) if Path(a.out).is_file() else {}
    report.setdefault("what", "bad input against the llmcore CLI: cases tried per class and their outcomes "
                              "(scripts/soak_fuzz.py)")
    report.setdefault("outcomes", {o: _MEANING[o] for o in fc.OUTCOMES})
    old = report.get(a.label, {}) if a.merge else {}
    per_class = {**old.get("per_class", {}), **{cls: {o: counts[cls][o] for o in fc.OUTCOMES} for cls in sorted(counts)}}
    failures = [f for f in old.get("failures", []) if f["class"] not in counts] + [
        {"class": c.cls, "case": c.name, "outcome": c.outcome, "seconds": c.seconds,
         "stderr_tail": c.stderr.strip().splitlines()[-1:] if c.stderr.strip() else []}
        for c in done if c.outcome not in ("ok", "clean")]
    report[a.label] = {
        "machine": platform.platform(),
        "date": time.strftime("%Y-%m-%d %H:%M"),
        "known_cases": a.known,
        "code": a.code,
        "generated_minutes": a.minutes,
        "cases": sum(sum(c.values()) for c in per_class.values()),
        "per_class": dict(sorted(per_class.items())),
        "total": {o: sum(c[o] for c in per_class.values()) for o in fc.OUTCOMES},
        "changed_outside_out": changed,
        "failures": failures,
    }
    Path(a.out).parent.mkdir(parents=True, exist_ok=True)
    Path(a.out).write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps({"per_class": report[a.label]["per_class"], "total": report[a.label]["total"],
                      "changed_outside_out": changed}, indent=1))
    bad = sum(report[a.label]["total"][o] for o in ("traceback", "messy", "hang", "memory"))
    return 1 if bad or changed else 0


_MEANING = {
    "ok": "exit 0",
    "clean": "a documented exit code and one line on stderr",
    "traceback": "a Python traceback or 'this is a bug' on stderr",
    "messy": "an undocumented exit code or several lines on stderr",
    "hang": f"still running after its time limit ({fc.TIME_LIMIT:.0f} s; the BPE budget case: 30 s)",
    "memory": f"MemoryError, an allocation failure or a kill under a {fc.MEMORY_LIMIT >> 30} GiB address-space limit",
}


def _show(c: fc.Case) -> None:
    tail = c.stderr.strip().splitlines()[-1][:150] if c.stderr.strip() else ""
    print(f"{c.outcome:>9} {c.seconds:6.1f}s  [{c.cls}] {c.name}: {tail}", flush=True)


if __name__ == "__main__":
    sys.exit(main())
