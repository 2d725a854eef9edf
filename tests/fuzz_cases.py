"""Bad input for the `llmcore` command: the cases, the files they need, and how to judge an outcome.

Shared by the fuzz tests (tests/test_fuzz.py, a bounded number of examples under
hypothesis) and the soak command (scripts/soak_fuzz.py, as long as asked, with a
report). A case is a command line (a list of str or bytes: bytes reach the command
as they are, so a path or prompt can hold bytes that are not UTF-8) in a scratch
folder `work` prepared by `prepare(work)`:

    work/run/          a copy of the shipped run (model, tokenizer, SAE): the run to mutate
    work/in.txt        a small UTF-8 text;  work/in.llmz its compression by work/run
    work/ckpt/         an unfinished tiny training run (checkpoint.safetensors) for --resume
    work/fifo, work/dir/, work/loop (a symlink to itself), work/dangling (to nothing)
    work/out/          where a case may write; nothing else in `work` may change

Each case belongs to a *class* (paths, encoding, sizes, params-file, ...). An
outcome is one of:

    ok         exit 0 (fine for a generated case that happens to be valid)
    clean      a documented exit code and one line on stderr, no traceback
    traceback  a Python traceback (or "this is a bug" message) on stderr
    messy      another exit code, or several lines of error
    hang       still running at the time limit
    memory     MemoryError, an allocation failure or a kill under the memory limit
"""

from __future__ import annotations

import json
import os
import random
import re
import resource
import shutil
import struct
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LLMCORE = [sys.executable, "-m", "llmcore.cli"]
DOCUMENTED_CODES = (1, 2, 3, 130)  # see llmcore.errors.EXIT_CODES, `llmcore --help` and the README
MEMORY_LIMIT = 4 << 30  # address space for one command: 4 GiB (torch and its thread pools reserve ~2 GiB)
TIME_LIMIT = 40.0  # seconds; every bad input must be refused well within this (start-up is ~4 s)
OUTCOMES = ("ok", "clean", "traceback", "messy", "hang", "memory")
Arg = str | bytes


@dataclass
class Case:
    cls: str  # the class of bad input, e.g. "paths"
    name: str  # what it tries, in a few words
    argv: list[Arg]
    timeout: float = TIME_LIMIT
    refuse: bool = True  # bad input that must be refused; False: may also succeed (within its limits)
    outcome: str = ""
    seconds: float = 0.0
    stderr: str = field(default="", repr=False)


# ---------------------------------------------------------------------------------
# The scratch folder


def prepare(work: Path) -> Path:
    """Fill `work` with the files every case refers to; returns `work`."""
    from llmcore.compress import compress
    from llmcore.run import ASSETS, load_run

    work.mkdir(parents=True, exist_ok=True)
    run = work / "run"
    if not run.exists():
        shutil.copytree(ASSETS / "storyworld", run)
    (work / "in.txt").write_text("Mia went to the park. The fog rolled over the bridge.\n", encoding="utf-8")
    if not (work / "in.llmz").exists():
        (work / "in.llmz").write_bytes(compress(load_run(run), (work / "in.txt").read_bytes()))
    if not (work / "ckpt" / "checkpoint.safetensors").exists():
        _unfinished_run(work / "ckpt")
    (work / "dir").mkdir(exist_ok=True)
    (work / "out").mkdir(exist_ok=True)
    if not (work / "out" / "sae-run").exists():
        shutil.copytree(run, work / "out" / "sae-run")  # a run `sae train` may write into
    if not (work / "fifo").exists():
        os.mkfifo(work / "fifo")
    for name, target in (("loop", "loop"), ("dangling", "nothing-here")):
        if not (work / name).is_symlink():
            os.symlink(target, work / name)
    return work


TINY_TRAIN = ["--corpus", "storyworld", "--n-chars", "20000", "--tokenizer", "char", "--preset", "nano",
              "--steps", "4", "--batch-size", "4", "--warmup", "1", "--eval-every", "2", "--eval-batches", "1",
              "--sample-every", "4", "--checkpoint-every", "2", "--device", "cpu"]


def _unfinished_run(out: Path) -> None:
    """A tiny run stopped after its step-2 checkpoint, as if killed: what --resume continues."""
    from llmcore.cli import build_parser
    from llmcore.train import TrainConfig, train

    a = build_parser().parse_args(["train", "--out", str(out), *TINY_TRAIN])
    cfg = TrainConfig(**{k: v for k, v in vars(a).items() if k in TrainConfig.__dataclass_fields__ and v is not None})

    def stop_after_checkpoint(ev):
        if ev.kind == "step" and ev.step == 3:
            raise KeyboardInterrupt  # the checkpoint of step 2 is on disk; the run never finishes

    try:
        train(cfg, out, callbacks=(stop_after_checkpoint,))
    except KeyboardInterrupt:
        pass


