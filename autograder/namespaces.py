"""Linux namespaces for the worker, through the kernel's own calls (``unshare``, ``mount``,
``pivot_root``, ``capset``) made with ctypes. Standard library only: the worker loads this file
before it imports torch, and before any learner code exists.

Two steps (see ``autograder/isolation.py`` for the levels and the threat model):

- ``enter_sandbox(config)``: the fork server moves into new mount, network, PID, IPC and UTS
  namespaces (and a user namespace when it is not root), becomes PID 1 there, and swaps its
  root for a read-only tmpfs that shows only what ``config`` lists: the Python installation
  and its packages (read-only, the course's own code hidden), a few device nodes, a fresh
  ``/proc`` and ``/jobs``, the host folder that holds the job folders.
- ``enter_job(...)``: in each forked job, a mount namespace of its own in which ``/job`` is that
  job's folder and ``/jobs`` is gone, a PID namespace of its own (the learner's code is its
  PID 1, so nothing it starts outlives it and it sees no other process), then an unprivileged
  user: ``nobody`` when the grader is root, else a uid mapped in a user namespace of its own,
  with no capabilities, ``no_new_privs`` and a process-count limit.
"""

from __future__ import annotations

import ctypes
import os
import platform
import resource
import signal

CLONE_NEWNS = 0x00020000
CLONE_NEWUTS = 0x04000000
CLONE_NEWIPC = 0x08000000
CLONE_NEWUSER = 0x10000000
CLONE_NEWPID = 0x20000000
CLONE_NEWNET = 0x40000000

MS_RDONLY, MS_NOSUID, MS_NODEV, MS_NOEXEC = 1, 2, 4, 8
MS_REMOUNT, MS_NOATIME, MS_NODIRATIME, MS_BIND, MS_REC = 32, 1024, 2048, 4096, 16384
MS_PRIVATE, MS_RELATIME, MS_STRICTATIME = 1 << 18, 1 << 21, 1 << 24
MNT_DETACH = 2

PR_SET_PDEATHSIG, PR_SET_DUMPABLE, PR_SET_NO_NEW_PRIVS = 1, 4, 38
SYSCALLS = {"x86_64": {"pivot_root": 155, "capset": 126},
            "aarch64": {"pivot_root": 217, "capset": 91}}

JOBS = "/jobs"  # inside the sandbox: the host folder of job folders (the server only)
JOB = "/job"  # inside a job: its own folder, the only writable place
INSIDE_UID = 1000  # a job's uid in its own user namespace when the grader is not root
DEVICES = ("null", "zero", "full", "random", "urandom")

_libc = ctypes.CDLL(None, use_errno=True)


def _check(result: int, what: str) -> None:
    if result != 0:
        errno = ctypes.get_errno()
        raise OSError(errno, f"{what}: {os.strerror(errno)}")


def unshare(flags: int) -> None:
    _check(_libc.unshare(ctypes.c_int(flags)), "unshare")


def mount(source: str | None, target: str, fstype: str | None, flags: int,
          data: str | None = None) -> None:
    enc = lambda s: None if s is None else s.encode()
    _check(_libc.mount(enc(source), enc(target), enc(fstype), ctypes.c_ulong(flags),
                       enc(data)), f"mount {source or fstype} on {target}")


def umount(target: str) -> None:
    _check(_libc.umount2(target.encode(), MNT_DETACH), f"umount {target}")


def _syscall(name: str, *args) -> int:
    number = SYSCALLS.get(platform.machine(), {}).get(name)
    if number is None:
        raise OSError(f"{name}: unknown system call number on {platform.machine()}")
    return _libc.syscall(number, *args)


def prctl(option: int, value: int) -> None:
    _check(_libc.prctl(option, ctypes.c_ulong(value), 0, 0, 0), "prctl")


def drop_capabilities() -> None:
    """Empty the effective, permitted and inheritable sets (version 3 headers: 2 words)."""
    header = (ctypes.c_uint32 * 2)(0x20080522, 0)
    data = (ctypes.c_uint32 * 6)()
    _check(_syscall("capset", header, data), "capset")


def _write(path: str, text: str) -> None:
    with open(path, "w") as f:
        f.write(text)


def _map_self(inside: int, outside_uid: int, outside_gid: int) -> None:
    """Map our own uid and gid (as the parent namespace sees them) to ``inside``: the one
    mapping an unprivileged process may write for itself."""
    _write("/proc/self/setgroups", "deny")
    _write("/proc/self/uid_map", f"{inside} {outside_uid} 1")
    _write("/proc/self/gid_map", f"{inside} {outside_gid} 1")


