import pytest


@pytest.fixture
def grade(grader):
    """Grade ``code`` (a .py submission) for one exercise, in the usual isolated worker."""
    return grader.grade
