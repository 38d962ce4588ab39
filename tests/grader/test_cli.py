"""``python -m autograder grade``: what instructors and learners see."""

import inspect
import json
import subprocess
import sys
from pathlib import Path

import pytest

from autograder.registry import exercises_of
from solutions import feedforward, normalization
from tests.grader.catalogue_attacks import stops_on_call
from tests.grader.catalogue_week3 import HEADER

ROOT = Path(__file__).resolve().parents[2]
RELEASE = ROOT / "course" / "release" / "week3" / "rmsnorm_swiglu.ipynb"
SOURCE = ROOT / "course" / "source" / "week3" / "rmsnorm_swiglu.ipynb"
RMSNORM = HEADER + inspect.getsource(normalization)
SWIGLU = HEADER + inspect.getsource(feedforward)
WEEK3_POINTS = [e.points for e in exercises_of(3)]
WEEK3_TOTAL = sum(WEEK3_POINTS)
FULL = f"{WEEK3_TOTAL:g} / {WEEK3_TOTAL:g}"  # the printed total

pytestmark = pytest.mark.grader


def grade(*args, env=None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "autograder", "grade", *map(str, args)],
                          capture_output=True, text=True, cwd=ROOT, env=env, timeout=300)


def test_learner_notebook_before_any_work_scores_zero_with_a_clear_message(tmp_path):
    proc = grade(RELEASE, "--json", tmp_path / "r.json")
    assert proc.returncode == 0
    result = json.loads((tmp_path / "r.json").read_text())
    assert result["score"] == 0 and result["max_score"] == WEEK3_TOTAL
    assert "not implemented yet" in proc.stdout


def test_reference_notebook_full_marks_and_gradescope_json(tmp_path):
    out = tmp_path / "results.json"
    proc = grade(SOURCE, "--gradescope", out)
    assert proc.returncode == 0, proc.stderr
    assert "total" in proc.stdout and FULL in proc.stdout
    results = json.loads(out.read_text())
    assert results["score"] == WEEK3_TOTAL
    assert {"name", "score", "max_score", "output", "visibility"} <= set(results["tests"][0])
    assert [t["score"] for t in results["tests"]] == WEEK3_POINTS


def test_missing_definition_scores_zero_for_that_exercise_only(tmp_path):
    path = tmp_path / "only_rmsnorm.py"
    path.write_text(RMSNORM)
    proc = grade(path, "--json", tmp_path / "r.json")
    scores = {e["name"]: e for e in json.loads((tmp_path / "r.json").read_text())["exercises"]}
    assert scores["rmsnorm"]["score"] == 10
    assert scores["swiglu"]["score"] == 0
    assert "no definition of `SwiGLU`" in proc.stdout


@pytest.mark.parametrize("content, suffix", [(None, ".py"), ("{not json", ".ipynb"),
                                              ("hello", ".txt")])
def test_unreadable_path_exits_nonzero_with_a_message(tmp_path, content, suffix):
    path = tmp_path / f"submission{suffix}"
    if content is not None:
        path.write_text(content)
    proc = grade(path)
    assert proc.returncode == 2
    assert proc.stderr.startswith("error:") and "Traceback" not in proc.stderr


def test_a_broken_cell_costs_only_what_it_defines(tmp_path):
    """A syntax error or sys.exit in one cell; the other cells' exercise is still graded."""
    nb = json.loads(SOURCE.read_text())
    for cell in nb["cells"]:
        grade_id = cell["metadata"].get("nbgrader", {}).get("grade_id")
        if grade_id == "swiglu":
            cell["source"] = "import sys\nsys.exit(0)\nclass SwiGLU(:\n"
    path = tmp_path / "broken.ipynb"
    path.write_text(json.dumps(nb))
    proc = grade(path, "--json", tmp_path / "r.json")
    scores = {e["name"]: e for e in json.loads((tmp_path / "r.json").read_text())["exercises"]}
    assert scores["rmsnorm"]["score"] == 10
    assert scores["swiglu"]["score"] == 0
    assert "SyntaxError" in proc.stdout


