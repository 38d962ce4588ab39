"""Shared by every test: one pytest marker per exercise of the registry, so ``pytest -m
rmsnorm`` runs just that exercise's tests (``--strict-markers`` rejects any other name), and
``ahead`` (see tests/ahead.py)."""

import pytest

from autograder.registry import EXERCISES
from tests.ahead import Ahead


def pytest_configure(config):
    for exercise in EXERCISES:
        config.addinivalue_line("markers", f"{exercise.name}: week {exercise.week}, "
                                           f"{exercise.title}")


@pytest.fixture(scope="session")
def ahead():
    runner = Ahead()
    yield runner
    runner.pool.shutdown(cancel_futures=True)