def _mount_flags(path: str) -> int:
    """The flags a read-only remount of ``path`` must keep: in a user namespace the kernel
    refuses to clear nosuid, nodev, noexec or the atime mode of a mount it inherited."""
    f = os.statvfs(path).f_flag
    flags = MS_NOSUID | MS_NODEV | (MS_NOEXEC if f & os.ST_NOEXEC else 0)
    if f & os.ST_NOATIME:
        flags |= MS_NOATIME
    elif f & os.ST_RELATIME:
        flags |= MS_RELATIME
    else:
        flags |= MS_STRICTATIME
    return flags | (MS_NODIRATIME if f & os.ST_NODIRATIME else 0)


def _make_mountpoint(target: str, like: str) -> None:
    if os.path.isdir(like):
        os.makedirs(target, exist_ok=True)
    else:
        os.makedirs(os.path.dirname(target), exist_ok=True)
        if not os.path.exists(target):
            open(target, "w").close()


def _mounts_under(path: str) -> list[str]:
    """Mount points at or below ``path`` (from /proc/self/mountinfo), parents first."""
    with open("/proc/self/mountinfo") as f:
        points = [line.split()[4].replace("\\040", " ") for line in f]
    return [p for p in points if p == path or p.startswith(path.rstrip("/") + "/")]


def bind_readonly(source: str, target: str) -> None:
    _make_mountpoint(target, source)
    mount(source, target, None, MS_BIND | MS_REC)
    for point in _mounts_under(target):  # submounts are bound too; make each read-only
        mount(None, point, None, MS_BIND | MS_REMOUNT | MS_RDONLY | _mount_flags(point))


EMPTY = MS_NOSUID | MS_NODEV | MS_NOEXEC  # flags of the tmpfs that covers a hidden folder


def _hide(root: str, path: str) -> bool:
    """Cover ``path`` (inside ``root``) with something empty; True if it was a folder (its
    tmpfs stays writable until ``_build_root`` has placed what goes inside)."""
    target = root + path
    if not os.path.lexists(target):
        return False
    if os.path.isdir(target) and not os.path.islink(target):
        mount("tmpfs", target, "tmpfs", EMPTY, "size=64k,mode=0755")
        return True
    bind_readonly("/dev/null", target)
    return False


def _place(root: str, path: str) -> None:
    """Show host ``path`` at the same place under ``root``: a symlink is copied as a symlink
    (``/lib -> usr/lib``), anything else is bound read-only."""
    target = root + path
    if os.path.islink(path):
        os.makedirs(os.path.dirname(target), exist_ok=True)
        if not os.path.lexists(target):
            os.symlink(os.readlink(path), target)
    elif os.path.exists(path):
        bind_readonly(path, target)


def _inside(path: str, folders: list[str]) -> bool:
    return any(path == f or path.startswith(f.rstrip("/") + "/") for f in folders)


