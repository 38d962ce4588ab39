"""DDP: two CPU processes (gloo) under torchrun train exactly like one process on the same
global batch, because every rank draws the same batch and trains on its half."""

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.minigpt

ROOT = Path(__file__).resolve().parents[2]
# a few steps at a learning rate high enough that the weights really move; grad_accum 2
# exercises DDP's no_sync on the first micro-batch
ARGS = ["-m", "solutions.train", "--preset", "tiny", "--device", "cpu", "--max-iters", "6",
        "--batch-size", "8", "--grad-accum", "2", "--block-size", "32", "--lr", "3e-3",
        "--warmup-iters", "2", "--eval-interval", "3", "--eval-iters", "2",
        "--text-chars", "30000", "--no-progress"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _run(command: list[str], out_dir: Path) -> dict:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}  # two processes share two cores
    run = subprocess.run(command + ARGS + ["--out-dir", str(out_dir)], cwd=ROOT, env=env,
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr[-3000:]
    return json.loads((out_dir / "losses.json").read_text())


def test_two_gloo_processes_match_one(tmp_path):
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--nnodes", "1",
                "--nproc-per-node", "2", "--rdzv-backend", "c10d",
                "--rdzv-endpoint", f"127.0.0.1:{_free_port()}"]
    ddp = _run(torchrun, tmp_path / "ddp")
    single = _run([sys.executable], tmp_path / "single")
    assert len(ddp["losses"]) == len(single["losses"]) == 6
    assert ddp["losses"] == pytest.approx(single["losses"], abs=1e-5)
    assert single["losses"][-1] < single["losses"][0] - 0.1  # it did train
    for a, b in zip(ddp["history"], single["history"], strict=True):
        assert a["step"] == b["step"]
        assert (a["train"], a["val"]) == pytest.approx((b["train"], b["val"]), abs=1e-5)
