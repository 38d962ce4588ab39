"""Run learner code in a separate, limited process and bring back its results as data.

Each job gets a private working directory, a wall-clock limit, an address-space limit and a
session of its own (killed whole). The worker (``autograder/worker.py``) cannot import the
reference solutions or the graders. What comes back is loaded with
``torch.load(weights_only=True)``: tensors and plain containers only, never objects with
behaviour of their own, read only from regular files (not links or pipes a job left there).

Jobs start from a fork server (a worker process that imported torch once) on Linux, which
makes a job cost milliseconds instead of seconds; ``AUTOGRADER_FORK=0`` starts a fresh
interpreter per job instead. The fork server runs at an isolation level
(``autograder/isolation.py``): by default the strongest this machine allows, which on Linux is
``strict``, the server and each job in namespaces of their own. ``configure`` picks a level;
``level_used`` says which one ran. Under ``basic`` and ``user`` the server is a "child
subreaper": a process a job started that leaves its session comes back to it and is killed;
under ``strict`` a job is PID 1 of its own PID namespace, so the kernel ends all it started.
"""

from __future__ import annotations

import atexit
import io
import json
import os
import queue
import select
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch

from autograder.isolation import IsolationUnavailable, _site_dirs, candidates, server_config

WORKER = Path(__file__).with_name("worker.py")
DEFAULT_TIMEOUT_S = float(os.environ.get("AUTOGRADER_TIMEOUT", 30))
DEFAULT_MEMORY_MB = int(os.environ.get("AUTOGRADER_MEMORY_MB", 3072))
USE_FORK = os.environ.get("AUTOGRADER_FORK", "1") != "0" and sys.platform == "linux"
MAX_LOG = 4000
MAX_RESULT = 256 * 2**20  # the worker's file-size limit
START_TIMEOUT_S = 180  # the server imports torch before it says it is ready


