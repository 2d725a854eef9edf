"""What a host installs and runs, proved offline (docs/hosting.md).

Streamlit Community Cloud reads requirements.txt and runs the root streamlit_app.py; a school's
server builds the Dockerfile. The tests check that the requirements file names PyTorch's CPU
index and pins a CPU build inside the app's own ranges, and that no file a host would read first
overrides it; they build a clean venv from requirements.txt alone (a CPU torch, no CUDA, no
TransformerLens) and run the image's own command with it (from the same files, as a non-root
user, without a network where the machine allows), its health check and two pages. Building the
image needs a container builder, which our machines lack.
"""
import json
import os
import re
import shlex
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from importlib import metadata
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.version import Version

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10: pytest's own dependency
    import tomli as tomllib

ROOT = Path(__file__).resolve().parents[1]
CPU_INDEX = "https://download.pytorch.org/whl/cpu"
PYTHONS = ("3.10", "3.11", "3.12", "3.13")  # what Community Cloud offers and the guide promises


def requirements() -> tuple[list[str], list[str]]:
    """requirements.txt as (options, requirement lines), comments and blanks dropped."""
    lines = [ln.split(" #")[0].strip() for ln in (ROOT / "requirements.txt").read_text().splitlines()]
    lines = [ln for ln in lines if ln and not ln.startswith("#")]
    return [ln for ln in lines if ln.startswith("-")], [ln for ln in lines if not ln.startswith("-")]


def torch_pin() -> Requirement:
    reqs = [Requirement(ln) for ln in requirements()[1] if ln.startswith("torch")]
    assert len(reqs) == 1, reqs
    return reqs[0]


def pinned_version() -> Version:
    (spec,) = torch_pin().specifier
    return Version(spec.version)


def linux(python: str) -> dict:
    return {"sys_platform": "linux", "platform_system": "Linux", "platform_machine": "x86_64",
            "python_version": python, "python_full_version": python + ".0"}


def test_requirements_name_the_cpu_index_and_pin_a_cpu_torch():
    options, reqs = requirements()
    # PyTorch's CPU index added beside PyPI, never replacing it (--index-url would).
    assert options == [f"--extra-index-url {CPU_INDEX}"]
    assert reqs[-1] == ".[dashboard]"  # the app itself, from this folder, with the dashboard's extra
    pin = torch_pin()
    (spec,) = pin.specifier
    assert spec.operator == "==" and pinned_version().local == "cpu", spec  # only the CPU index has +cpu builds
    for python in PYTHONS:  # Community Cloud and the container run Linux: the pin applies on each Python
        assert pin.marker.evaluate(linux(python))
    # macOS has no +cpu wheels (its default wheel has no CUDA): there pyproject.toml's range applies.
    assert not pin.marker.evaluate({**linux("3.12"), "sys_platform": "darwin", "platform_system": "Darwin"})


def test_pinned_torch_fits_the_apps_own_ranges():
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    pinned = pinned_version()
    for python in PYTHONS:
        assert Version(python) in Requirement(f"python{pyproject['requires-python']}").specifier
    deps = [Requirement(d) for d in pyproject["dependencies"] + pyproject["optional-dependencies"]["dashboard"]]
    (torch_range,) = [d.specifier for d in deps if d.name == "torch"]
    assert torch_range.contains(pinned), (torch_range, pinned)
    # The host installs no TransformerLens (its import alone costs ~130 MB; llmcore.hooks stands in).
    assert "transformer-lens" not in {d.name for d in deps}
    # Every installed dependency that itself asks for torch (TransformerLens, in the test tools) accepts the pin.
    asked = 0
    for dep in deps + [Requirement(d) for d in pyproject["optional-dependencies"]["dev"]]:
        for line in metadata.requires(dep.name) or []:
            req = Requirement(line)
            if req.name == "torch" and (req.marker is None or req.marker.evaluate({**linux("3.12"), "extra": ""})):
                assert req.specifier.contains(pinned, prereleases=True), (dep.name, line)
                asked += 1
    assert asked >= 1  # transformer-lens (a test tool) names torch


