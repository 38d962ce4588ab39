"""What a path holds (one file, one learner, or a class) and grading a whole class.

nbgrader keeps submissions as ``submitted/<learner>/<week>/<notebook>.ipynb``; the grading
command recognises that layout at every level:

- ``submitted/``: a class (one folder per learner);
- ``submitted/carol/``: one learner, whose week folders (``week3/``...) say what to grade;
- ``submitted/carol/week3/`` or a single file: one submission of one week.

A folder of learner folders that hold their files directly (no week folders) is a class too.
The week a submission is graded for comes from ``--week``, else from its week folder, else
from what its notebooks declare (a notebook's ``course.week`` metadata; a ``.py`` file by the
exercises it defines); in a class, from the weeks of the class as a whole, so that a learner
who handed in an empty or unreadable notebook is graded against the same exercises as the
others.
"""

from __future__ import annotations

import csv
import os
import re
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from tqdm import tqdm

from autograder.grading import ExerciseResult, owner, safe_grade
from autograder.registry import EXERCISES, Exercise
from autograder.report import as_gradescope, as_json, feedback, stops, table, write_json
from autograder.submission import Submission, SubmissionError, read_submission

CODE_SUFFIXES = (".ipynb", ".py")
WEEK_FOLDER = re.compile(r"week(\d+)")
SKIPPED_FOLDERS = (".ipynb_checkpoints", "__pycache__")
GRADEBOOK = "gradebook.csv"


class UsageError(Exception):
    """The command cannot do what was asked; said before any grading (exit status 2)."""


def folder_week(path: Path) -> int | None:
    match = WEEK_FOLDER.fullmatch(path.name)
    return int(match.group(1)) if match else None


def known_weeks() -> list[int]:
    return sorted({e.week for e in EXERCISES})


def check_week(week: int, where: str) -> int:
    if week not in known_weeks():
        weeks = known_weeks()
        raise UsageError(f"{where}: the course has no week {week} (its weeks are "
                         f"{weeks[0]} to {weeks[-1]})")
    return week


def _subfolders(path: Path) -> list[Path]:
    return sorted(p for p in path.iterdir() if p.is_dir() and not p.name.startswith(".")
                  and p.name not in SKIPPED_FOLDERS)


def _code_at_top(path: Path) -> bool:
    return any(p.is_file() and p.suffix in CODE_SUFFIXES for p in path.iterdir())


def is_learner_folder(path: Path) -> bool:
    """nbgrader's ``submitted/<learner>/``: no code at its top, only week folders."""
    folders = _subfolders(path)
    return (not _code_at_top(path) and bool(folders)
            and all(folder_week(p) is not None for p in folders))


def is_class_folder(path: Path) -> bool:
    """A folder of learner folders (nbgrader's ``submitted/``), with no code at its top."""
    return (path.is_dir() and not _code_at_top(path) and bool(_subfolders(path))
            and not is_learner_folder(path))


@dataclass
class Found:
    """One learner's files, each with the week of the folder it sits in (or None)."""

    files: list[tuple[Path, int | None]] = field(default_factory=list)
    problem: str = ""  # why there is nothing to grade

    @property
    def folder_weeks(self) -> set[int]:
        return {w for _, w in self.files if w is not None}


def find_files(path: Path, weeks: set[int] | None = None) -> Found:
    """The code files of one submission under ``path`` (a file, a learner-week folder, or a
    learner folder with or without week folders); with ``weeks``, only the files of those
    weeks' folders (files outside any week folder are always kept)."""
    if path.is_file():
        return Found([(path, folder_week(path.parent))])
    if not path.is_dir():
        return Found(problem=f"{path}: no such file or folder")
    files = []
    for file in sorted(path.rglob("*")):
        if (not file.is_file() or file.suffix not in CODE_SUFFIXES
                or any(part in SKIPPED_FOLDERS for part in file.relative_to(path).parts)):
            continue
        week = None
        for folder in [file.parent, *file.parent.parents]:
            week = folder_week(folder)
            if week is not None or folder == path:
                break
        files.append((file, week))
    if not files:
        return Found(problem=f"{path}: no .ipynb or .py files in this folder")
    chosen = [(f, w) for f, w in files if weeks is None or w is None or w in weeks]
    if not chosen:
        asked = ", ".join(f"week{w}" for w in sorted(weeks or ()))
        return Found(problem=f"{path}: nothing handed in for {asked} (no {asked} folder)")
    return Found(chosen)


def read_found(found: Found) -> tuple[list[Submission], list[str]]:
    """The readable files of a submission, and one problem line per unreadable one. A file in
    a week folder belongs to that week, whatever its notebook says."""
    subs, problems = [], [found.problem] if found.problem else []
    for path, week in found.files:
        try:
            sub = read_submission(path)
        except SubmissionError as exc:
            problems.append(str(exc))
            continue
        if week is not None:
            sub.weeks = {week}
        subs.append(sub)
    return subs, problems


def declared_weeks(subs: list[Submission]) -> set[int]:
    """The weeks a submission's files declare: a notebook's metadata; a .py file by the
    exercises it defines."""
    return {w for s in subs for w in (s.weeks or {
        e.week for e in EXERCISES if e.symbol in s.defined})}