@dataclass
class JobOutcome:
    """What a worker left behind: one result per call it finished, and why it stopped."""

    results: list[dict | None]
    load_errors: list[dict] = field(default_factory=list)
    # why the worker ended early (timeout, killed, exit), or None; an exit the worker caught
    # itself (``sys.exit``) is in the error of the load or call it stopped, under "stop"
    stopped: str | None = None
    stopped_at: int | None = None  # index of the call it was running when it stopped
    stdout: str = ""
    stderr: str = ""
    seconds: float = 0.0


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
        self.waiting: dict[int, tuple[subprocess.Popen, queue.Queue]] = {}
        self.next_id = 0
        self.requested = os.environ.get("AUTOGRADER_ISOLATION", "auto")
        self.level: str | None = None  # fixed once a server has started
        self.jobs: str | None = None  # the folder of job folders (kept across restarts)

    def configure(self, requested: str) -> str:
        """Start a server at ``requested`` ("auto" = strongest available); return its level."""
        with self.lock:
            self._shutdown()
            self.requested, self.level = requested, None
            self._ensure()
            return self.level

    def jobs_folder(self) -> str:
        with self.lock:
            self._ensure()
            return self.jobs

    def _ensure(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            return
        levels = [self.level] if self.level else candidates(self.requested, USE_FORK)
        errors = []
        for level in levels:
            try:
                self._start(level)
                self.level = level
                return
            except IsolationUnavailable as exc:
                errors.append(f"{level}: {exc}")
        raise IsolationUnavailable("; ".join(errors))

    def _start(self, level: str) -> None:
        if self.jobs is None:
            self.jobs = tempfile.mkdtemp(prefix="autograder-jobs-")
            atexit.register(shutil.rmtree, self.jobs, True)
        # under "user" the jobs (nobody) must pass through to their own folders
        os.chmod(self.jobs, 0o711 if level == "user" else 0o700)
        config = server_config(level, self.jobs)
        proc = subprocess.Popen(
            _command("--serve", json.dumps(config)), cwd=self.jobs, env=_worker_env(self.jobs),
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        ready, _, _ = select.select([proc.stdout], [], [], START_TIMEOUT_S)
        line = proc.stdout.readline() if ready else b""
        try:
            msg = json.loads(line)
        except ValueError:
            msg = {"error": "the server did not start" if ready else "no answer in time"}
        if "ready" not in msg:
            proc.kill()
            proc.wait()
            raise IsolationUnavailable(msg.get("error", "unknown error"))
        self.proc = proc
        threading.Thread(target=self._read, args=(proc,), daemon=True).start()

    def _shutdown(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.stdin.close()  # the server stops its jobs and exits
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        self.proc = None

    def _read(self, proc: subprocess.Popen) -> None:
        for line in proc.stdout:
            msg = json.loads(line)
            _, box = self.waiting.get(msg["id"], (None, None))
            if box is not None:
                box.put(msg)
        with self.lock:  # the server died: nobody will report on its children
            for server, box in self.waiting.values():
                if server is proc:
                    box.put({"lost": True})

    def start(self, job: dict) -> tuple[int | None, queue.Queue]:
        box: queue.Queue = queue.Queue()
        with self.lock:
            self._ensure()
            job["id"] = self.next_id = self.next_id + 1
            self.waiting[job["id"]] = (self.proc, box)
            self.proc.stdin.write((json.dumps(job) + "\n").encode())
            self.proc.stdin.flush()
        msg = box.get(timeout=60)
        return msg.get("pid"), box

    def kill(self, job_id: int) -> None:
        """Ask the server to end a job (under strict, pids mean nothing out here)."""
        with self.lock:
            if self.proc is not None and self.proc.poll() is None:
                try:
                    self.proc.stdin.write((json.dumps({"kill": job_id}) + "\n").encode())
                    self.proc.stdin.flush()
                except OSError:
                    pass

    def done(self, job_id: int) -> None:
        with self.lock:
            self.waiting.pop(job_id, None)


_SERVER = ForkServer()


def configure(requested: str = "auto") -> str:
    """Use isolation ``requested`` from now on; returns the level in force. Raises
    ``IsolationUnavailable`` when it cannot be had (``strict`` on a machine without
    namespaces)."""
    if not USE_FORK:
        candidates(requested, False)  # raises unless "basic" or "auto"
        return "basic"
    return _SERVER.configure(requested)


def level_used() -> str | None:
    """The isolation level jobs run at (None before the first job or ``configure``)."""
    return _SERVER.level if USE_FORK else "basic"


def active_level() -> str:
    """The isolation level jobs run at, starting the server first if need be."""
    if USE_FORK:
        _SERVER.jobs_folder()
    return level_used()


def server_pid() -> int | None:
    """The pid (as this process sees it) of the fork server, or of the process that holds
    its sandbox; None when no server runs."""
    proc = _SERVER.proc
    return proc.pid if proc is not None and proc.poll() is None else None


def _gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
        return False
    except ProcessLookupError:
        return True
    except PermissionError:
        return False


def _run_forked(job: dict, timeout_s: float) -> tuple[int | None, bool, bool]:
    """(exit code or None if unknown, timed out?, server lost?) of a job run through the
    fork server."""
    pid, box = _SERVER.start(job)
    # outside "strict" the server's pids are ours too, and a job can be killed from here
    host_pid = pid if _SERVER.level != "strict" else None
    deadline = time.monotonic() + timeout_s
    returncode, timed_out, lost = None, False, False
    try:
        if pid is None:
            return None, False, True
        while True:
            try:
                msg = box.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                timed_out = True
                break
            if "returncode" in msg:
                return msg["returncode"], False, False
            if msg.get("lost"):  # the server died; under strict its jobs died with it
                lost = True
                while host_pid and not _gone(host_pid) and time.monotonic() < deadline:
                    time.sleep(0.05)
                timed_out = bool(host_pid) and not _gone(host_pid)
                break
        _SERVER.kill(job["id"])
        if host_pid:
            try:
                os.killpg(host_pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
        if not lost:  # the server reports how the job ended
            try:
                returncode = box.get(timeout=10).get("returncode")
            except queue.Empty:
                pass
        return returncode, timed_out, lost
    finally:
        _SERVER.done(job["id"])


def _run_spawned(job: dict, timeout_s: float) -> tuple[int | None, bool, bool]:
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
    return proc.returncode, timed_out, False


def _read_regular(path: Path, limit: int) -> bytes | None:
    """The bytes of a regular file the job left, or None: never follows a link, never
    blocks on a pipe, never reads more than ``limit``."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError:
        return None
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return None
        with os.fdopen(fd, "rb", closefd=False) as f:
            return f.read(limit)
    finally:
        os.close(fd)


def _tail(path: Path) -> str:
    data = _read_regular(path, MAX_RESULT) or b""
    return data[-MAX_LOG:].decode("utf-8", "replace")


def _load(path: Path):
    """A result file as plain data; None if there is no regular file there."""
    data = _read_regular(path, MAX_RESULT)
    if data is None:
        return None
    try:
        return torch.load(io.BytesIO(data), weights_only=True)
    except Exception:  # a file the learner's code forged or truncated: no "ok", malformed
        return {"unreadable": True}


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
    parent = _SERVER.jobs_folder() if USE_FORK else None
    workdir = Path(tempfile.mkdtemp(prefix="job-", dir=parent))
    try:
        torch.save({"chunks": chunks, "calls": calls, "forbidden": forbidden or []},
                   workdir / "job.pt")
        job = {"name": workdir.name, "workdir": str(workdir), "memory_mb": memory_mb}
        start = time.monotonic()
        run = _run_forked if USE_FORK else _run_spawned
        returncode, timed_out, lost = run(job, timeout_s)
        seconds = time.monotonic() - start

        results = [_load(workdir / f"result_{i}.pt") for i in range(len(calls))]
        load_errors = _load(workdir / "load_errors.pt")
        finished_loading = load_errors is not None
        if not isinstance(load_errors, list):
            load_errors = []

        stderr = _tail(workdir / "stderr")
        stopped = None
        if timed_out:
            stopped = f"timed out after {timeout_s:.0f} s"
        elif lost:
            stopped = "was stopped when the grading server went away (killed from outside?)"
        elif returncode is not None and returncode < 0:
            sig = signal.Signals(-returncode).name
            stopped = f"was killed by {sig}"
            if sig == "SIGKILL":
                stopped += f" (most likely it ran out of memory: the limit is {memory_mb} MB)"
        elif None in results or not finished_loading:
            stopped = f"exited early with status {returncode} (os._exit, or a crash?)"
        if stopped and "MemoryError" in stderr and "memory" not in stopped:
            stopped += f" (it ran out of memory: the limit is {memory_mb} MB)"
        stopped_at = None
        if stopped:
            try:
                stopped_at = int((_read_regular(workdir / "progress", 100) or b"").strip())
            except ValueError:
                stopped_at = None
        return JobOutcome(results=results, load_errors=load_errors, stopped=stopped,
                          stopped_at=stopped_at, stdout=_tail(workdir / "stdout"),
                          stderr=stderr, seconds=seconds)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
