"""The Gradescope autograder zip, run end to end in a folder laid out like Gradescope's.

Gradescope unpacks the zip into ``/autograder/source``, runs ``setup.sh`` once when it builds
the image, then for every submission puts the files in ``/autograder/submission`` and runs
``run_autograder``, which must write ``/autograder/results/results.json``. Here the root is a
temporary folder (``AUTOGRADER_ROOT``), ``setup.sh``'s downloads are not run (this project's
environment stands in for the venv it would build, through ``AUTOGRADER_PYTHON``), and the
bundled copy of the package is the one imported (``PYTHONPATH``).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import zipfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from autograder.cli import main
from autograder.registry import EXERCISES
from tests.grader.catalogue_attacks import BASELINES, DISK_SEARCH, STOLEN_FORWARD, rms
from tests.grader.test_attacks import ROOT

pytestmark = [pytest.mark.grader, pytest.mark.rmsnorm, pytest.mark.swiglu]

WEEK3 = ROOT / "course" / "source" / "week3" / "rmsnorm_swiglu.ipynb"


@pytest.fixture(scope="module")
def bundle(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("bundle") / "autograder.zip"
    assert main(["gradescope-bundle", str(out), "--week", "3"]) == 0
    return out


def test_bundle_has_what_gradescope_expects(bundle, tmp_path):
    with zipfile.ZipFile(bundle) as archive:
        names = set(archive.namelist())
        modes = {i.filename: (i.external_attr >> 16) & 0o777 for i in archive.infolist()}
        run = archive.read("run_autograder").decode()
        setup = archive.read("setup.sh").decode()
    # both scripts at the root of the archive, executable; the package's source beside them
    assert {"setup.sh", "run_autograder"} <= names
    assert modes["setup.sh"] & 0o100 and modes["run_autograder"] & 0o100
    for name in ("course/pyproject.toml", "course/autograder/worker.py",
                 "course/autograder/namespaces.py", "course/solutions/normalization.py"):
        assert name in names
    assert not [n for n in names if "__pycache__" in n or n.startswith("course/tests/")]
    assert "--isolation strict --week 3" in run
    assert "download.pytorch.org/whl/cpu" in setup  # the CPU build of torch, not CUDA's
    assert "chmod -R go-rwx" in setup
    for script in (run, setup):
        path = tmp_path / "script.sh"
        path.write_text(script)
        assert subprocess.run(["bash", "-n", str(path)]).returncode == 0


def run_bundle(bundle: Path, root: Path, files: dict[str, str | Path]) -> tuple[int, dict, str]:
    """Lay out ``root`` as Gradescope does, submit ``files``, run ``run_autograder``."""
    with zipfile.ZipFile(bundle) as archive:
        archive.extractall(root / "source")
    shutil.copy(root / "source" / "run_autograder", root / "run_autograder")
    (root / "submission").mkdir()
    (root / "results").mkdir()
    for name, content in files.items():
        target = root / "submission" / name
        if isinstance(content, Path):
            shutil.copy(content, target)
        else:
            target.write_text(content, encoding="utf-8")
    env = {**os.environ, "AUTOGRADER_ROOT": str(root), "AUTOGRADER_PYTHON": sys.executable,
           "PYTHONPATH": str(root / "source" / "course")}
    proc = subprocess.run(["bash", str(root / "run_autograder")], cwd=root, env=env,
                          capture_output=True, text=True, timeout=600)
    results = root / "results" / "results.json"
    data = json.loads(results.read_text()) if results.exists() else {}
    return proc.returncode, data, proc.stdout + proc.stderr


def check_format(data: dict) -> None:
    """The fields of Gradescope's results.json that it reads."""
    assert isinstance(data["score"], float | int) and data["visibility"] == "visible"
    for test in data["tests"]:
        assert {"name", "score", "max_score", "output", "visibility"} <= set(test)


def test_bundle_grades_correct_wrong_and_hostile_submissions(bundle, tmp_path):
    runs = {
        "correct": {"rmsnorm_swiglu.ipynb": WEEK3},
        "wrong": {"answers.py": BASELINES["rmsnorm_wrong"][1] + BASELINES["swiglu_wrong"][1]},
        # searches the whole disk for the answer key and runs it
        "hostile": {"answers.py": rms(STOLEN_FORWARD, pre=DISK_SEARCH, companion=True)},
    }
    with ThreadPoolExecutor(len(runs)) as pool:  # three submissions, as Gradescope would
        futures = {name: pool.submit(run_bundle, bundle, tmp_path / name, files)
                   for name, files in runs.items()}
        done = {name: future.result() for name, future in futures.items()}
    if done["correct"][1].get("extra_data", {}).get("graded") is False:
        # no namespaces here: the strict bundle refuses to grade, and says so
        for code, data, log in done.values():
            assert code == 2 and data["score"] == 0 and "NOT graded" in data["output"], log
            assert "not available" in log
        pytest.skip("strict isolation is not available here: checked the refusal only")

    for code, data, log in done.values():
        assert code == 0, log
        check_format(data)
        assert data["extra_data"]["isolation"] == "strict"
        assert "isolation: strict" in log
    scores = {name: {t["name"].split("(")[-1].rstrip(")"): t["score"] for t in data["tests"]}
              for name, (_, data, _) in done.items()}
    week3 = [e.name for e in EXERCISES if e.week == 3]
    assert scores["correct"] == dict.fromkeys(week3, 10)
    assert done["correct"][1]["score"] == 10 * len(week3)
    assert scores["wrong"]["rmsnorm"] < 10 and scores["wrong"]["swiglu"] < 10
    wrong_feedback = {t["name"]: t["output"] for t in done["wrong"][1]["tests"]}
    assert all("FAILED" in text for text in wrong_feedback.values())  # per-case feedback
    assert scores["hostile"]["rmsnorm"] <= scores["wrong"]["rmsnorm"]
    assert scores["hostile"]["swiglu"] == 10
