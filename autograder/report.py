"""Show grading results: a points table for people, JSON for machines (ours and Gradescope's)."""

from __future__ import annotations

import json
from pathlib import Path

from autograder.grading import ZEROED, ExerciseResult
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
            if r.stopped:  # one line says it all: every case has the same message
                out.append(f"  x {stop_line(r)}")
            out += [f"  ! {note}" for note in r.notes]
            if not r.stopped:
                out += [f"  x {c.name}: {c.message}" for c in r.failures]
    return "\n".join(out)


def stop_line(result: ExerciseResult) -> str:
    """The one line that says why an exercise scored zero as a whole (``result.stopped``)."""
    return f"{result.stopped}: {ZEROED}"


def stops(results: list[ExerciseResult]) -> list[str]:
    """One line per exercise that scored zero because its worker stopped abnormally."""
    return [f"{r.exercise.name}: {stop_line(r)}" for r in results if r.stopped]


def _verdict(case) -> str:
    if case.passed:
        return "ok"
    return "GRADER ERROR" if case.internal_error else "FAILED"


def feedback(result: ExerciseResult) -> str:
    if result.stopped:
        lines = [f"FAILED  {stop_line(result)}"]
    else:
        lines = [f"{_verdict(c)}  {c.name}" + (f": {c.message}" if c.message else "")
                 for c in result.cases]
    return "\n".join([*(f"note: {n}" for n in result.notes), *lines])


def internal_errors(results: list[ExerciseResult]) -> list[dict]:
    return [{"exercise": r.exercise.name, "case": c.name, "message": c.message}
            for r in results for c in r.internal_errors]


def internal_warning(results: list[ExerciseResult], who: str = "") -> str | None:
    """The instructor's warning when the grader's own code failed: those cases scored zero
    through no fault of the submission."""
    errors = internal_errors(results)
    if not errors:
        return None
    where = ", ".join(dict.fromkeys(e["exercise"] for e in errors))
    return (f"warning: {who + ': ' if who else ''}{len(errors)} case(s) of {where} met an "
            "internal grader error (a bug in the grader, not in the submission) and scored "
            f"zero; please report it. First: {errors[0]['case']}: {errors[0]['message']}")


def as_json(results: list[ExerciseResult], path: str | None = None) -> dict:
    score, max_score = total(results)
    return {
        "submission": path,
        "score": score,
        "max_score": max_score,
        "isolation": level_used(),
        # cases the grader's own code failed on: zero points, not the submission's fault
        "internal_errors": internal_errors(results),
        "exercises": [
            {
                "name": r.exercise.name, "week": r.exercise.week, "title": r.exercise.title,
                "score": r.score, "max_score": r.max_score, "notes": r.notes,
                # why the whole exercise scored zero (an exit, hang, crash, memory blow-up,
                # tampering), or null
                "stopped": stop_line(r) if r.stopped else None,
                "seconds": round(r.seconds, 2), "internal_errors": len(r.internal_errors),
                "cases": [{"name": c.name, "passed": c.passed, "points": round(c.points, 3),
                           "max_points": round(c.max_points, 3), "message": c.message,
                           "internal_error": c.internal_error}
                          for c in r.cases],
            }
            for r in results
        ],
    }


def as_gradescope(results: list[ExerciseResult], problem: str = "") -> dict:
    """Gradescope's ``results.json`` (gradescope-autograders.readthedocs.io, "Autograder
    Specifications"): one test per exercise, with the case-by-case feedback. ``problem``: why
    the submission could not be graded at all (every test then scores zero)."""
    score, max_score = total(results)
    level = level_used()
    output = f"{score:g} / {max_score:g} points" + (f" (isolation: {level})" if level else "")
    if problem:
        output = f"{problem}\n{output}"
    output = "\n".join([output, *stops(results)])
    if internal_errors(results):
        output += ("\nSome cases met an internal grader error (a bug in the grader, not in "
                   "your code) and scored zero: your instructor has been warned.")
    return {
        "score": score,
        "max_score": max_score,
        "output": output,
        "visibility": "visible",
        "stdout_visibility": "hidden",
        "extra_data": {"isolation": level},
        "tests": [
            {"name": f"week {r.exercise.week}: {r.exercise.title} ({r.exercise.name})",
             "score": r.score, "max_score": r.max_score,
             "status": "passed" if r.score >= r.max_score else "failed",
             "output": problem or feedback(r), "visibility": "visible"}
            for r in results
        ],
    }


def write_json(data: dict, path: str | Path) -> None:
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Path(path).write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
