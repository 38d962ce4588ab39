"""The graders of every week: ``weekN.py`` holds the case builders of week N's exercises.

Which exercises there are, and their points, forbidden calls (the library calls each exercise
refuses) and given parts, is written once, in ``autograder/registry.py``.
"""
