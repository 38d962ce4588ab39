"""Shared by every test: one pytest marker per exercise of the registry, so ``pytest -m
rmsnorm`` runs just that exercise's tests (``--strict-markers`` rejects any other name), the
grader the tests share (tests/grading.py), and the work done ahead in the background (see
tests/ahead.py)."""

import os

# The suite keeps the cores busy with two lanes of work (tests/ahead.py). A torch process that
# also spreads each operation over every core (OpenMP) then spins waiting for the core the
# other lane holds: one thread per process, set before anything imports torch
os.environ.setdefault("OMP_NUM_THREADS", "1")

import pytest  # noqa: E402

from autograder.registry import EXERCISES  # noqa: E402
from tests.ahead import Ahead, has_work_ahead  # noqa: E402
from tests.grading import Grader  # noqa: E402


def pytest_configure(config):
    for exercise in EXERCISES:
        config.addinivalue_line("markers", f"{exercise.name}: week {exercise.week}, "
                                           f"{exercise.title}")


def pytest_collection_modifyitems(items):
    # the tests that wait for background work come last, so that it has time to get done
    items.sort(key=has_work_ahead)


@pytest.fixture(scope="session")
def grader(tmp_path_factory) -> Grader:
    return Grader(tmp_path_factory.mktemp("submissions"))


@pytest.fixture(scope="session")
def ahead():
    runner = Ahead()
    yield runner
    runner.pool.shutdown(cancel_futures=True)


@pytest.fixture(scope="session", autouse=True)
def work_ahead(request, ahead):
    """Queue, as the session starts, the background work of every module that has some."""
    modules = dict.fromkeys(item.module for item in request.session.items
                            if has_work_ahead(item))
    for module in modules:
        module.ahead_of_session(request, ahead)