def snapshot(work: Path) -> dict[str, tuple]:
    """Every path in `work` except out/, with its type, size and modification time: to spot stray writes."""
    seen = {}
    for dirpath, dirnames, filenames in os.walk(work, followlinks=False):
        rel = Path(dirpath).relative_to(work)
        if rel.parts[:1] == ("out",):
            continue
        for name in dirnames + filenames:
            if rel == Path(".") and name == "out":
                continue
            st = os.lstat(Path(dirpath) / name)
            seen[str(rel / name)] = (st.st_mode, st.st_size if not os.path.isdir(Path(dirpath) / name) else 0,
                                     st.st_mtime_ns)
    return seen


# ---------------------------------------------------------------------------------
# Crafted files: safetensors headers, tokenizers, SAEs, compressed files


def safetensors_bytes(header: object, data: bytes = b"", raw_header: bytes | None = None) -> bytes:
    """[8-byte length][JSON header][data]: a safetensors file saying whatever we like."""
    h = raw_header if raw_header is not None else json.dumps(header).encode()
    return struct.pack("<Q", len(h)) + h + data


def read_safetensors(blob: bytes) -> tuple[dict, bytes]:
    (n,) = struct.unpack("<Q", blob[:8])
    return json.loads(blob[8 : 8 + n]), blob[8 + n :]


def edit_header(blob: bytes, edit) -> bytes:
    """The same file with `edit(header)` applied to its JSON header (data bytes unchanged)."""
    header, data = read_safetensors(blob)
    edit(header)
    return safetensors_bytes(header, data)


def _set_config(**changes):
    def edit(h):
        cfg = json.loads(h["__metadata__"]["config"])
        cfg.update(changes)
        h["__metadata__"]["config"] = json.dumps(cfg)

    return edit


def _nan_first_tensor(blob: bytes) -> bytes:
    header, data = read_safetensors(blob)
    name, entry = min(((k, v) for k, v in header.items() if k != "__metadata__"), key=lambda kv: kv[1]["data_offsets"])
    start = entry["data_offsets"][0]
    nan = {"F32": struct.pack("<f", float("nan")), "F16": b"\x00\x7e", "BF16": b"\xc0\x7f"}[entry["dtype"]]
    data = data[:start] + nan + data[start + len(nan) :]
    return safetensors_bytes(header, data)


