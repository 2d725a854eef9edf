"""The exercises of chapters 00-03 and 05-07: predict, then verify.

Each exercise asks the learner to commit to something the screen has not shown (a
guess, a number worked out, a prompt, a small function) and then lets `teach.check`
verify it against the library and the shipped run. Nothing here is typed in: every
right answer is computed (`expected`), so it stays true when the run is retrained.

Four kinds of answer:

- "number": within `rel_tol` of the expected number;
- "text": the same words, case, outer spaces and quotes ignored;
- "function": the learner writes a small function; it is run on `cases()` and must
  give what the reference function (`expected()`) gives, e.g. chapter 01's

      def bytes_per_token(text):
          return len(text.encode("utf-8")) / len(bpe.encode(text))

- "prompt": a prompt for the shipped model, judged by what the model writes after it.

`mistakes` names the typical wrong answers: each maps the expected answer to a wrong
one (for a function: to a wrong function) and says what the learner probably did.
Chapter 04's exercises (functions run on the model's own hooks) live in
`llmcore.code_exercises`.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from dataclasses import dataclass, field

from llmcore.code_exercises import shipped_run as _run


@dataclass
class Exercise:
    question: str
    hint: str  # code in backticks runs as written in the exercise's chapter (tests/test_teach.py)
    expected: Callable[[], object]  # the right answer; for "function", the reference function
    kind: str = "number"  # "number", "text", "function" or "prompt" (see the module docstring)
    rel_tol: float = 1e-6
    mistakes: list[tuple[Callable[[object], object], str]] = field(default_factory=list)
    cases: Callable[[], list[tuple]] | None = None  # "function": the arguments it is run on
    judge: Callable[[object], tuple[bool, str]] | None = None  # "prompt": (ok, what the model wrote)


@functools.lru_cache(maxsize=1)
def _sae():
    from llmcore.interpret.sae import load_sae

    return load_sae(_run())


def _concept_feature(concept: str) -> int:
    return _sae().metrics["concepts"][concept]["feature"]


# ---------------------------------------------------------------------------
# 00 The big picture
# ---------------------------------------------------------------------------

BRIDGE_WORDS = ("bridge", "golden gate")
BRIDGE_PROMPT = "The tall red towers"  # one prompt that works (teachers, tests, the worked solution)


def _last_loss() -> float:
    return _run().metrics()[-1]["loss"]


def _greedy(prompt: str, n: int = 40) -> str:
    from llmcore.generate import Sampling, generate

    run = _run()
    return generate(run.model, run.tokenizer, prompt, Sampling(temperature=0.0, max_new_tokens=n))


def _judge_bridge_prompt(prompt) -> tuple[bool, str]:
    """A prompt that never names the bridge, after which the plain model writes about it."""
    if not isinstance(prompt, str) or not prompt.strip():
        return False, "give a prompt: some text in quotes, e.g. \"In the morning\"."
    said = [w for w in BRIDGE_WORDS if w in prompt.lower()]
    if said:
        return False, f"your prompt already says {said[0]!r}: make the model bring the bridge up by itself."
    text = _greedy(prompt)
    if any(w in text.lower() for w in BRIDGE_WORDS):
        return True, f"the model went on: {text!r}"
    return False, (f"the model went on: {text!r}, no bridge. Which other words come with the bridge "
                   "in the stories (chapter 01 shows three of them)?")


# ---------------------------------------------------------------------------
# 01 Pre-training data
# ---------------------------------------------------------------------------

BRIDGE_SENTENCE = "The fog rolled over the Golden Gate Bridge."
TOKEN_TEXTS = (BRIDGE_SENTENCE, "Mia ate a crème brûlée by the Golden Gate Bridge 🌉",
               "Ella found a shell on the beach.", "🌉🌉🌉", "Noël")


def _bpe():
    return _run().tokenizer


def _bridge_tokens() -> int:
    return len(_bpe().encode(BRIDGE_SENTENCE))


def _bytes_per_token(text):
    return len(text.encode("utf-8")) / len(_bpe().encode(text))


def _docs_bytes_per_token() -> float:
    from llmcore.corpus import load_corpus

    return load_corpus("python-docs", "all").stats(_bpe())["bytes_per_token"]


def _stories_bytes_per_token() -> float:
    from llmcore.corpus import load_corpus

    return load_corpus("storyworld", "train").stats(_bpe())["bytes_per_token"]


# ---------------------------------------------------------------------------
# 02 Pre-training
# ---------------------------------------------------------------------------

THE_PROMPT, THE_TOKEN = "Mia went to", " the"


def _char_vocab() -> int:
    from llmcore.corpus import load_corpus
    from llmcore.tokenizer import CharTokenizer

    return CharTokenizer.train(load_corpus("storyworld", "train").text).vocab_size


def _bits_per_byte(loss, bytes_per_token):
    return loss / math.log(2) / bytes_per_token


def _bpb_cases() -> list[tuple]:
    return [(_run().provenance["val_loss"], 3.4), (math.log(1024), 3.4), (2.0, 1.0), (0.5, 4.0)]


def _prob_of_the() -> float:
    from llmcore.generate import next_token_probs

    run = _run()
    return dict(next_token_probs(run.model, run.tokenizer, THE_PROMPT, k=run.tokenizer.vocab_size))[THE_TOKEN]


# ---------------------------------------------------------------------------
# 03 Parameters
# ---------------------------------------------------------------------------


def _one_mlp() -> int:
    cfg = _run().model.cfg
    return cfg.d_model * cfg.d_mlp + cfg.d_mlp + cfg.d_mlp * cfg.d_model + cfg.d_model


def _gpt_params(d_vocab, n_ctx, d_model, n_layers):
    from llmcore.model import GPTConfig, parameter_breakdown

    cfg = GPTConfig(d_vocab=d_vocab, n_ctx=n_ctx, d_model=d_model, n_layers=n_layers, n_heads=1)
    return sum(parameter_breakdown(cfg).values())


def _gpt_cases() -> list[tuple]:
    cfg = _run().model.cfg
    return [(cfg.d_vocab, cfg.n_ctx, cfg.d_model, cfg.n_layers), (50257, 1024, 768, 12), (1024, 64, 32, 1),
            (256, 256, 512, 8)]


def _as(value: float, dtype: str) -> float:
    import torch

    return torch.tensor(value, dtype=torch.float64).to(getattr(torch, dtype)).item()


# ---------------------------------------------------------------------------
# 05 The inference engine
# ---------------------------------------------------------------------------

LENS_PROMPT = "Once upon a"


def _top_next_token() -> str:
    from llmcore.generate import next_token_probs

    run = _run()
    return next_token_probs(run.model, run.tokenizer, LENS_PROMPT, k=1)[0][0]


def _top_k_filter(probs, k):
    """The reference: the library's own top-k (temperature 1, so only top-k acts)."""
    from llmcore.generate import Sampling, distribution

    return distribution(probs.log(), Sampling(temperature=1.0, top_k=k))


