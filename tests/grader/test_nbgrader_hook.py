"""``autograder.nbgrader_hook``: the hidden part of every graded test cell."""

import json
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


def fake_grader(monkeypatch, failing=()) -> list[list[str]]:
    """Replace the grading process with one that writes a result for every exercise asked for
    (all of ``EXERCISES`` without ``--exercise``); returns the command lines it was given."""
    runs = []

    def run(cmd, **kwargs):
        runs.append(cmd)
        names = [cmd[i + 1] for i, a in enumerate(cmd) if a == "--exercise"] or EXERCISES
        exercises = [{"name": n, "score": 0.0 if n in failing else 10.0, "max_score": 10.0,
                      "cases": [{"name": f"{n} case", "passed": n not in failing,
                                 "message": "wrong sign" if n in failing else ""}]}
                     for n in names]
        Path(cmd[cmd.index("--json") + 1]).write_text(json.dumps({"exercises": exercises}))
        return subprocess.CompletedProcess(cmd, 0, "", "")

    monkeypatch.setattr(nbgrader_hook.subprocess, "run", run)
    monkeypatch.setattr(nbgrader_hook, "_graded", {})
    return runs


EXERCISES = ["rmsnorm", "swiglu", "best_activation"]


def test_one_grading_process_per_saved_notebook(tmp_path, monkeypatch, capsys):
    notebook = tmp_path / "week3.ipynb"
    notebook.write_text('{"cells": []}')
    runs = fake_grader(monkeypatch)
    for exercise in EXERCISES:
        nbgrader_hook.check(exercise, str(notebook))
    assert len(runs) == 1 and "--exercise" not in runs[0]  # the first check grades them all
    out = capsys.readouterr().out
    assert all(f"{e}: 10 / 10\nok  {e} case" in out for e in EXERCISES)

    notebook.write_text('{"cells": [], "edited": true}')  # saved again after an edit
    nbgrader_hook.check("swiglu", str(notebook))
    assert len(runs) == 2 and "--exercise" not in runs[1]
    nbgrader_hook.check("rmsnorm", str(notebook))
    assert len(runs) == 2


def test_a_failing_exercise_still_fails_its_cell_from_memory(tmp_path, monkeypatch, capsys):
    notebook = tmp_path / "week3.ipynb"
    notebook.write_text('{"cells": []}')
    runs = fake_grader(monkeypatch, failing={"swiglu"})
    nbgrader_hook.check("rmsnorm", str(notebook))
    for _ in range(2):  # a cell run again fails again, with its cases
        with pytest.raises(AssertionError, match="swiglu: some hidden tests failed"):
            nbgrader_hook.check("swiglu", str(notebook))
        assert "swiglu: 0 / 10\nFAILED  swiglu case: wrong sign" in capsys.readouterr().out
    assert len(runs) == 1


def test_an_exercise_the_whole_run_did_not_grade_is_graded_alone(tmp_path, monkeypatch):
    notebook = tmp_path / "week3.ipynb"
    notebook.write_text('{"cells": []}')
    runs = fake_grader(monkeypatch)
    nbgrader_hook.check("apply_rope", str(notebook))  # another week's exercise
    nbgrader_hook.check("rmsnorm", str(notebook))
    nbgrader_hook.check("apply_rope", str(notebook))
    assert [r[r.index("grade") + 2:-2] for r in runs] == [[], ["--exercise", "apply_rope"]]


def test_a_grader_that_cannot_run_is_an_error_not_a_failed_test(tmp_path, monkeypatch):
    monkeypatch.setattr(nbgrader_hook, "_graded", {})
    monkeypatch.setattr(nbgrader_hook.subprocess, "run", lambda cmd, **kw: subprocess
                        .CompletedProcess(cmd, 2, "", "error: no torch here"))
    notebook = tmp_path / "week3.ipynb"
    notebook.write_text('{"cells": []}')
    with pytest.raises(RuntimeError, match="could not run:\nerror: no torch here"):
        nbgrader_hook.check("rmsnorm", str(notebook))
    with pytest.raises(RuntimeError, match="could not run: cannot read"):
        nbgrader_hook.check("rmsnorm", str(tmp_path / "missing.ipynb"))


def test_under_nbgrader_autograde_the_cell_only_says_who_grades_it(monkeypatch, capsys):
    monkeypatch.setenv("NBGRADER_EXECUTION", "autograde")
    runs = fake_grader(monkeypatch)
    nbgrader_hook.check("rmsnorm", "does-not-matter.ipynb")
    assert runs == [] and "graded by the isolated autograder" in capsys.readouterr().out


def test_grading_the_whole_notebook_gives_each_exercise_what_grading_it_alone_gives(tmp_path):
    """What lets the first check stand for all: the same seed, the same cases and messages."""
    notebook = ROOT / "course" / "source" / "week3" / "rmsnorm_swiglu.ipynb"
    nb = json.loads(notebook.read_text())
    for cell in nb["cells"]:  # a wrong RMSNorm, so that messages are compared too
        if cell["metadata"].get("nbgrader", {}).get("grade_id") == "rmsnorm":
            cell["source"] = "".join(cell["source"]).replace("+ self.eps", "- self.eps")
    path = tmp_path / "week3" / notebook.name
    path.parent.mkdir()
    path.write_text(json.dumps(nb))
    assert "- self.eps" in path.read_text()

    def grade(*args):
        out = tmp_path / "r.json"
        proc = subprocess.run([sys.executable, "-m", "autograder", "grade", path, "--seed", "5",
                               "--json", out, *args], capture_output=True, text=True,
                              timeout=300)
        assert proc.returncode == 0, proc.stderr
        return {e["name"]: {**e, "seconds": None} for e in json.loads(out.read_text())
                ["exercises"]}

    whole = grade()
    assert whole["rmsnorm"]["score"] < whole["rmsnorm"]["max_score"]
    assert grade("--exercise", "rmsnorm")["rmsnorm"] == whole["rmsnorm"]
