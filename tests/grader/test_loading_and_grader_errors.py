"""Three promises of the grader framework.

1. Each exercise of a notebook is loaded on its own: its answer cell whole, and from the other
   cells only the definitions it uses. A crash while one exercise loads (``os._exit`` in the
   RMSNorm class body) costs that exercise only, never a correct SwiGLU next to it.
2. An abnormal stop of the worker (an exit, a hang, a crash, running out of memory) or a
   tampered result scores the whole exercise zero, with one line that says what happened; an
   ordinary exception costs only the case that raised it, and an ordinary exception while
   loading another cell's code is only a note.
3. A bug in the grader's own check code is an *internal grader error*: labelled as such for the
   learner, counted in the JSON, reported to the instructor; a malformed or forged result from
   the worker is tampering, never a grader error.
"""

from __future__ import annotations

import ast
import dataclasses
import json
from pathlib import Path

import pytest

from autograder.grading import Case, ExerciseResult, Tampered, _judge, grade_submission
from autograder.registry import BY_NAME
from autograder.report import as_gradescope, as_json, feedback, internal_warning, table
from autograder.submission import notebook_submission

pytestmark = pytest.mark.grader

ROOT = Path(__file__).resolve().parents[2]
SOURCE = ROOT / "course" / "source" / "week3" / "rmsnorm_swiglu.ipynb"


def week3_notebook(rmsnorm=None, swiglu=None, extra_cells=()) -> dict:
    """The instructor's week-3 notebook (correct answers), with answer cells replaced."""
    nb = json.loads(SOURCE.read_text())
    for cell in nb["cells"]:
        grade_id = cell["metadata"].get("nbgrader", {}).get("grade_id")
        if grade_id == "rmsnorm" and rmsnorm is not None:
            cell["source"] = rmsnorm("".join(cell["source"]))
        if grade_id == "swiglu" and swiglu is not None:
            cell["source"] = swiglu("".join(cell["source"]))
    at = next(i for i, c in enumerate(nb["cells"])
              if c["metadata"].get("nbgrader", {}).get("grade_id") == "swiglu")
    for source in extra_cells:  # cells the learner added, before the SwiGLU cell
        nb["cells"].insert(at, {"cell_type": "code", "metadata": {}, "outputs": [],
                                "execution_count": None, "source": source})
    return nb


def exit_in_class_body(source: str) -> str:
    head = "class RMSNorm(nn.Module):\n"
    assert head in source
    return source.replace(head, head + "    import os; os._exit(0)\n", 1)


def grade(nb: dict, names=("rmsnorm", "swiglu")) -> dict[str, ExerciseResult]:
    sub = notebook_submission(nb, "learner.ipynb")
    results = grade_submission([sub], [BY_NAME[n] for n in names], seed=3, parallel=2)
    return {r.exercise.name: r for r in results}


def test_os_exit_in_one_class_body_costs_that_exercise_only():
    results = grade(week3_notebook(rmsnorm=exit_in_class_body))
    assert results["swiglu"].score == results["swiglu"].max_score, results["swiglu"].failures
    assert results["rmsnorm"].score == 0
    assert "exited early" in results["rmsnorm"].stopped
    assert all("exited early" in c.message for c in results["rmsnorm"].cases)


def test_a_helper_from_another_cell_comes_without_that_cells_other_code():
    """SwiGLU uses a helper the learner wrote in a cell of their own; that cell also exits
    (on the same line as an import). The helper is loaded, the exit is not."""
    helper = ("import os; os._exit(0)\n\n"
              "def gated(gate, up, x):\n    return F.silu(gate(x)) * up(x)\n")
    uses_helper = lambda src: src.replace(  # noqa: E731
        "F.silu(self.gate_proj(x)) * self.up_proj(x)", "gated(self.gate_proj, self.up_proj, x)")
    nb = week3_notebook(swiglu=uses_helper, extra_cells=[helper])
    assert any("gated(self.gate_proj" in c["source"] for c in nb["cells"])
    results = grade(nb)
    assert results["swiglu"].score == results["swiglu"].max_score, results["swiglu"].failures
    assert results["rmsnorm"].score == results["rmsnorm"].max_score


def test_each_exercise_loads_only_what_it_uses_with_its_line_numbers():
    nb = week3_notebook(rmsnorm=exit_in_class_body, extra_cells=[
        "import math\nprint('plot')\nSCALE = math.sqrt(2)\n\ndef unused():\n    pass\n"])
    sub = notebook_submission(nb, "learner.ipynb")
    chunks = sub.chunks_for("swiglu", {"SwiGLU"})
    code = "\n".join(c["source"] for c in chunks)
    assert "class SwiGLU" in code and "class RMSNorm" not in code and "_exit" not in code
    assert "print('plot')" not in code and "def unused" not in code
    assert "import math" in code  # imports always come
    for chunk in chunks:  # a kept statement stays on its line of the cell
        original = next(c["source"] for c in sub.chunks if c["label"] == chunk["label"])
        for node in ast.parse(chunk["source"]).body:
            assert (chunk["source"].splitlines()[node.lineno - 1].strip()
                    in original.splitlines()[node.lineno - 1])
    own = sub.chunks_for("rmsnorm", {"RMSNorm"})
    assert any("_exit" in c["source"] for c in own)  # its own cell comes whole