def _top_k_cases() -> list[tuple]:
    import torch

    from llmcore.generate import next_token_probs

    run = _run()
    real = torch.tensor([p for _, p in next_token_probs(run.model, run.tokenizer, "Mia went to the", k=40)])
    return [(torch.tensor([0.1, 0.5, 0.15, 0.25]), 2), (torch.tensor([0.05, 0.6, 0.3, 0.05 - 1e-3, 1e-3]), 3),
            (real / real.sum(), 5), (real / real.sum(), 1)]


def _keep_smallest(probs, k):
    kept = probs.masked_fill(probs > probs.sort().values[k - 1], 0.0)
    return kept / kept.sum()


def _not_renormalised(probs, k):
    return probs.masked_fill(probs < probs.topk(k).values[-1], 0.0)


TOP_P_PROBS, TOP_P = ("0.5", "0.25", "0.15", "0.10"), 0.7  # 05.3, written as the question writes them


def _top_p_kept() -> int:
    import torch

    from llmcore.generate import Sampling, distribution

    probs = torch.tensor([float(p) for p in TOP_P_PROBS])
    return int((distribution(probs.log(), Sampling(temperature=1.0, top_p=TOP_P)) > 0).sum())


# ---------------------------------------------------------------------------
# 06 Interpretability
# ---------------------------------------------------------------------------

