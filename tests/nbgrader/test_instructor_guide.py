"""The instructor guide, run as written, for a first class.

The ```bash blocks of two sections of ``site/instructors.md``, "The nbgrader workflow" and "The
grading command", are taken from the page itself (so the guide and this test cannot drift) and
run in order, one command at a time in bash, on a copy of the repository as a fresh clone has
it (its tracked files and those not ignored; this interpreter's environment is linked in as
``.venv``). The commands start with nothing but ``/usr/bin:/bin`` on ``PATH``: the guide's own
``source .venv/bin/activate`` and ``cd course`` carry over to the later commands, as in one
terminal.

Between ``release_assignment`` and ``collect``, eight learners fetch the assignment and submit
it through the exchange with the learners' settings (``course/learner/``, as JupyterLab's
Assignments tab does): a correct one, an untouched notebook, a LayerNorm for RMSNorm, an
``os._exit(0)`` in the RMSNorm class body, a file that is not JSON, a cell that hangs, one who
rigs the kernel's asserts and one who reads the instructor's notebook. The test then checks
the gradebook, the feedback, the export (and its ``problem`` column), the grading command's
gradebook, and that the commands changed no file of the repository.
"""

from __future__ import annotations

import csv
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
GUIDE = ROOT / "site" / "instructors.md"
SECTIONS = ("The nbgrader workflow", "The grading command")
NOTEBOOK = "rmsnorm_swiglu.ipynb"
COURSE_ID = "llm-architecture"

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

