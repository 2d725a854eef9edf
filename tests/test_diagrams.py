"""Tests for llmcore.diagrams (the explainer's flowchart) and llmcore.viz.common.

The flowchart text is checked three ways: against the explainer's wording,
against a line-by-line sketch of mermaid's flowchart grammar, and, where this
machine has Node.js and Streamlit's bundled mermaid, by mermaid's own parser.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from llmcore import UserError
from llmcore.diagrams import (
    ALL_STAGES,
    EXTRA_STAGES,
    STAGE_PAGES,
    STAGE_TITLES,
    STAGES,
    flowchart,
    mermaid_bundle,
    notebook_markdown,
    safe_url,
    stage_sequence,
)
from llmcore.viz.common import PALETTE, STAGE_COLOURS, apply_theme, token_html

# The explainer's arrows, written out here (not imported) so the test pins the wording.
EXPLAINER_EDGES = {
    ("data", "fed into", "pretraining"),
    ("pretraining", "used to acquire", "parameters"),
    ("parameters", "forms the 'brain' of", "model"),
    ("inference", "used to create", "text"),
    ("model", "used to create", "text"),
    ("interpretability", "used to introspect", "model"),
}
EXPLAINER_TITLES = {
    "data": "Pre-Training Data",
    "pretraining": "Pre-Training",
    "parameters": "Parameters",
    "model": "Model",
    "inference": "Inference Engine",
    "text": "Text Outputs",
    "interpretability": "Interpretability",
}

# A sketch of the flowchart grammar this module writes, one pattern per line kind.
NODE = re.compile(r'^\t(\w+)\("([^"]*)"\)$')  # data("Pre-Training Data")
EDGE = re.compile(r'^\t(\w+) (-->|-\.->)\|"([^"]*)"\| (\w+)$')  # a -->|"label"| b
CLICK = re.compile(r'^\tclick (\w+) "([^"\s]*)" _blank$')  # click a "url" _blank
CLASSDEF = re.compile(r"^\tclassDef (\w+) ([\w#:.\-]+(?:,[\w#:.\-]+)*)$")
CLASS = re.compile(r"^\tclass ([\w,]+) (\w+)$")
KEYWORDS = {"end", "graph", "flowchart", "subgraph", "click", "class", "classDef", "style"}


def parse(text: str) -> dict:
    """Split flowchart text into nodes, edges, clicks and classes; fail on any other line."""
    lines = text.rstrip("\n").split("\n")
    assert re.fullmatch(r"flowchart (LR|RL|TB|TD|BT)", lines[0]), lines[0]
    out: dict = {"nodes": {}, "edges": [], "clicks": {}, "classdefs": {}, "classes": {}}
    for line in lines[1:]:
        if m := NODE.match(line):
            out["nodes"][m[1]] = m[2]
        elif m := EDGE.match(line):
            out["edges"].append((m[1], m[3], m[4], m[2]))
        elif m := CLICK.match(line):
            out["clicks"][m[1]] = m[2]
        elif m := CLASSDEF.match(line):
            out["classdefs"][m[1]] = m[2]
        elif m := CLASS.match(line):
            for node in m[1].split(","):
                assert node not in out["classes"], f"{node} given two classes"
                out["classes"][node] = m[2]
        else:
            raise AssertionError(f"not a line this grammar allows: {line!r}")
    # Every id used is declared, no id is a mermaid keyword, no label breaks its quotes.
    used = {a for a, *_ in out["edges"]} | {e[2] for e in out["edges"]}
    used |= set(out["clicks"]) | set(out["classes"])
    assert used <= set(out["nodes"]), used - set(out["nodes"])
    assert not set(out["nodes"]) & KEYWORDS
    assert set(out["classes"].values()) <= set(out["classdefs"])
    return out


def test_core_flowchart_is_the_explainers_flow():
    text = flowchart()
    chart = parse(text)
    assert text.startswith("flowchart LR\n")
    assert chart["nodes"] == EXPLAINER_TITLES
    assert {(a, label, b) for a, label, b, _ in chart["edges"]} == EXPLAINER_EDGES
    assert len(chart["edges"]) == len(EXPLAINER_EDGES)
    assert not chart["clicks"] and not chart["classes"]  # plain: no highlight, no links
    assert "\"forms the 'brain' of\"" in text  # the apostrophes sit inside double quotes
    assert flowchart(direction="TB").startswith("flowchart TB\n")


@pytest.mark.parametrize("stage", ALL_STAGES)
def test_highlight_lights_exactly_one_stage(stage):
    chart = parse(flowchart(stage))
    lit = [node for node, cls in chart["classes"].items() if cls == "lit"]
    assert lit == [stage]
    # Every other stage drawn is dimmed, and the classes are the ones asked for.
    assert set(chart["classes"]) == set(chart["nodes"])
    assert all(cls == "dim" for node, cls in chart["classes"].items() if node != stage)
    assert "fill:#ffd54f" in chart["classdefs"]["lit"]
    assert "stroke:#e65100" in chart["classdefs"]["lit"]
    assert "stroke-width:3px" in chart["classdefs"]["lit"]
    # An extra stage brings the extended chart with it; a core stage does not.
    assert (stage in EXTRA_STAGES) == ("features" in chart["nodes"])


def test_bad_input_is_a_user_error_that_lists_the_choices():
    with pytest.raises(UserError, match="unknown stage 'tokens'.*data, pretraining"):
        flowchart("tokens")
    with pytest.raises(UserError, match="interpretability"):
        flowchart(links={"nowhere": "/x"})
    with pytest.raises(UserError, match="direction"):
        flowchart(direction="sideways")


def test_extended_chart_adds_features_steering_and_scale():
    chart = parse(flowchart(extended=True))
    assert set(chart["nodes"]) == set(ALL_STAGES)
    edges = {(a, b): (label, arrow) for a, label, b, arrow in chart["edges"]}
    assert EXPLAINER_EDGES <= {(a, label, b) for a, label, b, _ in chart["edges"]}
    assert ("interpretability", "features") in edges
    assert ("features", "steering") in edges
    assert "Golden Gate Bridge" in edges[("steering", "model")][0]
    assert edges[("parameters", "scale")][1] == "-.->"  # scale is a dotted side note
    assert "Llama-2-70B" in edges[("parameters", "scale")][0]


def test_links_become_click_lines_with_escaped_urls():
    links = {
        "data": 'https://example.org/data page?x=1&y="2"',
        "model": "?page=02",
        "scale": "/Scale",  # not drawn in the core chart: skipped
    }
    chart = parse(flowchart("data", links=links))
    assert chart["clicks"] == {
        "data": "https://example.org/data%20page?x=1&y=%222%22",
        "model": "?page=02",
    }
    assert parse(flowchart(extended=True, links=links))["clicks"]["scale"] == "/Scale"


@pytest.mark.parametrize(
    "url",
    [
        "javascript:alert(1)",
        "  JavaScript:alert(1)",
        "java\tscript:alert(1)",
        "java\nscript:alert(1)",
        "javascript&colon;alert(1)",
        "javascript&amp;colon;alert(1)",
        "javascript#colon;alert(1)",
        "javascript%3Aalert(1)",
        "data:text/html,<script>alert(1)</script>",
        "vbscript:msgbox(1)",
        "file:///etc/passwd",
        "",
    ],
)
def test_unsafe_urls_are_refused(url):
    with pytest.raises(UserError):
        flowchart(links={"data": url})


@pytest.mark.parametrize("url", ["https://example.org/a", "http://x.org", "/Data", "01_data.ipynb", "#top"])
def test_safe_urls_pass_unchanged(url):
    assert safe_url(url) == url


def test_output_does_not_depend_on_the_hash_seed():
    # mermaid-py keeps styles in a set; the highlight lines must not follow its order.
    code = "from llmcore.diagrams import flowchart; print(flowchart('model', extended=True), end='')"
    root = Path(__file__).resolve().parents[1]
    outs = {
        subprocess.run(
            [sys.executable, "-c", code],
            capture_output=True, text=True, check=True, cwd=root,
            env={**os.environ, "PYTHONHASHSEED": seed},
        ).stdout
        for seed in ("1", "2")
    }  # fmt: skip
    assert outs == {flowchart("model", extended=True)}


def test_tour_and_notebook_forms():
    assert stage_sequence() == list(STAGES)
    assert stage_sequence(extended=True) == list(ALL_STAGES)
    assert set(STAGE_TITLES) == set(STAGE_PAGES) == set(ALL_STAGES)
    assert all(re.fullmatch(r"0[0-7]", page) for page in STAGE_PAGES.values())

    cell = notebook_markdown("inference")
    assert cell == f"```mermaid\n{flowchart('inference')}```\n"
    bundle = mermaid_bundle("inference", extended=True)
    assert bundle["text/vnd.mermaid"] == flowchart("inference", extended=True)
    assert bundle["text/markdown"] == notebook_markdown("inference", extended=True)
    assert bundle["text/plain"] == bundle["text/vnd.mermaid"]


# --- mermaid's own parser, where Node.js and Streamlit's bundled mermaid exist ---

# Loader hooks: read the bundle's .js files as ES modules, and stand in for
# DOMPurify (it needs a browser DOM; parsing never sanitises anything that matters).
HOOKS_JS = r"""
export async function load(url, context, nextLoad) {
  if (/\/purify\.es\.[^/]*\.js$/.test(url)) {
    return { format: 'module', shortCircuit: true, source:
      'const M = {sanitize: s => s, addHook() {}, removeHook() {}, removeAllHooks() {}, isSupported: true};\nexport { M as t };' };
  }
  if (url.startsWith('file:') && url.endsWith('.js')) {
    return { ...(await nextLoad(url, { ...context, format: 'module' })), format: 'module' };
  }
  return nextLoad(url, context);
}
"""
# Parse each diagram in a JSON list from stdin; print a JSON list of "OK ..." / "ERR ...".
CHECK_JS = r"""
import { register } from 'node:module';
import { pathToFileURL } from 'node:url';
import { readFileSync } from 'node:fs';
register(pathToFileURL(process.argv[2]));
globalThis.document = { querySelector: () => null, getElementsByTagName: () => [],
  createElement: () => ({ setAttribute() {}, addEventListener() {} }), head: { appendChild() {} } };
