"""Numbers quoted in a chapter's prose must be the numbers of the run it describes.

Markdown cannot compute, so each chapter's quoted numbers are listed here as phrases
rendered from the shipped run: retrain the asset with another shape and the stale
sentence fails this test. A number in the prose that no phrase accounts for fails too.
"""

import json
import math
import re
from pathlib import Path

import pytest

from llmcore.code_exercises import ATOL
from llmcore.run import load_run, shipped_runs

NOTEBOOKS = Path(__file__).parent.parent / "notebooks"
NUMBER = re.compile(r"(?<![\w.])\d[\d,]*(?:\.\d+)?(?<![,.])")

pytestmark = pytest.mark.skipif("storyworld" not in shipped_runs(), reason="the shipped run is not built yet")


def prose(notebook: str) -> str:
    """A chapter's Markdown, with runs of whitespace made single spaces."""
    cells = json.loads((NOTEBOOKS / notebook).read_text())["cells"]
    return " ".join(" ".join("".join(c["source"]).split()) for c in cells if c["cell_type"] == "markdown")


def test_chapter_04_quotes_the_shipped_models_shape():
    cfg = load_run("storyworld").model.cfg
    text = prose("04_model.ipynb")
    later = ", ".join(str(i) for i in range(1, cfg.n_layers - 1)) + f" and {cfg.n_layers - 1}"
    phrases = [
        f"The model stacks {cfg.n_layers} blocks",
        f"Blocks {later} do the same",
        f"here {cfg.n_heads} of them, each working on its own slice of {cfg.d_head} numbers",
        f"divided by \u221a{cfg.d_head} \u2248 {math.sqrt(cfg.d_head):.2f}",
        f"The {cfg.n_heads} heads' results",
        f"back to {cfg.d_model} numbers",
        f"widens the {cfg.d_model} numbers to {cfg.d_mlp}",
        f"projects back to {cfg.d_model}",
        f"Most of the {cfg.d_mlp} numbers",
        f"each column one of the {cfg.d_model} numbers",
        f"turns the {cfg.d_vocab:,} logits",
        f"| {cfg.d_vocab:,} tokens |", f"| {cfg.d_model} numbers |", f"| {cfg.d_model} numbers per token |",
        f"| {cfg.n_layers} blocks |", f"| {cfg.n_heads} heads of {cfg.d_head} numbers |",
        f"| {cfg.d_head} numbers each |", f"| {cfg.d_model} \u2192 {cfg.d_mlp} \u2192 {cfg.d_model} |",
        f"| {cfg.d_vocab:,} per position |",
        f"to within {ATOL:.4f}",
    ]
    missing = [p for p in phrases if p not in text]
    assert not missing, f"chapter 04's prose no longer matches the shipped model: {missing}"
    # Every other number is a chapter or exercise id, a year, a position (0-3) or LayerNorm's epsilon.
    explained = {n for p in phrases for n in NUMBER.findall(p)}
    others = {"0", "1", "2", "3", "01", "02", "03", "04", "05", "06", "2017", "0.00001"}
    ids = {f"04.{i}" for i in range(1, 6)}
    stray = set(NUMBER.findall(text)) - explained - others - ids
    assert not stray, f"numbers in chapter 04's prose that no test ties to the run: {sorted(stray)}"


def test_the_model_stage_page_quotes_the_walk():
    from llmcore.forward import walk

    run = load_run("storyworld")
    cfg, w = run.model.cfg, walk(run.model, run.tokenizer, "Mia went to the")
    T = len(w.token_ids)
    text = " ".join((Path(__file__).parent.parent / "docs" / "stages" / "model.md").read_text().split())
    phrases = [
        "the prompt *Mia went to the*", f"| [{T} pos] |", f"| [{T} pos, {cfg.d_model} d_model] |",
        f"| [{T} pos, {cfg.d_head} d_head] each |", f"| [{T} query_pos, {T} key_pos] |",
        f"| [{T} pos, {cfg.d_mlp} d_mlp] |", f"| {cfg.n_layers - 1} more blocks, the same |",
        f"`blocks.1` to `blocks.{cfg.n_layers - 1}`", f"| [{T} pos, {cfg.d_vocab} d_vocab] |",
        f"| [{cfg.d_vocab} d_vocab] |", f"Every one of the {run.model.n_params():,} parameters",
        f"The most likely next token is {w.next_token!r}.", f"to within {ATOL:.4f}",
    ]
    missing = [p for p in phrases if p not in text]
    assert not missing, f"docs/stages/model.md no longer matches the shipped run: {missing}"


def _doc(path: str) -> str:
    return " ".join((Path(__file__).parent.parent / path).read_text().split())


