"""The library calls each exercise refuses (``forbidden`` in autograder/registry.py): every
torch path names a real function, the worker refuses each one however it is reached, and the
instructor guide lists every refused name."""

import importlib
import inspect
import re
from pathlib import Path

import pytest

from autograder.registry import EXERCISES
from autograder.sandbox import run_job

ROOT = Path(__file__).resolve().parents[2]
TORCH_PATHS = sorted({p for e in EXERCISES for p in e.forbidden if p.startswith("torch.")})
CALLABLE = [p for p in TORCH_PATHS if not p.startswith("torch.Tensor.")]  # methods: source only


def resolve(path: str):
    parts = path.split(".")
    for i in range(len(parts) - 1, 0, -1):
        try:
            obj = importlib.import_module(".".join(parts[:i]))
        except ImportError:
            continue
        for attr in parts[i:]:
            obj = getattr(obj, attr)
        return obj
    raise ImportError(path)


@pytest.mark.parametrize("path", TORCH_PATHS)
def test_every_torch_path_names_a_real_function(path):
    assert callable(resolve(path)), path


@pytest.mark.grader
def test_the_worker_refuses_every_torch_path_however_it_is_reached():
    probe = "import importlib\n" + inspect.getsource(resolve) + """
result = {}
for path in paths:
    try:
        resolve(path)()
        result[path] = "ran"
    except Exception as exc:
        result[path] = str(exc)
"""
    outcome = run_job([], [{"kind": "script", "source": probe, "inputs": {"paths": CALLABLE}}],
                      forbidden=CALLABLE)
    got = outcome.results[0]["output"]["__dict__"]
    refused = {p for p, message in got.items() if "is not allowed in this exercise" in message}
    assert refused == set(CALLABLE), sorted(set(CALLABLE) - refused)


def test_the_instructor_guide_lists_every_refused_name():
    guide = (ROOT / "site" / "instructors.md").read_text(encoding="utf-8")
    section = guide.split("## Library calls the graders refuse", 1)[1].split("\n## ", 1)[0]
    spans = re.findall(r"`([^`]+)`", section)
    words = {w for span in spans for w in re.split(r"[^\w*?]+", span)}
    names = {p.rsplit(".", 1)[-1] for e in EXERCISES for p in e.forbidden}
    assert not sorted(names - words)
