"""Soak test for the dashboard: many concurrent browser sessions against one server, on loopback.

Starts `streamlit run dashboard/streamlit_app.py` on 127.0.0.1 (the shipped config in
.streamlit/config.toml) and warms it up with one visitor who opens every page and does
every kind of action once, a 10-step live training included, so that what a server builds
once (imports, the loaded model, caches) is in the baseline. Then N sessions act at once:
one headless Chromium, one browser context (one visitor, one Streamlit session) each,
each following its own seeded random mix of what a class does: open pages, generate on
Inference, play "guess the next token", step the tour, tokenize text, look at attention,
steer on Interpretability (when the run has a sparse autoencoder), compare number formats,
time the KV cache. A third of the way in, session 0 trains a capped live model on
Pre-training, switches it on in the sidebar and carries on with it, so the others are
measured with and without a training thread taking a core.

Every action is timed twice, from the page's own websocket: in the browser, from the
click (or key) until the `script_finished` message of the run it caused; at the server,
from the page's `rerun_script` request to that message (the browser's own work, which
on one shared machine is most of the CPU, left out). Then the page is checked for error
elements: a traceback (`stException`), an error alert, an error dialog, a lost
connection. The server's RSS and CPU (and the browsers' CPU) are sampled all along: the
baseline after warm-up, the peak while the sessions run, and the value after every
session has closed and the server has idled (default 150 s: Streamlit keeps a closed
tab's session for 120 s).

Bounded: sessions stop starting actions at --minutes, each action times out, each session
does at most --max-actions, and the whole run has a hard deadline. All traffic stays on
127.0.0.1: the server binds there, and Chromium resolves no other host (what a page asks
of another host is counted, and fails).

    .venv/bin/python scripts/soak_dashboard.py                         # 30 sessions (a class), 3 minutes
    .venv/bin/python scripts/soak_dashboard.py --one-context           # the same as tabs of one browser context
    .venv/bin/python scripts/soak_dashboard.py --sessions 8 --minutes 2

On a 2-core machine that also runs the server, 30 separate contexts each parse Streamlit's
JavaScript themselves, and the browsers, not the server, run out of CPU: pages then time out
before they open (13 of 30 did). With --one-context the sessions are tabs of one context
that share its HTTP and code caches; each tab is still its own Streamlit session, as each
student's browser is (benchmarks/results/soak_dashboard.json is such a run).

Needs /usr/bin/chromium and Playwright (scripts/setup.sh). Prints a summary and writes
benchmarks/results/soak_dashboard.json (with the machine it ran on). Exits 1 when any
error was shown, a page asked for another host, or the server's RSS did not come back
to within --rss-bound-mb of its baseline.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import re
import statistics
import sys
import threading
import time
import urllib.parse
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.common import HOST, chromium_path, free_port, machine_info, start_server, stop_server  # noqa: E402

CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 # belt and braces for "loopback only": any other host fails to resolve
                 f"--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE {HOST}"]
BUSY = '[data-testid="stStatusWidget"], [data-testid="stSpinner"]'
ACTION_TIMEOUT = 120.0  # s: one action (a click and the script run it causes) must end by then
VIEWPORT = {"width": 1300, "height": 1000}
MB = 1024 * 1024

# page -> (sidebar link text, how its h1 starts; "=" means the h1 is exactly that)
PAGES = {
    "home": ("Home: the tour", "How a large language model works"),
    "data": ("Data", "Pre-training data"),
    "pretraining": ("Pre-training", "=Pre-training"),
    "parameters": ("Parameters", "Parameters"),
    "inference": ("Inference", "The inference engine"),
    "interpretability": ("Interpretability", "Interpretability"),
    "scale": ("Scale", "Scale"),
}
# what a session does next, with weights (a "view" opens a random page; the others open
# their page first when the session is elsewhere, which counts as a view)
MIX = {"view": 30, "generate": 14, "guess": 10, "tour_next": 6, "tokenize": 6, "steer": 8, "attention": 5,
       "replay": 4, "dtypes": 3, "kv_cache": 3}
PROMPTS = ["Once upon a time", "Mia walked to the", "The little dog", "In the morning, Tom", "The fog rolled in"]
GUESSES = ["the", "a", "she", "he", "and", "was", "to", "bridge", "dog"]
SENTENCES = ["The cat sat on the mat.", "Mia looked up at the Golden Gate Bridge.",
             "Tokens are pieces of text, often whole words.", "Ünïcödé and emoji \U0001f600 become bytes."]


def percentile(values: list[float], q: float) -> float | None:
    """The q-th percentile (0..100) of `values`, linearly interpolated; None when empty."""
    if not values:
        return None
    xs = sorted(values)
    k = (len(xs) - 1) * q / 100
    lo, hi = int(k), min(int(k) + 1, len(xs) - 1)
    return xs[lo] + (xs[hi] - xs[lo]) * (k - lo)


# --- the server and its memory ----------------------------------------------------------


class RssSampler(threading.Thread):
    """Samples the server process's RSS (with any children) every `every` s, tagged with a phase.

    It also adds up the CPU seconds of the server and of the clients (this process and
    every other process it started: Playwright's driver, Chromium and its renderers),
    to tell a slow server from slow browsers when both share the machine.
    """

    def __init__(self, pid: int, every: float = 1.0):
        super().__init__(name="rss-sampler", daemon=True)
        import psutil

        self.proc, self.every = psutil.Process(pid), every
        # (seconds since start, MB, phase, server CPU seconds so far, client CPU seconds so far)
        self.phase, self.samples = "start", []
        self.t0, self._halt = time.monotonic(), threading.Event()
        self._clients: dict[int, float] = {}  # pid -> CPU seconds last seen (kept after it exits)

    def client_cpu(self) -> float:
        import psutil

        me = psutil.Process()
        for p in [me, *me.children(recursive=True)]:
            if p.pid == self.proc.pid:
                continue
            try:
                self._clients[p.pid] = sum(p.cpu_times()[:2])
            except psutil.Error:
                pass
        return sum(self._clients.values())

    def measure(self) -> tuple[float, float]:
        """(RSS in MB, CPU seconds used) of the server and its children, now."""
        import psutil

        try:
            total, cpu = self.proc.memory_info().rss, sum(self.proc.cpu_times()[:2])
            for child in self.proc.children(recursive=True):
                total += child.memory_info().rss
        except psutil.Error:
            return float("nan"), float("nan")
        return total / MB, cpu

    def run(self):
        while not self._halt.is_set():
            mb, cpu = self.measure()
            self.samples.append((round(time.monotonic() - self.t0, 2), round(mb, 1), self.phase, round(cpu, 2),
                                 round(self.client_cpu(), 2)))
            self._halt.wait(self.every)

    def stop(self):
        self._halt.set()
        self.join(timeout=5)

    def cpu_s(self, phase: str, clients: bool = False) -> float | None:
        """CPU seconds the server (or the clients) used during one phase."""
        cpu = [row[4 if clients else 3] for row in self.samples if row[2] == phase]
        return cpu[-1] - cpu[0] if len(cpu) > 1 else None

    def of(self, phase: str, last_s: float | None = None) -> list[float]:
        """The MB samples of one phase (only those of its last `last_s` seconds, if given)."""
        rows = [(row[0], row[1]) for row in self.samples if row[2] == phase]
        if last_s is not None and rows:
            rows = [(t, mb) for t, mb in rows if t >= rows[-1][0] - last_s]
        return [mb for _t, mb in rows]


# --- one visitor ------------------------------------------------------------------------


class Runs:
    """The script runs the server reports to one page, read off its websocket.

    Streamlit sends one ForwardMsg per binary frame; a finished run is a tiny
    `script_finished` message (status 0: a full run finished, 1: compile error,
    2: stopped early for a rerun, 3: a fragment run finished). Big frames (elements,
    figures) are skipped unparsed. The page asks for a run with a `rerun_script`
    BackMsg; the time from sending it to the run's end is the server's share of an
    action's latency (the rest is the browser: input, layout, drawing charts).
    """

    def __init__(self, page):
        from streamlit.proto.BackMsg_pb2 import BackMsg
        from streamlit.proto.ForwardMsg_pb2 import ForwardMsg

        self._msg, self._back = ForwardMsg, BackMsg
        self.full: list[float] = []  # times full runs finished
        self.sent: list[float] = []  # times the page asked for a (full) run
        self.fragments = 0  # fragment runs finished (the live-training progress polls)
        self.sockets = 0  # websockets opened: more than one means the page lost its connection
        self.changed = asyncio.Event()
        page.on("websocket", self._socket)

    def _socket(self, ws):
        self.sockets += 1
        ws.on("framereceived", self._frame)
        ws.on("framesent", self._sent)

    def _sent(self, payload):
        if isinstance(payload, str) or len(payload) > 65536:
            return
        msg = self._back()
        try:
            msg.ParseFromString(payload)
        except Exception:
            return
        if msg.WhichOneof("type") == "rerun_script" and not msg.rerun_script.fragment_id:
            self.sent.append(time.monotonic())

    def server_s(self, t_start: float, t_end: float) -> float | None:
        """Seconds from the first run asked for after `t_start` to `t_end` (None if none was asked)."""
        asked = [t for t in self.sent if t_start <= t <= t_end]
        return t_end - asked[0] if asked else None

    def _frame(self, payload):
        if isinstance(payload, str) or len(payload) > 2048:
            return
        msg = self._msg()
        try:
            msg.ParseFromString(payload)
        except Exception:  # not a ForwardMsg: nothing to time
            return
        if msg.WhichOneof("type") == "script_finished":
            if msg.script_finished in (0, 1):
                self.full.append(time.monotonic())
            elif msg.script_finished == 3:
                self.fragments += 1
            self.changed.set()

    async def wait_full(self, mark: int, timeout: float) -> float:
        """The time the first full run after the `mark`-th one finished (waits for it)."""
        deadline = time.monotonic() + timeout
        while len(self.full) <= mark:
            self.changed.clear()
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"no script run finished within {timeout:.0f} s")
            try:
                await asyncio.wait_for(self.changed.wait(), left)
            except asyncio.TimeoutError:
                pass
        return self.full[mark]


class Visitor:
    """One browser context on the dashboard, doing a seeded random mix of things."""

    def __init__(self, soak: Soak, index: int, trainer: bool):
        self.soak, self.index, self.trainer = soak, index, trainer
        self.rng = random.Random(soak.seed * 1009 + index)
        self.page = self.runs = self.context = None
        self.where = None  # the page shown now
        self.can_steer = True
        self.actions = 0

    # -- plumbing --

    async def open(self):
        if self.soak.shared is not None:  # --one-context: a tab of the one shared context
            self.page = await self.soak.shared.new_page()
        else:
            self.context = await self.soak.browser.new_context(viewport=VIEWPORT)
            self.context.set_default_timeout(ACTION_TIMEOUT * 1000)  # a busy machine is slow, not broken
            self.context.set_default_navigation_timeout(ACTION_TIMEOUT * 1000)
            self.page = await self.context.new_page()
        self.page.on("request", self._request)
        self.runs = Runs(self.page)
        await self.act("open", lambda: self.page.goto(self.soak.url), page="home")
        self.where = "home"

    def _request(self, request):
        host = urllib.parse.urlsplit(request.url).hostname
        if host and host != HOST:
            self.soak.offhost.append(request.url[:200])

    async def close(self):
        if self.context is not None:
            await self.context.close()
            self.context = None
        elif self.page is not None and not self.page.is_closed():
            await self.page.close()  # a tab of the shared context: closing it ends this visitor's session

    async def quiet(self, calm: float = 0.3, timeout: float = 30.0):
        """Wait until no 'Running...' widget and no spinner has shown for `calm` s."""
        t0, since = time.monotonic(), None
        while time.monotonic() - t0 < timeout:
            if await self.page.locator(BUSY).count():
                since = None
            elif since is None:
                since = time.monotonic()
            elif time.monotonic() - since >= calm:
                return
            await asyncio.sleep(0.1)

    async def errors(self) -> list[str]:
        """Error elements on the page now: tracebacks, error alerts, error dialogs, a lost connection."""
        found = []
        p = self.page
        if n := await p.locator('[data-testid="stException"]').count():
            found.append(f"{n} traceback(s): " + (await p.locator('[data-testid="stException"]').first.inner_text())[:200])
        alerts = p.locator('[data-testid="stAlertContentError"]')
        for i in range(await alerts.count()):
            found.append("error alert: " + (await alerts.nth(i).inner_text())[:200])
        dialogs = p.locator('[role="dialog"]')
        for i in range(await dialogs.count()):
            text = await dialogs.nth(i).inner_text()
            if re.search(r"error|went wrong|bad message", text, re.I):
                found.append("error dialog: " + text[:200].replace("\n", " "))
        status = p.locator('[data-testid="stConnectionStatus"]')
        if await status.count():
            text = await status.first.inner_text()
            if re.search(r"error|offline", text, re.I):
                found.append("connection: " + text[:100])
        return found

    async def act(self, kind: str, do, *, page: str | None = None, reruns: bool = True, check=None,
                  timeout: float = ACTION_TIMEOUT) -> bool:
        """Do one interaction, time it until its script run finishes, and look for errors."""
        mark = len(self.runs.full)
        t_start = time.monotonic()
        latency = server = None
        try:
            await asyncio.wait_for(do(), timeout)
            if reruns:
                try:
                    t_end = await self.runs.wait_full(mark, timeout)
                except TimeoutError as e:  # say whether the page asked at all: browser or server?
                    asked = any(t >= t_start for t in self.runs.sent)
                    raise TimeoutError(f"{e} (the page {'asked for one' if asked else 'never asked for one'})") from None
                server = self.runs.server_s(t_start, t_end)
            else:
                t_end = time.monotonic()
            latency = t_end - t_start
            await self.quiet()
            if check is not None:
                await asyncio.wait_for(check(), 60)
            errors = await self.errors()
        except Exception as e:  # a timeout, a missing element, a closed page: an error of this action
            errors = [f"{kind}: {type(e).__name__}: {str(e).strip().splitlines()[0][:200] if str(e).strip() else ''}"]
        self.actions += 1
        self.soak.record(self, kind, page or self.where, t_start, latency, errors, server)
        return not errors

    # -- navigation and actions --

    async def view(self, name: str) -> bool:
        """Open a page from the sidebar (a client-side switch: one script run)."""
        link, title = PAGES[name]
        nav = self.page.locator('[data-testid="stSidebarNavLink"]', has_text=link).first

        async def right_title():
            while True:
                h1 = self.page.locator("h1").first
                if await h1.count():
                    text = (await h1.inner_text()).strip()
                    if (text == title[1:]) if title.startswith("=") else text.startswith(title):
                        return
                await asyncio.sleep(0.1)

        ok = await self.act("view", nav.click, page=name, check=right_title)
        self.where = name
        return ok

    async def go(self, name: str) -> bool:
        return True if self.where == name else await self.view(name)

    async def commit_text(self, label: str, text: str, kind: str, key: str = "Control+Enter"):
        """Type into a text area or input and apply it (one script run; none when it holds `text` already)."""
        box = self.page.get_by_label(label, exact=True).first
        if await box.input_value() == text:  # Streamlit reruns only for a new value
            return True

        widget = box.locator("xpath=ancestor::*[@data-testid='stTextArea' or @data-testid='stTextInput'][1]")

        async def do():
            await box.fill(text)
            # "Press Enter to apply" shows once the widget knows it holds a new value; a key
            # pressed before that (a busy browser) applies nothing
            try:
                await widget.locator('[data-testid="InputInstructions"]').first.wait_for(timeout=20_000)
            except Exception:
                pass
            await box.press(key)

        return await self.act(kind, do)

    async def click(self, kind: str, name: str, **kw) -> bool:
        button = self.page.get_by_role("button", name=name, exact=True).first
        return await self.act(kind, button.click, **kw)

    async def do_generate(self):
        await self.go("inference")
        prompt = self.rng.choice(PROMPTS)
        if self.rng.random() < 0.5:
            await self.commit_text("Prompt", prompt, "prompt")
        else:
            prompt = None

        async def text_shown():  # the generated text, starting with the prompt, is on the page
            shown = self.page.locator('[data-testid="stText"]', has_text=prompt or "")
            await shown.first.wait_for(state="visible")

        await self.click("generate", "Generate", check=text_shown)

    async def do_guess(self):
        await self.go("inference")
        await self.commit_text("Your guess (one word)", self.rng.choice(GUESSES), "guess", key="Enter")
        await self.click("reveal", "Reveal")
        if self.rng.random() < 0.3:
            await self.click("next_round", "Next round")

    async def do_steer(self):
        await self.go("interpretability")
        await self.page.get_by_role("tab", name="Steering").click()
        button = self.page.get_by_role("button", name="Generate with and without it", exact=True)
        if not await button.count():  # this run has no sparse autoencoder: nothing to steer
            self.can_steer = False
            return
        await self.act("steer", button.first.click)

    async def do_attention(self):
        await self.go("interpretability")
        await self.page.get_by_role("tab", name="Attention").click()  # (the session may be on another tab)
        await self.act("attention", self.page.get_by_text("All heads of the layer", exact=True).first.click)

    async def do_replay(self):
        await self.go("pretraining")
        thumb = self.page.locator('[data-testid="stSlider"]').first.locator('input[type="range"]')

        value, low, high = [int(float(x)) for x in (await thumb.input_value(), await thumb.get_attribute("min"),
                                                     await thumb.get_attribute("max"))]
        # a key that moves the slider (one that leaves it where it is runs nothing)
        key = self.rng.choice(["Home", "ArrowLeft"] if value >= high else ["End", "ArrowRight"] if value <= low
                              else ["Home", "ArrowLeft", "ArrowRight", "End"])

        async def do():
            await thumb.focus()
            await thumb.press(key)

        await self.act("replay", do)

    async def do_kind(self, kind: str):
        if kind == "view":
            await self.view(self.rng.choice([p for p in PAGES if p != self.where]))
        elif kind == "generate":
            await self.do_generate()
        elif kind == "guess":
            await self.do_guess()
        elif kind == "tour_next":
            await self.go("home")
            # by its key: the button's name also holds its keyboard shortcut (\u2192)
            await self.act("tour_next", self.page.locator(".st-key-tour_next button").first.click)
        elif kind == "tokenize":
            await self.go("data")
            await self.commit_text("Type or paste some text", self.rng.choice(SENTENCES), "tokenize")
        elif kind == "steer":
            await self.do_steer()
        elif kind == "attention":
            await self.do_attention()
        elif kind == "replay":
            await self.do_replay()
        elif kind == "dtypes":
            await self.go("parameters")
            await self.click("dtypes", "Compare fp32 / bf16 / fp16 / int8")
        elif kind == "kv_cache":
            await self.go("inference")
            await self.click("kv_cache", "Measure it on this machine")

    async def train(self, steps: int, track: bool = True):
        """Train a capped live model, watch it to the end, then switch it on in the sidebar.

        `track`: mark the soak's clock with the training's start and end, so the other
        sessions' actions in between are counted as "during the training".
        """
        await self.go("pretraining")
        thumb = self.page.locator('[data-testid="stSlider"]').filter(has_text="Steps").locator('input[type="range"]')
        await thumb.focus()
        await thumb.press("Home")  # 10 steps; the slider moves in tens
        for _ in range((steps - 10) // 10):
            await thumb.press("ArrowRight")
        t0 = time.monotonic()
        training = self.soak.training if track else {}
        training["started"] = t0
        polls, runs = self.runs.fragments, len(self.runs.full)
        if not await self.click("train", "Train"):
            training["ended"] = time.monotonic()
            return
        # the progress fragment polls every second until the job ends, then reruns the page
        done = self.page.locator('[data-testid="stAlertContentSuccess"], [data-testid="stAlertContentError"]')
        status = "timeout"
        from live import MAX_SECONDS

        while time.monotonic() - t0 < MAX_SECONDS + 120:
            if await done.count():
                success = self.page.locator('[data-testid="stAlertContentSuccess"]')
                status = "done" if await success.count() else "error"
                if status == "done" and (m := re.search(r"Trained: (\d+) steps", await success.first.inner_text())):
                    training["trained_steps"] = int(m.group(1))  # fewer than asked: the time cap stopped it
                break
            await asyncio.sleep(0.5)
        training.update(ended=time.monotonic(), status=status, seconds=round(time.monotonic() - t0, 1),
                        steps=steps, progress_polls=self.runs.fragments - polls)
        errors = [] if status == "done" else [f"live training ended as {status!r}"]
        toggle = self.page.locator('[data-testid="stSidebar"]').get_by_text("Use my trained model", exact=True)
        if status == "done":  # the fragment's st.rerun(): the full run after the Train one draws the sidebar toggle
            try:
                await self.runs.wait_full(runs + 1, 60)
                await self.quiet(calm=1.0)
                if not await toggle.count():
                    errors.append("the sidebar offers no 'Use my trained model' after the training")
            except TimeoutError as e:
                errors.append(f"no full run after the training: {e}")
        errors += await self.errors()
        self.soak.record(self, "train_done", "pretraining", t0, None, errors)
        if not errors:
            await self.act("use_live", toggle.first.click)

    async def warm(self, train: bool):
        """Every page and every kind of action once (and a 10-step training), so that what the
        server builds once (imports, the loaded model, caches) is in the baseline."""
        await self.open()
        for name in PAGES:
            if name != "home":
                await self.view(name)
        for kind in MIX:
            if kind != "view":
                await self.do_kind(kind)
        if train:
            await self.train(10, track=False)
            await self.do_generate()  # with the trained model switched on

    async def live(self):
        """Open the app, then act until the soak's deadline (or the action cap)."""
        await self.open()
        kinds, weights = list(MIX), list(MIX.values())
        while time.monotonic() < self.soak.deadline and self.actions < self.soak.max_actions:
            # the training starts a third of the way in, once every visitor has arrived and settled
            train_now = self.trainer and not self.soak.training and time.monotonic() >= self.soak.train_at
            kind = "train" if train_now else self.rng.choices(kinds, weights)[0]
            if kind == "steer" and not self.can_steer:
                kind = "attention"
            try:
                await (self.train(self.soak.train_steps) if kind == "train" else self.do_kind(kind))
            except Exception as e:  # an element that never came (outside a timed action): note it, go on
                if self.page.is_closed():
                    raise
                self.soak.record(self, kind, self.where, time.monotonic(), None,
                                 [f"{kind}: {type(e).__name__}: {str(e).strip().splitlines()[0][:200]}"])
                self.actions += 1
            await asyncio.sleep(self.rng.uniform(*self.soak.think))


# --- the soak ---------------------------------------------------------------------------


class Soak:
    """The shared state of one soak: the browser, the clock, the records."""

    def __init__(self, args, browser, url: str):
        self.browser, self.url, self.seed = browser, url, args.seed
        self.shared = None  # with --one-context: the context every session is a tab of
        self.max_actions, self.train_steps = args.max_actions, args.train_steps
        self.think = (args.think_min, args.think_max)
        self.rows: list[dict] = []
        self.warm_rows: list[dict] = []  # the warm-up visitor's (index -1): errors count, latencies do not
        self.offhost: list[str] = []  # URLs the pages asked for on another host (never reached)
        self.warm_seconds = 0.0
        self.per_session: list[int] = []  # actions each session did
        self.wall_s = 0.0  # from the first session's arrival to the last one's leaving
        self.sockets: list[int] = []  # websockets each session opened (1 unless it lost its connection)
        self.training: dict = {}  # the tracked live training: started, ended, status, seconds, ...
        self.start(args.minutes)

    def start(self, minutes: float):
        """Start the clock: sessions act for `minutes` from now."""
        self.t0 = time.monotonic()
        self.deadline = self.t0 + minutes * 60
        self.train_at = self.t0 + minutes * 60 / 3

    def record(self, visitor: Visitor, kind: str, page: str | None, t_start: float, latency: float | None,
               errors: list[str], server: float | None = None):
        tr = self.training
        during = bool(tr) and tr.get("started", 1e18) <= t_start <= tr.get("ended", 1e18)
        rows = self.rows if visitor.index >= 0 else self.warm_rows
        rows.append({"session": visitor.index, "kind": kind, "page": page, "t": round(t_start - self.t0, 2),
                     "latency_s": None if latency is None else round(latency, 3),
                     "server_s": None if server is None else round(server, 3), "training": during,
                     "errors": errors})
        for e in errors:
            print(f"  session {visitor.index} {kind} on {page}: {e}", file=sys.stderr)


async def drive(args, url: str, sampler: RssSampler) -> Soak:
    from playwright.async_api import async_playwright

    async with async_playwright() as p:
        browser = await p.chromium.launch(executable_path=chromium_path(), args=CHROMIUM_ARGS)
        soak = Soak(args, browser, url)
        if args.one_context:
            soak.shared = await browser.new_context(viewport=VIEWPORT)
            soak.shared.set_default_timeout(ACTION_TIMEOUT * 1000)
            soak.shared.set_default_navigation_timeout(ACTION_TIMEOUT * 1000)
        try:
            sampler.phase = "warm-up"
            warm, t_warm = Visitor(soak, -1, trainer=False), time.monotonic()
            try:
                await asyncio.wait_for(warm.warm(train=bool(args.train_steps)), 600)
            finally:
                await warm.close()
                soak.warm_seconds = time.monotonic() - t_warm
            # the baseline: the warmed-up server with no visitor, after a short rest
            sampler.phase = "rest"
            await asyncio.sleep(3)
            sampler.phase = "baseline"
            await asyncio.sleep(args.baseline_s)
            sampler.phase = "sessions"
            soak.start(args.minutes)
            trainer = 0 if args.train_steps else -1
            visitors = [Visitor(soak, i, trainer=i == trainer) for i in range(args.sessions)]

            async def one(v: Visitor):
                await asyncio.sleep(v.index * args.stagger)  # visitors arrive a little apart
                try:
                    await v.live()
                except Exception as e:  # the session's browser page died: report, do not hang the rest
                    soak.record(v, "session", v.where, time.monotonic(), None, [f"session failed: {type(e).__name__}: {e}"])
                finally:
                    await v.close()

            hard = args.minutes * 60 + args.sessions * args.stagger + ACTION_TIMEOUT * 3 + 180
            try:
                await asyncio.wait_for(asyncio.gather(*(one(v) for v in visitors)), hard)
            except asyncio.TimeoutError:
                soak.record(visitors[0], "soak", None, time.monotonic(), None, [f"hard deadline of {hard:.0f} s hit"])
                for v in visitors:
                    await v.close()
            soak.sockets = [v.runs.sockets if v.runs else 0 for v in visitors]
            soak.per_session = [v.actions for v in visitors]
            soak.wall_s = time.monotonic() - soak.t0
        finally:
            await browser.close()
    return soak


def server_problems(log_path: Path) -> list[str]:
    """Lines of the server's log that report an exception or a dropped message."""
    pattern = re.compile(r"Traceback|Error|Exception|exceeded|Uncaught", re.I)
    return [line.strip()[:300] for line in log_path.read_text(errors="replace").splitlines() if pattern.search(line)]


def summarise(soak: Soak, sampler: RssSampler, args, problems: list[str]) -> dict:
    rows = soak.rows
    lat = [r["latency_s"] for r in rows if r["latency_s"] is not None]
    srv = [r["server_s"] for r in rows if r.get("server_s") is not None]
    by_kind = {}
    for kind in sorted({r["kind"] for r in rows}):
        xs = [r["latency_s"] for r in rows if r["kind"] == kind and r["latency_s"] is not None]
        ss = [r["server_s"] for r in rows if r["kind"] == kind and r.get("server_s") is not None]
        by_kind[kind] = {"n": sum(r["kind"] == kind for r in rows),
                         "errors": sum(bool(r["errors"]) for r in rows if r["kind"] == kind),
                         "p50_s": _r(percentile(xs, 50)), "p95_s": _r(percentile(xs, 95)), "max_s": _r(max(xs, default=None)),
                         "server_p50_s": _r(percentile(ss, 50)), "server_p95_s": _r(percentile(ss, 95))}
    # starvation: the light actions (page views) while the live training ran, against the rest
    views = {flag: [r["latency_s"] for r in rows if r["kind"] == "view" and r["training"] is flag and r["latency_s"]]
             for flag in (True, False)}
    views_srv = {flag: [r["server_s"] for r in rows if r["kind"] == "view" and r["training"] is flag and r["server_s"]]
                 for flag in (True, False)}
    baseline = statistics.median(sampler.of("baseline") or [float("nan")])
    during = sampler.of("sessions")
    after = statistics.median(sampler.of("idle", last_s=5) or [float("nan")])
    peak = max(during, default=float("nan"))
    errors = [{"session": r["session"], "kind": r["kind"], "page": r["page"], "t": r["t"], "error": e}
              for r in soak.warm_rows + rows for e in r["errors"]]
    # fairness: every session's own median latency and action count
    per_session = [{"session": i, "actions": n, "websockets": soak.sockets[i] if i < len(soak.sockets) else None,
                    "p50_s": _r(percentile([r["latency_s"] for r in rows if r["session"] == i and r["latency_s"]], 50))}
                   for i, n in enumerate(soak.per_session)]
    offhost = {}
    for u in soak.offhost:
        offhost[u] = offhost.get(u, 0) + 1
    bound = max(args.rss_bound_mb, args.rss_bound_frac * baseline)
    return {
        "benchmark": "dashboard soak: concurrent browser sessions on loopback",
        "settings": {"sessions": args.sessions, "minutes": args.minutes, "seed": args.seed, "train_steps": args.train_steps,
                     "think_s": [args.think_min, args.think_max], "stagger_s": args.stagger, "one_context": args.one_context, "max_actions": args.max_actions,
                     "idle_s": args.idle, "rss_bound_mb": round(bound, 1), "chromium": chromium_path(),
                     "run": os.environ.get("LLMCORE_DASHBOARD_RUN") or "storyworld", "mix": MIX},
        "sessions": args.sessions,
        "actions": len(rows),
        "load_average": [round(x, 2) for x in os.getloadavg()],  # 1, 5, 15 min: how busy the machine was
        "actions_per_session": {"min": min(soak.per_session, default=0), "max": max(soak.per_session, default=0)},
        "sessions_detail": per_session,
        "warm_up": {"actions": len(soak.warm_rows), "seconds": _r(soak.warm_seconds, 1), "log": soak.warm_rows},
        "errors": len(errors),
        "error_list": errors[:100],
        "server_log_problems": problems[:50],
        "offhost_requests": offhost,  # url -> count: asked for by the page, never sent (Chromium resolves no other host)
        "latency_s": {"p50": _r(percentile(lat, 50)), "p95": _r(percentile(lat, 95)), "max": _r(max(lat, default=None)),
                      "n": len(lat)},
        "latency_by_kind": by_kind,
        "server_latency_s": {"p50": _r(percentile(srv, 50)), "p95": _r(percentile(srv, 95)),
                             "max": _r(max(srv, default=None)), "n": len(srv)},
        "cpu_s": {"server": _r(sampler.cpu_s("sessions"), 1), "clients": _r(sampler.cpu_s("sessions", clients=True), 1),
                  "server_idle": _r(sampler.cpu_s("idle"), 1), "wall": _r(soak.wall_s, 1),
                  "server_per_action": _r((sampler.cpu_s("sessions") or 0) / max(len(rows), 1), 3)},
        "views_during_training_s": {"n": len(views[True]), "p50": _r(percentile(views[True], 50)),
                                    "p95": _r(percentile(views[True], 95)),
                                    "server_p50": _r(percentile(views_srv[True], 50)),
                                    "server_p95": _r(percentile(views_srv[True], 95))},
        "views_otherwise_s": {"n": len(views[False]), "p50": _r(percentile(views[False], 50)),
                              "p95": _r(percentile(views[False], 95)),
                              "server_p50": _r(percentile(views_srv[False], 50)),
                              "server_p95": _r(percentile(views_srv[False], 95))},
        "training": soak.training and {k: v for k, v in soak.training.items() if k not in ("started", "ended")},
        "rss_mb": {"baseline": _r(baseline, 1), "peak": _r(peak, 1), "after": _r(after, 1),
                   "after_minus_baseline": _r(after - baseline, 1),
                   "per_session": _r((peak - baseline) / max(args.sessions, 1), 1)},
        "rss_returned": bool(after - baseline <= bound),  # (False when a number is missing: NaN compares false)
        "rss_samples": sampler.samples[:: max(1, len(sampler.samples) // 600)],
        "actions_log": rows,
    }


def _r(x, nd: int = 3):
    return None if x is None or x != x else round(x, nd)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sessions", type=int, default=30, help="concurrent browser sessions (1..40; a class is 30)")
    ap.add_argument("--minutes", type=float, default=3.0, help="how long the sessions keep acting (0.1..30)")
    ap.add_argument("--port", type=int, default=0, help="the server's port on 127.0.0.1 (0: a free one)")
    ap.add_argument("--seed", type=int, default=0, help="seed of every session's random mix")
    ap.add_argument("--train-steps", type=int, default=60,
                    help="steps of the one live training (10..300, in tens; 0: no training)")
    ap.add_argument("--max-actions", type=int, default=400, help="actions per session at most")
    ap.add_argument("--think-min", type=float, default=5.0, help="seconds a visitor pauses between actions, at least")
    ap.add_argument("--think-max", type=float, default=15.0, help="... and at most")
    ap.add_argument("--stagger", type=float, default=4.0,
                    help="seconds between two visitors' arrivals (a class of 30 arrives over two minutes)")
    ap.add_argument("--idle", type=float, default=150.0,
                    help="seconds the server idles after the sessions end (Streamlit keeps a closed tab's session 120 s)")
    ap.add_argument("--one-context", action="store_true",
                    help="every session a tab of one browser context, sharing its HTTP and code caches: each tab is "
                         "still its own Streamlit session, and the browsers parse Streamlit's JavaScript once, not "
                         "once per session (on one small machine the browsers, not the server, run out of CPU)")
    ap.add_argument("--baseline-s", type=float, default=5.0, help="seconds of baseline sampling after warm-up")
    ap.add_argument("--rss-bound-mb", type=float, default=40.0,
                    help="RSS after may exceed the baseline by this many MB (or --rss-bound-frac of it, the larger)")
    ap.add_argument("--rss-bound-frac", type=float, default=0.05)
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "soak_dashboard.json")
    a = ap.parse_args(argv)
    if not 1 <= a.sessions <= 40:
        ap.error("--sessions must be between 1 and 40")
    if not 0.1 <= a.minutes <= 30:
        ap.error("--minutes must be between 0.1 and 30")
    if a.train_steps and not (10 <= a.train_steps <= 300 and a.train_steps % 10 == 0):
        ap.error("--train-steps must be 0, or 10..300 in tens")
    if chromium_path() is None:
        print("no chromium: run scripts/setup.sh as root (Debian's chromium package)", file=sys.stderr)
        return 2
    sys.path.insert(0, str(ROOT / "dashboard"))  # live.MAX_SECONDS, for the trainer's patience

    log_path = ROOT / "test-output" / "soak_dashboard_streamlit.log"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    port = a.port or free_port()
    url = f"http://{HOST}:{port}"
    print(f"soak: {a.sessions} sessions for {a.minutes:g} min against {url} (server log: {log_path})", file=sys.stderr)
    proc, _ = start_server(log_path, port=port, die_with_parent=True)
    sampler = RssSampler(proc.pid)
    sampler.start()
    try:
        soak = asyncio.run(drive(a, url, sampler))
        sampler.phase = "idle"  # every context is closed: the server should let go
        print(f"sessions closed; idling {a.idle:g} s", file=sys.stderr)
        time.sleep(a.idle)
    finally:
        try:
            sampler.stop()
        finally:
            stop_server(proc)  # whatever happened, the server goes
    result = summarise(soak, sampler, a, server_problems(log_path))
    a.out.parent.mkdir(parents=True, exist_ok=True)
    a.out.write_text(json.dumps({"machine": machine_info(), **result}, indent=1) + "\n")
    lat, rss = result["latency_s"], result["rss_mb"]
    print(f"sessions {result['sessions']}  actions {result['actions']} "
          f"(per session {result['actions_per_session']['min']}..{result['actions_per_session']['max']})  "
          f"errors {result['errors']}  server log problems {len(result['server_log_problems'])}  "
          f"off-host requests {sum(result['offhost_requests'].values())} (blocked)")
    for u in result["offhost_requests"]:
        print(f"  the page asked for {u}")
    srv, cpu = result["server_latency_s"], result["cpu_s"]
    print(f"latency in the browser p50 {lat['p50']} s  p95 {lat['p95']} s  max {lat['max']} s;  "
          f"at the server p50 {srv['p50']} s  p95 {srv['p95']} s  max {srv['max']} s")
    print(f"CPU in {cpu['wall']} s: server {cpu['server']} s, browsers and driver {cpu['clients']} s "
          f"(load average {result['load_average']} on {os.cpu_count()} cores)")
    for kind, k in result["latency_by_kind"].items():
        print(f"  {kind:<11} n {k['n']:>4}  browser p50 {k['p50_s']} p95 {k['p95_s']} max {k['max_s']}  "
              f"server p50 {k['server_p50_s']} p95 {k['server_p95_s']}  errors {k['errors']}")
    during, other = result["views_during_training_s"], result["views_otherwise_s"]
    print(f"page views at the server p50/p95: {during['server_p50']}/{during['server_p95']} s during the live "
          f"training (n {during['n']}), {other['server_p50']}/{other['server_p95']} s otherwise (n {other['n']}); "
          f"training: {result['training']}")
    print(f"RSS baseline {rss['baseline']} MB  peak {rss['peak']} MB  after {rss['after']} MB "
          f"({rss['after_minus_baseline']:+} MB)  per session {rss['per_session']} MB")
    print(f"wrote {a.out}")
    ok = result["errors"] == 0 and not result["offhost_requests"] and result["rss_returned"]
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
