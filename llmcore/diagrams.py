"""The explainer's flowchart as mermaid text, with one stage lit up.

The whole product tells one story, the flow of the explainer this project is
built on (docs: DESIGN.md, "The story the product tells"):

    flowchart LR
      D(Pre-Training Data) -- fed into --> PR(Pre-Training)
      PR -- used to acquire --> P(Parameters)
      P -- forms the 'brain' of --> M(Model)
      I(Inference Engine) -- used to create --> T(Text Outputs)
      M -- used to create --> T
      IN(Interpretability) -- used to introspect --> M

`flowchart()` writes that graph with mermaid-py (nodes and links are its
`Node` and `Link` objects), optionally lights one stage (the one the learner
is on) and greys the rest, and can make every node a link to its page.
`extended=True` adds the rest of the course: interpretability finds features,
clamping a feature steers the model (the Golden Gate Bridge demo), and a side
node for scale (the same parameter file, 70 billion numbers long).

Where the text is shown, and what renders it (all offline):
- JupyterLab 4.6 renders a ```mermaid fence in a Markdown cell and the
  `text/vnd.mermaid` MIME type with its bundled mermaid 11 (securityLevel
  "strict": `click ... "url"` links work, URLs pass mermaid's sanitiser).
  `notebook_markdown()` and `mermaid_bundle()` produce those two forms.
- Streamlit 1.67: `st.mermaid_chart(flowchart(...))`. It draws the chart as an
  image, so `click` links do nothing there: put `st.page_link`s beside it.

Only the text is built here: mermaid-py's own rendering calls a web service,
which a classroom without internet does not have.
"""

from __future__ import annotations

import html
import logging
import re
import urllib.parse

from llmcore.errors import UserError

log = logging.getLogger(__name__)

# The explainer's stages, in the order the story (and a tour) visits them.
STAGES: tuple[str, ...] = (
    "data",
    "pretraining",
    "parameters",
    "model",
    "inference",
    "text",
    "interpretability",
)
# Stages the notebooks and dashboard add after the explainer's flow; they are
# drawn only in the extended chart.
EXTRA_STAGES: tuple[str, ...] = ("features", "steering", "scale")
ALL_STAGES: tuple[str, ...] = STAGES + EXTRA_STAGES

# What each stage is called on screen (the explainer's words where it has them).
STAGE_TITLES: dict[str, str] = {
    "data": "Pre-Training Data",
    "pretraining": "Pre-Training",
    "parameters": "Parameters",
    "model": "Model",
    "inference": "Inference Engine",
    "text": "Text Outputs",
    "interpretability": "Interpretability",
    "features": "Features",
    "steering": "Steering",
    "scale": "Scale",
}

# The notebook (notebooks/NN_*.ipynb) and dashboard page that teach each stage.
STAGE_PAGES: dict[str, str] = {
    "data": "01",
    "pretraining": "02",
    "parameters": "03",
    "model": "04",
    "inference": "05",
    "text": "05",
    "interpretability": "06",
    "features": "06",
    "steering": "06",
    "scale": "07",
}

# The explainer's arrows, (from, label, to), in its order and its words.
EDGES: tuple[tuple[str, str, str], ...] = (
    ("data", "fed into", "pretraining"),
    ("pretraining", "used to acquire", "parameters"),
    ("parameters", "forms the 'brain' of", "model"),
    ("inference", "used to create", "text"),
    ("model", "used to create", "text"),
    ("interpretability", "used to introspect", "model"),
)
# The arrows the extended chart adds. Scale hangs off the parameters on a
# dotted arrow: it is the same file, only bigger (2 bytes x 70 billion).
EXTRA_EDGES: tuple[tuple[str, str, str], ...] = (
    ("interpretability", "finds", "features"),
    ("features", "clamped by", "steering"),
    ("steering", "steers (Golden Gate Bridge)", "model"),
    ("parameters", "at scale: Llama-2-70B, 140 GB", "scale"),
)
_DOTTED = {("parameters", "scale")}

