"""How the notebooks are tested (nbval), following TransformerLens's demo tests.

    pytest notebooks --nbval-lax --nbval-sanitize-with notebooks/sanitize.cfg

- Every notebook runs top to bottom; with --nbval-lax only the cells marked
  `# NBVAL_CHECK_OUTPUT` (token ids, parameter counts, file sizes, calculator
  results) have their output compared with the committed one, after the
  regexes in sanitize.cfg blank out what changes between runs.
- Plotly figures and widgets are never compared: their JSON holds random ids
  and floating-point noise. An output that carries a plotly or widget MIME type
  is dropped from both sides before nbval compares a cell.
- The smoke switch is on unless the caller says otherwise (LLMCORE_SMOKE=0 runs
  the full-size chapters): heavy cells train fewer steps on less text.
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

# MIME types whose outputs are not compared (figures and widgets).
SKIPPED_MIME = {
    "application/vnd.plotly.v1+json",
    "application/vnd.jupyter.widget-view+json",
    "application/vnd.jupyter.widget-state+json",
}


def _without_rich(outputs):
    """The outputs of a cell minus figures and widgets (their text/html and text/plain go too)."""
    return [o for o in outputs if not (set(o.get("data", {})) & SKIPPED_MIME)]


def pytest_collection_modifyitems(items):
    for item in items:
        if type(item).__name__ != "IPyNbCell":
            continue
        compare = item.compare_outputs

        def compare_without_rich(test, ref, skip_compare=None, _compare=compare):
            return _compare(_without_rich(test), _without_rich(ref), skip_compare)

        item.compare_outputs = compare_without_rich
