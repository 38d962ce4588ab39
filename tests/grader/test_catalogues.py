"""Every week's graders against its catalogue (``catalogue_weekN.py``): each known-wrong
submission loses points (and, where the grader knows the mistake, says so), each correct
variant and the reference itself get full marks."""

import importlib
import pkgutil

import pytest

import solutions
import tests.grader as grader_tests
from autograder.exercises import BY_NAME
from tests.grader.reference import reference_submission

CATALOGUES = {
    int(m.name.removeprefix("catalogue_week")): importlib.import_module(f"{__package__}.{m.name}")
    for m in pkgutil.iter_modules(grader_tests.__path__) if m.name.startswith("catalogue_week")
}
WRONG = {key: case for c in CATALOGUES.values() for key, case in c.WRONG.items()}
CORRECT = {key: case for c in CATALOGUES.values() for key, case in c.CORRECT.items()}


def marked(cases: dict) -> list:
    return [pytest.param(key, marks=getattr(pytest.mark, cases[key][0]), id=key) for key in cases]


def failures(result) -> list:
    return [(c.name, c.message) for c in result.failures]


def assert_no_internal_error(result, key) -> None:
    """The grader's own check code never fails on what a submission returned: a grader bug
    would reach the learner as feedback (see ``grading.InternalError``)."""
    assert not result.internal_errors, (
        f"{key}: internal grader error: {[(c.name, c.message) for c in result.internal_errors]}")


@pytest.mark.grader
@pytest.mark.parametrize("key", marked(WRONG))
def test_known_wrong_submission_loses_points(grade, key):
    exercise, code, phrase = WRONG[key]
    result = grade(code, exercise)
    assert_no_internal_error(result, key)
    assert result.score < result.max_score, f"{key} got full marks"
    messages = " | ".join(c.message for c in result.failures)
    if phrase:
        assert phrase in messages, f"feedback for {key} should mention {phrase!r}: {messages}"


@pytest.mark.grader
@pytest.mark.parametrize("key", marked(CORRECT))
def test_correct_variant_gets_full_marks(grade, key):
    exercise, code = CORRECT[key]
    result = grade(code, exercise)
    assert_no_internal_error(result, key)
    assert result.score == result.max_score, failures(result)


@pytest.mark.grader
@pytest.mark.parametrize("exercise", [pytest.param(name, marks=getattr(pytest.mark, name))
                                      for name in BY_NAME])
def test_reference_gets_full_marks_with_any_seed(grade, exercise):
    module = getattr(solutions, BY_NAME[exercise].symbol).__module__.removeprefix("solutions.")
    code = reference_submission(module)
    for seed in (0, 7):
        result = grade(code, exercise, seed=seed)
        assert_no_internal_error(result, exercise)
        assert result.score == result.max_score, failures(result)


@pytest.mark.grader
@pytest.mark.parametrize("key", [k for k in WRONG if "torch_kernel" in k or "shortcut" in k])
def test_handing_the_work_to_a_forbidden_function_scores_zero(grade, key):
    exercise, code, _ = WRONG[key]
    result = grade(code, exercise)
    assert result.score == 0, [(c.name, c.message) for c in result.cases if c.passed]
    assert all("not allowed" in c.message for c in result.cases)


@pytest.mark.grader
@pytest.mark.parametrize("exercise", list(BY_NAME))
def test_every_exercise_has_a_catalogue(exercise):
    assert sum(1 for e, *_ in WRONG.values() if e == exercise) >= 5
    assert sum(1 for e, _ in CORRECT.values() if e == exercise) >= 3