# ----------------------------------------------------------------- abnormal stops


def raises_for_4d_input(source: str) -> str:
    """A learner's RMSNorm with a bug for one kind of input: it raises an ordinary error."""
    head = "    def forward(self, x"
    assert head in source
    at = source.index(head)
    body = source.index("\n", at) + 1
    check = "        if x.dim() == 4:\n            raise ValueError('only 3-d inputs, please')\n"
    return source[:body] + check + source[body:]


def test_an_ordinary_exception_in_one_case_costs_that_case_only():
    result = grade(week3_notebook(rmsnorm=raises_for_4d_input), names=("rmsnorm",))["rmsnorm"]
    assert not result.stopped
    assert 0 < result.score < result.max_score
    lost = [c for c in result.failures if "only 3-d inputs" in c.message]
    assert lost and len(lost) == len(result.failures), result.failures
    assert all(c.passed for c in result.cases if c not in lost)


def test_an_ordinary_exception_while_loading_another_cell_is_a_note():
    """A cell the learner added whose import fails: loaded for every exercise (imports always
    come), it is a note, and both exercises are graded in full."""
    results = grade(week3_notebook(extra_cells=["import not_a_module_of_this_course\n"]))
    for result in results.values():
        assert result.score == result.max_score and not result.stopped, result.failures
        assert any("ModuleNotFoundError" in n for n in result.notes), result.notes


def sys_exit_after_the_answer(source: str) -> str:
    return source + "\nimport sys\nsys.exit(0)\n"


def test_an_exit_at_load_scores_the_exercise_zero_and_says_so():
    """A correct RMSNorm cell that ends with ``sys.exit(0)``: zero, with one line naming the
    exit, in the table, the feedback, the JSON and Gradescope's output; SwiGLU is graded."""
    results = grade(week3_notebook(rmsnorm=sys_exit_after_the_answer))
    rmsnorm, swiglu = results["rmsnorm"], results["swiglu"]
    assert swiglu.score == swiglu.max_score and not swiglu.stopped
    assert rmsnorm.score == 0
    assert "exited early with sys.exit(0)" in rmsnorm.stopped
    assert "while loading" in rmsnorm.stopped
    line = f"{rmsnorm.stopped}: the whole exercise scores zero"
    assert "\n" not in line
    assert table([rmsnorm, swiglu]).count(line) == 1
    assert feedback(rmsnorm).splitlines() == [f"FAILED  {line}"]
    data = as_json([rmsnorm, swiglu])["exercises"]
    assert data[0]["stopped"] == line and data[1]["stopped"] is None
    assert all(c["message"] == line for c in data[0]["cases"])
    gradescope = as_gradescope([rmsnorm, swiglu])
    assert f"rmsnorm: {line}" in gradescope["output"].splitlines()
    assert gradescope["tests"][0]["output"] == feedback(rmsnorm)


# ----------------------------------------------------------------- internal grader errors


def buggy_check(result: dict) -> None:
    raise TypeError("'Tensor' object is not callable")  # a grader bug, e.g. a shadowed name


CALL = {"kind": "function", "symbol": "f", "inputs": [0], "args": [], "kwargs": {}}


def test_a_bug_in_the_check_on_a_well_formed_result_is_an_internal_grader_error():
    well_formed = {"ok": True, "output": 1.0, "inputs_after": [0]}
    message, internal = _judge(Case("case", CALL, buggy_check), well_formed)
    assert internal and message.startswith("internal grader error")
    assert "not in your code" in message and "TypeError" in message


@pytest.mark.parametrize("forged", [
    {"ok": True},  # fields missing
    {"ok": True, "output": 1.0, "inputs_after": "not a list"},
    {"ok": True, "output": 1.0, "inputs_after": [0, 0, 0]},  # not one per input
    None,  # no result file
    {"unreadable": True},  # a file torch.load could not read
    {"ok": "yes"},
    {"ok": False, "error": "passed"},
])
def test_a_malformed_or_forged_result_is_tampering_not_a_grader_error(forged):
    with pytest.raises(Tampered):
        _judge(Case("case", CALL, buggy_check), forged)


def test_internal_errors_reach_the_feedback_the_json_and_the_instructor(monkeypatch):
    exercise = BY_NAME["swiglu"]
    build = exercise.build

    def with_a_bug(gen):
        cases = build(gen)
        cases[1].check = buggy_check
        return cases

    monkeypatch.setitem(BY_NAME, "swiglu", dataclasses.replace(exercise, cases=with_a_bug))
    result = grade(week3_notebook(), names=("swiglu",))["swiglu"]
    assert [c.name for c in result.internal_errors] == [result.cases[1].name]
    assert result.score < result.max_score
    assert "GRADER ERROR" in feedback(result) and "internal grader error" in table([result])
    data = as_json([result])
    assert data["internal_errors"][0]["case"] == result.cases[1].name
    assert data["exercises"][0]["internal_errors"] == 1
    assert [c["internal_error"] for c in data["exercises"][0]["cases"]].count(True) == 1
    assert "internal grader error" in as_gradescope([result])["output"]
    warning = internal_warning([result], "carol")
    assert warning and "carol" in warning and "swiglu" in warning
    assert internal_warning(list(grade(week3_notebook(), names=("rmsnorm",)).values())) is None