globalThis.window = globalThis;
globalThis.addEventListener = () => {};
globalThis.dispatchEvent = () => true;
const mermaid = (await import(pathToFileURL(process.argv[3]).href)).default;
const results = [];
for (const text of JSON.parse(readFileSync(0, 'utf8'))) {
  try { results.push('OK ' + (await mermaid.parse(text)).diagramType); }
  catch (e) { results.push('ERR ' + String(e.message || e)); }
}
console.log(JSON.stringify(results));
"""


def _mermaid_bundle_js() -> Path | None:
    spec = importlib.util.find_spec("streamlit")
    if spec is None or spec.origin is None:
        return None
    found = sorted((Path(spec.origin).parent / "static" / "static" / "js").glob("mermaid.core.*.js"))
    return found[0] if found else None


@pytest.mark.skipif(
    shutil.which("node") is None or _mermaid_bundle_js() is None,
    reason="needs Node.js and Streamlit's bundled mermaid",
)
def test_mermaid_itself_parses_every_form(tmp_path):
    (tmp_path / "hooks.mjs").write_text(HOOKS_JS)
    (tmp_path / "check.mjs").write_text(CHECK_JS)
    texts = [
        flowchart(),
        flowchart("parameters", direction="TB"),
        flowchart("steering", links={s: f"/page/{STAGE_PAGES[s]}?s={s}" for s in ALL_STAGES}),
        flowchart(extended=True, links={"data": 'https://example.org/a b"c'}),
        'flowchart LR\n\ta("x) --> b\n',  # broken on purpose: the harness must catch it
    ]
    run = subprocess.run(
        ["node", str(tmp_path / "check.mjs"), str(tmp_path / "hooks.mjs"), str(_mermaid_bundle_js())],
        input=json.dumps(texts), capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr[-2000:]
    results = json.loads(run.stdout.strip().splitlines()[-1])
    assert results[:-1] == ["OK flowchart-v2"] * (len(texts) - 1)
    assert results[-1].startswith("ERR")


# --- llmcore.viz.common ---


def test_palette_and_stage_colours():
    assert len(PALETTE) == len(set(PALETTE)) == 8
    assert set(STAGE_COLOURS) == set(ALL_STAGES)
    assert all(re.fullmatch(r"#[0-9A-Fa-f]{6}", c) for c in (*PALETTE, *STAGE_COLOURS.values()))


def test_apply_theme_screen_and_projector():
    import plotly.graph_objects as go

    fig = go.Figure(go.Scatter(x=[0, 1, 2], y=[3.0, 2.0, 1.5], mode="lines+markers"))
    assert apply_theme(fig, title="Loss") is fig
    assert fig.layout.title.text == "Loss"
    assert fig.layout.font.size == 14
    assert list(fig.layout.colorway) == list(PALETTE)
    assert fig.layout.xaxis.showline and fig.layout.yaxis.automargin

    big = apply_theme(go.Figure(go.Scatter(x=[0, 1], y=[1, 0])), projector=True)
    assert big.layout.font.size >= 22 and big.layout.font.color == "#000000"
    assert big.data[0].line.width >= 4 and big.layout.xaxis.linewidth >= 2
    assert "#F0E442" not in big.layout.colorway  # no yellow on a projector
    assert big.layout.title.text is None  # no title given, none invented


class _Tags(HTMLParser):
    """Collect start tags with their attributes, and the text between them."""

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict]] = []
        self.text: list[str] = []

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))

    def handle_data(self, data):
        self.text.append(data)


def _check_structure(out: str, pieces: list[tuple[str, int]]) -> _Tags:
    """The HTML holds only our tags and attributes, one chip per token, exact tooltips."""
    parsed = _Tags()
    parsed.feed(out)
    parsed.close()
    for tag, attrs in parsed.tags:
        assert tag in {"div", "span", "sub"}, tag
        assert set(attrs) <= {"class", "style", "title"}, attrs
    chips = [attrs for tag, attrs in parsed.tags if attrs.get("class") == "llmcore-token"]
    assert [c["title"].split(" \u2014 ")[0] for c in chips] == [f"id {token_id}: {text!r}" for text, token_id in pieces]
    return parsed


def test_token_html_escapes_hostile_text():
    pieces = [
        ("<script>alert('x')</script>", 1),
        ('" onmouseover="alert(1)', 2),
        ("&lt;b&gt;", 3),
        (" the\n", 4),
    ]
    out = token_html(pieces)
    assert "<script" not in out.lower() and 'onmouseover="' not in out
    parsed = _check_structure(out, pieces)
    text = "".join(parsed.text)
    assert "<script>alert('x')</script>" in text  # shown as text, not run
    assert "&lt;b&gt;" in text  # an entity in the data is shown literally, not decoded
    assert "\u00b7the\u21b5" in text  # space and newline made visible
    assert [t for t, a in parsed.tags if t == "sub"] == ["sub"] * 4
    assert "<sub" not in token_html(pieces, show_ids=False)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.text(max_size=6), st.integers(0, 70_000)), max_size=5))
def test_token_html_fuzz_keeps_structure(pieces):
    _check_structure(token_html(pieces), pieces)


def test_token_html_highlight_shades_chips():
    pieces = [("a", 0), ("b", 1), ("c", 2)]
    out = token_html(pieces, highlight=[0.0, 0.5, 1.0])
    backgrounds = re.findall(r"background:(#[0-9a-f]{6})", out)
    assert backgrounds[0] == "#ffffff" and backgrounds[2] == "#e69f00"
    assert backgrounds[1] not in backgrounds[::2]
    with pytest.raises(UserError, match="one per token"):
        token_html(pieces, highlight=[0.5])
    with pytest.raises(UserError, match=r"\[0, 1\]"):
        token_html(pieces, highlight=[0.0, 2.0, 0.1])
    with pytest.raises(UserError, match=r"\[0, 1\]"):
        token_html(pieces, highlight=[0.0, float("nan"), 0.1])
    with pytest.raises(UserError, match="pairs"):
        token_html([("a", 1.5)])
    with pytest.raises(UserError, match="pairs"):
        token_html(["abc"])
