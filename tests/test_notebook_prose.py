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


# --- chapter 06 and its stage page: the SAE, its concepts, and steering ------------------------------------


def _steering_table(options: list[dict], readable: float) -> list[str]:
    """One Markdown row per steering option: its readable setting with the most mentions (or, if none is
    readable, its most readable one), as docs/stages/interpretability.md shows them."""
    rows = []
    for name in dict.fromkeys(o["option"] for o in options):
        tried = [o for o in options if o["option"] == name]
        ok = [o for o in tried if o["fluency_increase"] <= readable]
        best = max(ok, key=lambda o: (o["mention_rate"], -o["fluency_increase"])) if ok else min(
            tried, key=lambda o: o["fluency_increase"])
        rows.append(f"| {best['what']} | {best['strength']:g} | {best['mention_rate']:.0%} | "
                    f"{best['fluency_increase']:+.3f} | {'yes' if best['goal_met'] else 'no'} |")
    return rows


WORDS = dict(enumerate(("No", "One", "Two", "Three", "Four", "Five", "Six", "Seven")))


def interpretability_phrases() -> dict[str, list[str]]:
    """Every number chapter 06 and docs/stages/interpretability.md quote, rendered from the shipped SAE,
    the corpus and benchmarks/results/interpret.json (with interpret_sweep.json)."""
    from llmcore.corpus import load_corpus
    from llmcore.exercises import STEER_STORIES
    from llmcore.interpret.features import STRENGTH_FACTOR
    from llmcore.interpret.sae import load_sae
    from llmcore.interpret.steer import ENOUGH, READABLE, STORY_TOKENS

    run = load_run("storyworld")
    sae = load_sae(run)
    m, cfg = sae.metrics, sae.cfg
    concepts = m["concepts"]
    n_val = load_corpus("storyworld", "val").stats(run.tokenizer)["tokens"]
    shares = [c["n_positive"] / n_val for c in concepts.values()]
    bridge = concepts["golden_gate_bridge"]
    pick = m["steering"]["golden_gate_bridge"]
    results = json.loads((NOTEBOOKS.parent / "benchmarks/results/interpret.json").read_text())
    sweep = json.loads((NOTEBOOKS.parent / "benchmarks/results/interpret_sweep.json").read_text())["sweep"]
    probe = next(p for p in results["probe_ceiling"] if p["hook"] == cfg.hook_name)
    widths = [s for s in sweep if "d_sae" in s]
    res, rule = results["steering"], results["strength_rule"]
    good = [c for c, x in concepts.items() if x["f1"] >= 0.8 and c != "golden_gate_bridge"]
    short = sorted((c for c in concepts if c not in good and c != "golden_gate_bridge"), key=lambda c: -concepts[c]["f1"])
    others = [x for x in rule if x["concept"] != "golden_gate_bridge"]
    assert STRENGTH_FACTOR == 0.5, "the prose says 'half the most it fires'"
    assert STEER_STORIES == 10, "06.4 says 'ten stories'"
    assert res["settings"]["strength"] == pick["strength"], "the benchmark ran before the steering pick changed"
    assert res["goal_met"], "the stage page says the stored setting meets the goal"
    return {
        "06_interpretability.ipynb": [
            f"the model carries {cfg.d_model} numbers per token",
            f"the concept's share of tokens, {int(100 * min(shares))} to {round(100 * max(shares))}%",
            "any other feature gets half the most it fires", "in how many of ten stories"],
        "docs/stages/interpretability.md": [
            f"rewrites the {cfg.d_model} numbers the model carries",
            f"{cfg.d_sae} features, {cfg.k} on per token, {m['variance_explained']:.1%} of the variance explained, "
            f"{m['loss_recovered']:.1%} of the loss recovered",
            f"Its bridge feature, {bridge['feature']}, scores precision {bridge['precision']:.3f} and recall "
            f"{bridge['recall']:.3f} on held-out stories (F1 {bridge['f1']:.3f}; a feature firing at random would score "
            f"a precision near {bridge['n_positive'] / n_val:.2f}",
            f"{WORDS[len(good)]} more concepts get a feature with F1 of at least 0.8: "
            + ", ".join(f"{c} {concepts[c]['f1']:.2f}" for c in good[:-1]) + f" and {good[-1]} {concepts[good[-1]]['f1']:.2f}",
            " and ".join(f"{c.capitalize() if i == 0 else c} ({concepts[c]['f1']:.3f})" for i, c in enumerate(short))
            + " fall short",
            f"reaches F1 {probe['golden_gate_bridge']['f1']:.2f} for the bridge",
            ", ".join(f"{s['d_sae']:,}" for s in widths[:-1]) + f" and {widths[-1]['d_sae']:,} features gave the bridge "
            f"precision {min(s['ggb_precision'] for s in widths):.3f}-{max(s['ggb_precision'] for s in widths):.3f} and "
            f"recall {min(s['ggb_recall'] for s in widths):.3f}-{max(s['ggb_recall'] for s in widths):.3f}",
            f"Over {res['n']} seeded stories from neutral prompts: plain, {res['plain']['mention_rate']:.0%} mention the "
            f"bridge; prompted, {res['prompted']['mention_rate']:.0%}; with feature {res['settings']['feature']} lifted to "
            f"at least {pick['strength']:g}, {res['steered']['mention_rate']:.0%}, at a fluency loss of "
            f"{res['steered']['fluency_loss']:.3f} nats per token against {res['plain']['fluency_loss']:.3f} for plain text",
            f"at least 80% of stories mentioning the bridge within {READABLE} nats per token of plain text",
            f"swept over strength on the same {res['n']} stories", f"within {READABLE} nats per token of plain)",
            f"`find_steering` chose it on {pick['stories']} stories from other prompts, {STORY_TOKENS} tokens each as "
            f"here: the gentlest readable strength that reached {ENOUGH:.0%} of them ({pick['mention_rate']:.1%}, "
            f"{pick['fluency_loss'] - pick['plain_fluency_loss']:+.2f} nats per token)",
            f"{pick['strength']:g} is {pick['x_peak']:g} x the feature's peak",
            *_steering_table(results["steering_options"], READABLE),
            f"from {min(x['mention_rate'] for x in others):.0%} to {max(x['mention_rate'] for x in others):.0%} of "
            f"stories, never more than {max(x['fluency_increase'] for x in others):.2f} nats per token less fluent",
        ],
    }