MYSTERY_CONCEPT = "music"  # the concept behind chapter 06's unlabelled feature
FEATURE_TEXTS = (
    "It rained all day. The rain fell on the roof and the puddles grew.",
    "The waves crashed on the beach and the ocean was blue.",
    "They baked a cake in the oven with flour and eggs.",
    "The fog hid the tall towers of the Golden Gate Bridge.",
)


def mystery_feature() -> int:
    """Chapter 06's unlabelled feature: the learner names it from its top contexts."""
    return _concept_feature(MYSTERY_CONCEPT)


def _concepts() -> list[str]:
    return list(_sae().metrics["concepts"])


def _strongest_feature(text):
    from llmcore.interpret.features import encode_text

    return int(encode_text(_run(), _sae(), text).acts.sum(0).argmax())


def _strongest_token(text):
    from llmcore.interpret.features import encode_text

    return int(encode_text(_run(), _sae(), text).acts.sum(1).argmax())


def _last_token_feature(text):
    from llmcore.interpret.features import encode_text

    return int(encode_text(_run(), _sae(), text).acts[-1].argmax())


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


STEER_STORIES = 10  # 06.4: five neutral prompts x two seeds
STEER_MIN_MENTIONS, STEER_MAX_LOSS = 0.7, 0.3  # at least 7 of 10 stories; at most 0.3 nats/token less fluent


def _ocean_by_the_rule() -> tuple[int, float]:
    """06.4's answer as the hint writes it: the ocean's feature at the strength of llmcore's one rule."""
    from llmcore.interpret.features import default_strength

    feature = _concept_feature("ocean")
    return feature, default_strength(_run(), _sae(), feature)["strength"]


