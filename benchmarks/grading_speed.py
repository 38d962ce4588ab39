"""How fast a class is graded: the isolated grader against nbgrader autograde, same class.

    python benchmarks/grading_speed.py [--learners 8] [--repeats 3] [--full-course-only]

Builds a class of learners from the week 3 notebook (complete, untouched and half-done
submissions, in turn), grades it with ``python -m autograder grade CLASS`` and with
``nbgrader autograde`` on a throwaway copy of the course, and prints a table. Then it grades
one learner's full course (every released week's reference notebook, one folder) with the
isolated grader at each isolation level, the levels taking turns ``--repeats`` times so that
a busy machine slows them alike, and prints the median of each and their ratio. Timings are
wall-clock on this machine, command start and ``import torch`` included.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
COURSE = ROOT / "course"
WEEK, NOTEBOOK = "week3", "rmsnorm_swiglu.ipynb"


def env() -> dict[str, str]:
    return {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}


def make_class(folder: Path, learners: int) -> None:
    source = json.loads((COURSE / "source" / WEEK / NOTEBOOK).read_text())
    release = json.loads((COURSE / "release" / WEEK / NOTEBOOK).read_text())
    half = json.loads(json.dumps(release))
    solved = {c["metadata"].get("nbgrader", {}).get("grade_id"): c["source"]
              for c in source["cells"]}
    for cell in half["cells"]:
        if cell["metadata"].get("nbgrader", {}).get("grade_id") == "rmsnorm":
            cell["source"] = solved["rmsnorm"]
    kinds = [source, release, half]
    for i in range(learners):
        target = folder / f"learner{i:03d}" / WEEK / NOTEBOOK
        target.parent.mkdir(parents=True)
        target.write_text(json.dumps(kinds[i % len(kinds)]))


def timed(cmd: list[str], cwd: Path) -> float:
    start = time.monotonic()
    proc = subprocess.run(cmd, cwd=cwd, env=env(), capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{proc.stderr[-2000:]}")
    return time.monotonic() - start


def full_course(folder: Path) -> int:
    """One learner's whole course in one folder: every week's reference notebook."""
    folder.mkdir()
    notebooks = sorted((COURSE / "source").glob("week*/*.ipynb"))
    for notebook in notebooks:
        shutil.copy(notebook, folder / f"{notebook.parent.name}_{notebook.name}")
    return len({n.parent.name for n in notebooks})


def available(level: str, folder: Path) -> bool:
    cmd = [sys.executable, "-m", "autograder", "grade", str(folder), "--week", "3",
           "--isolation", level]
    return subprocess.run(cmd, cwd=ROOT, env=env(), capture_output=True).returncode == 0


def time_levels(folder: Path, repeats: int) -> dict[str, list[float]]:
    """Seconds to grade ``folder`` at each level, the levels taking turns."""
    levels = [level for level in ("basic", "strict") if available(level, folder)]
    seconds: dict[str, list[float]] = {level: [] for level in levels}
    for _ in range(repeats):
        for level in levels:
            cmd = [sys.executable, "-m", "autograder", "grade", str(folder), "--isolation",
                   level]
            seconds[level].append(timed(cmd, ROOT))
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--learners", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=3, help="runs of each isolation level")
    parser.add_argument("--full-course-only", action="store_true",
                        help="skip the class and nbgrader comparison")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        weeks = full_course(tmp / "full_course")
        levels = time_levels(tmp / "full_course", args.repeats)
        if args.full_course_only:
            report_levels(levels, weeks, args.repeats)
            return
        course = tmp / "course"
        course.mkdir()
        shutil.copy(COURSE / "nbgrader_config.py", course)
        shutil.copytree(COURSE / "source", course / "source")
        make_class(course / "submitted", args.learners)
        nbgrader = [sys.executable, "-m", "nbgrader"]
        timed([*nbgrader, "generate_assignment", WEEK], course)

        rows = []
        seconds = timed([sys.executable, "-m", "autograder", "grade", str(course / "submitted"),
                         "--out", str(tmp / "grades")], ROOT)
        rows.append(("isolated grader (python -m autograder grade)", seconds))
        seconds = timed([*nbgrader, "autograde", WEEK, "--create"], course)
        rows.append(("nbgrader autograde (with the isolated re-grade)", seconds))

    print(f"{args.learners} learners, one week-3 notebook each (2 exercises), "
          f"{os.cpu_count()} cores\n")
    print(f"| {'grader':<48} | {'seconds':>7} | {'submissions / minute':>20} |")
    print(f"|{'-' * 50}|{'-' * 9}|{'-' * 22}|")
    for name, seconds in rows:
        print(f"| {name:<48} | {seconds:7.1f} | {60 * args.learners / seconds:20.1f} |")
    print()
    report_levels(levels, weeks, args.repeats)


def report_levels(levels: dict[str, list[float]], weeks: int, repeats: int) -> None:
    print(f"one learner's full course ({weeks} weeks released), {os.cpu_count()} cores, "
          f"median of {repeats} runs per isolation level (the levels taking turns)\n")
    print(f"| {'isolation':<9} | {'median s':>8} | {'runs (s)':<30} |")
    print(f"|{'-' * 11}|{'-' * 10}|{'-' * 32}|")
    for level, runs in levels.items():
        shown = ", ".join(f"{s:.1f}" for s in runs)
        print(f"| {level:<9} | {statistics.median(runs):8.1f} | {shown:<30} |")
    if "strict" in levels and "basic" in levels:
        ratio = statistics.median(levels["strict"]) / statistics.median(levels["basic"])
        print(f"\nstrict / basic: {ratio:.2f}x")
    else:
        print("\nstrict isolation is not available on this machine")


if __name__ == "__main__":
    main()