def test_chapter_06_and_its_stage_page_quote_the_shipped_sae_and_the_benchmark():
    """Every number in chapter 06's Markdown and on the interpretability stage page is rendered here from the
    shipped SAE, the corpus or the benchmark's JSON; a number no phrase accounts for fails too."""
    allowed = {"06_interpretability.ipynb": {"06", "2024", "01", "04", "0", "1", "2", "06.1", "06.2", "06.3", "06.4"},
               "docs/stages/interpretability.md": {"6", "2024", "2020", "0", "1", "2", "0.8", "3", "2023", "06",
                                                   "757575"}}  # chapter 06's file name; a grey in the flowchart
    for where, phrases in interpretability_phrases().items():
        text = prose(where) if where.endswith(".ipynb") else " ".join(_doc(where).split())
        missing = [p for p in phrases if " ".join(p.split()) not in text]
        assert not missing, f"{where} no longer matches the shipped SAE and the benchmark: {missing}"
        covered = text
        for p in phrases:
            covered = covered.replace(" ".join(p.split()), " ")
        stray = sorted({n for n in NUMBER.findall(covered) if n not in allowed[where]})
        assert not stray, f"{where} quotes numbers no phrase ties to the run: {stray}"


def test_the_interpretability_page_quotes_no_untied_number():
    """The Interpretability page's own words hold no number: what it shows (strengths, features, F1) is
    computed from the SAE while the page runs."""
    import ast

    page = NOTEBOOKS.parent / "dashboard/app_pages/interpretability.py"
    texts = []
    for node in ast.walk(ast.parse(page.read_text())):
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and " " in node.value.strip():
            texts.append(node.value)
        elif isinstance(node, ast.JoinedStr):  # an f-string: its literal parts (the values are computed)
            texts.append(" ".join(v.value for v in node.values if isinstance(v, ast.Constant)))
    stray = [n for t in texts for n in NUMBER.findall(t) if n not in {"0", "1"}]
    assert not stray and any("Golden Gate Claude" in t for t in texts), stray
