"""Exercises whose answer is a function: the learner writes a piece of the transformer.

Chapter 04 (the Model stage) asks for softmax, one attention head, the MLP, the logits
and one whole block, each in a few lines of torch, ARENA style. `judge(exercise, fn)`
runs the learner's function on the shipped model's real cached inputs (the prompt
"Mia went to the") and compares what it returns with the model's own hook values:

    >>> judge(CODE_EXERCISES["04.1"], lambda x: x.softmax(-1))
    (True, 'matches blocks.0.attn.hook_pattern to within 0.0001 (largest difference 0)')

Wrong functions are refused with a reason, never a traceback: an exception, the wrong
shape, NaN, or a result that matches a *named mistake* (no mask, no scale, softmax over
the wrong axis, the residual add forgotten ...), found by running the wrong versions
on the same inputs. `teach.check` turns the verdict into the notebook's Feedback.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from dataclasses import dataclass, field

PROMPT = "Mia went to the"
SHIPPED_RUN = "storyworld"
ATOL = 1e-4  # largest difference from the model's own numbers that still counts as right


@dataclass
class CodeExercise:
    question: str
    hint: str
    inputs: Callable[[], tuple]  # the real inputs, from the model's cache
    expected: Callable[[], object]  # the model's own output for them (a tensor)
    source: str  # where the expected values come from (a hook name)
    mistakes: list[tuple[Callable, str]] = field(default_factory=list)  # wrong versions, and what they miss


@functools.lru_cache(maxsize=1)
def shipped_run():
    """The shipped run, loaded once per process (exercises of every chapter read it)."""
    from llmcore.run import load_run

    return load_run(SHIPPED_RUN)


@functools.lru_cache(maxsize=1)
def _cache():
    """(logits, cache) of the shipped model on PROMPT, batch dimension dropped."""
    import torch

    run = shipped_run()
    ids = torch.tensor([run.tokenizer.encode(PROMPT)])
    with torch.inference_mode():
        logits, cache = run.model.run_with_cache(ids)
    return logits[0].clone(), {name: t[0].clone() for name, t in cache.items()}


def _hook(name: str):
    return _cache()[1][name]


def _mask(scores):
    """Scores [..., q, k] with the future (above the diagonal) set to -inf."""
    import torch

    T = scores.shape[-1]
    return scores.masked_fill(torch.ones(T, T, dtype=torch.bool).triu(1), float("-inf"))


def _head(q, k, v, *, divisor=None, mask=True, dim=-1, values=True):
    """One attention head, with switches for the usual mistakes (divisor None: sqrt(d_head))."""
    scores = q @ k.T / (math.sqrt(q.shape[-1]) if divisor is None else divisor)
    pattern = (_mask(scores) if mask else scores).softmax(dim)
    return pattern @ v if values else pattern


def _layer_norm(x, w, b, *, unbiased=False):
    mean = x.mean(-1, keepdim=True)
    var = x.var(-1, keepdim=True, unbiased=unbiased)
    return (x - mean) / (var + 1e-5).sqrt() * w + b


def _mlp_params():
    mlp = shipped_run().model.blocks[0].mlp
    return tuple(t.detach() for t in (mlp.W_in, mlp.b_in, mlp.W_out, mlp.b_out))


def _unbatched(module):
    """A module of [batch, pos, d_model] as a function of [pos, d_model]."""
    return lambda x: module(x[None])[0]


def _block_parts():
    """Block 0's pieces as functions of [pos, d_model]: ln1, attn, ln2, mlp."""
    block = shipped_run().model.blocks[0]
    return tuple(_unbatched(m) for m in (block.ln1, block.attn, block.ln2, block.mlp))


def _gelu(h, approximate="tanh"):
    import torch.nn.functional as F

    return F.gelu(h, approximate=approximate)


