"""The notebooks: built from their text sources, executed, and safe to hand out."""

import json
import os
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

from tests.ahead import selected

ROOT = Path(__file__).resolve().parents[2]
COURSE = ROOT / "course"
TEXT_SOURCES = sorted((COURSE / "notebooks").glob("week*_*.py"))
SOURCE = sorted((COURSE / "source").glob("week*/*.ipynb"))
RELEASE = sorted((COURSE / "release").glob("week*/*.ipynb"))


def test_notebooks_validate_without_the_iri_grammar():
    """tests/no_iri_grammar.py keeps jsonschema's "iri" checker out of the test processes;
    nbformat still rejects a notebook its schema does not allow."""
    assert sys.modules["rfc3987_syntax"] is None
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("x = 1")])
    nbformat.validate(nb)
    nb.cells[0]["execution_count"] = "one"
    with pytest.raises(nbformat.ValidationError, match="execution_count"):
        nbformat.validate(nb)


def test_every_text_notebook_is_built():
    assert TEXT_SOURCES, "no notebooks under course/notebooks"
    assert len(SOURCE) == len(TEXT_SOURCES) == len(RELEASE)


@pytest.mark.notebooks
def test_committed_notebooks_match_their_sources_and_solutions(executed):
    """A notebook and solutions/ cannot drift: the build regenerates both and must agree."""
    proc = executed("test_committed_notebooks_match_their_sources_and_solutions", COURSE)
    assert proc.returncode == 0, proc.stdout + proc.stderr


@pytest.mark.parametrize("path", SOURCE + RELEASE, ids=lambda p: str(p.relative_to(COURSE)))
def test_notebooks_are_stored_without_outputs(path):
    nb = json.loads(path.read_text())
    for cell in nb["cells"]:
        if cell["cell_type"] == "code":
            assert cell["outputs"] == [] and cell["execution_count"] is None
            assert "nbgrader" in cell["metadata"], "every code cell needs an nbgrader role"


@pytest.mark.parametrize("path", RELEASE, ids=lambda p: str(p.relative_to(COURSE)))
def test_release_notebooks_contain_no_solutions(path):
    text = path.read_text()
    for marker in ("BEGIN SOLUTION", "BEGIN HIDDEN TESTS", "autograder.nbgrader_hook"):
        assert marker not in text
    assert "raise NotImplementedError()" in text


def errors_before_first_exercise(path: str) -> list[str]:
    """Execute a notebook's cells before its first graded check in a fresh kernel; return
    the errors."""
    nb = nbformat.read(path, as_version=4)
    first_test = next(i for i, c in enumerate(nb.cells)
                      if c.get("metadata", {}).get("nbgrader", {}).get("grade"))
    nb.cells = nb.cells[:first_test]
    NotebookClient(nb, timeout=120, resources={"metadata": {"path": str(Path(path).parent)}}
                   ).execute()
    return [f"{o.ename}: {o.evalue}" for c in nb.cells for o in c.get("outputs", [])
            if o.output_type == "error"]


def run_until_first_exercise(path: Path) -> list[str]:
    """``errors_before_first_exercise`` in a process of its own, so several run at once."""
    code = ("import json, tests.no_iri_grammar; from tests.notebooks.test_notebooks import "
            f"errors_before_first_exercise as run; print(json.dumps(run({str(path)!r})))")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    if proc.returncode != 0:
        return [proc.stderr[-3000:]]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def nbval(path: Path) -> subprocess.CompletedProcess:
    """COURSE_QUICK=1 shrinks the experiments of weeks 3 and 4 to a few seconds."""
    return subprocess.run(
        [sys.executable, "-m", "pytest", "--nbval", str(path), "-q", "-p", "no:cacheprovider",
         "-p", "tests.no_iri_grammar",
         "--rootdir", str(path.parent), "-o", "addopts=", "-o", "testpaths="],
        capture_output=True, text=True, cwd=ROOT, env={**os.environ, "COURSE_QUICK": "1"},
    )


def build_check(course: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(course / "build.py"), "--check"],
                          capture_output=True, text=True)


# test -> its run, in the order they start: the longest first, so that none starts last
RUNS = {"test_source_notebook_passes_nbval": nbval,
        "test_committed_notebooks_match_their_sources_and_solutions": build_check,
        "test_learner_notebook_runs_up_to_its_first_exercise": run_until_first_exercise}


def ahead_of_session(request, ahead) -> None:
    """Queue every run this session's tests need (see tests/ahead.py), each in processes of its
    own, the largest notebooks first."""
    for test, run in RUNS.items():
        paths = [params.get("path", COURSE)
                 for params in selected(request.session, sys.modules[__name__], test)]
        for path in sorted(paths, key=lambda p: -p.stat().st_size if p.is_file() else 0):
            ahead.start((test, path), run, path)


@pytest.fixture(scope="module")
def executed(ahead):
    """``executed(test, path)``: what a test runs on ``path``, run in the background."""
    return lambda test, path: ahead.result((test, path), RUNS[test], path)


@pytest.mark.notebooks
@pytest.mark.parametrize("path", RELEASE, ids=lambda p: str(p.relative_to(COURSE)))
def test_learner_notebook_runs_up_to_its_first_exercise(executed, path):
    """Everything before the first graded check runs cleanly in a fresh kernel."""
    errors = executed("test_learner_notebook_runs_up_to_its_first_exercise", path)
    assert not errors


@pytest.mark.notebooks
@pytest.mark.parametrize("path", SOURCE, ids=lambda p: str(p.relative_to(COURSE)))
def test_source_notebook_passes_nbval(executed, path):
    """The instructor version runs top to bottom; its hidden tests grade the reference 100 %."""
    proc = executed("test_source_notebook_passes_nbval", path)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