def test_hang_crash_and_memory_blowup_cost_only_their_exercise(tmp_path):
    """Each scores its whole exercise zero (the construction-only cases that passed before it
    included), with one line naming it in the table, the JSON and Gradescope's output."""
    hang = RMSNORM.replace("        x32 = x.float()", "        while True:\n            pass")
    crash = SWIGLU.replace("        return self.down_proj", "        import os; os._exit(3)\n"
                           "        return self.down_proj")
    blowup = SWIGLU.replace("        return self.down_proj",
                            "        torch.ones(2**40)\n        return self.down_proj")
    for name, code, broken, intact, phrase in [
        ("hang", hang + SWIGLU, "rmsnorm", "swiglu", "timed out after 6 s while running case"),
        ("crash", RMSNORM + crash, "swiglu", "rmsnorm", "exited early with status 3"),
        ("blowup", RMSNORM + blowup, "swiglu", "rmsnorm", "ran out of memory"),
    ]:
        path = tmp_path / f"{name}.py"
        path.write_text(code)
        env = {"AUTOGRADER_TIMEOUT": "6", "PATH": "/usr/bin:/bin"}
        out, gradescope = tmp_path / f"{name}.json", tmp_path / f"{name}_gradescope.json"
        proc = grade(path, "--json", out, "--gradescope", gradescope, env=env)
        assert proc.returncode == 0, proc.stderr
        scores = {e["name"]: e for e in json.loads(out.read_text())["exercises"]}
        assert scores[intact]["score"] == 10 and scores[intact]["stopped"] is None, name
        assert scores[broken]["score"] == 0, name
        line = scores[broken]["stopped"]
        assert phrase in line and line.endswith("the whole exercise scores zero"), (name, line)
        assert [c["message"] for c in scores[broken]["cases"]] == [line] * len(
            scores[broken]["cases"])
        assert proc.stdout.count(line) == 1, (name, proc.stdout)
        assert f"{broken}: {line}" in json.loads(gradescope.read_text())["output"], name


EMPTY_NOTEBOOK = json.dumps({"cells": [], "metadata": {}, "nbformat": 4, "nbformat_minor": 5})
UNRELATED_NOTEBOOK = json.dumps({"cells": [{"cell_type": "code", "metadata": {}, "outputs": [],
                                            "execution_count": None, "source": "x = 1"}],
                                 "metadata": {}, "nbformat": 4, "nbformat_minor": 5})


def gradebook(out: Path) -> dict[str, dict]:
    import csv

    with open(out / "gradebook.csv") as f:
        return {row["learner"]: row for row in csv.DictReader(f)}


@pytest.mark.parametrize("layout", ["flat", "nbgrader"])
def test_class_folder_gives_a_gradebook_and_per_learner_results(tmp_path, layout):
    """One folder per learner (files directly, or nbgrader's week folders); a broken
    submission never stops the run, and learners whose notebook declares no week (empty,
    unrelated, not JSON) are graded against the class's week, not against every exercise."""
    import shutil

    folder = tmp_path / "submitted"
    week = "week3" if layout == "nbgrader" else ""
    for learner in ("alice", "bob", "dave", "erin", "fay"):
        (folder / learner / week).mkdir(parents=True)
    shutil.copy(SOURCE, folder / "alice" / week)
    shutil.copy(RELEASE, folder / "bob" / week)
    (folder / "dave" / week / "rmsnorm_swiglu.ipynb").write_text("{not a notebook")
    (folder / "erin" / week / "rmsnorm_swiglu.ipynb").write_text(EMPTY_NOTEBOOK)
    (folder / "fay" / week / "rmsnorm_swiglu.ipynb").write_text(UNRELATED_NOTEBOOK)
    out = tmp_path / "grades"
    proc = grade(folder, "--out", out)
    assert proc.returncode == 0, proc.stderr
    rows = gradebook(out)
    assert list(rows["alice"]) == ["learner", *(e.name for e in exercises_of(3)), "total",
                                   "max_total", "problem"]
    assert {float(row["max_total"]) for row in rows.values()} == {WEEK3_TOTAL}
    assert float(rows["alice"]["total"]) == WEEK3_TOTAL
    assert float(rows["bob"]["total"]) == float(rows["erin"]["total"]) == 0
    assert float(rows["dave"]["total"]) == 0 and "not a readable" in rows["dave"]["problem"]
    for learner in rows:
        results = json.loads((out / learner / "results.json").read_text())
        assert "tests" in results and (out / learner / "feedback.txt").exists()
        assert json.loads((out / learner / "grading.json").read_text())["internal_errors"] == []

    again = grade(folder, "--out", out)  # an existing gradebook is never replaced silently
    assert again.returncode == 2 and "--overwrite" in again.stderr
    assert "Traceback" not in again.stderr and gradebook(out) == rows


