"""Build the course notebooks from their text sources.

    python course/build.py            # write course/source/ and course/release/
    python course/build.py --check    # exit 1 if the committed notebooks are stale

``course/notebooks/weekN_<name>.py`` (jupytext "percent" text, easy to diff and review) is the
one place a notebook is written. Cells carry a ``role``:

- ``role="locked"``: read-only code (set-up, demos, measurements); with
  ``code="solutions.positions:rotate_half"`` it starts with that reference code, given as is;
- ``role="answer" exercise="rmsnorm" solution="solutions.normalization:RMSNorm"``: the learner's
  cell; its code is copied from the reference module with nbgrader's solution markers around
  each body, so the answer key exists once, in ``solutions/`` (several symbols: ``A,B``);
- ``role="test" exercise="rmsnorm" points=5``: visible checks, plus a hidden part that calls
  the isolated autograder.

The build writes ``course/source/weekN/<name>.ipynb`` (nbgrader's instructor version, with
solutions, no outputs) and runs ``nbgrader generate_assignment`` to make
``course/release/weekN/<name>.ipynb``, the version learners open.
"""

from __future__ import annotations

import argparse
import ast
import difflib
import importlib
import inspect
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import jupytext
import nbformat

COURSE = Path(__file__).resolve().parent
NAME = re.compile(r"week(\d+)_(\w+)\.py$")
HIDDEN = '''### BEGIN HIDDEN TESTS
from autograder.nbgrader_hook import check

check("{exercise}", "{notebook}")
### END HIDDEN TESTS'''


def reference_code(spec: str, markers: bool) -> str:
    """The source of ``module:Symbol[,Symbol...]``, optionally with nbgrader's solution markers."""
    module_name, symbols = spec.split(":")
    source = inspect.getsource(importlib.import_module(module_name))
    return "\n\n\n".join(symbol_code(source, s.strip(), markers) for s in symbols.split(","))


def symbol_code(source: str, symbol: str, markers: bool) -> str:
    """One top-level function or class of ``source``, with markers around each body if asked."""
    node = next(n for n in ast.parse(source).body if getattr(n, "name", None) == symbol)
    lines = source.splitlines()
    functions = [node] if isinstance(node, ast.FunctionDef) else [
        n for n in node.body if isinstance(n, ast.FunctionDef)]
    inserts = []  # (line index, marker line), applied bottom-up
    for fn in functions:
        body = fn.body
        if isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
            body = body[1:]  # keep the docstring visible
        if body and "super().__init__" in ast.get_source_segment(source, body[0]):
            body = body[1:]
        if not body:
            continue
        indent = " " * body[0].col_offset
        inserts.append((body[0].lineno - 1, f"{indent}### BEGIN SOLUTION"))
        inserts.append((body[-1].end_lineno, f"{indent}### END SOLUTION"))
    if not markers:
        inserts = []
    for index, marker in sorted(inserts, reverse=True):
        lines.insert(index, marker)
    first = min([node.lineno] + [d.lineno for d in getattr(node, "decorator_list", [])])
    return "\n".join(lines[first - 1 : node.end_lineno + len(inserts)])


def nbgrader_meta(role: str, grade_id: str, points: int | None = None) -> dict:
    meta = {"grade": role == "test", "grade_id": grade_id, "locked": role != "answer",
            "schema_version": 3, "solution": role == "answer", "task": False}
    if points is not None:
        meta["points"] = points
    return meta


