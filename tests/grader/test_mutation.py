"""The mutation benchmark (``benchmarks/mutation.py``) works: its mutator makes the changes it
promises and leaves alone what cannot change graded behaviour, and one small exercise is
mutated, graded by the real grader and classified in seconds. The full run is a benchmark
(its table is in the instructor guide), not a test."""

from pathlib import Path

import pytest
import torch

from autograder.registry import EXERCISES
from benchmarks import mutation

ROOT = Path(__file__).resolve().parents[2]

SOURCE = '''
def f(x, eps=1e-6, keep=True):
    """A docstring: not mutated."""
    assert x is not None, "asserts are not mutated"
    if x is None:
        raise ValueError("nor are raises")
    y = x.float() + eps
    y = y * 2
    print("nor is printing", y)
    return torch.cat((y, x), dim=-1).sum(-1, keepdim=keep)
'''


def test_mutator_makes_distinct_single_changes_and_skips_what_cannot_matter():
    found = {m.description: m.source for m in mutation.mutants(SOURCE, ["f"])}
    sources = list(found.values())
    assert len(sources) == len(set(sources)), "every mutant is distinct"
    assert "y = x.float() - eps" in found["+ -> -"]
    assert "eps=2e-06" in found["1e-06 -> 2e-06"]
    assert "y = x + eps" in found["drop the call .float(...)"]
    assert "x.double()" in found["float() -> double()"]
    assert "torch.cat((x, y), dim=-1)" in found["swap the first two items of a tuple"]
    assert "keepdim" not in found["drop the keyword keepdim= of sum()"]
    assert "torch.stack(" in found["cat() -> stack()"]
    assert "y = y * 2" not in found["delete the statement"]
    for text in sources:  # (ast.unparse writes strings with single quotes)
        assert '"""A docstring: not mutated."""' in text
        assert "assert x is not None, 'asserts are not mutated'" in text
        assert "raise ValueError('nor are raises')" in text
        assert "print('nor is printing', y)" in text


def test_results_differing_only_by_rounding_are_told_apart_from_real_differences():
    a = torch.tensor([1.0, 2.0, float("nan")])
    assert mutation.difference({"out": a}, {"out": a.clone()}) == 0.0
    assert mutation.difference(a, a + 1e-7 * a.nan_to_num()) < 1e-6
    assert mutation.difference(a.double(), a) is None  # a dtype change is never rounding
    assert mutation.difference([1, 2], [1, 3]) is None
    assert mutation.difference(a, a * 1.01) > 1e-3


@pytest.mark.grader
@pytest.mark.compute_optimal
def test_one_small_exercise_is_mutated_graded_and_classified():
    outcomes, _ = mutation.run_exercise("compute_optimal", limit=8, parallel=1,
                                        equivalence_seeds=(101,))
    assert len(outcomes) == 8
    assert sum(o.killed for o in outcomes) >= 6, [(o.mutant.description, o.messages)
                                                   for o in outcomes]
    assert not any(o.internal for o in outcomes)
    row = mutation.summary("compute_optimal", outcomes, 1.0)
    assert row["mutants"] == 8 and row["killed"] + row["equivalent"] + row["survivors"] == 8


COUNTS = ("mutants", "killed", "equivalent", "survivors", "named", "internal", "seconds")


def _guide_table() -> list[dict[str, str]]:
    """The rows of the instructor guide's mutation table, as {column: cell}."""
    guide = (ROOT / "site" / "instructors.md").read_text(encoding="utf-8")
    section = guide.split("## How strong the graders are: mutation testing", 1)[1]
    lines = [line for line in section.split("\n## ", 1)[0].splitlines() if line.startswith("|")]
    cells = [[c.strip() for c in line.strip().strip("|").split("|")] for line in lines]
    return [dict(zip(cells[0], row, strict=True)) for row in cells[2:]]


def test_the_guides_mutation_table_covers_every_exercise_and_adds_up():
    *rows, total = _guide_table()
    assert total["exercise"] == "all"
    assert {r["exercise"]: int(r["week"]) for r in rows} == {e.name: e.week for e in EXERCISES}
    for r in rows:
        n = {k: int(r[k]) for k in COUNTS}
        assert n["killed"] + n["equivalent"] + n["survivors"] == n["mutants"], r
        assert n["named"] <= n["killed"] and n["internal"] == 0, r
        scored = n["killed"] + n["survivors"]
        assert r["killed %"] == (f"{100 * n['killed'] / scored:.1f}" if scored else "-"), r
        assert n["killed"] >= 0.97 * scored, f"{r['exercise']} kills under 97 %"
    for k in COUNTS:
        assert int(total[k]) == sum(int(r[k]) for r in rows), k
    scored = int(total["killed"]) + int(total["survivors"])
    assert total["killed %"] == f"{100 * int(total['killed']) / scored:.1f}"
