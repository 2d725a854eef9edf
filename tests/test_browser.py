"""The dashboard in a real browser: `streamlit run` on a free port, every page in headless Chromium.

Needs Debian's chromium (/usr/bin/chromium, installed by scripts/setup.sh) and
Playwright's Python package; skips with the reason when either is missing. Each page
must finish running, show its key element (the flowchart on home, plotly charts,
generated text on inference) and no error; a screenshot of each goes to
test-output/screenshots/.
"""

import json
import shutil
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # the server helpers in benchmarks/common.py, shared with the soak and benchmark

from benchmarks.common import chromium_path, start_server, stop_server  # noqa: E402

pytestmark = [pytest.mark.browser, pytest.mark.slow]

SHOTS = ROOT / "test-output" / "screenshots"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]
BUSY = '[data-testid="stStatusWidget"], [data-testid="stSpinner"]'
PAGES = {  # url path -> (file name, what must be visible)
    "": ("home", '[data-testid="stMermaidChart"] img:visible'),
    "data": ("data", ".js-plotly-plot"),
    "pretraining": ("pretraining", ".js-plotly-plot"),
    "parameters": ("parameters", ".js-plotly-plot"),
    "model": ("model", ".js-plotly-plot"),
    "inference": ("inference", ".js-plotly-plot"),
    "interpretability": ("interpretability", ".js-plotly-plot"),
    "scale": ("scale", ".js-plotly-plot"),
}


def make_run(folder: Path, tiny_bpe_run: Path) -> Path:
    """A tiny run with a metrics and a timeline file, when the shipped run is not built."""
    shutil.copytree(tiny_bpe_run, folder)
    rows = [{"step": s, "loss": 6 - s / 10} | ({"val_loss": 6 - s / 10, "val_bpb": 3 - s / 20} if s % 5 == 0 else {})
            for s in range(1, 21)]
    (folder / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    timeline = [{"step": s, "samples": {"Once upon a time": f" step {s}"},
                 "embedding_2d": {"tokens": [" the", "."], "xy": [[s, 0], [0, s]]}} for s in (0, 10, 20)]
    (folder / "timeline.jsonl").write_text("".join(json.dumps(r) + "\n" for r in timeline))
    return folder


def settle(page, quiet: float = 1.0, timeout: float = 120.0) -> float:
    """Wait until the app has finished running: no 'Running...' widget and no spinner for `quiet` s."""
    t0, calm = time.time(), None
    while time.time() - t0 < timeout:
        if page.locator(BUSY).count():
            calm = None
        elif calm is None:
            calm = time.time()
        elif time.time() - calm >= quiet:
            return calm - t0
        page.wait_for_timeout(100)
    raise AssertionError(f"the app was still running after {timeout:.0f} s")


def no_errors(page, name: str):
    assert page.locator('[data-testid="stException"]').count() == 0, f"{name}: a traceback is shown"
    errors = page.locator('[data-testid="stAlertContentError"]')
    assert errors.count() == 0, f"{name}: error shown: {errors.first.inner_text()[:200]}"


@pytest.fixture(scope="module")
def server(tmp_path_factory, tiny_bpe_run):
    if chromium_path() is None:
        pytest.skip("no chromium binary (/usr/bin/chromium): run scripts/setup.sh as root, or apt-get install chromium")
    pytest.importorskip("playwright.sync_api", reason="Playwright's Python package is not installed")
    from llmcore.run import shipped_runs

    tmp = tmp_path_factory.mktemp("browser")
    run_dir = None if "storyworld" in shipped_runs() else str(make_run(tmp / "run", tiny_bpe_run))
    proc, url = start_server(tmp / "streamlit.log", run_dir=run_dir)
    yield url
    stop_server(proc)


@pytest.fixture(scope="module")
def browser(server):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=chromium_path(), args=CHROMIUM_ARGS)
        yield b
        b.close()


def test_every_page_in_a_browser(server, browser):
    SHOTS.mkdir(parents=True, exist_ok=True)
    page = browser.new_page(viewport={"width": 1300, "height": 2400})
    for path, (name, key) in PAGES.items():
        page.goto(f"{server}/{path}")
        page.wait_for_selector("h1", timeout=90_000)
        settle(page)
        page.wait_for_selector(key, state="visible", timeout=60_000)
        no_errors(page, name)
        if name == "home":  # st.mermaid_chart draws the flowchart as an SVG image
            kind = page.locator(key).first.evaluate("async img => (await (await fetch(img.src)).blob()).type")
            assert kind.startswith("image/svg+xml")
            assert page.locator('[data-testid="stPageLink"]').count() >= 6
        page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)
    page.close()


# --- every page fits every screen: measured in the DOM ------------------------------------