def test_chapters_quote_the_shipped_run_and_corpus():
    """The numbers issue 13 found stale in chapters 00-03 and 07, now rendered from the run and corpus, and
    the figures the exercises and the explainer's claims quote (hardware, GPT-2 small, float formats)."""
    import torch

    from llmcore import scale
    from llmcore.corpus import load_corpus
    from llmcore.model import GPTConfig, parameter_breakdown

    run = load_run("storyworld")
    train = load_corpus("storyworld", "train").stats()
    h100, a100 = (scale.get_accelerator(a).mem_bandwidth / 1e12 for a in ("h100-sxm", "a100-80gb"))
    gpt2_small = sum(parameter_breakdown(GPTConfig(d_vocab=50257, n_ctx=1024, d_model=768, n_layers=12)).values())
    ratio = scale.LLAMA2_DATA_BYTES / train["bytes"]
    checks = {
        "00_big_picture.ipynb": [f"each a number from 0 to {run.model.cfg.d_vocab - 1:,}",
                                 f"ln({run.model.cfg.d_vocab}) = {math.log(run.model.cfg.d_vocab):.2f}",
                                 "1,720,320 A100 GPU-hours", "12 days if spread over 6,000 GPUs"],
        "01_data.ipynb": [f"Ours reads {train['bytes'] / 1e6:.1f} MB of simple stories",
                          f"about {round(ratio / 1e6)} million times",
                          f"BPE tokenizer with {run.tokenizer.vocab_size:,} tokens"],
        "02_pretraining.ipynb": ["even a perfect model would stay above 0"],
        "07_scale.ipynb": ["wherever memory bandwidth is the limit",
                           f"An H100 reads its memory at {h100:.2f} TB/s, an A100 at {a100:.1f} TB/s"],
        # issue 13 part 5: what 2 bytes hold, fast inference, where features live
        "03_parameters.ipynb": [f"16 bits allow only {2 ** 16:,} different values",
                                f"fp16 keeps {round(-math.log2(torch.finfo(torch.float16).eps)) + 1} significant bits",
                                f"bf16 keeps {round(-math.log2(torch.finfo(torch.bfloat16).eps)) + 1}",
                                f"context 1,024, width 768, 12 blocks) {gpt2_small:,}"],
        "05_inference.ipynb": ["300 Tokens per Second per User on Meta AI Foundational LLM, Llama-2 70B"],
        "06_interpretability.ipynb": ["Features live in activations, not in parameters",
                                      "no single number in the parameter file means"],
    }
    for book, phrases in checks.items():
        text = prose(book)
        missing = [p for p in phrases if p not in text]
        assert not missing, f"{book}'s prose no longer matches the shipped run: {missing}"
    assert "about ten million times" not in prose("01_data.ipynb")
    assert "on any hardware" not in prose("07_scale.ipynb")


def test_stage_pages_and_teachers_guide_quote_the_shipped_run():
    from llmcore.corpus import load_corpus
    from llmcore.params import inspect_file

    run = load_run("storyworld")
    metrics, p = run.metrics(), run.provenance
    sentence = "Mia ate a crème brûlée by the Golden Gate Bridge 🌉"
    n_tokens = len(run.tokenizer.encode(sentence))
    train = load_corpus("storyworld", "train").stats(run.tokenizer)
    val = load_corpus("storyworld", "val").stats()
    info = inspect_file(run.params_file)
    story_start = load_corpus("storyworld", "train", n_chars=1000).text.split()[0]  # 00's story's hero
    first = [f"{v:.4f}".replace("-", "\u2212") for v in info["first_values"]["values"][:3]]
    docs = {
        "docs/stages/data.md": [f"{n_tokens} with the shipped BPE tokenizer",
                                f"The training split is {train['bytes']:,} bytes ({train['words']:,} words, "
                                f"{train['tokens']:,} BPE tokens, {train['bytes_per_token']:.2f} bytes per token)",
                                f"a different draw of {val['bytes']:,} bytes"],
        "docs/stages/pretraining.md": [f"its last {metrics[-1]['loss']:.2f} ({p['steps']} steps, "
                                       f"{p['tokens_seen']:,} tokens, {metrics[-1]['elapsed']:.0f} seconds",
                                       f"({p['val_loss']:.3f} nats per token)", f"**{p['val_bpb']:.3f} bits per byte**"],
        "docs/stages/parameters.md": [f"such as {', '.join(first)}:", f"+ 8 + {info['header_bytes'] - 8:,}",
                                      f"**{info['bytes_on_disk']:,} bytes**"],
        "docs/teachers_guide.md": [f"'{story_start}' is two tokens", f"56 bytes, {n_tokens} tokens",
                                   f"a held-out loss of {p['val_loss']:.3f}",
                                   f"e^-{p['val_loss']:.3f} = {math.exp(-p['val_loss']):.0%}",
                                   f"its last training loss ({metrics[-1]['loss']:.3f})"],
    }
    assert len(run.tokenizer.encode(story_start)) == 2
    for path, phrases in docs.items():
        text = _doc(path)
        missing = [ph for ph in phrases if ph not in text]
        assert not missing, f"{path} no longer matches the shipped run: {missing}"
