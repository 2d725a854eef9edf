"""llmcore.viz.static: every figure in a notebook carries a still PNG for viewers without a kernel.

The drawing tests need kaleido and a Chromium (Debian's `chromium`, installed by
scripts/setup.sh); without them they are skipped and say which is missing. The
committed notebooks are checked without drawing anything: every plotly output holds
a PNG beside its JSON, and every widget a still fallback.
"""

import base64
import json
from pathlib import Path

import pytest

from llmcore.viz import static

NOTEBOOKS = Path(__file__).parent.parent / "notebooks"
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
PLOTLY = "application/vnd.plotly.v1+json"
WIDGET = "application/vnd.jupyter.widget-view+json"

needs_chromium = pytest.mark.skipif(
    static.image_support() is not None,
    reason=f"still images cannot be drawn here: {static.image_support()}",
)


@pytest.fixture(autouse=True)
def _plotly_default_renderer():
    """Each test leaves plotly's default renderer as it found it."""
    pio = pytest.importorskip("plotly.io")
    before = pio.renderers.default
    yield
    pio.renderers.default = before


def _bar_figure():
    go = pytest.importorskip("plotly.graph_objects")
    return go.Figure(go.Bar(x=["a", "b", "c"], y=[3, 1, 2]), layout={"height": 300})


@needs_chromium
def test_figure_png_draws_the_figure_at_its_size():
    from PIL import Image

    png = static.figure_png(_bar_figure())
    assert png.startswith(PNG_MAGIC)
    image = Image.open(__import__("io").BytesIO(png))
    assert image.size == (static.WIDTH, 300)  # the figure's own height, the default width
    assert len(image.getcolors(maxcolors=256) or []) > 1  # not a blank page


@needs_chromium
def test_the_notebook_renderer_emits_the_live_figure_and_its_picture(monkeypatch):
    import plotly.io as pio

    monkeypatch.setenv("LLMCORE_SMOKE", "0")
    static.notebook_figures()
    assert pio.renderers.default == static.RENDERER
    bundle = _bar_figure()._repr_mimebundle_()
    assert PLOTLY in bundle and base64.b64decode(bundle["image/png"]).startswith(PNG_MAGIC)


def test_no_picture_under_the_smoke_switch(monkeypatch):
    pytest.importorskip("plotly")
    monkeypatch.setenv("LLMCORE_SMOKE", "1")
    static.notebook_figures()
    bundle = _bar_figure()._repr_mimebundle_()
    assert PLOTLY in bundle and "image/png" not in bundle


def test_without_chromium_the_figure_stays_live_and_says_why(monkeypatch):
    monkeypatch.setenv("BROWSER_PATH", "")
    monkeypatch.setenv("PATH", "/nonexistent")
    assert static.image_support() is not None
    assert static.still_bundle(_bar_figure()) == {}
    from llmcore.errors import UserError

    with pytest.raises(UserError, match="cannot draw a still image"):
        static.figure_png(_bar_figure())


@needs_chromium
def test_the_sampling_sliders_carry_the_starting_figure(tiny_bpe_run, monkeypatch):
    pytest.importorskip("ipywidgets")
    from llmcore import teach
    from llmcore.run import load_run

    monkeypatch.setenv("LLMCORE_SMOKE", "0")
    run = load_run(tiny_bpe_run)
    bundle = teach.sampling_explorer(run.model, run.tokenizer, "Mia went to the", k=5)._repr_mimebundle_()
    assert WIDGET in bundle and base64.b64decode(bundle["image/png"]).startswith(PNG_MAGIC)


def test_every_committed_figure_and_widget_has_a_still_fallback():
    """What GitHub, nbviewer and nbconvert show: a PNG beside every plotly figure; a PNG (sliders) or the
    finished bar's text (a progress bar) for every widget; and no widget state saved in the notebook."""
    for book in sorted(NOTEBOOKS.glob("0*.ipynb")):
        nb = json.loads(book.read_text())
        assert "widgets" not in nb["metadata"], f"{book.name} saves widget state"
        for i, cell in enumerate(nb["cells"]):
            for out in cell.get("outputs", []):
                data = out.get("data", {})
                where = f"{book.name} cell {i}"
                if PLOTLY in data:
                    assert base64.b64decode(data.get("image/png", ""))[:8] == PNG_MAGIC, f"{where}: figure without PNG"
                if WIDGET in data:
                    text = "".join(data.get("text/plain", ""))
                    assert "image/png" in data or "100%" in text, f"{where}: widget shows {text[:60]!r} without a kernel"
        assert book.stat().st_size < 1_000_000, f"{book.name} is {book.stat().st_size:,} bytes: too big to review"