def _judge_ocean_steering(answer) -> tuple[bool, str]:
    """(feature, strength) that, raised, makes the model write about the ocean while staying readable."""
    from llmcore.errors import UserError
    from llmcore.generate import Sampling
    from llmcore.interpret.steer import NEUTRAL_PROMPTS, measure, steering_hook

    try:
        feature, strength = answer
        hook = steering_hook(_sae(), feature, strength, "raise")
    except (TypeError, ValueError):
        return False, "give two things, (feature, strength): e.g. (12, 0.5)."
    except UserError as e:
        return False, str(e)
    run, s = _run(), Sampling(temperature=0.8, max_new_tokens=30)
    prompts, seeds = NEUTRAL_PROMPTS[:5], range(STEER_STORIES // 5)
    plain = measure(run, prompts, seeds, "ocean", s)
    steered = measure(run, prompts, seeds, "ocean", s, hooks=[hook])
    said = (f"{steered['mention_rate'] * STEER_STORIES:.0f} of {STEER_STORIES} stories mention the ocean "
            f"(without steering {plain['mention_rate'] * STEER_STORIES:.0f}), fluency loss "
            f"{steered['fluency_loss']:.2f} (without steering {plain['fluency_loss']:.2f})")
    if steered["mention_rate"] < STEER_MIN_MENTIONS:
        if feature == _concept_feature("golden_gate_bridge"):
            return False, f"{said}: that is the bridge's feature; find the ocean's in sae.metrics['concepts']."
        if feature != _concept_feature("ocean"):
            return False, f"{said}: is that the ocean's feature? sae.metrics['concepts'] says which one it is."
        return False, f"{said}: push harder (a larger strength)."
    if steered["fluency_loss"] > plain["fluency_loss"] + STEER_MAX_LOSS:
        return False, f"{said}: the ocean is there but the sentences break; push more gently."
    return True, f"{said}. The ocean, readable."


# ---------------------------------------------------------------------------
# 07 Scale
# ---------------------------------------------------------------------------

A100_FLOPS, MFU = 312e12, 0.43


def _llama_70b_days_on(gpus: int) -> float:
    from llmcore import scale

    return scale.wall_clock_days(scale.get_preset("llama-2-70b").reported_gpu_hours, gpus)


def _tokens_per_s_70b(accelerator: str, dtype: str = "bf16") -> float:
    from llmcore import scale

    n = scale.get_preset("llama-2-70b").param_count()
    return scale.decode_tokens_per_s(n, dtype, scale.get_accelerator(accelerator).mem_bandwidth)


def _gpu_hours(n_params, tokens):
    return 6 * n_params * tokens / (A100_FLOPS * MFU * 3600)


def _gpu_hours_cases() -> list[tuple]:
    from llmcore import scale

    run = _run()
    return [(175e9, 300e9), (scale.get_preset("llama-2-70b").param_count(), 2e12),
            (run.model.n_params(), run.provenance["tokens_seen"])]


def _winner_at_equal_steps() -> str:
    from llmcore import sizes

    rows = sizes.compare()
    return sizes.winner(rows, step=min(r["steps"] for r in rows))


def _winner_at_equal_compute() -> str:
    """The lowest held-out loss when every size has used the compute the smallest used for all its steps."""
    from llmcore import sizes

    rows = sizes.compare()
    return sizes.winner(rows, flops=rows[0]["steps"] * rows[0]["flops_per_step"])


def _other_sizes(why: dict[str, str]) -> list[tuple[Callable, str]]:
    """A mistake for every size but the right one (None for the right one: it is not a mistake)."""
    return [(lambda e, n=name: n if n != e else None, message) for name, message in why.items()]


def _other_concepts(message: str) -> list[tuple[Callable, str]]:
    """A mistake for every planted concept but the right one (chapter 06's mystery feature)."""
    from llmcore.corpus import CONCEPT_RATES

    return [(lambda e, c=c: c if c != e else None, message) for c in CONCEPT_RATES]


SMALLEST_FIRST = "nano, micro or storyworld"

EXERCISES: dict[str, Exercise] = {
    "00.1": Exercise(
        "The loss is -ln(p), where p is the probability the model gave the right next token. After its "
        "last training step the shipped model's loss is printed above. What probability p does that loss "
        "stand for (a number from 0 to 1)? Predict first: more or less than one half?",
        "turn -ln(p) = loss around: p = e^(-loss), in Python `math.exp(-last['loss'])`.",
        lambda: math.exp(-_last_loss()), rel_tol=0.03,
        mistakes=[(lambda e: -math.log(e), "that is the loss itself; the probability is e to the minus loss."),
                  (lambda e: 1 + math.log(e), "1 - loss is not it: the loss is a logarithm, so undo it with e^(-loss)."),
                  (lambda e: 2 ** math.log(e), "that is 2^(-loss): the loss uses ln, the natural log, so use e."),
                  (lambda e: 1 / 1024, "that is a blind guess among 1,024 tokens, before any training.")],
    ),
    "00.2": Exercise(
        "Which stage of the flowchart would you visit to find out *why* the model wrote about a "
        "bridge? Give its name as in `llmcore.diagrams.STAGES`.",
        "one stage looks inside the model instead of using it (`diagrams.STAGES` lists them).",
        lambda: "interpretability", kind="text",
        mistakes=[(lambda e: "inference", "inference makes the text; it does not explain it."),
                  (lambda e: "steering", "steering changes the model; first you must find what to change.")],
    ),
    "00.3": Exercise(
        "Without steering and without saying 'bridge' or 'Golden Gate', write a prompt after which the "
        "plain model, always taking its top token (temperature 0), writes about the bridge within 40 tokens.",
        "change `prompt` in section 4 and run `generate(run.model, run.tokenizer, prompt, "
        "Sampling(temperature=0, max_new_tokens=40))`; think of what the bridge stories talk about.",
        lambda: BRIDGE_PROMPT, kind="prompt", judge=_judge_bridge_prompt,
    ),
    "01.1": Exercise(
        f"How many tokens does the shipped BPE tokenizer cut {BRIDGE_SENTENCE!r} into? Guess first "
        f"({len(BRIDGE_SENTENCE.split())} words, {len(BRIDGE_SENTENCE)} characters), then count.",
        "`len(bpe.encode('The fog rolled over the Golden Gate Bridge.'))`.",
        _bridge_tokens,
        mistakes=[(lambda e: len(BRIDGE_SENTENCE), "that is the number of characters (and of bytes): BPE merges "
                                                   "them into bigger pieces."),
                  (lambda e: len(BRIDGE_SENTENCE.split()), "that is the number of words; BPE cuts differently.")],
    ),
    "01.2": Exercise(
        "Write `bytes_per_token(text)`: how many bytes (UTF-8) one BPE token of `text` stands for, on "
        "average. It is run on sentences with accents and emoji too.",
        "bytes are `len(text.encode('utf-8'))`, tokens are `len(bpe.encode(text))`.",
        lambda: _bytes_per_token, kind="function", rel_tol=1e-9,
        cases=lambda: [(t,) for t in TOKEN_TEXTS],
        mistakes=[(lambda f: lambda text: len(text) / len(_bpe().encode(text)),
                   "that counts characters; 'è' is 2 bytes and '🌉' 4: count `text.encode('utf-8')`."),
                  (lambda f: lambda text: 1 / f(text), "that is tokens per byte: turn it over."),
                  (lambda f: lambda text: len(text.encode()) / len(text.split()), "that is bytes per word, not per token.")],
    ),
    "01.3": Exercise(
        "The BPE tokenizer learnt its pieces from the stories (bytes per token printed above). On the "
        "Python docs (real English it never saw), how many bytes does one token stand for? Predict first: "
        "more or fewer than on the stories? Then measure.",
        "`bytes_per_token(docs.text)` with your function, or `docs.stats(bpe)['bytes_per_token']`.",
        _docs_bytes_per_token, rel_tol=0.01,
        mistakes=[(lambda e: _stories_bytes_per_token(), "that is the stories' figure; measure it on `docs.text`."),
                  (lambda e: 1 / e, "that is tokens per byte: turn it over.")],
    ),
    "02.1": Exercise(
        "Before training, a model spreads its guess evenly over its whole vocabulary. What would that first "
        "loss be (nats per token) for a model using chapter 01's character tokenizer instead of BPE?",
        "every token has probability 1/V, and the loss is -ln(1/V) = ln V. In code: "
        "`from llmcore.tokenizer import CharTokenizer`, then "
        "`V = CharTokenizer.train(load_corpus('storyworld', 'train').text).vocab_size`, and `math.log(V)`.",
        lambda: math.log(_char_vocab()), rel_tol=0.01,
        mistakes=[(lambda e: math.log(1024), "that is for the BPE tokenizer's 1,024 tokens; the character tokenizer has fewer."),
                  (lambda e: e / math.log(2), "that is in bits (log base 2); the loss uses the natural log, ln."),
                  (lambda e: round(math.exp(e)), "that is the vocabulary size; the loss is ln of it.")],
    ),
    "02.2": Exercise(
        "Write `bits_per_byte(loss, bytes_per_token)`: turn a loss in nats per token into bits per byte "
        "(compression's unit, the one gzip is measured in).",
        "a nat is 1/ln 2 bits, so bits = nats / `math.log(2)`; then share the token's bits among its bytes.",
        lambda: _bits_per_byte, kind="function", rel_tol=1e-6, cases=_bpb_cases,
        mistakes=[(lambda f: lambda loss, b: loss / b, "you forgot to turn nats into bits: divide by ln 2."),
                  (lambda f: lambda loss, b: loss / math.log(2), "that is bits per token; divide by the bytes per token."),
                  (lambda f: lambda loss, b: loss / math.log(2) * b, "a token's bits are shared among its bytes: divide by the bytes per token."),
                  (lambda f: lambda loss, b: loss * math.log(2) / b, "nats to bits is a division by ln 2, not a multiplication.")],
    ),
    "02.3": Exercise(
        f"A model that gives a token probability p can store it in -log2(p) bits (arithmetic coding). After "
        f"{THE_PROMPT!r}, how many bits does the shipped model need to store {THE_TOKEN!r}? Predict first: "
        "more or less than 1 bit?",
        "`from llmcore.generate import next_token_probs`, then "
        f"`dict(next_token_probs(shipped.model, shipped.tokenizer, {THE_PROMPT!r}))[{THE_TOKEN!r}]` is p.",
        lambda: -math.log2(_prob_of_the()), rel_tol=0.01,
        mistakes=[(lambda e: 2 ** -e, "that is the probability p itself; the bits are -log2(p)."),
                  (lambda e: e * math.log(2), "that is -ln(p), in nats; bits use log base 2."),
                  (lambda e: -e, "a probability below 1 has a negative log: the bits are minus log2(p).")],
    ),
    "03.1": Exercise(
        "How many parameters does the MLP of ONE block of the shipped model hold (its two weight "
        "matrices and two bias vectors)?",
        "`[(t['name'], t['shape']) for t in info['tensors'] if t['name'].startswith('blocks.0.mlp')]` lists its "
        "tensors; multiply out each shape and add.",
        _one_mlp,
        mistakes=[(lambda e: e - _run().model.cfg.d_mlp - _run().model.cfg.d_model, "you forgot the two bias vectors."),
                  (lambda e: e * _run().model.cfg.n_layers, "that is the MLPs of all the blocks; the question asks for one."),
                  (lambda e: _run().model.cfg.d_model * _run().model.cfg.d_mlp, "that is one weight matrix; an MLP has two, and biases.")],
    ),
    "03.2": Exercise(
        "Write `n_params(d_vocab, n_ctx, d_model, n_layers)`: the parameter count of a GPT of that shape "
        "(d_mlp = 4 x d_model, the unembedding shares W_E, every linear layer has a bias, every LayerNorm "
        "a scale and a shift). For our shape it must give `run.model.n_params()`; for GPT-2 small (vocabulary "
        "50,257, context 1,024, width 768, 12 blocks) 124,439,808.",
        "the tensor list above shows one block's pieces (`info['tensors']`); embeddings are d_vocab x d_model "
        "plus n_ctx x d_model; a block has two LayerNorms, attention (qkv, out) and the MLP; one LayerNorm at the end.",
        lambda: _gpt_params, kind="function", cases=_gpt_cases,
        mistakes=[(lambda f: lambda v, c, d, n: f(v, c, d, n) + v * d, "the unembedding shares W_E: count it once."),
                  (lambda f: lambda v, c, d, n: f(v, c, d, n) - c * d, "you forgot the position embeddings, n_ctx x d_model."),
                  (lambda f: lambda v, c, d, n: f(v, c, d, n) - n * 9 * d - (2 * n + 1) * 2 * d,
                   "you forgot the biases and the LayerNorms."),
                  (lambda f: lambda v, c, d, n: f(v, c, d, n) - n * 9 * d, "you forgot the biases."),
                  (lambda f: lambda v, c, d, n: f(v, c, d, n) - (2 * n + 1) * 2 * d, "you forgot the LayerNorms' scales and shifts.")],
    ),
    "03.3": Exercise(
        "What does the number 0.1 become when it is stored in bf16? Predict first: a little above or a "
        "little below 0.1?",
        "`import torch`, then `torch.tensor(0.1).to(torch.bfloat16).item()`.",
        lambda: _as(0.1, "bfloat16"), rel_tol=1e-9,
        mistakes=[(lambda e: _as(0.1, "float16"), "that is fp16, which keeps 3 more bits of precision; bf16 keeps 8 bits."),
                  (lambda e: 0.1, "bf16 cannot hold 0.1 exactly: it is a binary number with only 8 significant bits."),
                  (lambda e: _as(0.1, "float32"), "that is fp32 (24 significant bits); bf16 keeps 8.")],
    ),
    "05.1": Exercise(
        f"Which token does the shipped model find most likely after {LENS_PROMPT!r}? Guess first, then check.",
        f"`next_token_probs(run.model, run.tokenizer, {LENS_PROMPT!r})` lists its guesses "
        "(`from llmcore.generate import next_token_probs`).",
        _top_next_token, kind="text",
        mistakes=[(lambda e: "upon", "'upon' is already in the prompt: which word comes after 'a'?")],
    ),
    "05.2": Exercise(
        "Write `top_k_filter(probs, k)`: from a tensor of probabilities, keep the k largest, set the others "
        "to 0, and make the kept ones add up to 1 again. It is checked against the engine's own top-k.",
        "`kth = probs.topk(k).values[-1]` is the k-th largest; `probs.masked_fill(probs < kth, 0.0)` drops "
        "the rest; then divide by the sum.",
        lambda: _top_k_filter, kind="function", rel_tol=1e-5, cases=_top_k_cases,
        mistakes=[(lambda f: _not_renormalised, "the kept probabilities no longer add up to 1: divide by their sum."),
                  (lambda f: _keep_smallest, "that keeps the k *least* likely tokens; top-k keeps the most likely.")],
    ),
    "05.3": Exercise(
        f"Four tokens have probabilities {', '.join(TOP_P_PROBS[:-1])} and {TOP_P_PROBS[-1]}. With top_p = {TOP_P}, "
        "how many of them can still be drawn?",
        "sort from most to least likely and keep tokens until their total reaches top_p.",
        _top_p_kept,
        mistakes=[(lambda e: e - 1, f"{TOP_P_PROBS[0]} is not yet {TOP_P}: the next token is needed to reach it."),
                  (lambda e: e + 1, f"{TOP_P_PROBS[0]} + {TOP_P_PROBS[1]} = 0.75 already reaches {TOP_P}: stop there.")],
    ),
    "06.1": Exercise(
        "Above are the strongest places of one unlabelled feature, `mystery`. Which planted concept is it? "
        "Answer with one of: golden_gate_bridge, ocean, music, rain, cooking, numbers, colours, space.",
        "read the brightest tokens in `HTML(viz.contexts_html(top_contexts(encoded, run.tokenizer, mystery, n=6)))`.",
        lambda: MYSTERY_CONCEPT, kind="text",
        mistakes=_other_concepts("that is another planted concept: read the brightest tokens again. "
                                 "What do they have in common?"),
    ),
    "06.2": Exercise(
        "Write `strongest_feature(text)`: the SAE feature with the largest total activation over all of "
        "`text`'s tokens. It is run on sentences about rain, the ocean, cooking and the bridge.",
        "`encode_text(run, sae, text).acts` is [tokens, features]: add up over the tokens, `.sum(0)`, "
        "then take `.argmax()`.",
        lambda: _strongest_feature, kind="function", cases=lambda: [(t,) for t in FEATURE_TEXTS],
        mistakes=[(lambda f: _strongest_token, "that is the token where the most fires: sum over the tokens (dim 0), "
                                               "not over the features."),
                  (lambda f: _last_token_feature, "that reads only the last token; add up over all of them.")],
    ),
    "06.3": Exercise(
        f"In the logit lens for {LENS_PROMPT!r}, after which block (0, 1, ...) does the top guess "
        "first match the model's final answer? Predict first, then look.",
        f"`logit_lens(run.model, run.tokenizer, {LENS_PROMPT!r}).at(-1)` lists every stage's top guesses "
        "for the last token; read them from the top.",
        _lens_first_block,
        mistakes=[(lambda e: e + 1, "blocks count from 0: the first block is block 0.")],
    ),
    "06.4": Exercise(
        "Steer the ocean instead of the bridge. Predict first: at the strength llmcore's rule gives it, "
        f"in how many of {STEER_STORIES} stories will the ocean turn up? Then write the code that finds the ocean's "
        "feature and a strength, and give them as (feature, strength). The check lifts that feature to at least "
        f"that strength while the model writes {STEER_STORIES} stories, and passes when at least "
        f"{STEER_MIN_MENTIONS:.0%} mention the ocean and the loss of the plain model on them stays within "
        f"{STEER_MAX_LOSS} of unsteered stories.",
        "the ocean's feature is `sae.metrics['concepts']['ocean']['feature']`; llmcore's rule for how hard to "
        "push is `default_strength(run, sae, sae.metrics['concepts']['ocean']['feature'])['strength']`.",
        _ocean_by_the_rule, kind="prompt", judge=_judge_ocean_steering,
    ),
    "07.1": Exercise(
        "Three models of growing size (nano, micro, storyworld) learnt the same stories with the same recipe, "
        "for the same number of steps. Predict: which one ends with the lowest held-out loss? Answer with its "
        f"name: {SMALLEST_FIRST}.",
        "the final held-out losses are `[(r['name'], r['final_val_loss']) for r in sizes.compare()]`; "
        "decide before you look.",
        _winner_at_equal_steps, kind="text",
        mistakes=_other_sizes({
            "nano": "nano is the fastest, but with the same steps every model sees the same tokens: the one with "
                    "more parameters learns more from them.",
            "micro": "micro is in the middle; with the same steps, more parameters learn more from the same tokens.",
            "storyworld": "storyworld has the most parameters, but here that was not enough: look at the curves."}),
    ),
    "07.2": Exercise(
        "Now give each of the three the same compute instead of the same steps: the arithmetic nano did in all "
        "its steps (6 x parameters x tokens). A smaller model takes more steps for it. When that compute is used "
        f"up, which one has the lowest held-out loss? Answer with its name: {SMALLEST_FIRST}.",
        "`sizes.winner(rows, flops=rows[0]['steps'] * rows[0]['flops_per_step'])`, or read the right-hand "
        "panel at nano's last point.",
        _winner_at_equal_compute, kind="text",
        mistakes=_other_sizes({
            "nano": "nano did all its steps, but with so few parameters each step teaches it little: look at "
                    "where the others are at nano's last point.",
            "micro": "micro does several times fewer steps than nano for the same compute; read the right-hand "
                     "panel at nano's last point.",
            "storyworld": "storyworld learns the most per step, but a step costs arithmetic in proportion to "
                          "the parameters: with nano's compute it takes only a few dozen steps."}),
    ),
    "07.3": Exercise(
        "Llama 2 70B took 1,720,320 GPU-hours. On 12,000 GPUs instead of 6,000, how many days "
        "would it take?",
        "GPU-hours / GPUs / 24 (`scale.wall_clock_days` does it).",
        lambda: _llama_70b_days_on(12_000), rel_tol=0.02,
        mistakes=[(lambda e: 2 * e, "that is with 6,000 GPUs; twice the GPUs, half the days."),
                  (lambda e: 24 * e, "that is hours; divide by 24 for days.")],
    ),
    "07.4": Exercise(
        "An H100 reads its memory at 3.35 TB/s. By the bandwidth bound, at most how many tokens per second "
        "can it write for one conversation with Llama-2-70B in bf16 (if the weights fitted in it)?",
        "`scale.decode_tokens_per_s(scale.get_preset('llama-2-70b').param_count(), 'bf16', "
        "scale.get_accelerator('h100-sxm').mem_bandwidth)`, or bandwidth / bytes of weights.",
        lambda: _tokens_per_s_70b("h100-sxm"), rel_tol=0.03,
        mistakes=[(lambda e: _tokens_per_s_70b("a100-80gb"), "that is the A100's 2.0 TB/s; the H100 reads faster."),
                  (lambda e: 2 * e, "bf16 is 2 bytes per parameter, not 1."),
                  (lambda e: e / 2, "that is fp32, 4 bytes per parameter; bf16 is 2.")],
    ),
    "07.5": Exercise(
        "Write `gpu_hours(n_params, tokens)`: the A100 GPU-hours to train a model of `n_params` parameters "
        "on `tokens` tokens, at 312e12 FLOP/s and a utilisation (MFU) of 0.43. It is run on GPT-3 "
        "(175B parameters, 300B tokens), Llama-2-70B and ours.",
        "the calculator's identities: compute = 6 x n_params x tokens FLOPs; GPU-hours = compute / "
        "(312e12 x 0.43 x 3600).",
        lambda: _gpu_hours, kind="function", rel_tol=1e-3, cases=_gpu_hours_cases,
        mistakes=[(lambda f: lambda n, t: f(n, t) / 3, "training costs 6 FLOPs per parameter per token (2 forward, "
                                                        "4 backward), not 2."),
                  (lambda f: lambda n, t: f(n, t) * MFU, "a GPU runs at 0.43 of its peak: divide by 0.43, do not multiply."),
                  (lambda f: lambda n, t: f(n, t) * 3600, "that is GPU-seconds; divide by 3600 for hours."),
                  (lambda f: lambda n, t: f(n, t) / 24, "that is GPU-days; the question asks for hours.")],
    ),
}
