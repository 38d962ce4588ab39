"""Slow, independent pieces of work (gradings, notebook runs, the instructor guide's walkthrough)
done in the background while the other tests run.

A test module that has such work defines ``ahead_of_session(request, ahead)`` (``request``: the
session's): as the session starts (tests/conftest.py), it queues what its selected tests will
need (``selected``), in the order the modules were collected; its tests run last, each waiting
only for its own piece. The other tests run meanwhile in the foreground; they keep about one
core busy, so the background runs one piece at a time (per core beyond the first) and fills
the rest. A piece still queued when its test comes is run by the test itself, so that neither
lane waits while work is left."""

from __future__ import annotations

import os
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor

import pytest

# the foreground keeps one core busy: the background has the others
BACKGROUND = max(1, min(os.cpu_count() or 1, 4) - 1)


class Ahead:
    """Independent pieces of work, each run once: queued in the background, or run by the
    test that needs it when it comes first."""

    def __init__(self) -> None:
        self.pool = ThreadPoolExecutor(max_workers=BACKGROUND)
        self.futures: dict[object, Future] = {}

    def start(self, key, work: Callable, *args, **kwargs) -> None:
        if key not in self.futures:
            self.futures[key] = self.pool.submit(work, *args, **kwargs)

    def result(self, key, work: Callable, *args, **kwargs):
        """The result of ``work(*args, **kwargs)``: from the background, or computed now when
        it was not queued or has not started yet."""
        future = self.futures.get(key)
        if future is None or future.cancel():
            self.futures[key] = future = Future()
            try:
                future.set_result(work(*args, **kwargs))
            except BaseException as exc:
                future.set_exception(exc)
        return future.result()


def selected(session: pytest.Session, module, test: str) -> list[dict]:
    """The parameters (``{}`` if it has none) of every item of ``test``, a function of
    ``module``, that this session runs: what its ``ahead_of_session`` can queue."""
    return [item.callspec.params if hasattr(item, "callspec") else {}
            for item in session.items
            if item.module is module and getattr(item, "originalname", None) == test]


def has_work_ahead(item: pytest.Item) -> bool:
    return hasattr(item.module, "ahead_of_session")
