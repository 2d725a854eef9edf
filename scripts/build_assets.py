"""Rebuild the pretrained runs that ship in llmcore/assets/, from fixed seeds.

    .venv/bin/python scripts/build_assets.py               # the storyworld run, its SAE, then its smaller siblings
    .venv/bin/python scripts/build_assets.py --only-sizes  # only the siblings (llmcore/assets/sizes/)

Deterministic on a given machine and thread count: the same command writes the same
weights. Training takes a few CPU-minutes on 2 cores; the curve lands in the run's
metrics.jsonl and the samples in its timeline.jsonl.
"""

import argparse
import json
import logging
import shutil
import time
from pathlib import Path

import torch

from llmcore import files
from llmcore.run import ASSETS
from llmcore.train import TrainConfig, train

STORYWORLD = TrainConfig(
    corpus="storyworld", tokenizer="bpe", vocab_size=1024, preset="storyworld",
    steps=600, batch_size=32, lr=3e-3, min_lr=3e-4, warmup=30,
    eval_every=25, eval_batches=4, sample_every=50, checkpoint_every=0, seed=0, device="cpu",
)


def build_storyworld(out: Path):
    build_storyworld_like(STORYWORLD, out)


def build_storyworld_like(cfg: TrainConfig, out: Path):
    tmp = out.with_name(out.name + ".building")
    shutil.rmtree(tmp, ignore_errors=True)
    t0 = time.perf_counter()

    def progress(ev):
        if ev.kind == "step" and ev.val_loss is not None:
            logging.info("step %d  loss %.3f  val bits/byte %.3f  %.0f s", ev.step, ev.loss, ev.val_bpb, ev.elapsed)

    train(cfg, tmp, callbacks=(progress,))
    logging.info("trained in %.0f s", time.perf_counter() - t0)
    shutil.rmtree(out, ignore_errors=True)
    tmp.rename(out)


def build_sizes(out: Path):
    """The shipped run's smaller siblings (llmcore.sizes): its recipe, other shapes; then the
    training and writing speed of all three, measured back to back on this machine."""
    from llmcore import sizes

    out.mkdir(exist_ok=True)
    for preset in sizes.SMALLER:
        build_storyworld_like(sizes.sibling_config(preset), out / preset)
    write_speeds(out)


def write_speeds(out: Path):
    """Training and writing speed of the three sizes, measured back to back, to speeds.json."""
    import os
    import platform
    import subprocess
    from datetime import datetime, timezone

    from llmcore import sizes

    measured = sizes.measure_here()
    commit = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True).stdout.strip()
    speeds = {"sizes": measured, "machine": {
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"), "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(), "cpus": os.cpu_count(),
        "torch_threads": torch.get_num_threads(), "load_average": os.getloadavg(), "torch": torch.__version__,
        "commit": commit, "how": "llmcore.sizes.measure_here: best of 5 repeats, wall clock"}}
    files.atomic_write(out / sizes.SPEEDS_FILE, (json.dumps(speeds, indent=1) + "\n").encode())
    for name, s in measured.items():
        logging.info("%-10s train %8.0f tokens/s  write %6.0f tokens/s", name, s["train_tokens_per_s"],
                     s["decode_tokens_per_s"])


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--skip-train", action="store_true", help="keep the existing model, rebuild only the SAE")
    p.add_argument("--skip-sae", action="store_true", help="do not train the sparse autoencoder")
    p.add_argument("--only-sizes", action="store_true", help="rebuild only the smaller siblings (llmcore/assets/sizes/)")
    p.add_argument("--steering-only", action="store_true",
                   help="keep the model and the SAE's weights; only search the SAE's steering picks again")
    a = p.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    torch.set_num_threads(1)  # results depend on the thread count; one thread is reproducible anywhere
    files.ALLOW_PACKAGE_WRITES = True  # this script alone may write the shipped runs
    out = ASSETS / "storyworld"
    if a.only_sizes:
        build_sizes(ASSETS / "sizes")
        return
    if a.steering_only:
        from llmcore.interpret.sae import search_steering_for_run

        print(json.dumps({c: {k: v for k, v in s.items() if k != "tried"}
                          for c, s in search_steering_for_run(out).items()}, indent=2))
        return
    if not a.skip_train:
        build_storyworld(out)
    if not a.skip_sae:
        from llmcore.interpret.sae import train_sae_for_run

        train_sae_for_run(out)
    build_sizes(ASSETS / "sizes")  # the siblings follow the shipped run's recipe: rebuilt with it
    print(json.dumps(json.loads(json.dumps(__import__("llmcore.run").run.load_run(out).provenance)), indent=2))


if __name__ == "__main__":
    main()
