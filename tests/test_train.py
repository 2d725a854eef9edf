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
from llmcore.train import TIMELINE_PROMPTS, TrainConfig, lr_at, prepare_data, text_prompts, train

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


def test_budget_schedule_walks_the_share_of_time_used():
    cfg = TrainConfig(steps=1000, warmup=100, lr=1e-3, min_lr=1e-4)  # warm-up: 10% of the run
    assert lr_at(0, cfg, 0.05) == pytest.approx(5e-4)  # halfway through warm-up by time
    assert lr_at(0, cfg, 0.1) == pytest.approx(1e-3)  # warm-up over by time, though at step 0
    assert lr_at(5, cfg, 0.55) == pytest.approx(5.5e-4)  # halfway down the cosine
    assert lr_at(5, cfg, 1.0) == lr_at(5, cfg, 7.0) == pytest.approx(1e-4)  # the floor, and past the budget
    assert lr_at(999, cfg, 0.0) == pytest.approx(lr_at(999, cfg))  # the step cap binds first: the step schedule


@pytest.mark.parametrize("bad", [dict(steps=0), dict(batch_size=-1), dict(lr=2.0), dict(min_lr=1.0),
                                 dict(batch_size=6, grad_accum=4), dict(steps=1.5)])
def test_bad_settings_are_refused(bad):
    with pytest.raises(UserError):
        TrainConfig(**bad)


@pytest.mark.parametrize("bad, flag", [
    (dict(save_dtype="fp8"), "--save-dtype"), (dict(preset="huge"), "--preset"), (dict(device="tpu"), "--device"),
    (dict(tokenizer="/no/such/tokenizer.json"), "--tokenizer"), (dict(corpus="/no/such/text.txt"), "--corpus"),
    (dict(steps=10, warmup=20), "--warmup")])
def test_every_field_is_checked_before_anything_runs(tmp_path, bad, flag):
    """A typo in any setting fails at once, in one line naming the flag: not after the run, when saving."""
    with pytest.raises(UserError) as e:
        train(TrainConfig(**bad), tmp_path / "run")
    assert flag in str(e.value) and "\n" not in str(e.value)
    assert not (tmp_path / "run").exists()  # nothing written, nothing to clean up


def test_default_warmup_is_a_tenth_of_a_short_run():
    assert TrainConfig().warmup == 50 and TrainConfig(steps=30).warmup == 3 and TrainConfig(steps=5).warmup == 0
    assert TrainConfig(steps=30, warmup=30).warmup == 30  # given: kept (it fits the run)


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


def _budgeted(tiny_train_config, seconds, **changes):
    """A run that only time can end: a step cap it cannot reach, rare evaluations and samples."""
    torch.optim.AdamW([torch.zeros(1, requires_grad=True)])  # the first one imports torch's compiler: seconds
    return tiny_train_config(**dict(steps=1_000_000, warmup=5, max_seconds=seconds, eval_every=100_000,
                                    sample_every=100_000, checkpoint_every=0, lr=1e-2, min_lr=1e-3) | changes)


def test_budgeted_run_ends_in_time_on_its_floor(tmp_path, tiny_train_config):
    cfg = _budgeted(tiny_train_config, 4.0)
    t = time.perf_counter()
    out = train(cfg, tmp_path / "run")
    took = time.perf_counter() - t
    assert took <= cfg.max_seconds + 1.0  # within the budget (1 s: a step slowed by the other test process)
    sched = load_run(out).provenance["schedule"]
    planned, done = sched["planned"], sched["done"]
    assert planned["by"] == "time" and planned["max_seconds"] == 4.0 and planned["steps"] == 1_000_000
    assert 0 < planned["schedule_seconds"] <= 4.0 and done["ended_by"] == "budget"
    assert done["seconds"] == pytest.approx(planned["schedule_seconds"], rel=0.15)
    assert done["final_lr"] - cfg.min_lr < 0.1 * (cfg.lr - cfg.min_lr)  # on its floor (within one step's share)
    rows = [json.loads(r) for r in (out / "metrics.jsonl").read_text().splitlines()]
    assert done["steps"] == len(rows) > 20 and max(r["lr"] for r in rows) == pytest.approx(cfg.lr, rel=0.05)
    assert rows[-1]["step"] in [t["step"] for t in load_run(out).timeline()]  # a last sample where it ended


