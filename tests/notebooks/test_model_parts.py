"""``load_parts(["MiniGPT", "generate"])``: week 10 uses the learner's week-7 model, built on
their parts of weeks 1-6, or the reference where theirs cannot be used."""

import shutil
from pathlib import Path

import pytest
import torch

import solutions
from autograder.parts import MODEL_PARTS, PARTS, load_parts

pytestmark = [pytest.mark.minigpt, pytest.mark.generate]

COURSE = Path(__file__).resolve().parents[2] / "course"
EARLIER = ["week1/attention.ipynb", "week3/rmsnorm_swiglu.ipynb", "week4/positions.ipynb",
           "week5/inference_attention.ipynb", "week6/moe.ipynb"]
WEEK7 = "week7/minigpt.ipynb"


def _course(root: Path, week7: str) -> Path:
    """Correct notebooks of weeks 1-6, week 7 as ``week7`` ("source" or "release")."""
    for rel in EARLIER:
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(COURSE / "source" / rel, root / rel)
    (root / "week7").mkdir()
    shutil.copy(COURSE / week7 / WEEK7, root / WEEK7)
    (root / "week10").mkdir()
    return root / "week10"


def test_the_learners_model_is_built_on_their_parts(tmp_path, capsys):
    parts = load_parts(["MiniGPT", "generate"], allow_reference=False,
                       here=_course(tmp_path, "source"))
    assert list(parts) == [*PARTS, *MODEL_PARTS], "the parts a model needs come first"
    model_class, generate = parts["MiniGPT"], parts["generate"]
    assert model_class is not solutions.MiniGPT and model_class.__module__ == "parts_minigpt"
    cfg = solutions.GPTConfig.preset("tiny", vocab_size=30)
    mine, ref = model_class(cfg).eval(), solutions.MiniGPT(cfg).eval()
    mine.load_state_dict(ref.state_dict())
    # built from the week-3 notebook's RMSNorm, not the reference class
    assert type(mine.norm) is parts["RMSNorm"] and parts["RMSNorm"] is not solutions.RMSNorm
    idx = torch.randint(0, 30, (2, 7))
    torch.testing.assert_close(mine(idx)[0], ref(idx)[0])
    assert torch.equal(generate(ref, idx, 5, temperature=0),
                       solutions.generate(ref, idx, 5, temperature=0))
    table = capsys.readouterr().out
    assert "MiniGPT" in table and "yours: week7/minigpt.ipynb" in table and "reference" not in table


def test_an_unfinished_week7_falls_back_or_stops(tmp_path, capsys):
    here = _course(tmp_path, "release")
    parts = load_parts(["MiniGPT"], here=here)
    assert parts["MiniGPT"] is solutions.MiniGPT and parts["RMSNorm"] is not solutions.RMSNorm
    assert "MiniGPT" in capsys.readouterr().out
    with pytest.raises(RuntimeError, match="^MiniGPT: not implemented yet.*week7/minigpt"):
        load_parts(["MiniGPT"], allow_reference=set(PARTS), here=here)
