"""``autograder.parts.load_parts``: the week-7 notebook's use of the learner's earlier parts.

Folders of weeks in ``tmp_path`` hold a correct notebook (the instructor's source version),
an unfinished one (the release version), a wrong one and a missing one.
"""

import json
import shutil
from pathlib import Path

import pytest
import torch

from autograder.parts import PARTS, load_parts
from solutions import RMSNorm, SwiGLU, apply_rope, repeat_kv

pytestmark = pytest.mark.minigpt

COURSE = Path(__file__).resolve().parents[2] / "course"
W3, W4 = "week3/rmsnorm_swiglu.ipynb", "week4/positions.ipynb"


def _place(root: Path, rel: str, kind: str) -> None:
    target = root / rel
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy(COURSE / kind / rel, target)


def _wrong_rmsnorm(root: Path) -> None:
    """The source notebook with RMSNorm turned into LayerNorm-like centring."""
    path = root / W3
    nb = json.loads(path.read_text())
    for cell in nb["cells"]:
        text = "".join(cell["source"])
        if "class RMSNorm" in text:
            cell["source"] = text.replace("x.float()", "(x.float() - x.float().mean(-1, "
                                          "keepdim=True))", 1)
            assert cell["source"] != text
    path.write_text(json.dumps(nb))


@pytest.fixture
def course(tmp_path: Path) -> Path:
    """week3: correct; week4: unfinished (release); week5: missing; week7: here."""
    _place(tmp_path, W3, "source")
    _place(tmp_path, W4, "release")
    (tmp_path / "week7").mkdir()
    return tmp_path / "week7"


def test_correct_parts_are_the_learners_own(course, capsys):
    parts = load_parts(["RMSNorm", "SwiGLU"], allow_reference=False, here=course)
    assert parts["RMSNorm"] is not RMSNorm and parts["SwiGLU"] is not SwiGLU
    assert parts["RMSNorm"].__module__.startswith("parts_")  # defined by the notebook's code
    x = torch.randn(2, 3, 8)
    torch.testing.assert_close(parts["RMSNorm"](8)(x), RMSNorm(8)(x))
    table = capsys.readouterr().out
    assert "RMSNorm" in table and "yours: week3/rmsnorm_swiglu.ipynb" in table


def test_unfinished_and_missing_parts_fall_back_when_allowed(course, capsys):
    parts = load_parts(["apply_rope", "repeat_kv", "RMSNorm"], here=course)
    assert parts["apply_rope"] is apply_rope and parts["repeat_kv"] is repeat_kv
    assert parts["RMSNorm"] is not RMSNorm
    table = capsys.readouterr().out
    assert "reference (not implemented yet)" in table
    assert "reference (week5/inference_attention.ipynb not found)" in table


def test_a_wrong_part_is_named_and_replaced(course, capsys):
    _wrong_rmsnorm(course.parent)
    parts = load_parts(["RMSNorm", "SwiGLU"], here=course)
    assert parts["RMSNorm"] is RMSNorm and parts["SwiGLU"] is not SwiGLU
    assert "reference (your version failed: Mismatch: your output differs" in (
        capsys.readouterr().out)


@pytest.mark.parametrize("allow, needed", [(False, "apply_rope"), ({"repeat_kv"}, "apply_rope"),
                                           ({"apply_rope"}, "repeat_kv")])
def test_no_fallback_where_the_instructor_forbids_it(course, allow, needed):
    with pytest.raises(RuntimeError, match=f"^{needed}: .*fix it in week[45]/"):
        load_parts(["RMSNorm", "apply_rope", "repeat_kv"], allow_reference=allow, here=course)


def test_a_set_allows_exactly_its_parts(course):
    parts = load_parts(["RMSNorm", "apply_rope", "repeat_kv"],
                       allow_reference={"apply_rope", "repeat_kv"}, here=course)
    assert parts["apply_rope"] is apply_rope and parts["RMSNorm"] is not RMSNorm


def test_every_part_of_the_reference_course_is_found(capsys):
    """In the repository's own layout every part comes from the earlier weeks' notebooks."""
    parts = load_parts(here=COURSE / "source" / "week7", allow_reference=False)
    assert set(parts) == set(PARTS)
    assert "reference" not in capsys.readouterr().out


def test_unknown_part_is_an_error(course):
    with pytest.raises(ValueError, match="unknown parts"):
        load_parts(["LayerNorm"], here=course)
