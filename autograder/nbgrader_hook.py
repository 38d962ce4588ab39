"""Where nbgrader meets the isolated grader.

- ``check(exercise, notebook)`` is the hidden part of every graded test cell. Run by hand or by
  nbval on a source notebook, it grades the saved notebook in a separate process and fails
  the cell unless every case passes.
- ``IsolatedGrades`` is an nbgrader preprocessor (enabled in ``course/nbgrader_config.py``) that
  runs during ``nbgrader autograde`` after the kernel has executed the notebook. It grades the
  notebook's code in isolated workers and overwrites the output of each test cell with the
  verdict: a number (nbgrader's partial credit) and the feedback text. Whatever the learner's
  code did inside the kernel (patched ``assert``, fake output, an exit) cannot change a score.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile

from nbformat.v4 import new_output
from nbgrader.preprocessors import NbGraderPreprocessor

TEST_PREFIX = "test_"


def check(exercise: str, notebook: str) -> None:
    """Grade ``exercise`` in the saved ``notebook`` in a fresh process; raise unless all passes."""
    if os.environ.get("NBGRADER_EXECUTION") == "autograde":
        print("This cell is graded by the isolated autograder after the notebook has run.")
        return
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "result.json")
        proc = subprocess.run(
            [sys.executable, "-m", "autograder", "grade", notebook, "--exercise", exercise,
             "--json", out], capture_output=True, text=True,
        )
        if proc.returncode != 0 or not os.path.exists(out):
            raise RuntimeError(f"the autograder could not run:\n{proc.stderr[-2000:]}")
        with open(out, encoding="utf-8") as f:
            result = json.load(f)["exercises"][0]
    lines = [f"{'ok' if c['passed'] else 'FAILED'}  {c['name']}"
             + (f": {c['message']}" if c["message"] else "") for c in result["cases"]]
    print(f"{exercise}: {result['score']:g} / {result['max_score']:g}", *lines, sep="\n")
    if result["score"] < result["max_score"]:
        raise AssertionError(f"{exercise}: some hidden tests failed (see above)")


class IsolatedGrades(NbGraderPreprocessor):
    """Replace the outputs of ``test_<exercise>`` cells with the isolated grader's verdict."""

    def preprocess(self, nb, resources):
        from autograder.exercises import BY_NAME
        from autograder.grading import grade_submission
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