def params_mutants(model: bytes) -> dict[str, bytes]:
    """The issue's crafted parameter files, from a real one."""
    many = {f"t{i}": {"dtype": "F32", "shape": [0], "data_offsets": [0, 0]} for i in range(300_000)}
    many["__metadata__"] = read_safetensors(model)[0]["__metadata__"]
    deep = b"[" * 100_000 + b"]" * 100_000
    return {
        "many tensors": safetensors_bytes(many),
        "config with 5000 layers": edit_header(model, _set_config(n_layers=5000)),
        "config with 1000000-token vocab": edit_header(model, _set_config(d_vocab=1_000_000, d_model=1024)),
        "header is a list": safetensors_bytes([1, 2, 3]),
        "header is a string": safetensors_bytes("model"),
        "header nested 100,000 deep": safetensors_bytes(None, raw_header=deep),
        "config key reaching into the model": edit_header(model, _set_config(**{"blocks.0.__class__.__init__": 1})),
        "NaN weight": _nan_first_tensor(model),
        "truncated": model[: len(model) // 2],
        "config is a list": edit_header(model, lambda h: h["__metadata__"].__setitem__("config", "[1]")),
        "metadata is a list": edit_header(model, lambda h: h.__setitem__("__metadata__", [1])),
        "tensor with a negative shape": edit_header(
            model, lambda h: h[next(k for k in h if k != "__metadata__")].__setitem__("shape", [-1, 4])),
    }


def tokenizer_mutants(tok_json: str) -> dict[str, bytes]:
    """Crafted tokenizer.json files, from a real BPE one."""
    tok = json.loads(tok_json)

    def with_pre(pre):
        t = json.loads(tok_json)
        t["tokenizer"]["pre_tokenizer"] = pre
        return json.dumps(t).encode()

    byte_level = {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": False}
    evil = {"type": "Split", "pattern": {"Regex": "(a|a?)+(a|a?)+(a|a?)+(a|a?)+b"}, "behavior": "Isolated", "invert": False}
    return {
        "pathological pre-tokenizer regex": with_pre({"type": "Sequence", "pretokenizers": [evil, byte_level]}),
        "tokenizer nested 100,000 deep": b"[" * 100_000 + b"]" * 100_000,
        "tokenizer is a number": b"42",
        "tokenizer vocab is a list": json.dumps({**tok, "tokenizer": {**tok["tokenizer"], "model": {
            **tok["tokenizer"]["model"], "vocab": [1, 2]}}}).encode(),
        "tokenizer cut in half": tok_json.encode()[: len(tok_json) // 2],
    }


def sae_mutants(sae: bytes) -> dict[str, bytes]:
    """Crafted sae.safetensors files: a config claiming 10 million features, and friends."""
    header = {"__metadata__": read_safetensors(sae)[0]["__metadata__"]}
    cfg = json.loads(header["__metadata__"]["config"])
    cfg["d_sae"] = 10_000_000
    header["__metadata__"]["config"] = json.dumps(cfg)
    return {
        "SAE claiming 10 million features": safetensors_bytes(header),
        "SAE with another d_model": edit_header(sae, _set_config(d_model=64)),
        "SAE config is not JSON": edit_header(sae, lambda h: h["__metadata__"].__setitem__("config", "{")),
        "SAE truncated": sae[: len(sae) // 3],
    }


def checkpoint_mutants(ckpt: bytes) -> dict[str, bytes]:
    """Crafted checkpoint.safetensors files for --resume."""
    header, data = read_safetensors(ckpt)

    def retype(name, dtype, shape=None):
        def edit(h):
            e = h[name]
            old = e["data_offsets"][1] - e["data_offsets"][0]
            h[name] = {"dtype": dtype, "shape": shape or [old // {"F32": 4, "U8": 1, "I64": 8}[dtype]],
                       "data_offsets": e["data_offsets"]}
        return edit

    def shrink_rng(h):
        e = h["rng.torch"]
        e["shape"] = [8]
        e["data_offsets"] = [e["data_offsets"][0], e["data_offsets"][0] + 8]

    def other_shape(h):
        e = h["model.W_E"]
        rows, cols = e["shape"]
        e["shape"] = [cols, rows]

    return {
        "RNG state of the wrong size": edit_header(ckpt, shrink_rng),
        "RNG state that is not bytes": edit_header(ckpt, retype("rng.torch", "F32")),
        "checkpoint from another model shape": edit_header(ckpt, other_shape),
        "checkpoint metadata is not JSON": edit_header(
            ckpt, lambda h: h["__metadata__"].__setitem__("llmcore_checkpoint", "{")),
        "checkpoint truncated": ckpt[: len(ckpt) // 2],
    }


# ---------------------------------------------------------------------------------
# The cases, one per line (the fixed set the before/after counts use)


def known_cases(work: Path) -> list[Case]:
    w = str(work)
    run, out, txt = f"{w}/run", f"{w}/out", f"{w}/in.txt"
    cases = []

    def add(cls, name, *argv, timeout=TIME_LIMIT, refuse=True):
        cases.append(Case(cls, name, [str(a) if not isinstance(a, bytes) else a for a in argv], timeout, refuse))

    # Paths that are not plain readable files, as inputs and as outputs.
    for name, p in (("a directory", f"{w}/dir"), ("a FIFO", f"{w}/fifo"), ("/dev/zero", "/dev/zero"),
                    ("a symlink loop", f"{w}/loop"), ("a dangling symlink", f"{w}/dangling")):
        add("paths", f"compress input is {name}", "compress", run, p, f"{out}/c.llmz", "--quiet")
        add("paths", f"decompress input is {name}", "decompress", run, p, f"{out}/d.txt", "--quiet")
        add("paths", f"compare-compressors text is {name}", "compare-compressors", run, p, "--quiet")
        add("paths", f"corpus is {name}", "corpus", p, "--n-chars", "100")
        add("paths", f"--tokenizer is {name}", "corpus", "storyworld", "--n-chars", "100", "--tokenizer", p)
        add("paths", f"train --tokenizer is {name}", "train", "--out", f"{out}/t", *TINY_TRAIN, "--tokenizer", p)
        add("paths", f"inspect is {name}", "inspect", p)
        add("paths", f"generate run is {name}", "generate", p, "--max-new-tokens", "2")
    add("paths", "compress output folder does not exist", "compress", run, txt, f"{out}/no/such/c.llmz", "--quiet")
    add("paths", "corpus --out is a directory", "corpus", "storyworld", "--n-chars", "100", "--out", f"{w}/dir")
    add("paths", "corpus --out in a missing folder", "corpus", "storyworld", "--n-chars", "100",
        "--out", f"{out}/no/such/c.txt")
    add("paths", "corpus --out is a FIFO", "corpus", "storyworld", "--n-chars", "100", "--out", f"{w}/fifo")
    add("paths", "compress output is a FIFO", "compress", run, txt, f"{w}/fifo", "--quiet")
    add("paths", "train --out is a file", "train", "--out", txt, *TINY_TRAIN)

    # Text that is not encodable (bytes that are not UTF-8 reach Python as lone surrogates).
    add("encoding", "lone surrogate in a prompt", "generate", run, "--prompt", b"Mia \xff", "--max-new-tokens", "2")
    add("encoding", "lone surrogate in a steering prompt", "steer", run, "--prompt", b"\xed\xa0\x80",
        "--max-new-tokens", "2")
    add("encoding", "non-UTF-8 bytes in an output path", "compress", run, txt, f"{out}/c\xff".encode("latin-1"),
        "--quiet", refuse=False)  # a legal Linux file name: written, and printed escaped
    add("encoding", "lone surrogate in a corpus path", "corpus", f"{w}/in\xff.txt".encode("latin-1"))
    add("encoding", "lone surrogate in a run name", "generate", b"run\xff")
    add("encoding", "lone surrogate in --stop", "generate", run, "--stop", b"\xff", "--max-new-tokens", "2")

    # Absurd sizes.
    add("sizes", "corpus --n-chars 10^26", "corpus", "storyworld", "--n-chars", "9" * 26)
    add("sizes", "train --n-chars 10^11", "train", "--out", f"{out}/t", *TINY_TRAIN, "--n-chars", "100000000000")
    add("sizes", "train a 10^12-parameter shape", "train", "--out", f"{out}/t", *TINY_TRAIN, "--preset", "gpt2-124m",
        "--n-ctx", "1000000")
    add("sizes", "train --batch-size 100000", "train", "--out", f"{out}/t", *TINY_TRAIN, "--batch-size", "100000",
        "--preset", "medium-100m")
    add("sizes", "train --vocab-size 10^9", "train", "--out", f"{out}/t", *TINY_TRAIN, "--tokenizer", "bpe",
        "--vocab-size", "1000000000")
    add("sizes", "inspect --values 10^12", "inspect", run, "--values", "1000000000000", refuse=False)  # all of them
    add("sizes", "features --top 10^9", "features", run, "--top", "1000000000", "--feature", "0")
    add("sizes", "features --feature 10^12", "features", run, "--feature", "1000000000000")
    add("sizes", "sae train --d-sae 10^7", "sae", "train", f"{out}/sae-run", "--d-sae", "10000000")
    add("sizes", "steer --max-new-tokens 10^12", "steer", run, "--max-new-tokens", "1000000000000")
    add("sizes", "scale --gpus 10^30", "scale", "--gpus", "1" + "0" * 30)

    # Crafted files in a run folder (written by `crafted_files`).
    for cls, folder, names in (("params-file", "bad-params", PARAMS_NAMES), ("tokenizer-file", "bad-tok", TOK_NAMES),
                               ("sae-file", "bad-sae", SAE_NAMES)):
        for i, name in enumerate(names):
            r = f"{w}/{folder}/{i}"
            if cls == "params-file":
                add(cls, f"inspect: {name}", "inspect", r)
                add(cls, f"generate: {name}", "generate", r, "--max-new-tokens", "3")
            elif cls == "tokenizer-file":
                add(cls, f"generate: {name}", "generate", r, "--max-new-tokens", "3", "--prompt", "a" * 30 + "c")
                add(cls, f"corpus --tokenizer: {name}", "corpus", "storyworld", "--n-chars", "3000",
                    "--tokenizer", f"{r}/tokenizer.json")
            else:
                add(cls, f"features: {name}", "features", r, "--feature", "0")
                add(cls, f"steer: {name}", "steer", r, "--feature", "0", "--max-new-tokens", "2")
    for i, name in enumerate(CKPT_NAMES):
        add("checkpoint", f"--resume: {name}", "train", "--out", f"{out}/bad-ckpt/{i}", *TINY_TRAIN, "--resume")
    add("compressed-file", "a valid .llmz with 8 MB of junk appended", "decompress", run, f"{w}/junk.llmz",
        f"{out}/d.txt", "--quiet")
    add("compressed-file", "a .llmz cut short", "decompress", run, f"{w}/short.llmz", f"{out}/d.txt", "--quiet")

    # Training flags checked too late or not at all.
    for flag, value in (("--weight-decay", "nan"), ("--grad-clip", "nan"), ("--device", "cuda"), ("--n-ctx", "0"),
                        ("--warmup", "-5"), ("--grad-clip", "-1"), ("--max-seconds", "-1"), ("--lr", "nan"),
                        ("--min-lr", "-1"), ("--seed", "-1"), ("--save-dtype", "fp8"), ("--max-seconds", "inf")):
        add("train-flags", f"train {flag} {value}", "train", "--out", f"{out}/t", *TINY_TRAIN, flag, value)
    add("train-flags", 'train --out ""', "train", "--out", "", *TINY_TRAIN)

    # A time budget that tokenizer training must honour.
    add("time-budget", "BPE on 1 MB without a newline, --max-seconds 5", "train", "--out", f"{out}/t", *TINY_TRAIN,
        "--corpus", f"{w}/oneline.txt", "--tokenizer", "bpe", "--n-chars", "1000000", "--max-seconds", "5",
        timeout=5 + 40, refuse=False)  # start-up, the final evaluation and save come on top
    return cases


def _shipped_mutant_names() -> tuple[list[str], list[str], list[str]]:
    """The crafted files' names, from the shipped run (known before any scratch folder exists)."""
    from llmcore.run import ASSETS

    run = ASSETS / "storyworld"
    return (list(params_mutants((run / "model.safetensors").read_bytes())),
            list(tokenizer_mutants((run / "tokenizer.json").read_text(encoding="utf-8"))),
            list(sae_mutants((run / "sae.safetensors").read_bytes())))


PARAMS_NAMES, TOK_NAMES, SAE_NAMES = _shipped_mutant_names()
CKPT_NAMES = ["RNG state of the wrong size", "RNG state that is not bytes", "checkpoint from another model shape",
              "checkpoint metadata is not JSON", "checkpoint truncated"]


def crafted_files(work: Path) -> None:
    """Write the crafted run folders (bad-params/i, bad-tok/i, bad-sae/i, bad-ckpt/i) and files into `work`."""
    run = work / "run"
    model, sae = (run / "model.safetensors").read_bytes(), (run / "sae.safetensors").read_bytes()
    tok = (run / "tokenizer.json").read_text(encoding="utf-8")
    for folder, mutants, names, target in (
        ("bad-params", params_mutants(model), PARAMS_NAMES, "model.safetensors"),
        ("bad-tok", tokenizer_mutants(tok), TOK_NAMES, "tokenizer.json"),
        ("bad-sae", sae_mutants(sae), SAE_NAMES, "sae.safetensors"),
        ("bad-ckpt", checkpoint_mutants((work / "ckpt" / "checkpoint.safetensors").read_bytes()), CKPT_NAMES,
         "checkpoint.safetensors"),
    ):
        assert list(mutants) == names, "the crafted files' names changed; keep *_NAMES in step"
        for i, blob in enumerate(mutants.values()):
            src = work / "ckpt" if folder == "bad-ckpt" else run
            d = work / ("out/" if folder == "bad-ckpt" else "") / folder / str(i)  # a resumed run is an output
            if d.exists():
                shutil.rmtree(d)
            shutil.copytree(src, d)
            (d / target).write_bytes(blob)
    good = (work / "in.llmz").read_bytes()
    (work / "junk.llmz").write_bytes(good + os.urandom(8 << 20))
    (work / "short.llmz").write_bytes(good[:-3])
    words = random.Random(0).choices(["mia", "fog", "bridge", "park", "went"], k=200_000)
    (work / "oneline.txt").write_text("".join(words)[: 1 << 20], encoding="utf-8")  # 1 MB, one long word


# ---------------------------------------------------------------------------------
# Running a case and judging it


def _limits(memory: int):
    def apply():
        resource.setrlimit(resource.RLIMIT_AS, (memory, memory))
        os.setsid()  # its own process group, so a hang can be killed with its children

    return apply


_PROGRESS = re.compile(r"\d+%\||(it|step|token)/s[\]\s,]")  # a tqdm progress bar's line


def classify(code: int | None, stderr: str, timed_out: bool) -> str:
    """One outcome from an exit code and stderr (see the module docstring)."""
    if timed_out:
        return "hang"
    if any(s in stderr for s in ("MemoryError", "can't allocate memory", "std::bad_alloc", "Cannot allocate memory")):
        return "memory"
    if code is not None and code < 0:  # killed by a signal: SIGKILL from the kernel when out of memory
        return "memory"
    if "Traceback (most recent call last)" in stderr or "this is a bug" in stderr or "PanicException" in stderr:
        return "traceback"
    if code == 0:
        return "ok"
    lines = [ln for ln in stderr.strip().splitlines() if ln.strip() and not _PROGRESS.search(ln)]
    return "clean" if code in DOCUMENTED_CODES and len(lines) == 1 else "messy"


def run_case(case: Case, cwd: Path, memory: int = MEMORY_LIMIT, code_root: Path = ROOT) -> Case:
    """Run one case as a subprocess under the time and memory limits; fills in outcome, seconds, stderr.

    `code_root` is the folder whose llmcore/ is under test (another checkout, to measure "before").
    """
    env = {**os.environ, "PYTHONPATH": str(code_root), "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
    t0 = time.perf_counter()
    p = subprocess.Popen([*LLMCORE, *case.argv], cwd=cwd, env=env, stdin=subprocess.DEVNULL,
                         stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, preexec_fn=_limits(memory))
    try:
        _, err = p.communicate(timeout=case.timeout)
        timed_out = False
    except subprocess.TimeoutExpired:
        os.killpg(p.pid, 9)
        _, err = p.communicate()
        timed_out = True
    case.seconds = round(time.perf_counter() - t0, 2)
    case.stderr = err.decode("utf-8", "replace")[-2000:]
    case.outcome = classify(p.returncode, case.stderr, timed_out)
    return case


# ---------------------------------------------------------------------------------
# Generated cases: random paths, argument values and mutated files (the soak and the fuzz tests)


def path_kinds(work: Path) -> dict[str, Arg]:
    """Every kind of path an argument can name, each existing in `work` (or deliberately not)."""
    w = str(work)
    return {
        "a folder": f"{w}/dir", "a FIFO": f"{w}/fifo", "/dev/zero": "/dev/zero", "/dev/null": "/dev/null",
        "a symlink loop": f"{w}/loop", "a dangling symlink": f"{w}/dangling", "a missing file": f"{w}/missing",
        "a path through a file": f"{w}/in.txt/x", "an empty path": "", "a 5000-character path": "a" * 5000,
        "a non-UTF-8 path": f"{w}/\xff".encode("latin-1"), "a run folder": f"{w}/run", "a text file": f"{w}/in.txt",
        "a compressed file": f"{w}/in.llmz", "a parameter file": f"{w}/run/model.safetensors",
        "a tokenizer file": f"{w}/run/tokenizer.json", "/proc/self/mem": "/proc/self/mem",
    }


def _path_templates(w: str, out: str) -> list[list[Arg]]:
    """Commands with one path slot ("P"); outputs always go to out/."""
    run = f"{w}/run"
    return [
        ["compress", run, "P", f"{out}/c.llmz", "--quiet"], ["decompress", run, "P", f"{out}/d.txt", "--quiet"],
        ["compare-compressors", run, "P", "--quiet"], ["corpus", "P", "--n-chars", "200"],
        ["corpus", "storyworld", "--n-chars", "200", "--tokenizer", "P"], ["inspect", "P"],
        ["generate", "P", "--max-new-tokens", "2"], ["features", "P", "--feature", "0", "--top", "1"],
        ["steer", "P", "--feature", "0", "--max-new-tokens", "2"], ["compress", "P", f"{w}/in.txt", f"{out}/c.llmz"],
        ["export-hf", "P", f"{out}/hf"], ["import-hf", "P", f"{out}/imported"],
        ["train", "--out", f"{out}/t", *TINY_TRAIN, "--corpus", "P", "--max-seconds", "3"],
        ["train", "--out", f"{out}/t", *TINY_TRAIN, "--tokenizer", "P", "--max-seconds", "3"],
    ]


# Flags per command, with the kind of value each takes. Train's come from TrainConfig's fields.
_FLAGS = {
    "generate": {"--temperature": "float", "--top-k": "int", "--top-p": "float", "--max-new-tokens": "int",
                 "--seed": "int", "--stop": "text", "--prompt": "text"},
    "inspect": {"--values": "int"},
    "corpus": {"--n-chars": "int", "--split": "text"},
    "scale": {"--preset": "text", "--params": "float", "--tokens": "float", "--gpus": "int", "--price": "float",
              "--mfu": "float", "--accelerator": "text", "--dtype": "text"},
    "features": {"--concept": "text", "--feature": "int", "--top": "int"},
    "steer": {"--feature": "text", "--strength": "float", "--mode": "text", "--prompt": "text",
              "--temperature": "float", "--max-new-tokens": "int", "--seed": "int"},
    "train": {"--n-chars": "int", "--vocab-size": "int", "--preset": "text", "--n-ctx": "int", "--steps": "int",
              "--batch-size": "int", "--grad-accum": "int", "--lr": "float", "--min-lr": "float", "--warmup": "int",
              "--weight-decay": "float", "--grad-clip": "float", "--eval-every": "int", "--eval-batches": "int",
              "--sample-every": "int", "--checkpoint-every": "int", "--seed": "int", "--device": "text",
              "--save-dtype": "text", "--max-seconds": "float", "--tokenizer": "text", "--corpus": "text"},
    "sae": {"--d-sae": "int", "--k": "int", "--steps": "int", "--seed": "int", "--layer": "int"},
}
_VALUES = {
    "int": ["0", "1", "2", "-1", "-5", "7", "64", "1000", "99999999999999999999999999", "1e3", "0x10", "", "nan",
            str(2**63), str(-(2**63))],
    "float": ["0", "0.5", "1", "-1", "-0.0", "1e-300", "1e308", "nan", "inf", "-inf", "", "abc", "3.0e2"],
    "text": ["", "x", "storyworld", "golden_gate_bridge", "auto", "cpu", "cuda", "fp16", "bpe", "char", "a" * 5000,
             b"\xff\xfe", b"\xed\xa0\x80", "\u200b", "Once upon a time", "../../etc/passwd", "-", "--", "nano"],
}


def _value(rnd: random.Random, kind: str) -> Arg:
    if rnd.random() < 0.25 and kind in ("int", "float"):  # a random number of any size too
        return str(rnd.choice([rnd.randint(-10, 10), rnd.randint(-(2**70), 2**70), rnd.uniform(-1e6, 1e6)]))
    return rnd.choice(_VALUES[kind])


def _args_case(rnd: random.Random, work: Path, out: str) -> tuple[str, list[Arg]]:
    w = str(work)
    command = rnd.choice(sorted(_FLAGS))
    base: list[Arg] = {
        "generate": ["generate", f"{w}/run", "--max-new-tokens", "3"], "inspect": ["inspect", f"{w}/run"],
        "corpus": ["corpus", "storyworld", "--n-chars", "500"], "scale": ["scale"],
        "features": ["features", f"{w}/run", "--top", "2"],
        "steer": ["steer", f"{w}/run", "--max-new-tokens", "3"],
        "train": ["train", "--out", f"{out}/t", *TINY_TRAIN, "--max-seconds", "3"],
        "sae": ["sae", "train", f"{out}/sae-run", "--steps", "2"],
    }[command]
    flags = rnd.sample(sorted(_FLAGS[command]), k=rnd.randint(1, min(3, len(_FLAGS[command]))))
    argv = list(base)
    for flag in flags:
        argv += [flag, _value(rnd, _FLAGS[command][flag])]
    return f"{command} " + " ".join(flags), argv


# Mutations of a file's bytes: each returns the new bytes and a name.
def _truncate(rnd, blob):
    n = rnd.randint(0, len(blob) - 1)
    return blob[:n], f"cut to {n} bytes"


def _flip_bits(rnd, blob):
    b = bytearray(blob)
    for _ in range(rnd.randint(1, 8)):
        i = rnd.randrange(min(len(b), 4096) if rnd.random() < 0.7 else len(b))  # mostly in the header
        b[i] ^= 1 << rnd.randrange(8)
    return bytes(b), "bits flipped"


def _append(rnd, blob):
    return blob + rnd.randbytes(rnd.choice([1, 8, 1000, 100_000])), "junk appended"


_ODD_VALUES = [None, True, -1, 0, 2**64, 1e308, "x", "", [], {}, [[[]]], "a" * 1000, [0, 2**40], {"a": 1}]


def _edit_json(rnd: random.Random, obj):
    """Replace one value somewhere in `obj` (a JSON value) by an odd one, or a number by a lie."""
    path, node = [], obj
    while isinstance(node, (dict, list)) and node and rnd.random() < 0.75:
        key = rnd.choice(sorted(node) if isinstance(node, dict) else range(len(node)))
        path.append(key)
        node = node[key]
    if not path:
        return rnd.choice(_ODD_VALUES)
    parent = obj
    for key in path[:-1]:
        parent = parent[key]
    old = parent[path[-1]]
    if isinstance(old, int) and not isinstance(old, bool) and rnd.random() < 0.5:
        parent[path[-1]] = rnd.choice([old + 1, old - 1, old * 1000, -old, 0, 10**9])  # a size lie
    elif isinstance(old, str) and old[:1] in "[{" and rnd.random() < 0.7:  # JSON inside metadata: edit it
        try:
            inner = json.loads(old)
            parent[path[-1]] = json.dumps(_edit_json(rnd, inner))
        except ValueError:
            parent[path[-1]] = rnd.choice(_ODD_VALUES)
    else:
        parent[path[-1]] = rnd.choice(_ODD_VALUES)  # a type swap
    return obj


def _edit_header(rnd, blob):
    try:
        header, data = read_safetensors(blob)
    except (ValueError, struct.error):
        return _flip_bits(rnd, blob)
    return safetensors_bytes(_edit_json(rnd, header), data), "header edited"


def _edit_tokenizer(rnd, blob):
    return json.dumps(_edit_json(rnd, json.loads(blob))).encode(), "JSON edited"


def _lie_header_length(rnd, blob):
    n = rnd.choice([0, 1, 7, len(blob), len(blob) - 8, 2**63, struct.unpack("<Q", blob[:8])[0] + rnd.randint(-9, 9)])
    return struct.pack("<Q", n % 2**64) + blob[8:], "header length lies"


def _edit_llmz(rnd, blob):
    b = bytearray(blob)
    field_at = rnd.choice([4, 37, 41, 45])  # version, n_bytes, n_tokens, crc
    size = 1 if field_at == 4 else 4
    b[field_at : field_at + size] = rnd.randbytes(size)
    return bytes(b), "header field changed"


_MUTATIONS = {
    "model.safetensors": (_truncate, _flip_bits, _append, _edit_header, _edit_header, _lie_header_length),
    "sae.safetensors": (_truncate, _flip_bits, _append, _edit_header, _edit_header, _lie_header_length),
    "checkpoint.safetensors": (_truncate, _flip_bits, _append, _edit_header, _edit_header, _lie_header_length),
    "tokenizer.json": (_truncate, _flip_bits, _append, _edit_tokenizer, _edit_tokenizer),
    "in.llmz": (_truncate, _flip_bits, _append, _edit_llmz),
}


def _file_case(rnd: random.Random, work: Path, out: str, n: int) -> tuple[str, str, list[Arg]]:
    target = rnd.choice(sorted(_MUTATIONS))
    mutate = rnd.choice(_MUTATIONS[target])
    folder = Path(out) / f"mut-{n}"
    shutil.rmtree(folder, ignore_errors=True)
    w = str(work)
    if target == "in.llmz":
        folder.mkdir(parents=True)
        blob, how = mutate(rnd, (work / "in.llmz").read_bytes())
        (folder / "in.llmz").write_bytes(blob)
        return "compressed-file", how, ["decompress", f"{w}/run", str(folder / "in.llmz"), f"{folder}/d.txt", "--quiet"]
    src = work / ("ckpt" if target == "checkpoint.safetensors" else "run")
    shutil.copytree(src, folder)
    blob, how = mutate(rnd, (folder / target).read_bytes())
    (folder / target).write_bytes(blob)
    f = str(folder)
    cls, argv = {
        "model.safetensors": ("params-file", rnd.choice([["inspect", f], ["generate", f, "--max-new-tokens", "3"]])),
        "tokenizer.json": ("tokenizer-file", ["generate", f, "--max-new-tokens", "3"]),
        "sae.safetensors": ("sae-file", ["features", f, "--feature", "0", "--top", "1"]),
        "checkpoint.safetensors": ("checkpoint", ["train", "--out", f, *TINY_TRAIN, "--resume"]),
    }[target]
    return cls, how, argv


def random_case(rnd: random.Random, work: Path, n: int) -> Case:
    """One generated case: a path of some kind, odd argument values, or a mutated file."""
    out = str(work / "out")
    kind = rnd.choice(["paths", "args", "files", "files"])
    if kind == "paths":
        name, p = rnd.choice(sorted(path_kinds(work).items()))
        template = rnd.choice(_path_templates(str(work), out))
        return Case("generated-paths", f"{template[0]}: {name}", [p if a == "P" else a for a in template])
    if kind == "args":
        name, argv = _args_case(rnd, work, out)
        return Case("generated-args", name, argv)
    cls, how, argv = _file_case(rnd, work, out, n)
    return Case(f"generated-{cls}", f"{argv[0]}: {how}", argv)
