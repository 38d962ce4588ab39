"""The operating-system side of grading: isolation levels and attacks on the machine.

A hostile submission may go after the machine instead of the comparisons: search the disk for
the answer key, read ``/etc/shadow`` or a home folder, phone a listener on 127.0.0.1,
fork-bomb, write outside its folder, signal the grader or the fork server, or tamper with a
learner graded at the same time. Under the strict isolation (``autograder/isolation.py``)
each earns nothing or fails harmlessly, and the rest of the class is graded. These tests run
where the machine gives strict isolation (as root, and as an ordinary user through a user
namespace) and say why they skip elsewhere; the first test checks that a machine able to
create namespaces does get strict isolation by default.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import stat
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from autograder import isolation, sandbox
from tests.grader.catalogue_attacks import (
    ATTACKS,
    BASELINES,
    DISK_SEARCH,
    OS_PROBE,
    STOLEN_FORWARD,
    WRONG_FORWARD,
    rms,
)
from tests.grader.test_attacks import (
    REFERENCE,
    ROOT,
    SEED,
    assert_full_marks,
    grade_all,
    named,
    wait_until_gone,
)

pytestmark = [pytest.mark.grader, pytest.mark.rmsnorm]


@pytest.fixture
def strict():
    level = sandbox.active_level()
    if level != "strict":
        pytest.skip(f"needs the strict isolation; this machine gives {level!r}")


@pytest.fixture
def restore_isolation():
    """For tests that switch levels: the default comes back afterwards."""
    yield
    sandbox.configure(os.environ.get("AUTOGRADER_ISOLATION", "auto"))


@pytest.fixture(scope="module")
def wrong_score(tmp_path_factory) -> float:
    """What the wrong RMSNorm every attack builds on earns (same seed as the attacks)."""
    _, code, _ = BASELINES["rmsnorm_wrong"]
    return grade_all(tmp_path_factory.mktemp("wrong"), code, ["rmsnorm"])["rmsnorm"].score


class Listener:
    """A TCP server on 127.0.0.1 that records every connection it accepts."""

    def __init__(self) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.connections = 0
        self.running = True
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        while self.running:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                continue
            self.connections += 1
            conn.close()

    def close(self) -> None:
        self.running = False
        self.thread.join()
        self.sock.close()


def note(result, prefix: str) -> str:
    found = [n for n in result.notes if prefix in n]
    assert found, f"no {prefix} note: {result.notes}"
    return found[0].split(prefix, 1)[1]


def home_entry() -> str:
    """A file or folder in the grader's home folder that is not on the way to Python."""
    home = Path.home()
    python = [Path(p).resolve() for p in (sys.prefix, sys.base_prefix)]
    try:
        entries = sorted(home.iterdir())
    except OSError:
        return "/nonexistent-home-entry"
    for entry in entries:
        if not any(entry == p or entry in p.parents for p in python):
            return str(entry)
    return "/nonexistent-home-entry"


def fill_probe(code: str, tmp: Path, listener: Listener, token: str, outside: Path) -> str:
    """The probe's placeholders: a secret file of ours, the listener, the folders."""
    secret = tmp / "secret.txt"
    secret.write_text("the answer key", encoding="utf-8")
    secret.chmod(0o644)
    for key, value in {"PORT": listener.port, "TOKEN": token, "GRADER_PID": os.getpid(),
                       "OUTSIDE": outside, "REPO": ROOT, "SECRET": secret,
                       "HOME_ENTRY": home_entry()}.items():
        code = code.replace("{{" + key + "}}", str(value))
    return code


def written(token: str, outside: Path) -> list[Path]:
    places = [outside, Path("/tmp"), Path("/"), ROOT, Path(sandbox._SERVER.jobs or "/")]
    return [p / f"pwned-{token}" for p in places if (p / f"pwned-{token}").exists()]


def world_writable_folder() -> Path:
    folder = Path(tempfile.mkdtemp(prefix="autograder-test-"))
    folder.chmod(0o777)
    return folder


# ------------------------------------------------------------------------- the levels


