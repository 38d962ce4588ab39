"""Run learner code in a separate, limited process and bring back its results as data.

Each job gets a private working directory, a wall-clock limit, an address-space limit and a
session of its own (killed whole). Through the fork server (Linux), a process a job started
that leaves its session is killed as soon as its parent is gone: the server is a "child
subreaper", so such orphans come back to it. The worker (``autograder/worker.py``) cannot
import the reference solutions or the graders. What comes back is loaded with
``torch.load(weights_only=True)``: tensors and plain containers only, never objects with
behaviour of their own.

Jobs start from a fork server (a worker process that imported torch once) on Linux, which
makes a job cost milliseconds instead of seconds; ``AUTOGRADER_FORK=0`` starts a fresh
interpreter per job instead.
"""

from __future__ import annotations

import atexit
import json
import os
import queue
import shutil
import signal
import site
import subprocess
import sys
import sysconfig
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch

WORKER = Path(__file__).with_name("worker.py")
DEFAULT_TIMEOUT_S = float(os.environ.get("AUTOGRADER_TIMEOUT", 30))
DEFAULT_MEMORY_MB = int(os.environ.get("AUTOGRADER_MEMORY_MB", 3072))
USE_FORK = os.environ.get("AUTOGRADER_FORK", "1") != "0" and sys.platform == "linux"
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


def _worker_env(home: str) -> dict[str, str]:
    return {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": home,
        "TMPDIR": home,
        "OMP_NUM_THREADS": "1",
        "MKL_NUM_THREADS": "1",
        "PYTHONDONTWRITEBYTECODE": "1",
        "MPLBACKEND": "Agg",
    }


def _command(*args: str) -> list[str]:
    return [sys.executable, "-I", "-S", str(WORKER), *args, *_site_dirs()]


class ForkServer:
    """A worker interpreter with torch imported that forks one child per job."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.proc: subprocess.Popen | None = None
        self.waiting: dict[int, queue.Queue] = {}
        self.next_id = 0

    def _start(self) -> None:
        home = tempfile.mkdtemp(prefix="autograder-server-")
        atexit.register(shutil.rmtree, home, ignore_errors=True)  # the server's own folder
        self.proc = subprocess.Popen(
            _command("--serve"), cwd=home, env=_worker_env(home), stdin=subprocess.PIPE,
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, start_new_session=True,
        )
        threading.Thread(target=self._read, args=(self.proc,), daemon=True).start()

    def _read(self, proc: subprocess.Popen) -> None:
        for line in proc.stdout:
            msg = json.loads(line)
            box = self.waiting.get(msg["id"])
            if box is not None:
                box.put(msg)
        with self.lock:  # the server died: nobody will report on its children
            for box in self.waiting.values():
                box.put({"lost": True})

    def start(self, job: dict) -> tuple[int | None, queue.Queue]:
        box: queue.Queue = queue.Queue()
        with self.lock:
            if self.proc is None or self.proc.poll() is not None:
                self._start()
            job["id"] = self.next_id = self.next_id + 1
            self.waiting[job["id"]] = box
            self.proc.stdin.write((json.dumps(job) + "\n").encode())
            self.proc.stdin.flush()
        msg = box.get(timeout=60)
        return msg.get("pid"), box

    def done(self, job_id: int) -> None:
        with self.lock:
            self.waiting.pop(job_id, None)


_SERVER = ForkServer()


def _gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
        return False
    except ProcessLookupError:
        return True
    except PermissionError:
        return False


def _run_forked(job: dict, timeout_s: float) -> tuple[int | None, bool]:
    """(exit code or None if unknown, timed out?) of a job run through the fork server."""
    pid, box = _SERVER.start(job)
    deadline = time.monotonic() + timeout_s
    returncode, timed_out = None, False
    try:
        if pid is None:
            return None, False
        while True:
            try:
                msg = box.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                timed_out = True
                break
            if "returncode" in msg:
                return msg["returncode"], False
            if msg.get("lost"):  # the server died (maybe killed by this job): watch the pid
                while not _gone(pid) and time.monotonic() < deadline:
                    time.sleep(0.05)
                timed_out = not _gone(pid)
                break
        try:
            os.killpg(pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        try:
            msg = box.get(timeout=10)
            returncode = msg.get("returncode")
        except queue.Empty:
            pass
        return returncode, timed_out
    finally:
        _SERVER.done(job["id"])


def _run_spawned(job: dict, timeout_s: float) -> tuple[int | None, bool]:
    """The same job in a fresh interpreter (no fork server)."""
    workdir = job["workdir"]
    with open(os.path.join(workdir, "stdout"), "wb") as out, \
            open(os.path.join(workdir, "stderr"), "wb") as err:
        env = {**_worker_env(workdir), "AUTOGRADER_MEMORY_MB": str(job["memory_mb"])}
        proc = subprocess.Popen(  # the worker sets its own limits before it imports torch
            _command(workdir), cwd=workdir, env=env, stdin=subprocess.DEVNULL,
            stdout=out, stderr=err, start_new_session=True,
        )
        try:
            proc.wait(timeout=timeout_s)
            timed_out = False
        except subprocess.TimeoutExpired:
            timed_out = True
        finally:
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
            proc.wait()
    return proc.returncode, timed_out


def _tail(path: Path) -> str:
    if not path.exists():
        return ""
    return path.read_bytes()[-MAX_LOG:].decode("utf-8", "replace")


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
        torch.save({"chunks": chunks, "calls": calls, "forbidden": forbidden or []},
                   workdir / "job.pt")
        job = {"workdir": str(workdir), "memory_mb": memory_mb}
        start = time.monotonic()
        run = _run_forked if USE_FORK else _run_spawned
        returncode, timed_out = run(job, timeout_s)
        seconds = time.monotonic() - start

        results = []
        for i in range(len(calls)):
            path = workdir / f"result_{i}.pt"
            results.append(_load(path) if path.exists() else None)
        load_errors_path = workdir / "load_errors.pt"
        load_errors = _load(load_errors_path) if load_errors_path.exists() else []
        if not isinstance(load_errors, list):
            load_errors = []

        stderr = _tail(workdir / "stderr")
        stopped = None
        if timed_out:
            stopped = f"timed out after {timeout_s:.0f} s"
        elif returncode is not None and returncode < 0:
            sig = signal.Signals(-returncode).name
            stopped = f"was killed by {sig}"
            if sig == "SIGKILL":
                stopped += " (most likely it ran out of memory)"
        elif None in results or not load_errors_path.exists():
            stopped = f"exited early with status {returncode} (sys.exit or os._exit?)"
        if stopped and "MemoryError" in stderr:
            stopped += f"; memory limit {memory_mb} MB"
        stopped_at = None
        progress = workdir / "progress"
        if stopped and progress.exists():
            try:
                stopped_at = int(progress.read_text().strip())
            except ValueError:
                stopped_at = None
        return JobOutcome(results=results, load_errors=load_errors, stopped=stopped,
                          stopped_at=stopped_at, stdout=_tail(workdir / "stdout"),
                          stderr=stderr, seconds=seconds)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
