"""Benchmark: how much memory the dashboard's server needs, for one visitor and for a class.

Streamlit Community Cloud's smallest instance has 690 MB, so the goals are a warm server
(every page visited once) under 400 MB and under 690 MB with 12 students visiting every
page while one of them trains, coming back near the warm figure once they leave.

    breakdown     what each import adds, in one fresh process, in the order the server meets
                  them (Streamlit, numpy, torch, plotly, mermaid, llmcore, the shipped run);
                  pandas and TransformerLens are measured as what the server no longer imports
    cold start    `streamlit run` in a fresh process until the home page's script has run
    warm          one visitor opens every page and generates once; RSS once it has gone
    trained once  then one visitor trains a live model: the first training on a server imports
                  torch's compiler (any torch optimizer does, ~70 MB, once), which every later
                  one reuses; the baseline a class comes back to
    class         12 visitors open every page at once while visitor 0 trains a live model
                  (the form's defaults: 150 steps, capped at 60 s); then 30 at once, three of
                  them pressing Train: the first trains, the other two are shown their place
                  in the line ("1 ahead of you"); the third presses Cancel, the second trains next
    after         everyone gone, the server idle past Streamlit's 120 s session lifetime (the
                  dashboard's idle clean-up reaps the expired sessions, then, with no visitor
                  left, clears the visitor caches, collects garbage and runs malloc_trim), then
                  one more visitor come and gone, and 40 s; goal: within 40 MB of "trained once"
    latency       a 60-token generation on the Inference page, alone and while one visitor trains, on a
                  server of its own, with training at the pages' priority and at the shipped lower one
                  (in the class phases it is also timed, amid everyone's tours)

The visitors are Streamlit's own protocol over a websocket (what the browser sends: a
page to run, a button pressed), not browsers: the server does the same work, and the
2-core machine is not spent drawing 30 pages (scripts/soak_dashboard.py drives real
Chromium sessions). RSS is the server's, sampled every 0.2 s. Errors (a traceback or an
error box in any page) are counted and must be 0.

    .venv/bin/python benchmarks/bench_memory.py              # ~6 minutes
    .venv/bin/python benchmarks/bench_memory.py --idle 20    # shorter "after" wait (not the documented one)

Writes benchmarks/results/memory.json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.common import start_server, stop_server, table, write_result  # noqa: E402

MB = 1024 * 1024
PAGES = ["", "data", "pretraining", "parameters", "model", "inference", "interpretability", "scale"]
GOALS = {"warm_mb": 400, "class_mb": 690, "after_above_trained_mb": 40}  # after: near the trained-once baseline

# --- what each import costs ----------------------------------------------------------------

STEPS = [  # (name, code) run in order in one process
    ("python", ""),
    ("+ streamlit", "import streamlit"),
    ("+ numpy", "import numpy"),
    ("+ torch", "import torch"),
    ("+ plotly", "import plotly.graph_objects"),
    ("+ mermaid-py", "import mermaid"),
    ("+ llmcore (every module a page imports)",
     "import llmcore.generate, llmcore.forward, llmcore.serve, llmcore.interpret.lens, llmcore.interpret.steer, "
     "llmcore.interpret.features, llmcore.viz.training, llmcore.viz.model, llmcore.viz.interpret, llmcore.params, "
     "llmcore.scale"),
    ("+ the shipped run (model, tokenizer)", "from llmcore.run import load_run; _r = load_run('storyworld')"),
    ("+ the first training: a torch optimizer imports torch's compiler (torch._dynamo, sympy), once",
     "import torch; torch.optim.AdamW(_r.model.parameters())"),
    ("not imported any more: pandas + pyarrow (st.dataframe)", "import pandas, pyarrow"),
    ("not imported any more: TransformerLens", "import transformer_lens.hook_points"),
]
PROBE = r"""
import json, sys, time
def rss():
    return int(open('/proc/self/status').read().split('VmRSS:')[1].split()[0]) / 1024
out = []
for name, code in json.loads(sys.argv[1]):
    t = time.perf_counter()
    try:
        exec(code)
    except ImportError as e:
        out.append({"step": name, "skipped": str(e)}); continue
    out.append({"step": name, "rss_mb": round(rss(), 1), "seconds": round(time.perf_counter() - t, 2)})
