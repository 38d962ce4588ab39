"""The reference solutions as learners' files, for the grader's tests and the mutation
benchmark (``benchmarks/mutation.py``)."""

import re

from autograder.reference import module_source

IMPORT = re.compile(r"^from solutions\.(\w+) import (?:\([^)]*\)|.*)$", re.M)


def reference_submission(module_name: str, seen: set[str] | None = None) -> str:
    """A reference module as one learner file: the solutions it imports inlined first."""
    seen = set() if seen is None else seen
    seen.add(module_name)
    source = module_source(f"solutions.{module_name}")
    deps = [d for d in IMPORT.findall(source) if d not in seen]
    inlined = [reference_submission(d, seen) for d in deps]
    return "\n\n".join([*inlined, IMPORT.sub("", source)])
