"""Thin helpers the dashboard's pages share: which run is shown, caches, errors, projector mode.

Models and SAEs load once per process with `st.cache_resource` (keyed by the file's
path and modification time, so a rebuilt asset is picked up) and are never mutated:
every hooked run goes through llmcore, which holds the model's lock. Data (JSON-able
results) is cached with `st.cache_data(max_entries=...)` so memory stays bounded.
All computing happens in llmcore; nothing here does more than choose and cache.
"""

from __future__ import annotations

import contextlib
import os
import threading
from pathlib import Path

import streamlit as st

from llmcore.errors import UserError

RUN_ENV = "LLMCORE_DASHBOARD_RUN"  # a run directory to show instead of the shipped "storyworld"
PROMPT_CHARS = 500  # the longest prompt a widget takes
TEXT_CHARS = 5_000  # the longest text to tokenize or inspect
PAGES: dict[str, object] = {}  # stage -> st.Page, filled by streamlit_app.py on every run
RESULTS = Path(__file__).resolve().parent.parent / "benchmarks" / "results"  # measured JSON, if benchmarks ran


def shipped_name() -> str:
    return os.environ.get(RUN_ENV) or "storyworld"


def _mtime(path: Path) -> float:
    return path.stat().st_mtime if path.exists() else 0.0


_WARM = threading.Event()


def warm_up():
    """Import torch and the model code in a background thread, once per process.

    They take seconds to import (torch, transformer-lens); the home page's first stage
    needs neither, so it appears at once while this runs, and the pages that need a
    model find it imported.
    """
    if _WARM.is_set():
        return
    _WARM.set()
    # torch imports numpy, pandas and pyarrow. plotly and Streamlit look these up in
    # sys.modules without importing them, and would find them half-initialised while the
    # thread below imports them ("partially initialized module 'numpy'"): import them here,
    # in the page's own thread, first.
    import numpy  # noqa: F401
    import pandas  # noqa: F401
    import pyarrow  # noqa: F401

    def work():
        try:
            _torch_setup()
            import llmcore.generate  # noqa: F401  (pulls in llmcore.model, transformer-lens)
        except Exception:  # the page that needs it will report the problem
            pass

    threading.Thread(target=work, name="llmcore-warm-up", daemon=True).start()


def _torch_setup():
    import torch

    # One thread per process: on a shared server, a tiny model's many small steps run ~90x
    # slower with a thread pool that fights a busy neighbour for the cores.
    torch.set_num_threads(1)


@st.cache_resource(show_spinner="Opening the model\u2026", max_entries=4)
def _load_run(path: str, mtime: float):
    from llmcore.run import load_run

    _torch_setup()
    return load_run(path)


@st.cache_resource(show_spinner=False, max_entries=4)
def _load_tokenizer(path: str, mtime: float):
    from llmcore.tokenizer import load_tokenizer

    return load_tokenizer(path)


@st.cache_resource(show_spinner="Opening the sparse autoencoder\u2026", max_entries=4)
def _load_sae(path: str, mtime: float):
    from llmcore.interpret.sae import load_sae

    try:
        return load_sae(path)
    except UserError:
        return None


def shipped_path() -> Path:
    """The folder of the pretrained run every page opens on."""
    from llmcore.run import resolve_run

    try:
        return resolve_run(shipped_name())
    except UserError:
        raise UserError(
            f"the pretrained run {shipped_name()!r} is not installed; build it with "
            "`python scripts/build_assets.py`, or set LLMCORE_DASHBOARD_RUN to a run directory"
        ) from None


def shipped_run():
    """The pretrained run (loaded once per process, never mutated)."""
    from llmcore.run import MODEL_FILE

    path = shipped_path()
    return _load_run(str(path), _mtime(path / MODEL_FILE))


def live_job():
    """This session's live-training job (dashboard/live.py), or None."""
    return st.session_state.get("live_job")


def _live_run():
    job = live_job()
    if st.session_state.get("use_live") and job is not None and job.run is not None:
        return job.run
    return None


def current_run():
    """The run the pages show: this session's own trained run if chosen, else the shipped one."""
    return _live_run() or shipped_run()


def current_tokenizer():
    """The current run's tokenizer, without loading a model (and torch) for it."""
    from llmcore.run import TOKENIZER_FILE

    live = _live_run()
    if live is not None:
        return live.tokenizer
    path = shipped_path() / TOKENIZER_FILE
    return _load_tokenizer(str(path), _mtime(path))


def sae_for(run):
    """The run's sparse autoencoder, or None when the run has none (yet)."""
    from llmcore.run import SAE_FILE

    path = run.path / SAE_FILE
    if not path.is_file():
        return None
    return _load_sae(str(run.path), _mtime(path))


def tokenizer_key(tok) -> str:
    """A cache key for data computed with a tokenizer: a hash of its vocabulary."""
    import hashlib
    import json

    return hashlib.sha256(json.dumps(tok.to_dict(), sort_keys=True).encode()).hexdigest()[:16]


def run_key(run) -> str:
    """A cache key for data computed from a run: its folder and the model file's time."""
    return f"{run.path}@{_mtime(run.params_file)}"


# --- cached data (JSON-able, bounded) ---------------------------------------------------


@st.cache_data(max_entries=8, show_spinner=False)
def corpus_stats(name: str, _tokenizer, tokenizer_key: str) -> dict:
    """Corpus.stats() of a built-in corpus's training split, counted with the run's tokenizer."""
    from llmcore.corpus import load_corpus

    return load_corpus(name, "train").stats(_tokenizer)


@st.cache_data(max_entries=8, show_spinner=False)
def corpus_head(name: str, n_chars: int = 600) -> str:
    from llmcore.corpus import load_corpus

    return load_corpus(name, "val").text[:n_chars]