def test_a_class_with_learners_who_exit_and_hang_grades_everyone_else(tmp_path):
    """The rest is graded: carol's correct file ends with ``sys.exit(0)`` (both exercises zero,
    said once each), frank's RMSNorm hangs on its third forward call (RMSNorm zero, SwiGLU
    graded), alice is right; the gradebook's problem column names each stop."""
    folder = tmp_path / "submitted"
    files = {"alice": RMSNORM + SWIGLU, "carol": RMSNORM + SWIGLU + "\nimport sys\nsys.exit(0)\n",
             "frank": stops_on_call("            while True:\n                pass")}
    for learner, code in files.items():
        (folder / learner).mkdir(parents=True)
        (folder / learner / "answers.py").write_text(code)
    out = tmp_path / "grades"
    env = {"AUTOGRADER_TIMEOUT": "6", "PATH": "/usr/bin:/bin"}
    proc = grade(folder, "--out", out, env=env)
    assert proc.returncode == 0, proc.stderr
    rows = gradebook(out)
    assert (float(rows["alice"]["rmsnorm"]), float(rows["alice"]["swiglu"])) == (10, 10)
    assert (float(rows["carol"]["rmsnorm"]), float(rows["carol"]["swiglu"])) == (0, 0)
    assert (float(rows["frank"]["rmsnorm"]), float(rows["frank"]["swiglu"])) == (0, 10)
    assert rows["alice"]["problem"] == ""
    for name in ("rmsnorm", "swiglu"):
        assert f"{name}: your code exited early with sys.exit(0)" in rows["carol"]["problem"]
    assert "rmsnorm: your code timed out after 6 s while running case" in rows["frank"]["problem"]
    assert "swiglu" not in rows["frank"]["problem"]
    results = json.loads((out / "frank" / "results.json").read_text())
    rmsnorm = next(t for t in results["tests"] if t["name"].endswith("(rmsnorm)"))
    assert rmsnorm["score"] == 0 and "timed out" in rmsnorm["output"]
    assert "timed out" in (out / "frank" / "feedback.txt").read_text()
    assert "sys.exit(0)" in proc.stdout  # the class summary says it too


def test_nbgrader_layout_is_recognised_at_every_level(tmp_path):
    """submitted/<learner>/ and submitted/<learner>/<week>/ are one learner, never a class."""
    import shutil

    learner = tmp_path / "submitted" / "carol"
    (learner / "week3").mkdir(parents=True)
    shutil.copy(SOURCE, learner / "week3")
    for path in (learner, learner / "week3"):
        proc = grade(path, "--out", tmp_path / "grades")
        assert proc.returncode == 0, proc.stderr
        assert FULL in proc.stdout and "--out is for a class" in proc.stderr
    assert not (tmp_path / "grades").exists()


def test_the_week_comes_from_week_or_the_folder_and_an_unknown_week_is_refused(tmp_path):
    nb = tmp_path / "week3" / "empty.ipynb"
    nb.parent.mkdir()
    nb.write_text(EMPTY_NOTEBOOK)
    proc = grade(nb, "--json", tmp_path / "r.json")  # the week3 folder says which week
    assert proc.returncode == 0, proc.stderr
    assert json.loads((tmp_path / "r.json").read_text())["max_score"] == WEEK3_TOTAL

    loose = tmp_path / "empty.ipynb"
    loose.write_text(EMPTY_NOTEBOOK)
    proc = grade(loose)
    assert proc.returncode == 2 and "pass --week" in proc.stderr
    proc = grade(loose, "--week", "3", "--json", tmp_path / "r.json")
    assert proc.returncode == 0 and f"0 / {WEEK3_TOTAL:g}" in proc.stdout

    for path in (loose, tmp_path):
        proc = grade(path, "--week", "99")
        assert proc.returncode == 2 and "no week 99" in proc.stderr
        assert "Traceback" not in proc.stderr


@pytest.mark.parametrize("flag", ["--out", "--json", "--gradescope"])
def test_outputs_are_checked_before_any_grading(tmp_path, flag):
    import shutil

    folder = tmp_path / "submitted"
    (folder / "alice").mkdir(parents=True)
    shutil.copy(SOURCE, folder / "alice")
    a_file, a_folder = tmp_path / "a_file", tmp_path / "a_folder"
    a_file.write_text("keep me")
    a_folder.mkdir()
    target = a_file if flag == "--out" else a_folder
    path = folder if flag == "--out" else folder / "alice"
    proc = grade(path, flag, target)
    assert proc.returncode == 2 and proc.stderr.startswith(f"error: {flag}")
    assert "Traceback" not in proc.stderr and "week" not in proc.stdout  # nothing was graded
    proc = grade(path, flag, a_file / "inside")
    assert proc.returncode == 2 and "is a file" in proc.stderr
    assert a_file.read_text() == "keep me"


