"""``python -m autograder grade PATH`` (also ``autograder grade PATH``, the console script)."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from autograder.classroom import (
    GRADEBOOK,
    Found,
    UsageError,
    check_output_file,
    check_output_folder,
    check_week,
    choose_exercises,
    declared_weeks,
    find_files,
    folder_week,
    grade_class,
    is_class_folder,
    problems,
    read_class,
    read_found,
    weeks_of_class,
)
from autograder.grading import grade_submission, zero_result
from autograder.isolation import CHOICES, IsolationUnavailable, describe
from autograder.registry import BY_NAME, Exercise
from autograder.report import as_gradescope, as_json, internal_warning, table, write_json
from autograder.sandbox import configure
from autograder.submission import Submission, SubmissionError

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
    g.add_argument("--isolation", choices=CHOICES,
                   default=os.environ.get("AUTOGRADER_ISOLATION", "auto"),
                   help="how the learner's code is isolated (default: the strongest available; "
                        "strict fails where namespaces are not available)")
    b = sub.add_parser("gradescope-bundle", help="build Gradescope's autograder zip")
    b.add_argument("out", type=Path, help="the zip to write")
    b.add_argument("--week", action="append", type=int,
                   help="grade only this week (repeatable; default: what is submitted)")
    b.add_argument("--isolation", choices=CHOICES, default="strict",
                   help="the level run_autograder demands (default: strict)")
    return parser


def isolate(requested: str) -> None:
    """Start the workers' server at ``requested`` and say which level it runs at."""
    try:
        level = configure(requested)
    except IsolationUnavailable as exc:
        raise UsageError(f"isolation {requested!r} is not available on this machine ({exc}); "
                         "use --isolation auto to grade with the strongest level there is"
                         ) from None
    print(f"isolation: {describe(level)}")


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    if args.command == "gradescope-bundle":
        from autograder.gradescope import build_bundle

        print(f"wrote {build_bundle(args.out, args.week, args.isolation)}")
        return 0
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
    isolate(args.isolation)
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
    isolate(args.isolation)
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


# The steps of grading one submission, for ``autograder.gradescope``: each raises
# ``SubmissionError`` with a sentence for the learner when it cannot go on.


def submission_files(path: Path) -> list[Path]:
    """One submission's files: the file itself, or the notebooks and .py files under a folder
    (with ``read_files``, a file in a week folder such as ``week3/`` belongs to that week)."""
    found = find_files(path)
    if found.problem:
        raise SubmissionError(found.problem)
    return [file for file, _ in found.files]


def read_files(files: list[Path]) -> list[Submission]:
    """The readable ones of ``files``; one unreadable file costs only its own exercises."""
    subs, problems = read_found(Found([(f, folder_week(f.parent)) for f in files]))
    if not subs:
        raise SubmissionError("; ".join(problems) or "no readable notebook or .py file")
    return subs


def select_exercises(subs: list[Submission], names: list[str] | None,
                     weeks: list[int] | None) -> list[Exercise]:
    """``names``, else the exercises of ``weeks``, else of the weeks the files declare."""
    try:
        if names and not weeks:
            return [BY_NAME[n] for n in names]
        chosen = set(weeks or ()) or declared_weeks(subs)
        if not chosen:
            raise UsageError("none of your files says which week it is for (no course "
                             "notebook, none of the exercises defined)")
        for week in chosen:
            check_week(week, "the submission")
        return choose_exercises(chosen, names)
    except UsageError as exc:
        raise SubmissionError(str(exc)) from None
