"""The fuzz suite: bad input of every kind against the `llmcore` command.

Every case must end in one line on stderr with a documented exit code (or succeed,
for a generated case that happens to be valid), never a traceback, a hang or a
memory blow-up, and must change nothing in the scratch folder outside out/.

- the issue's cases (tests/fuzz_cases.py `known_cases`), each once, in-process;
- generated cases under hypothesis, a bounded number: paths of every kind, odd
  values for every command's flags, mutated parameter, tokenizer, SAE, checkpoint
  and compressed files (truncation, bit flips, header edits, type swaps, size lies);
- a few cases as real processes under a time and a 4 GiB memory limit, for the
  inputs that used to hang or exhaust memory (FIFOs, /dev/zero, lying sizes).

The soak command (scripts/soak_fuzz.py --minutes N) runs the same generators as
real processes for as long as asked and writes the per-class report.
"""

from __future__ import annotations

import contextlib
import io
import os
import random
import signal
from pathlib import Path

import fuzz_cases as fc
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from llmcore.cli import main

KNOWN = fc.known_cases(Path("/W"))  # names and classes only; the real paths come from the fixture
CASE_SECONDS = 120  # an in-process case taking longer has hung (most take well under a second)


@pytest.fixture(scope="module")
def work(tmp_path_factory):
    w = fc.prepare(tmp_path_factory.mktemp("fuzz") / "work")
    fc.crafted_files(w)
    return w


class Hung(Exception):
    pass


def run_in_process(argv: list, cwd: Path) -> tuple[int, str, str]:
    """main(argv) with stdout/stderr captured and an alarm against hangs; bytes args arrive as Python's argv would."""
    argv = [os.fsdecode(a) if isinstance(a, bytes) else a for a in argv]  # b"\xff" -> "\udcff", as sys.argv

    def alarm(*_):
        raise Hung(f"still running after {CASE_SECONDS} s: {argv}")

    out, err = io.StringIO(), io.StringIO()
    old_handler, old_cwd = signal.signal(signal.SIGALRM, alarm), os.getcwd()
    signal.alarm(CASE_SECONDS)
    try:
        os.chdir(cwd)
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                code = main(argv)
            except SystemExit as e:  # argparse: a malformed command line
                code = e.code
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old_handler)
        os.chdir(old_cwd)
    return code, out.getvalue(), err.getvalue()


def check(argv: list, work: Path) -> str:
    """Run one case and hold it to the rules; returns its outcome (ok or clean)."""
    before = fc.snapshot(work)
    code, _, err = run_in_process(argv, work / "out")
    outcome = fc.classify(code, err, timed_out=False)
    assert outcome in ("ok", "clean"), f"{outcome}: {argv!r:.300}\n{err[-1500:]}"
    after = fc.snapshot(work)
    changed = {k for k in set(before) | set(after) if before.get(k) != after.get(k)}
    assert not changed, f"{argv!r:.300} changed {sorted(changed)[:5]} outside out/"
    return outcome


@pytest.mark.parametrize("index", range(len(KNOWN)), ids=[f"{c.cls}: {c.name}" for c in KNOWN])
def test_the_issues_cases_are_refused_in_one_line(work, index):
    case = fc.known_cases(work)[index]
    outcome = check(case.argv, work)
    assert outcome == "clean" or not case.refuse, f"{case.name} was accepted; it must be refused"


@settings(max_examples=120, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck))
@given(seed=st.integers(0, 2**32 - 1))
def test_generated_paths_args_and_mutated_files(work, seed):
    """The soak's generator (paths, odd flag values, mutated files), a bounded number of draws."""
    case = fc.random_case(random.Random(seed), work, seed % 1000)
    check(case.argv, work)


@pytest.mark.parametrize("name", ["compress input is a FIFO", "--tokenizer is /dev/zero",
                                  "a valid .llmz with 8 MB of junk appended", "features: SAE claiming 10 million features",
                                  "inspect: many tensors", "BPE on 1 MB without a newline, --max-seconds 5"])
def test_former_hangs_and_memory_blowups_as_real_processes(work, name):
    """Under a 4 GiB address-space limit and a time limit, as a user would run them."""
    case = next(c for c in fc.known_cases(work) if c.name == name)
    fc.run_case(case, work / "out")
    assert case.outcome == "clean" or (case.outcome == "ok" and not case.refuse), f"{case.outcome} after {case.seconds} s:\n{case.stderr}"


def test_an_unexpected_error_says_bug_and_shows_the_traceback_only_with_verbose(work, monkeypatch):
    import llmcore.cli

    def broken(a):
        raise ZeroDivisionError("division by zero")

    monkeypatch.setattr(llmcore.cli, "cmd_inspect", broken)
    for verbose, traceback_shown in (([], False), (["--verbose"], True)):
        code, _, err = run_in_process([*verbose, "inspect", "storyworld"], work / "out")
        assert code == 1 and "this is a bug, please report it" in err.lower()
        assert ("Traceback" in err) is traceback_shown


def test_expected_failures_from_the_system_get_one_line_and_their_exit_code(work, monkeypatch):
    import errno

    import llmcore.cli

    for exc, code, words in ((OSError(errno.ENOSPC, "No space left on device", "out/x"), 3, "no space left"),
                             (MemoryError(), 3, "out of memory"),
                             (RuntimeError("DefaultCPUAllocator: can't allocate memory: you tried 9 GB"), 3, "out of memory"),
                             (PermissionError(errno.EACCES, "Permission denied", "secret.txt"), 2, "permission denied"),
                             (KeyboardInterrupt(), 130, "interrupted")):
        def raise_it(a, exc=exc):
            raise exc

        monkeypatch.setattr(llmcore.cli, "cmd_inspect", raise_it)
        got, _, err = run_in_process(["inspect", "storyworld"], work / "out")
        assert got == code and words in err.lower() and len(err.strip().splitlines()) == 1, err


def test_exit_codes_are_documented_in_the_help():
    code, out, _ = run_in_process(["--help"], Path.cwd())
    assert code == 0
    for documented in fc.DOCUMENTED_CODES:
        assert f"\n  {documented} " in out
