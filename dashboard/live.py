"""Train a tiny model live, in a background thread, fairly and without hurting a shared server.

A `LiveJob` runs `llmcore.train.train` with capped settings in a thread of its own,
so the page stays responsive: it polls the job (st.fragment with run_every) to draw
the progress bar and the loss curve, and the Stop button sets the job's event, which
the training loop checks after every step (`should_stop`).

Fair under a class: at most MAX_JOBS jobs train at once on the whole server; the others
wait in one first-come, first-served `QUEUE`, each page showing its place ("2 ahead of
you"). A session holds at most one waiting or training job (pressing Train again takes
no second place), and a job whose visitor leaves (the tab gone for LEAVE_SECONDS) or
presses Cancel gives its place up. Training runs at a lower priority than the pages
(its thread's nice value is NICE, and it gives up the interpreter between steps), so
generation for everyone else stays responsive (benchmarks/results/memory.json measures it).

The result is a run directory in a temporary folder, for this session only: it is
deleted when a newer job replaces it, when its session ends (the browser tab has been
gone for GONE_SECONDS) or sits unused for IDLE_SECONDS, when the session is
garbage-collected, or when the server exits. A reaper thread checks the sessions every
REAP_EVERY seconds.
"""

from __future__ import annotations

import collections
import logging
import os
import shutil
import tempfile
import threading
import time
import weakref
from pathlib import Path

from llmcore.errors import UserError

log = logging.getLogger(__name__)

MAX_JOBS = 1  # trainings at once, server-wide: each takes a whole core
QUEUE_LIMIT = 40  # jobs waiting their turn, server-wide: a class of 30 fits
MAX_STEPS = 300
MAX_SECONDS = 60
MAX_CHARS = 200_000  # of the built-in corpus
MAX_OWN_CHARS = 100_000  # of text pasted by the learner
MIN_OWN_CHARS = 2_000  # enough for a validation split longer than one context
PRESETS = ("nano", "micro")
LEAVE_SECONDS = 10  # a waiting or training job whose tab has been gone this long is cancelled
GONE_SECONDS = 120  # a closed tab's trained model is deleted after this (a dropped connection may come back)
IDLE_SECONDS = 30 * 60  # an open but untouched session's job is deleted after this
REAP_EVERY = 5  # seconds between the reaper's checks
# Priority (a host may tune both in the environment; benchmarks/bench_memory.py compares with 0 and 0):
NICE = int(os.environ.get("LLMCORE_LIVE_NICE", "10"))  # the training thread's nice value; the pages' threads run at 0
YIELD = float(os.environ.get("LLMCORE_LIVE_YIELD", "0.5"))  # after each step, sleep this share of the step's time
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


class TrainingQueue:
    """First come, first served: at most `slots` jobs train, the rest wait in order, one per session."""

    def __init__(self, slots: int = MAX_JOBS, limit: int = QUEUE_LIMIT):
        self.slots, self.limit = slots, limit
        self.waiting: collections.deque[LiveJob] = collections.deque()
        self.running: list[LiveJob] = []
        self._lock = threading.RLock()

    def submit(self, job: LiveJob):
        """Put `job` at the back of the line (it starts at once if a slot is free)."""
        with self._lock:
            mine = [j for j in (*self.running, *self.waiting) if job.session_id is not None
                    and j.session_id == job.session_id]
            if mine:
                raise UserError("your model is already training or waiting its turn: one at a time per visitor")
            if len(self.waiting) >= self.limit:
                raise UserError(f"{self.limit} models are already waiting to train; try again in a few minutes")
            self.waiting.append(job)
            self._start_next()

    def ahead(self, job: LiveJob) -> int | None:
        """How many jobs train or wait before `job` (None once it has started or left the line)."""
        with self._lock:
            if job not in self.waiting:
                return None
            return len(self.running) + list(self.waiting).index(job)

    def cancel(self, job: LiveJob):
        """Take `job` out of the line, or stop it if it trains."""
        with self._lock:
            if job in self.waiting:
                self.waiting.remove(job)
                job.status = "cancelled"
                return
        job.stop.set()  # the training loop checks it after every step; finished() frees the slot

    def finished(self, job: LiveJob):
        with self._lock:
            if job in self.running:
                self.running.remove(job)
            self._start_next()

    def _start_next(self):
        while len(self.running) < self.slots and self.waiting:
            job = self.waiting.popleft()
            self.running.append(job)
            job._start()


