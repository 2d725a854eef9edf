"""Faults while training: a disk that fills up in the middle of a checkpoint.

A checkpoint is written to a temporary name and renamed over the old one
(`llmcore.files.atomic_write`), so a write that fails half-way must leave the last
good checkpoint untouched, raise an error that says what happened (no space left),
leave no half-written file behind, and a later `train(..., resume=True)` must reach
exactly the weights of a run that never failed.

Three ways the disk fills, from simulated to real:
- safetensors' writer stops half-way through the file with ENOSPC (monkeypatched),
- fsync reports ENOSPC, as ext4 does when delayed allocation finds no room (monkeypatched),
- a real 4 MiB tmpfs filled to the brim, mounted in a user + mount namespace
  (`unshare -rm`, no root needed); skipped where namespaces are not allowed.
"""

import errno
import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

from llmcore.params import load_params
from llmcore.train import CHECKPOINT_FILE, TrainConfig, load_checkpoint, make_optimizer, train

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def reference(tmp_path_factory, tiny_train_config):
    """The weights of the same run, never interrupted."""
    out = train(tiny_train_config(), tmp_path_factory.mktemp("ref") / "run")
    return load_params(out / "model.safetensors")[1]


def same_weights(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def checkpoint_step(run_dir: Path, cfg: TrainConfig) -> int:
    """Load the run's checkpoint the way --resume does; returns the step it holds."""
    from llmcore.model import GPT, config_from_preset
    from llmcore.tokenizer import load_tokenizer

    tok = load_tokenizer(run_dir / "tokenizer.json")
    model = GPT(config_from_preset(cfg.preset, tok.vocab_size))
    return load_checkpoint(run_dir / CHECKPOINT_FILE, model, make_optimizer(model, cfg), torch.Generator())["step"]


def fail_second_checkpoint_write(monkeypatch):
    """safetensors writes half of the 2nd checkpoint, then the disk is full."""
    import safetensors.torch

    real, calls = safetensors.torch.save_file, []

    def save_file(tensors, filename, metadata=None):
        if "checkpoint" in Path(filename).name:
            calls.append(filename)
            if len(calls) == 2:
                real(tensors, filename, metadata=metadata)
                with open(filename, "r+b") as f:  # only the first half reached the disk
                    f.truncate(os.path.getsize(filename) // 2)
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(filename))
        return real(tensors, filename, metadata=metadata)

    monkeypatch.setattr(safetensors.torch, "save_file", save_file)


def fail_second_checkpoint_fsync(monkeypatch):
    """The 2nd checkpoint is written, but fsync finds no room for it (ext4 delayed allocation)."""
    real, calls = os.fsync, []

    def fsync(fd):
        if "checkpoint" in os.readlink(f"/proc/self/fd/{fd}"):
            calls.append(fd)
            if len(calls) == 2:
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return real(fd)

    if not Path("/proc/self/fd").is_dir():
        pytest.skip("needs /proc/self/fd to name the file being synced")
    monkeypatch.setattr(os, "fsync", fsync)


@pytest.mark.parametrize("fault", [fail_second_checkpoint_write, fail_second_checkpoint_fsync])
def test_full_disk_during_checkpoint_keeps_the_last_good_one(
    tmp_path, tiny_train_config, reference, monkeypatch, fault
):
    cfg, out = tiny_train_config(), tmp_path / "run"
    with monkeypatch.context() as m:
        fault(m)
        with pytest.raises(Exception) as e:
            train(cfg, out)
    # the error says what happened, in words a user can act on
    chain = [e.value, e.value.__cause__, e.value.__context__]
    assert any("No space left on device" in str(x) for x in chain if x is not None), repr(e.value)
    # the checkpoint of step 4 survives, whole; nothing half-written lies beside it
    assert checkpoint_step(out, cfg) == 4
    assert not list(out.glob(".*tmp*")), list(out.iterdir())
    assert not (out / "model.safetensors").exists()
    # and the run resumes to exactly the weights of a run that never failed
    train(cfg, out, resume=True)
    assert same_weights(load_params(out / "model.safetensors")[1], reference)
    assert not (out / CHECKPOINT_FILE).exists()


CHILD = textwrap.dedent("""
    # Runs inside `unshare -rm` with a tiny tmpfs mounted at argv[2]: fill it, fail, free, resume.
    import json, os, shutil, sys
    from pathlib import Path
    import torch
    from safetensors import safe_open
    torch.set_num_threads(1)
    from llmcore.train import CHECKPOINT_FILE, TrainConfig, train
    cfg, mnt, report = TrainConfig(**json.loads(sys.argv[1])), Path(sys.argv[2]), Path(sys.argv[3])
    out, filler = mnt / "run", mnt / "filler"

    def fill_disk(ev):  # before the 2nd checkpoint: take every byte the filesystem has left
        if ev.kind == "step" and ev.step == 2 * cfg.checkpoint_every:
            with open(filler, "wb") as f:
                try:
                    while True:
                        f.write(b"x" * 4096)
                        f.flush()
                except OSError as e:
                    assert e.errno == 28, e

    r = {}
    try:
        train(cfg, out, callbacks=(fill_disk,))
        r["error"] = None
    except Exception as e:
        r["error"], r["error_type"] = str(e), type(e).__name__
    r["files_after_failure"] = sorted(p.name for p in out.iterdir())
    with safe_open(str(out / CHECKPOINT_FILE), "pt") as f:  # the last good checkpoint, read in full
        r["checkpoint_step"] = json.loads(f.metadata()["llmcore_checkpoint"])["step"]
        r["checkpoint_tensors"] = sum(f.get_tensor(k).numel() > 0 for k in f.keys())
    filler.unlink()
    train(cfg, out, resume=True)
    shutil.copy(out / "model.safetensors", report.with_suffix(".safetensors"))
    report.write_text(json.dumps(r))
""")


def _namespaces_work(mnt: Path) -> bool:
    if not shutil.which("unshare"):
        return False
    probe = subprocess.run(["unshare", "-rm", "sh", "-c", 'mount -t tmpfs -o size=64k tmpfs "$0"', str(mnt)],
                           capture_output=True)
    return probe.returncode == 0


@pytest.mark.slow
def test_real_full_tmpfs_during_checkpoint(tmp_path, tiny_train_config, reference):
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    if not _namespaces_work(mnt):
        pytest.skip("cannot mount a tmpfs in a user namespace here (unshare -rm)")
    script, report = tmp_path / "child.py", tmp_path / "report.json"
    script.write_text(CHILD)
    cfg = json.dumps(tiny_train_config().to_dict())
    cmd = 'mount -t tmpfs -o size=4m tmpfs "$1" && exec "$0" "$2" "$3" "$1" "$4"'
    p = subprocess.run(["unshare", "-rm", "sh", "-c", cmd, sys.executable, str(mnt), str(script), cfg, str(report)],
                       capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert p.returncode == 0, p.stderr[-3000:]
    r = json.loads(report.read_text())
    assert r["error"] and "No space left on device" in r["error"], r
    assert r["checkpoint_step"] == 4 and r["checkpoint_tensors"] > 0, r  # the last good checkpoint survived
    assert not [f for f in r["files_after_failure"] if "tmp" in f], r
    assert "model.safetensors" not in r["files_after_failure"]
    assert same_weights(load_params(report.with_suffix(".safetensors"))[1], reference)