CODE_EXERCISES: dict[str, CodeExercise] = {
    "04.1": CodeExercise(
        "Write `softmax(x)`: turn scores into probabilities along the last axis (each row adds up to 1). "
        "It gets block 0's masked attention scores, [head, query_pos, key_pos], with -inf above the diagonal.",
        "two steps: make every score positive with torch.exp, then divide each row by its own total "
        "(a sum along dim=-1, keeping the dimension so the division lines up).",
        lambda: (_hook("blocks.0.attn.hook_attn_scores"),),
        lambda: _hook("blocks.0.attn.hook_pattern"),
        "blocks.0.attn.hook_pattern",
        mistakes=[(lambda x: x.softmax(-2), "your columns add up to 1: sum along the last axis, dim=-1."),
                  (lambda x: x.exp(), "you forgot to divide by the sum of each row."),
                  (lambda x: x.exp() / x.exp().sum(), "you divided by the sum of all scores; divide each row by its own.")],
    ),
    "04.2": CodeExercise(
        "Write `attention_head(q, k, v)` for one head: scores q\u00b7k / \u221ad_head, the causal mask, a softmax "
        "along each row, then the weighted sum of the values. q, k, v are [pos, d_head] (block 0, head 0); "
        "return [pos, d_head].",
        "q @ k.T gives every query-key dot product; divide by the square root of d_head; cells above the "
        "diagonal are the future (torch.triu(..., diagonal=1) can mark them, masked_fill can set them to "
        "-inf); softmax along each row; then the pattern times v.",
        lambda: tuple(_hook(f"blocks.0.attn.hook_{n}")[:, 0] for n in "qkv"),
        lambda: _hook("blocks.0.attn.hook_z")[:, 0],
        "blocks.0.attn.hook_z (head 0)",
        mistakes=[(lambda q, k, v: _head(q, k, v, mask=False), "no causal mask: each token may read only itself "
                   "and earlier tokens; set the scores above the diagonal to -inf."),
                  (lambda q, k, v: _head(q, k, v, divisor=1.0), "you forgot to divide the scores by \u221ad_head."),
                  (lambda q, k, v: _head(q, k, v, divisor=q.shape[-1]),
                   "you divided by d_head; divide by its square root, math.sqrt(d_head)."),
                  (lambda q, k, v: _head(q, k, v, dim=-2), "softmax over the wrong axis: each row (one reader) "
                   "should add up to 1, so use dim=-1."),
                  (lambda q, k, v: _head(q, k, v, values=False),
                   "that is the pattern; multiply it by the values: pattern @ v.")],
    ),
    "04.3": CodeExercise(
        "Write `mlp(x, W_in, b_in, W_out, b_out)`: expand to d_mlp, apply GELU, project back. x is block 0's "
        "normalised stream [pos, d_model]; W_in is [d_model, d_mlp], W_out [d_mlp, d_model]. Return [pos, d_model].",
        "matrix-multiply by W_in and add b_in; bend with torch.nn.functional.gelu (GPT-2 uses "
        "approximate='tanh'); then the same with W_out and b_out.",
        lambda: (_hook("blocks.0.ln2.hook_normalized"), *_mlp_params()),
        lambda: _hook("blocks.0.hook_mlp_out"),
        "blocks.0.hook_mlp_out",
        mistakes=[(lambda x, Wi, bi, Wo, bo: _gelu(x @ Wi + bi, "none") @ Wo + bo,
                   "that is the exact GELU; GPT-2 uses its tanh approximation: F.gelu(h, approximate='tanh')."),
                  (lambda x, Wi, bi, Wo, bo: (x @ Wi + bi).relu() @ Wo + bo,
                   "that is ReLU; GPT-2 bends with GELU: F.gelu(h, approximate='tanh')."),
                  (lambda x, Wi, bi, Wo, bo: (x @ Wi + bi) @ Wo + bo,
                   "no GELU between the two matrices: without the bend, two matrices are just one."),
                  (lambda x, Wi, bi, Wo, bo: _gelu(x @ Wi) @ Wo, "you left out the biases b_in and b_out.")],
    ),
    "04.4": CodeExercise(
        "Write `logits(resid, w, b, W_U)`: the final LayerNorm of the last residual stream [pos, d_model] "
        "(mean 0, variance 1, epsilon 1e-5, then times w plus b), then the unembedding W_U [d_model, d_vocab]. "
        "Return [pos, d_vocab].",
        "subtract each row's mean, divide by the square root of its variance (+ 1e-5; .var needs "
        "unbiased=False to divide by n), multiply by w, add b, then matrix-multiply by W_U.",
        lambda: (_hook(f"blocks.{shipped_run().model.cfg.n_layers - 1}.hook_resid_post"),
                 shipped_run().model.ln_final.w.detach(), shipped_run().model.ln_final.b.detach(),
                 shipped_run().model.W_U.detach()),
        lambda: _cache()[0],
        "the model's logits",
        mistakes=[(lambda r, w, b, W: r @ W, "you skipped the final LayerNorm."),
                  (lambda r, w, b, W: _layer_norm(r, w, b, unbiased=True) @ W,
                   "torch's .var() divides by n - 1; LayerNorm divides by n: use unbiased=False."),
                  (lambda r, w, b, W: _layer_norm(r, 1.0, 0.0) @ W,
                   "after normalising, multiply by w and add b (LayerNorm's own learned numbers).")],
    ),
    "04.5": CodeExercise(
        "(Optional) Write `block(resid, ln1, attn, ln2, mlp)`: one whole transformer block. The four pieces "
        "are block 0's own, as functions of [pos, d_model]; you write how the residual stream flows.",
        "attention reads the normalised stream, ln1(resid), and its output is added to the stream; "
        "then the MLP does the same with ln2.",
        lambda: (_hook("blocks.0.hook_resid_pre"), *_block_parts()),
        lambda: _hook("blocks.0.hook_resid_post"),
        "blocks.0.hook_resid_post",
        mistakes=[(lambda r, l1, a, l2, m: (lambda x: x + m(l2(x)))(a(l1(r))),
                   "you forgot the first residual add: resid + attn(ln1(resid))."),
                  (lambda r, l1, a, l2, m: (lambda x: m(l2(x)))(r + a(l1(r))),
                   "you forgot the second residual add: resid + mlp(ln2(resid))."),
                  (lambda r, l1, a, l2, m: m(l2(a(l1(r)))),
                   "nothing is added back: each piece adds its result to the residual stream."),
                  (lambda r, l1, a, l2, m: (lambda x: x + m(x))(r + a(r)),
                   "attention and the MLP read the LayerNorm of the stream: attn(ln1(resid)), mlp(ln2(resid)).")],
    ),
}


