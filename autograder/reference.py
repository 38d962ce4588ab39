"""Reading the reference code: one parsed form of ``"module:Symbol,Symbol"`` and its source.

The course names reference code by spec strings everywhere: a notebook's given code
(``code="solutions.positions:rotate_half"``), an exercise's answer and the parts a later week
is graded with (``autograder/registry.py``), the week-7 parts (``autograder/parts.py``). They
are parsed here, and every piece of reference source (an answer cell, the worker's given code,
a submission's definitions) is cut out of its module by :func:`statement_source`.
"""

from __future__ import annotations

import ast
import functools
import importlib
import inspect
from dataclasses import dataclass


@dataclass(frozen=True)
class Spec:
    """``module:Symbol,Symbol``: top-level names of one module, in the order given."""

    module: str
    symbols: tuple[str, ...]

    @classmethod
    def parse(cls, text: str) -> Spec:
        module, sep, names = text.partition(":")
        symbols = tuple(s.strip() for s in names.split(",") if s.strip())
        if not sep or not module.strip() or not symbols:
            raise ValueError(f"{text!r} is not a reference spec like 'module:Symbol,Symbol'")
        return cls(module.strip(), symbols)

    def __str__(self) -> str:
        return f"{self.module}:{','.join(self.symbols)}"

    def load(self, symbol: str | None = None) -> object:
        """The object ``symbol`` (default: the last one) of the imported module."""
        return getattr(importlib.import_module(self.module), symbol or self.symbols[-1])

    def source(self) -> str:
        """The whole module's source."""
        return module_source(self.module)

    def code(self, markers: bool = False) -> str:
        """Each symbol's source in the order given, with nbgrader's solution markers around
        every function body if ``markers`` (the answer cells of the notebooks)."""
        return "\n\n\n".join(symbol_code(self.source(), s, markers) for s in self.symbols)


@functools.cache
def module_source(module: str) -> str:
    return inspect.getsource(importlib.import_module(module))


def assigned_names(node: ast.stmt) -> set[str]:
    """The names a top-level ``def``, ``class`` or plain assignment binds (imports aside)."""
    if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
        return {node.name}
    if isinstance(node, ast.Assign):
        return {t.id for t in node.targets if isinstance(t, ast.Name)}
    if isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
        return {node.target.id}
    return set()


def first_line(node: ast.stmt) -> int:
    """The line a statement starts on, decorators included."""
    return min([node.lineno] + [d.lineno for d in getattr(node, "decorator_list", [])])


def statement_source(source: str, node: ast.stmt) -> str:
    """A top-level statement's source: whole lines from its first decorator to its end
    (comments included), without another statement that shares a line with it
    (``import torch; plot()`` gives ``import torch``)."""
    lines = source.splitlines()[first_line(node) - 1 : node.end_lineno]
    end = lines[-1].encode()  # ast's columns count UTF-8 bytes
    if end[node.end_col_offset :].lstrip().startswith(b";"):
        lines[-1] = end[: node.end_col_offset].decode()
    if first_line(node) == node.lineno:
        start = lines[0].encode()
        if start[: node.col_offset].strip():
            lines[0] = start[node.col_offset :].decode()
    return "\n".join(lines)


def symbol_code(source: str, symbol: str, markers: bool = False) -> str:
    """One top-level function, class or constant (``ROPE_THETA = 10000.0``, with its line's
    comment) of ``source``; with ``markers``, nbgrader's solution markers go around each
    function body (after its docstring and ``super().__init__``)."""
    node = next((n for n in ast.parse(source).body if symbol in assigned_names(n)), None)
    if node is None:
        raise ValueError(f"no top-level function, class or constant {symbol!r}")
    text = statement_source(source, node).splitlines()
    if not markers or isinstance(node, (ast.Assign, ast.AnnAssign)):
        return "\n".join(text)
    offset = first_line(node)  # source line number of text[0]
    functions = [node] if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) else [
        n for n in node.body if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))]
    inserts = []  # (index into text, marker line), applied bottom-up
    for fn in functions:
        body = fn.body
        if isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
            body = body[1:]  # keep the docstring visible
        if body and "super().__init__" in ast.get_source_segment(source, body[0]):
            body = body[1:]
        if not body:
            continue
        indent = " " * body[0].col_offset
        inserts.append((body[0].lineno - offset, f"{indent}### BEGIN SOLUTION"))
        inserts.append((body[-1].end_lineno - offset + 1, f"{indent}### END SOLUTION"))
    for index, marker in sorted(inserts, reverse=True):
        text.insert(index, marker)
    return "\n".join(text)


@functools.cache
def given_code(spec: str) -> str:
    """The reference code of ``"module:Sym,Sym"`` as one chunk for the grader's worker: the
    module's imports (except those of other ``solutions`` modules: list what they provide as
    given too), then each symbol's source in module order. A module-level constant
    (``PRESETS``) brings the constants it is built from."""
    parsed = Spec.parse(spec)
    source = parsed.source()
    body = ast.parse(source).body
    wanted = set(parsed.symbols)
    constants = {name: node for node in body if isinstance(node, (ast.Assign, ast.AnnAssign))
                 for name in assigned_names(node)}
    todo = [name for name in wanted if name in constants]
    while todo:  # the constants a wanted constant refers to
        node = constants[todo.pop()]
        for ref in ast.walk(node):
            if isinstance(ref, ast.Name) and ref.id in constants and ref.id not in wanted:
                wanted.add(ref.id)
                todo.append(ref.id)
    missing = wanted - {name for node in body for name in assigned_names(node)}
    if missing:
        raise ValueError(f"{parsed.module} has no top-level {', '.join(sorted(missing))}")
    imports = [node for node in body if isinstance(node, (ast.Import, ast.ImportFrom))
               and not (isinstance(node, ast.ImportFrom) and node.level == 0
                        and (node.module or "").split(".")[0] == "solutions")]
    chosen = [node for node in body if assigned_names(node) & wanted]
    return "\n\n".join(statement_source(source, node) for node in [*imports, *chosen]) + "\n"
