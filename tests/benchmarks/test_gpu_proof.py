"""The GPU proof script (benchmarks/gpu_proof.py) works before it meets a GPU: its dry run
takes every code path on the CPU at tiny sizes and writes the report."""

import json
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "benchmarks"))

import gpu_proof  # noqa: E402

# the notebook section's runner is tested on a small notebook below: the week-7 notebook
# itself is executed by the notebook tests already, and would double this test's time
SECTIONS = ["environment", "gpu tests", "target", "speed", "ladder"]


def test_dry_run_writes_every_section(tmp_path):
    assert gpu_proof.main(["--out", str(tmp_path), "--dry-run", "--sections", *SECTIONS]) == 0
    report = json.loads((tmp_path / "gpu_report.json").read_text())
    assert report["dry_run"] and list(report["sections"]) == SECTIONS
    assert all(s["status"] == "ok" for s in report["sections"].values()), report["sections"]
    markdown = (tmp_path / "gpu_report.md").read_text()
    for name in SECTIONS:
        assert f"## {name} (ok" in markdown

    tests = report["sections"]["gpu tests"]["rows"]  # the gpu-marked tests were collected
    assert any("test_all_cuda_switches" in row[0] for row in tests), tests
    assert (tmp_path / "gpu_tests.xml").exists()

    target = report["sections"]["target"]
    clock = [e["train_time"] for e in target["evals"]]
    assert clock[0] == 0 and clock == sorted(clock) and target["steps"] > 0
    assert target["best_val"] == min(e["val"] for e in target["evals"])
    assert (target["time_to_target"] is None) == (target["best_val"] > gpu_proof.TARGET)

    assert {r["implementation"] for r in report["sections"]["speed"]["rows"]} == {
        "ours GPT-2", "ours Llama"}
    ladder = report["sections"]["ladder"]["ms"]
    assert "everything on" in ladder and "without fast paths" in ladder
    # on a CPU, bf16 autocast and compile are off already: their rows say so, not a timing
    assert "without bf16 autocast" not in ladder


def _notebook(path: Path, cells: list[str]) -> Path:
    nb = {"cells": [{"cell_type": "code", "source": c, "metadata": {}, "outputs": []}
                    for c in cells], "metadata": {}, "nbformat": 4, "nbformat_minor": 5}
    path.write_text(json.dumps(nb))
    return path


@pytest.fixture
def args(tmp_path):
    return gpu_proof.parse_args(["--out", str(tmp_path), "--dry-run"])


def test_notebook_runner_runs_cells_headless(tmp_path, args):
    (tmp_path / "data.txt").write_text("found")
    path = _notebook(tmp_path / "nb.ipynb", [
        "%matplotlib inline\nfrom IPython.display import display\nimport os",
        "handle = display('plot', display_id=True)\nhandle.update('plot')",  # a live plot
        "### BEGIN HIDDEN TESTS\nraise AssertionError('grading')\n### END HIDDEN TESTS\nx = 1",
        "print('CPU: tiny run,', open('data.txt').read())\nprint('20 steps in 1 s')",
    ])
    result = gpu_proof.notebook(args, path)
    assert result["ok"] and result["ran"] == result["cells"] == 4, result
    assert result["branch"] == "CPU"
    assert result["lines"] == ["CPU: tiny run, found", "20 steps in 1 s"]
    assert "CPU: tiny run" in (tmp_path / "week7_output.txt").read_text()


def test_notebook_runner_reports_a_failing_cell(tmp_path, args):
    path = _notebook(tmp_path / "nb.ipynb", ["print('GPU: big run')", "1 / 0", "print('never')"])
    result = gpu_proof.notebook(args, path)
    assert not result["ok"] and result["ran"] == 1 and result["branch"] == "GPU"
    assert "ZeroDivisionError" in result["error"] and "stopped with" in result["markdown"]
