import dataclasses
from pathlib import Path

import pytest

from autograder.exercises import BY_NAME
from autograder.grading import ExerciseResult, grade_exercise
from autograder.submission import read_submission


@pytest.fixture
def grade(tmp_path: Path):
    """Grade ``code`` (a .py submission) for one exercise, in the usual isolated worker."""

    def run(code: str, exercise: str, timeout_s: float | None = None,
            seed: int = 1234) -> ExerciseResult:
        path = tmp_path / f"{exercise}_submission.py"
        path.write_text(code, encoding="utf-8")
        ex = BY_NAME[exercise]
        if timeout_s is not None:
            ex = dataclasses.replace(ex, timeout_s=timeout_s)
        return grade_exercise(ex, read_submission(path), seed=seed)

    return run
