"""Read a submission (a notebook or a ``.py`` file) into the chunks of code the worker runs.

From a notebook the worker gets, in order: the whole of every answer cell (nbgrader
``solution`` cells, and cells the learner added), and only the imports, ``def`` and
``class`` statements of every other code cell. Plots, benchmarks, visible checks and
training loops therefore never run during grading, and a learner's helper function is found
wherever it was written (imports of the course's own ``solutions`` and ``autograder``
packages from those cells are left out: the worker cannot import them). A ``.py`` file runs
whole, as a module would on import.
"""

from __future__ import annotations

import ast
import json
from dataclasses import dataclass, field
from pathlib import Path

from autograder.reference import assigned_names, statement_source

KEEP_ALWAYS = (ast.Import, ast.ImportFrom, ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)
# the course's own packages: the worker cannot import them (by design), and what a locked
# cell takes from them is given to the worker as reference code (``Exercise.given``)
COURSE_PACKAGES = ("solutions", "autograder")


class SubmissionError(Exception):
    """The submission cannot be read at all (missing file, not a notebook, ...)."""


@dataclass
class Submission:
    path: Path
    chunks: list[dict] = field(default_factory=list)  # {"label", "source"}
    defined: set[str] = field(default_factory=set)  # top-level names it defines
    weeks: set[int] = field(default_factory=set)  # from notebook metadata, when present


def _strip_magics(source: str) -> str:
    """IPython magics and shell escapes are not Python: drop them."""
    return "\n".join(
        "" if line.lstrip().startswith(("%", "!")) else line for line in source.splitlines()
    )


def _top_level_names(tree: ast.Module) -> set[str]:
    names = set()
    for node in tree.body:
        names |= assigned_names(node)
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            names.update((a.asname or a.name).split(".")[0] for a in node.names)
    return names


def _course_import(node: ast.stmt) -> bool:
    if isinstance(node, ast.ImportFrom):
        return node.level == 0 and (node.module or "").split(".")[0] in COURSE_PACKAGES
    if isinstance(node, ast.Import):
        return all(a.name.split(".")[0] in COURSE_PACKAGES for a in node.names)
    return False


def _definitions_only(source: str) -> str:
    tree = ast.parse(source)
    return "\n\n".join(statement_source(source, node) for node in tree.body
                       if isinstance(node, KEEP_ALWAYS) and not _course_import(node))


def _is_answer_cell(cell: dict) -> bool:
    meta = cell.get("metadata", {}).get("nbgrader")
    return meta is None or bool(meta.get("solution"))


def _is_test_cell(cell: dict) -> bool:
    meta = cell.get("metadata", {}).get("nbgrader") or {}
    return bool(meta.get("grade")) and not meta.get("solution")


def read_notebook(path: Path) -> Submission:
    try:
        nb = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise SubmissionError(f"{path}: not a readable Jupyter notebook ({exc})") from exc
    return notebook_submission(nb, path)


def notebook_submission(nb: dict, path: Path | str) -> Submission:
    """The code of a notebook already in memory (a dict, or nbformat's NotebookNode)."""
    path = Path(path)
    cells = nb.get("cells") if isinstance(nb, dict) else None
    if not isinstance(cells, list):
        raise SubmissionError(f"{path}: not a Jupyter notebook (no list of cells)")
    sub = Submission(path=path)
    week = nb.get("metadata", {}).get("course", {}).get("week")
    if isinstance(week, int):
        sub.weeks.add(week)
    for n, cell in enumerate(cells, start=1):
        if not isinstance(cell, dict) or cell.get("cell_type") != "code" or _is_test_cell(cell):
            continue
        source = cell.get("source", "")
        source = "".join(source) if isinstance(source, list) else str(source)
        source = _strip_magics(source)
        label = f"{path.name}, cell {n}"
        try:
            tree = ast.parse(source)
        except SyntaxError:
            # keep it: the worker reports the error, and only this cell's definitions are lost
            sub.chunks.append({"label": label, "source": source})
            continue
        if not _is_answer_cell(cell):
            source = _definitions_only(source)
            tree = ast.parse(source)
        if source.strip():
            sub.chunks.append({"label": label, "source": source})
            sub.defined |= _top_level_names(tree)
    return sub


def read_python(path: Path) -> Submission:
    try:
        source = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise SubmissionError(f"{path}: cannot read ({exc})") from exc
    sub = Submission(path=path, chunks=[{"label": path.name, "source": source}])
    try:
        sub.defined = _top_level_names(ast.parse(source))
    except SyntaxError:
        pass
    return sub


def read_submission(path: Path) -> Submission:
    """One file of a submission."""
    if path.suffix == ".ipynb":
        return read_notebook(path)
    if path.suffix == ".py":
        return read_python(path)
    raise SubmissionError(f"{path}: expected a .ipynb notebook or a .py file")