def test_gradescope_results_follow_its_specification(tmp_path):
    """gradescope-autograders.readthedocs.io, "Autograder Specifications": the documented
    keys and types, and a results.json even when the submission cannot be read."""
    top_keys = {"score", "max_score", "execution_time", "output", "output_format",
                "test_output_format", "test_name_format", "visibility", "stdout_visibility",
                "extra_data", "tests", "leaderboard"}
    test_keys = {"score", "max_score", "status", "name", "name_format", "number", "output",
                 "output_format", "tags", "visibility", "extra_data"}
    visibility = {"hidden", "after_due_date", "after_published", "visible"}

    def check(results: dict) -> None:
        assert set(results) <= top_keys and isinstance(results["score"], float)
        assert results["visibility"] in visibility
        for test in results["tests"]:
            assert set(test) <= test_keys and test["visibility"] in visibility
            assert isinstance(test["name"], str) and isinstance(test["output"], str)
            assert 0 <= test["score"] <= test["max_score"]
            assert test["status"] == ("passed" if test["score"] == test["max_score"]
                                      else "failed")
        assert results["score"] == pytest.approx(sum(t["score"] for t in results["tests"]))

    bad = tmp_path / "week3" / "rmsnorm_swiglu.ipynb"
    bad.parent.mkdir()
    bad.write_text("{not json")
    for path, code in ((RELEASE, 0), (bad, 2)):
        out = tmp_path / "results.json"
        proc = grade(path, "--gradescope", out)
        assert proc.returncode == code, proc.stderr
        results = json.loads(out.read_text())
        check(results)
        assert results["max_score"] == WEEK3_TOTAL
        assert len(results["tests"]) == len(WEEK3_POINTS)
    assert "not a readable Jupyter notebook" in results["output"]


def test_no_temporary_folder_is_left_behind(tmp_path):
    import os

    scratch = tmp_path / "tmp"
    scratch.mkdir()
    proc = grade(SOURCE, env={**os.environ, "TMPDIR": str(scratch)})
    assert proc.returncode == 0, proc.stderr
    assert list(scratch.iterdir()) == []


def test_the_grading_command_runs_from_anywhere(tmp_path):
    """The console script, from the notebook's own folder, with a relative path; and a
    Python without the course installed gets a sentence, not a traceback."""
    import os
    import shutil

    shutil.copy(SOURCE, tmp_path / "rmsnorm_swiglu.ipynb")
    script = Path(sys.executable).parent / "autograder"
    proc = subprocess.run([str(script), "grade", "rmsnorm_swiglu.ipynb"], capture_output=True,
                          text=True, cwd=tmp_path, timeout=300)
    assert proc.returncode == 0 and FULL in proc.stdout, proc.stderr
    # the notebook's own last cell, in a kernel started in the notebook's folder
    import nbformat
    from nbclient import NotebookClient

    nb = nbformat.read(tmp_path / "rmsnorm_swiglu.ipynb", as_version=4)
    last = [c for c in nb.cells if c.cell_type == "code"][-1]
    assert "sys.executable" in last.source
    nb.cells = [last]
    NotebookClient(nb, timeout=300, resources={"metadata": {"path": str(tmp_path)}}).execute()
    printed = "".join(o.get("text", "") for o in nb.cells[0].outputs)
    assert FULL in printed, printed

    bare = subprocess.run([sys.executable, "-S", "-m", "autograder", "grade", "x.ipynb"],
                          capture_output=True, text=True, cwd=ROOT, timeout=60,
                          env={"PATH": os.environ["PATH"]})
    assert bare.returncode == 2 and "cannot run the grader" in bare.stderr
    assert "Traceback" not in bare.stderr


def test_without_the_fork_server_every_job_starts_a_fresh_interpreter(tmp_path):
    """The fallback for platforms without fork grades the same way."""
    import os

    # a hang that waits (test_hang_crash_and_memory_blowup_cost_only_their_exercise spins)
    hang = RMSNORM.replace("        x32 = x.float()",
                           "        import time\n        while True:\n            time.sleep(1)")
    path = tmp_path / "hang.py"
    path.write_text(hang + SWIGLU)
    # a fresh interpreter per job imports torch each time: slow on a busy machine
    env = {**os.environ, "AUTOGRADER_FORK": "0", "AUTOGRADER_TIMEOUT": "20"}
    proc = grade(path, "--json", tmp_path / "r.json", env=env)
    scores = {e["name"]: e["score"] for e in
              json.loads((tmp_path / "r.json").read_text())["exercises"]}
    assert scores["swiglu"] == 10 and scores["rmsnorm"] < 1, proc.stdout
    assert "timed out" in proc.stdout


def test_a_folder_of_weeks_grades_each_exercise_in_its_own_weeks_notebook(tmp_path):
    """A later week's notebook may contain an earlier week's class as given code; the
    exercise is graded from the notebook of its own week."""
    import shutil

    folder = tmp_path / "learner"
    folder.mkdir()
    shutil.copy(RELEASE, folder / "week3.ipynb")  # week 3 not done
    week6 = ROOT / "course" / "source" / "week6" / "moe.ipynb"
    shutil.copy(week6, folder / "week6.ipynb")  # week 6 done, with SwiGLU given
    grade(folder, "--json", tmp_path / "r.json")
    scores = {e["name"]: e["score"] for e in
              json.loads((tmp_path / "r.json").read_text())["exercises"]}
    assert scores["rmsnorm"] == scores["swiglu"] == 0
    assert scores["moe"] == scores["load_balancing_loss"] == 10
