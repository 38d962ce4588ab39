"""The speed ladder of benchmarks/train_speed.py (``--ladder``): every switch that works on the
device on, then each one off, with a row that says why where a switch has nothing to measure."""

import sys
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "benchmarks"))

import gpu_proof  # noqa: E402
import train_speed  # noqa: E402


def test_the_ladders_share_one_switch_list():
    assert gpu_proof.SWITCHES is train_speed.SWITCHES
    fields = {s.field for s in train_speed.SWITCHES.values()}
    assert fields <= set(train_speed.TrainConfig.__dataclass_fields__)


def test_cpu_ladder_turns_each_switch_off_in_turn(monkeypatch):
    # the smallest model the trainer steps: the rows' logic is the same at any size
    layers, heads, width, block, batch = 1, 2, 16, 8, 2
    monkeypatch.setitem(train_speed.SHAPES, "tiny", (layers, heads, width, block, batch))
    rows = train_speed.ladder_rows("tiny", torch.device("cpu"), steps=1, warmup=1,
                                   can_compile=False)
    by_name = {r["configuration"]: r for r in rows}
    assert list(by_name) == ["everything on", *(f"without {n}" for n in train_speed.SWITCHES)]
    on = by_name["everything on"]["switches"]
    assert on == {"dtype": "bfloat16", "tf32": False, "fused_adamw": True, "compile": False,
                  "fast": True}  # TF32 is CUDA-only; compile needs a C++ compiler here
    assert "does nothing on a CPU" in by_name["without TF32"]["note"]
    assert "no C++ compiler" in by_name["without torch.compile"]["note"]
    timed = [r for r in rows if r["switches"] is not None]
    assert len(timed) == 4
    for r in timed:  # each configuration differs from everything on in its own switch only
        changed = {k for k in on if r["switches"][k] != on[k]}
        name = r["configuration"].removeprefix("without ")
        assert changed == (set() if r is timed[0] else {train_speed.SWITCHES[name].field})
        assert r["ms_per_step"] > 0
        assert abs(r["tokens_per_s"] * r["ms_per_step"] / 1000 - batch * block) < 1e-6
    assert by_name["everything on"]["vs_on"] == 1.0
