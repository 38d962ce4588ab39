"""The course's hidden graders and the grading command (``python -m autograder grade``).

Learner code never runs in this process: ``sandbox`` runs it in a limited worker
(``worker.py``) and brings its results back as data; ``exercises`` judge them here.
"""