def test_default_level_is_the_strongest_the_machine_allows():
    """Where the kernel lets this user create the namespaces (asked of util-linux's
    ``unshare``, independently of the grader), the default level is strict."""
    if sys.platform != "linux" or not shutil.which("unshare"):
        pytest.skip("needs Linux and util-linux's unshare to know what the machine allows")
    flags = ["--mount", "--net", "--pid", "--ipc", "--uts", "--fork"]
    if os.getuid() != 0:
        flags = ["--user", "--map-root-user", *flags]
    probe = subprocess.run(["unshare", *flags, "true"], capture_output=True, timeout=30)
    if probe.returncode != 0:
        pytest.skip(f"this machine refuses namespaces: {probe.stderr.decode()[-200:]}")
    assert sandbox.active_level() == "strict"


def test_a_job_sees_only_python_and_its_own_folder(strict):
    """What the sandbox looks like from inside a job."""
    code = r'''
import json, os, socket

def look():
    def writable(path):
        try:
            open(path, "w").close()
            return True
        except OSError:
            return False
    try:
        socket.create_connection(("127.0.0.1", 9), timeout=1)
        net = "connected"
    except OSError as exc:
        net = type(exc).__name__
    return json.dumps({
        "cwd": os.getcwd(), "root": sorted(os.listdir("/")), "uid": os.getuid(),
        "under": {d: sorted(os.listdir("/" + d)) for d in ("home", "tmp")
                  if os.path.isdir("/" + d)},
        "pids": sorted(int(p) for p in os.listdir("/proc") if p.isdigit()),
        "write_job": writable("/job/x"), "write_root": writable("/x"),
        "write_usr": writable("/usr/x"), "net": net,
        "jobs": os.path.exists("/jobs/" + os.listdir("/job")[0]),
        "max_procs": __import__("resource").getrlimit(__import__("resource").RLIMIT_NPROC)[0],
    })
'''
    outcome = sandbox.run_job([{"label": "look.py", "source": code}],
                              [{"kind": "function", "symbol": "look", "inputs": []}])
    seen = json.loads(outcome.results[0]["output"])
    assert seen["cwd"] == "/job"
    assert "job" in seen["root"]
    # the host's /home and /tmp stay hidden; one appears only on the way to the Python
    # installation when that lies inside it (a checkout in /tmp, a virtual environment in $HOME)
    shown = [Path(p).parts[1:3] for p in isolation.readonly_paths()]
    for folder, entries in seen["under"].items():
        needed = {rest[1] for rest in shown if rest[0] == folder and len(rest) > 1}
        assert entries == sorted(needed), (folder, entries)
    assert set(seen["under"]) == {d for d in ("home", "tmp") if d in seen["root"]}
    assert seen["uid"] != os.getuid() and seen["uid"] != 0
    assert seen["pids"] == [1], "a job sees processes other than its own"
    assert seen["write_job"] and not seen["write_root"] and not seen["write_usr"]
    assert seen["net"] != "connected" and not seen["jobs"]
    assert seen["max_procs"] == isolation.MAX_PROCS


def test_strict_fails_loudly_where_namespaces_are_refused(tmp_path):
    """A user namespace in which no further user namespace may be made (its
    ``max_user_namespaces`` set to 0) is a machine without strict isolation: ``--isolation
    strict`` stops with exit 2 and a message, the default grades at the best level left."""
    if not shutil.which("unshare"):
        pytest.skip("needs util-linux's unshare")
    limit = "echo 0 > /proc/sys/user/max_user_namespaces && exec \"$@\""
    wrap = ["unshare", "--user", "--map-root-user", "sh", "-c", limit, "sh"]
    if subprocess.run([*wrap, "true"], capture_output=True, timeout=30).returncode != 0:
        pytest.skip("cannot make a user namespace with no user namespaces left here")
    path = tmp_path / "rmsnorm.py"
    path.write_text(REFERENCE["rmsnorm"], encoding="utf-8")
    grade = [sys.executable, "-m", "autograder", "grade", str(path), "--exercise", "rmsnorm"]

    refused = subprocess.run([*wrap, *grade, "--isolation", "strict"], cwd=ROOT,
                             capture_output=True, text=True, timeout=300)
    assert refused.returncode == 2, refused.stdout + refused.stderr
    assert "isolation 'strict' is not available" in refused.stderr
    assert "a job could not be isolated" in refused.stderr

    out, gradescope = tmp_path / "out.json", tmp_path / "results.json"
    fallback = subprocess.run([*wrap, *grade, "--json", str(out), "--gradescope",
                               str(gradescope)], cwd=ROOT, capture_output=True, text=True,
                              timeout=300)
    assert fallback.returncode == 0, fallback.stderr[-2000:]
    assert "isolation: basic" in fallback.stdout
    data = json.loads(out.read_text())
    assert data["isolation"] == "basic" and data["score"] == data["max_score"]
    assert json.loads(gradescope.read_text())["extra_data"] == {"isolation": "basic"}


