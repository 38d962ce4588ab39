"""``python -m autograder grade``: what instructors and learners see."""

import inspect
import json
import subprocess
import sys
from pathlib import Path

import pytest

from autograder.registry import exercises_of
from solutions import feedforward, normalization
from tests.grader.catalogue_week3 import HEADER

ROOT = Path(__file__).resolve().parents[2]
RELEASE = ROOT / "course" / "release" / "week3" / "rmsnorm_swiglu.ipynb"
SOURCE = ROOT / "course" / "source" / "week3" / "rmsnorm_swiglu.ipynb"
RMSNORM = HEADER + inspect.getsource(normalization)
SWIGLU = HEADER + inspect.getsource(feedforward)
WEEK3_POINTS = [e.points for e in exercises_of(3)]
WEEK3_TOTAL = sum(WEEK3_POINTS)

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
    assert "total" in proc.stdout and f"{WEEK3_TOTAL:g} / {WEEK3_TOTAL:g}" in proc.stdout
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
    hang = RMSNORM.replace("        x32 = x.float()", "        while True:\n            pass")
    crash = SWIGLU.replace("        return self.down_proj", "        import os; os._exit(3)\n"
                           "        return self.down_proj")
    blowup = SWIGLU.replace("        return self.down_proj",
                            "        torch.ones(2**40)\n        return self.down_proj")
    for name, code, broken, intact, phrase in [
        ("hang", hang + SWIGLU, "rmsnorm", "swiglu", "timed out"),
        ("crash", RMSNORM + crash, "swiglu", "rmsnorm", "exited early"),
        ("blowup", RMSNORM + blowup, "swiglu", "rmsnorm", "raised"),
    ]:
        path = tmp_path / f"{name}.py"
        path.write_text(code)
        env = {"AUTOGRADER_TIMEOUT": "6", "PATH": "/usr/bin:/bin"}
        proc = grade(path, "--json", tmp_path / f"{name}.json", env=env)
        assert proc.returncode == 0, proc.stderr
        scores = {e["name"]: e for e in
                  json.loads((tmp_path / f"{name}.json").read_text())["exercises"]}
        assert scores[intact]["score"] == 10, name
        assert scores[broken]["score"] <= 2, name  # only construction-time cases can pass
        assert phrase in proc.stdout, (name, proc.stdout)


def test_class_folder_gives_a_gradebook_and_per_learner_results(tmp_path):
    """One folder per learner; a broken submission never stops the run."""
    import csv
    import shutil

    folder = tmp_path / "submitted"
    for learner in ("alice", "bob", "dave"):
        (folder / learner).mkdir(parents=True)
    shutil.copy(SOURCE, folder / "alice")
    shutil.copy(RELEASE, folder / "bob")
    (folder / "dave" / "rmsnorm_swiglu.ipynb").write_text("{not a notebook")
    out = tmp_path / "grades"
    proc = grade(folder, "--out", out)
    assert proc.returncode == 0, proc.stderr
    with open(out / "gradebook.csv") as f:
        rows = {row["learner"]: row for row in csv.DictReader(f)}
    assert float(rows["alice"]["total"]) == WEEK3_TOTAL
    assert float(rows["bob"]["total"]) == 0
    assert float(rows["dave"]["total"]) == 0 and "not a readable" in rows["dave"]["problem"]
    for learner in ("alice", "bob", "dave"):
        results = json.loads((out / learner / "results.json").read_text())
        assert "tests" in results and (out / learner / "feedback.txt").exists()


def test_without_the_fork_server_every_job_starts_a_fresh_interpreter(tmp_path):
    """The fallback for platforms without fork grades the same way."""
    import os

    hang = RMSNORM.replace("        x32 = x.float()", "        while True:\n            pass")
    path = tmp_path / "hang.py"
    path.write_text(hang + SWIGLU)
    env = {**os.environ, "AUTOGRADER_FORK": "0", "AUTOGRADER_TIMEOUT": "8"}
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