# Highlight colours: the lit stage is amber with a dark-orange rim; the rest fade to grey.
LIT_STYLE = {"fill": "#ffd54f", "stroke": "#e65100", "stroke_width": "3px"}
DIM_STYLE = {"fill": "#eeeeee", "stroke": "#bdbdbd", "color": "#757575"}

DIRECTIONS = ("LR", "RL", "TB", "TD", "BT")
_SAFE_SCHEMES = ("http", "https")


def _check_stage(stage: str) -> str:
    """Return `stage` if it is a known stage, else raise a UserError listing them."""
    if stage not in ALL_STAGES:
        raise UserError(f"unknown stage {stage!r}: choose one of {', '.join(ALL_STAGES)}")
    return stage


def safe_url(url: str) -> str:
    """Check a link target and escape it for a mermaid `click` line.

    Allowed: http(s) URLs and relative ones ("/Data", "?page=01", "#top",
    "01_data.ipynb"). Refused: every other scheme (javascript:, data:,
    vbscript:, file:), also when hidden behind entities, %-escapes, mermaid's
    `#colon;` escapes, whitespace or control characters, as browsers undo those.
    The result has no quote, space or `;` left (they are %-escaped), so it
    cannot end the `"..."` it is written into or open a mermaid entity:
    'https://x.org/a b"c' -> 'https://x.org/a%20b%22c'.
    """
    if not isinstance(url, str) or not url.strip():
        raise UserError(f"a link must be a non-empty URL string, not {url!r}")
    if any(ord(ch) < 0x20 or ord(ch) == 0x7F for ch in url):
        raise UserError(f"link {url!r} contains control characters: remove them")
    url = url.strip()
    # What a browser would see after undoing every escape layer: look for a scheme there.
    seen = re.sub(r"#(\w+);", r"&\1;", url)  # mermaid writes entities as #name;
    for _ in range(3):  # undo nested escapes (&amp;colon; -> &colon; -> :)
        seen = html.unescape(urllib.parse.unquote(seen))
    seen = re.sub(r"[\s\x00-\x1f\x7f]", "", seen).lower()
    scheme = re.match(r"([a-z][a-z0-9+.\-]*):", seen)
    if scheme and scheme.group(1) not in _SAFE_SCHEMES:
        raise UserError(f"link {url!r} uses the {scheme.group(1)}: scheme: use an http(s) or relative URL")
    # Keep URL syntax, %-escape the rest (quotes, spaces, ';', non-ASCII).
    return urllib.parse.quote(url, safe=":/?#[]@!$&'()*+,=%-._~")


def _edges(extended: bool) -> list[tuple[str, str, str]]:
    return list(EDGES + EXTRA_EDGES) if extended else list(EDGES)


