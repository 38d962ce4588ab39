"""Two worker features later weeks build on: grader scripts (``script_call``) and given
reference code (``Exercise.given``), both run in the usual isolated worker."""

from __future__ import annotations

import dataclasses
import json

import pytest
import torch

from autograder.compare import Mismatch
from autograder.exercises.common import script_call
from autograder.grading import Case, Exercise, given_code, given_note, grade_exercise
from autograder.sandbox import USE_FORK, run_job
from autograder.submission import read_submission

pytestmark = pytest.mark.grader

LEARNER = '''
import torch

def double(x):
    return 2 * x

def broken(x):
    y = x + 1
    raise ValueError("learner bug")
'''

SCRIPT = '''
out = double(x)
x.add_(100)  # the script's copy of the input: the grader's tensor is untouched
result = {"out": out, "n": n, "pair": (1, "a", None), "flag": out.sum().item() > 0,
          "tensors": [out, out + 1]}
'''


def run(source: str, chunks=None, **inputs):
    chunks = chunks if chunks is not None else [{"label": "learner.py", "source": LEARNER}]
    outcome = run_job(chunks, [script_call(source, **inputs)])
    return outcome.results[0]


def test_script_sees_the_submission_and_its_inputs_and_returns_plain_values():
    x = torch.arange(4.0)
    result = run(SCRIPT, x=x, n=3)
    assert result["ok"], result
    out = result["output"]["__dict__"]
    assert torch.equal(out["out"], 2 * x) and out["n"] == 3 and out["flag"] is True
    assert out["pair"] == {"__sequence__": "tuple", "items": [1, "a", None]}
    assert torch.equal(x, torch.arange(4.0))


def test_script_runs_in_a_copy_of_the_namespace():
    """One script's variables (or a redefinition) never leak into the next call."""
    calls = [script_call("double = lambda x: x\nresult = {'a': double(1)}"),
             script_call("result = {'a': double(1), 'leaked': 'out' in globals()}")]
    outcome = run_job([{"label": "learner.py", "source": LEARNER}], calls)
    assert outcome.results[0]["output"]["__dict__"]["a"] == 1
    assert outcome.results[1]["output"]["__dict__"] == {"a": 2, "leaked": False}


@pytest.mark.parametrize("source, error, at", [
    ("result = {'y': broken(x)}", "ValueError", "learner.py, line 9, in broken"),
    ("result = {'y': missing_name(x)}", "NameError", None),
    ("y = double(x)", "TypeError", None),  # no `result`
])
def test_script_errors_are_the_usual_error_result(source, error, at):
    result = run(source, x=torch.ones(2))
    assert result["ok"] is False and result["error"]["type"] == error
    assert result["error"].get("at") == at


def exercise(build, **kwargs) -> Exercise:
    return Exercise(week=99, name="demo", title="demo", reference="demo:double", cases=build,
                    **kwargs)


def test_script_result_is_judged_in_the_grader_with_the_learners_location(tmp_path):
    def check(result):
        if not torch.equal(result["output"]["y"], torch.full((2,), 2.0)):
            raise Mismatch("wrong double")

    def build(gen):
        x = torch.ones(2)
        return [Case("double", script_call("result = {'y': double(x)}", x=x), check),
                Case("broken", script_call("result = {'y': broken(x)}", x=x), check)]

    path = tmp_path / "learner.py"
    path.write_text(LEARNER)
    result = grade_exercise(exercise(build), read_submission(path), seed=0)
    assert [c.passed for c in result.cases] == [True, False]
    assert "ValueError (at learner.py, line 9, in broken): learner bug" in result.cases[1].message


def test_given_code_holds_imports_symbols_and_the_constants_they_need():
    code = given_code("solutions.model:GPTConfig,PRESETS,make_norm")
    assert "@dataclass\nclass GPTConfig" in code and "def make_norm" in code
    assert "_GPT2 = dict(" in code and "PRESETS: dict[str, dict] =" in code
    assert "import torch" in code and "from solutions" not in code
    assert "class MiniGPT" not in code
    namespace: dict = {}
    exec(given_code("solutions.positions:ROPE_THETA") + given_code(
        "solutions.normalization:RMSNorm") + code, namespace)
    assert namespace["GPTConfig"].preset("tiny").dim == 64
    with pytest.raises(ValueError, match="no top-level Nope"):
        given_code("solutions.model:Nope")


