"""A pytest plugin, loaded before nbval (``-p tests.no_iri_grammar``: pyproject's addopts, the
notebook runs of tests/notebooks/test_notebooks.py).

jsonschema imports the optional ``rfc3987_syntax`` for its "iri" format checker, and that
module builds a Lark grammar as it is imported: about a second of CPU in every process that
imports nbformat. nbformat never checks formats (its schemas have no "format" keyword), so the
test processes go without it."""

import sys

sys.modules.setdefault("rfc3987_syntax", None)