def flowchart(
    highlight: str | None = None,
    *,
    direction: str = "LR",
    links: dict[str, str] | None = None,
    extended: bool = False,
) -> str:
    """The explainer's flow as mermaid text, optionally with one stage lit.

    highlight: a stage from ALL_STAGES to light up (the others turn grey);
        lighting an extra stage ("features", "steering", "scale") draws the
        extended chart, since that is where it lives.
    direction: mermaid's direction, "LR" (left to right) or "TB"/"TD", "RL", "BT".
    links: {stage: url}; each drawn stage becomes a link to its page
        (stages not drawn in this chart are skipped). Unsafe URLs raise UserError.
    extended: add features, steering and scale after the explainer's flow.

    >>> print(flowchart("model"))  # doctest: +ELLIPSIS, +NORMALIZE_WHITESPACE
    flowchart LR
        data("Pre-Training Data")
        ...
        parameters -->|"forms the 'brain' of"| model
        ...
        class model lit
    <BLANKLINE>
    """
    # Import here: mermaid-py pulls in `requests` for its web renderer, and
    # `import llmcore.diagrams` for STAGES should stay cheap.
    from mermaid.flowchart import FlowChart, Link, Node
    from mermaid.style import Style

    if highlight is not None:
        _check_stage(highlight)
        extended = extended or highlight in EXTRA_STAGES
    if direction not in DIRECTIONS:
        raise UserError(f"unknown direction {direction!r}: choose one of {', '.join(DIRECTIONS)}")
    stages = ALL_STAGES if extended else STAGES

    # Which drawn stages link where: validate every stage and URL given.
    hrefs: dict[str, str] = {}
    for stage, url in (links or {}).items():
        _check_stage(stage)
        if stage in stages:
            hrefs[stage] = safe_url(url)
        else:
            log.debug("stage %r is not in this chart; its link is skipped", stage)

    # Step 1: nodes, rounded boxes like the explainer's D(...). mermaid-py quotes
    # the label ("..."), writes `click id "url" _blank` for a node with an href,
    # and uses the stage name itself as the node id.
    nodes = {s: Node(s, STAGE_TITLES[s], shape="round-edge", href=hrefs.get(s)) for s in stages}
    # Step 2: the arrows, labels quoted the same way: -->|"forms the 'brain' of"|.
    arrows = [
        Link(nodes[a], nodes[b], shape="dotted" if (a, b) in _DOTTED else "normal", message=label)
        for a, label, b in _edges(extended)
    ]
    chart = FlowChart("llmcore", nodes=list(nodes.values()), links=arrows, orientation=direction)
    # mermaid-py always opens with a `---\ntitle: ...\n---` front-matter block;
    # the notebook or page around the chart has its own heading, so keep the
    # text from `flowchart LR` on, the same as the explainer's.
    text = chart.script[chart.script.index(f"flowchart {direction}") :].rstrip("\n")
    text = text.replace("\nclick ", "\n\tclick ")  # mermaid-py leaves click lines unindented

    # Step 3: the highlight. mermaid-py can attach a Style to a node, but it keeps
    # the class definitions in a set, whose order changes with Python's hash seed;
    # notebook outputs are compared as text, so write the lines here in a fixed
    # order (still letting mermaid-py's Style format each classDef).
    if highlight is not None:
        dim = [s for s in stages if s != highlight]
        text += "\n".join(
            [
                "",
                f"\t{Style('lit', **LIT_STYLE)}",
                f"\t{Style('dim', **DIM_STYLE)}",
                f"\tclass {','.join(dim)} dim",
                f"\tclass {highlight} lit",
            ]
        )
    return text + "\n"


def stage_sequence(*, extended: bool = False) -> list[str]:
    """The stages in the order a tour lights them: the explainer's flow, then the extras.

    Pair it with `flowchart(stage, extended=extended)` so the layout stays put
    while the light moves: ['data', 'pretraining', ..., 'interpretability'].
    """
    return list(ALL_STAGES if extended else STAGES)


def notebook_markdown(
    highlight: str | None = None, *, extended: bool = False, links: dict[str, str] | None = None
) -> str:
    """The chart as a fenced block for a Jupyter Markdown cell ("```mermaid ... ```").

    JupyterLab (4.1 and later) draws such a block itself, offline.
    """
    return f"```mermaid\n{flowchart(highlight, extended=extended, links=links)}```\n"


def mermaid_bundle(
    highlight: str | None = None, *, extended: bool = False, links: dict[str, str] | None = None
) -> dict[str, str]:
    """A MIME bundle for `IPython.display.display(bundle, raw=True)` in a code cell.

    JupyterLab 4.6 picks the renderer by rank: text/markdown (rank 60) beats
    text/vnd.mermaid (rank 61), and both draw the chart with the bundled
    mermaid, offline. The mermaid type serves front-ends that know it but not
    mermaid-in-Markdown; text/plain is the source, for consoles and nbconvert.
    """
    text = flowchart(highlight, extended=extended, links=links)
    return {
        "text/vnd.mermaid": text,
        "text/markdown": f"```mermaid\n{text}```\n",
        "text/plain": text,
    }
