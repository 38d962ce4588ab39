"""Every week's graders against its catalogue (``catalogue_weekN.py``): each known-wrong
submission loses points (and, where the grader knows the mistake, says so), each correct
variant and the reference itself get full marks."""

import importlib
import pkgutil
import sys

import pytest

import tests.grader as grader_tests
from autograder.reference import Spec
from autograder.registry import BY_NAME
from tests.ahead import selected
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


SEEDS = (0, 7)  # the reference is graded with these; the catalogue with the grader's default


def submissions(test: str, key: str) -> dict[str, tuple]:
    """What a test of this module grades: label -> ``Grader.grade``'s arguments (code,
    exercise, timeout, seed)."""
    if test == "test_reference_gets_full_marks_with_any_seed":
        module = Spec.parse(BY_NAME[key].reference).module.removeprefix("solutions.")
        return {f"{key} reference, seed {seed}": (reference_submission(module), key, None, seed)
                for seed in SEEDS}
    if test == "test_correct_variant_gets_full_marks":
        exercise, code = CORRECT[key]
        return {key: (code, exercise, None, 1234)}
    exercise, code, _ = WRONG[key]
    return {key: (code, exercise, None, 1234)}


TESTS = ("test_known_wrong_submission_loses_points", "test_correct_variant_gets_full_marks",
         "test_reference_gets_full_marks_with_any_seed",
         "test_handing_the_work_to_a_forbidden_function_scores_zero")


def ahead_of_session(request, ahead) -> None:
    """Queue every submission this session's tests grade (see tests/ahead.py)."""
    grader = request.getfixturevalue("grader")
    for test in TESTS:
        for params in selected(request.session, sys.modules[__name__], test):
            for label, submission in submissions(test, params["key"]).items():
                ahead.start(("catalogue", label), grader.grade, *submission)


@pytest.fixture(scope="module")
def graded(grader, ahead):
    """``graded(test, key)``: the results of what a test grades, graded in the background."""

    def results(test: str, key: str) -> dict:
        return {label: ahead.result(("catalogue", label), grader.grade, *submission)
                for label, submission in submissions(test, key).items()}

    return results


@pytest.mark.grader
@pytest.mark.parametrize("key", marked(WRONG))
def test_known_wrong_submission_loses_points(graded, key):
    _, _, phrase = WRONG[key]
    [result] = graded("test_known_wrong_submission_loses_points", key).values()
    assert_no_internal_error(result, key)
    assert result.score < result.max_score, f"{key} got full marks"
    messages = " | ".join(c.message for c in result.failures)
    if phrase:
        assert phrase in messages, f"feedback for {key} should mention {phrase!r}: {messages}"


@pytest.mark.grader
@pytest.mark.parametrize("key", marked(CORRECT))
def test_correct_variant_gets_full_marks(graded, key):
    [result] = graded("test_correct_variant_gets_full_marks", key).values()
    assert_no_internal_error(result, key)
    assert result.score == result.max_score, failures(result)


@pytest.mark.grader
@pytest.mark.parametrize("key", [pytest.param(name, marks=getattr(pytest.mark, name))
                                 for name in BY_NAME])
def test_reference_gets_full_marks_with_any_seed(graded, key):
    for label, result in graded("test_reference_gets_full_marks_with_any_seed", key).items():
        assert_no_internal_error(result, label)
        assert result.score == result.max_score, (label, failures(result))


@pytest.mark.grader
@pytest.mark.parametrize("key", [k for k in WRONG if "torch_kernel" in k or "shortcut" in k])
def test_handing_the_work_to_a_forbidden_function_scores_zero(graded, key):
    [result] = graded("test_known_wrong_submission_loses_points", key).values()
    assert result.score == 0, [(c.name, c.message) for c in result.cases if c.passed]
    assert all("not allowed" in c.message for c in result.cases)


@pytest.mark.grader
@pytest.mark.parametrize("exercise", list(BY_NAME))
def test_every_exercise_has_a_catalogue(exercise):
    assert sum(1 for e, *_ in WRONG.values() if e == exercise) >= 5
    assert sum(1 for e, _ in CORRECT.values() if e == exercise) >= 3
