"""Show grading results: a points table for people, JSON for machines (ours and Gradescope's)."""

from __future__ import annotations

import json
from pathlib import Path

from autograder.grading import ExerciseResult
from autograder.sandbox import level_used


def total(results: list[ExerciseResult]) -> tuple[float, float]:
    return round(sum(r.score for r in results), 2), round(sum(r.max_score for r in results), 2)


def table(results: list[ExerciseResult], title: str = "") -> str:
    rows = [(f"week {r.exercise.week}", r.exercise.name, r.exercise.title,
             f"{r.score:g} / {r.max_score:g}") for r in results]
    score, max_score = total(results)
    head = ("week", "exercise", "what", "points")
    widths = [max(len(str(row[i])) for row in [head, *rows]) for i in range(4)]
    line = lambda row: "  ".join(str(c).ljust(w) for c, w in zip(row, widths, strict=True))
    out = [title] if title else []
    out += [line(head), line(["-" * w for w in widths])]
    out += [line(row) for row in rows]
    out += [line(["-" * w for w in widths]), line(("", "", "total", f"{score:g} / {max_score:g}"))]
    for r in results:
        if r.failures or r.notes:
            out.append("")
            out.append(f"{r.exercise.name}: {r.score:g} / {r.max_score:g}")
            out += [f"  ! {note}" for note in r.notes]
            out += [f"  x {c.name}: {c.message}" for c in r.failures]
    return "\n".join(out)


def feedback(result: ExerciseResult) -> str:
    lines = [f"{'ok' if c.passed else 'FAILED'}  {c.name}" + (f": {c.message}" if c.message else "")
             for c in result.cases]
    return "\n".join([*(f"note: {n}" for n in result.notes), *lines])


def as_json(results: list[ExerciseResult], path: str | None = None) -> dict:
    score, max_score = total(results)
    return {
        "submission": path,
        "score": score,
        "max_score": max_score,
        "isolation": level_used(),
        "exercises": [
            {
                "name": r.exercise.name, "week": r.exercise.week, "title": r.exercise.title,
                "score": r.score, "max_score": r.max_score, "notes": r.notes,
                "seconds": round(r.seconds, 2),
                "cases": [{"name": c.name, "passed": c.passed, "points": round(c.points, 3),
                           "max_points": round(c.max_points, 3), "message": c.message}
                          for c in r.cases],
            }
            for r in results
        ],
    }


def as_gradescope(results: list[ExerciseResult]) -> dict:
    """Gradescope's ``results.json``: one test per exercise, with the case-by-case feedback."""
    score, max_score = total(results)
    return {
        "score": score,
        "max_score": max_score,
        "output": f"{score:g} / {max_score:g} points (isolation: {level_used()})",
        "visibility": "visible",
        "stdout_visibility": "hidden",
        "extra_data": {"isolation": level_used()},
        "tests": [
            {"name": f"week {r.exercise.week}: {r.exercise.title} ({r.exercise.name})",
             "score": r.score, "max_score": r.max_score, "output": feedback(r),
             "visibility": "visible"}
            for r in results
        ],
    }


def write_json(data: dict, path: str | Path) -> None:
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Path(path).write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
