"""The grader the tests share: submissions graded in the usual isolated workers, through one
warm fork server."""

import dataclasses
import threading
from pathlib import Path

from autograder.grading import ExerciseResult, grade_exercise
from autograder.registry import BY_NAME, Exercise
from autograder.submission import read_submission


class Grader:
    """Grades ``.py`` submissions in the usual isolated workers, all through this process's one
    warm fork server. An exercise's hidden cases depend only on the seed, so they are built
    once per (exercise, seed) and shared by every submission graded with that seed."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.cases: dict[tuple[str, int], list] = {}
        self.building: dict[tuple[str, int], threading.Lock] = {}
        self.lock = threading.Lock()
        self.files = 0

    def exercise(self, name: str, timeout_s: float | None = None) -> Exercise:
        exercise = BY_NAME[name]
        build = exercise.build

        def cached_build(gen):
            key = (name, gen.initial_seed())
            with self.lock:
                lock = self.building.setdefault(key, threading.Lock())
            with lock:
                if key not in self.cases:
                    self.cases[key] = build(gen)
            return self.cases[key]

        changes = {"cases": cached_build}
        if timeout_s is not None:
            changes["timeout_s"] = timeout_s
        return dataclasses.replace(exercise, **changes)

    def grade(self, code: str, exercise: str, timeout_s: float | None = None,
              seed: int = 1234) -> ExerciseResult:
        with self.lock:
            self.files += 1
            path = self.folder / f"{self.files}_{exercise}_submission.py"
        path.write_text(code, encoding="utf-8")
        return grade_exercise(self.exercise(exercise, timeout_s), read_submission(path),
                              seed=seed)
