"""Pre-training: the schedule, events, the run directory, resume equality, kills, DDP."""

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from llmcore.errors import UserError
from llmcore.params import load_params
from llmcore.run import load_run
from llmcore.train import TrainConfig, lr_at, train

ROOT = Path(__file__).resolve().parents[1]


def weights(run_dir):
    return load_params(Path(run_dir) / "model.safetensors")[1]


def losses(run_dir):
    return [(r["step"], r["loss"]) for r in map(json.loads, (Path(run_dir) / "metrics.jsonl").read_text().splitlines())]


def test_schedule_warms_up_then_decays_to_min():
    cfg = TrainConfig(steps=100, warmup=10, lr=1e-3, min_lr=1e-4)
    lrs = [lr_at(s, cfg) for s in range(100)]
    assert lrs[0] == pytest.approx(1e-4) and lrs[9] == pytest.approx(1e-3)
    assert all(a >= b for a, b in zip(lrs[10:], lrs[11:]))
    assert lr_at(100, cfg) == pytest.approx(1e-4)


@pytest.mark.parametrize("bad", [dict(steps=0), dict(batch_size=-1), dict(lr=2.0), dict(min_lr=1.0),
                                 dict(batch_size=6, grad_accum=4), dict(steps=1.5)])
def test_bad_settings_are_refused(bad):
    with pytest.raises(UserError):
        TrainConfig(**bad)


def test_run_directory_events_and_learning(tmp_path, tiny_train_config):
    events = []
    out = train(tiny_train_config(steps=20, lr=1e-2), tmp_path / "run", callbacks=(events.append,))
    assert {p.name for p in out.iterdir()} >= {"model.safetensors", "tokenizer.json", "metrics.jsonl", "timeline.jsonl"}
    assert not (out / "checkpoint.safetensors").exists()
    kinds = [e.kind for e in events]
    assert kinds[0] == "start" and kinds[-1] == "done" and kinds.count("step") == 20
    rows = losses(out)
    assert rows[-1][1] < rows[0][1]  # it learns
    run = load_run(out)
    assert run.provenance["steps"] == 20 and run.provenance["val_bpb"] > 0
    timeline = run.timeline()
    assert [t["step"] for t in timeline] == [0, 6, 10, 12, 18, 20]
    assert len(timeline[-1]["embedding_2d"]["xy"]) == len(timeline[-1]["embedding_2d"]["tokens"])


def test_same_seed_same_weights(tmp_path, tiny_train_config):
    a, b = (weights(train(tiny_train_config(steps=4), tmp_path / n)) for n in "ab")
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_resume_after_a_crash_reaches_the_same_losses(tmp_path, tiny_train_config):
    cfg = tiny_train_config()
    full = train(cfg, tmp_path / "full")

    def crash(ev):
        if ev.kind == "step" and ev.step == 7:
            raise RuntimeError("power cut")

    with pytest.raises(RuntimeError):
        train(cfg, tmp_path / "cut", callbacks=(crash,))
    assert (tmp_path / "cut" / "checkpoint.safetensors").exists()
    with pytest.raises(UserError, match="--resume"):
        train(cfg, tmp_path / "cut")
    train(cfg, tmp_path / "cut", resume=True)
    assert losses(tmp_path / "cut") == losses(full)
    a, b = weights(full), weights(tmp_path / "cut")
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_resume_refuses_other_settings_and_missing_checkpoint(tmp_path, tiny_train_config):
    with pytest.raises(UserError, match="nothing to resume"):
        train(tiny_train_config(), tmp_path / "none", resume=True)


def _cli_train(out, text_file, *extra):
    return [sys.executable, "-m", "llmcore.cli", "train", "--out", str(out), "--corpus", str(text_file),
            "--tokenizer", "char", "--preset", "nano", "--steps", "40", "--batch-size", "4", "--eval-every", "10",
            "--eval-batches", "1", "--sample-every", "100", "--checkpoint-every", "2", "--save-dtype", "fp32",
            "--warmup", "2", "--quiet", *extra]


@pytest.mark.slow
def test_sigkill_at_random_moments_then_resume_gives_identical_weights(tmp_path, text_file):
    subprocess.run(_cli_train(tmp_path / "ref", text_file), check=True, capture_output=True)
    out, rng = tmp_path / "killed", random.Random(0)
    for _attempt in range(3):
        resume = ["--resume"] if (out / "checkpoint.safetensors").exists() else []
        if (out / "model.safetensors").exists():
            break
        p = subprocess.Popen(_cli_train(out, text_file, *resume), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(rng.uniform(3.0, 8.0))
        p.send_signal(signal.SIGKILL)
        p.wait()
    if not (out / "model.safetensors").exists():
        resume = ["--resume"] if (out / "checkpoint.safetensors").exists() else []
        subprocess.run(_cli_train(out, text_file, *resume), check=True, capture_output=True)
    a, b = weights(tmp_path / "ref"), weights(out)
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not list(out.glob(".*tmp*"))  # no half-written file left behind


@pytest.mark.slow
def test_data_parallel_two_processes_equal_one(tmp_path, text_file):
    """torchrun with 2 CPU processes (gloo) == one process with the same global batch."""
    args = ["--corpus", str(text_file), "--tokenizer", "char", "--preset", "nano", "--steps", "5",
            "--batch-size", "4", "--eval-every", "5", "--eval-batches", "1", "--sample-every", "100",
            "--save-dtype", "fp32", "--quiet"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
                    "-m", "llmcore.cli", "train", "--out", str(tmp_path / "ddp"), *args],
                   check=True, capture_output=True, env=env)
    subprocess.run([sys.executable, "-m", "llmcore.cli", "train", "--out", str(tmp_path / "one"), *args],
                   check=True, capture_output=True, env=env)
    a, b = weights(tmp_path / "ddp"), weights(tmp_path / "one")
    assert max((a[k] - b[k]).abs().max().item() for k in a) < 1e-5
    assert load_run(tmp_path / "ddp").provenance["world_size"] == 2