SCREENS = {  # name -> (viewport, address suffix)
    "laptop": ({"width": 1400, "height": 1000}, ""),
    "projector": ({"width": 1280, "height": 800}, "?projector=1"),
    "phone": ({"width": 400, "height": 850}, ""),
}
# Everything that does not fit, as one list of lines (empty: all fits). Hidden elements (inactive
# tabs, the flowchart drawing for the other screen width) have no size and are skipped.
MEASURE = """() => {
  const out = [], main = document.querySelector('[data-testid="stMain"]');
  const seen = el => { const r = el.getBoundingClientRect(); return r.width > 0 && r.height > 0 ? r : null; };
  const name = el => (el.textContent || '').trim().slice(0, 50);
  const W = window.innerWidth;
  if (document.documentElement.scrollWidth > W + 1) out.push(`page scrolls sideways: ${document.documentElement.scrollWidth} > ${W}`);
  if (main && main.scrollWidth > main.clientWidth + 1) out.push(`main area scrolls sideways: ${main.scrollWidth} > ${main.clientWidth}`);
  // plotly: every piece of text inside its figure and on the screen
  for (const plot of document.querySelectorAll('.js-plotly-plot')) {
    const box = seen(plot); if (!box || !plot.checkVisibility()) continue;  // a closed expander's plot is laid out stale
    const title = name(plot.querySelector('.gtitle') || plot).slice(0, 30);
    for (const t of plot.querySelectorAll('svg text')) {
      const r = seen(t); if (!r || !name(t)) continue;
      if (getComputedStyle(t).visibility === 'hidden' || getComputedStyle(t).opacity === '0') continue;
      if (/<\/?(span|b|u|br)\b|style=/.test(t.textContent))  // markup plotly failed to read shows as letters
        out.push(`figure "${title}": markup shown as text: "${name(t)}"`);
      if (r.left < box.left - 2 || r.right > box.right + 2 || r.top < box.top - 2 || r.bottom > box.bottom + 2
          || r.left < -1 || r.right > W + 1)
        out.push(`figure "${title}": text "${name(t)}" clipped (${Math.round(r.left)}..${Math.round(r.right)} of ${Math.round(box.left)}..${Math.round(box.right)})`);
    }
  }
  // anything cut short with an ellipsis: buttons, metrics, page links, labels
  for (const el of main.querySelectorAll('*')) {
    if (!seen(el)) continue;
    const cs = getComputedStyle(el);
    if (cs.textOverflow === 'ellipsis' && el.scrollWidth > el.clientWidth + 1 && name(el))
      out.push(`text cut short: "${name(el)}" (${el.scrollWidth} > ${el.clientWidth})`);
  }
  for (const el of main.querySelectorAll('button, [data-testid="stMetricValue"], [data-testid="stPageLink"] a')) {
    if (seen(el) && el.scrollWidth > el.clientWidth + 1 && getComputedStyle(el).overflowX !== 'auto')
      out.push(`"${name(el)}" does not fit its box (${el.scrollWidth} > ${el.clientWidth})`);
  }
  // the tour's flowchart: its words at least 9 px high (mermaid draws them 16 px at natural size)
  for (const img of main.querySelectorAll('[data-testid="stMermaidChart"] img')) {
    const r = seen(img); if (!r || !img.naturalWidth) continue;
    const px = 16 * r.width / img.naturalWidth;
    if (px < 9) out.push(`flowchart text is ${px.toFixed(1)} px high`);
  }
  return out;
}"""