print(json.dumps(out))
"""


def breakdown() -> list[dict]:
    out = subprocess.run([sys.executable, "-c", PROBE, json.dumps(STEPS)], cwd=ROOT, capture_output=True, text=True,
                         check=True, env={**os.environ, "PYTHONPATH": str(ROOT)})
    rows, prev = json.loads(out.stdout), None
    for r in rows:
        if "rss_mb" in r:
            r["added_mb"] = round(r["rss_mb"] - prev, 1) if prev is not None else None
            prev = r["rss_mb"]
    return rows


# --- the server and its visitors -------------------------------------------------------------


class Sampler(threading.Thread):
    """The server's RSS every 0.2 s, tagged with the phase it was taken in."""

    def __init__(self, pid: int):
        super().__init__(daemon=True)
        import psutil

        self.proc, self.phase, self.samples, self.halt = psutil.Process(pid), "start", [], threading.Event()

    def rss(self) -> float:
        return self.proc.memory_info().rss / MB + sum(c.memory_info().rss for c in self.proc.children(True)) / MB

    def anon(self) -> float:
        """The server's resident memory less what is mapped from files (torch's code pages, which the
        kernel can drop and read again): what the process itself allocated."""
        m = self.proc.memory_info()
        return (m.rss - m.shared) / MB

    def run(self):
        while not self.halt.is_set():
            self.samples.append((self.phase, self.rss()))
            self.halt.wait(0.2)

    def peak(self, phase: str) -> float:
        return max(mb for p, mb in self.samples if p == phase)


