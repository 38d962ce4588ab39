"""nbgrader configuration of the course (the course root is this folder)."""

import os
import sys

from nbconvert.preprocessors import ClearMetadataPreprocessor
from nbgrader.preprocessors import (
    AssignLatePenalties,
    CheckCellMetadata,
    IgnorePattern,
    LimitOutput,
    SaveAutoGrades,
)

from autograder.nbgrader_plugins import IsolatedGrades, ResilientExecute

HERE = os.path.dirname(os.path.abspath(__file__))

# nbgrader runs the `alembic` command it installed next to itself: find it even when the
# environment is not activated (`.venv/bin/nbgrader ...`).
os.environ["PATH"] = os.path.dirname(sys.executable) + os.pathsep + os.environ.get("PATH", "")

c = get_config()  # noqa: F821 (provided by traitlets when nbgrader loads this file)
c.CourseDirectory.root = HERE
c.CourseDirectory.course_id = "llm-architecture"
c.Exchange.root = os.environ.get("NBGRADER_EXCHANGE", os.path.join(HERE, "exchange"))

# The repository ships the learners' notebooks in release/ (built by `python course/build.py`,
# opened by `make lab`). nbgrader's own release folder is generated/ (not tracked), so that
# `nbgrader generate_assignment weekN` on a fresh clone really generates the assignment and
# records it in the gradebook, instead of skipping it because release/weekN exists.
c.CourseDirectory.release_directory = "generated"

# The export adds a `problem` column: why a learner could not be graded, or what went wrong.
c.ExportApp.plugin_class = "autograder.nbgrader_plugins.CsvWithProblems"

# Learners' stubs: the body of every solution region becomes this.
c.ClearSolutions.code_stub = {"python": "# YOUR CODE HERE\nraise NotImplementedError()"}

# A cell that hangs stops after this long; the rest of the notebook still runs.
c.Execute.timeout = int(os.environ.get("NBGRADER_CELL_TIMEOUT", 60))
c.Execute.interrupt_on_timeout = True

# The learner's code runs in the kernel, so its test cells cannot be trusted. Before scores
# are saved, IsolatedGrades regrades every exercise in a separate, limited worker and
# replaces those cells' outputs with the verdict (see autograder/nbgrader_plugins.py).
# ResilientExecute is nbgrader's Execute, except that a learner's code that kills the kernel
# (os._exit, a crash) no longer makes nbgrader drop the whole notebook.
c.Autograde.autograde_preprocessors = [
    ResilientExecute,
    IgnorePattern,
    ClearMetadataPreprocessor,
    LimitOutput,
    IsolatedGrades,
    SaveAutoGrades,
    AssignLatePenalties,
    CheckCellMetadata,
]
