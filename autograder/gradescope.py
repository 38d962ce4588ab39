"""Gradescope: the autograder zip, and what its ``run_autograder`` runs.

``python -m autograder gradescope-bundle OUT.zip [--week N ...]`` writes the zip that
Gradescope's "Configure Autograder" page takes (its specification: ``setup.sh`` and
``run_autograder`` at the root of the archive; the zip is unpacked into
``/autograder/source``; each submission lands in ``/autograder/submission``; the score goes to
``/autograder/results/results.json``). In the zip:

- ``setup.sh``: run once, as root, when Gradescope builds the image: a virtual environment in
  ``/autograder/venv`` with the CPU build of torch and this package, then the answer key
  (the package's source and its installed copy) made readable by root alone;
- ``run_autograder``: for every submission, ``python -m autograder.gradescope`` under the
  isolation level chosen at build time (``strict`` by default);
- ``course/``: this package's source (``pyproject.toml``, ``autograder/``, ``solutions/``).

``AUTOGRADER_ROOT`` (default ``/autograder``) and ``AUTOGRADER_PYTHON`` move both scripts, so a
test can run the bundle in a temporary folder laid out like Gradescope's.
"""

from __future__ import annotations

import argparse
import os
import shlex
import sys
import time
import zipfile
from pathlib import Path

from autograder.isolation import CHOICES, PACKAGE_ROOT, IsolationUnavailable, describe

CPU_TORCH_INDEX = "https://download.pytorch.org/whl/cpu"
SOURCE_FILES = ("pyproject.toml", "README.md")
SOURCE_PACKAGES = ("autograder", "solutions")

SETUP = f"""#!/usr/bin/env bash
# Gradescope runs this once, as root, when it builds the autograder image.
set -euo pipefail
ROOT="${{AUTOGRADER_ROOT:-/autograder}}"
python3 -m venv "$ROOT/venv" || {{  # Ubuntu ships venv without ensurepip
  apt-get install -y -q python3 python3-venv python3-pip
  python3 -m venv "$ROOT/venv"
}}
PIP="$ROOT/venv/bin/pip"
"$PIP" install -q --upgrade pip
# the CPU build of torch first, so that the package's torch>=2.4 finds it installed
"$PIP" install -q --index-url {CPU_TORCH_INDEX} "torch>=2.4"
"$PIP" install -q "$ROOT/source/course"
# the answer key for root alone: the isolated worker never runs as root
PKGS=$("$ROOT/venv/bin/python" -c 'import autograder, solutions, os
print(os.path.dirname(autograder.__file__), os.path.dirname(solutions.__file__))')
chmod -R go-rwx "$ROOT/source" $PKGS
"""

RUN = """#!/usr/bin/env bash
# Gradescope runs this for every submission, as root; the results go to results/results.json.
ROOT="${{AUTOGRADER_ROOT:-/autograder}}"
PYTHON="${{AUTOGRADER_PYTHON:-$ROOT/venv/bin/python}}"
cd "$ROOT"
exec "$PYTHON" -m autograder.gradescope --root "$ROOT" {args}
"""


def _add(archive: zipfile.ZipFile, name: str, data: bytes, mode: int = 0o644) -> None:
    info = zipfile.ZipInfo(name, date_time=(2024, 1, 1, 0, 0, 0))
    info.external_attr = (0o100000 | mode) << 16  # a regular file with these permissions
    info.compress_type = zipfile.ZIP_DEFLATED
    archive.writestr(info, data)


def build_bundle(out: Path, weeks: list[int] | None = None, isolation: str = "strict") -> Path:
    """Write Gradescope's autograder zip to ``out``; returns ``out``."""
    if not (PACKAGE_ROOT / "pyproject.toml").exists():
        raise SystemExit("gradescope-bundle needs a checkout of the course (pyproject.toml)")
    if isolation not in CHOICES:
        raise SystemExit(f"unknown isolation {isolation!r}")
    args = ["--isolation", isolation] + [a for w in weeks or [] for a in ("--week", str(w))]
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(out, "w") as archive:
        _add(archive, "setup.sh", SETUP.encode(), 0o755)
        _add(archive, "run_autograder", RUN.format(args=shlex.join(args)).encode(), 0o755)
        for name in SOURCE_FILES:
            _add(archive, f"course/{name}", (PACKAGE_ROOT / name).read_bytes())
        for package in SOURCE_PACKAGES:
            for path in sorted((PACKAGE_ROOT / package).rglob("*")):
                if path.is_file() and "__pycache__" not in path.parts:
                    name = path.relative_to(PACKAGE_ROOT).as_posix()
                    _add(archive, f"course/{name}", path.read_bytes())
    return out


def _not_graded(message: str, isolation: str | None) -> dict:
    return {"score": 0.0, "output": message, "visibility": "visible",
            "stdout_visibility": "hidden", "tests": [],
            "extra_data": {"isolation": isolation, "graded": False}}


def run(root: Path, weeks: list[int] | None, isolation: str) -> int:
    """Grade ``root/submission`` into ``root/results/results.json``; 0 when graded."""
    from autograder.cli import read_files, select_exercises, submission_files
    from autograder.grading import grade_submission
    from autograder.report import as_gradescope, table, write_json
    from autograder.sandbox import configure
    from autograder.submission import SubmissionError

    start = time.monotonic()
    results_path = root / "results" / "results.json"
    try:
        subs = read_files(submission_files(root / "submission"))
        exercises = select_exercises(subs, None, weeks)
    except SubmissionError as exc:
        write_json(_not_graded(f"No gradable file in your submission: {exc}. Upload the "
                               "week's .ipynb notebook (or a .py file).", None), results_path)
        print(f"not graded: {exc}")
        return 0
    try:
        level = configure(isolation)
    except IsolationUnavailable as exc:
        write_json(_not_graded(
            "Your submission was NOT graded: the autograder could not isolate your code on "
            "this machine. The score of 0 is a placeholder; your instructor will regrade.",
            None), results_path)
        print(f"error: isolation {isolation!r} is not available here: {exc}\n"
              "Rebuild the bundle with --isolation auto to grade at the strongest level this "
              "container allows, then regrade all submissions.", file=sys.stderr)
        return 2
    print(f"isolation: {describe(level)}")
    results = grade_submission(subs, exercises, parallel=os.cpu_count() or 1)
    print(table(results, title=str(root / "submission")))
    data = as_gradescope(results)
    data["execution_time"] = round(time.monotonic() - start, 1)
    write_json(data, results_path)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m autograder.gradescope",
                                     description="grade a Gradescope submission (run_autograder)")
    parser.add_argument("--root", type=Path, default=Path("/autograder"))
    parser.add_argument("--week", action="append", type=int)
    parser.add_argument("--isolation", choices=CHOICES, default="strict")
    args = parser.parse_args(argv)
    return run(args.root, args.week, args.isolation)


if __name__ == "__main__":
    sys.exit(main())