def test_levels_that_cannot_be_had_are_refused():
    with pytest.raises(isolation.IsolationUnavailable, match="fork server"):
        isolation.candidates("strict", fork_server=False)
    assert isolation.candidates("auto", fork_server=False) == ["basic"]
    assert isolation.candidates("basic", fork_server=True) == ["basic"]
    with pytest.raises(ValueError):
        isolation.candidates("paranoid", fork_server=True)


def test_hidden_paths_cover_an_installed_course(tmp_path, monkeypatch):
    """Installed with ``pip install .``, the course's packages sit in site-packages next to
    torch: the sandbox shows site-packages but hides them and their metadata."""
    site = tmp_path / "lib" / "site-packages"
    for name in ("torch", "numpy", "solutions", "autograder"):
        (site / name).mkdir(parents=True)
    for name in ("llm_architecture_course-0.1.0.dist-info", "torch-2.13.0.dist-info"):
        (site / name).mkdir()
    (site / "__editable__.llm_architecture_course-0.1.0.pth").write_text("")
    monkeypatch.setattr(isolation, "_site_dirs", lambda: [str(site)])
    monkeypatch.setattr(isolation, "PACKAGE_ROOT", site)
    monkeypatch.setattr(isolation, "_course_distribution", lambda: "llm_architecture_course")
    hidden = {Path(p).name for p in isolation.hidden_paths([str(tmp_path / "lib")])}
    assert hidden == {"solutions", "autograder", "llm_architecture_course-0.1.0.dist-info",
                      "__editable__.llm_architecture_course-0.1.0.pth"}
    assert isolation.hidden_paths([str(tmp_path / "elsewhere")]) == []  # not shown: no need


def test_a_checkout_inside_a_shown_folder_is_hidden(tmp_path, restore_isolation, monkeypatch):
    """A course checked out under a folder the sandbox shows (``/usr/src/course``), with its
    virtual environment inside: the checkout is covered, the environment shown again."""
    if sys.platform != "linux":
        pytest.skip("namespaces are Linux's")
    shown = tmp_path / "shown"
    (shown / "course" / "solutions").mkdir(parents=True)
    (shown / "course" / "solutions" / "normalization.py").write_text("ANSWER = 42\n")
    (shown / "course" / "venv").mkdir()
    (shown / "course" / "venv" / "ok.txt").write_text("python lives here\n")
    (shown / "other.txt").write_text("shown\n")
    readonly, _ = isolation.sandbox_mounts()
    mounts = ((*readonly, str(shown), str(shown / "course" / "venv")), (str(shown / "course"),))
    monkeypatch.setattr(isolation, "sandbox_mounts", lambda: mounts)
    try:
        if sandbox.configure("strict") != "strict":
            pytest.skip("strict isolation is not available here")
    except isolation.IsolationUnavailable as exc:
        pytest.skip(f"strict isolation is not available here: {exc}")
    code = f'''
import json, os

def look():
    def read(path):
        try:
            return open(path).read()
        except OSError as exc:
            return type(exc).__name__
    return json.dumps({{
        "shown": sorted(os.listdir("{shown}")), "course": sorted(os.listdir("{shown}/course")),
        "answer": read("{shown}/course/solutions/normalization.py"),
        "venv": read("{shown}/course/venv/ok.txt"), "other": read("{shown}/other.txt"),
    }})
'''
    outcome = sandbox.run_job([{"label": "look.py", "source": code}],
                              [{"kind": "function", "symbol": "look", "inputs": []}])
    seen = json.loads(outcome.results[0]["output"])
    assert seen == {"shown": ["course", "other.txt"], "course": ["venv"],
                    "answer": "FileNotFoundError", "venv": "python lives here\n",
                    "other": "shown\n"}


