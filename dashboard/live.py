"""Train a tiny model live, in a background thread, without hurting a shared server.

A `LiveJob` runs `llmcore.train.train` with capped settings in a thread of its own,
so the page stays responsive: it polls the job (st.fragment with run_every) to draw
the progress bar and the loss curve, and the Stop button sets the job's event, which
the training loop checks after every step (`should_stop`). The result is a run
directory in a temporary folder, for this session only: it is deleted when a newer
job replaces it, when the session is garbage-collected, or when the server exits.
At most MAX_JOBS jobs train at once on the whole server.
"""

from __future__ import annotations

import logging
import shutil
import tempfile
import threading
import weakref
from pathlib import Path

from llmcore.errors import UserError

log = logging.getLogger(__name__)

MAX_JOBS = 1  # trainings at once, server-wide: each takes a whole core
MAX_STEPS = 300
MAX_SECONDS = 60
MAX_CHARS = 200_000  # of the built-in corpus
MAX_OWN_CHARS = 100_000  # of text pasted by the learner
MIN_OWN_CHARS = 2_000  # enough for a validation split longer than one context
PRESETS = ("nano", "micro")
_SLOTS = threading.BoundedSemaphore(MAX_JOBS)


def make_config(*, preset: str, steps: int, n_chars: int, tokenizer: str, own_text: str | None, folder: Path):
    """A TrainConfig inside the caps, writing own text (if any) to a file in `folder`."""
    from llmcore.train import TrainConfig

    if preset not in PRESETS:
        raise UserError(f"choose a preset from {', '.join(PRESETS)}")
    if not isinstance(steps, int) or not 10 <= steps <= MAX_STEPS:
        raise UserError(f"steps must be between 10 and {MAX_STEPS}")
    if tokenizer not in ("char", "bpe"):
        raise UserError("the tokenizer must be 'char' or 'bpe'")
    corpus, chars = "storyworld", min(max(int(n_chars), 20_000), MAX_CHARS)
    if own_text is not None:
        own_text = own_text.strip()
        if len(own_text) < MIN_OWN_CHARS:
            raise UserError(f"paste at least {MIN_OWN_CHARS:,} characters of text to train on (got {len(own_text):,})")
        if len(own_text) > MAX_OWN_CHARS:
            raise UserError(f"paste at most {MAX_OWN_CHARS:,} characters (got {len(own_text):,})")
        path = folder / "my_text.txt"
        path.write_text(own_text, encoding="utf-8")
        corpus, chars = str(path), None
    return TrainConfig(corpus=corpus, n_chars=chars, tokenizer=tokenizer, vocab_size=512, preset=preset, steps=steps,
                       batch_size=16, warmup=min(20, steps // 5), eval_every=max(10, steps // 10), eval_batches=2,
                       sample_every=max(25, steps // 4), checkpoint_every=0, save_dtype="fp32",
                       max_seconds=MAX_SECONDS, device="cpu")


class LiveJob:
    """One capped training run in a background thread; the page reads its fields."""

    def __init__(self, **settings):
        self.dir = Path(tempfile.mkdtemp(prefix="llmcore-live-"))
        self._cleanup = weakref.finalize(self, shutil.rmtree, str(self.dir), True)
        try:
            self.cfg = make_config(folder=self.dir, **settings)
        except Exception:
            self.close()
            raise
        self.rows: list[dict] = []  # metric rows, appended by the training thread
        self.samples: dict = {}  # the latest samples
        self.steps = self.cfg.steps
        self.stop = threading.Event()
        self.status = "waiting"  # waiting -> running -> done | stopped | error
        self.error = ""
        self.run = None  # the loaded Run once done
        if not _SLOTS.acquire(blocking=False):
            self.close()
            raise UserError("another visitor's model is training right now; try again in a minute")
        self._thread = threading.Thread(target=self._work, name="llmcore-live-train", daemon=True)
        self._thread.start()

    @property
    def running(self) -> bool:
        return self.status in ("waiting", "running")

    @property
    def step(self) -> int:
        return self.rows[-1]["step"] if self.rows else 0

    def _event(self, ev):
        if ev.kind == "step":
            row = {"step": ev.step, "loss": ev.loss, "elapsed": ev.elapsed}
            if ev.val_loss is not None:
                row |= {"val_loss": ev.val_loss, "val_bpb": ev.val_bpb}
            self.rows.append(row)
        elif ev.kind == "sample":
            self.samples = dict(ev.samples)

    def _work(self):
        from llmcore.run import load_run
        from llmcore.train import train

        self.status = "running"
        try:
            out = train(self.cfg, self.dir / "run", callbacks=(self._event,), should_stop=self.stop.is_set)
            run = load_run(out)
            self.run = run
            self.status = "stopped" if self.stop.is_set() else "done"
        except UserError as e:
            self.status, self.error = "error", str(e).splitlines()[0]
        except Exception as e:  # a bug: log it whole, show one line
            log.exception("live training failed")
            self.status, self.error = "error", f"training failed ({type(e).__name__}); try smaller settings"
        finally:
            _SLOTS.release()

    def cancel(self):
        self.stop.set()

    def close(self):
        """Stop the job (if running) and delete its folder once the thread lets go."""
        if hasattr(self, "stop"):
            self.stop.set()
            if getattr(self, "_thread", None) is not None and self._thread.is_alive():
                self._thread.join(timeout=30)
        self.run = None
        self._cleanup()