class Visitor:
    """One browser tab, as the Streamlit protocol: run a page, press a button, read what came back."""

    def __init__(self, url: str):
        self.url, self.ws, self.errors, self.buttons, self.progress = url, None, [], {}, []

    async def open(self):
        import websockets

        self.ws = await websockets.connect(self.url.replace("http", "ws", 1) + "/_stcore/stream",
                                           subprotocols=["streamlit"], max_size=None, open_timeout=120)

    async def close(self):
        await self.ws.close()

    async def run(self, page: str, press: str | None = None, timeout: float = 300) -> float:
        """Run `page` (pressing the button labelled `press`, as last drawn) until the script finishes; seconds."""
        from streamlit.proto.BackMsg_pb2 import BackMsg
        from streamlit.proto.ForwardMsg_pb2 import ForwardMsg

        msg = BackMsg()
        msg.rerun_script.page_name = page
        if press is not None:
            widget = msg.rerun_script.widget_states.widgets.add()
            widget.id, widget.trigger_value = self.buttons[press], True
        t0 = time.perf_counter()
        await self.ws.send(msg.SerializeToString())
        self.buttons, self.progress = {}, []
        while True:
            fwd = ForwardMsg()
            fwd.ParseFromString(await asyncio.wait_for(self.ws.recv(), timeout))
            kind = fwd.WhichOneof("type")
            if kind == "script_finished" and fwd.script_finished in (0, 1):
                return time.perf_counter() - t0
            if kind != "delta" or fwd.delta.WhichOneof("type") != "new_element":
                continue
            el = fwd.delta.new_element
            what = el.WhichOneof("type")
            if what == "button":
                self.buttons[el.button.label] = el.button.id
            elif what == "progress":
                self.progress.append(el.progress.text)
            elif what == "exception":
                self.errors.append(f"{page}: traceback: {el.exception.message[:200]}")
            elif what == "alert" and el.alert.format == el.alert.ERROR:
                self.errors.append(f"{page}: error: {el.alert.body[:200]}")

    async def tour(self, pages=PAGES):
        for page in pages:
            await self.run(page)

    async def generate(self) -> float:
        """Press Generate on the Inference page (60 tokens, the page's default); seconds until drawn."""
        await self.run("inference")
        return await self.run("inference", press="Generate")

    async def train(self) -> str:
        """Press Train on the Pre-training page with the form's defaults; the progress bar's text."""
        await self.run("pretraining")
        await self.run("pretraining", press="Train")
        return self.progress[0] if self.progress else ""

    async def wait_trained(self, timeout: float = 300) -> str:
        """Rerun the Pre-training page every 2 s until the job has ended; its last progress text."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            await self.run("pretraining")
            text = self.progress[0] if self.progress else ""
            if not (text.startswith("waiting") or text.endswith(": training")):
                return text
            await asyncio.sleep(2)
        return "timeout"

    async def cancel(self) -> str:
        """Press Cancel (leave the line), or Stop if the job has started meanwhile; the progress text before and after."""
        await self.run("pretraining")
        before = self.progress[0] if self.progress else ""
        press = next((b for b in ("Cancel", "Stop") if b in self.buttons), None)
        if press:
            await self.run("pretraining", press=press)
        return f"{before} -> {press} -> {self.progress[0] if self.progress else ''}"


async def latency(url: str, n: int) -> list[float]:
    v = Visitor(url)
    await v.open()
    try:
        return [round(await v.generate(), 3) for _ in range(n)]
    finally:
        await v.close()


async def scenario(url: str, sampler: Sampler, a) -> dict:
    out: dict = {"anon": {}}  # the same moments, less file-mapped pages (Sampler.anon)
    # Cold start is measured by the caller; here the first visitor makes the server warm.
    sampler.phase = "warm_up"
    first = Visitor(url)
    await first.open()
    await first.tour()
    await first.generate()
    await first.close()
    errors = list(first.errors)
    sampler.phase = "warm"
    await asyncio.sleep(a.settle)
    out["warm_mb"] = round(sampler.rss(), 1)
    out["anon"]["warm_mb"] = round(sampler.anon(), 1)
    # The first training imports what every later one reuses (torch's optimizers import its
    # compiler): the baseline a class comes back to.
    sampler.phase = "trained_once"
    trainer = Visitor(url)
    await trainer.open()
    await trainer.train()
    out["first_training"] = await trainer.wait_trained()
    errors += trainer.errors
    await trainer.close()
    await asyncio.sleep(a.settle)
    out["trained_once_mb"] = round(sampler.rss(), 1)
    out["anon"]["trained_once_mb"] = round(sampler.anon(), 1)

    for n, trainers in ((12, 1), (30, 3)):
        phase = f"class_{n}"
        sampler.phase = phase
        visitors = [Visitor(url) for _ in range(n)]
        await asyncio.gather(*(v.open() for v in visitors))
        t0 = time.perf_counter()
        places = []
        for v in visitors[:trainers]:  # the trainers press Train first, one after the other
            places.append(await v.train())
        left = [await v.cancel() for v in visitors[2:trainers]]  # the third leaves the line; the second waits
        lat = asyncio.create_task(latency(url, a.latency_n))  # another visitor generates while a model trains
        await asyncio.gather(*(v.tour() for v in visitors))
        during = await lat
        results = [await v.wait_trained() for v in visitors[:trainers]]
        out[phase] = {"sessions": n, "trainers": trainers, "peak_mb": round(sampler.peak(phase), 1),
                      "seconds": round(time.perf_counter() - t0, 1), "places_shown": places,
                      "after_cancel": left, "training_ended": results, "generate_while_training_s": during}
        for v in visitors:
            errors += v.errors
            await v.close()
        sampler.phase = f"gap_{n}"
        await asyncio.sleep(a.settle)

    sampler.phase = "after"
    await asyncio.sleep(a.idle)
    out["idle_mb"] = round(sampler.rss(), 1)
    out["anon"]["idle_mb"] = round(sampler.anon(), 1)
    # Streamlit keeps a closed tab's session 120 s for a reconnect, and drops expired ones when it
    # next stores one: the next visitor to come and go. The dashboard then collects and trims
    # within state.IDLE_TRIM (30 s).
    nxt = Visitor(url)
    await nxt.open()
    await nxt.run("")
    await nxt.close()
    await asyncio.sleep(40)
    out["after_mb"] = round(sampler.rss(), 1)
    out["anon"]["after_mb"] = round(sampler.anon(), 1)
    out["errors"] = errors
    return out


def server_run(a) -> dict:
    import websockets  # noqa: F401  (fail early: pip install websockets, Streamlit's own dependency)

    log = ROOT / "test-output" / "bench_memory_streamlit.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    proc, url = start_server(log, poll=0.05)
    sampler = Sampler(proc.pid)
    sampler.start()
    try:
        async def cold():
            v = Visitor(url)
            await v.open()
            await v.run("")
            await v.close()
        asyncio.run(cold())
        cold_s = time.perf_counter() - t0
        result = asyncio.run(scenario(url, sampler, a))
    finally:
        sampler.halt.set()
        stop_server(proc)
    return {"cold_start_s": round(cold_s, 2), **result,
            "rss_samples": [(p, round(mb)) for p, mb in sampler.samples[::5]]}


def priority_check(a, env: dict) -> dict:
    """A second server with `env` (the training's priority knobs): 60-token generations alone, then while
    a visitor trains. Run with the knobs at 0 it is the server before training was given a low priority."""
    log = ROOT / "test-output" / "bench_memory_priority.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        proc, url = start_server(log, poll=0.05)
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k)
            else:
                os.environ[k] = v

    async def go():
        trainer = Visitor(url)
        await trainer.open()
        await trainer.tour(["", "inference", "pretraining"])
        alone = await latency(url, a.latency_n)
        await trainer.train()
        during = await latency(url, a.latency_n)
        ended = await trainer.wait_trained()
        await trainer.close()
        return {"env": env, "generate_alone_s": alone, "generate_while_training_s": during, "training_ended": ended,
                "errors": trainer.errors}

    try:
        return asyncio.run(go())
    finally:
        stop_server(proc)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--settle", type=float, default=5.0, help="seconds between phases")
    ap.add_argument("--idle", type=float, default=150.0,
                    help="seconds the server idles before 'after' (Streamlit keeps a closed tab's session 120 s)")
    ap.add_argument("--latency-n", type=int, default=3, help="generations timed per latency measurement")
    a = ap.parse_args(argv)

    rows = breakdown()
    print(table(rows, ["step", "rss_mb", "added_mb", "seconds"]))
    # Other visitors' generation while one trains, on an otherwise idle server: training at the
    # pages' own priority (the server before this change), then at the shipped one.
    priority = {"normal": priority_check(a, {"LLMCORE_LIVE_NICE": "0", "LLMCORE_LIVE_YIELD": "0"}),
                "low (shipped)": priority_check(a, {})}
    for name, r in priority.items():
        r["latency_ratio"] = round(statistics.median(r["generate_while_training_s"])
                                   / statistics.median(r["generate_alone_s"]), 2)
        print(f"training at {name} priority:", r, file=sys.stderr)
    server = server_run(a)
    c12, c30 = server["class_12"], server["class_30"]
    summary = [
        {"measure": "cold start to the first page (s)", "value": server["cold_start_s"], "goal": None},
        {"measure": "warm: every page visited once (MB)", "value": server["warm_mb"], "goal": GOALS["warm_mb"]},
        {"measure": "warm, then one visitor trained a model (MB)", "value": server["trained_once_mb"], "goal": None},
        {"measure": "12 visitors, every page, one training (peak MB)", "value": c12["peak_mb"],
         "goal": GOALS["class_mb"]},
        {"measure": "30 visitors, every page, three trainings queued (peak MB)", "value": c30["peak_mb"],
         "goal": None},
        {"measure": f"everyone gone, {a.idle:.0f} s idle (MB)", "value": server["idle_mb"], "goal": None},
        {"measure": "after: the next visitor came and went (MB)", "value": server["after_mb"],
         "goal": f"< {server['trained_once_mb'] + GOALS['after_above_trained_mb']:.0f}"},
        {"measure": "the same, less file-mapped code pages: trained once -> after (MB)",
         "value": f"{server['anon']['trained_once_mb']:.0f} -> {server['anon']['after_mb']:.0f}", "goal": None},
    ]
    for name, r in priority.items():
        summary += [{"measure": f"60-token generation alone, then while a model trains at {name} priority (s)",
                     "value": f"{statistics.median(r['generate_alone_s']):.2f} -> "
                              f"{statistics.median(r['generate_while_training_s']):.2f} ({r['latency_ratio']}x)",
                     "goal": None}]
    print(table(summary, ["measure", "value", "goal"]))
    print("places shown to the three trainers:", c30["places_shown"], file=sys.stderr)
    if server["errors"]:
        print("ERRORS:", *server["errors"][:10], sep="\n  ", file=sys.stderr)
    write_result("memory", {
        "benchmark": "dashboard server memory: imports, warm, a class of 12 and 30, after; generation latency",
        "settings": {"settle_s": a.settle, "idle_s": a.idle, "latency_n": a.latency_n,
                     "run": os.environ.get("LLMCORE_DASHBOARD_RUN") or "storyworld",
                     "malloc_arena_max": os.environ.get("MALLOC_ARENA_MAX")},
        "breakdown": rows,
        "summary": summary,
        "goals_met": {"warm": server["warm_mb"] < GOALS["warm_mb"], "class_12": c12["peak_mb"] < GOALS["class_mb"],
                      "after_near_baseline": server["after_mb"] < server["trained_once_mb"] + GOALS["after_above_trained_mb"],
                      "no_errors": not server["errors"]},
        "priority": priority,
        **server,
    })
    return 0 if not (server["errors"] or any(r["errors"] for r in priority.values())) else 1


if __name__ == "__main__":
    sys.exit(main())