def test_resumed_budgeted_run_continues_its_schedule(tmp_path, tiny_train_config):
    """Resume of a run on a time budget carries on at the time it had reached.

    An unbroken run cannot be matched exactly: the schedule reads the wall clock, so no
    two runs take the same learning rates. What is asserted instead: the resumed run
    restarts from the checkpoint's exact state (its first step's loss is the killed
    run's loss at that step, to the bit), its learning rate carries on down from where
    the checkpoint left it instead of warming up again, its clock starts at the
    checkpoint's seconds, and it ends on the floor having trained for the planned time.
    """
    cfg = _budgeted(tiny_train_config, 6.0, checkpoint_every=10)

    def crash(ev):
        if ev.kind == "step" and ev.step == 15:
            raise RuntimeError("power cut")

    with pytest.raises(RuntimeError):
        train(cfg, tmp_path / "cut", callbacks=(crash,))
    killed = {r["step"]: r for r in map(json.loads, (tmp_path / "cut" / "metrics.jsonl").read_text().splitlines())}
    from safetensors import safe_open

    with safe_open(str(tmp_path / "cut" / "checkpoint.safetensors"), "pt") as f:
        saved = json.loads(f.metadata()["llmcore_checkpoint"])
    assert saved["step"] == 10 and 0 < saved["schedule"]["used_seconds"] < saved["schedule"]["planned_seconds"]
    time.sleep(1.0)  # time spent dead does not count against the budget
    out = train(cfg, tmp_path / "cut", resume=True)
    rows = [json.loads(r) for r in (out / "metrics.jsonl").read_text().splitlines()]
    after = [r for r in rows if r["step"] > 10]
    assert [r["step"] for r in rows] == list(range(1, len(rows) + 1))  # steps 11-15 of the killed run were dropped
    assert after[0]["loss"] == killed[11]["loss"]  # the same weights and batch as the killed run's step 11
    assert after[0]["lr"] <= killed[10]["lr"] * 1.001  # on down the cosine, no second warm-up
    assert all(a["lr"] >= b["lr"] for a, b in zip(after, after[1:]))
    done = load_run(out).provenance["schedule"]["done"]
    assert done["final_lr"] - cfg.min_lr < 0.1 * (cfg.lr - cfg.min_lr)
    planned = load_run(out).provenance["schedule"]["planned"]["schedule_seconds"]
    assert planned == pytest.approx(saved["schedule"]["planned_seconds"], abs=1e-3)  # the same schedule
    assert done["seconds"] == pytest.approx(planned, rel=0.15)  # both parts together


def test_budgeted_resume_gives_the_losses_of_an_unbroken_run(tmp_path, tiny_train_config, monkeypatch):
    """With a clock that moves only as steps are taken, a budgeted run is repeatable, and resume matches it exactly.

    The real clock makes every budgeted run take its own learning rates (the test above).
    Here each step takes exactly 0.125 s of a fake clock, so the schedule is a function of
    the steps alone, as it is on an idle machine: a run killed at step 15 and resumed from
    its step-10 checkpoint must then take the same rates, reach the same losses and end
    with the same weights as the run that was never killed.
    """
    now = [0.0]
    monkeypatch.setattr(time, "perf_counter", lambda: now[0])

    def tick(ev):
        if ev.kind == "step":
            now[0] += 0.125  # a power of two: sums of seconds stay exact

    cfg = _budgeted(tiny_train_config, 3.75, checkpoint_every=10)  # 30 steps of 0.125 s
    whole = train(cfg, tmp_path / "whole", callbacks=(tick,))

    def crash(ev):
        if ev.kind == "step" and ev.step == 15:
            raise RuntimeError("power cut")

    with pytest.raises(RuntimeError):
        train(cfg, tmp_path / "cut", callbacks=(tick, crash))
    cut = train(cfg, tmp_path / "cut", resume=True, callbacks=(tick,))
    rows = [[json.loads(r) for r in (d / "metrics.jsonl").read_text().splitlines()] for d in (whole, cut)]
    assert [(r["step"], r["loss"], r["lr"]) for r in rows[0]] == [(r["step"], r["loss"], r["lr"]) for r in rows[1]]
    assert len(rows[0]) == 30 and rows[0][-1]["lr"] == pytest.approx(cfg.min_lr, rel=0.05)  # ended on the floor
    a, b = weights(whole), weights(cut)
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert load_run(cut).provenance["schedule"]["done"] == load_run(whole).provenance["schedule"]["done"]


def test_timeline_prompts_come_from_the_users_text(tmp_path, tiny_train_config, text_file):
    out = train(tiny_train_config(steps=2), tmp_path / "run")
    prompts = list(load_run(out).timeline()[0]["samples"])
    from llmcore.corpus import load_corpus

    assert prompts == list(text_prompts(load_corpus(str(text_file), "train").text))  # its training split's openings
    assert len(prompts) == 3 and "Mia went to the" not in prompts
    assert all(p in text_file.read_text() for p in prompts)
    assert prepare_data(TrainConfig(tokenizer="char", n_chars=5_000)).prompts == TIMELINE_PROMPTS  # the story world


def test_text_prompts_skip_headings_and_spread_through_the_text():
    text = "THE TEMPEST\n\nAct I\n1\nOn a ship at sea, a storm\nMiranda speaks to her father\nFull fathom five thy father lies\n"
    assert text_prompts(text) == ("On a ship", "Miranda speaks to", "Full fathom five")
    assert text_prompts("one two") == ("one two",)
    assert text_prompts("x" * 100_000) == ("x" * 40,)  # a text with no spaces or line breaks: a short prompt
