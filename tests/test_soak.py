"""A tiny soak of the dashboard: scripts/soak_dashboard.py with 2 sessions for ~30 s.

The script starts its own `streamlit run` on 127.0.0.1, warms it up, drives two
concurrent Chromium sessions through pages, generation, the guessing game and a
20-step live training, then closes them and lets the server idle. Here it must show
no error anywhere, and the server's RSS must come back to within its bound of the
baseline. The full soak (30 sessions, a class, for 3 minutes) is the documented command; its
numbers go to benchmarks/results/soak_dashboard.json.
"""

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = [pytest.mark.browser, pytest.mark.slow]

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def soak(tmp_path_factory):
    if not Path("/usr/bin/chromium").is_file():
        pytest.skip("no chromium binary (/usr/bin/chromium): run scripts/setup.sh as root, or apt-get install chromium")
    pytest.importorskip("playwright.async_api", reason="Playwright's Python package is not installed")
    pytest.importorskip("psutil", reason="psutil is not installed")
    from llmcore.run import shipped_runs

    if "storyworld" not in shipped_runs():
        pytest.skip("the shipped run 'storyworld' is not installed (python scripts/build_assets.py)")
    out = tmp_path_factory.mktemp("soak") / "soak.json"
    cmd = [sys.executable, "scripts/soak_dashboard.py", "--sessions", "2", "--minutes", "0.5", "--idle", "15",
           "--train-steps", "20", "--seed", "1", "--stagger", "1", "--think-min", "2", "--think-max", "8",
           "--out", str(out)]
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=900)
    assert out.is_file(), f"the soak wrote no result (exit {proc.returncode}):\n{proc.stderr[-3000:]}"
    return json.loads(out.read_text()), proc


def test_no_error_under_concurrent_sessions(soak):
    result, proc = soak
    assert result["sessions"] == 2
    assert result["actions_per_session"]["min"] >= 2, result["sessions_detail"]  # both sessions really acted
    assert result["errors"] == 0, json.dumps(result["error_list"], indent=1)
    assert not result["server_log_problems"], result["server_log_problems"]
    lat = result["latency_s"]
    assert lat["n"] > 0 and lat["p50"] is not None
    assert result["machine"]["cpu_count"] >= 1  # machine info from benchmarks/common.py


def test_memory_returns_to_baseline(soak):
    result, _ = soak
    rss = result["rss_mb"]
    assert rss["baseline"] and rss["peak"] and rss["after"]
    assert rss["peak"] >= rss["baseline"] - result["settings"]["rss_bound_mb"]
    assert result["rss_returned"], (f"RSS after the sessions {rss['after']} MB, baseline {rss['baseline']} MB: "
                                    f"more than {result['settings']['rss_bound_mb']} MB apart")


def test_pages_ask_no_other_host(soak):
    """Everything a visitor's browser loads comes from the dashboard's own server."""
    result, proc = soak
    assert not result["offhost_requests"], (
        "the pages asked for other hosts (blocked here; a visitor's browser would fetch them): "
        f"{result['offhost_requests']}")
    assert proc.returncode == 0, proc.stdout[-2000:]
