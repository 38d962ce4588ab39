import dataclasses
import functools
from pathlib import Path

import pytest
import torch

from autograder.exercises import BY_NAME
from autograder.grading import ExerciseResult, grade_exercise
from autograder.submission import read_submission


@functools.cache
def built_cases(exercise: str, seed: int) -> list:
    """An exercise's cases for one seed, built once per test session: every catalogue entry
    is graded on the same hidden inputs, and the checks are pure functions of the result."""
    return BY_NAME[exercise].build(torch.Generator().manual_seed(seed))


@pytest.fixture
def grade(tmp_path: Path):
    """Grade ``code`` (a .py submission) for one exercise, in the usual isolated worker."""

    def run(code: str, exercise: str, timeout_s: float | None = None,
            seed: int = 1234) -> ExerciseResult:
        path = tmp_path / f"{exercise}_submission.py"
        path.write_text(code, encoding="utf-8")
        ex = dataclasses.replace(BY_NAME[exercise], build=lambda gen: built_cases(exercise, seed))
        if timeout_s is not None:
            ex = dataclasses.replace(ex, timeout_s=timeout_s)
        return grade_exercise(ex, read_submission(path), seed=seed)

    return run
