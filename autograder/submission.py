"""Read a submission (a notebook or a ``.py`` file) into the chunks of code the worker runs.

From a notebook the reader keeps, in order: the whole of every answer cell (nbgrader
``solution`` cells, and cells the learner added), and only the imports, ``def`` and
``class`` statements of every other code cell. Plots, benchmarks, visible checks and
training loops therefore never run during grading, and a learner's helper function is found
wherever it was written (imports of the course's own ``solutions`` and ``autograder``
packages from those cells are left out: the worker cannot import them). A ``.py`` file runs
whole, as a module would on import.

Each exercise is then loaded on its own (``Submission.chunks_for``): the exercise's own
answer cell whole, and from every other cell only its imports and the statements that define
what the exercise uses, directly or through other definitions. A class body that calls
``os._exit`` in the RMSNorm cell therefore costs RMSNorm, not the SwiGLU next to it.
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
    # {"label", "source"}, and for a notebook cell "cell": its nbgrader grade_id (None for a
    # cell the learner added) and "whole": False when only its definitions were kept
    chunks: list[dict] = field(default_factory=list)
    defined: set[str] = field(default_factory=set)  # top-level names it defines
    weeks: set[int] = field(default_factory=set)  # from notebook metadata, when present

    def broken_cells(self, exercise: str) -> list[str]:
        """Why the answer cells of ``exercise`` (and the cells the learner added) that do not
        parse could not be read."""
        return [f"{c['label']}: {c['error']}" for c in self.chunks
                if "error" in c and c.get("cell") in (exercise, None)]

    def chunks_for(self, exercise: str, names: set[str]) -> list[dict]:
        """The code the worker loads to grade one exercise that uses ``names``.

        A notebook's answer cell of ``exercise`` (nbgrader grade_id), or a cell the learner
        added that defines one of ``names``, comes whole; from every other cell come its
        imports and the statements that define what is needed, following the names each
        kept statement uses. A cell that does not parse is kept as it is when it is the
        exercise's own (the worker reports its error) and left out otherwise. A ``.py``
        file comes whole."""
        own, others = [], []
        for chunk in self.chunks:
            if "cell" not in chunk:  # a .py file
                own.append(chunk)
                continue
            try:
                tree = ast.parse(chunk["source"])
            except SyntaxError:
                tree = None
            mine = chunk["whole"] and (chunk["cell"] == exercise or (
                chunk["cell"] is None and tree is not None
                and _top_level_names(tree) & names))
            if mine:
                own.append(chunk)
            elif tree is not None:
                others.append((chunk, tree.body))
        needed = set(names)
        for chunk in own:
            try:
                needed |= _used_names(ast.parse(chunk["source"]))
            except SyntaxError:
                pass
        kept: set[int] = set()  # ids of the statements of ``others`` to keep
        changed = True
        while changed:
            changed = False
            for _, body in others:
                for node in body:
                    if id(node) in kept:
                        continue
                    imports = isinstance(node, (ast.Import, ast.ImportFrom))
                    if imports or _bound_names(node) & needed:
                        kept.add(id(node))
                        needed |= _used_names(node)
                        changed = True
        chosen = {id(c) for c in own}
        out = []
        for chunk in self.chunks:
            if id(chunk) in chosen:
                out.append({"label": chunk["label"], "source": chunk["source"]})
                continue
            body = next((b for c, b in others if c is chunk), None)
            statements = [n for n in body or [] if id(n) in kept]
            if statements:
                out.append({"label": chunk["label"],
                            "source": _statements_in_place(chunk["source"], statements)})
        return out


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


def _bound_names(node: ast.stmt) -> set[str]:
    """The module-level names a statement binds or changes (``X.attr = ...`` changes ``X``),
    looking into ``if``/``for``/``with``/``try`` blocks but not into functions or classes."""
    if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
        return {node.name}
    if isinstance(node, (ast.Import, ast.ImportFrom)):
        return {(a.asname or a.name).split(".")[0] for a in node.names}
    names = set()
    targets = []
    if isinstance(node, ast.Assign):
        targets = node.targets
    elif isinstance(node, (ast.AugAssign, ast.AnnAssign)):
        targets = [node.target]
    elif isinstance(node, (ast.For, ast.AsyncFor)):
        targets = [node.target]
    elif isinstance(node, (ast.With, ast.AsyncWith)):
        targets = [item.optional_vars for item in node.items if item.optional_vars]
    for target in targets:
        for sub in ast.walk(target):
            if isinstance(sub, ast.Name):
                names.add(sub.id)
    for field_name in ("body", "orelse", "finalbody", "handlers"):
        for child in getattr(node, field_name, []):
            if isinstance(child, ast.ExceptHandler):
                names |= {child.name} if child.name else set()
                names |= set().union(*(_bound_names(c) for c in child.body))
            else:
                names |= _bound_names(child)
    return names


def _used_names(node: ast.AST) -> set[str]:
    """Every name a statement mentions, inside its functions and classes too (more than it
    needs is harmless: it only keeps more definitions)."""
    return {n.id for n in ast.walk(node) if isinstance(n, ast.Name)}


def _statements_in_place(source: str, statements: list[ast.stmt]) -> str:
    """Only ``statements`` of ``source``, each on its own lines, so that tracebacks still
    give the cell's line numbers."""
    lines = source.splitlines()
    out = [""] * len(lines)
    for node in statements:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            first = min([node.lineno] + [d.lineno for d in node.decorator_list])
            text = lines[first - 1 : node.end_lineno]
        else:  # a simple statement may share its line with others (``import os; os._exit(0)``)
            first = node.lineno
            text = (ast.get_source_segment(source, node) or "").splitlines()
        for i, line in enumerate(text):
            row = first - 1 + i
            out[row] = f"{out[row]}; {line}" if i == 0 and out[row] else line
    return "\n".join(out) + "\n"


def _course_import(node: ast.stmt) -> bool:
    if isinstance(node, ast.ImportFrom):
        return node.level == 0 and (node.module or "").split(".")[0] in COURSE_PACKAGES
    if isinstance(node, ast.Import):
        return all(a.name.split(".")[0] in COURSE_PACKAGES for a in node.names)
    return False


def _literal_constant(node: ast.stmt) -> bool:
    """``NAME = <a literal>`` (``ROPE_THETA = 10000.0``): what a definition's default may name."""
    names = assigned_names(node) if isinstance(node, ast.Assign) else set()
    if not names or any(name.startswith("__") for name in names):
        return False
    try:
        ast.literal_eval(node.value)
    except ValueError:
        return False
    return True


def _definitions_only(source: str) -> str:
    tree = ast.parse(source)
    return "\n\n".join(statement_source(source, node) for node in tree.body
                       if _literal_constant(node)
                       or isinstance(node, KEEP_ALWAYS) and not _course_import(node))


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
        grade_id = (cell.get("metadata", {}).get("nbgrader") or {}).get("grade_id")
        whole = _is_answer_cell(cell)
        chunk = {"label": label, "source": source, "cell": grade_id, "whole": whole}
        try:
            tree = ast.parse(source)
        except SyntaxError as exc:
            # keep it: the worker reports the error, and only this cell's definitions are lost
            chunk["error"] = f"SyntaxError: {exc.msg} (line {exc.lineno})"
            sub.chunks.append(chunk)
            continue
        if not whole:
            chunk["source"] = _definitions_only(source)
            tree = ast.parse(chunk["source"])
        if chunk["source"].strip():
            sub.chunks.append(chunk)
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
