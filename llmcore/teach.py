"""Notebook helpers: check an exercise answer, the smoke switch, and the notebook glue.

Every chapter (notebooks/00..07) ends with exercises. A learner writes an answer and
asks for feedback:

    >>> from llmcore import teach
    >>> teach.check("05.2", None)          # no answer yet: the question and a hint
    Exercise 05.2: Which temperature makes sampling always pick the most likely token ...
    >>> teach.check("05.2", 1)
    Exercise 05.2: Not yet. 1: temperature 1 samples from the model's own probabilities, ...
    >>> teach.check("05.2", 0).ok
    True

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
`ProgressBar`, a training callback that draws a tqdm.auto bar (the CLI draws its own,
the dashboard an st.progress), and `sampling_explorer`, the ipywidgets sliders for
temperature, top-k and top-p (the dashboard has Streamlit sliders).
"""

from __future__ import annotations

import functools
import math
import os
from collections.abc import Callable
from dataclasses import dataclass, field

from llmcore.code_exercises import CODE_EXERCISES, CodeExercise, judge, shipped_run
from llmcore.errors import UserError

SMOKE_ENV = "LLMCORE_SMOKE"


def smoke() -> bool:
    """True when LLMCORE_SMOKE is set to 1/true/yes/on: notebooks shrink their heavy cells."""
    return os.environ.get(SMOKE_ENV, "").strip().lower() in ("1", "true", "yes", "on")


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
# The exercises. `expected` computes the answer from the library; `mistakes` maps
# a function of the expected answer to what a learner who gave it probably did.
# ---------------------------------------------------------------------------


@dataclass
class Exercise:
    question: str
    hint: str
    expected: Callable[[], object]
    kind: str = "number"  # "number" (relative tolerance) or "text" (case and quotes ignored)
    rel_tol: float = 1e-6
    mistakes: list[tuple[Callable[[object], object], str]] = field(default_factory=list)


_run = shipped_run  # the shipped run, loaded once (llmcore.code_exercises)


@functools.lru_cache(maxsize=1)
def _sae():
    from llmcore.interpret.sae import load_sae

    return load_sae(_run())


def _n_params() -> int:
    return _run().model.n_params()


def _params_info() -> dict:
    from llmcore.params import inspect_file

    return inspect_file(_run().params_file)


BRIDGE_SENTENCE = "The fog rolled over the Golden Gate Bridge."
LENS_PROMPT = "Once upon a"


def _bridge_tokens() -> int:
    return len(_run().tokenizer.encode(BRIDGE_SENTENCE))


def _years_to_read_10tb() -> float:
    from llmcore import scale

    return scale.reading_equivalents(10e12)["reading_years"]


def _val_bytes_per_token() -> float:
    from llmcore.corpus import load_corpus

    return load_corpus("storyworld", "val").stats(_run().tokenizer)["bytes_per_token"]


def _top_next_token() -> str:
    from llmcore.generate import next_token_probs

    run = _run()
    return next_token_probs(run.model, run.tokenizer, LENS_PROMPT, k=1)[0][0]


def _top_p_kept() -> int:
    import torch

    from llmcore.generate import Sampling, distribution

    probs = torch.tensor([0.5, 0.25, 0.15, 0.10])
    return int((distribution(probs.log(), Sampling(temperature=1.0, top_p=0.7)) > 0).sum())


def _lens_first_block() -> int:
    """The first block after which the logit lens's top guess is already the model's final one."""
    from llmcore.interpret.lens import logit_lens

    run = _run()
    lens = logit_lens(run.model, run.tokenizer, LENS_PROMPT, k=1)
    final = lens.top_strs[-1][-1][0]
    for i, stage in enumerate(lens.stages):
        if stage.startswith("block") and lens.top_strs[i][-1][0] == final:
            return int(stage.split()[1])
    return run.model.cfg.n_layers - 1


def _llama_70b_days_on(gpus: int) -> float:
    from llmcore import scale

    return scale.wall_clock_days(scale.get_preset("llama-2-70b").reported_gpu_hours, gpus)


def _decode_ratio() -> float:
    from llmcore import scale

    return next(c["computed"] for c in scale.llama2_70b_check()["claims"] if c["id"] == "decode_ratio")


