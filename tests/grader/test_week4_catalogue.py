"""The week 4 graders fail every catalogued mistake and pass every correct variant."""

import inspect

import pytest

from solutions import positions
from tests.grader.catalogue_week4 import CORRECT, HEADER, WRONG

EXERCISES = ("apply_rope", "alibi_bias")


def marked(cases: dict):
    return [pytest.param(key, marks=getattr(pytest.mark, cases[key][0]), id=key) for key in cases]


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
@pytest.mark.parametrize("exercise", [
    pytest.param(name, marks=getattr(pytest.mark, name)) for name in EXERCISES])
def test_reference_gets_full_marks_with_any_seed(grade, exercise):
    code = HEADER + inspect.getsource(positions)
    for seed in (0, 7):
        result = grade(code, exercise, seed=seed)
        assert result.score == result.max_score, [(c.name, c.message) for c in result.failures]


@pytest.mark.grader
def test_catalogue_is_large_enough():
    for exercise in EXERCISES:
        assert sum(1 for e, *_ in WRONG.values() if e == exercise) >= 5
        assert sum(1 for e, _ in CORRECT.values() if e == exercise) >= 3
