"""The week-10 notebook as the grader reads it: every cell's definitions load in the worker
(the given training loops and dataclasses included), and the instructor's version scores 50/50."""

from pathlib import Path

import pytest

from autograder.exercises import EXERCISES
from autograder.grading import grade_submission
from autograder.submission import read_submission

COURSE = Path(__file__).resolve().parents[2] / "course"
WEEK10 = [e for e in EXERCISES if e.week == 10]

pytestmark = [pytest.mark.grader, *(getattr(pytest.mark, e.name) for e in WEEK10)]


@pytest.mark.parametrize("kind", ["source", "release"])
def test_notebook_loads_without_errors_in_the_worker(kind):
    sub = read_submission(COURSE / kind / "week10" / "finetune.ipynb")
    results = grade_submission([sub], WEEK10, seed=0)
    assert [r.notes for r in results] == [[] for _ in WEEK10]
    scores = [r.score for r in results]
    assert scores == ([r.max_score for r in results] if kind == "source" else [0] * len(WEEK10))
