"""The graders of every week: ``weekN.py`` holds the case builders of week N's exercises, and
``shortcuts.py`` the library calls each exercise refuses.

Which exercises there are, and their points, forbidden calls and given parts, is written once,
in ``autograder/registry.py``.
"""
