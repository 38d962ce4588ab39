"""``autograder.nbgrader_hook``: the hidden part of every graded test cell."""

import subprocess
import sys
from pathlib import Path

import pytest

from autograder import nbgrader_hook

ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.grader


def test_a_test_cell_imports_neither_nbgrader_nor_nbformat():
    """The kernel of every graded notebook imports the hook; nbgrader and nbformat (through
    jsonschema's format checkers) cost it about 2 CPU-seconds and it needs neither."""
    code = ("import sys; from autograder.nbgrader_hook import check; "
            "print(sorted(m for m in ('nbgrader', 'nbformat', 'nbclient', 'jsonschema') "
            "if m in sys.modules))")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          cwd=ROOT, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "[]"


def test_the_nbgrader_plugins_are_still_found_under_the_hooks_name():
    """Configurations name them ``autograder.nbgrader_hook.X``, as ``course/nbgrader_config.py``
    does."""
    from traitlets.utils.importstring import import_item

    from autograder import nbgrader_plugins

    for name in ("IsolatedGrades", "ResilientExecute", "CsvWithProblems"):
        assert import_item(f"autograder.nbgrader_hook.{name}") is getattr(nbgrader_plugins, name)
    with pytest.raises(AttributeError, match="no_such_thing"):
        nbgrader_hook.no_such_thing  # noqa: B018
