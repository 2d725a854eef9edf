"""Sensible defaults for the text you have and the time you have: which model, context, batch, lr, steps.

`pick(text_chars, seconds=...)` answers "what should I train on my 640 kB text in two
minutes?" with a `Choice` and its reason, in two lines a learner can read:

    >>> print(pick(640_000, seconds=120, tokenizer="char").reason)
    640 kB of text, 120 s: preset nano (0.031M parameters), context 64, batch 12, lr 0.005, about
    16,718 steps (13M tokens, 418 per parameter, 20 passes over the text),
    because it is the largest model that sees at least 20 tokens per parameter in this time; micro
    would still be near its random start when time is up

The rule for a time budget, measured on this project's 2-core CPU (each CPU preset trained
60 s on a 50 kB, a 640 kB and a 10 MB text: benchmarks/bench_recipe.py --sweep,
benchmarks/results/recipe.json):

1. How many tokens can each model see in the time? Its tokens per second (batch 12 at its
   own context, one thread: `TOKENS_PER_S`) times the seconds.
2. Bigger models learn more from each token but see fewer of them. Take the largest
   preset that sees at least `MIN_TOKENS_PER_PARAM` (20) tokens per parameter. Measured:
   nano at ~200 tokens per parameter beat micro at 7 on the 640 kB text (0.45 bits per
   byte lower) and the 10 MB one (0.88 lower); 20 is Chinchilla's ratio, inside that bracket.
3. A model that reads the text more than `MAX_PASSES` (40) times learns it by heart and
   its held-out loss rises: then take the next bigger preset, if it still sees at least
   `MIN_TOKENS_FOR_BIGGER` (2) tokens per parameter. Measured on the 50 kB text: nano
   (150 passes) ended 0.23 bits per byte worse than micro (35 passes, 7 per parameter);
   the storyworld preset (0.7 per parameter) was worse than both.
4. Batch 12 and lr 5e-3, warm-up then a cosine to 3e-4 over the budget: llmcore.train's
   recipe (benchmarks/README.md). Context: the preset's, or less when the text is short
   (at most 1/16 of its tokens, so one window is a small part of it).

Without a time budget (steps, or nothing: 4,000 steps) the trade-off of step 2 does not
arise, since more parameters cost time, not loss, and it was not measured: the shape is
the shipped run's (the storyworld preset), with the context of step 4.

`llmcore train` calls `configure`, which calls `pick` for every setting the user did not
give (explicit flags always win) and prints the reason; a notebook can call either.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

# Measured: tokens per second of one training step (batch 12, the preset's context, one
# thread, fused AdamW) on the 2-core AMD EPYC this project is benchmarked on, for a
# character vocabulary (~100) and BPE 1,024. A faster machine shifts every preset alike.
TOKENS_PER_S = {  # preset: (char, bpe)
    "nano": (107_000, 62_000),
    "micro": (26_000, 19_000),
    "storyworld": (9_300, 9_100),
    "small-10m": (1_100, 1_100),
}
CHARS_PER_TOKEN = {"char": 1.0, "bpe": 3.0}  # BPE 1,024 measured 2.6 (Vim manual) to 3.4 (story world)
MIN_TOKENS_PER_PARAM = 20.0  # step 2 of the rule
MAX_PASSES = 40.0  # step 3: more passes over the text than this, and a bigger model does better
MIN_TOKENS_FOR_BIGGER = 2.0  # step 3: ... if it still sees this many tokens per parameter
STEPS_PRESET = "storyworld"  # the shape for a run by steps: the shipped run's
BATCH, LR = 12, 5e-3  # step 4: llmcore.train's defaults (benchmarks/bench_recipe.py)
VOCAB = {"char": 100, "bpe": 1024}  # the vocabulary size a preset's parameters are counted with


@dataclass
class Choice:
    """What `pick` chose, ready for TrainConfig (`settings()`), and why (`reason`)."""

    preset: str
    n_ctx: int
    batch_size: int
    lr: float
    steps: int  # the schedule's length; with a time budget, a cap about twice the steps expected
    expected_steps: int  # steps the budget should give on this project's CPU
    n_params: int
    tokens: int  # tokens the model sees in the budget
    text_tokens: int
    reason: str

    def settings(self) -> dict:
        """The TrainConfig fields this choice sets."""
        return {"preset": self.preset, "n_ctx": self.n_ctx, "batch_size": self.batch_size, "lr": self.lr,
                "steps": self.steps}

    def to_dict(self) -> dict:
        return asdict(self)


def pick(text_chars: int, seconds: float | None = None, steps: int | None = None, tokenizer: str = "char",
         vocab_size: int = 1024, *, preset: str | None = None, n_ctx: int | None = None,
         batch_size: int | None = None, lr: float | None = None) -> Choice:
    """Model shape, context, batch, lr and steps for `text_chars` characters of training text.

    Give the budget as `seconds` (a time budget) or `steps`; with neither, 4,000 steps.
    `tokenizer` is "char" or "bpe" (anything else, such as a tokenizer.json, counts as BPE).
    `preset`, `n_ctx`, `batch_size` and `lr` are the user's own choices, if any: kept, and
    the rest (and the reason) follow from them.
    """
    from llmcore.model import config_from_preset

    kind = "char" if tokenizer == "char" else "bpe"
    vocab = VOCAB["char"] if kind == "char" else vocab_size
    text_tokens = max(1, int(text_chars / CHARS_PER_TOKEN[kind]))
    batch, rate = batch_size or BATCH, lr or LR
    if seconds is None and steps is None:
        steps = 4000

    def ctx(p: str) -> int:
        return n_ctx or _context(p, text_tokens)

    def budget_tokens(p: str) -> int:  # tokens model p sees in the budget
        return int(seconds * TOKENS_PER_S[p][kind == "bpe"]) if seconds is not None else steps * batch * ctx(p)

    sizes = {p: config_from_preset(p, vocab, n_ctx=ctx(p)).n_params() for p in TOKENS_PER_S}
    order = list(TOKENS_PER_S)  # small to large
    if preset is not None:
        why = "you chose the preset"
    elif seconds is None:
        preset = STEPS_PRESET
        why = ("a run by steps keeps the shipped run's shape (the rule that picks a model is for a time "
               "budget: give --max-seconds)")
    else:
        preset, why = _by_time(order, sizes, budget_tokens, text_tokens)
    if preset not in sizes:  # a preset too big for a CPU budget: counted, not measured
        sizes[preset] = config_from_preset(preset, vocab, n_ctx=ctx(preset)).n_params()
    context, n_params = ctx(preset), sizes[preset]
    if seconds is not None:  # tokens per second scale with the batch's tokens per step, roughly
        tokens = int(seconds * TOKENS_PER_S.get(preset, (1_000, 1_000))[kind == "bpe"])
        expected = max(1, tokens // (batch * context))
        if steps is not None:  # a step cap that binds first
            expected = min(expected, steps)
            tokens = min(tokens, steps * batch * context)
        cap = steps if steps is not None else max(100, 2 * expected)  # time decides, unless steps were given
    else:
        tokens, expected = steps * batch * context, steps
        cap = steps
    reason = (f"{_size(text_chars)} of text, "
              f"{f'{seconds:g} s' if seconds is not None else f'{steps:,} steps'}: preset {preset} "
              f"({n_params / 1e6:.2g}M parameters), context {context}, batch {batch}, lr {rate:g}, "
              f"{'about ' if seconds is not None else ''}{expected:,} steps ({_count(tokens)} tokens, "
              f"{_num(tokens / n_params)} per parameter, {_num(tokens / text_tokens)} passes over the text),\nbecause {why}")
    return Choice(preset, context, batch, rate, cap, expected, n_params, tokens, text_tokens, reason)


def _by_time(order: list[str], sizes: dict, budget_tokens, text_tokens: int) -> tuple[str, str]:
    """Steps 2 and 3 of the rule: the preset for a time budget, and why, in plain words."""
    def per_param(p):
        return budget_tokens(p) / sizes[p]

    fit = [p for p in order if per_param(p) >= MIN_TOKENS_PER_PARAM]
    preset = fit[-1] if fit else order[0]
    why = (f"it is the largest model that sees at least {MIN_TOKENS_PER_PARAM:g} tokens per parameter in this time"
           if fit else "even the smallest model sees few tokens per parameter in this time")
    moved = False
    while budget_tokens(preset) / text_tokens > MAX_PASSES and preset != order[-1]:
        bigger = order[order.index(preset) + 1]
        if per_param(bigger) < MIN_TOKENS_FOR_BIGGER:
            break
        preset, moved = bigger, True
    if moved:
        smaller = order[order.index(preset) - 1]
        return preset, (f"{smaller} would read the text more than {MAX_PASSES:g} times and learn it by heart, "
                        f"and {preset} still sees {_num(per_param(preset))} tokens per parameter")
    if preset != order[-1]:
        bigger = order[order.index(preset) + 1]
        why += f"; {bigger} would still be near its random start when time is up"
    return preset, why


def _context(preset: str, text_tokens: int) -> int:
    """The preset's context, or less for a short text: a window at most 1/16 of it (at least 16)."""
    from llmcore.model import PRESETS

    return max(16, min(PRESETS[preset]["n_ctx"], 2 ** int(text_tokens // 16).bit_length() // 2 or 16))


def _count(n: float) -> str:
    """3_100_000 -> "3.1M", 330_000_000 -> "330M", 1536 -> "1,536"."""
    if n < 1_000_000:
        return f"{n:,.0f}"
    return f"{n / 1e6:,.0f}M" if n >= 10_000_000 else f"{n / 1e6:.2g}M"


def _num(x: float) -> str:
    """420.3 -> "420", 4.87 -> "4.9", 0.312 -> "0.31": as many digits as a reader needs."""
    return f"{x:,.0f}" if x >= 10 else f"{x:.2g}"


def _size(chars: int) -> str:
    """1_100_000 -> "1.1 MB", 50_000 -> "50 kB" (characters, counted as bytes)."""
    if chars >= 1_000_000:
        return _count(chars).replace("M", " MB")
    return f"{chars / 1e3:.3g} kB" if chars >= 1000 else f"{chars} characters"


def text_chars(corpus: str, n_chars: int | None = None) -> int:
    """About how many characters of training text `corpus` gives (its train split), without tokenizing it.

    The story world's size is known; python-docs is built from the stdlib; a file or
    folder is counted by its bytes (close to characters for English). The training
    split is 90% of a text; `n_chars` keeps at most that many.
    """
    from llmcore.corpus import TRAIN_CHARS, python_docs

    if corpus == "storyworld":
        return n_chars or TRAIN_CHARS
    if corpus == "python-docs":
        size = len(python_docs().text)
    else:
        p = Path(corpus).expanduser()
        files = sorted(f for f in p.iterdir() if f.is_file() and f.suffix.lower() == ".txt") if p.is_dir() else [p]
        size = sum(f.stat().st_size for f in files if f.is_file())
    return int(0.9 * min(size, n_chars or size))


PICKED = ("preset", "n_ctx", "batch_size", "lr", "steps")  # the TrainConfig fields pick() fills


def configure(given: dict, resume_from=None):
    """A TrainConfig from the settings a user gave, with pick() filling the rest; -> (config, Choice or None).

    `given` holds only what the user set (CLI flags, a notebook's keywords): those always
    win. Fields in `PICKED` that are not given come from `pick` for the text and budget.
    A run resumed from `resume_from` (its folder) takes every setting not given from its
    checkpoint instead, so `llmcore train --out runs/mine --resume` needs no other flag.
    """
    from llmcore.train import TrainConfig, checkpoint_config

    saved = checkpoint_config(resume_from) if resume_from is not None else None
    if saved is not None:
        return TrainConfig.from_dict(saved | given), None
    base = TrainConfig(**given)  # every given field checked before anything is read
    if all(name in given for name in PICKED):
        return base, None
    choice = pick(text_chars(base.corpus, base.n_chars), seconds=base.max_seconds,
                  steps=given.get("steps"), tokenizer=base.tokenizer, vocab_size=base.vocab_size,
                  **{k: given[k] for k in ("preset", "n_ctx", "batch_size", "lr") if k in given})
    return TrainConfig(**(choice.settings() | given)), choice  # warm-up, if not given, follows the steps
