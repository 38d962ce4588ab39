"""Isolation levels: how far a learner's code is kept from everything but its own job.

``strict``
    Linux namespaces (``autograder/namespaces.py``). The fork server runs in its own mount,
    network, PID, IPC and UTS namespaces (plus a user namespace when the grader is not root),
    on a read-only root that shows only the Python installation and its packages, the
    course's own code hidden; no network at all. Each job then gets a mount namespace in
    which only its own folder exists and is writable, a PID namespace in which it sees no
    other process, and an unprivileged user: ``nobody`` when the grader is root, else a uid
    mapped in a user namespace of its own; no capabilities, ``no_new_privs``, and at most
    ``AUTOGRADER_MAX_PROCS`` processes.
``user``
    Root without namespaces (a container that refuses ``unshare``): each job runs as
    ``nobody`` with the same limits. Files that ``nobody`` may read stay readable, the
    network stays open, and concurrent jobs share one user.
``basic``
    A separate process with resource limits, as the grader's own user.

``auto`` (the default) picks the strongest level the machine allows; ``strict`` stops with
an error where namespaces are not available instead of running with less.
"""

from __future__ import annotations

import functools
import importlib.metadata
import os
import site
import sys
import sysconfig
from pathlib import Path

LEVELS = ("strict", "user", "basic")  # strongest first
CHOICES = ("auto", *LEVELS)
NOBODY = (65534, 65534)
MAX_PROCS = int(os.environ.get("AUTOGRADER_MAX_PROCS", 64))
SYSTEM = ("/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32", "/etc/ld.so.cache")
COURSE_PACKAGES = ("autograder", "solutions")
PACKAGE_ROOT = Path(__file__).resolve().parents[1]  # the checkout, or site-packages


class IsolationUnavailable(RuntimeError):
    """The requested level cannot be set up on this machine."""


def describe(level: str) -> str:
    """One line for the report: the level and what it means here."""
    if level == "strict":
        who = "nobody" if run_as() else "a uid of its own in a user namespace"
        return ("strict: each job in its own mount, PID and user namespaces, no network; it "
                f"sees only Python and its packages and its own folder, and runs as {who}")
    if level == "user":
        return ("user: each job runs as nobody, without namespaces (files that nobody can "
                "read stay readable, the network stays open)")
    return "basic: a separate process with limits, as the grader's own user"


def _maps_nobody() -> bool:
    """Whether uid and gid 65534 exist in our user namespace (not always so in containers)."""
    try:
        for kind, wanted in (("uid", NOBODY[0]), ("gid", NOBODY[1])):
            with open(f"/proc/self/{kind}_map") as f:
                ranges = [tuple(map(int, line.split())) for line in f if line.strip()]
            if not any(first <= wanted < first + count for first, _, count in ranges):
                return False
        return True
    except OSError:
        return False


def run_as() -> tuple[int, int] | None:
    """The user a root grader's jobs become (nobody), or None when the grader is not root."""
    return NOBODY if os.getuid() == 0 and _maps_nobody() else None


def candidates(requested: str, fork_server: bool) -> list[str]:
    """The levels to try, strongest first, for ``--isolation requested``."""
    if requested not in CHOICES:
        raise ValueError(f"unknown isolation level {requested!r} (choose from {CHOICES})")
    linux = sys.platform == "linux" and fork_server
    possible = [level for level in LEVELS
                if level == "basic" or (linux and (level == "strict" or run_as()))]
    if requested == "auto":
        return possible
    if requested not in possible:
        why = ("needs Linux and the fork server (AUTOGRADER_FORK is 0 or this is not Linux)"
               if not linux else "needs the grader to run as root, with user nobody")
        raise IsolationUnavailable(f"isolation {requested!r} {why}")
    return [requested]


def _site_dirs() -> list[str]:
    dirs = [*site.getsitepackages(), site.getusersitepackages(),
            sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]]
    return list(dict.fromkeys(d for d in dirs if os.path.isdir(d)))


def _within(path: str, folders: list[str]) -> bool:
    return any(path == f or path.startswith(f.rstrip("/") + "/") for f in folders)


@functools.cache
def _course_distribution() -> str | None:
    """The normalized name of the installed distribution that holds these packages."""
    names = importlib.metadata.packages_distributions().get("autograder", [])
    return names[0].lower().replace("-", "_") if names else None


def _is_course_entry(name: str) -> bool:
    """A site-packages entry of the course's own code: a package, its metadata, an editable
    install's finder or ``.pth`` file."""
    norm = name.lower().replace("-", "_")
    for prefix in ("__editable___", "__editable__."):
        norm = norm.removeprefix(prefix)
    dist = _course_distribution()
    return norm.split(".")[0] in COURSE_PACKAGES or bool(dist and norm.startswith(dist))


def readonly_paths() -> list[str]:
    """What the sandbox shows, read-only: system libraries, the Python installation (the
    interpreter's prefixes, a virtual environment's too) and the folders it imports from."""
    import torch

    python = [sys.prefix, sys.exec_prefix, sys.base_prefix, sys.base_exec_prefix,
              sysconfig.get_paths()["stdlib"], sysconfig.get_paths()["platstdlib"],
              *_site_dirs(), str(Path(torch.__file__).parents[1])]
    links = [p for p in SYSTEM if os.path.islink(p)]  # kept as links (/lib -> usr/lib)
    paths: list[str] = []
    for p in [*SYSTEM, *python]:
        if p in links or not os.path.exists(p):
            continue
        for q in (os.path.abspath(p), os.path.realpath(p)):
            paths.append(q)
    paths = sorted(set(paths), key=len)
    kept = [p for i, p in enumerate(paths) if not _within(p, paths[:i])]
    return links + kept


def hidden_paths(readonly: list[str]) -> list[str]:
    """The course's own code wherever the sandbox would show it: the checkout (when it lies
    inside a shown folder), the packages, and their entries in every site-packages folder."""
    shown = [p for p in readonly if not os.path.islink(p)]
    hide = []
    if (PACKAGE_ROOT / "pyproject.toml").exists():
        hide.append(str(PACKAGE_ROOT))
    hide += [str(PACKAGE_ROOT / name) for name in COURSE_PACKAGES]
    for folder in [*_site_dirs(), *sys.path]:
        if os.path.isdir(folder) and _within(os.path.realpath(folder), shown):
            hide += [os.path.join(folder, e) for e in os.listdir(folder) if _is_course_entry(e)]
    real = {os.path.realpath(p) for p in hide}
    return sorted((p for p in real if _within(p, shown) and os.path.exists(p)), key=len)


@functools.cache
def sandbox_mounts() -> tuple[tuple[str, ...], tuple[str, ...]]:
    readonly = readonly_paths()
    return tuple(readonly), tuple(hidden_paths(readonly))


def server_config(level: str, jobs: str) -> dict:
    """What the fork server needs to set up ``level`` (see ``worker.serve``)."""
    user = run_as() if level != "basic" else None
    config = {"level": level, "jobs": jobs, "max_procs": MAX_PROCS,
              "run_as": list(user) if user else None}
    if level == "strict":
        readonly, hide = sandbox_mounts()
        config.update(readonly=list(readonly), hide=list(hide))
    return config
