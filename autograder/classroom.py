"""Grade a whole class: one folder per learner, graded in parallel, one gradebook."""

from __future__ import annotations

import csv
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from tqdm import tqdm

from autograder.grading import Exercise, ExerciseResult, owner, safe_grade
from autograder.report import as_gradescope, as_json, feedback, table, write_json
from autograder.submission import Submission, SubmissionError


def learner_folders(path: Path) -> list[Path]:
    return sorted(p for p in path.iterdir() if p.is_dir() and not p.name.startswith("."))


def is_class_folder(path: Path, suffixes: tuple[str, ...]) -> bool:
    """A folder of learner folders (nbgrader's ``submitted/`` for one), with no code at its top."""
    if not path.is_dir():
        return False
    entries = list(path.iterdir())
    return (not any(p.is_file() and p.suffix in suffixes for p in entries)
            and any(p.is_dir() for p in entries))


def grade_class(
    folder: Path,
    out: Path,
    read: callable,
    select: callable,
    weeks: list[int] | None = None,
    names: list[str] | None = None,
    seed: int | None = None,
    parallel: int = 2,
) -> list[tuple[str, list[ExerciseResult]]]:
    """Grade every learner folder; write ``gradebook.csv`` and per-learner results to ``out``.

    ``read(folder) -> list[Submission]`` and ``select(subs, names, weeks) -> list[Exercise]``
    come from the CLI, so a class is graded exactly as each of its submissions would be alone.
    """
    learners: dict[str, list[Submission]] = {}
    problems: dict[str, str] = {}
    for learner in learner_folders(folder):
        try:
            learners[learner.name] = read(learner)
        except SubmissionError as exc:
            learners[learner.name], problems[learner.name] = [], str(exc)
    chosen = {name: select(subs, names, weeks) for name, subs in learners.items()}

    tasks: list[tuple[str, Exercise]] = [(n, e) for n, ex in chosen.items() for e in ex]

    def run(task: tuple[str, Exercise]) -> ExerciseResult:
        name, exercise = task  # a learner with no readable file scores zero, with a message
        return safe_grade(exercise, owner(learners[name], exercise), seed)

    with ThreadPoolExecutor(max_workers=max(1, parallel)) as pool:
        done = list(tqdm(pool.map(run, tasks), total=len(tasks), unit="exercise",
                         desc=f"grading {len(learners)} learners"))

    by_learner: dict[str, list[ExerciseResult]] = {n: [] for n in learners}
    for (name, _), result in zip(tasks, done, strict=True):
        by_learner[name].append(result)

    out.mkdir(parents=True, exist_ok=True)
    exercises = list(dict.fromkeys(e.name for _, e in tasks))
    with open(out / "gradebook.csv", "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(["learner", *exercises, "total", "max_total", "problem"])
        for name, results in by_learner.items():
            score = {r.exercise.name: r.score for r in results}
            writer.writerow([name, *(score.get(e, "") for e in exercises),
                             round(sum(r.score for r in results), 2),
                             round(sum(r.max_score for r in results), 2),
                             problems.get(name, "")])
    for name, results in by_learner.items():
        write_json(as_gradescope(results), out / name / "results.json")
        write_json(as_json(results, str(folder / name)), out / name / "grading.json")
        text = table(results, title=f"{name}") + "\n\n" + "\n\n".join(
            f"{r.exercise.name}\n{feedback(r)}" for r in results)
        if name in problems:
            text = f"{problems[name]}\n\n{text}"
        (out / name / "feedback.txt").write_text(text + "\n", encoding="utf-8")
    return list(by_learner.items())
