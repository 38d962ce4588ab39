"""The graders of every week: ``weekN.py`` holds the case builders of week N's exercises.

Which exercises there are, and their points, forbidden calls and given parts, is written
once, in ``autograder/registry.py``; these names are kept for the grading command.
"""

from autograder.registry import BY_NAME, EXERCISES

__all__ = ["BY_NAME", "EXERCISES"]