def test_the_pinned_build_is_this_machines_torch_and_pulls_no_cuda():
    """The pinned build is the one every test here runs on; its own metadata names no CUDA package."""
    installed = Version(metadata.version("torch"))
    if installed != pinned_version():
        pytest.skip(f"this machine has torch {installed}, the host pin is {pinned_version()}")
    meta = metadata.metadata("torch")
    for python in PYTHONS:
        assert Version(python) in Requirement(f"python{meta['Requires-Python']}").specifier
    for line in meta.get_all("Requires-Dist") or []:
        req = Requirement(line)
        applies = req.marker is None or req.marker.evaluate({**linux("3.12"), "extra": ""})
        assert not (applies and re.match(r"nvidia|triton|cuda", req.name)), line


def test_no_file_a_host_reads_first_overrides_requirements():
    # Community Cloud takes the first of uv.lock, Pipfile, environment.yml, requirements.txt,
    # pyproject.toml, looking beside the entry file (the repository root here).
    for name in ("uv.lock", "Pipfile", "Pipfile.lock", "environment.yml", "environment.yaml"):
        assert not (ROOT / name).exists(), f"{name} would be read instead of requirements.txt"
    shim = (ROOT / "streamlit_app.py").read_text()
    assert "dashboard" in shim and len(shim.splitlines()) <= 6
    config = tomllib.loads((ROOT / ".streamlit" / "config.toml").read_text())
    assert config["browser"]["gatherUsageStats"] is False  # honoured everywhere but Community Cloud


# --- the container --------------------------------------------------------------------------

def dockerfile() -> list[tuple[str, str]]:
    """The Dockerfile as (INSTRUCTION, arguments), continuation lines joined."""
    text = re.sub(r"\\\n\s*", " ", (ROOT / "Dockerfile").read_text())
    steps = [ln.split(None, 1) for ln in text.splitlines() if ln.strip() and not ln.lstrip().startswith("#")]
    return [(s[0].upper(), s[1].strip()) for s in steps]


def instruction(name: str) -> list[str]:
    return [args for op, args in dockerfile() if op == name]


