"""The week 5 graders fail every catalogued mistake and pass every correct variant."""

import inspect

import pytest

from solutions import attention, efficient_attention, positions
from tests.grader.catalogue_week5 import CORRECT, HEADER, WRONG

EXERCISES = ("repeat_kv", "sliding_window_mask", "attention", "kv_cache_bytes")


def marked(cases: dict):
    return [pytest.param(key, marks=getattr(pytest.mark, cases[key][0]), id=key) for key in cases]


def reference_code() -> str:
    """The reference modules as a learner's file: week 1's attention and week 4's RoPE first,
    then the week 5 module without its imports of them."""
    own = "\n".join(line for line in inspect.getsource(efficient_attention).splitlines()
                    if not line.startswith("from solutions."))
    return "\n\n".join([HEADER, inspect.getsource(attention), inspect.getsource(positions), own])


@pytest.mark.grader
@pytest.mark.parametrize("key", marked(WRONG))
def test_known_wrong_submission_loses_points(grade, key):
    exercise, code, phrase = WRONG[key]
    result = grade(code, exercise)
    assert result.score < result.max_score, f"{key} got full marks"
    messages = " | ".join(c.message for c in result.failures)
    if phrase:
        assert phrase in messages, f"feedback for {key} should mention {phrase!r}: {messages}"


@pytest.mark.grader
@pytest.mark.parametrize("key", marked(CORRECT))
def test_correct_variant_gets_full_marks(grade, key):
    exercise, code = CORRECT[key]
    result = grade(code, exercise)
    assert result.score == result.max_score, [(c.name, c.message) for c in result.failures]


@pytest.mark.grader
@pytest.mark.parametrize("exercise", [pytest.param(e, marks=getattr(pytest.mark, e))
                                      for e in EXERCISES])
def test_reference_gets_full_marks_with_any_seed(grade, exercise):
    for seed in (0, 7):
        result = grade(reference_code(), exercise, seed=seed)
        assert result.score == result.max_score, [(c.name, c.message) for c in result.failures]


@pytest.mark.grader
def test_catalogue_is_large_enough():
    for exercise in EXERCISES:
        assert sum(1 for e, *_ in WRONG.values() if e == exercise) >= 5
        assert sum(1 for e, _ in CORRECT.values() if e == exercise) >= 3