def _build_root(root: str, config: dict) -> None:
    mount("tmpfs", root, "tmpfs", MS_NOSUID | MS_NODEV, "mode=0755,size=16m")
    hidden = config.get("hide", [])
    later = [p for p in config["readonly"] if _inside(p, hidden)]
    for path in config["readonly"]:
        if path not in later:
            _place(root, path)
    covered = [path for path in hidden if _hide(root, path)]
    for path in later:  # a Python installation inside a hidden folder (a .venv in the course)
        _place(root, path)
    for path in covered:
        mount(None, root + path, None, MS_REMOUNT | MS_RDONLY | EMPTY)

    os.makedirs(root + "/dev", exist_ok=True)
    mount("tmpfs", root + "/dev", "tmpfs", MS_NOSUID | MS_NOEXEC, "mode=0755,size=64k")
    for name in DEVICES:
        if os.path.exists(f"/dev/{name}"):
            _make_mountpoint(f"{root}/dev/{name}", f"/dev/{name}")
            mount(f"/dev/{name}", f"{root}/dev/{name}", None, MS_BIND)
    os.symlink("/proc/self/fd", root + "/dev/fd")

    os.makedirs(root + "/proc", exist_ok=True)
    try:  # refused in some containers (a masked /proc): then jobs run without one
        mount("proc", root + "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC)
    except OSError:
        pass
    os.makedirs(root + JOBS, exist_ok=True)
    mount(config["jobs"], root + JOBS, None, MS_BIND)
    os.makedirs(root + JOB, exist_ok=True)
    os.makedirs(root + "/.old", exist_ok=True)


def enter_sandbox(config: dict) -> None:
    """Called by the fork server before it imports torch; returns inside the sandbox.

    The calling process stays outside, waits for the sandbox's PID 1 (a child, which is the
    one that returns) and exits with its status; if it is killed, the whole sandbox dies.
    """
    uid, gid = os.getuid(), os.getgid()
    flags = CLONE_NEWNS | CLONE_NEWNET | CLONE_NEWPID | CLONE_NEWIPC | CLONE_NEWUTS
    if uid != 0:
        flags |= CLONE_NEWUSER
    unshare(flags)
    if uid != 0:
        _map_self(0, uid, gid)  # root of the new user namespace, nobody outside it
    mount(None, "/", None, MS_REC | MS_PRIVATE)  # nothing we mount reaches the host

    r, w = os.pipe()
    pid = os.fork()
    if pid:  # outside: wait for the sandbox and report how it ended
        os.close(w)
        null = os.open(os.devnull, os.O_RDWR)
        os.dup2(null, 0)  # the sandbox alone holds the pipes to the grader
        os.dup2(null, 1)
        os.read(r, 1)  # the child's PDEATHSIG is set: signals may now reach it through us
        for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            signal.signal(sig, lambda s, _f: os.kill(pid, signal.SIGKILL))
        _, status = os.waitpid(pid, 0)
        os._exit(os.waitstatus_to_exitcode(status) & 0xFF)
    os.close(r)
    prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    os.write(w, b"1")
    os.close(w)

    root = config["jobs"] + "/.root"
    os.makedirs(root, exist_ok=True)
    _build_root(root, config)
    os.chdir(root)
    _check(_syscall("pivot_root", b".", b".old"), "pivot_root")
    os.chdir("/")
    umount("/.old")
    os.rmdir("/.old")
    mount(None, "/", None, MS_BIND | MS_REMOUNT | MS_RDONLY | MS_NOSUID | MS_NODEV)
    _libc.sethostname(b"sandbox", 7)


def enter_job(name: str, run_as: tuple[int, int] | None) -> None:
    """In a job forked from the server: give it its own folder, PID and user.

    Returns in the process that runs the learner's code (PID 1 of a new PID namespace). The
    forked job process itself stays behind as that process's parent: it passes on SIGTERM as
    SIGKILL, and exits with the same status, so the server sees one job process as before.
    ``run_as``: (uid, gid) to become when the grader is root (nobody), else None.
    """
    unshare(CLONE_NEWNS | CLONE_NEWPID | CLONE_NEWIPC)
    mount(f"{JOBS}/{name}", JOB, None, MS_BIND)
    umount(JOBS)  # other jobs' folders are no longer reachable from here
    if run_as is not None:
        os.chown(JOB, *run_as)

    pid = os.fork()
    if pid:
        signal.signal(signal.SIGTERM, lambda s, _f: os.kill(pid, signal.SIGKILL))
        while True:
            try:
                _, status = os.waitpid(pid, 0)
                break
            except InterruptedError:
                continue
        code = os.waitstatus_to_exitcode(status)
        if code < 0:  # killed: die the same way, so the server reports the signal
            signal.signal(-code, signal.SIG_DFL)
            os.kill(os.getpid(), -code)
        os._exit(code)

    # PID 1 of the job's namespace: when it ends, the kernel kills all it started
    try:
        mount("proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC)
    except OSError:
        pass
    if run_as is not None:
        become(*run_as)
        prctl(PR_SET_DUMPABLE, 1)  # so that nobody may write its own /proc/self/uid_map
    outside_uid, outside_gid = os.getuid(), os.getgid()
    try:  # a user namespace of its own: its process count is its own
        unshare(CLONE_NEWUSER)
        _map_self(outside_uid if run_as else INSIDE_UID, outside_uid, outside_gid)
    except OSError:
        if run_as is None:  # we would stay root of the sandbox's user namespace
            raise
    drop_capabilities()
    prctl(PR_SET_NO_NEW_PRIVS, 1)
    prctl(PR_SET_PDEATHSIG, signal.SIGKILL)


def become(uid: int, gid: int) -> None:
    """The "user" level, without namespaces: a root server's job turns into ``uid``."""
    os.setgroups([])
    os.setresgid(gid, gid, gid)
    os.setresuid(uid, uid, uid)
    prctl(PR_SET_NO_NEW_PRIVS, 1)


def limit_processes(count: int) -> None:
    """At most ``count`` processes and threads (set after ``enter_job``'s user namespace, so
    that the count is this job's alone)."""
    resource.setrlimit(resource.RLIMIT_NPROC, (count, count))
