"""``python -m autograder grade PATH [--json OUT] [--gradescope OUT]``."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from autograder.classroom import grade_class, is_class_folder
from autograder.exercises import BY_NAME, EXERCISES
from autograder.grading import Exercise, grade_submission
from autograder.isolation import CHOICES, IsolationUnavailable, describe
from autograder.report import as_gradescope, as_json, table, write_json
from autograder.sandbox import configure
from autograder.submission import Submission, SubmissionError, read_submission

CODE_SUFFIXES = (".ipynb", ".py")


def submission_files(path: Path) -> list[Path]:
    """One submission's files: the file itself, or the notebooks and .py files in a folder."""
    if path.is_file():
        return [path]
    if path.is_dir():
        files = sorted(p for p in path.rglob("*") if p.suffix in CODE_SUFFIXES and p.is_file()
                       and ".ipynb_checkpoints" not in p.parts)
        if files:
            return files
        raise SubmissionError(f"{path}: no .ipynb or .py files in this folder")
    raise SubmissionError(f"{path}: no such file or folder")


def read_files(files: list[Path]) -> list[Submission]:
    subs = []
    for f in files:
        try:
            subs.append(read_submission(f))
        except SubmissionError:
            if len(files) == 1:
                raise
            # one unreadable file in a folder costs only its own exercises
    if not subs:
        raise SubmissionError("no readable notebook or .py file in this submission")
    return subs


def select_exercises(subs: list[Submission], names: list[str] | None,
                     weeks: list[int] | None) -> list[Exercise]:
    if names:
        return [BY_NAME[n] for n in names]
    if not weeks:  # a notebook says its week; a .py file is known by what it defines
        weeks = sorted({w for s in subs for w in (s.weeks or {
            e.week for e in EXERCISES if e.symbol in s.defined})})
    chosen = [e for e in EXERCISES if e.week in weeks]
    return chosen or list(EXERCISES)


def isolate(requested: str) -> bool:
    """Start the workers' server at ``requested`` and say which level it runs at; False (with
    a message) when that level is not available here."""
    try:
        level = configure(requested)
    except IsolationUnavailable as exc:
        print(f"error: isolation {requested!r} is not available on this machine ({exc}); "
              "use --isolation auto to grade with the strongest level there is", file=sys.stderr)
        return False
    print(f"isolation: {describe(level)}")
    return True


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m autograder")
    sub = parser.add_subparsers(dest="command", required=True)
    g = sub.add_parser("grade", help="grade a notebook, a .py file, or a folder of them")
    g.add_argument("path", type=Path)
    g.add_argument("--json", metavar="OUT", help="write the detailed results as JSON")
    g.add_argument("--gradescope", metavar="OUT", help="write Gradescope's results.json")
    g.add_argument("--exercise", action="append", choices=sorted(BY_NAME),
                   help="grade only this exercise (repeatable)")
    g.add_argument("--week", action="append", type=int, help="grade only this week (repeatable)")
    g.add_argument("--seed", type=int, help="fix the hidden inputs (default: fresh every run)")
    g.add_argument("--parallel", type=int, default=os.cpu_count() or 1,
                   help="exercises graded at once (default: one per core)")
    g.add_argument("--out", type=Path, default=Path("grades"),
                   help="class mode: where the gradebook and per-learner results go")
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
    args = parser.parse_args(argv)

    if args.command == "gradescope-bundle":
        from autograder.gradescope import build_bundle

        print(f"wrote {build_bundle(args.out, args.week, args.isolation)}")
        return 0

    if is_class_folder(args.path, CODE_SUFFIXES):
        if not isolate(args.isolation):
            return 2
        graded = grade_class(args.path, args.out, lambda p: read_files(submission_files(p)),
                             select_exercises, args.week, args.exercise, args.seed, args.parallel)
        for name, results in graded:
            score = sum(r.score for r in results)
            print(f"{name:<24} {score:g} / {sum(r.max_score for r in results):g}")
        print(f"gradebook: {args.out / 'gradebook.csv'}; per-learner results.json and "
              f"feedback.txt under {args.out}/")
        return 0

    try:
        subs = read_files(submission_files(args.path))
    except SubmissionError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    exercises = select_exercises(subs, args.exercise, args.week)
    if not isolate(args.isolation):
        return 2
    results = grade_submission(subs, exercises, seed=args.seed, parallel=args.parallel)
    print(table(results, title=f"{args.path}"))
    if args.json:
        write_json(as_json(results, str(args.path)), args.json)
    if args.gradescope:
        write_json(as_gradescope(results), args.gradescope)
    return 0
