"""Soak test: kill training with SIGKILL at random moments, resume, and demand identical weights.

A tiny run (character tokenizer, preset nano, a small storyworld text file, a checkpoint
every 2 steps) is trained once without interruption as the reference. Then the same
command runs again and again, each process killed with SIGKILL after a random delay
(4 in 5 uniform over the reference's training time, from its first logged step to its
exit, so kills land in training steps, evaluations, checkpoint writes and the final save;
1 in 5 uniform from launch, so start-up is hit too) and started again with `llmcore train --resume` whenever a checkpoint exists. When an attempt
finishes, the run directory's final weights must equal the reference's bit for bit,
its metrics.jsonl must hold the same losses, and a fresh episode starts, until N kills
have happened.

After every kill, every file the run has written must be whole: model.safetensors
and checkpoint.safetensors absent or loadable in full, tokenizer.json absent or
loadable. Temporary files a killed writer left behind (`.name.RANDOM.llmcore-tmp`) are counted:
they are garbage, not corruption, because nothing ever reads them.

    .venv/bin/python scripts/soak_kill.py                # 20 kills
    .venv/bin/python scripts/soak_kill.py --kills 3      # a quick look

Prints a summary and writes benchmarks/results/soak_kill.json. Exits 1 on any failure.
"""

from __future__ import annotations

import argparse
import json
import random
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

STEPS = 100


def train_cmd(out: Path, corpus: Path, resume: bool) -> list[str]:
    return [sys.executable, "-m", "llmcore.cli", "train", "--out", str(out), "--corpus", str(corpus),
            "--tokenizer", "char", "--preset", "nano", "--steps", str(STEPS), "--batch-size", "4",
            "--eval-every", "10", "--eval-batches", "1", "--sample-every", "20", "--checkpoint-every", "2",
            "--save-dtype", "fp32", "--warmup", "2", "--device", "cpu", "--quiet", *(["--resume"] if resume else [])]


def check_whole(out: Path) -> list[str]:
    """Problems with the files in a run directory right after a kill (empty list = all whole)."""
    from safetensors import safe_open

    from llmcore.params import load_params, read_header
    from llmcore.tokenizer import load_tokenizer

    problems = []
    model, ckpt, tok = out / "model.safetensors", out / "checkpoint.safetensors", out / "tokenizer.json"
    if model.exists():
        try:
            load_params(model)
        except Exception as e:  # noqa: BLE001 - any failure to load is the finding
            problems.append(f"model.safetensors does not load: {e}")
    if ckpt.exists():
        try:
            read_header(ckpt)
            with safe_open(str(ckpt), "pt") as f:
                meta = json.loads(f.metadata()["llmcore_checkpoint"])
                for k in f.keys():
                    f.get_tensor(k)
            if not isinstance(meta.get("step"), int):
                problems.append("checkpoint.safetensors has no step")
        except Exception as e:  # noqa: BLE001
            problems.append(f"checkpoint.safetensors does not load: {e}")
    if tok.exists():
        try:
            load_tokenizer(tok)
        except Exception as e:  # noqa: BLE001
            problems.append(f"tokenizer.json does not load: {e}")
    return problems


def weights(run: Path) -> dict:
    from llmcore.params import load_params

    return load_params(run / "model.safetensors")[1]


