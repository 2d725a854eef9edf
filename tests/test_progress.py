"""The training progress bar shared by `llmcore train` and the notebooks: steps, or seconds of a budget."""

from llmcore import teach
from llmcore.cli import cmd_train
from llmcore.progress import ProgressBar
from llmcore.train import TrainEvent


def test_a_run_by_steps_counts_steps():
    bar = ProgressBar(samples=False)
    bar(TrainEvent("step", 1, 3, loss=5.0))  # before "start": ignored
    bar(TrainEvent("start", 0, 3, info={"n_params": 1234, "device": "cpu", "max_seconds": None}))
    for step in (1, 2, 3):
        bar(TrainEvent("step", step, 3, loss=5.0 / step, tokens_per_s=100.0, val_bpb=1.5 if step == 3 else None))
    assert bar.bar.n == 3 and bar.bar.total == 3 and "1,234" in bar.bar.desc and "val bits/byte" in bar.bar.postfix
    bar(TrainEvent("done", 3, 3))
    assert bar.bar is None


def test_a_time_budget_counts_seconds_not_a_step_cap():
    bar = ProgressBar(samples=False)
    bar(TrainEvent("start", 0, 4000, seconds=1.5, info={"n_params": 10, "max_seconds": 45.0}))
    assert bar.bar.total == 45.0 and bar.bar.n == 1.5  # the set-up already spent counts
    late = ProgressBar(samples=False)  # the set-up took the whole budget: a full bar, not a crash
    late(TrainEvent("start", 0, 4, seconds=5.3, info={"n_params": 10, "max_seconds": 5.0}))
    assert late.bar.n == 5.0 and "5.0/5.0 s" in str(late.bar)
    late.close()
    bar(TrainEvent("step", 136, 4000, loss=2.0, tokens_per_s=9000.0, seconds=44.6))
    assert bar.bar.n == 44.6 and "136" in bar.bar.postfix  # nearly full at step 136 of a 4,000-step cap
    assert "44.6/45.0 s" in str(bar.bar)
    bar(TrainEvent("step", 137, 4000, loss=2.0, tokens_per_s=9000.0, seconds=46.0))
    assert bar.bar.n == 45.0  # never past the budget
    bar.close()


def test_one_bar_for_the_cli_and_the_notebooks():
    assert teach.ProgressBar is ProgressBar
    assert "ProgressBar" in cmd_train.__code__.co_names
