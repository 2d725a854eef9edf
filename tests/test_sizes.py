"""llmcore.sizes: the shipped run's smaller siblings, the race between sizes, and its figure."""

import pytest

from llmcore import sizes
from llmcore.errors import UserError
from llmcore.run import load_run, shipped_runs

built = pytest.mark.skipif("storyworld" not in shipped_runs() or not (sizes.SIZES_DIR / sizes.SPEEDS_FILE).is_file(),
                           reason="the size runs are not built yet: scripts/build_assets.py --only-sizes")


def _row(name, n_params, val, flops_per_step):
    return {"name": name, "n_params": n_params, "val": val, "flops_per_step": flops_per_step, "steps": val[-1][0],
            "tokens_per_step": 100, "train_tokens_per_s": 1000.0}


def test_the_race_is_read_off_the_curves():
    small = _row("small", 10, [(25, 3.0), (50, 2.0), (100, 1.5)], flops_per_step=1.0)
    big = _row("big", 100, [(25, 2.5), (50, 1.0), (100, 0.5)], flops_per_step=10.0)
    assert sizes.val_loss_at_step(small, 75) == pytest.approx(1.75)
    assert sizes.val_loss_at_step(small, 10) is None  # before the first evaluation
    assert sizes.winner([small, big], step=100) == "big"
    assert sizes.winner([small, big], flops=100.0) == "small"  # big has taken only 10 steps: not evaluated yet
    assert sizes.winner([small, big], flops=500.0) == "big"  # big at step 50 (1.0) beats small at 100 (1.5)
    with pytest.raises(UserError):
        sizes.winner([small, big], step=1, flops=1)
    with pytest.raises(UserError):
        sizes.winner([small, big], step=1)


@built
def test_the_siblings_follow_the_shipped_runs_recipe():
    """Retrain the shipped run with another recipe and this fails until the siblings are rebuilt."""
    shipped = load_run("storyworld").provenance["train_config"]
    for name in sizes.SMALLER:
        p = load_run(sizes.SIZES_DIR / name).provenance
        mine = p["train_config"]
        assert mine["preset"] == name
        assert {k: v for k, v in mine.items() if k not in ("preset", "n_ctx")} == \
               {k: v for k, v in shipped.items() if k not in ("preset", "n_ctx")}, name
        assert p["tokens_seen"] == load_run("storyworld").provenance["tokens_seen"], "the same tokens"


@built
def test_compare_ranks_the_sizes_and_the_figure_draws_them():
    from llmcore import viz

    rows = sizes.compare()
    assert [r["name"] for r in rows] == [*sizes.SMALLER, sizes.BIGGEST]
    assert rows[0]["n_params"] < rows[1]["n_params"] < rows[2]["n_params"]
    assert all(r["flops_per_step"] == 6 * r["n_params"] * r["tokens_per_step"] for r in rows)
    fig = viz.sizes_figure(rows)
    assert len(fig.data) == 2 * len(rows) and fig.data[0].line.color == fig.data[1].line.color


@built
def test_speeds_are_measured_and_recorded_with_their_machine():
    speeds = sizes.shipped_speeds()
    assert set(speeds["sizes"]) == {*sizes.SMALLER, sizes.BIGGEST}
    assert {"date", "load_average", "torch_threads", "commit"} <= set(speeds["machine"])
    run = load_run(sizes.SIZES_DIR / "nano")
    before = [p.clone() for p in run.model.parameters()]
    assert sizes.measure_training_speed(run.model, batch_size=2, repeats=1, steps=1) > 0
    assert all((a == b).all() for a, b in zip(before, run.model.parameters())), "timing trains a copy"