def losses(run: Path) -> list:
    from llmcore.run import read_jsonl

    return [(r["step"], r["loss"], r.get("val_loss")) for r in read_jsonl(run / "metrics.jsonl")]


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--kills", type=int, default=20, help="how many SIGKILLs in all (default 20)")
    p.add_argument("--seed", type=int, default=0, help="seed for the kill moments")
    p.add_argument("--workdir", help="where runs go (default: a temporary folder, removed after)")
    p.add_argument("--no-write", action="store_true", help="do not write benchmarks/results/soak_kill.json")
    a = p.parse_args(argv)
    import torch

    from llmcore.corpus import storyworld

    rng = random.Random(a.seed)
    tmp = tempfile.TemporaryDirectory(prefix="soak-kill-") if not a.workdir else None
    work = Path(a.workdir or tmp.name)
    work.mkdir(parents=True, exist_ok=True)
    corpus = work / "stories.txt"
    corpus.write_text(storyworld(seed=3, n_chars=30_000).text)

    # The reference run, watched: when does its first step land in metrics.jsonl?
    t0 = time.perf_counter()
    ref = subprocess.Popen(train_cmd(work / "ref", corpus, False), stdout=subprocess.DEVNULL,
                           stderr=subprocess.DEVNULL, cwd=ROOT)
    first_step = None
    while ref.poll() is None:
        metrics = work / "ref" / "metrics.jsonl"
        if first_step is None and metrics.exists() and metrics.stat().st_size > 0:
            first_step = time.perf_counter() - t0
        time.sleep(0.02)
    if ref.returncode != 0:
        raise SystemExit(f"the reference run failed (exit {ref.returncode})")
    ref_seconds = time.perf_counter() - t0
    first_step = first_step or 0.0
    ref_w, ref_l = weights(work / "ref"), losses(work / "ref")
    print(f"reference run: {ref_seconds:.1f} s, first step logged at {first_step:.1f} s", flush=True)

    def kill_delay() -> float:
        """Mostly while training (steps, evals, checkpoints, the final save), sometimes in start-up."""
        if rng.random() < 0.2:
            return rng.uniform(0.0, ref_seconds)
        return rng.uniform(0.9 * first_step, ref_seconds)

    kills, attempts, episodes, failures, events = 0, 0, [], [], []
    episode, episode_kills, out = 0, 0, None

    def finished(out: Path) -> bool:
        """A run is over when its weights are saved and no checkpoint is left to resume."""
        return (out / "model.safetensors").exists() and not (out / "checkpoint.safetensors").exists()

    def judge(out: Path):
        """The episode is over: it must match the uninterrupted run exactly."""
        w = weights(out)
        same_w = w.keys() == ref_w.keys() and all(torch.equal(w[k], ref_w[k]) for k in w)
        same_l = losses(out) == ref_l
        episodes.append({"episode": episode, "kills": episode_kills, "identical_weights": same_w,
                         "identical_losses": same_l, "stray_tmp_files": sorted(f.name for f in out.glob(".*tmp*"))})
        print(f"episode {episode} finished after {episode_kills} kill(s): weights "
              f"{'identical' if same_w else 'DIFFERENT'}, losses {'identical' if same_l else 'DIFFERENT'}", flush=True)
        if not same_w:
            failures.append(f"episode {episode}: final weights differ from the uninterrupted run")
        if not same_l:
            failures.append(f"episode {episode}: metrics.jsonl losses differ from the uninterrupted run")

    while not failures:
        if out is not None and finished(out):  # (also when a kill landed after the final save)
            judge(out)
            out = None
        if kills >= a.kills and out is None:
            break
        if out is None:  # a fresh episode
            episode, episode_kills = episode + 1, 0
            out = work / f"episode-{episode}"
        resume = (out / "checkpoint.safetensors").exists()
        attempts += 1
        # after the last kill, let the episode run to the end
        delay = kill_delay() if kills < a.kills else None
        proc = subprocess.Popen(train_cmd(out, corpus, resume), stdout=subprocess.DEVNULL,
                                stderr=subprocess.PIPE, cwd=ROOT)
        try:
            _, err = proc.communicate(timeout=delay)
        except subprocess.TimeoutExpired:
            proc.send_signal(signal.SIGKILL)
            proc.communicate()
            kills += 1
            episode_kills += 1
            problems = check_whole(out)
            stray = sorted(f.name for f in out.glob(".*tmp*")) if out.exists() else []
            steps = [r[0] for r in losses(out)] if out.exists() else []
            last = max(steps) if steps else None
            events.append({"kill": kills, "episode": episode, "after_s": round(delay, 3), "resumed": resume,
                           "last_logged_step": last, "problems": problems, "stray_tmp_files": stray})
            print(f"kill {kills:>3}/{a.kills}: episode {episode}, after {delay:5.1f} s, last logged step "
                  f"{'-' if last is None else last}, files {'whole' if not problems else problems}", flush=True)
            failures += [f"kill {kills}: {x}" for x in problems]
            continue
        if proc.returncode != 0:
            tail = err.decode(errors="replace").strip().splitlines()[-1:]
            failures.append(f"episode {episode}: train exited {proc.returncode}: {tail}")
            print("FAIL", failures[-1])

    stray_total = len({(e["episode"], f) for e in events for f in e["stray_tmp_files"]})
    summary = {
        "kills": kills, "attempts": attempts, "episodes": len(episodes),
        "kills_that_hit_a_problem": sum(1 for e in events if e["problems"]),
        "episodes_identical": sum(1 for e in episodes if e["identical_weights"] and e["identical_losses"]),
        "stray_tmp_files_seen": stray_total, "reference_seconds": ref_seconds,
        "reference_first_step_seconds": first_step,
        "wall_seconds": time.perf_counter() - t0, "passed": not failures,
    }
    print("\n" + "\n".join(f"{k:>28}: {v}" for k, v in summary.items()))
    for f in failures:
        print("FAIL", f)
    if not a.no_write:
        from benchmarks.common import write_result

        write_result("soak_kill", {"benchmark": "SIGKILL at random moments, then --resume", "summary": summary,
                                   "settings": {"seed": a.seed, "steps": STEPS, "checkpoint_every": 2,
                                                "command": " ".join(train_cmd(Path("OUT"), Path("CORPUS"), False))},
                                   "failures": failures, "episodes": episodes, "kill_events": events})
    if tmp:
        tmp.cleanup()
    return 0 if not failures else 1


if __name__ == "__main__":
    sys.exit(main())
