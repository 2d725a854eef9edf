"""Shared by every benchmark: what machine ran it, and where its JSON goes.

Benchmarks print a table and write benchmarks/results/<name>.json. Ratios are always
taken within one run (llmcore and its peer measured side by side on the same machine).
The dashboard's server helpers at the end serve bench_dashboard.py,
scripts/soak_dashboard.py and tests/test_browser.py.
"""

from __future__ import annotations

import datetime
import json
import os
import platform
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

RESULTS = Path(__file__).parent / "results"
ROOT = Path(__file__).resolve().parents[1]
HOST = "127.0.0.1"  # the dashboard listens on loopback only


def machine_info() -> dict:
    import torch

    return {
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        "load_average": os.getloadavg()[0] if hasattr(os, "getloadavg") else None,
    }


def write_result(name: str, data: dict) -> Path:
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"{name}.json"
    path.write_text(json.dumps({"machine": machine_info(), **data}, indent=2) + "\n")
    print(f"wrote {path}")
    return path


def timed(fn, *, repeat: int = 3, warmup: int = 1) -> float:
    """Best wall-clock seconds of `repeat` calls after `warmup` calls (best = least disturbed)."""
    for _ in range(warmup):
        fn()
    best = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def table(rows: list[dict], columns: list[str]) -> str:
    """A plain-text table of `rows` for the terminal."""
    cells = [[str(c) for c in columns]] + [[_fmt(r.get(c)) for c in columns] for r in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(columns))]
    return "\n".join("  ".join(v.rjust(w) for v, w in zip(row, widths)) for row in cells)


def _fmt(v) -> str:
    if isinstance(v, float):
        return f"{v:,.3g}" if abs(v) < 1000 else f"{v:,.0f}"
    return "" if v is None else str(v)


# --- the dashboard in a browser: its server, and the browser to open it with ---------------


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


def chromium_path() -> str | None:
    """Debian's chromium (scripts/setup.sh installs it), else one on PATH; None when there is none."""
    for candidate in ("/usr/bin/chromium", shutil.which("chromium"), shutil.which("chromium-browser")):
        if candidate and Path(candidate).is_file():
            return candidate
    return None


def _die_with_parent():
    """In the server's process, before exec: ask Linux for SIGTERM when its parent dies, even by SIGKILL."""
    import ctypes
    import signal

    ctypes.CDLL(None).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


def start_server(
    log_path: Path, *, port: int = 0, run_dir: str | None = None, poll: float = 0.3, die_with_parent: bool = False
) -> tuple[subprocess.Popen, str]:
    """`streamlit run dashboard/streamlit_app.py` on 127.0.0.1; returns (process, url) once it answers.

    `port` 0 picks a free one; `run_dir` is the run the dashboard opens (LLMCORE_DASHBOARD_RUN;
    None: the shipped one); `poll` is the seconds between health checks; `die_with_parent` has
    Linux stop the server when this process dies (not safe once this process has threads).
    The server's output goes to `log_path`. RuntimeError if it exits or is silent for 120 s.
    """
    port = port or free_port()
    url = f"http://{HOST}:{port}"
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    if run_dir:
        env["LLMCORE_DASHBOARD_RUN"] = run_dir
    cmd = [sys.executable, "-m", "streamlit", "run", "dashboard/streamlit_app.py"]
    cmd += ["--server.port", str(port), "--server.address", HOST]
    cmd += ["--server.headless", "true", "--browser.gatherUsageStats", "false"]
    preexec = _die_with_parent if die_with_parent and sys.platform == "linux" else None
    with open(log_path, "w") as log:  # the server keeps its own copy of the file open
        proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, preexec_fn=preexec)
    deadline = time.time() + 120
    while time.time() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"streamlit exited with {proc.returncode}: {log_path.read_text()[-2000:]}")
        try:
            with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as r:
                if r.read() == b"ok":
                    return proc, url
        except OSError:
            time.sleep(poll)
    stop_server(proc)
    raise RuntimeError(f"streamlit did not answer on {url} within 120 s")


def stop_server(proc: subprocess.Popen):
    """SIGTERM, then SIGKILL after 15 s."""
    proc.terminate()
    try:
        proc.wait(timeout=15)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