def class_weeks(declared: list[set[int]]) -> set[int]:
    """The weeks of a class: those that at least half of the learners who declare any week
    declare, so that one learner who handed in the wrong notebook does not add a week."""
    voters = [weeks for weeks in declared if weeks]
    votes = Counter(w for weeks in voters for w in weeks)
    return {w for w, n in votes.items() if 2 * n >= len(voters)}


def choose_exercises(weeks: set[int], names: list[str] | None) -> list[Exercise]:
    chosen = [e for e in EXERCISES if e.week in weeks and (not names or e.name in names)]
    if not chosen:
        raise UsageError(f"no exercise named {', '.join(names or [])} in week(s) "
                         f"{', '.join(map(str, sorted(weeks)))}")
    return chosen


def check_output_file(path: Path, flag: str) -> None:
    """Fail now, not after grading, when ``path`` cannot be written."""
    if path.is_dir():
        raise UsageError(f"{flag} {path}: that is a folder; name a file in it, e.g. "
                         f"{path / 'results.json'}")
    _check_writable_parent(path, flag)


def _check_writable_parent(path: Path, flag: str) -> None:
    parent = path.absolute().parent
    while not parent.exists():
        parent = parent.parent
    if not parent.is_dir():
        raise UsageError(f"{flag} {path}: {parent} is a file, not a folder")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise UsageError(f"{flag} {path}: no permission to write in {parent}")


def check_output_folder(out: Path, overwrite: bool) -> None:
    """The class gradebook's folder: a folder we may write, holding no earlier gradebook
    unless ``overwrite``."""
    if out.exists() and not out.is_dir():
        raise UsageError(f"--out {out}: that is a file; name a folder for the gradebook")
    _check_writable_parent(out / GRADEBOOK, "--out")
    if (out / GRADEBOOK).exists() and not overwrite:
        raise UsageError(f"{out / GRADEBOOK} already exists (an earlier run's gradebook): pass "
                         "--overwrite to replace it, or --out to write somewhere else")


@dataclass
class Learner:
    name: str
    subs: list[Submission]
    problems: list[str]  # files that could not be read, or nothing handed in
    folder_weeks: set[int]  # the week folders (nbgrader's layout) the files came from


def read_class(folder: Path, weeks: set[int] | None) -> list[Learner]:
    learners = []
    for path in _subfolders(folder):
        found = find_files(path, weeks)
        subs, problems = read_found(found)
        learners.append(Learner(path.name, subs, problems, found.folder_weeks))
    return learners


def weeks_of_class(learners: list[Learner]) -> set[int]:
    """Every week folder anyone handed in (nbgrader's layout), else the weeks most learners'
    notebooks declare."""
    folders = set().union(*(learner.folder_weeks for learner in learners))
    return folders or class_weeks([declared_weeks(learner.subs) for learner in learners])


def grade_class(
    learners: list[Learner],
    exercises: list[Exercise],
    out: Path,
    folder: Path,
    seed: int | None = None,
    parallel: int = 2,
) -> dict[str, list[ExerciseResult]]:
    """Grade every learner against ``exercises``; write ``gradebook.csv`` and per-learner
    results to ``out`` (checked beforehand with ``check_output_folder``)."""
    tasks = [(learner, e) for learner in learners for e in exercises]

    def run(task: tuple[Learner, Exercise]) -> ExerciseResult:
        learner, exercise = task  # a learner with no readable file scores zero, with a message
        return safe_grade(exercise, owner(learner.subs, exercise), seed)

    with ThreadPoolExecutor(max_workers=max(1, parallel)) as pool:
        done = list(tqdm(pool.map(run, tasks), total=len(tasks), unit="exercise",
                         desc=f"grading {len(learners)} learners"))
    graded: dict[str, list[ExerciseResult]] = {learner.name: [] for learner in learners}
    for (learner, _), result in zip(tasks, done, strict=True):
        graded[learner.name].append(result)

    out.mkdir(parents=True, exist_ok=True)
    with open(out / GRADEBOOK, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(["learner", *(e.name for e in exercises), "total", "max_total",
                         "problem"])
        for learner in learners:
            results = graded[learner.name]
            writer.writerow([learner.name, *(r.score for r in results),
                             round(sum(r.score for r in results), 2),
                             round(sum(r.max_score for r in results), 2),
                             "; ".join(problems(learner, results))])
    for learner in learners:
        results = graded[learner.name]
        write_json(as_gradescope(results), out / learner.name / "results.json")
        write_json(as_json(results, str(folder / learner.name)),
                   out / learner.name / "grading.json")
        text = table(results, title=learner.name) + "\n\n" + "\n\n".join(
            f"{r.exercise.name}\n{feedback(r)}" for r in results)
        if learner.problems:
            text = "\n".join(learner.problems) + f"\n\n{text}"
        (out / learner.name / "feedback.txt").write_text(text + "\n", encoding="utf-8")
    return graded


def problems(learner: Learner, results: list[ExerciseResult]) -> list[str]:
    """The gradebook's ``problem`` column: files that could not be read, exercises whose
    worker stopped abnormally (an exit, hang, crash, memory blow-up, tampering), and grader
    bugs."""
    bugs = [f"internal grader error in {r.exercise.name} ({len(r.internal_errors)} cases)"
            for r in results if r.internal_errors]
    return [*learner.problems, *stops(results), *bugs]