def _fmt_shape(shape) -> str:
    return "[" + ", ".join(str(n) for n in shape) + "]"


def judge_function(fn, cases: list[tuple], want: list, mistakes, miss, right) -> tuple[bool | None, str]:
    """The one checker for an answer that is a function, whatever its exercise.

    Runs `fn` on every case (fresh copies of tensors, so a function that writes on its
    inputs spoils nothing), then: (True, "") when `miss(got, want, case)` finds nothing
    wrong anywhere; (False, why) for a crash, or for outputs equal to a *named mistake*'s
    (`mistakes`: pairs of a callable giving that wrong version's outputs, and why);
    (False, the first miss) otherwise; (None, ...) while the function returns None.
    """
    import torch

    if not callable(fn):
        return False, f"{repr(fn)[:40]} is not a function: give the function itself (its name, without brackets)."
    try:
        with torch.no_grad():
            got = [fn(*(t.clone() if isinstance(t, torch.Tensor) else t for t in case)) for case in cases]
    except Exception as e:  # any mistake in the learner's code: one line, no traceback
        reason = str(e).splitlines()[0] if str(e) else ""
        return False, f"your function stopped with {type(e).__name__}: {reason}"[:300]
    if got[0] is None:
        return None, "your function returns None: write its body."
    misses = [miss(g, w, case) for g, w, case in zip(got, want, cases)]
    if not any(misses):
        return True, right(got)
    for wrong_outputs, why in mistakes:
        try:
            if not any(miss(g, w, case) for g, w, case in zip(got, wrong_outputs(), cases)):
                return False, why
        except Exception:  # a wrong version that cannot run on some input matches nothing
            continue
    return False, next(m for m in misses if m)


def judge(ex: CodeExercise, fn) -> tuple[bool | None, str]:
    """Run the learner's `fn` on the real inputs and compare with the model's hook values."""
    inputs, want = ex.inputs(), ex.expected()

    def miss(got, want, _case) -> str | None:
        import torch

        try:
            got = torch.as_tensor(got).detach().float()
        except (TypeError, ValueError, RuntimeError):
            return f"your function returned {type(got).__name__}; return a torch tensor."
        if got.shape != want.shape:
            return f"it returns shape {_fmt_shape(got.shape)}; the model's is {_fmt_shape(want.shape)}."
        if torch.isnan(got).any() and not torch.isnan(want).any():
            return "it returns NaN (not a number) somewhere: look for 0/0 or inf - inf."
        diff = _max_diff(got, want.float())
        return None if diff <= ATOL else f"differs from {ex.source} by up to {diff:.3g}. Hint: {ex.hint}"

    def right(got) -> str:
        import torch

        diff = _max_diff(torch.as_tensor(got[0]).detach().float(), want.float())
        return f"matches {ex.source} to within {ATOL:g} (largest difference {diff:.2g})"

    mistakes = [(lambda wrong=wrong: [wrong(*inputs)], why) for wrong, why in ex.mistakes]
    return judge_function(fn, [inputs], [want], mistakes, miss, right)


def _max_diff(a, b) -> float:
    """The largest difference, with equal infinities (masked scores) counting as equal."""
    import torch

    if a.shape != b.shape:
        return math.inf
    same = (a == b) | (torch.isnan(a) & torch.isnan(b))
    d = (a - b).abs().masked_fill(same, 0.0)
    return float(d.max()) if d.numel() else 0.0
