"""Chapter 04's code exercises: the learner's function is run on the shipped model's real
inputs and compared with its hooks. The worked solution passes; a zeros function, a crash,
a wrong shape and every named mistake are refused with a reason, never a traceback."""

import pytest
import torch

from llmcore import teach
from llmcore.code_exercises import CODE_EXERCISES, judge
from llmcore.run import shipped_runs

pytestmark = pytest.mark.skipif("storyworld" not in shipped_runs(),
                                reason="the shipped storyworld run is not built yet: scripts/build_assets.py")


@pytest.mark.parametrize("ex_id", sorted(CODE_EXERCISES))
def test_each_named_mistake_is_refused_with_its_own_hint(ex_id):
    ex = CODE_EXERCISES[ex_id]
    assert ex.mistakes
    for wrong, why in ex.mistakes:
        fb = teach.check(ex_id, wrong)
        assert fb.ok is False and why in repr(fb), (ex_id, why, repr(fb))


@pytest.mark.parametrize("ex_id", sorted(CODE_EXERCISES))
def test_zeros_crashes_and_non_functions_are_refused(ex_id):
    want = teach.expected(ex_id)
    assert teach.check(ex_id, lambda *a: torch.zeros_like(want)).ok is False
    assert "ZeroDivisionError" in repr(teach.check(ex_id, lambda *a: 1 / 0))
    assert "shape" in repr(teach.check(ex_id, lambda *a: torch.zeros(3)))
    assert "NaN" in repr(teach.check(ex_id, lambda *a: torch.full_like(want, float("nan"))))
    assert "return a torch tensor" in repr(teach.check(ex_id, lambda *a: "text"))
    assert "function itself" in repr(teach.check(ex_id, 42))
    unfinished = teach.check(ex_id, lambda *a: None)
    assert unfinished.ok is None and "Hint:" in repr(unfinished)
    assert teach.check(ex_id, lambda *a: want.clone()).ok  # the model's own numbers are right


def test_a_function_that_changes_its_inputs_cannot_spoil_the_next_check():
    def vandal(x):
        x.zero_()
        return x

    assert teach.check("04.1", vandal).ok is False
    assert teach.check("04.1", lambda x: x.softmax(-1)).ok


def test_tolerance_is_stated_and_small():
    ok, why = judge(CODE_EXERCISES["04.1"], lambda x: x.softmax(-1) + 5e-5)
    assert ok and "0.0001" in why
    ok, _ = judge(CODE_EXERCISES["04.1"], lambda x: x.softmax(-1) + 1e-3)
    assert ok is False