def build_source(text_path: Path) -> tuple[str, str, nbformat.NotebookNode]:
    """Turn one text notebook into nbgrader's source notebook: (week dir, file name, notebook)."""
    week, name = NAME.search(text_path.name).groups()
    notebook_name = f"{name}.ipynb"
    nb = jupytext.read(text_path)
    locked = 0
    for cell in nb.cells:
        meta = cell.metadata
        role = meta.pop("role", None)
        if cell.cell_type != "code":
            cell.metadata = {}
            continue
        if role == "answer":
            cell.source = reference_code(meta.pop("solution"), markers=True)
            meta["nbgrader"] = nbgrader_meta(role, meta.pop("exercise"))
        elif role == "test":
            exercise = meta.pop("exercise")
            hidden = HIDDEN.format(exercise=exercise, notebook=notebook_name)
            cell.source = f"{cell.source.rstrip()}\n\n{hidden}"
            meta["nbgrader"] = nbgrader_meta(role, f"test_{exercise}", int(meta.pop("points")))
        elif role == "locked":
            if "code" in meta:  # given code, copied from the reference so it exists once
                given = reference_code(meta.pop("code"), markers=False)
                cell.source = f"{given}\n\n\n{cell.source}".strip() + "\n"
            locked += 1
            meta["nbgrader"] = nbgrader_meta(role, f"locked_{locked}")
        else:
            raise ValueError(f"{text_path.name}: every code cell needs a role; got {role!r}")
        cell.outputs, cell.execution_count = [], None
    nb.metadata = {
        "course": {"week": int(week)},
        "kernelspec": {"display_name": "Python 3 (ipykernel)", "language": "python",
                       "name": "python3"},
        "language_info": {"name": "python"},
    }
    return f"week{week}", notebook_name, nb


def write_notebook(nb: nbformat.NotebookNode, path: Path) -> None:
    """One canonical layout (sorted keys, one-space indent, no ids) so diffs stay small."""
    for cell in nb.cells:
        cell.pop("id", None)
    nb.nbformat, nb.nbformat_minor = 4, 4
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(nb, indent=1, sort_keys=True, ensure_ascii=False) + "\n",
                    encoding="utf-8")


def venv_env() -> dict[str, str]:
    """nbgrader runs ``alembic`` from PATH: put this interpreter's scripts folder first."""
    scripts = str(Path(sys.executable).parent)
    return {**os.environ, "PATH": scripts + os.pathsep + os.environ.get("PATH", "")}


def build(root: Path, week: int | None = None) -> list[Path]:
    """Build the notebooks under ``root`` (``course/`` or a copy); return the files written."""
    written = []
    weeks = set()
    pattern = f"week{week}_*.py" if week is not None else "week*_*.py"
    for text_path in sorted((root / "notebooks").glob(pattern)):
        week_dir, notebook_name, nb = build_source(text_path)
        target = root / "source" / week_dir / notebook_name
        write_notebook(nb, target)
        written.append(target)
        weeks.add(week_dir)
    for week_dir in sorted(weeks):
        with tempfile.TemporaryDirectory() as tmp:  # a throwaway gradebook: builds never share
            subprocess.run(
                [sys.executable, "-m", "nbgrader", "generate_assignment", week_dir, "--force",
                 "--log-level=WARN", f"--CourseDirectory.root={root}",
                 # the shipped release/, not nbgrader's own generated/ (nbgrader_config.py)
                 "--CourseDirectory.release_directory=release",
                 f"--CourseDirectory.db_url=sqlite:///{Path(tmp) / 'gradebook.db'}"],
                cwd=root, check=True, env=venv_env(),
            )
        for released in sorted((root / "release" / week_dir).glob("*.ipynb")):
            write_notebook(nbformat.read(released, as_version=4), released)
            written.append(released)
    return written


def check() -> int:
    """Rebuild into a temporary copy and compare with the committed notebooks."""
    with tempfile.TemporaryDirectory() as tmp:
        copy = Path(tmp) / "course"
        shutil.copytree(COURSE / "notebooks", copy / "notebooks")
        shutil.copy(COURSE / "nbgrader_config.py", copy / "nbgrader_config.py")
        stale = []
        for built in build(copy):
            committed = COURSE / built.relative_to(copy)
            old = committed.read_text(encoding="utf-8") if committed.exists() else ""
            new = built.read_text(encoding="utf-8")
            if old != new:
                stale.append(str(committed.relative_to(COURSE.parent)))
                diff = difflib.unified_diff(old.splitlines(), new.splitlines(), "committed",
                                            "rebuilt", lineterm="", n=1)
                print("\n".join(list(diff)[:40]))
    if stale:
        print("stale notebooks (run `python course/build.py`):", *stale, sep="\n  ")
        return 1
    print("notebooks are up to date")
    return 0


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="only report stale notebooks")
    parser.add_argument("--week", type=int, help="build only this week's notebooks")
    args = parser.parse_args()
    sys.exit(check() if args.check else (build(COURSE, args.week) and 0))
