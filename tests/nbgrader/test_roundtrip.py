"""nbgrader as documented: generate, autograde, feedback, export, on a class of five."""

import csv
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from autograder.registry import exercises_of

ROOT = Path(__file__).resolve().parents[2]
NOTEBOOK = "rmsnorm_swiglu.ipynb"

WRONG_RMSNORM = '''
class RMSNorm(nn.Module):
    def __init__(self, dim, eps=1e-6):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x):
        x = x - x.mean(-1, keepdim=True)  # LayerNorm, not RMSNorm
        return self.weight * x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps)
'''

HANGING_RMSNORM = '''
class RMSNorm(nn.Module):
    def __init__(self, dim, eps=1e-6):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x):
        while True:
            pass
'''

# wrong, and rigs the kernel so the visible asserts cannot fail
TAMPERING_RMSNORM = WRONG_RMSNORM + '''
import builtins
torch.allclose = lambda *args, **kwargs: True
torch.equal = lambda *args, **kwargs: True
class _Equal:
    def __eq__(self, other):
        return True
builtins.set = lambda *args: _Equal()
'''


# copies the instructor's solution from the source notebook next to the submissions
READS_SOURCE_NOTEBOOK = """
import json, pathlib
for _up in range(6):
    _path = pathlib.Path("../" * _up) / "source" / "week3" / "rmsnorm_swiglu.ipynb"
    if _path.exists():
        for _cell in json.loads(_path.read_text())["cells"]:
            if _cell["metadata"].get("nbgrader", {}).get("grade_id") == "rmsnorm":
                exec("".join(_cell["source"]))
        break
"""


def nbgrader(course: Path, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
           "NBGRADER_CELL_TIMEOUT": "10", "AUTOGRADER_TIMEOUT": "10"}
    return subprocess.run([sys.executable, "-m", "nbgrader", *args], cwd=course, env=env,
                          capture_output=True, text=True, timeout=900)


def submit(course: Path, student: str, solution_cells: dict[str, str] | None) -> None:
    """A learner's notebook: the release version with their answers, or the full solution."""
    base = "source" if solution_cells is None else "release"
    nb = json.loads((course / base / "week3" / NOTEBOOK).read_text())
    for cell in nb["cells"]:
        grade_id = cell["metadata"].get("nbgrader", {}).get("grade_id")
        if solution_cells and grade_id in solution_cells:
            cell["source"] = solution_cells[grade_id]
    target = course / "submitted" / student / "week3" / NOTEBOOK
    target.parent.mkdir(parents=True)
    target.write_text(json.dumps(nb))


def solution_source(grade_id: str) -> str:
    nb = json.loads((ROOT / "course" / "source" / "week3" / NOTEBOOK).read_text())
    cell = next(c for c in nb["cells"] if c["metadata"].get("nbgrader", {}).get("grade_id")
                == grade_id)
    return "".join(cell["source"])


@pytest.mark.nbgrader
def test_generate_autograde_feedback_export(tmp_path):
    course = tmp_path / "course"
    course.mkdir()
    shutil.copy(ROOT / "course" / "nbgrader_config.py", course)
    shutil.copytree(ROOT / "course" / "source", course / "source")

    proc = nbgrader(course, "generate_assignment", "week3")
    assert proc.returncode == 0, proc.stderr
    assert (course / "release" / "week3" / NOTEBOOK).exists()

    swiglu = solution_source("swiglu")
    submit(course, "alice", None)
    submit(course, "bob", {"rmsnorm": WRONG_RMSNORM, "swiglu": swiglu})
    submit(course, "carol", {"rmsnorm": HANGING_RMSNORM, "swiglu": swiglu})
    submit(course, "mallory", {"rmsnorm": TAMPERING_RMSNORM, "swiglu": swiglu})
    submit(course, "eve", {"rmsnorm": READS_SOURCE_NOTEBOOK, "swiglu": swiglu})

    proc = nbgrader(course, "autograde", "week3", "--create")
    assert proc.returncode == 0, proc.stderr[-3000:]

    proc = nbgrader(course, "generate_feedback", "week3")
    assert proc.returncode == 0, proc.stderr[-3000:]
    feedback = course / "feedback" / "alice" / "week3" / NOTEBOOK.replace(".ipynb", ".html")
    assert feedback.exists()

    proc = nbgrader(course, "export", "--to", str(tmp_path / "grades.csv"))
    assert proc.returncode == 0, proc.stderr[-3000:]
    with open(tmp_path / "grades.csv") as f:
        scores = {row["student_id"]: float(row["raw_score"]) for row in csv.DictReader(f)}
    assert scores["alice"] == sum(e.points for e in exercises_of(3))
    # SwiGLU right (10); RMSNorm is LayerNorm: only init, zeros and scale invariance pass
    assert 10 <= scores["bob"] <= 13
    # the hang costs RMSNorm's forward cases only; SwiGLU and the other learners are graded
    assert 10 <= scores["carol"] <= 11
    # rigging the kernel's asserts earns nothing beyond the same wrong code's score (without
    # the isolated grader, nbgrader gives mallory full marks for these visible checks)
    assert scores["mallory"] <= scores["bob"]
    # the instructor's notebook is out of the isolated worker's reach (a private folder)
    assert scores["eve"] == 10

    graded = json.loads((course / "autograded" / "bob" / "week3" / NOTEBOOK).read_text())
    texts = ["".join(o.get("text", "")) for c in graded["cells"] for o in c.get("outputs", [])]
    assert any("that is LayerNorm" in t for t in texts), "feedback should name the mistake"
