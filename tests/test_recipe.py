"""Sensible defaults for the text given: pick() chooses by the text's size and the budget, flags win."""

import pytest

from llmcore.errors import UserError
from llmcore.model import config_from_preset
from llmcore.recipe import MAX_PASSES, MIN_TOKENS_FOR_BIGGER, MIN_TOKENS_PER_PARAM, PICKED, configure, pick, text_chars


@pytest.mark.parametrize("chars, preset", [(50_000, "micro"), (1_000_000, "nano"), (10_000_000, "nano")])
def test_three_text_sizes_in_two_minutes(chars, preset):
    """The sweep's finding: a small text needs a bigger model (nano would learn it by heart), else nano's speed wins."""
    c = pick(chars, seconds=120, tokenizer="char")
    assert c.preset == preset
    if preset == "nano":  # the largest with 20 tokens per parameter; micro would see too few
        assert c.tokens >= MIN_TOKENS_PER_PARAM * c.n_params and c.tokens / c.text_tokens <= MAX_PASSES
        assert "micro would still be near its random start" in c.reason
    else:  # nano would read 50 kB more than 40 times; micro still sees enough per parameter
        assert c.tokens >= MIN_TOKENS_FOR_BIGGER * c.n_params and "nano would read the text" in c.reason
    assert c.steps >= c.expected_steps > 100  # the time ends the run, the step cap is only a guard
    lines = c.reason.splitlines()  # what and why, in two plain lines
    assert len(lines) == 2 and lines[0].startswith(f"{chars // 1000 if chars < 10**6 else chars // 10**6}")
    assert f"preset {preset}" in lines[0] and "120 s" in lines[0] and lines[1].startswith("because")


def test_more_time_never_picks_a_smaller_model():
    order = ["nano", "micro", "storyworld", "small-10m"]
    for chars in (20_000, 200_000, 2_000_000, 20_000_000):
        sizes = [order.index(pick(chars, seconds=s, tokenizer="char").preset) for s in (30, 120, 600, 3600, 36_000)]
        assert sizes == sorted(sizes), (chars, sizes)
    assert pick(10**8, seconds=360_000, tokenizer="char").preset == "small-10m"  # a hundred hours of a big text
    assert "100 MB of text" in pick(10**8, seconds=60, tokenizer="char").reason


def test_the_story_world_by_steps_gives_the_shipped_shape():
    c = pick(2_400_000, tokenizer="bpe")  # no budget given: 4,000 steps
    assert (c.preset, c.n_ctx, c.batch_size, c.lr, c.steps) == ("storyworld", 128, 12, 5e-3, 4000)


def test_flags_win_and_the_rest_follows_them():
    c = pick(50_000, seconds=60, tokenizer="char", preset="storyworld", batch_size=32, lr=1e-3)
    assert (c.preset, c.batch_size, c.lr, c.n_ctx) == ("storyworld", 32, 1e-3, 128) and "you chose" in c.reason
    assert c.n_params == config_from_preset("storyworld", 100).n_params()
    assert pick(50_000, seconds=60, tokenizer="char", n_ctx=32).n_ctx == 32
    assert pick(50_000, seconds=60, steps=7, tokenizer="char").steps == 7  # a step cap given stays


def test_a_short_text_gets_a_short_context():
    assert pick(600, steps=10, tokenizer="char").n_ctx == 32  # 1/16 of 600 tokens, a power of two
    assert pick(10**6, steps=10, tokenizer="char").n_ctx == 128  # the storyworld preset's own


