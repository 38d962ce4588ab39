"""nbgrader configuration of the course (the course root is this folder)."""

import os

from nbconvert.preprocessors import ClearMetadataPreprocessor
from nbgrader.preprocessors import (
    AssignLatePenalties,
    CheckCellMetadata,
    Execute,
    IgnorePattern,
    LimitOutput,
    SaveAutoGrades,
)

from autograder.nbgrader_hook import IsolatedGrades

HERE = os.path.dirname(os.path.abspath(__file__))

c = get_config()  # noqa: F821 (provided by traitlets when nbgrader loads this file)
c.CourseDirectory.root = HERE
c.CourseDirectory.course_id = "llm-architecture"
c.Exchange.root = os.environ.get("NBGRADER_EXCHANGE", os.path.join(HERE, "exchange"))

# Learners' stubs: the body of every solution region becomes this.
c.ClearSolutions.code_stub = {"python": "# YOUR CODE HERE\nraise NotImplementedError()"}

# A cell that hangs stops after this long; the rest of the notebook still runs.
c.Execute.timeout = int(os.environ.get("NBGRADER_CELL_TIMEOUT", 60))
c.Execute.interrupt_on_timeout = True

# The learner's code runs in the kernel, so its test cells cannot be trusted. Before scores
# are saved, IsolatedGrades regrades every exercise in a separate, limited worker and
# replaces those cells' outputs with the verdict (see autograder/nbgrader_hook.py).
c.Autograde.autograde_preprocessors = [
    Execute,
    IgnorePattern,
    ClearMetadataPreprocessor,
    LimitOutput,
    IsolatedGrades,
    SaveAutoGrades,
    AssignLatePenalties,
    CheckCellMetadata,
]
