"""The graded exercises of every week, in course order.

Each ``weekN.py`` module here defines ``EXERCISES``; they are collected automatically.
"""

import importlib
import pkgutil

from autograder.grading import Exercise

_modules = sorted(
    (m.name for m in pkgutil.iter_modules(__path__) if m.name.startswith("week")),
    key=lambda name: int(name.removeprefix("week")),
)
EXERCISES: list[Exercise] = [
    e for name in _modules for e in importlib.import_module(f"{__name__}.{name}").EXERCISES
]
BY_NAME: dict[str, Exercise] = {e.name: e for e in EXERCISES}