# ------------------------------------------------------------------- attacks on the machine


def test_probe_finds_every_door_shut(tmp_path, strict, wrong_score, restore_isolation):
    """The probe reads secrets, phones a listener, writes outside its folder and looks for
    the grader's process. Under strict every door is shut; as a control, under basic (the
    grader's own user) the same probe finds them open, so the probe can tell."""
    listener, token, outside = Listener(), uuid.uuid4().hex[:12], world_writable_folder()
    try:
        code = fill_probe(ATTACKS["probe_the_machine"][1], tmp_path, listener, token, outside)
        results = grade_all(tmp_path, code, ["rmsnorm", "swiglu"])
        report = note(results["rmsnorm"], "OSPROBE ")
        assert "open" not in report, report
        assert listener.connections == 0
        assert written(token, outside) == []
        assert results["rmsnorm"].score <= wrong_score
        assert_full_marks(results["swiglu"])

        sandbox.configure("basic")
        opened = note(grade_all(tmp_path, code, ["rmsnorm"])["rmsnorm"], "OSPROBE ")
        for door in ("secret", "net", "write", "grader"):
            assert f"{door}=open" in opened, opened
        assert listener.connections == 1 and written(token, outside)
    finally:
        listener.close()
        for path in written(token, outside):
            path.unlink()
        shutil.rmtree(outside, ignore_errors=True)


def test_disk_search_finds_no_answer_key(tmp_path, strict, wrong_score):
    _, code, _ = ATTACKS["disk_search_for_the_reference"]
    result = grade_all(tmp_path, code, ["rmsnorm"])["rmsnorm"]
    assert result.score <= wrong_score < result.max_score


def test_fork_bomb_costs_its_own_exercise_only(tmp_path, strict, wrong_score):
    """A bomb (every process forks again) hits the job's process limit; the file's other
    exercise and a learner graded at the same time get full marks; nothing is left over."""
    name = f"ag{uuid.uuid4().hex[:10]}"
    _, code, _ = ATTACKS["fork_bomb"]
    victim = tmp_path / "victim"
    victim.mkdir()
    try:
        with ThreadPoolExecutor(2) as pool:
            bomb = pool.submit(grade_all, tmp_path, code.replace("{{TOKEN}}", name),
                               ["rmsnorm", "swiglu"])
            time.sleep(1.0)
            other = pool.submit(grade_all, victim, REFERENCE["rmsnorm"], ["rmsnorm"])
            bombed, graded = bomb.result(timeout=300), other.result(timeout=300)
        stops = [c.message for c in bombed["rmsnorm"].failures if "BOMB stopped" in c.message]
        assert stops and all("BlockingIOError" in m for m in stops), bombed["rmsnorm"].failures
        assert bombed["rmsnorm"].score <= wrong_score
        assert_full_marks(bombed["swiglu"])
        assert_full_marks(graded["rmsnorm"])
        assert not wait_until_gone(name), "forked processes outlived the job"
    finally:
        for pid in named(name):
            os.kill(pid, 9)


def _server_pids() -> list[int]:
    """The fork server as this process sees it: the process started, and under strict the
    sandbox's PID 1 it holds."""
    outer = sandbox.server_pid()
    assert outer is not None
    inner = Path(f"/proc/{outer}/task/{outer}/children").read_text().split()
    return [outer, *map(int, inner[:1])]


def test_grader_and_server_survive_signals(tmp_path, strict, wrong_score, grade):
    servers = _server_pids()
    _, code, _ = ATTACKS["kills_the_grader_and_server"]
    targets = f"{os.getpid()}, {servers[0]}, {servers[-1]}"
    code = code.replace("{{GRADER_PID}}, {{SERVER_PID}}", targets)
    results = grade_all(tmp_path, code, ["rmsnorm", "swiglu"])
    answers = note(results["rmsnorm"], "KILLER ").split()
    assert answers and not {"reachable", "sent"} & set(answers), answers
    assert results["rmsnorm"].score <= wrong_score
    assert_full_marks(results["swiglu"])
    assert _server_pids() == servers, "the fork server was replaced"
    assert_full_marks(grade(REFERENCE["rmsnorm"], "rmsnorm"))


