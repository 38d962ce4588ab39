"""One pytest marker per exercise of the registry, so ``pytest -m rmsnorm`` runs just that
exercise's tests (``--strict-markers`` rejects any other name)."""

from autograder.registry import EXERCISES


def pytest_configure(config):
    for exercise in EXERCISES:
        config.addinivalue_line("markers", f"{exercise.name}: week {exercise.week}, "
                                           f"{exercise.title}")
