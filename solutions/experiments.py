"""Weeks 3 and 4: reading the results of the experiments ``solutions.ablate`` runs.

A training run gives numbers; a conclusion needs a rule that says what the numbers support.
These two functions are those rules, written down so that they can be checked on any table,
not only on the one a run happened to produce.

- Week 3 trains the same small model with four feed-forward blocks (ReLU, GELU, SiLU,
  SwiGLU) and several seeds: ``best_activation`` names the one with the lowest mean final
  validation loss and says whether its lead is larger than the seed-to-seed noise.
- Week 4 trains with four position schemes at one context length and evaluates at longer
  ones: ``extrapolation_limit`` finds, for each scheme, the first length at which the loss
  has grown past a chosen multiple of its loss at the training length.

Both take plain dictionaries (the results tables), so the answer does not depend on how the
runs were made.
"""

from __future__ import annotations


def best_activation(final_losses: dict[str, list[float]]) -> tuple[str, bool]:
    """The activation with the lowest mean final validation loss, and whether its lead is clear.

    ``final_losses`` maps an activation's name to the final validation loss of each of its
    runs (one per seed), e.g. ``{"relu": [1.92, 1.95], "swiglu": [1.85, 1.86], ...}``.

    Returns ``(name, clear)``. ``clear`` is True when the ranges of the runs do not overlap:
    every activation has at least two runs (one run says nothing about seed noise), and the
    winner's *worst* run is strictly lower than every other activation's *best* run.
    """
    means = {name: sum(runs) / len(runs) for name, runs in final_losses.items()}
    best = min(means, key=means.get)
    enough_runs = all(len(runs) >= 2 for runs in final_losses.values())
    others_best = min(min(runs) for name, runs in final_losses.items() if name != best)
    clear = enough_runs and max(final_losses[best]) < others_best
    return best, clear


def extrapolation_limit(losses: dict[str, dict[int, float]], train_len: int,
                        factor: float = 1.2) -> dict[str, int | None]:
    """For each position scheme, the shortest evaluated length at which it has broken down.

    ``losses`` maps a scheme's name to ``{length: mean validation loss at that length}``, e.g.
    ``{"rope": {64: 1.9, 128: 2.4, 256: 3.1}, "learned": {64: 1.9, 128: inf}, ...}``; a length
    a scheme cannot run at (learned positions beyond their table) has the loss ``math.inf``.
    Every scheme has an entry at ``train_len``, the length it was trained at.

    A scheme has broken down at a length when its loss there is strictly greater than
    ``factor`` times its own loss at ``train_len``. Returns ``{scheme: the shortest such
    length}``, with ``None`` for a scheme that holds up at every length evaluated. The
    lengths are checked in increasing order, whatever the order of the dictionary.
    """
    limits: dict[str, int | None] = {}
    for scheme, by_length in losses.items():
        threshold = factor * by_length[train_len]
        broken = [length for length in sorted(by_length) if by_length[length] > threshold]
        limits[scheme] = broken[0] if broken else None
    return limits