def test_jobs_cannot_reach_each_other(tmp_path, strict, wrong_score):
    """A job that hunts for other jobs' folders (the jobs folder, its neighbours, other
    processes' working folders) finds none while another learner is graded."""
    token = f"victim-{uuid.uuid4().hex}"
    _, code, _ = ATTACKS["tampers_with_other_jobs"]
    victim = tmp_path / "victim"
    victim.mkdir()
    with ThreadPoolExecutor(2) as pool:
        attack = pool.submit(grade_all, tmp_path, code.replace("{{TOKEN}}", token),
                             ["rmsnorm"], 10)
        time.sleep(1.5)  # the attack is hunting by now
        other = pool.submit(grade_all, victim, REFERENCE["rmsnorm"] + f"\n# {token}\n",
                            ["rmsnorm"])
        assert_full_marks(other.result(timeout=300)["rmsnorm"])
        assert attack.result(timeout=300)["rmsnorm"].score <= wrong_score


def test_a_dead_server_costs_the_running_job_only(tmp_path, grade):
    """The fork server killed while a job runs: that job scores zero at once, and the next
    one gets a new server at the same level."""
    level = sandbox.active_level()
    server = _server_pids()[-1]  # the process whose children the jobs are
    hang = rms("        while True:\n            pass")
    with ThreadPoolExecutor(1) as pool:
        running = pool.submit(grade_all, tmp_path, hang, ["rmsnorm"], 25)
        deadline = time.monotonic() + 60
        while (not Path(f"/proc/{server}/task/{server}/children").read_text().split()
               and time.monotonic() < deadline):
            time.sleep(0.05)
        time.sleep(0.5)  # the job is running its code
        os.kill(sandbox.server_pid(), 9)
        start = time.monotonic()
        result = running.result(timeout=60)["rmsnorm"]
    assert time.monotonic() - start < 15
    assert result.score < result.max_score
    assert any("grading server went away" in c.message for c in result.failures)
    assert_full_marks(grade(REFERENCE["rmsnorm"], "rmsnorm"))
    assert sandbox.active_level() == level


# ----------------------------------------------------------------- as an ordinary user


def reachable_python(cmd: list[str], tmp: Path) -> list[str] | None:
    """``cmd`` as root, where nobody may enter the interpreter's folders: when the interpreter
    lives in a folder nobody may not enter (pyenv under ``/root``), a mount namespace of the
    command's own covers that folder with an empty one that shows the interpreter alone.
    None where this cannot be arranged."""
    if not shutil.which("unshare"):
        return None
    prefix = Path(os.path.realpath(sys.base_prefix))
    closed = [p for p in [*reversed(prefix.parents), prefix]
              if not os.stat(p).st_mode & stat.S_IXOTH]
    if not closed:
        return cmd
    stash = tmp / "python"
    stash.mkdir()
    script = ('set -e; mount --bind "$1" "$2"; mount -t tmpfs -o mode=0755 tmpfs "$3"; '
              'mkdir -p "$1"; mount --bind "$2" "$1"; shift 3; exec "$@"')
    return ["unshare", "--mount", "--propagation", "private", "sh", "-c", script, "sh",
            str(prefix), str(stash), str(closed[0]), *cmd]


def as_nobody(cmd: list[str], tmp: Path) -> list[str] | None:
    """``cmd`` run as an unprivileged user: as is when we are not root, else as nobody
    (``setpriv``), with the interpreter made reachable. None where that cannot be arranged."""
    if os.getuid() != 0:
        return cmd
    if not shutil.which("setpriv"):
        return None
    drop = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "--"]
    return reachable_python([*drop, *cmd], tmp)