# waits rather than spins: a hang is a hang to the time limits (tests/grader/test_attacks.py
# has the spinning ones), and this one lasts the kernel's, autograde's and the command's limits
HANGING_RMSNORM = '''
class RMSNorm(nn.Module):
    def __init__(self, dim, eps=1e-6):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x):
        import time
        while True:
            time.sleep(1)
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


def guide_commands() -> list[str]:
    """The commands of the guide's bash blocks in the two sections, in order, comments off."""
    text = GUIDE.read_text(encoding="utf-8")
    commands = []
    for section in re.split(r"^## ", text, flags=re.M):
        if section.startswith(SECTIONS):
            for block in re.findall(r"^```bash\n(.*?)^```", section, flags=re.S | re.M):
                for line in block.splitlines():
                    line = re.sub(r"\s+#.*$", "", line).strip()
                    if line:
                        commands.append(line)
    return commands


class Terminal:
    """Runs commands as typed in one terminal: ``source`` and ``cd`` lines carry over."""

    def __init__(self, cwd: Path, env: dict[str, str]):
        self.cwd, self.env, self.state = cwd, env, []
        self.ran: list[tuple[str, subprocess.CompletedProcess]] = []

    def run(self, command: str) -> subprocess.CompletedProcess:
        script = " && ".join([*self.state, command])
        proc = subprocess.run(["bash", "--noprofile", "--norc", "-c", script], cwd=self.cwd,
                              env=self.env, capture_output=True, text=True, timeout=900)
        if command.startswith(("source ", "cd ")):
            self.state.append(command)
        self.ran.append((command, proc))
        return proc


def fresh_copy(target: Path) -> dict[str, str]:
    """The repository's files as a fresh clone has them; returns {path: sha256}."""
    listed = subprocess.run(["git", "ls-files", "-z", "--cached", "--others",
                             "--exclude-standard"], cwd=ROOT, capture_output=True, check=True)
    hashes = {}
    for name in listed.stdout.decode().split("\0"):
        source = ROOT / name
        if not name or not source.is_file():
            continue
        (target / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(source, target / name)
        hashes[name] = hashlib.sha256(source.read_bytes()).hexdigest()
    return hashes


def answers(course: Path) -> dict[str, str]:
    nb = json.loads((course / "source" / "week3" / NOTEBOOK).read_text())
    return {c["metadata"]["nbgrader"]["grade_id"]: "".join(c["source"]) for c in nb["cells"]
            if c["metadata"].get("nbgrader", {}).get("solution")}


def kernel_killer(solution: str) -> str:
    head = "class RMSNorm(nn.Module):\n"
    assert head in solution
    return solution.replace(head, head + "    import os\n    os._exit(0)\n", 1)


def learners(course: Path) -> dict[str, dict[str, str] | str | None]:
    """Each learner's answer cells (None: untouched; a str: the whole file)."""
    key = answers(course)
    right = {name: key[name] for name in ("rmsnorm", "swiglu", "best_activation")}
    return {
        "alice": right,
        "bob": {**right, "rmsnorm": WRONG_RMSNORM},
        "carol": {**right, "rmsnorm": kernel_killer(key["rmsnorm"])},
        "dave": "{ this is not a notebook",
        "erin": None,
        "frank": {**right, "rmsnorm": HANGING_RMSNORM},
        "mallory": {**right, "rmsnorm": TAMPERING_RMSNORM},
        "eve": {**right, "rmsnorm": READS_SOURCE_NOTEBOOK},
    }


# What JupyterLab's Assignments tab does for each learner (it calls nbgrader's exchange in the
# server's process): fetch once, then submit each learner's folder, all in one process, since
# every nbgrader command spends seconds importing
EXCHANGE = """
import os, sys
from nbgrader.apps.fetchassignmentapp import FetchAssignmentApp
from nbgrader.apps.submitapp import SubmitApp

course, command, *homes = sys.argv[1:]
for home in homes:  # fetch: the one folder; submit: each learner's (named after the learner)
    os.chdir(home)
    app = FetchAssignmentApp() if command == "fetch" else SubmitApp()
    student = [] if command == "fetch" else ["--student", os.path.basename(home)]
    app.initialize(["week3", "--course", course, *student])
    app.start()
"""


def hand_in(course: Path, homes: Path, env: dict[str, str]) -> None:
    """Every learner fetches week 3 from the exchange, works, and submits it."""
    learner_env = {**env, "JUPYTER_CONFIG_PATH": str(course / "learner"), "HOME": str(homes)}

    def exchange(command: str, *folders: Path) -> None:
        proc = subprocess.run([sys.executable, "-c", EXCHANGE, COURSE_ID, command,
                               *map(str, folders)],
                              env=learner_env, capture_output=True, text=True, timeout=600)
        assert proc.returncode == 0, proc.stderr[-3000:]

    first = homes / "fetched"
    first.mkdir(parents=True)
    exchange("fetch", first)
    fetched = first / "week3" / NOTEBOOK
    assert fetched.exists()

    for name, cells in learners(course).items():
        home = homes / name
        shutil.copytree(first, home)
        notebook = home / "week3" / NOTEBOOK
        if isinstance(cells, str):
            notebook.write_text(cells)
        elif cells is not None:
            nb = json.loads(notebook.read_text())
            for cell in nb["cells"]:
                grade_id = cell["metadata"].get("nbgrader", {}).get("grade_id")
                if grade_id in cells:
                    cell["source"] = cells[grade_id]
            notebook.write_text(json.dumps(nb))
    exchange("submit", *(homes / name for name in learners(course)))


def read_csv(path: Path, key: str) -> dict[str, dict]:
    with open(path, newline="", encoding="utf-8") as f:
        return {row[key]: row for row in csv.DictReader(f)}


def in_a_venv() -> bool:
    return sys.prefix != sys.base_prefix


def first_class(tmp_path: Path) -> tuple[Path, dict[str, str], Terminal, str]:
    """Run the guide's commands in a fresh copy of the repository under ``tmp_path``, the
    learners handing in between ``release_assignment`` and ``collect``; returns the copy, the
    hashes of its files before, the terminal and the log of ``nbgrader autograde``."""
    commands = guide_commands()
    assert commands[:2] == ["source .venv/bin/activate", "cd course"], commands
    collect = next(i for i, c in enumerate(commands) if c.startswith("nbgrader collect"))
    assert any(c.startswith("nbgrader release_assignment") for c in commands[:collect])

    repo = tmp_path / "clone"
    hashes = fresh_copy(repo)
    (repo / ".venv").symlink_to(sys.prefix)
    course = repo / "course"
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path / "instructor"), "LANG": "C.UTF-8",
           # both documented in the guide: shorter limits keep frank's hang short (it burns a
           # core until then: in the kernel, then in the isolated worker of `autograde` and of
           # the grading command); the slowest cell (week 3's quick ablation) takes seconds
           "NBGRADER_CELL_TIMEOUT": "20", "AUTOGRADER_TIMEOUT": "10"}
    (tmp_path / "instructor").mkdir()
    terminal = Terminal(repo, env)

    for i, command in enumerate(commands):
        if i == collect:
            hand_in(course, tmp_path / "learners", {**env, "PATH": f"{Path(sys.prefix) / 'bin'}"
                                                    f"{os.pathsep}{env['PATH']}"})
        proc = terminal.run(command)
        if command.startswith("nbgrader autograde"):
            # the guide: exit status 1 when some learner could not be graded (dave)
            assert proc.returncode == 1, proc.stderr[-3000:]
            assert "student 'dave'" in proc.stderr
            autograde_log = proc.stderr
        else:
            assert proc.returncode == 0, f"{command}:\n{proc.stdout[-2000:]}{proc.stderr[-3000:]}"
    return repo, hashes, terminal, autograde_log


def ahead_of_session(request, ahead) -> None:
    """The first class takes minutes of mostly one core: run it in the background."""
    if in_a_venv():
        folder = request.getfixturevalue("tmp_path_factory").mktemp("first_class")
        ahead.start("first class", first_class, folder)


@pytest.mark.nbgrader
def test_a_first_class_runs_exactly_as_the_instructor_guide_says(ahead, tmp_path):
    if not in_a_venv():
        pytest.skip("needs the course's virtual environment (make test)")
    repo, hashes, terminal, autograde_log = ahead.result("first class", first_class, tmp_path)
    course = repo / "course"
    names = sorted(learners(course))

    # generate: nbgrader's own release folder, and the assignment in the gradebook
    assert (course / "generated" / "week3" / NOTEBOOK).exists()
    from nbgrader.api import Gradebook

    with Gradebook(f"sqlite:///{course / 'gradebook.db'}", COURSE_ID) as gb:
        assert gb.find_assignment("week3").max_score == 30
        assert sorted(s.student.id for s in gb.assignment_submissions("week3")) == names
    # the guide's "warning you can ignore" is the one nbgrader gives
    assert "Attribute 'checksum' for cell test_rmsnorm has changed" in autograde_log

    # the export: scores, and why a learner was not graded
    export = read_csv(course / "grades.csv", "student_id")
    assert sorted(export) == names
    score = {n: float(export[n]["raw_score"]) for n in names}
    shown = "\n".join(f"{n}: {r['raw_score']} {r['problem']}" for n, r in export.items())
    assert {float(row["max_score"]) for row in export.values()} == {30}, shown
    assert score["alice"] == 30 and score["erin"] == 0, shown
    assert 20 <= score["bob"] <= 23, shown  # the rest right; RMSNorm is LayerNorm
    assert score["carol"] == 20, shown  # the kernel died, all graded: the rest is right
    assert "kernel died" in export["carol"]["problem"], shown
    assert score["dave"] == 0, shown
    assert export["dave"]["problem"].startswith("grading failed"), shown
    assert "not a readable notebook" in export["dave"]["problem"], shown
    assert 20 <= score["frank"] <= 21, shown  # the hang costs RMSNorm's forward cases only
    assert score["mallory"] <= score["bob"], shown  # rigging the kernel earns nothing
    assert score["eve"] == 20, shown  # the instructor's notebook is out of the worker's reach
    assert not export["alice"]["problem"] and not export["erin"]["problem"], shown

    # feedback for everyone who could be graded, naming the mistakes
    feedback = {n: course / "feedback" / n / "week3" / NOTEBOOK.replace(".ipynb", ".html")
                for n in names}
    assert [n for n in names if not feedback[n].exists()] == ["dave"]
    assert "that is LayerNorm" in feedback["bob"].read_text()
    assert "exited early" in feedback["carol"].read_text()

    # the grading command's own gradebook: the class's week for everyone
    gradebook = read_csv(course / "grades" / "gradebook.csv", "learner")
    assert sorted(gradebook) == names
    assert list(gradebook["alice"]) == ["learner", "rmsnorm", "swiglu", "best_activation",
                                        "total", "max_total", "problem"]
    assert {float(row["max_total"]) for row in gradebook.values()} == {30}
    assert float(gradebook["alice"]["total"]) == 30
    assert (float(gradebook["carol"]["rmsnorm"]), float(gradebook["carol"]["swiglu"])) == (0, 10)
    assert "not a readable Jupyter notebook" in gradebook["dave"]["problem"]
    one = next(p for c, p in terminal.ran if c.endswith("submitted/carol/week3"))
    assert "20 / 30" in one.stdout and "exited early" in one.stdout

    # nothing the commands did shows in `git status`: tracked files unchanged, the rest ignored
    changed = [n for n, h in hashes.items()
               if not (repo / n).is_file()
               or hashlib.sha256((repo / n).read_bytes()).hexdigest() != h]
    assert not changed, f"the guide's commands changed tracked files: {changed[:10]}"
    new = sorted(str(p.relative_to(repo)) for p in repo.rglob("*")
                 if p.is_file() and ".venv" not in p.relative_to(repo).parts
                 and str(p.relative_to(repo)) not in hashes)
    ignored = subprocess.run(["git", "check-ignore", "--no-index", "--stdin"], cwd=ROOT,
                             input="\n".join(new), capture_output=True, text=True).stdout
    assert sorted(set(new) - set(ignored.split("\n"))) == []
