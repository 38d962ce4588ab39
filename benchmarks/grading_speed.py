"""How fast a class is graded: the isolated grader against nbgrader autograde, same class.

    python benchmarks/grading_speed.py [--learners 8]

Builds a class of learners from the week 3 notebook (complete, untouched and half-done
submissions, in turn), grades it with ``python -m autograder grade CLASS`` and with
``nbgrader autograde`` on a throwaway copy of the course, and prints a table. Then it grades
one learner's full course (every released week's reference notebook) with the isolated
grader. Timings are wall-clock on this machine; run it on an idle machine.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--learners", type=int, default=8)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
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

        full = tmp / "full_course"
        for notebook in sorted((COURSE / "source").glob("week*/*.ipynb")):
            (full / notebook.parent.name).mkdir(parents=True, exist_ok=True)
            shutil.copy(notebook, full / notebook.parent.name)
        weeks = len(list(full.iterdir()))
        full_seconds = timed([sys.executable, "-m", "autograder", "grade", str(full)], ROOT)

    print(f"{args.learners} learners, one week-3 notebook each (2 exercises), "
          f"{os.cpu_count()} cores\n")
    print(f"| {'grader':<48} | {'seconds':>7} | {'submissions / minute':>20} |")
    print(f"|{'-' * 50}|{'-' * 9}|{'-' * 22}|")
    for name, seconds in rows:
        print(f"| {name:<48} | {seconds:7.1f} | {60 * args.learners / seconds:20.1f} |")
    print(f"\none learner's full course ({weeks} weeks released): {full_seconds:.1f} s "
          "with the isolated grader")


if __name__ == "__main__":
    main()