def hostile_file(folder: Path, listener: Listener, token: str, outside: Path,
                 search: bool = True) -> Path:
    """Searches the disk for the answer key (unless not ``search``), then probes the
    machine; with a correct SwiGLU."""
    if search:
        hostile = rms(STOLEN_FORWARD, pre=DISK_SEARCH, companion=True) + OS_PROBE
    else:
        hostile = rms(WRONG_FORWARD, companion=True) + OS_PROBE
    path = folder / "hostile.py"
    path.write_text(fill_probe(hostile, folder, listener, token, outside), encoding="utf-8")
    path.chmod(0o644)
    return path


def test_user_level_runs_jobs_as_nobody(tmp_path, wrong_score):
    """Root without namespaces (a container that refuses them): jobs run as nobody, who
    cannot read the grader's private files or /etc/shadow, or signal the grader; the network
    and world-writable folders stay open, as documented. (What nobody may read, a checkout
    with the usual modes included, stays readable: the Gradescope bundle locks its copy.)"""
    if sys.platform != "linux" or isolation.run_as() is None:
        pytest.skip("the user level needs a root grader and the user nobody")
    listener, token, outside = Listener(), uuid.uuid4().hex[:12], world_writable_folder()
    private = tmp_path / "private"  # pytest's folders: root's alone
    private.mkdir()
    try:
        path = hostile_file(private, listener, token, outside, search=False)
        out = private / "out.json"
        cmd = reachable_python([sys.executable, "-m", "autograder", "grade", str(path), "--seed",
                                str(SEED), "--json", str(out), "--isolation", "user"], tmp_path)
        if cmd is None:
            pytest.skip("needs util-linux's unshare to make the interpreter reachable")
        proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=600)
        assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
        data = json.loads(out.read_text())
        scores = {e["name"]: e for e in data["exercises"]}
        assert data["isolation"] == "user" and "isolation: user" in proc.stdout
        report = next(n for n in scores["rmsnorm"]["notes"] if "OSPROBE" in n)
        for door in ("shadow", "secret", "grader"):
            assert f"{door}=shut" in report, report
        assert "net=open" in report and "write=open" in report, report
        assert scores["rmsnorm"]["score"] <= wrong_score
        assert scores["swiglu"]["score"] == 10
    finally:
        listener.close()
        for folder in (outside, Path("/tmp")):
            (folder / f"pwned-{token}").unlink(missing_ok=True)
        shutil.rmtree(outside, ignore_errors=True)


def test_an_ordinary_user_grades_under_strict_isolation(tmp_path, wrong_score):
    """The grading command run by an unprivileged user (nobody, when the tests run as root)
    isolates with a user namespace of its own: a hostile file that searches the disk and
    probes the machine earns nothing, the file's correct exercise gets full marks."""
    work = world_writable_folder()
    listener, token = Listener(), uuid.uuid4().hex[:12]
    try:
        path = hostile_file(work, listener, token, work)
        out = work / "out.json"
        cmd = as_nobody([sys.executable, "-m", "autograder", "grade", str(path), "--seed",
                         str(SEED), "--json", str(out)], tmp_path)
        if cmd is None:
            pytest.skip("needs setpriv and unshare (util-linux) to run as nobody")
        env = {**os.environ, "HOME": str(work), "TMPDIR": "/tmp", "MPLCONFIGDIR": str(work)}
        proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True,
                              timeout=600)
        if proc.returncode == 2 and "not available" in proc.stderr:
            pytest.skip(f"no strict isolation for an ordinary user here: {proc.stderr[-300:]}")
        assert proc.returncode == 0, proc.stderr[-3000:]
        data = json.loads(out.read_text())
        scores = {e["name"]: e for e in data["exercises"]}
        if data["isolation"] != "strict":
            pytest.skip(f"an ordinary user gets {data['isolation']!r} isolation here")
        assert scores["rmsnorm"]["score"] <= wrong_score < 10
        assert scores["swiglu"]["score"] == 10
        report = next(n for n in scores["rmsnorm"]["notes"] if "OSPROBE" in n)
        assert "open" not in report.split("OSPROBE", 1)[1], report
        assert listener.connections == 0 and written(token, work) == []
    finally:
        listener.close()
        shutil.rmtree(work, ignore_errors=True)
