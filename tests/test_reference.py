"""``autograder.reference``: the one parser of ``"module:Symbol,Symbol"`` and the one cutter
of reference source, used by the build, the grader, submissions and parts."""

import ast

import pytest

from autograder.reference import Spec, statement_source, symbol_code

SOURCE = '''\
import torch; import math
from dataclasses import dataclass

WIDTH = 4  # the width

@dataclass(frozen=True)
class Config:
    """Settings."""

    dim: int = 8  # → a comment with non-ASCII text


class Layer(torch.nn.Module):
    def __init__(self, dim):
        """Build it."""
        super().__init__()
        self.dim = dim

    def forward(self, x):
        return x * self.dim  # (B, T, D)


def scale(x, by=2.0):
    """Scale ``x``."""
    y = x * by
    return y
'''


def test_spec_parses_and_prints_back():
    spec = Spec.parse(" solutions.positions : rope_angles, apply_rope ")
    assert spec == Spec("solutions.positions", ("rope_angles", "apply_rope"))
    assert str(spec) == "solutions.positions:rope_angles,apply_rope"
    assert Spec.parse(str(spec)) == spec


@pytest.mark.parametrize("text", ["solutions.positions", "solutions.positions:", ":RMSNorm",
                                  "solutions.positions: , "])
def test_malformed_specs_are_refused(text):
    with pytest.raises(ValueError, match="not a reference spec"):
        Spec.parse(text)


def test_spec_loads_the_last_symbol_by_default():
    from solutions.positions import apply_rope, rope_angles

    spec = Spec.parse("solutions.positions:rope_angles,apply_rope")
    assert spec.load() is apply_rope and spec.load("rope_angles") is rope_angles


def test_statement_source_keeps_decorators_and_comments_and_cuts_shared_lines():
    body = ast.parse(SOURCE).body
    assert [statement_source(SOURCE, n) for n in body[:2]] == ["import torch", "import math"]
    assert statement_source(SOURCE, body[3]) == "WIDTH = 4  # the width"
    config = statement_source(SOURCE, body[4])
    assert config.startswith("@dataclass(frozen=True)\nclass Config:")
    assert config.endswith("dim: int = 8  # → a comment with non-ASCII text")
    assert statement_source(SOURCE, body[5]).endswith("return x * self.dim  # (B, T, D)")


def test_symbol_code_puts_solution_markers_around_each_body():
    assert symbol_code(SOURCE, "scale") == (
        'def scale(x, by=2.0):\n    """Scale ``x``."""\n    y = x * by\n    return y')
    marked = symbol_code(SOURCE, "scale", markers=True).splitlines()
    assert marked[2:] == ["    ### BEGIN SOLUTION", "    y = x * by", "    return y",
                          "    ### END SOLUTION"]
    layer = symbol_code(SOURCE, "Layer", markers=True)
    # the docstring and super().__init__() stay visible; each method gets its own markers
    assert ('super().__init__()\n        ### BEGIN SOLUTION\n        self.dim = dim\n'
            '        ### END SOLUTION\n') in layer
    assert layer.count("### BEGIN SOLUTION") == 2 and layer.endswith("### END SOLUTION")
    # a constant comes with its line's comment and never gets markers
    assert symbol_code(SOURCE, "WIDTH", markers=True) == "WIDTH = 4  # the width"
    with pytest.raises(ValueError, match="no top-level function, class or constant 'Missing'"):
        symbol_code(SOURCE, "Missing")


def test_spec_code_is_the_modules_own_text():
    spec = Spec.parse("solutions.normalization:RMSNorm")
    code = spec.code()
    assert code.startswith("class RMSNorm(nn.Module):") and code in spec.source()
    assert spec.code(markers=True).count("### BEGIN SOLUTION") >= 2