def _gpt3_gpu_hours() -> float:
    from llmcore import scale

    return scale.estimate("gpt-3-175b")["results"]["gpu_hours"]["value"]


EXERCISES: dict[str, Exercise] = {
    "00.1": Exercise(
        "The shipped model stores every parameter in 2 bytes (fp16). How many bytes of numbers "
        "(the file without its header) does its parameter file hold?",
        "multiply the parameter count, `run.model.n_params()`, by the bytes per parameter.",
        lambda: 2 * _n_params(),
        mistakes=[(lambda e: e // 2, "that is the number of parameters; each one takes 2 bytes."),
                  (lambda e: _params_info()["bytes_on_disk"], "that is the whole file: take the header away.")],
    ),
    "00.2": Exercise(
        "Which stage of the flowchart would you visit to find out *why* the model wrote about a "
        "bridge? Give its name as in `llmcore.diagrams.STAGES`.",
        "one stage looks inside the model instead of using it.",
        lambda: "interpretability", kind="text",
        mistakes=[(lambda e: "inference", "inference makes the text; it does not explain it."),
                  (lambda e: "steering", "steering changes the model; first you must find what to change.")],
    ),
    "01.1": Exercise(
        f"How many tokens does the shipped BPE tokenizer cut {BRIDGE_SENTENCE!r} into?",
        "`len(bpe.encode(sentence))` (`bpe` is the shipped tokenizer, loaded in this chapter).",
        _bridge_tokens,
        mistakes=[(lambda e: len(BRIDGE_SENTENCE), "that is the number of characters."),
                  (lambda e: len(BRIDGE_SENTENCE.split()), "that is the number of words; BPE cuts differently.")],
    ),
    "01.2": Exercise(
        "Reading 250 words a minute, 8 hours a day, every day, with about 6 bytes per word, how "
        "many years would one person need to read Llama 2's 10 TB of text?",
        "10e12 bytes / 6 bytes per word gives words; then divide by words per minute, minutes per "
        "hour, hours per day and days per year (`llmcore.scale.reading_equivalents` does it too).",
        _years_to_read_10tb, rel_tol=0.05,
        mistakes=[(lambda e: e * 8 / 24, "you read 24 hours a day; the question says 8.")],
    ),
    "01.3": Exercise(
        "On the story world's validation text, how many bytes does one token of the shipped "
        "tokenizer stand for, on average?",
        "`load_corpus('storyworld', 'val').stats(bpe)` has a 'bytes_per_token' entry.",
        _val_bytes_per_token, rel_tol=0.02,
        mistakes=[(lambda e: 1 / e, "that is tokens per byte: turn it over.")],
    ),
    "02.1": Exercise(
        "Before training, a model spreads its guess evenly over all 1,024 tokens. What is its "
        "loss (cross-entropy, in nats per token)?",
        "the loss is -ln(probability of the right token), and every token has probability 1/1024.",
        lambda: math.log(1024), rel_tol=0.01,
        mistakes=[(lambda e: math.log2(1024), "that is in bits (log base 2); the loss uses the natural log.")],
    ),
    "02.2": Exercise(
        "How many tokens did the shipped run read while it trained (steps x batch_size x n_ctx)?",
        "`shipped.provenance['train_config']` has the steps and batch size; `shipped.model.cfg.n_ctx` the context.",
        lambda: _run().provenance["tokens_seen"],
        mistakes=[(lambda e: e // _run().model.cfg.n_ctx, "that counts windows; each holds n_ctx tokens.")],
    ),
    "02.3": Exercise(
        "Turn the shipped run's validation loss (nats per token) into bits per byte, using the "
        "bytes per token of its validation text.",
        "divide by ln 2 to get bits per token, then by bytes per token.",
        lambda: _run().provenance["val_bpb"], rel_tol=0.03,
        mistakes=[(lambda e: e * math.log(2), "you forgot to divide by ln 2 (nats -> bits)."),
                  (lambda e: e * _val_bytes_per_token(), "that is bits per token; divide by bytes per token.")],
    ),
    "03.1": Exercise(
        "How many bytes would the shipped model's numbers take in fp32 (no header)?",
        "fp32 spends 4 bytes on every parameter.",
        lambda: 4 * _n_params(),
        mistakes=[(lambda e: e // 2, "that is the fp16/bf16 size: 2 bytes per parameter."),
                  (lambda e: e // 4, "that is the parameter count; multiply by the bytes per number.")],
    ),
    "03.2": Exercise(
        "Llama-2-70B has 70 billion parameters. How big is its parameter file in int8, in GB (1e9 bytes)?",
        "int8 stores one byte per parameter (`llmcore.scale.file_size_bytes(70e9, 'int8')`).",
        lambda: 70.0, rel_tol=0.01,
        mistakes=[(lambda e: 140.0, "that is bf16, 2 bytes per parameter; int8 uses 1."),
                  (lambda e: 280.0, "that is fp32, 4 bytes per parameter; int8 uses 1.")],
    ),
    "03.3": Exercise(
        "Which part holds most of the shipped model's parameters: embeddings, attention, mlp or norms?",
        "`llmcore.model.parameter_breakdown(run.model.cfg)`.",
        lambda: max(_breakdown().items(), key=lambda kv: kv[1])[0], kind="text",
    ),
    "05.1": Exercise(
        f"Which token does the shipped model find most likely after {LENS_PROMPT!r}?",
        "`llmcore.generate.next_token_probs(run.model, run.tokenizer, prompt)` lists its guesses.",
        _top_next_token, kind="text",
    ),
    "05.2": Exercise(
        "Which temperature makes sampling always pick the most likely token (the same as top_k=1)?",
        "the temperature divides the logits; one value is treated as 'greedy' (see `llmcore.generate.Sampling`).",
        lambda: 0.0, rel_tol=0.0,
        mistakes=[(lambda e: 1.0, "temperature 1 samples from the model's own probabilities, not the top one.")],
    ),
    "05.3": Exercise(
        "Four tokens have probabilities 0.5, 0.25, 0.15 and 0.10. With top_p = 0.7, how many of "
        "them can still be drawn?",
        "sort from most to least likely and keep tokens until their total reaches top_p.",
        _top_p_kept,
        mistakes=[(lambda e: e - 1, "0.5 is not yet 0.7: the next token is needed to reach it.")],
    ),
    "06.1": Exercise(
        "Which feature (its index) did the SAE's labelling pick for the Golden Gate Bridge?",
        "`sae.metrics['concepts']['golden_gate_bridge']`.",
        lambda: _sae().metrics["concepts"]["golden_gate_bridge"]["feature"],
    ),
    "06.2": Exercise(
        "The SAE keeps exactly k features on for every token, out of d_sae. What fraction of its "
        "features is on for one token?",
        "`sae.cfg.k / sae.cfg.d_sae`.",
        lambda: _sae().cfg.k / _sae().cfg.d_sae, rel_tol=0.01,
        mistakes=[(lambda e: 1 / e, "that is turned over: on features / all features.")],
    ),
    "06.3": Exercise(
        f"In the logit lens for {LENS_PROMPT!r}, after which block (0, 1, ...) does the top guess "
        "first match the model's final answer?",
        "`logit_lens(run.model, run.tokenizer, 'Once upon a').at(-1)` lists every stage's top guesses "
        "for the last token; read them from the top.",
        _lens_first_block,
    ),
    "07.1": Exercise(
        "Llama 2 70B took 1,720,320 GPU-hours. On 12,000 GPUs instead of 6,000, how many days "
        "would it take?",
        "`llmcore.scale.wall_clock_days(gpu_hours, n_gpus)`: GPU-hours / GPUs / 24.",
        lambda: _llama_70b_days_on(12_000), rel_tol=0.02,
        mistakes=[(lambda e: 2 * e, "that is with 6,000 GPUs; twice the GPUs, half the days.")],
    ),
    "07.2": Exercise(
        "By the memory-bandwidth bound, how many times slower does Llama-2-70B write a token than "
        "Llama-2-7B (68.98B and 6.74B parameters, both bf16)?",
        "each token reads every weight once, so the time per token grows with the bytes of weights.",
        _decode_ratio, rel_tol=0.05,
    ),
    "07.3": Exercise(
        "How many A100 GPU-hours would GPT-3 (175B parameters, 300B tokens) need at MFU 0.43?",
        "`llmcore.scale.estimate('gpt-3-175b')['results']['gpu_hours']`, or 6 x N x D / "
        "(312e12 FLOP/s x 0.43 x 3600).",
        _gpt3_gpu_hours, rel_tol=0.05,
    ),
}


def _breakdown() -> dict:
    from llmcore.model import parameter_breakdown

    return parameter_breakdown(_run().model.cfg)


# Every exercise by id: the answers that are numbers or words above, the functions of
# chapter 04 (llmcore.code_exercises) beside them.
ALL_EXERCISES: dict[str, Exercise | CodeExercise] = dict(sorted({**EXERCISES, **CODE_EXERCISES}.items()))


# ---------------------------------------------------------------------------
# Checking
# ---------------------------------------------------------------------------


def _show(value) -> str:
    """An answer as the learner would write it: 652,206 / 5.97333 / ' time'."""
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
# Notebook glue: a progress bar for training, sliders for sampling
# ---------------------------------------------------------------------------


class ProgressBar:
    """A callback for `llmcore.train.train` that draws a tqdm.auto bar in a notebook.

    The bar shows the step, loss, tokens/s and (when measured) validation bits per byte;
    with `samples=True`, each timeline sample ("Once upon a time" -> ...) is written
    under it as training goes, so the noise turning into sentences is seen live.
    """

    def __init__(self, *, samples: bool = True, prompt: str | None = None):
        self.samples, self.prompt, self.bar, self._shown = samples, prompt, None, None

    def __call__(self, ev) -> None:
        from tqdm.auto import tqdm

        if ev.kind == "start":
            desc = f"training {ev.info.get('n_params', 0):,} parameters"
            if _is_notebook_bar(tqdm):
                # Shown under a display id, so that "done" can replace the saved text ("0%|...")
                # with the finished bar: GitHub and nbconvert show that text, not the widget.
                from IPython.display import display

                self.bar = tqdm(total=ev.steps, initial=ev.step, unit="step", desc=desc, display=False)
                self._shown = display(self.bar.container, display_id=True)
            else:
                self.bar = tqdm(total=ev.steps, initial=ev.step, unit="step", desc=desc)
        elif self.bar is None:
            return
        elif ev.kind == "step":
            self.bar.update(ev.step - self.bar.n)
            post = {"loss": f"{ev.loss:.3f}"}
            if ev.val_bpb is not None:
                post["val bits/byte"] = f"{ev.val_bpb:.3f}"
            self.bar.set_postfix(post, refresh=False)
        elif ev.kind == "sample" and self.samples and ev.samples:
            prompt = self.prompt if self.prompt in ev.samples else next(iter(ev.samples))
            self.bar.write(f"step {ev.step:>5}: {prompt!r} -> {ev.samples[prompt][:70]!r}")
        elif ev.kind == "done":
            self.bar.close()
            if self._shown is not None:
                self._shown.update(self.bar.container)


def _is_notebook_bar(tqdm_class) -> bool:
    """True when tqdm.auto chose its Jupyter widget bar (it draws a plain text bar elsewhere)."""
    try:
        from tqdm.notebook import tqdm_notebook
    except ImportError:
        return False
    return issubclass(tqdm_class, tqdm_notebook)


def sampling_explorer(model, tokenizer, prompt: str, *, k: int = 12):
    """Sliders for temperature, top-k and top-p over the next-token distribution after `prompt`.

    An `ipywidgets.interactive`: moving a slider redraws `llmcore.viz.sampling_figure`
    (the model's probabilities beside those actually sampled from). Display it as a
    cell's last line. Without a widget front-end (nbconvert, GitHub, a PDF) a viewer
    shows instead the still image it carries: the figure for the sliders' starting
    settings (temperature 1, top-k off, top-p 1), drawn by `llmcore.viz.still_bundle`.
    """
    import ipywidgets as widgets

    from llmcore.generate import Sampling
    from llmcore.viz.inference import sampling_data, sampling_figure
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
