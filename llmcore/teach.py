"""Notebook helpers: check an exercise answer, the smoke switch, and the notebook glue.

Every chapter (notebooks/00..07) ends with exercises. A learner writes an answer and
asks for feedback:

    >>> from llmcore import teach
    >>> teach.check("05.3", None)          # no answer yet: the question and a hint
    Exercise 05.3: Four tokens have probabilities 0.5, 0.25, 0.15 and 0.10. With top_p = 0.7, ...
    >>> teach.check("05.3", 1)
    Exercise 05.3: Not yet. 1: 0.5 is not yet 0.7: the next token is needed to reach it.
    >>> teach.check("05.3", 2).ok
    True

Every exercise asks the learner to predict or work out something the screen has not
shown, or to write a small function, and then verifies it (`llmcore.exercises`).

`check` never raises on a wrong or missing answer: it returns a `Feedback` that the
notebook shows (a line of Markdown), so a notebook with unanswered exercises still
runs from top to bottom. The right answers are computed here from the library and
the shipped run (`load_run("storyworld")`), never typed in, so they stay true when
the run is retrained. Worked solutions live in notebooks/solutions/. In chapter 04 the
answer is a function (softmax, an attention head, ...), run on the model's real
inputs and compared with its own hooks (`llmcore.code_exercises`):

    >>> teach.check("04.1", lambda x: x.softmax(-1)).ok
    True

`smoke()` is the switch the notebook tests flip (env LLMCORE_SMOKE=1, as Pyro's
`smoke_test`). A student never sees it: a heavy cell shows its real numbers
(`steps=300`), and the smaller ones the tests run with sit in the cell's metadata
(notebooks/conftest.py applies them); inside the kernel, `llmcore.viz.notebook_figures`
reads the switch to skip the still images nbval never compares.

Two pieces of notebook-only glue live here too, because a notebook defines no code:
`ProgressBar`, the training callback that draws a tqdm.auto bar (llmcore.progress's,
shared with the CLI; the dashboard draws an st.progress), and `sampling_explorer`, the
ipywidgets sliders for temperature, top-k and top-p (the dashboard has Streamlit sliders).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from llmcore import SMOKE_ENV, smoke  # noqa: F401 (the notebooks' and tests' names)
from llmcore.code_exercises import CODE_EXERCISES, CodeExercise, judge, judge_function
from llmcore.errors import UserError
from llmcore.exercises import EXERCISES, Exercise, mystery_feature  # noqa: F401 (the notebooks' names)
from llmcore.progress import ProgressBar  # noqa: F401 (teach.ProgressBar in the notebooks)

# ---------------------------------------------------------------------------
# What check() returns
# ---------------------------------------------------------------------------


@dataclass
class Feedback:
    """The verdict on one answer: ok is True (right), False (not yet) or None (no answer)."""

    exercise: str
    ok: bool | None
    message: str

    def __bool__(self) -> bool:
        return bool(self.ok)

    def __repr__(self) -> str:
        mark = {True: "Right!", False: "Not yet.", None: "Your turn."}[self.ok]
        return f"Exercise {self.exercise}: {mark} {self.message}" if self.ok is not None else self.message

    def _repr_markdown_(self) -> str:
        icon = {True: "\u2705", False: "\u274c", None: "\u270f\ufe0f"}[self.ok]
        return f"{icon} {self!r}"


# ---------------------------------------------------------------------------
# The exercises: chapters 00-03 and 05-07 in llmcore.exercises, chapter 04's functions
# in llmcore.code_exercises.
# ---------------------------------------------------------------------------

# Every exercise by id: the answers that are numbers or words above, the functions of
# chapter 04 (llmcore.code_exercises) beside them.
ALL_EXERCISES: dict[str, Exercise | CodeExercise] = dict(sorted({**EXERCISES, **CODE_EXERCISES}.items()))


# ---------------------------------------------------------------------------
# Checking
# ---------------------------------------------------------------------------


def _show(value) -> str:
    """An answer as the learner would write it: 652,206 / 5.97333 / ' time'."""
    if hasattr(value, "shape") and getattr(value, "ndim", 0) > 0:  # a tensor: its first numbers
        return "[" + ", ".join(format(float(v), ".4g") for v in value.flatten()[:6]) + (", ...]" if value.numel() > 6 else "]")
    x = None if isinstance(value, str) else _as_number(value)  # ints, floats, numpy and torch scalars
    if x is None or not math.isfinite(x):
        return repr(value)
    return f"{int(x):,}" if x.is_integer() and abs(x) < 1e15 else format(x, ",.6g")


def _norm_text(value) -> str:
    """' Time' -> 'time', '"mlp"' -> 'mlp': case, outer spaces and quotes do not count."""
    return str(value).strip().strip("'\"`").strip().lower().replace("_", " ")


def _as_number(value) -> float | None:
    """An int, float, numpy or torch scalar as a float; None for anything else."""
    if isinstance(value, bool):
        return None
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def _matches(ex: Exercise, answer, expected) -> bool:
    if ex.kind == "text":
        return _norm_text(answer) == _norm_text(expected)
    x = _as_number(answer)
    if x is None or not math.isfinite(x):
        return False
    return math.isclose(x, float(expected), rel_tol=ex.rel_tol, abs_tol=1e-9)


def _same(a, b, rel_tol: float) -> bool:
    """One output of the learner's function against the reference's: tensors, numbers or anything else."""
    if hasattr(a, "shape") and hasattr(b, "shape"):  # torch tensors
        import torch

        a, b = torch.as_tensor(a).double(), torch.as_tensor(b).double()
        return a.shape == b.shape and bool(torch.allclose(a, b, rtol=rel_tol, atol=1e-7))
    x, y = _as_number(a), _as_number(b)
    if x is not None and y is not None:
        return math.isfinite(x) and math.isclose(x, y, rel_tol=rel_tol, abs_tol=1e-9)
    return a == b


def _outputs(fn, cases: list[tuple]) -> list:
    """fn run on every case; an exception propagates to the caller."""
    return [fn(*case) for case in cases]


def _call(case: tuple) -> str:
    return "(" + ", ".join(repr(c) if not hasattr(c, "shape") else f"tensor of {len(c)}" for c in case) + ")"


def _check_function(exercise: str, ex: Exercise, fn) -> Feedback:
    """Run the learner's function on the exercise's cases; compare with the reference, then the mistakes."""
    name, cases, reference = getattr(fn, "__name__", "your function"), ex.cases(), ex.expected()

    def miss(got, want, case) -> str | None:
        return None if _same(got, want, ex.rel_tol) else (
            f"{name}{_call(case)} gives {_show(got)}, but it should be {_show(want)}. Hint: {ex.hint}")

    def right(got) -> str:
        return f"{name} gives the right answer on all {len(cases)} inputs, e.g. {name}{_call(cases[0])} = {_show(got[0])}."

    mistakes = [(lambda wrong=wrong: _outputs(wrong(reference), cases), why) for wrong, why in ex.mistakes]
    ok, why = judge_function(fn, cases, _outputs(reference, cases), mistakes, miss, right)
    if ok is None:
        return Feedback(exercise, None, f"Exercise {exercise}: {ex.question} Hint: {ex.hint}")  # body not written yet
    if ok or why.startswith(name) or not callable(fn):
        return Feedback(exercise, ok, why)
    return Feedback(exercise, False, f"{name}: {why}")


def expected(exercise: str):
    """The right answer to an exercise, computed from the library (for tests and teachers).

    For a code exercise: the model's own output on the exercise's inputs (a tensor).
    """
    return _exercise(exercise).expected()


def _exercise(exercise: str) -> Exercise | CodeExercise:
    if exercise not in ALL_EXERCISES:
        raise UserError(f"no exercise {exercise!r}; the exercises are {', '.join(sorted(ALL_EXERCISES))}")
    return ALL_EXERCISES[exercise]


def check(exercise: str, answer) -> Feedback:
    """Check `answer` to `exercise` ("03.1"); None gives the question and a hint.

    Returns a Feedback (shown as one line in a notebook); never raises for a wrong answer.
    """
    ex = _exercise(exercise)
    if answer is None:
        return Feedback(exercise, None, f"Exercise {exercise}: {ex.question} Hint: {ex.hint}")
    if isinstance(ex, CodeExercise):  # the answer is a function, run on the model's real inputs
        ok, why = judge(ex, answer)
        if ok is None:
            return Feedback(exercise, None, f"Exercise {exercise}: {ex.question} ({why}) Hint: {ex.hint}")
        return Feedback(exercise, ok, why)
    if ex.kind == "function":
        return _check_function(exercise, ex, answer)
    if ex.kind == "prompt":  # judged by what the model writes after it
        ok, why = ex.judge(answer)
        return Feedback(exercise, ok, f"{_show(answer)}: {why}")
    want = ex.expected()
    if _matches(ex, answer, want):
        return Feedback(exercise, True, f"{_show(answer)} is correct.")
    if ex.kind == "number" and _as_number(answer) is None:
        return Feedback(exercise, False, f"{_show(answer)} is not a number; give a number (e.g. 1234 or 1.5e9).")
    for wrong, why in ex.mistakes:
        if _matches(ex, answer, wrong(want)):
            return Feedback(exercise, False, f"{_show(answer)}: {why}")
    if ex.kind == "number":
        x, w = _as_number(answer), float(want)
        direction = "too big" if x > w else "too small"
        if w and x and (x / w >= 2 or w / x >= 2):
            direction += f", by a factor of about {max(x / w, w / x):.3g}"
        return Feedback(exercise, False, f"{_show(answer)} is {direction}. Hint: {ex.hint}")
    return Feedback(exercise, False, f"{_show(answer)} is not it. Hint: {ex.hint}")


# ---------------------------------------------------------------------------
# Notebook glue: sliders for sampling (the progress bar is llmcore.progress's)
# ---------------------------------------------------------------------------


def sampling_explorer(model, tokenizer, prompt: str, *, k: int = 12):
    """Sliders for temperature, top-k and top-p over the next-token distribution after `prompt`.

    An `ipywidgets.interactive`: moving a slider redraws `llmcore.viz.sampling_figure`
    (the model's probabilities beside those actually sampled from). Display it as a
    cell's last line. Without a widget front-end (nbconvert, GitHub, a PDF) a viewer
    shows instead the still image it carries: the figure for the sliders' starting
    settings (temperature 1, top-k off, top-p 1), drawn by `llmcore.viz.still_bundle`.
    """
    import ipywidgets as widgets

    from llmcore.generate import Sampling, sampling_data
    from llmcore.viz.inference import sampling_figure
    from llmcore.viz.static import images_wanted, still_bundle

    def redraw(temperature=1.0, top_k=0, top_p=1.0):
        s = Sampling(temperature=temperature, top_k=top_k, top_p=top_p)
        before, after, labels = sampling_data(model, tokenizer, prompt, s, k=k)
        knobs = f"temperature {temperature:g}, top-k {top_k or 'off'}, top-p {top_p:g}"
        return sampling_figure(before, after, labels, settings=knobs)

    class WithStill(widgets.interactive):
        """The sliders, plus a PNG of the starting figure for viewers that cannot run widgets."""

        def _repr_mimebundle_(self, **kwargs):
            bundle = super()._repr_mimebundle_(**kwargs)
            if images_wanted():
                bundle.update(still_bundle(redraw()))
            return bundle

    slider = {"continuous_update": False, "style": {"description_width": "initial"}}
    return WithStill(
        redraw,
        temperature=widgets.FloatSlider(value=1.0, min=0.0, max=2.0, step=0.05, description="temperature", **slider),
        top_k=widgets.IntSlider(value=0, min=0, max=k, description="top-k (0 = off)", **slider),
        top_p=widgets.FloatSlider(value=1.0, min=0.05, max=1.0, step=0.05, description="top-p", **slider),
    )