@st.cache_data(max_entries=8, show_spinner=False)
def inspect_info(path: str, mtime: float) -> dict:
    from llmcore.params import inspect_file

    return inspect_file(path)


@st.cache_data(max_entries=8, show_spinner=False)
def metrics(path: str, mtime: float) -> list[dict]:
    from llmcore.run import METRICS_FILE, read_jsonl

    return read_jsonl(Path(path) / METRICS_FILE)


@st.cache_data(max_entries=8, show_spinner=False)
def timeline(path: str, mtime: float) -> list[dict]:
    from llmcore.run import TIMELINE_FILE, read_jsonl

    return read_jsonl(Path(path) / TIMELINE_FILE)


def run_metrics(run) -> list[dict]:
    from llmcore.run import METRICS_FILE

    return metrics(str(run.path), _mtime(run.path / METRICS_FILE))


def run_timeline(run) -> list[dict]:
    from llmcore.run import TIMELINE_FILE

    return timeline(str(run.path), _mtime(run.path / TIMELINE_FILE))


def run_info(run) -> dict:
    return inspect_info(str(run.params_file), _mtime(run.params_file))


# --- page furniture ---------------------------------------------------------------------


def projector() -> bool:
    """Projector mode (large type, high contrast), from the sidebar toggle."""
    return bool(st.session_state.get("projector", False))


def chart(fig, key: str | None = None):
    """Show a plotly figure with llmcore's theme (Streamlit's own theme would replace it)."""
    st.plotly_chart(fig, theme=None, key=key, config={"displaylogo": False})


@contextlib.contextmanager
def guard():
    """Show bad input as a one-line st.error, and carry on with the rest of the page."""
    try:
        yield
    except UserError as e:
        st.error(str(e).splitlines()[0] if str(e) else "that input cannot be used", icon="\u26a0\ufe0f")


def page_link(stage: str, label: str | None = None):
    """A link to the page that teaches `stage` (mermaid links do not work in st.mermaid_chart)."""
    page = PAGES.get(stage)
    if page is not None:
        st.page_link(page, label=label)


PROJECTOR_CSS = """
<style>
html, body, [data-testid="stAppViewContainer"] { font-size: 22px !important; color: #000 !important; }
[data-testid="stMarkdownContainer"] p, [data-testid="stMarkdownContainer"] li { font-size: 1.25rem !important; }
h1 { font-size: 3rem !important; } h2 { font-size: 2.4rem !important; } h3 { font-size: 1.9rem !important; }
.llmcore-token { font-size: 1.3rem !important; }
[data-testid="stMetricValue"] [data-testid="stMarkdownContainer"] p { font-size: 2.4rem !important; }
[data-testid="stTextInput"] input, [data-testid="stTextArea"] textarea, [data-testid="stSelectbox"] input,
[data-testid="stNumberInput"] input { font-size: 1.25rem !important; }
[data-testid="stAppViewContainer"] { background: #ffffff !important; }
</style>
"""


@st.cache_data(max_entries=64, show_spinner=False)
def generation(_run, key: str, prompt: str, temperature: float, top_k: int, top_p: float, max_new_tokens: int,
               seed: int) -> list:
    """The `llmcore.generate.Step`s of one generation (cached: same settings, same text)."""
    from llmcore.generate import Sampling, steps

    s = Sampling(temperature=temperature, top_k=top_k, top_p=top_p, max_new_tokens=max_new_tokens, seed=seed)
    return list(steps(_run.model, _run.tokenizer, prompt, s))


@st.cache_data(max_entries=32, show_spinner=False)
def feature_text(_run, _sae, key: str, text: str, feature: int) -> tuple[list, list[float]]:
    """Token pieces of `text` and one SAE feature's activation on each, scaled to [0, 1]."""
    from llmcore.interpret.features import encode_text

    enc = encode_text(_run, _sae, text)
    acts = enc.acts[:, feature]
    top = float(acts.max()) or 1.0
    pieces = [(_run.tokenizer.token_str(i), i) for i in enc.tokens.ids]
    return pieces, [max(0.0, float(a) / top) for a in acts]


@st.cache_data(max_entries=64, show_spinner=False)
def guess_round(_tokenizer, tokenizer_key: str, text: str, seed: int) -> tuple[str, str]:
    """A round of "guess the next token": (the text so far, the token that really came next).

    Cuts `text` at a token that starts a new word, with 12 to 40 tokens before it.
    """
    import random

    tokenizer = _tokenizer
    ids = tokenizer.encode(text)
    rng = random.Random(seed)
    starts = [i for i in range(12, len(ids)) if tokenizer.token_str(ids[i])[:1] == " "
              and tokenizer.token_str(ids[i])[1:2].isalpha()] or list(range(1, len(ids)))
    if not starts:
        raise UserError("the text is too short for the game")
    i = rng.choice(starts)
    before = ids[max(0, i - rng.randint(12, 40)) : i]
    return tokenizer.decode(before), tokenizer.token_str(ids[i])


def md_escape(text: str) -> str:
    """Text a visitor or the model wrote, safe inside st.markdown (no links, images or emphasis)."""
    import re

    return re.sub(r"([\\`*_{}\[\]()#+\-.!|<>~$])", r"\\\1", text.replace("\n", " "))


@st.cache_data(max_entries=8, show_spinner=False)
def _result(path: str, mtime: float):
    import json

    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        raise UserError(f"{Path(path).name} is not valid JSON; rerun its benchmark") from None


def benchmark_result(name: str):
    """benchmarks/results/<name>.json as data, or None when that benchmark has not run here."""
    path = RESULTS / f"{name}.json"
    return _result(str(path), _mtime(path)) if path.is_file() else None
