"""Run learner code in a separate, limited process and bring back its results as data.

Each job gets a private working directory, a wall-clock limit, an address-space limit and a
process group of its own (so a hang or a fork bomb is killed whole). The worker
(``autograder/worker.py``) cannot import the reference solutions or the graders. What comes
back is loaded with ``torch.load(weights_only=True)``: tensors and plain containers only,
never objects with behaviour of their own.
"""

from __future__ import annotations

import os
import resource
import shutil
import signal
import site
import subprocess
import sys
import sysconfig
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch

WORKER = Path(__file__).with_name("worker.py")
DEFAULT_TIMEOUT_S = float(os.environ.get("AUTOGRADER_TIMEOUT", 30))
DEFAULT_MEMORY_MB = int(os.environ.get("AUTOGRADER_MEMORY_MB", 3072))
MAX_LOG = 4000


@dataclass
class JobOutcome:
    """What a worker left behind: one result per call it finished, and why it stopped."""

    results: list[dict | None]
    load_errors: list[dict] = field(default_factory=list)
    stopped: str | None = None  # why the worker ended early (timeout, crash, exit), or None
    stopped_at: int | None = None  # index of the call it was running when it stopped
    stdout: str = ""
    stderr: str = ""
    seconds: float = 0.0


def _site_dirs() -> list[str]:
    """Where torch and the other installed packages live, without this project's own paths."""
    dirs = site.getsitepackages() + [site.getusersitepackages(), sysconfig.get_paths()["purelib"]]
    return list(dict.fromkeys(d for d in dirs if os.path.isdir(d)))


def _limits(memory_mb: int):
    def apply() -> None:
        os.setsid()
        limit = memory_mb * 2**20
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
        resource.setrlimit(resource.RLIMIT_FSIZE, (256 * 2**20, 256 * 2**20))

    return apply


def _tail(path: Path) -> str:
    if not path.exists():
        return ""
    text = path.read_bytes()[-MAX_LOG:].decode("utf-8", "replace")
    return text


def _load(path: Path):
    try:
        return torch.load(path, weights_only=True)
    except Exception as exc:  # a file the learner's code forged or truncated
        return {"ok": False, "error": {"type": "UnreadableResult", "message": str(exc)[:300]}}


def run_job(
    chunks: list[dict],
    calls: list[dict],
    timeout_s: float = DEFAULT_TIMEOUT_S,
    memory_mb: int = DEFAULT_MEMORY_MB,
    forbidden: list[str] | None = None,
) -> JobOutcome:
    """Execute ``chunks`` of learner code in a fresh worker, then make ``calls`` against it.

    ``forbidden``: dotted paths of functions that raise in the worker (``torch.nn.functional.
    scaled_dot_product_attention`` where the exercise is to write attention).
    """
    workdir = Path(tempfile.mkdtemp(prefix="autograder-"))
    try:
        job = {"chunks": chunks, "calls": calls, "forbidden": forbidden or []}
        torch.save(job, workdir / "job.pt")
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "HOME": str(workdir),
            "TMPDIR": str(workdir),
            "OMP_NUM_THREADS": "1",
            "MKL_NUM_THREADS": "1",
            "PYTHONDONTWRITEBYTECODE": "1",
            "MPLBACKEND": "Agg",
        }
        cmd = [sys.executable, "-I", "-S", str(WORKER), str(workdir), *_site_dirs()]
        start = time.monotonic()
        with open(workdir / "stdout", "wb") as out, open(workdir / "stderr", "wb") as err:
            proc = subprocess.Popen(
                cmd, cwd=workdir, env=env, stdin=subprocess.DEVNULL, stdout=out, stderr=err,
                preexec_fn=_limits(memory_mb),
            )
            try:
                proc.wait(timeout=timeout_s)
                timed_out = False
            except subprocess.TimeoutExpired:
                timed_out = True
            finally:
                try:  # the whole group: the worker and anything it started
                    os.killpg(proc.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                proc.wait()
        seconds = time.monotonic() - start

        results = []
        for i in range(len(calls)):
            path = workdir / f"result_{i}.pt"
            results.append(_load(path) if path.exists() else None)
        load_errors_path = workdir / "load_errors.pt"
        load_errors = _load(load_errors_path) if load_errors_path.exists() else []
        if not isinstance(load_errors, list):
            load_errors = []

        stopped = None
        if timed_out:
            stopped = f"timed out after {timeout_s:.0f} s"
        elif proc.returncode < 0:
            sig = signal.Signals(-proc.returncode).name
            stopped = f"was killed by {sig}"
            if sig == "SIGKILL":
                stopped += " (most likely it ran out of memory)"
        elif None in results or not load_errors_path.exists():
            stopped = f"exited early with status {proc.returncode} (sys.exit or os._exit?)"
        if stopped and proc.returncode not in (None,) and "MemoryError" in _tail(
            workdir / "stderr"
        ):
            stopped += f"; memory limit {memory_mb} MB"
        progress = workdir / "progress"
        stopped_at = None
        if stopped and progress.exists():
            try:
                stopped_at = int(progress.read_text().strip())
            except ValueError:
                stopped_at = None
        return JobOutcome(
            results=results,
            load_errors=load_errors,
            stopped=stopped,
            stopped_at=stopped_at,
            stdout=_tail(workdir / "stdout"),
            stderr=_tail(workdir / "stderr"),
            seconds=seconds,
        )
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
