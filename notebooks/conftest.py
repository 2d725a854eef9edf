"""How the notebooks are tested (nbval), following TransformerLens's demo tests.

    pytest notebooks --nbval-lax --nbval-sanitize-with notebooks/sanitize.cfg

A student's notebook shows only the lesson: everything the tests need sits in
cell metadata, which JupyterLab, GitHub and nbconvert do not show.

- Every notebook runs top to bottom; with --nbval-lax only the cells tagged
  `nbval-check-output` (token ids, parameter counts, file sizes, calculator
  results) have their output compared with the committed one, after the
  regexes in sanitize.cfg blank out what changes between runs. nbval reads the
  tag itself (JupyterLab: the cell's property inspector, "Cell Tags").
- Plotly figures, their still images and widgets are never compared: their JSON
  holds random ids and floating-point noise, and a PNG differs in its bytes
  from one Chromium to the next. An output that carries one of SKIPPED_MIME is
  dropped from both sides before nbval compares a cell.
- The smoke switch is on unless the caller says otherwise (LLMCORE_SMOKE=0 runs
  the full-size chapters). Under it, a heavy cell runs with smaller numbers: its
  metadata `llmcore.smoke` maps text of its source to the text that replaces it
  (`{"steps=300": "steps=20"}`), so the student reads `steps=300` and the test
  trains 20 steps. A replacement that no longer matches its cell exactly once
  fails the cell, so an edited lesson cannot silently run at full size here.
  The kernel sees the switch too: `llmcore.viz.notebook_figures()` draws no still
  images under it (they are never compared, and each costs Chromium time).
- One torch thread per kernel (OMP_NUM_THREADS=1): the suite runs two notebooks
  at once (-n 2) on two cores, and oversubscribed OpenMP threads spin instead of
  working (measured here: 32 tokens took 10.7 s with 2 threads on a busy machine,
  0.3 s with 1).

The kernel inherits this process's environment, so the variables set here reach
the notebooks.
"""

import os

os.environ.setdefault("LLMCORE_SMOKE", "1")
os.environ.setdefault("PYTHONHASHSEED", "0")
os.environ.setdefault("OMP_NUM_THREADS", "1")

# MIME types whose outputs are not compared (figures, their still images, widgets).
SKIPPED_MIME = {
    "application/vnd.plotly.v1+json",
    "application/vnd.jupyter.widget-view+json",
    "application/vnd.jupyter.widget-state+json",
    "image/png",
    "image/svg+xml",
}


def _without_rich(outputs):
    """The outputs of a cell minus figures and widgets (their text/html and text/plain go too)."""
    return [o for o in outputs if not (set(o.get("data", {})) & SKIPPED_MIME)]


def smaller(source: str, replacements: dict[str, str]) -> str:
    """`source` with each key of `replacements` (found exactly once) replaced by its value."""
    for full, small in replacements.items():
        if source.count(full) != 1:
            raise ValueError(f"smoke replacement {full!r} is in this cell {source.count(full)} times, not once: "
                             f"update the cell's metadata llmcore.smoke")
        source = source.replace(full, small)
    return source


def _smoke_on() -> bool:
    from llmcore.teach import smoke

    return smoke()


def pytest_collection_modifyitems(items):
    for item in items:
        if type(item).__name__ != "IPyNbCell":
            continue
        compare = item.compare_outputs

        def compare_without_rich(test, ref, skip_compare=None, _compare=compare):
            return _compare(_without_rich(test), _without_rich(ref), skip_compare)

        item.compare_outputs = compare_without_rich
        replacements = item.cell.get("metadata", {}).get("llmcore", {}).get("smoke")
        if replacements and _smoke_on():
            try:
                item.cell.source = smaller(item.cell.source, replacements)
            except ValueError as e:  # the cell fails with this message instead of running at full size
                item.cell.source = f"raise ValueError({str(e)!r})"
