"""Benchmark: how fast the dashboard opens, and how fast it moves between pages, in a real browser.

    cold start    `streamlit run dashboard/streamlit_app.py` in a fresh process, until the home
                  page has finished rendering in headless Chromium (title, flowchart, the first
                  stage's tokens; no "Running..." and no spinner). Goal: < 5 s on 2 cores.
    page switch   a click on a sidebar link until the new page has finished rendering, in the
                  same browser session. The first visit to a page that needs the model may wait
                  for torch to finish importing (the app imports it in the background); the
                  second pass is the warm case. Goal: < 1 s.

    .venv/bin/python benchmarks/bench_dashboard.py              # best of 3 cold starts
    .venv/bin/python benchmarks/bench_dashboard.py --repeat 1

Needs /usr/bin/chromium and Playwright (scripts/setup.sh). Writes benchmarks/results/dashboard.json
with the machine it ran on; the load average there says how busy the machine was.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.common import chromium_path, start_server, stop_server, table, write_result  # noqa: E402

BUSY = '[data-testid="stStatusWidget"], [data-testid="stSpinner"]'
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]
SWITCHES = {  # sidebar link -> how its page's title starts
    "Data": "Pre-training data", "Parameters": "Parameters", "Model": "Model\n", "Inference": "The inference engine",
    "Scale": "Scale", "Pre-training": "Pre-training\n", "Home: the tour": "How a large language model",
}
GOALS = {"cold_start_s": 5.0, "switch_s": 1.0}


def rendered(page, ready: str, t0: float, quiet: float = 0.5, timeout: float = 120.0) -> float:
    """Seconds from t0 until `ready` is visible and nothing runs (and stays so for `quiet` s)."""
    calm = None
    while time.perf_counter() - t0 < timeout:
        done = page.locator(BUSY).count() == 0 and page.locator(ready).first.is_visible()
        now = time.perf_counter()
        if not done:
            calm = None
        elif calm is None:
            calm = now
        elif now - calm >= quiet:
            return calm - t0
        page.wait_for_timeout(25)
    raise TimeoutError(f"{ready} did not finish rendering in {timeout:.0f} s")


def one_cold_start(browser, log: Path) -> dict:
    """Start a fresh server, open the home page, then switch pages twice round."""
    page = browser.new_page(viewport={"width": 1300, "height": 1000})
    t0 = time.perf_counter()
    proc = None
    try:
        proc, url = start_server(log, poll=0.05)  # returns when the server answers its health check
        server_ready = time.perf_counter() - t0
        page.goto(url)
        page.wait_for_selector("h1", timeout=120_000)
        title = time.perf_counter() - t0  # the page's title is on screen (the flowchart follows)
        first = rendered(page, '[data-testid="stMermaidChart"] img', t0)
        switches = {}
        for _lap in (1, 2):
            for link, heading in SWITCHES.items():
                t1 = time.perf_counter()
                page.locator('[data-testid="stSidebarNavLink"]', has_text=link).first.click()
                page.wait_for_function(  # the new page's script has run far enough to draw its title
                    "t => { const h = document.querySelector('h1'); return h && (h.innerText + '\\n').startsWith(t); }",
                    arg=heading, timeout=60_000)
                switches.setdefault(link, []).append(round(rendered(page, "h1", t1), 3))
        return {"server_ready_s": round(server_ready, 3), "title_visible_s": round(title, 3),
                "cold_start_s": round(first, 3), "switch_s": switches}
    finally:
        page.close()
        if proc is not None:
            stop_server(proc)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=3, help="cold starts to measure (best and median are kept)")
    a = ap.parse_args(argv)
    chromium = chromium_path()
    if not chromium:
        print("no chromium: run scripts/setup.sh as root (Debian's chromium package)", file=sys.stderr)
        return 2
    from playwright.sync_api import sync_playwright

    runs = []
    log = ROOT / "test-output" / "bench_dashboard_streamlit.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
        for i in range(a.repeat):
            runs.append(one_cold_start(browser, log))
            r = runs[-1]
            print(f"run {i + 1}: cold start {r['cold_start_s']:.2f} s (server up {r['server_ready_s']:.2f} s, "
                  f"title on screen {r['title_visible_s']:.2f} s)", file=sys.stderr)
        browser.close()

    cold = [r["cold_start_s"] for r in runs]
    first_lap = [t[0] for r in runs for t in r["switch_s"].values()]
    warm_lap = [t[1] for r in runs for t in r["switch_s"].values()]
    titles = [r["title_visible_s"] for r in runs]
    servers = [r["server_ready_s"] for r in runs]
    rows = [{"measure": "server answers (streamlit up)", "best_s": min(servers), "median_s": statistics.median(servers),
             "goal_s": None},
            {"measure": "cold start to the page's title", "best_s": min(titles), "median_s": statistics.median(titles),
             "goal_s": None},
            {"measure": "cold start to first page", "best_s": min(cold), "median_s": statistics.median(cold),
             "goal_s": GOALS["cold_start_s"]},
            {"measure": "page switch, first visit", "best_s": min(first_lap), "median_s": statistics.median(first_lap),
             "goal_s": GOALS["switch_s"]},
            {"measure": "page switch, warm", "best_s": min(warm_lap), "median_s": statistics.median(warm_lap),
             "goal_s": GOALS["switch_s"]}]
    print(table(rows, ["measure", "best_s", "median_s", "goal_s"]))
    write_result("dashboard", {
        "benchmark": "dashboard cold start and page switches in headless Chromium",
        "settings": {"repeat": a.repeat, "chromium": chromium, "switches": list(SWITCHES),
                     "run": os.environ.get("LLMCORE_DASHBOARD_RUN") or "storyworld"},
        "rows": rows,
        "goals_met": {"cold_start": statistics.median(cold) < GOALS["cold_start_s"],
                      "switch_warm": statistics.median(warm_lap) < GOALS["switch_s"]},
        "runs": runs,
    })
    return 0


if __name__ == "__main__":
    sys.exit(main())
