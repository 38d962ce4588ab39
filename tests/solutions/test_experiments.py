"""Invariants of the rules that read the weeks 3 and 4 experiments' results tables."""

import math
import random

import pytest

from solutions.experiments import best_activation, extrapolation_limit


def random_table(rng: random.Random, names=("relu", "gelu", "silu", "swiglu"), runs=3):
    return {n: [round(rng.uniform(1.8, 2.4), 4) for _ in range(runs)] for n in names}


@pytest.mark.best_activation
@pytest.mark.parametrize("seed", range(20))
def test_best_activation_ignores_order_and_a_common_shift(seed):
    rng = random.Random(seed)
    table = random_table(rng)
    name, clear = best_activation(table)
    shuffled = {k: rng.sample(v, len(v)) for k, v in rng.sample(list(table.items()), 4)}
    assert best_activation(shuffled) == (name, clear)
    assert best_activation({k: [x + 0.5 for x in v] for k, v in table.items()}) == (name, clear)


@pytest.mark.best_activation
@pytest.mark.parametrize("seed", range(20))
def test_clear_means_no_other_run_reaches_the_winners_worst(seed):
    rng = random.Random(seed)
    table = random_table(rng, runs=2)
    table["swiglu"] = [x - rng.choice([0.0, 0.3, 0.6]) for x in table["swiglu"]]
    name, clear = best_activation(table)
    means = {k: sum(v) / len(v) for k, v in table.items()}
    assert means[name] == min(means.values())
    separated = all(a < b for k, v in table.items() if k != name
                    for a in table[name] for b in v)
    assert clear == separated


@pytest.mark.best_activation
def test_one_run_is_never_clear():
    assert best_activation({"relu": [2.5], "swiglu": [1.0]}) == ("swiglu", False)
    assert best_activation({"relu": [2.5, 2.6], "swiglu": [1.0, 1.1]}) == ("swiglu", True)


@pytest.mark.extrapolation_limit
@pytest.mark.parametrize("seed", range(20))
def test_limit_ignores_order_and_the_scale_of_the_losses(seed):
    rng = random.Random(seed)
    lengths = [64, 128, 256, 512]
    table = {s: {n: rng.uniform(1.5, 4.0) for n in lengths} for s in ("rope", "alibi", "none")}
    limits = extrapolation_limit(table, 64)
    shuffled = {s: dict(rng.sample(list(d.items()), 4)) for s, d in table.items()}
    assert extrapolation_limit(shuffled, 64) == limits
    c = rng.uniform(0.1, 10)
    assert extrapolation_limit({s: {n: c * x for n, x in d.items()} for s, d in table.items()},
                               64) == limits
    # a larger factor can only move the limit later (or to None)
    later = extrapolation_limit(table, 64, factor=2.0)
    for s in table:
        assert limits[s] is None and later[s] is None or (
            limits[s] is not None and (later[s] is None or later[s] >= limits[s]))


@pytest.mark.extrapolation_limit
def test_a_length_a_scheme_cannot_run_at_is_where_it_breaks():
    table = {"learned": {64: 2.0, 128: math.inf}, "alibi": {64: 2.0, 128: 1.9, 256: 2.9}}
    assert extrapolation_limit(table, 64, factor=1.5) == {"learned": 128, "alibi": None}
    assert extrapolation_limit(table, 64) == {"learned": 128, "alibi": 256}