def test_configure_fills_only_what_was_not_given(text_file):
    cfg, choice = configure({"corpus": str(text_file), "tokenizer": "char", "max_seconds": 30.0, "batch_size": 4})
    assert choice is not None and cfg.batch_size == 4 and cfg.preset == choice.preset and cfg.steps == choice.steps
    assert cfg.warmup == min(50, cfg.steps // 10)  # warm-up follows the picked steps
    full = dict(zip(PICKED, ("nano", 32, 4, 1e-3, 10))) | {"corpus": str(text_file), "tokenizer": "char"}
    cfg, choice = configure(full)
    assert choice is None and (cfg.preset, cfg.n_ctx, cfg.batch_size, cfg.lr, cfg.steps) == ("nano", 32, 4, 1e-3, 10)
    with pytest.raises(UserError, match="--save-dtype"):  # checked before the text is read
        configure({"corpus": str(text_file), "save_dtype": "fp8"})


def test_text_size_is_read_without_tokenizing(text_file, tmp_path):
    assert text_chars("storyworld") == 2_400_000 and text_chars("storyworld", 50_000) == 50_000
    assert text_chars(str(text_file)) == int(0.9 * text_file.stat().st_size)  # the training split
    (tmp_path / "a.txt").write_text("x" * 1000)
    (tmp_path / "b.txt").write_text("y" * 3000)
    assert text_chars(str(tmp_path)) == 3600 and text_chars(str(tmp_path), 2000) == 1800


def test_the_rule_picks_the_measured_winner():
    """benchmarks/results/recipe.json's sweep: for each text, pick() names the preset that reached the lowest loss."""
    import json
    from pathlib import Path

    sweep = json.loads((Path(__file__).parents[1] / "benchmarks/results/recipe.json").read_text())["sweep"]
    budget = sweep["settings"]["budget_s"]
    for text in {r["text"] for r in sweep["rows"]}:
        rows = [r for r in sweep["rows"] if r["text"] == text]
        best = min(rows, key=lambda r: r["final_val_bpb"])
        assert pick(rows[0]["train_tokens"], seconds=budget, tokenizer="char").preset == best["preset"], text


def test_the_prose_quotes_the_sweep_and_the_picker():
    """docs/stages/pretraining.md's table and example, and recipe.py's numbers, are the sweep's and pick()'s own."""
    import json
    from pathlib import Path

    import llmcore.recipe

    root = Path(__file__).parents[1]
    rows = json.loads((root / "benchmarks/results/recipe.json").read_text())["sweep"]["rows"]
    bpb = {(r["text"], r["preset"]): r["final_val_bpb"] for r in rows}
    page = " ".join((root / "docs/stages/pretraining.md").read_text().split())
    assert " ".join(pick(577_466, seconds=90, tokenizer="char").reason.split()) in page
    for r in rows:
        assert f"{r['final_val_bpb']:.2f}" in page, r
    doc = " ".join(llmcore.recipe.__doc__.split())
    for text, better, worse in (("640 kB", "nano", "micro"), ("10 MB", "nano", "micro"), ("50 kB", "micro", "nano")):
        assert f"{bpb[text, worse] - bpb[text, better]:.2f}" in doc, text


def test_the_benchmark_readme_quotes_the_recipe_run():
    """benchmarks/README.md's recipe numbers are results/recipe.json's (rerun the benchmark, and this says so)."""
    import json
    from pathlib import Path

    root = Path(__file__).parents[1]
    rows = {t["text"]: t for t in json.loads((root / "benchmarks/results/recipe.json").read_text())["texts"]["rows"]}
    readme = " ".join((root / "benchmarks/README.md").read_text().split())
    for t in rows.values():
        plain, full, half = t["plain_final_val_loss"], t["llmcore_final_val_loss"], t["llmcore_half_budget_final_val_loss"]
        assert f"{plain:.3f} vs {full:.3f} / {half:.3f}" in readme, t["text"]
    seconds = [round(rows[k]["llmcore_seconds_to_plain_final_loss"])
               for k in ("vim-manual", "storyworld", "python-docs", "vim-manual-bpe")]
    assert f"in {' / '.join(map(str, seconds))} s" in readme
    met = sum(t["goal_half_time_met"] for t in rows.values())
    assert f"met on {met} of {len(rows)}" in readme
    docs = rows["python-docs"]  # the one text where half the time picks another model: both are quoted
    assert docs["llmcore_half_budget_preset"] == "nano" and docs["pick"]["preset"] == "micro"
    assert f"Micro itself, trained for 45 s, ends at {docs['llmcore_half_budget_same_model_final_val_loss']:.3f}" in readme
    tricks = {r["name"]: r["final_val_loss"] for r in rows["vim-manual"]["runs"]}
    for name, phrase in (("llmcore batch 24", "batch 24 {:.3f}"), ("llmcore no decay on W_E", "no decay on W_E {:.3f}"),
                         ("llmcore z-loss 1e-4", "z-loss 1e-4 {:.3f}"), ("llmcore bf16 autocast", "autocast {:.3f}")):
        assert phrase.format(tricks[name]) in readme, name
