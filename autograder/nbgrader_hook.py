"""The hidden part of every graded test cell: ``check(exercise, notebook)``.

Run by hand or by nbval on a source notebook, it grades the saved notebook in a separate
process and fails the cell unless every case passes. The first check grades every exercise of
the notebook in that one process and keeps the results in the kernel; the later test cells
print theirs from it while the saved file is unchanged (a notebook saved again, after an edit,
is graded again; a grader edited since is seen once the kernel restarts).

The nbgrader plugins are in ``autograder.nbgrader_plugins``: a test cell's kernel imports only
this module, and importing nbgrader and nbformat would cost it about 2 CPU-seconds.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import tempfile

# notebook's absolute path -> (sha256 of the saved file, {exercise: its result from --json})
_graded: dict[str, tuple[str, dict[str, dict]]] = {}


def grade_saved(notebook: str, exercise: str | None = None) -> dict[str, dict]:
    """``python -m autograder grade notebook --json``, for ``exercise`` or (None) every exercise
    of the notebook's week: each exercise's result by name."""
    only = ["--exercise", exercise] if exercise else []
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "result.json")
        proc = subprocess.run(
            [sys.executable, "-m", "autograder", "grade", notebook, *only, "--json", out],
            capture_output=True, text=True,
        )
        if proc.returncode != 0 or not os.path.exists(out):
            raise RuntimeError(f"the autograder could not run:\n{proc.stderr[-2000:]}")
        with open(out, encoding="utf-8") as f:
            return {result["name"]: result for result in json.load(f)["exercises"]}


def saved_result(notebook: str, exercise: str) -> dict:
    """``exercise``'s result in the saved ``notebook``: graded with all of the notebook's
    exercises the first time this content is seen, then from memory."""
    path = os.path.abspath(notebook)
    try:
        with open(path, "rb") as f:
            digest = hashlib.sha256(f.read()).hexdigest()
    except OSError as exc:
        raise RuntimeError(f"the autograder could not run: cannot read {notebook} ({exc})"
                           ) from None
    known = _graded.get(path)
    if known is None or known[0] != digest:  # first seen, or saved again since
        try:
            known = _graded[path] = (digest, grade_saved(notebook))
        except RuntimeError:  # e.g. a notebook that declares no week: one exercise at a time
            known = _graded[path] = (digest, {})
    graded = known[1]
    if exercise not in graded:
        graded.update(grade_saved(notebook, exercise))
    return graded[exercise]


def check(exercise: str, notebook: str) -> None:
    """Grade ``exercise`` in the saved ``notebook`` in a fresh process (or take its result from
    the process an earlier check of the same saved file ran); raise unless all passes."""
    if os.environ.get("NBGRADER_EXECUTION") == "autograde":
        print("This cell is graded by the isolated autograder after the notebook has run.")
        return
    result = saved_result(notebook, exercise)
    lines = [f"{'ok' if c['passed'] else 'FAILED'}  {c['name']}"
             + (f": {c['message']}" if c["message"] else "") for c in result["cases"]]
    print(f"{exercise}: {result['score']:g} / {result['max_score']:g}", *lines, sep="\n")
    if result["score"] < result["max_score"]:
        raise AssertionError(f"{exercise}: some hidden tests failed (see above)")
