"""Thin helpers the dashboard's pages share: which run is shown, caches, errors, projector mode.

Models and SAEs load once per process with `st.cache_resource` (keyed by the file's
path and modification time, so a rebuilt asset is picked up) and are never mutated:
every hooked run goes through llmcore, which holds the model's lock. Data (JSON-able
results) is cached with `st.cache_data(max_entries=...)` so memory stays bounded, and
results keyed by what a visitor typed (`visitor_cache`) also expire (VISITOR_TTL) and are
forgotten once the last visitor has gone. A visitor's own trained
run is keyed by its private folder, so no cache hands one visitor's model or text to another.
All computing happens in llmcore; nothing here does more than choose and cache.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import os
import threading
from pathlib import Path

import streamlit as st

from llmcore.errors import EXIT_BUG, UserError, explain

log = logging.getLogger(__name__)

RUN_ENV = "LLMCORE_DASHBOARD_RUN"  # a run directory to show instead of the shipped "storyworld"
PROMPT_CHARS = 500  # the longest prompt a widget takes
TEXT_CHARS = 5_000  # the longest text to tokenize or inspect
GENERATE_SECONDS = 30  # a generation on the Inference page stops after this (its length is capped at 200 tokens)
VISITOR_TTL = 3600  # s: cached results of what visitors typed are dropped after an hour (and past max_entries)
PAGES: dict[str, object] = {}  # stage -> st.Page, filled by streamlit_app.py on every run
RESULTS = Path(__file__).resolve().parent.parent / "benchmarks" / "results"  # measured JSON, if benchmarks ran


_VISITOR_CACHES: dict = {}  # "module.name" -> its visitor_cache function, cleared once no visitor is left


def visitor_cache(max_entries: int, show_spinner=False):
    """`st.cache_data` for results keyed by what a visitor typed: at most `max_entries`, each
    dropped after VISITOR_TTL, and all of them forgotten once the server has no visitors left
    (`_trim_while_idle`): a class's prompts and generations need not outlive the class.
    (A page defines its cached functions again on every run: one entry per name, the latest.)"""
    def wrap(fn):
        cached = st.cache_data(max_entries=max_entries, ttl=VISITOR_TTL, show_spinner=show_spinner)(fn)
        _VISITOR_CACHES[f"{fn.__module__}.{fn.__qualname__}"] = cached
        return cached
    return wrap


def shipped_name() -> str:
    return os.environ.get(RUN_ENV) or "storyworld"


def _mtime(path: Path) -> float:
    return path.stat().st_mtime if path.exists() else 0.0


_WARM = threading.Event()


def warm_up():
    """Import torch and the model code in a background thread, once per process.

    torch takes seconds to import; the home page's first stage needs no model, so it
    appears at once while this runs, and the pages that need a model find it imported.
    """
    if _WARM.is_set():
        return
    _WARM.set()
    # torch imports numpy. plotly and Streamlit look it up in sys.modules without importing
    # it, and would find it half-initialised while the thread below imports it ("partially
    # initialized module 'numpy'"): import it here, in the page's own thread, first. (pandas
    # and pyarrow, 80 MB together, are never imported: no page draws a dataframe.)
    import numpy  # noqa: F401

    def work():
        try:
            _torch_setup()
            import llmcore.generate  # noqa: F401  (pulls in llmcore.model)
        except Exception:  # the page that needs it will report the problem
            pass

    threading.Thread(target=work, name="llmcore-warm-up", daemon=True).start()


# --- memory: a hosted server lives in 690 MB (docs/hosting.md) ----------------------------

M_ARENA_MAX = -8  # glibc's mallopt parameter
_TRIMMED = [0.0]


@functools.lru_cache(maxsize=1)
def _libc():
    """glibc, opened once; None elsewhere (macOS, Windows, musl): nothing to tune there.

    By its file name: ctypes.util.find_library would fork the whole server to run ldconfig.
    """
    import ctypes

    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:
        return None
    return libc if hasattr(libc, "malloc_trim") and hasattr(libc, "mallopt") else None


def limit_malloc_arenas(n: int = 2):
    """Let at most `n` malloc arenas serve the server's threads (glibc's default is 8 per core).

    Every Streamlit session runs its script in a thread of its own, and each new thread
    would get an arena of its own, which keeps the memory its last run freed. Two arenas
    cut a warm server by ~65 MB (benchmarks/results/memory.json). MALLOC_ARENA_MAX=2 in the
    environment (the Dockerfile sets it) does the same from the first thread on; this call
    is for hosts where the environment cannot be set, such as Community Cloud.
    """
    libc = _libc()
    if libc is not None:
        libc.mallopt(M_ARENA_MAX, n)


def release_memory(every: float = 2.0):
    """Give memory that Python and torch freed back to the system (glibc's malloc_trim), at most every `every` s.

    Counting the corpora's tokens on the Data page frees 60 MB that glibc would otherwise
    keep for later; with many visitors each script run leaves such holes. The first call
    also starts a thread that does the same every IDLE_TRIM seconds, after collecting
    garbage: when a class leaves, Streamlit drops their sessions two minutes later, and
    with no page running nothing else would collect them or hand their memory back.
    """
    import time

    now = time.monotonic()
    if now - _TRIMMED[0] < every:
        return
    _TRIMMED[0] = now
    libc = _libc()
    if libc is not None:
        libc.malloc_trim(0)
    if not _TRIMMER.is_set():
        _TRIMMER.set()
        threading.Thread(target=_trim_while_idle, name="llmcore-memory", daemon=True).start()


IDLE_TRIM = 30.0
_TRIMMER = threading.Event()


def _trim_while_idle():
    import gc
    import time

    libc = _libc()
    while libc is not None:
        time.sleep(IDLE_TRIM)
        tidy()
        gc.collect()  # closed sessions hold cycles; with no allocations, nothing else would collect them
        libc.malloc_trim(0)


def tidy() -> bool:
    """Reap the sessions Streamlit kept past their two minutes; with no visitor left, clear the
    visitor caches. -> whether they were cleared."""
    if _visitors() != 0:
        return False
    for cached in list(_VISITOR_CACHES.values()):
        cached.clear()
    return True


def _visitors() -> int | None:
    """Sessions the server holds, open or kept for a reconnect (None: Streamlit's runtime is not there).

    Streamlit keeps a closed tab's session two minutes for a reconnect and drops it only when
    it next stores another, so after the last visitor the class's sessions would stay: counting
    the stored ones reaps those past their two minutes. (The session manager and its storage
    are Streamlit internals, with no public count; if they move, nothing is reaped or cleared.)
    """
    try:
        from streamlit.runtime import Runtime

        manager = Runtime.instance()._session_mgr
        with getattr(manager, "_storage_lock", contextlib.nullcontext()):  # Streamlit's own lock for it
            stored = len(manager._session_storage._cache)  # len() reaps the expired entries
        return len(manager.list_active_sessions()) + stored
    except Exception:  # noqa: BLE001 - an internal that moved: keep everything, as Streamlit would
        return None


limit_malloc_arenas()


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

    return load_sae(path)  # a UserError ("retrain it with ...") reaches the page's guard, which shows it


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
    """This session's live-training job (dashboard/live.py), or None; marks the session as in use."""
    job = st.session_state.get("live_job")
    if job is not None and hasattr(job, "touch"):
        job.touch()
    return job


def session_id() -> str | None:
    """This browser session's id (what the live-training reaper watches), or None outside a run."""
    from streamlit.runtime.scriptrunner import get_script_run_ctx

    ctx = get_script_run_ctx()
    return ctx.session_id if ctx is not None else None


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
    """The run's sparse autoencoder, or None when the run has none (yet) or it cannot be used.

    A file that cannot be used (trained on another model, damaged) is said on the page in
    the library's own words, which say what to do ("retrain it with `llmcore sae train ...`").
    """
    from llmcore.run import SAE_FILE

    path = run.path / SAE_FILE
    if not path.is_file():
        return None
    try:
        return _load_sae(str(run.path), _mtime(path))
    except UserError as e:
        st.error(str(e).splitlines()[0], icon="\u26a0\ufe0f")
        return None


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
    """Show a plotly figure with llmcore's theme (Streamlit's own theme would replace it).

    A plain title moves out of the figure into the page, as text that wraps: plotly never
    wraps its titles, and on a phone a long one ran off the figure. (Kept in the figure's
    `meta` for tests. Captions pinned by the builder, with a `y`, and animations stay.)
    """
    import re

    title = fig.layout.title.text
    if title and not fig.frames and fig.layout.title.y is None:
        main, _, sub = title.partition("<br><sup>")  # a subtitle is plotly's <sup>; other <br> just wrap
        main, sub = main.replace("<br>", " "), re.sub(r"<[^>]+>", " ", sub)
        st.markdown(f"**{md_escape(re.sub(r'<[^>]+>', ' ', main))}**"
                    + (f"  \n<small>{md_escape(sub)}</small>" if sub.strip() else ""), unsafe_allow_html=True)
        size = fig.layout.font.size or 14
        fig.update_layout(title_text=None, meta={"title": title}, margin={"t": round(size * 1.5)})
    st.plotly_chart(fig, theme=None, key=key, config={"displaylogo": False})


def chart_by_width(build, key: str):
    """A figure that shows text in a table cell, drawn twice: wrapped for a laptop or projector, and for a phone.

    `build(wrap)` makes the figure with `wrap` characters per line (None: the figure's own
    width for a laptop, or projector mode's). A plotly cell never wraps its text and the
    server does not know the screen's width, so CSS (BASE_CSS) shows the drawing that
    fits, as for the tour's flowchart.
    """
    from llmcore.viz.common import NARROW_CELL_WRAP

    with st.container(key=f"wide_{key}"):
        chart(build(None), key=key)
    with st.container(key=f"narrow_{key}"):
        chart(build(NARROW_CELL_WRAP), key=f"{key}_narrow")


def capped_text(widget, label: str, value: str, limit: int, **kwargs) -> str:
    """A text widget (st.text_area, st.text_input, or a column's) whose overflow is said, never lost.

    The widget has no max_chars: with one, the browser drops a longer paste without a word
    and keeps the old text. Here the visitor's text stays in the box; beyond `limit` a
    one-line warning says so and the first `limit` characters are used.
    """
    text = widget(label, value, **kwargs)
    if len(text) > limit:
        st.warning(f"{label}: {len(text):,} characters is over the limit of {limit:,}, "
                   f"so only the first {limit:,} are used.", icon="\u2702\ufe0f")
        text = text[:limit]
    return text


SEED_MAX = 1_000_000


def seed_input(widget, key: str | None = None) -> int | None:
    """A seed box that says when a seed is out of range, instead of quietly keeping the old one.

    Returns the seed, or None (with a one-line warning) when it is not a whole number in
    0..SEED_MAX; the caller then does not generate.
    """
    seed = widget("Seed", value=0, step=1, key=key, help=f"Same seed, same text: a whole number 0 to {SEED_MAX:,}")
    if not 0 <= seed <= SEED_MAX:
        st.warning(f"The seed must be a whole number from 0 to {SEED_MAX:,} (got {seed:,}); "
                   "change it to generate.", icon="\u26a0\ufe0f")
        return None
    return int(seed)


@contextlib.contextmanager
def guard():
    """Show what went wrong as one line (st.error) and carry on with the rest of the page.

    The dashboard's error boundary, the same as the CLI's (`llmcore.errors.explain`): bad input,
    unreadable files, a full disk or too little memory become one line a visitor can act on;
    anything else is a bug, said as one line here and logged with its traceback on the server.
    (Streamlit's st.rerun / st.stop are BaseExceptions, so they pass through untouched.)
    """
    try:
        yield
    except UserError as e:
        st.error(str(e).splitlines()[0] if str(e) else "that input cannot be used", icon="\u26a0\ufe0f")
    except Exception as e:
        code, line = explain(e)
        if code == EXIT_BUG:
            log.exception("dashboard: unexpected error")
            line = f"Something went wrong inside llmcore ({type(e).__name__}). This is a bug; please report it."
        st.error(line, icon="\u26a0\ufe0f")


def table(rows: list[dict], height: int | None = None):
    """A table of rows (dicts with the same keys), as HTML: numbers right-aligned, with thousands separators.

    Not st.dataframe or st.table: both need pandas and pyarrow, about 80 MB of a server's
    memory for a few small tables, and the data grid draws on a canvas at a fixed size that
    projector mode's larger type never reaches. This table grows with the page's type,
    scrolls sideways inside itself on a phone, and down within `height` pixels if given.
    """
    import html as html_lib

    def cell(v):
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            return f"<td>{html_lib.escape(str(v))}</td>"
        return f'<td class="num">{v:,}</td>'

    keys = list(rows[0]) if rows else []
    head = "".join(f"<th>{html_lib.escape(str(k))}</th>" for k in keys)
    body = "".join("<tr>" + "".join(cell(r.get(k, "")) for k in keys) + "</tr>" for r in rows)
    box = f"max-height:{int(height)}px;overflow-y:auto;" if height else ""
    st.html(f'<div class="llmcore-table" style="overflow-x:auto;{box}"><table><thead><tr>{head}</tr></thead>'
            f"<tbody>{body}</tbody></table></div>")


def page_link(stage: str, label: str | None = None):
    """A link to the page that teaches `stage` (mermaid links do not work in st.mermaid_chart)."""
    page = PAGES.get(stage)
    if page is not None:
        st.page_link(page, label=label)


# Always on: layout that fits every screen, from a phone to a projector.
BASE_CSS = """
<style>
/* Two drawings of one thing, shown by the screen's width (the tour's flowchart left to right or top
   to bottom; a figure's text wrapped for its width: state.chart_by_width). */
[class*="st-key-narrow_"] { display: none !important; }
/* Big numbers wrap instead of being cut with an ellipsis. */
[data-testid="stMetricValue"] > div, [data-testid="stMetricValue"] p { white-space: normal !important;
  overflow: visible !important; text-overflow: clip !important; overflow-wrap: anywhere; }
[data-testid="stMetricLabel"] p { white-space: normal !important; }
/* state.table: a plain table that fits the page. */
.llmcore-table table { border-collapse: collapse; font-size: 0.9em; }
.llmcore-table th, .llmcore-table td { padding: 2px 10px; border-bottom: 1px solid #ddd; text-align: left; }
.llmcore-table th { position: sticky; top: 0; background: #fff; }
.llmcore-table td.num { text-align: right; font-variant-numeric: tabular-nums; }
/* The tour's narration: read aloud, so as dark as the text around it. */
[data-testid="stMarkdownContainer"] blockquote, blockquote p { color: inherit !important; }
@media (max-width: 700px) {
  [class*="st-key-wide_"] { display: none !important; }
  [class*="st-key-narrow_"] { display: flex !important; }
  .st-key-narrow_flow img { max-height: 560px; }
  /* The hex dump keeps its bytes and drops the text column; charts lose the hover toolbar over titles. */
  .llmcore-ascii { display: none; }
  .modebar-container, [data-testid="stElementToolbar"] { display: none !important; }
}
</style>
"""

PROJECTOR_CSS = """
<style>
html, body, [data-testid="stAppViewContainer"] { font-size: 22px !important; color: #000 !important; }
[data-testid="stMarkdownContainer"] p, [data-testid="stMarkdownContainer"] li { font-size: 1.25rem !important; }
h1 { font-size: 2.6rem !important; } h2 { font-size: 2.1rem !important; } h3 { font-size: 1.7rem !important; }
.llmcore-token { font-size: 1.3rem !important; }
[data-testid="stMetricLabel"] p { font-size: 1.1rem !important; }
[data-testid="stMetricValue"], [data-testid="stMetricValue"] [data-testid="stMarkdownContainer"] p {
  font-size: 2.2rem !important; line-height: 1.2 !important; }
[data-testid="stTextInput"] input, [data-testid="stTextArea"] textarea, [data-testid="stSelectbox"] input,
[data-testid="stSelectbox"] div, [data-testid="stNumberInput"] input { font-size: 1.25rem !important; }
[data-testid="stBaseButton-primary"] p, [data-testid="stBaseButton-secondary"] p,
[data-testid="stWidgetLabel"] p, [data-testid="stCaptionContainer"] p { font-size: 1.1rem !important; }
[data-testid="stText"], .llmcore-sample, .llmcore-contexts { font-size: 1.15rem !important; }
.llmcore-rawbytes { font-size: 17px !important; }
.llmcore-table td, .llmcore-table th { font-size: 1.1rem !important; }
[data-testid="stAppViewContainer"] { background: #ffffff !important; }
blockquote p { font-size: 1.4rem !important; }
/* The tour's flowchart drawn top to bottom: left to right, its words shrank to specks. */
.st-key-wide_flow { display: none !important; }
.st-key-narrow_flow { display: flex !important; }
.st-key-narrow_flow img { max-height: 640px; }
</style>
"""


@visitor_cache(max_entries=64)
def generation(_run, key: str, prompt: str, temperature: float, top_k: int, top_p: float, max_new_tokens: int,
               seed: int) -> list:
    """The `llmcore.generate.Step`s of one generation (cached: same settings, same text)."""
    from llmcore.generate import Sampling, steps

    s = Sampling(temperature=temperature, top_k=top_k, top_p=top_p, max_new_tokens=max_new_tokens, seed=seed)
    return list(steps(_run.model, _run.tokenizer, prompt, s))


@visitor_cache(max_entries=32)
def feature_text(_run, _sae, key: str, text: str, feature: int) -> tuple[list, list[float]]:
    """`llmcore.interpret.features.feature_on_text`, cached per (run, text, feature)."""
    from llmcore.interpret.features import feature_on_text

    return feature_on_text(_run, _sae, text, feature)


@visitor_cache(max_entries=32)
def word_feature(_run, _sae, key: str, text: str, word: str, exclude: int) -> tuple[int, list, list[float]] | None:
    """`llmcore.interpret.features.word_feature` (feature absorption), cached per (run, text, word)."""
    from llmcore.interpret.features import word_feature

    return word_feature(_run, _sae, text, word, exclude)


@visitor_cache(max_entries=32, show_spinner="Running the prompt through the model\u2026")
def forward_walk(_run, key: str, prompt: str, layer: int, head: int):
    """llmcore.forward.walk, once per (run, prompt, layer, head): the Model stage's step-through."""
    from llmcore.forward import walk

    return walk(_run.model, _run.tokenizer, prompt, layer=layer, head=head)


@visitor_cache(max_entries=64)
def model_word(_run, key: str, context: str) -> tuple[str, str, float]:
    """llmcore.guess.model_word, once per (run, context)."""
    from llmcore.guess import model_word

    return model_word(_run.model, _run.tokenizer, context)


@visitor_cache(max_entries=64)
def guess_round(_tokenizer, tokenizer_key: str, text: str, seed: int) -> tuple[str, str]:
    """llmcore.guess.round_from, once per (tokenizer, text, seed)."""
    from llmcore.guess import round_from

    return round_from(_tokenizer, text, seed)


def bridge_feature(run, sae, match: dict, text: str):
    """The Golden Gate feature lighting up on `text`, and why it stays pale on the bridge's own words.

    Draws two rows of token chips: the bridge feature, then the feature the SAE fires on
    "Golden Gate Bridge" itself (feature absorption: the word's own feature takes part
    of the bridge's direction), with one paragraph saying so.
    """
    from llmcore.viz.common import token_html

    feature = match["feature"]
    pieces, acts = feature_text(run, sae, run_key(run), text, feature)
    st.markdown(f"Feature **{feature}** of the sparse autoencoder is its best match for the Golden Gate Bridge "
                f"(F1 {match.get('f1', 0):.2f} on held-out stories: it fires on most bridge-story tokens and "
                "rarely elsewhere). Where it lights up here (orange = strongly on):")
    st.html(token_html(pieces, highlight=acts))
    own = word_feature(run, sae, run_key(run), text, "Golden Gate Bridge", feature)
    if own is not None:
        other, pieces, acts = own
        st.markdown(f"Often it is palest on the name itself. On \"Golden Gate Bridge\" the SAE also switches on "
                    f"feature **{other}**, a feature for those words:")
        st.html(token_html(pieces, highlight=acts))
        st.caption("The words' own feature carries part of the bridge's meaning, so the bridge feature can fire "
                   "there only weakly. Researchers call this *feature absorption* (Chanin et al., 2024); "
                   "the Interpretability page lets you look up both features.")


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