@pytest.mark.parametrize("screen", list(SCREENS))
def test_every_page_fits_the_screen(server, browser, screen):
    """Laptop, projector (in projector mode) and phone: no clipped figure text, nothing cut short, no sideways scroll."""
    viewport, suffix = SCREENS[screen]
    page = browser.new_page(viewport=viewport)
    problems = []
    for path, (name, key) in PAGES.items():
        page.goto(f"{server}/{path}{suffix}")
        page.wait_for_selector("h1", timeout=90_000)
        settle(page)
        page.wait_for_selector(key, state="visible", timeout=60_000)
        no_errors(page, f"{name} ({screen})")
        # What a visitor opens must fit too: every expander and toggle, and on Inference the generation.
        closed = page.locator("details:not([open]) > summary")
        while closed.count():
            closed.first.click()
        off = page.locator('[data-testid="stMain"] [data-testid="stCheckbox"]:has(input:not(:checked)) label')
        while off.count():  # the toggle's label: its input is drawn as a switch, and on a phone not "visible"
            off.first.click()
            settle(page)
        if name == "inference":
            page.get_by_role("button", name="Generate").click(timeout=90_000)
            page.wait_for_selector('[class*="st-key-wide_generation"] .js-plotly-plot', state="attached",
                                   timeout=90_000)
        settle(page)
        # Plotly lays its text out after the element appears (a table wraps its cells last), and
        # later still on a busy machine: measure until the layout holds still, then keep what stays.
        found = page.evaluate(MEASURE)
        for _ in range(8):
            if not found:
                break
            page.wait_for_timeout(750)
            found = page.evaluate(MEASURE)
        problems += [f"{name} ({screen}): {p}" for p in found]
        if name == "scale":  # the calculator's Llama-2-70B numbers, whole and in words people read right
            values = page.locator('[data-testid="stMetricValue"]').all_inner_texts()
            for want in ("68.977 B", "138 GB", "8 TB", "1.71 million", "11.9 days", "$1.97 million", "14.8 tokens/s"):
                assert want in [v.strip() for v in values], (screen, want, values)
        if screen == "projector":
            assert page.locator('[data-testid="stSidebar"] input[type="checkbox"]').first.is_checked()
        tall = page.evaluate("() => document.querySelector('[data-testid=stMain]').scrollHeight")
        page.set_viewport_size({"width": viewport["width"], "height": min(tall, 8000)})
        page.screenshot(path=str(SHOTS / f"{name}-{screen}.png"))
        page.set_viewport_size(viewport)
    page.close()
    assert not problems, "\n".join(problems)


def test_generate_in_the_browser(server, browser):
    page = browser.new_page(viewport={"width": 1300, "height": 2400})
    page.goto(f"{server}/inference")
    page.wait_for_selector("h1", timeout=90_000)
    settle(page)
    page.get_by_role("button", name="Generate").click(timeout=90_000)
    prompt = "Mia and Tom went to the"  # the page's default prompt
    result = page.locator('[data-testid="stText"]', has_text=prompt).first
    result.wait_for(state="visible", timeout=90_000)
    settle(page)
    no_errors(page, "inference after Generate")
    generated = result.inner_text()
    assert generated.startswith(prompt) and len(generated) > len(prompt)
    assert page.locator(".llmcore-token").count() > 5  # the text as token chips
    page.screenshot(path=str(SHOTS / "inference-generated.png"), full_page=True)
    page.close()


def test_model_page_in_the_browser(server, browser):
    """The Model page: the architecture and the step's numbers drawn side by side; Next moves both."""
    page = browser.new_page(viewport={"width": 1366, "height": 1600})
    page.goto(f"{server}/model")
    page.wait_for_selector("h1", timeout=90_000)
    settle(page)
    no_errors(page, "model")
    plots = page.locator(".js-plotly-plot")
    plots.nth(1).wait_for(state="visible", timeout=60_000)
    arch, numbers = plots.nth(0), plots.nth(1)
    assert arch.locator(".annotation-text", has_text="Block 0 \u00b7 attention").count() == 1  # the boxes, labelled
    assert arch.locator(".annotation-text", has_text="residual stream").count() == 1
    assert numbers.locator(".gtitle").first.text_content().startswith("1/")  # the step's caption
    assert numbers.locator(".heatmaplayer image, .hm").count() >= 1  # the heatmap of its numbers
    a, b = arch.bounding_box(), numbers.bounding_box()
    assert a["x"] + a["width"] <= b["x"] + 1, "the two figures overlap"
    page.get_by_role("button", name="Next").click()
    page.wait_for_function("() => [...document.querySelectorAll('.gtitle')].some(t => t.textContent.startsWith('2/'))",
                           timeout=60_000)
    settle(page)
    no_errors(page, "model after Next")
    page.screenshot(path=str(SHOTS / "model-step-2.png"), full_page=True)
    # Play: the fragment's timer moves on by itself (every 2 s) until it is switched off
    thumb = page.locator('[data-testid="stSliderThumbValue"]').first
    assert thumb.inner_text().startswith("2.")
    page.locator("label", has_text="Play").click()
    page.wait_for_function("() => /^[3-9]\\./.test(document.querySelector('[data-testid=stSliderThumbValue]')"
                           ".innerText)", timeout=30_000)
    page.locator("label", has_text="Play").click()
    no_errors(page, "model while playing")
    page.close()


def test_switch_pages_in_one_session(server, browser):
    page = browser.new_page(viewport={"width": 1300, "height": 1400})
    page.goto(server)
    page.wait_for_selector("h1", timeout=90_000)
    settle(page)
    for title in ("Parameters", "Model", "Scale", "Home: the tour"):
        page.locator('[data-testid="stSidebarNavLink"]', has_text=title).click()
        page.wait_for_timeout(300)
        settle(page)
        no_errors(page, title)
    assert "How a large language model works" in page.locator("h1").first.inner_text()
    page.close()