class LiveJob:
    """One capped training run: waits its turn in `QUEUE`, then trains in a background thread.

    The page reads its fields (status, rows, samples, run). Construct it with the session
    it belongs to; it joins the queue at once.
    """

    def __init__(self, *, session_id: str | None = None, queue: TrainingQueue | None = None, **settings):
        self.dir = Path(tempfile.mkdtemp(prefix="llmcore-live-"))
        self._cleanup = weakref.finalize(self, shutil.rmtree, str(self.dir), True)
        self._thread = None
        self.stop = threading.Event()
        try:
            self.cfg = make_config(folder=self.dir, **settings)
        except Exception:
            self.close()
            raise
        self.rows: list[dict] = []  # metric rows, appended by the training thread
        self.samples: dict = {}  # the latest samples
        self.steps = self.cfg.steps
        self.status = "queued"  # queued -> running -> done | stopped | time_up | error; or cancelled | expired
        self.error = ""
        self.run = None  # the loaded Run once done
        self.session_id, self.seen, self.gone_since = session_id, time.monotonic(), None
        self.queue = QUEUE if queue is None else queue
        try:
            self.queue.submit(self)
        except Exception:
            self.close()
            raise
        _JOBS[id(self)] = self
        _start_reaper()

    def describe(self) -> str:
        """The job's state in words, for the progress bar: "step 75 of 300: stopped at the 60-second cap"."""
        if self.status == "queued":
            ahead = self.queue.ahead(self)
            if ahead:
                return f"waiting for your turn: {ahead} ahead of you"
            return "waiting for your turn: you are next"
        words = {"running": "training", "done": "done",
                 "stopped": "stopped (you pressed Stop)", "time_up": f"stopped at the {MAX_SECONDS}-second cap",
                 "error": "failed", "cancelled": "cancelled before it started",
                 "expired": "deleted (the session sat unused)"}[self.status]
        return f"step {self.step} of {self.steps}: {words}"

    def touch(self):
        """The session used its job just now (every page run calls this)."""
        self.seen = time.monotonic()

    @property
    def running(self) -> bool:
        """Waiting its turn or training: the session's one place in the queue is taken."""
        return self.status in ("queued", "running")

    @property
    def step(self) -> int:
        return self.rows[-1]["step"] if self.rows else 0

    def _event(self, ev):
        if ev.kind == "step":
            row = {"step": ev.step, "loss": ev.loss, "elapsed": ev.elapsed}
            if ev.val_loss is not None:
                row |= {"val_loss": ev.val_loss, "val_bpb": ev.val_bpb}
            self.rows.append(row)
            if YIELD > 0 and len(self.rows) > 1:  # give the pages the interpreter for a share of the step's time
                time.sleep(min(0.5, YIELD * max(0.0, row["elapsed"] - self.rows[-2]["elapsed"])))
        elif ev.kind == "sample":
            self.samples = dict(ev.samples)

    def _start(self):
        """Called by the queue when a slot is free."""
        self.status = "running"
        self._thread = threading.Thread(target=self._work, name="llmcore-live-train", daemon=True)
        self._thread.start()

    def _work(self):
        from llmcore.run import load_run
        from llmcore.train import train

        try:
            try:  # Linux: a nice value is per thread, so only training yields the CPU to the pages
                os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), NICE)
            except (AttributeError, OSError):
                pass
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
            self.queue.finished(self)

    def wait(self, timeout: float | None = None):
        """Block until the job has trained (or failed); for tests and scripts."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while self.status == "queued" and (deadline is None or time.monotonic() < deadline):
            time.sleep(0.05)
        if self._thread is not None:
            self._thread.join(None if deadline is None else max(0.0, deadline - time.monotonic()))

    def cancel(self):
        """Give up the place in the queue, or stop training (the Stop and Cancel buttons)."""
        if hasattr(self, "queue"):
            self.queue.cancel(self)
        self.stop.set()

    def close(self):
        """Stop the job (if queued or running) and delete its folder once the thread lets go."""
        self.cancel()
        if self._thread is not None and self._thread.is_alive():
            self._thread.join(timeout=30)
        self.run = None
        self._cleanup()


QUEUE = TrainingQueue()


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
    """Cancel the queued or training jobs whose tab has gone (LEAVE_SECONDS), and delete the folders of
    jobs whose session has gone (GONE_SECONDS) or sat idle (IDLE_SECONDS); returns how many were deleted."""
    now = time.monotonic() if now is None else now
    closed = 0
    for job in list(_JOBS.values()):
        alive = _session_alive(getattr(job, "session_id", None))
        if alive is False:
            job.gone_since = job.gone_since or now
        elif alive:
            job.gone_since = None
        gone_for = now - job.gone_since if job.gone_since is not None else 0.0
        if job.running and gone_for >= LEAVE_SECONDS:
            log.info("cancelling a live training whose visitor left")
            job.cancel()  # its place goes to the next visitor at once
        if gone_for >= GONE_SECONDS or now - job.seen >= IDLE_SECONDS:
            log.info("deleting a live-training folder whose session %s", "ended" if gone_for else "sat idle")
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
