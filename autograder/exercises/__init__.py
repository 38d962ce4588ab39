"""The graded exercises of every week, in course order."""

from autograder.exercises import week3
from autograder.grading import Exercise

EXERCISES: list[Exercise] = [*week3.EXERCISES]
BY_NAME: dict[str, Exercise] = {e.name: e for e in EXERCISES}
