"""Train a tiny model live, in a background thread, without hurting a shared server.

A `LiveJob` runs `llmcore.train.train` with capped settings in a thread of its own,
so the page stays responsive: it polls the job (st.fragment with run_every) to draw
the progress bar and the loss curve, and the Stop button sets the job's event, which
the training loop checks after every step (`should_stop`). The result is a run
directory in a temporary folder, for this session only: it is deleted when a newer
job replaces it, when its session ends (the browser tab has been gone for GONE_SECONDS)
or sits unused for IDLE_SECONDS, when the session is garbage-collected, or when the
server exits. A reaper thread checks the sessions every REAP_EVERY seconds.
At most MAX_JOBS jobs train at once on the whole server.
"""

from __future__ import annotations

import logging
import shutil
import tempfile
import threading
import time
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
GONE_SECONDS = 120  # a closed tab's job is deleted after this (a dropped connection may come back)
IDLE_SECONDS = 30 * 60  # an open but untouched session's job is deleted after this
REAP_EVERY = 30  # seconds between the reaper's checks
_SLOTS = threading.BoundedSemaphore(MAX_JOBS)
_JOBS: weakref.WeakValueDictionary = weakref.WeakValueDictionary()  # id -> job, for the reaper
_REAPER = threading.Lock()


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
        self.status = "waiting"  # waiting -> running -> done | stopped | time_up | error
        self.error = ""
        self.run = None  # the loaded Run once done
        if not _SLOTS.acquire(blocking=False):
            self.close()
            raise UserError("another visitor's model is training right now; try again in a minute")
        self._thread = threading.Thread(target=self._work, name="llmcore-live-train", daemon=True)
        self._thread.start()

    def describe(self) -> str:
        """The job's state in words, for the progress bar: "step 75 of 300: stopped at the 60-second cap"."""
        words = {"waiting": "waiting to start", "running": "training", "done": "done",
                 "stopped": "stopped (you pressed Stop)", "time_up": f"stopped at the {MAX_SECONDS}-second cap",
                 "error": "failed", "expired": "deleted (the session sat unused)"}[self.status]
        return f"step {self.step} of {self.steps}: {words}"

    def attach(self, session_id: str | None):
        """Tie the job to a Streamlit session, so the reaper deletes it once that session is gone."""
        self.session_id, self.seen, self.gone_since = session_id, time.monotonic(), None
        _JOBS[id(self)] = self
        _start_reaper()

    def touch(self):
        """The session used its job just now (every page run calls this)."""
        self.seen = time.monotonic()

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
            if self.stop.is_set():
                self.status = "stopped"
            elif run.meta.get("provenance", {}).get("steps", self.steps) < self.steps:
                self.status = "time_up"  # train() stopped at max_seconds
            else:
                self.status = "done"
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


def _session_alive(session_id: str | None) -> bool | None:
    """Whether the Streamlit session still has a browser connected; None when unknown (AppTest)."""
    try:
        from streamlit.runtime import Runtime

        if session_id is None or not Runtime.exists():
            return None
        return Runtime.instance().is_active_session(session_id)
    except Exception:  # Streamlit's runtime changed: fall back on the idle timeout
        return None


def reap(now: float | None = None) -> int:
    """Close the jobs whose session has gone (GONE_SECONDS) or sat idle (IDLE_SECONDS); returns how many."""
    now = time.monotonic() if now is None else now
    closed = 0
    for job in list(_JOBS.values()):
        alive = _session_alive(getattr(job, "session_id", None))
        if alive is False:
            job.gone_since = job.gone_since or now
        elif alive:
            job.gone_since = None
        gone = job.gone_since is not None and now - job.gone_since >= GONE_SECONDS
        if gone or now - job.seen >= IDLE_SECONDS:
            log.info("deleting a live-training folder whose session %s", "ended" if gone else "sat idle")
            job.close()
            job.status = "expired"
            _JOBS.pop(id(job), None)
            closed += 1
    return closed


def _start_reaper():
    """One daemon thread per process that runs `reap` every REAP_EVERY seconds."""
    if not _REAPER.acquire(blocking=False):
        return

    def loop():
        while True:
            time.sleep(REAP_EVERY)
            try:
                reap()
            except Exception:
                log.exception("the live-training reaper failed")

    threading.Thread(target=loop, name="llmcore-live-reaper", daemon=True).start()
