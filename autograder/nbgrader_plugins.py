"""nbgrader's side of the isolated grader: plugins named in ``course/nbgrader_config.py``.

They import nbgrader and nbformat, so they live apart from ``autograder.nbgrader_hook.check``,
which runs in every graded test cell's kernel.

- ``IsolatedGrades`` is an nbgrader preprocessor (enabled in ``course/nbgrader_config.py``) that
  runs during ``nbgrader autograde`` after the kernel has executed the notebook. It grades the
  notebook's code in isolated workers and overwrites the output of each test cell with the
  verdict: a number (nbgrader's partial credit) and the feedback text. Whatever the learner's
  code did inside the kernel (patched ``assert``, fake output, an exit) cannot change a score.
- ``ResilientExecute`` replaces nbgrader's ``Execute``: a learner's code that kills the kernel
  (``os._exit``, a crash, running out of memory) no longer makes nbgrader drop the whole
  notebook; the cells after it stay unrun and the isolated re-grade scores every exercise.
- ``CsvWithProblems`` is nbgrader's CSV export with a ``problem`` column: why a learner's
  submission could not be graded (a file that is not a notebook), or what happened while it
  was (the kernel died, an exercise scored zero for an exit or a hang, an internal grader
  error).

What happened is kept in each autograded notebook's metadata (``autograder.problems``).
"""

from __future__ import annotations

import csv
import os
from pathlib import Path

import nbformat
from nbclient.exceptions import CellTimeoutError, DeadKernelError
from nbformat.v4 import new_output
from nbgrader.plugins import CsvExportPlugin
from nbgrader.preprocessors import Execute, NbGraderPreprocessor

TEST_PREFIX = "test_"


def _problems(nb) -> list:
    return nb.metadata.setdefault("autograder", {}).setdefault("problems", [])


class IsolatedGrades(NbGraderPreprocessor):
    """Replace the outputs of ``test_<exercise>`` cells with the isolated grader's verdict."""

    def preprocess(self, nb, resources):
        from autograder.grading import grade_submission
        from autograder.registry import BY_NAME
        from autograder.report import feedback
        from autograder.submission import notebook_submission

        cells = {}
        for cell in nb.cells:
            grade_id = cell.metadata.get("nbgrader", {}).get("grade_id", "")
            name = grade_id.removeprefix(TEST_PREFIX)
            if cell.metadata.get("nbgrader", {}).get("grade") and name in BY_NAME:
                cells[name] = cell
        if not cells:
            return nb, resources
        path = resources.get("metadata", {}).get("name", "notebook") + ".ipynb"
        sub = notebook_submission(nb, path)
        results = grade_submission([sub], [BY_NAME[n] for n in cells], parallel=os.cpu_count())
        from autograder.report import internal_warning, stops

        if warning := internal_warning(results, path):
            self.log.warning(warning)
            _problems(nb).append(warning.removeprefix("warning: "))
        _problems(nb).extend(stops(results))  # exercises zeroed by an exit, a hang, ...
        for result in results:
            cell = cells[result.exercise.name]
            points = float(cell.metadata["nbgrader"]["points"])
            earned = round(points * result.score / result.max_score, 3)
            text = (f"Graded by the isolated autograder: {result.score:g} / "
                    f"{result.max_score:g}\n{feedback(result)}\n")
            cell.outputs = [
                new_output("stream", name="stdout", text=text),
                new_output("execute_result", data={"text/plain": repr(earned)},
                           execution_count=cell.get("execution_count")),
            ]
            self.log.info("%s: %s / %s points", result.exercise.name, earned, points)
        return nb, resources


class ResilientExecute(Execute):
    """nbgrader's ``Execute``, except that a kernel that dies does not fail the notebook.

    nbgrader drops a notebook whose kernel died ("Removing failed assignment"), or stopped
    answering after a cell timed out and was interrupted: no score, no feedback, and the export
    shows a zero like an empty hand-in. Here the cells after that one stay unrun, each unrun
    grade cell gets an error output (so that nothing can count it as passed), the problem goes
    into the notebook's metadata, and ``IsolatedGrades`` then grades every exercise in its own
    worker, where an exit or a hang costs only its own exercise.
    """

    def preprocess(self, nb, resources=None, km=None):
        self._died_at = None
        return super().preprocess(nb, resources, km)

    def preprocess_cell(self, cell, resources, index):
        if self._died_at is None:
            try:
                return super().preprocess_cell(cell, resources, index)
            except (DeadKernelError, CellTimeoutError) as exc:
                self._died_at = index
                what = ("died" if isinstance(exc, DeadKernelError) else
                        "stopped answering after it was interrupted")
                message = (f"the kernel {what} while running cell {index + 1} (os._exit, a "
                           "crash, running out of memory, or a cell past the time limit); the "
                           "cells after it did not run, and every exercise was graded in "
                           "isolation")
                self.log.warning(message)
                _problems(self.nb).append(message)
        if cell.cell_type == "code" and cell.metadata.get("nbgrader", {}).get("grade"):
            cell.outputs = [new_output(
                "error", ename="KernelDied", evalue=f"not run: the kernel failed in cell "
                f"{self._died_at + 1}", traceback=[])]
        return cell, self.resources


def submission_problem(coursedir, assignment: str, student: str) -> str:
    """The ``problem`` column of the export for one learner and assignment."""
    submitted = Path(coursedir.format_path(coursedir.submitted_directory, student, assignment))
    autograded = Path(coursedir.format_path(coursedir.autograded_directory, student, assignment))
    if not submitted.is_dir():
        return ""
    if not autograded.is_dir():
        unreadable = []
        for path in sorted(submitted.glob("*.ipynb")):
            try:
                nbformat.read(path, as_version=4)
            except Exception as exc:
                why = " ".join(str(exc).split())[:120]
                unreadable.append(f"{path.name} is not a readable notebook ({why})")
        regrade = (f"grade it with `python -m autograder grade "
                   f"{submitted.relative_to(Path(coursedir.root))}`")
        if unreadable:
            return (f"grading failed: {'; '.join(unreadable)}; ask for the notebook again, "
                    f"then {regrade}")
        return f"not autograded (or autograding failed: see its log); {regrade}"
    found = []
    for path in sorted(autograded.glob("*.ipynb")):
        try:
            nb = nbformat.read(path, as_version=4)
        except Exception:
            continue
        found += [f"{path.name}: {p}" for p in nb.metadata.get("autograder", {})
                  .get("problems", [])]
    return "; ".join(found)


class CsvWithProblems(CsvExportPlugin):
    """nbgrader's CSV export, quoted properly, with a ``problem`` column for each row."""

    def export(self, gradebook) -> None:
        super().export(gradebook)
        dest = self.to or "grades.csv"
        with open(dest, newline="", encoding="utf-8") as f:
            rows = list(csv.DictReader(f))
        coursedir = self.parent.coursedir
        for row in rows:
            row["problem"] = submission_problem(coursedir, row["assignment"], row["student_id"])
        fields = [*(rows[0].keys() if rows else ["assignment", "student_id"]), "problem"]
        with open(dest, "w", newline="", encoding="utf-8") as f:
            writer = csv.DictWriter(f, fieldnames=list(dict.fromkeys(fields)))
            writer.writeheader()
            writer.writerows(rows)
