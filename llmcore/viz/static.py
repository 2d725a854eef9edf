"""Figures that show without a live kernel: a still image beside every interactive figure.

JupyterLab draws a plotly figure from its JSON with plotly's JavaScript. GitHub,
nbviewer, VS Code's preview, `jupyter nbconvert --to html` and a PDF export do not
run that JavaScript, and show blank space where the figure was. So every chapter's
setup cell calls

    viz.notebook_figures()

and from then on a figure a cell shows carries two things in one output: plotly's
JSON (interactive in JupyterLab) and a PNG of the same figure. Each viewer shows the
best it can draw: JupyterLab the live figure, the others the picture.

The PNG is drawn offline by kaleido (plotly's image export), which drives a local
headless Chromium: Debian's `chromium` on PATH, or the browser named by
BROWSER_PATH. Chromium starts once per kernel (about 3 s), then each figure takes
about 0.3 s. The PNG is reduced to 256 colours (Pillow), which keeps a chart's
pixels and makes it 3-4x smaller, so notebooks stay small enough to review.

Under the smoke switch (LLMCORE_SMOKE=1, the notebook tests) no image is drawn:
nbval never compares images (notebooks/conftest.py), and each costs Chromium time.
Without kaleido or Chromium the figures stay interactive-only, with one warning.

    figure_png(fig)      the PNG bytes of one figure (raises UserError without Chromium)
    still_bundle(fig)    {"image/png": base64} for a display bundle (the widgets' fallback)
    shorter_floats(obj)  the figure's JSON with 6 significant digits, all a chart can show
    image_support()      None when images can be drawn, else why not (for tests and the warning)
"""

from __future__ import annotations

import atexit
import base64
import io
import logging
import math
import os
import shutil
import warnings

from llmcore import smoke
from llmcore.errors import UserError

log = logging.getLogger(__name__)

RENDERER = "llmcore"  # the plotly renderer notebook_figures() registers and makes the default
WIDTH = 860  # px, a notebook's output column; figures that set their own width keep it
HEIGHT = 450  # px, plotly.js's default, for figures that set no height
PLOTLY_MIME = "application/vnd.plotly.v1+json"
SIGNIFICANT_DIGITS = 6  # of the numbers in a notebook's figure JSON (shorter_floats)
BROWSERS = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")


def find_browser() -> str | None:
    """The Chromium kaleido will drive: BROWSER_PATH if set, else the first on PATH."""
    if os.environ.get("BROWSER_PATH"):
        return os.environ["BROWSER_PATH"]
    return next((path for name in BROWSERS if (path := shutil.which(name))), None)


def image_support() -> str | None:
    """None when still images can be drawn here, else a sentence saying what is missing."""
    try:
        import kaleido  # noqa: F401
    except ImportError:
        return "kaleido is not installed: .venv/bin/pip install -e '.[notebooks]'"
    if find_browser() is None:
        return "no Chromium found (apt-get install chromium, or set BROWSER_PATH)"
    return None


def _start_kaleido() -> None:
    """Start kaleido's Chromium once per process; later figures reuse it (0.3 s instead of 3-4 s)."""
    import kaleido

    browser = find_browser()
    if browser and not os.environ.get("BROWSER_PATH"):
        os.environ["BROWSER_PATH"] = browser  # choreographer (kaleido's driver) reads it
    # mathjax=False: the default page loads MathJax from a CDN, and nothing here may go online.
    if not kaleido._global_server.is_running():
        kaleido.start_sync_server(n=1, timeout=90, mathjax=False, silence_warnings=True)
        # Stop Chromium before the interpreter tears down kaleido's thread (else a JSON error is printed).
        atexit.register(kaleido.stop_sync_server, silence_warnings=True)


