"""Slow, independent pieces of work (gradings, notebook runs) started before the tests that
wait for them, one per core: a module fixture starts what the session's selected tests need
(``selected``), and each test waits only for its own piece."""

from __future__ import annotations

import os
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor

import pytest

CORES = max(1, min(os.cpu_count() or 1, 4))


class Ahead:
    """Independent pieces of work, each run once, at most one per core at a time. A test
    that needs a piece waits only for it; the others keep the cores busy meanwhile."""

    def __init__(self) -> None:
        self.pool = ThreadPoolExecutor(max_workers=CORES)
        self.futures: dict[object, Future] = {}

    def start(self, key, work: Callable, *args, **kwargs) -> None:
        if key not in self.futures:
            self.futures[key] = self.pool.submit(work, *args, **kwargs)

    def result(self, key, work: Callable, *args, **kwargs):
        """The result of ``work(*args, **kwargs)``, started now if it was not already."""
        self.start(key, work, *args, **kwargs)
        return self.futures[key].result()


def selected(request: pytest.FixtureRequest, test: str) -> list[dict]:
    """The parameters (``{}`` if it has none) of every item of ``test``, a function of the
    requesting module, that this session runs: what a module fixture can start ahead."""
    return [item.callspec.params if hasattr(item, "callspec") else {}
            for item in request.session.items
            if item.module is request.module and getattr(item, "originalname", None) == test]