GIVEN = ("solutions.normalization:RMSNorm",)
USES_RMSNORM = '''
import torch

def double(x):
    return RMSNorm(x.shape[-1])(x)
'''


def test_given_code_runs_first_and_the_submission_overrides_it(tmp_path):
    x = torch.randn(2, 8, generator=torch.Generator().manual_seed(0))
    expected = x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + 1e-6)

    def check(result):
        if not torch.allclose(result["output"]["y"], expected, atol=1e-6):
            raise Mismatch("not the reference RMSNorm")

    def build(gen):
        return [Case("norm", script_call("result = {'y': double(x)}", x=x), check)]

    path = tmp_path / "learner.py"
    path.write_text(USES_RMSNORM)
    ex = exercise(build, given=GIVEN)
    result = grade_exercise(ex, read_submission(path), seed=0)
    assert result.score == result.max_score, result.cases
    assert given_note(ex) in result.notes and "RMSNorm" in given_note(ex)

    path.write_text(USES_RMSNORM + "\nclass RMSNorm(torch.nn.Identity):\n"
                    "    def __init__(self, dim): super().__init__()\n")
    result = grade_exercise(ex, read_submission(path), seed=0)
    assert result.score == 0  # the learner's own (wrong) RMSNorm was used

    # without `given`, the name is simply missing in the worker
    path.write_text(USES_RMSNORM)
    result = grade_exercise(dataclasses.replace(ex, given=()),
                            read_submission(tmp_path / "learner.py"), seed=0)
    assert result.score == 0 and "NameError" in result.cases[0].message


def test_locked_cells_keep_decorators_and_drop_course_imports(tmp_path):
    """From a notebook's locked cells the worker gets ``@dataclass`` classes whole, and not
    the imports of the course's own packages (it cannot import them; ``given`` has them)."""
    from autograder.submission import read_notebook

    locked = {"nbgrader": {"grade": False, "locked": True, "solution": False}}
    cell = {"cell_type": "code", "metadata": locked, "source": (
        "from dataclasses import dataclass\nfrom solutions.model import PRESETS\n"
        "import autograder.parts\n\n@dataclass\nclass Config:\n    dim: int = 4\n\n"
        "print(Config(dim=8))\n")}
    path = tmp_path / "nb.ipynb"
    path.write_text(json.dumps({"cells": [cell], "metadata": {}}))
    sub = read_notebook(path)
    source = sub.chunks[0]["source"]
    assert "@dataclass\nclass Config" in source and "from dataclasses import dataclass" in source
    assert "solutions" not in source and "autograder" not in source and "print" not in source
    assert sub.defined == {"dataclass", "Config"}
    namespace: dict = {}
    exec(source, namespace)
    assert namespace["Config"](dim=8).dim == 8


def test_locked_cells_keep_literal_constants_a_definition_may_name(tmp_path):
    """``ROPE_THETA = 10000.0`` in a locked cell reaches the worker (an answer's default may
    name it); other assignments, which may run anything, and dunder names do not."""
    from autograder.submission import read_notebook

    locked = {"nbgrader": {"grade": False, "locked": True, "solution": False}}
    cell = {"cell_type": "code", "metadata": locked, "source": (
        "ROPE_THETA = 10000.0  # the base\nSIZES = (1, 2)\nx = torch.randn(3)\n"
        "__builtins__ = {}\nA, B = 1, 2\n\ndef rope(theta=ROPE_THETA):\n    return theta\n")}
    path = tmp_path / "nb.ipynb"
    path.write_text(json.dumps({"cells": [cell], "metadata": {}}))
    sub = read_notebook(path)
    assert sub.defined == {"ROPE_THETA", "SIZES", "rope"}
    namespace: dict = {}
    exec(sub.chunks[0]["source"], namespace)
    assert namespace["rope"]() == 10000.0 and namespace["SIZES"] == (1, 2)


@pytest.mark.skipif(not USE_FORK, reason="jobs start from the fork server only on Linux")
def test_jobs_start_with_what_torch_imports_on_first_use():
    """The fork server does once what each job paid for (worker._warm_up): a backward with a
    given gradient imports sympy (about 0.3 s of every job that grades gradients)."""
    script = ("import sys\nresult = {'warm': 'torch.fx.experimental.symbolic_shapes' in "
              "sys.modules}")
    result = run(script)
    assert result["ok"], result
    assert result["output"]["__dict__"]["warm"] is True