def test_dockerfile_builds_what_the_host_builds():
    (base,) = instruction("FROM")
    assert re.fullmatch(r"python:3\.1[0-3]-slim", base), base
    runs = " ".join(instruction("RUN"))
    assert "pip install" in runs and "-r requirements.txt" in runs  # the same file Community Cloud reads
    assert "+cpu" in runs  # the build fails unless torch is the CPU build
    (user,) = instruction("USER")
    assert user not in ("root", "0") and f"useradd --create-home --uid 10001 {user}" in runs
    (health,) = instruction("HEALTHCHECK")
    assert "/_stcore/health" in health
    sources = [a.split()[:-1] for a in instruction("COPY")]
    for src in (s for group in sources for s in group):
        assert (ROOT / src).exists(), src
    ignored = {ln.strip() for ln in (ROOT / ".dockerignore").read_text().splitlines() if ln.strip()}
    assert not ignored & {s for group in sources for s in group}
    cmd = json.loads(instruction("CMD")[0])
    assert cmd[:3] == ["streamlit", "run", "streamlit_app.py"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def image_env() -> dict:
    env = {}
    for args in instruction("ENV"):
        env.update(kv.split("=", 1) for kv in shlex.split(args))
    return env


def as_the_image_runs(argv: list[str], home: Path) -> tuple[list[str], bool]:
    """argv as a non-root user (uid 65534) with no network but loopback, where this machine allows.

    Returns the command and whether it runs in a network namespace of its own."""
    if os.geteuid() != 0 or not all(shutil.which(t) for t in ("setpriv", "unshare", "ip", "nsenter")):
        return argv, False
    if subprocess.run(["unshare", "-n", "true"], capture_output=True).returncode != 0:
        return argv, False
    os.chown(home, 65534, 65534)
    drop = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", *argv]
    # unshare execs sh, which execs setpriv, which execs streamlit: one pid throughout.
    return ["unshare", "-n", "sh", "-c", "ip link set lo up && exec " + shlex.join(drop)], True


@pytest.fixture(scope="module")
def host_venv():
    """A clean venv built only from requirements.txt, as a host (or the image) builds it.

    pip reads the same file a host does; PyTorch's CPU index is unreachable here, so the +cpu
    build comes from this machine's wheel folder (pip.conf), as it comes from the index there.
    """
    folder = Path(tempfile.mkdtemp(prefix="llmcore-host-"))
    folder.chmod(0o755)  # the image's unprivileged user runs from it
    venv = folder / "venv"
    try:
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        env = {**os.environ, "PIP_RETRIES": "0", "PIP_DEFAULT_TIMEOUT": "10"}
        done = subprocess.run([str(venv / "bin" / "python"), "-m", "pip", "install", "-q", "-r", "requirements.txt"],
                              cwd=ROOT, env=env, capture_output=True, text=True, timeout=1200)
        assert done.returncode == 0, done.stderr[-3000:]
        yield venv
    finally:
        shutil.rmtree(folder, ignore_errors=True)


@pytest.mark.slow
def test_the_host_venv_has_a_cpu_torch_and_nothing_the_app_does_not_need(host_venv):
    names = subprocess.run([str(host_venv / "bin" / "python"), "-c",
                            "import importlib.metadata as m, torch; print(torch.__version__); "
                            "print(*sorted(d.metadata['Name'].lower() for d in m.distributions()))"],
                           capture_output=True, text=True, check=True).stdout.split()
    assert names[0].endswith("+cpu"), names[0]
    assert not [n for n in names[1:] if n.startswith(("nvidia", "triton", "cuda"))]  # no CUDA wheels
    assert {"llmcore", "streamlit", "torch"} <= set(names[1:])
    assert not {"transformer-lens", "transformers", "datasets"} & set(names[1:])  # the dev extra stays out


@pytest.mark.slow
def test_the_images_command_serves_as_a_non_root_user_offline(host_venv):
    """The image's files in a fresh folder, its ENV and CMD, its user kind, no network, and a
    clean venv built only from requirements.txt: healthy, and the pages run."""
    app, home = Path(tempfile.mkdtemp(prefix="llmcore-image-")), Path(tempfile.mkdtemp(prefix="llmcore-home-"))
    try:
        for args in instruction("COPY"):
            *srcs, _dest = args.split()
            for src in srcs:
                (shutil.copytree if (ROOT / src).is_dir() else shutil.copy2)(ROOT / src, app / src)
        for path in [app, *app.rglob("*")]:  # root owns the image's files; its user only reads them
            path.chmod(0o755 if path.is_dir() else 0o644)
        port = free_port()
        cmd = [a.replace("8501", str(port)) for a in json.loads(instruction("CMD")[0])]
        bin_dir = str(host_venv / "bin")
        cmd[0] = str(Path(bin_dir) / cmd[0])  # the clean venv's streamlit, as the image's is on its PATH
        env = {**os.environ, **image_env(), "HOME": str(home), "PATH": bin_dir + os.pathsep + os.environ["PATH"]}
        env.pop("LLMCORE_DASHBOARD_RUN", None)  # the shipped run, as in the image
        argv, namespaced = as_the_image_runs(cmd, home)
        server = subprocess.Popen(argv, cwd=app, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)

        def inside(probe: list[str]) -> int:  # run a probe where the server's loopback is
            ns = ["nsenter", "-t", str(server.pid), "-n"] if namespaced else []
            return subprocess.run([*ns, *probe], capture_output=True, timeout=30).returncode

        (check,) = instruction("HEALTHCHECK")
        probe = [a.replace("8501", str(port)) for a in json.loads(check[check.index("CMD") + 3:].strip())]
        probe[0] = sys.executable if probe[0] == "python" else probe[0]
        ok_body = f"import urllib.request as u; assert u.urlopen('http://127.0.0.1:{port}/_stcore/health').read() == b'ok'"
        page = f"import urllib.request as u; assert b'<html' in u.urlopen('http://127.0.0.1:{port}/').read().lower()"
        try:
            deadline = time.time() + 90
            while time.time() < deadline and server.poll() is None and inside(probe) != 0:
                time.sleep(1)
            assert server.poll() is None, server.stdout.read()[-3000:]
            assert inside(probe) == 0  # the image's own HEALTHCHECK command passes
            assert inside([sys.executable, "-c", ok_body]) == 0 and inside([sys.executable, "-c", page]) == 0
            if namespaced:  # and the server runs as the unprivileged user
                assert Path(f"/proc/{server.pid}").stat().st_uid == 65534
            # The pages themselves, from the same files, user and (lack of) network: the shipped
            # model loads and generates with nothing fetched.
            script = (
                "from streamlit.testing.v1 import AppTest\n"
                "at = AppTest.from_file('streamlit_app.py', default_timeout=240)\n"
                "at.run()\n"
                "for page in ('dashboard/app_pages/model.py', 'dashboard/app_pages/inference.py'):\n"
                "    at.switch_page(page); at.run()\n"
                "    assert not at.exception and not at.error, (page, [e.value for e in [*at.exception, *at.error]])\n"
                "print('pages ok')\n"
            )
            host_python = str(host_venv / "bin" / "python")
            pages = subprocess.run(as_the_image_runs([host_python, "-c", script], home)[0], cwd=app, env=env,
                                   capture_output=True, text=True, timeout=400)
            assert pages.stdout.strip().endswith("pages ok"), pages.stderr[-3000:]
        finally:
            server.terminate()
            try:
                server.wait(timeout=20)
            except subprocess.TimeoutExpired:
                server.kill()
    finally:
        shutil.rmtree(app, ignore_errors=True)
        shutil.rmtree(home, ignore_errors=True)


def test_the_guide_shows_what_the_files_hold():
    guide = (ROOT / "docs" / "hosting.md").read_text()
    for line in requirements()[0] + requirements()[1]:  # the requirements file's lines, as the host reads them
        assert line in guide, line
    (run,) = [ln for ln in guide.splitlines() if ln.startswith("docker build")]
    assert run in (ROOT / "Dockerfile").read_text()  # the one-line command, same as the Dockerfile's header
    (port,) = instruction("EXPOSE")
    assert f"-p {port}:{port}" in run and f"--server.port={port}" in json.loads(instruction("CMD")[0])
    assert "`streamlit_app.py`" in guide and "docs/hosting.md" in (ROOT / "README.md").read_text()


# --- memory and fairness: the guide's numbers are the benchmark's ----------------------------------

FIRST_TRAINING = "+ the first training: a torch optimizer imports torch's compiler (torch._dynamo, sympy), once"


def memory_result() -> dict:
    return json.loads((ROOT / "benchmarks" / "results" / "memory.json").read_text())


def test_the_memory_benchmark_met_its_goals():
    """benchmarks/bench_memory.py's committed run: warm < 400 MB, 12 visitors and a training < 690 MB, no error."""
    m = memory_result()
    assert m["goals_met"] == {"warm": True, "class_12": True, "after_near_baseline": True, "no_errors": True}, \
        m["goals_met"]
    assert m["warm_mb"] < 400 and m["class_12"]["peak_mb"] < 690 and not m["errors"]
    # the fair queue, seen by real sessions: the first trains, the next two are told their place
    assert m["class_30"]["places_shown"][1:] == ["waiting for your turn: 1 ahead of you",
                                                 "waiting for your turn: 2 ahead of you"]
    first, second, third = m["class_30"]["training_ended"]
    assert "cancelled before it started" in third and "cancelled" not in second  # the third left, the second trained
    # once everyone has gone, memory comes back near the baseline of a server that has trained once
    # (the first training imports torch's compiler for good: docs/hosting.md), without a next visitor
    assert m["idle_mb"] <= m["class_30"]["peak_mb"] and m["after_mb"] <= m["idle_mb"] + 10
    assert m["warm_mb"] < m["trained_once_mb"] <= m["after_mb"] < m["trained_once_mb"] + 40
    assert m["idle_mb"] < m["trained_once_mb"] + 40  # the expired sessions were reaped before anyone came
    for r in m["priority"].values():  # others' generation was timed alone and beside a training that finished
        assert len(r["generate_alone_s"]) == len(r["generate_while_training_s"]) >= 3 and not r["errors"]
        assert r["training_ended"].startswith("step ") and ("done" in r["training_ended"] or "cap" in r["training_ended"])


def mb(x: float) -> str:
    return f"{round(x):,} MB"


def test_the_guide_and_architecture_quote_the_memory_benchmark():
    """Every memory and latency figure in docs/hosting.md (and the hook points' case in
    docs/architecture.md) is the committed benchmark's, rounded as printed."""
    m, guide = memory_result(), (ROOT / "docs" / "hosting.md").read_text()
    steps = {r["step"]: r for r in m["breakdown"]}
    tl, pandas = steps["not imported any more: TransformerLens"], steps["not imported any more: pandas + pyarrow (st.dataframe)"]
    med = statistics.median
    figures = [
        mb(steps["+ streamlit"]["rss_mb"]), mb(steps["+ torch"]["added_mb"]),
        mb(steps["+ the shipped run (model, tokenizer)"]["rss_mb"]), mb(pandas["added_mb"]), mb(tl["added_mb"]),
        f"{tl['seconds']:.1f} s", f"{m['cold_start_s']:.1f} s",
        mb(m["warm_mb"]), mb(m["class_12"]["peak_mb"]), mb(m["class_30"]["peak_mb"]), mb(m["idle_mb"]), mb(m["after_mb"]),
        mb(m["trained_once_mb"]), f"within {mb(m['after_mb'] - m['trained_once_mb'])} of it",
        f"compiler when it is made ({mb(steps[FIRST_TRAINING]['added_mb'])}, once)",
    ]
    for name in ("normal", "low (shipped)"):
        r = m["priority"][name]
        figures += [f"{med(r['generate_alone_s']):.1f} s", f"{med(r['generate_while_training_s']):.1f} s"]
    for figure in figures:
        assert figure in guide, figure
    architecture = (ROOT / "docs" / "architecture.md").read_text()
    assert f"{mb(tl['added_mb'])} and {tl['seconds']:.1f} s" in architecture
    assert f"569 MB to {mb(m['warm_mb'])}" in architecture
    assert f"about {mb(steps[FIRST_TRAINING]['added_mb'])}, once per process" in architecture
    assert f"torch alone adds {mb(steps['+ torch']['added_mb'])}" in architecture


def test_the_guide_quotes_the_browser_soak():
    """The classroom paragraph's figures are scripts/soak_dashboard.py's committed run (30 sessions, no error)."""
    soak = json.loads((ROOT / "benchmarks" / "results" / "soak_dashboard.json").read_text())
    guide = " ".join((ROOT / "docs" / "hosting.md").read_text().split())
    assert soak["sessions"] == 30 and soak["errors"] == 0 and soak["settings"]["one_context"]
    cpu = soak["cpu_s"]
    for figure in (f"30 browser sessions did {soak['actions']} things in {soak['settings']['minutes']:g} minutes",
                   f"with {soak['errors']} errors", f"{cpu['server_per_action']:.2f} CPU-seconds on average",
                   f"about {2 / cpu['server_per_action']:.1f} a second", f"({cpu['clients']:.0f} against {cpu['server']:.0f}",
                   f"{soak['server_latency_s']['p50']:.1f} s at the server's median"):
        assert figure in guide, figure