def _compress(png: bytes) -> bytes:
    """The same picture in at most 256 colours, optimised: charts lose nothing visible."""
    try:
        from PIL import Image
    except ImportError:  # Pillow comes with streamlit; without it, the PNG as Chromium wrote it
        return png
    image = Image.open(io.BytesIO(png)).convert("RGB")
    out = io.BytesIO()
    image.quantize(colors=256, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE).save(
        out, format="PNG", optimize=True)
    return out.getvalue() if out.tell() < len(png) else png


def figure_png(fig, *, width: int | None = None, height: int | None = None, scale: float = 1.0) -> bytes:
    """A PNG of a plotly figure (a Figure or its dict), drawn by kaleido in headless Chromium.

    The size is the figure's own (layout.width/height) where it sets one, else WIDTH x HEIGHT.
    An animated figure is drawn as JupyterLab first shows it: its first frame, the Play button beside.
    """
    missing = image_support()
    if missing:
        raise UserError(f"cannot draw a still image of the figure: {missing}")
    import kaleido

    fig_dict = fig if isinstance(fig, dict) else fig.to_plotly_json()
    layout = fig_dict.get("layout", {})
    opts = {"format": "png", "width": width or layout.get("width") or WIDTH,
            "height": height or layout.get("height") or HEIGHT, "scale": scale}
    _start_kaleido()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        png = kaleido.calc_fig_sync(fig_dict, opts=opts)
    if isinstance(png, BaseException):  # the server hands back the error it met
        raise png
    return _compress(png)


def still_bundle(fig) -> dict[str, str]:
    """{"image/png": base64 PNG} of `fig`, to add to a display bundle; {} when images cannot be drawn."""
    if image_support():
        return {}
    return {"image/png": base64.b64encode(figure_png(fig)).decode("ascii")}


def shorter_floats(obj, digits: int = SIGNIFICANT_DIGITS):
    """`obj` (plotly's JSON) with every float cut to `digits` significant digits.

    0.123978487123876 -> 0.123978. A chart cannot show more, and a notebook stores each
    number on a line of its own: a heatmap's 17-digit floats were most of a chapter's size.
    """
    if isinstance(obj, float):
        return float(f"{obj:.{digits}g}") if math.isfinite(obj) else obj
    if isinstance(obj, list):
        return [shorter_floats(x, digits) for x in obj]
    if isinstance(obj, dict):
        return {k: shorter_floats(v, digits) for k, v in obj.items()}
    return obj


def images_wanted() -> bool:
    """Draw still images? Not under the smoke switch (tests), nor where they cannot be drawn."""
    return not smoke() and image_support() is None


def _renderer_class():
    from plotly.io._base_renderers import PlotlyRenderer

    class StillAndLiveRenderer(PlotlyRenderer):
        """plotly's notebook renderer (the JSON JupyterLab draws) plus a PNG for static viewers."""

        def __init__(self, images: bool):
            super().__init__()
            self.images = images

        def to_mimebundle(self, fig_dict):
            bundle = super().to_mimebundle(fig_dict)
            bundle[PLOTLY_MIME] = shorter_floats(bundle[PLOTLY_MIME])
            if self.images:
                try:
                    bundle.update(still_bundle(bundle[PLOTLY_MIME]))
                except Exception as e:  # a figure without its picture is better than no figure
                    log.warning("no still image for this figure: %s", e)
            return bundle

    return StillAndLiveRenderer


def notebook_figures(*, images: bool | None = None) -> None:
    """Show plotly figures in this notebook as live figures with a still PNG beside each.

    Call once, in the setup cell. `images=None` draws them unless the smoke switch is on
    or Chromium/kaleido is missing (then one warning says what to install).
    """
    import plotly.io as pio

    if images is None:
        images = images_wanted()
        missing = image_support()
        if missing and not smoke():
            log.warning("figures will show only in JupyterLab, not on GitHub or in nbconvert: %s", missing)
    pio.renderers[RENDERER] = _renderer_class()(images=images)
    pio.renderers.default = RENDERER

