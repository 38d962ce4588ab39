"""``python -m autograder grade PATH`` (also ``autograder grade PATH``, the console script)."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from autograder.classroom import (
    GRADEBOOK,
    UsageError,
    check_output_file,
    check_output_folder,
    check_week,
    choose_exercises,
    declared_weeks,
    find_files,
    grade_class,
    is_class_folder,
    problems,
    read_class,
    read_found,
    weeks_of_class,
)
from autograder.exercises import BY_NAME
from autograder.grading import Exercise, grade_submission, zero_result
from autograder.report import as_gradescope, as_json, internal_warning, table, write_json

DEFAULT_OUT = Path("grades")


def parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m autograder")
    sub = parser.add_subparsers(dest="command", required=True)
    g = sub.add_parser(
        "grade", help="grade a notebook, a .py file, a learner's folder or a class",
        description="PATH is a notebook or .py file, one learner's folder (files, or nbgrader's "
        "week folders such as week3/), or a class: a folder of learner folders, such as "
        "nbgrader's submitted/. A class is graded into a gradebook under --out; with --json "
        "or --gradescope, PATH is graded as one submission.")
    g.add_argument("path", type=Path)
    g.add_argument("--week", action="append", type=int,
                   help="grade this week's exercises (repeatable); default: the week folder "
                   "(week3/), else the week the notebooks declare, for a class the class's")
    g.add_argument("--exercise", action="append", choices=sorted(BY_NAME),
                   help="grade only this exercise (repeatable)")
    g.add_argument("--json", metavar="OUT", type=Path, help="write the detailed results as JSON")
    g.add_argument("--gradescope", metavar="OUT", type=Path,
                   help="write Gradescope's results.json")
    g.add_argument("--out", type=Path,
                   help=f"a class: the folder for gradebook.csv and each learner's results "
                   f"(default: {DEFAULT_OUT}/)")
    g.add_argument("--overwrite", action="store_true",
                   help="a class: replace the gradebook an earlier run left in --out")
    g.add_argument("--seed", type=int, help="fix the hidden inputs (default: fresh every run)")
    g.add_argument("--parallel", type=int, default=os.cpu_count() or 1,
                   help="exercises graded at once (default: one per core)")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        weeks = {check_week(w, "--week") for w in args.week} if args.week else None
        if args.json is None and args.gradescope is None and is_class_folder(args.path):
            return grade_a_class(args, weeks)
        return grade_one(args, weeks)
    except UsageError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


def grade_one(args: argparse.Namespace, weeks: set[int] | None) -> int:
    """One submission: a file or one learner's folder. Prints the table; ``--json`` and
    ``--gradescope`` write files."""
    for flag, out in (("--json", args.json), ("--gradescope", args.gradescope)):
        if out is not None:
            check_output_file(out, flag)
    if args.out is not None:
        print(f"note: --out is for a class folder; {args.path} is one submission",
              file=sys.stderr)
    found = find_files(args.path, weeks)
    subs, unreadable = read_found(found)
    if not subs:
        problem = "; ".join(unreadable)
        if args.gradescope is not None:  # Gradescope shows the learner why, with a zero
            known = weeks or found.folder_weeks
            exercises = _exercises(args.exercise, known) if known or args.exercise else []
            write_json(as_gradescope([zero_result(e, problem) for e in exercises], problem),
                       args.gradescope)
        raise UsageError(problem)
    if args.exercise and not weeks:
        exercises = [BY_NAME[n] for n in args.exercise]
    else:
        weeks = weeks or declared_weeks(subs)
        if not weeks:
            raise UsageError(f"{args.path}: cannot tell which week this is (its notebooks "
                             "declare no week and it defines none of the course's exercises): "
                             "pass --week N")
        for week in weeks:
            check_week(week, str(args.path))
        exercises = choose_exercises(weeks, args.exercise)
    results = grade_submission(subs, exercises, seed=args.seed, parallel=args.parallel)
    for problem in unreadable:
        print(f"note: not graded: {problem}")
    print(table(results, title=f"{args.path}"))
    if warning := internal_warning(results):
        print(warning, file=sys.stderr)
    if args.json is not None:
        write_json(as_json(results, str(args.path)), args.json)
    if args.gradescope is not None:
        write_json(as_gradescope(results), args.gradescope)
    return 0


def _exercises(names: list[str] | None, weeks: set[int]) -> list[Exercise]:
    if names and not weeks:
        return [BY_NAME[n] for n in names]
    return choose_exercises(weeks, names)


def grade_a_class(args: argparse.Namespace, weeks: set[int] | None) -> int:
    """A folder of learner folders: every learner against the class's exercises, one
    gradebook."""
    out = args.out if args.out is not None else DEFAULT_OUT
    check_output_folder(out, args.overwrite)
    learners = read_class(args.path, weeks)
    if weeks is None:
        weeks = weeks_of_class(learners)
        if not weeks:
            raise UsageError(f"{args.path}: cannot tell which week this class is graded for "
                             "(no week folders, and no notebook declares a week): pass --week N")
        for week in weeks:
            check_week(week, str(args.path))
    exercises = choose_exercises(weeks, args.exercise)
    replacing = (out / GRADEBOOK).exists()
    print(f"{len(learners)} learners, week {', '.join(map(str, sorted(weeks)))}: "
          f"{', '.join(e.name for e in exercises)}")
    graded = grade_class(learners, exercises, out, args.path, args.seed, args.parallel)
    warnings = []
    for learner in learners:
        results = graded[learner.name]
        score = sum(r.score for r in results)
        line = f"{learner.name:<24} {score:g} / {sum(r.max_score for r in results):g}"
        notes = problems(learner, results)
        print(line + (f"  ({'; '.join(notes)})" if notes else ""))
        if warning := internal_warning(results, learner.name):
            warnings.append(warning)
    for warning in warnings:
        print(warning, file=sys.stderr)
    print(f"gradebook: {out / GRADEBOOK}{' (replaced the earlier one)' if replacing else ''}; "
          f"each learner's results.json, grading.json and feedback.txt under {out}/")
    return 0
