"""Week 3 graders: RMSNorm, SwiGLU, and reading the activation experiment."""

from __future__ import annotations

import statistics

import torch
import torch.nn.functional as F
from torch import Tensor

from autograder.compare import Mismatch
from autograder.exercises.common import (
    expect,
    expect_answer,
    expect_state,
    hidden_input,
    known_mistakes,
    module_call,
    module_case,
    randn,
    reference_run,
    run_reference,
    script_call,
    state_case,
    swiglu_state,
    twin_case,
)
from autograder.grading import Case
from solutions import RMSNorm, SwiGLU
from solutions.experiments import best_activation

# ---------------------------------------------------------------- RMSNorm


# eps defaults a learner may have typed: LayerNorm's and GPTConfig.norm_eps's 1e-5,
# nn.RMSNorm's (float32 machine epsilon), and others seen in the wild
WRONG_DEFAULT_EPS = (1e-5, 1e-8, torch.finfo(torch.float32).eps, 0.0)


WEIGHT_FIRST = ("cast the normalized x back to the input dtype first, then multiply by the "
                "weight (as transformers' Llama does); yours multiplies in float32")


def _weight_first(x: Tensor, weight: Tensor, eps: float) -> Tensor:
    """RMSNorm with the weight applied in float32 before the cast back (a mistake in 16 bits)."""
    x32 = x.float()
    return (weight.to(x.dtype).float() * x32 * torch.rsqrt(
        x32.pow(2).mean(-1, keepdim=True) + eps)).to(x.dtype)


def _rmsnorm_mistakes(x: Tensor, weight: Tensor, eps: float,
                      default: bool = False) -> dict[str, Tensor]:
    """What common wrong RMSNorms return for ``x``, with the message each one earns; with
    ``default`` (built without ``eps``), also the wrong defaults."""
    in_dtype = x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps) * weight.to(x.dtype)
    weight_first = _weight_first(x, weight, eps)
    x = x.double()
    w = weight.double()
    ms = x.pow(2).mean(-1, keepdim=True)
    wrong_defaults = {
        f"RMSNorm(dim) must default to eps=1e-6 (the contract's); yours behaves like eps={e:g}":
            x * torch.rsqrt(ms + e) * w for e in WRONG_DEFAULT_EPS} if default else {}
    return wrong_defaults | {
        "your norm subtracts the mean: that is LayerNorm, not RMSNorm":
            F.layer_norm(x, x.shape[-1:], eps=eps) * w,
        "eps must go inside the square root: x / sqrt(mean(x^2) + eps)":
            x / (ms.sqrt() + eps) * w,
        "you divide by the L2 norm; the RMS is the L2 norm divided by sqrt(dim)":
            x / (x.norm(dim=-1, keepdim=True) + eps) * w,
        "the weight is never applied: multiply the normalized x by self.weight":
            x * torch.rsqrt(ms + eps),
        "the mean of squares must be taken over the last dimension only":
            x * torch.rsqrt(x.pow(2).mean() + eps) * w,
        "normalize by the root of the mean square, not by the mean square itself":
            x / (ms + eps) * w,
        "you multiplied by the RMS; divide by it (multiply by rsqrt(mean(x^2) + eps))":
            x * (ms + eps).sqrt() * w,
        "the mean of squares, not their sum: RMS = sqrt(mean(x^2)), over the last dimension":
            x * torch.rsqrt(x.pow(2).sum(-1, keepdim=True) + eps) * w,
        "you added the weight; multiply the normalized x by self.weight":
            x * torch.rsqrt(ms + eps) + w,
        "use the eps given to the constructor, not a constant":
            x * torch.rsqrt(ms + 1e-6) * w,
        "compute the mean of squares in float32: in float16, x**2 overflows above 256":
            in_dtype,
        WEIGHT_FIRST: weight_first,
    }


def _rmsnorm_case(gen, name, shape, dtype=torch.float32, eps=None, scale=1.0, grad=False,
                  zero=False, points=1.0) -> Case:
    dim = shape[-1]
    x, grad_output = hidden_input(gen, shape, dtype, zero, scale, grad)
    weight = 1 + 0.5 * randn(gen, dim)
    kwargs = {} if eps is None else {"eps": eps}
    ref = RMSNorm(dim, **kwargs)
    expected, grads = reference_run(ref, {"weight": weight}, x, grad_output)
    mistakes = _rmsnorm_mistakes(x, weight, ref.eps, default=eps is None)
    weight_first = _weight_first(x, weight, ref.eps)

    def check_output(result: dict) -> None:
        y = result["output"]
        expect(y, expected, mistakes=mistakes)
        if dtype in (torch.bfloat16, torch.float16):
            # within tolerance, but in 16 bits the two orders round differently: correct code
            # matches the reference bit for bit almost everywhere, the other order ~70 %
            same = float((y == expected).float().mean())
            if same < 0.9 and float((y == weight_first).float().mean()) > same:
                raise Mismatch(WEIGHT_FIRST)

    return module_case(name, "RMSNorm", (dim,), kwargs, {"weight": weight}, x, expected, grads,
                       grad_output, points=points, check_output=check_output)


def _rmsnorm_init_case(gen) -> Case:
    dim = 24

    def check(result: dict) -> None:
        expect_state(result, {"weight": (dim,)})
        if not torch.equal(result["state_init"]["weight"], torch.ones(dim)):
            raise Mismatch("`weight` should start as ones, so a new RMSNorm only normalizes")

    return Case("parameters: `weight` of shape (dim,), initialised to ones",
                module_call("RMSNorm", (dim,), return_init=True), check)


def _rmsnorm_scale_case(gen) -> Case:
    """A property, not a comparison: RMSNorm(c * x) == RMSNorm(x) for any c > 0."""
    dim = 32
    x = randn(gen, 1, 6, dim)
    c = float(torch.empty(1).uniform_(2.0, 50.0, generator=gen))
    batch = torch.cat([x, c * x])  # (2, 6, dim)
    weight = 1 + randn(gen, dim)
    ref = RMSNorm(dim)
    ref.load_state_dict({"weight": weight})
    expected, _ = run_reference(ref, [x])

    def prop(y) -> None:
        if not torch.allclose(y[0], y[1], rtol=1e-4, atol=1e-5):
            raise Mismatch(f"scaling the input by {c:.1f} changed your output; RMSNorm "
                           "divides by the RMS, so it should not")

    # the values are checked on the first input: the invariance lets a constant through
    return twin_case("property: scaling the input does not change the output",
                     module_call("RMSNorm", (dim,), None, {"weight": weight}, [batch]),
                     batch.shape, [batch], expected, _rmsnorm_mistakes(x, weight, ref.eps, True),
                     "scaling the input left your output unchanged", prop)


def rmsnorm_cases(gen: torch.Generator) -> list[Case]:
    return [
        _rmsnorm_init_case(gen),
        _rmsnorm_case(gen, "float32, (batch, seq, dim)", (2, 5, 16), points=2),
        _rmsnorm_case(gen, "any number of leading dims: (2, 3, 4, 32)", (2, 3, 4, 32)),
        _rmsnorm_case(gen, "eps is used, inside the root (eps=0.5, small inputs)", (3, 64),
                      eps=0.5, scale=0.1),
        _rmsnorm_case(gen, "RMSNorm(dim) defaults to eps=1e-6 (inputs of size 1e-3, where eps "
                      "matters)", (2, 3, 32), scale=1e-3),
        _rmsnorm_case(gen, "gradients match (input and weight)", (2, 7, 32), grad=True,
                      points=2),
        _rmsnorm_case(gen, "bfloat16 in, bfloat16 out", (4, 8, 64), dtype=torch.bfloat16),
        _rmsnorm_case(gen, "float16 with large values: compute in float32, no overflow",
                      (2, 4, 64), dtype=torch.float16, scale=400.0),
        _rmsnorm_case(gen, "all-zero input gives zeros, not NaN", (2, 3, 16), zero=True),
        _rmsnorm_scale_case(gen),
    ]


# ---------------------------------------------------------------- SwiGLU


def _swiglu_mistakes(x: Tensor, w: dict[str, Tensor]) -> dict[str, Tensor]:
    x = x.double()
    gate = x @ w["gate_proj.weight"].double().T
    up = x @ w["up_proj.weight"].double().T
    down = lambda h: h @ w["down_proj.weight"].double().T
    return {
        "you used GELU; SwiGLU gates with SiLU (x * sigmoid(x))": down(F.gelu(gate) * up),
        "you used ReLU; SwiGLU gates with SiLU (x * sigmoid(x))": down(F.relu(gate) * up),
        "you used a sigmoid gate (that is GLU); SwiGLU uses SiLU(gate) = gate * sigmoid(gate)":
            down(torch.sigmoid(gate) * up),
        "gate and up are swapped: SiLU goes on gate_proj(x), not on up_proj(x)":
            down(gate * F.silu(up)),
        "SiLU must be applied to gate_proj(x) alone, before multiplying by up_proj(x)":
            down(F.silu(gate * up)),
        "the up projection is missing: multiply SiLU(gate_proj(x)) by up_proj(x)":
            down(F.silu(gate)),
        "the gate is missing: SwiGLU is down(SiLU(gate) * up), not down(SiLU(up))":
            down(F.silu(up)),
        "SiLU(gate) multiplies up_proj(x); you added them": down(F.silu(gate) + up),
        "the SiLU gate is missing: SwiGLU is down(SiLU(gate) * up), not down(gate * up)":
            down(gate * up),
    }


def _swiglu_case(gen, name, shape, hidden, dtype=torch.float32, grad=False, zero=False,
                 points=1.0) -> Case:
    dim = shape[-1]
    weights = swiglu_state(gen, dim, hidden)
    x, grad_output = hidden_input(gen, shape, dtype, zero, grad=grad)
    expected, grads = reference_run(SwiGLU(dim, hidden), weights, x, grad_output)
    return module_case(name, "SwiGLU", (dim, hidden), None, weights, x, expected, grads,
                       grad_output, _swiglu_mistakes(x, weights), points=points)


def swiglu_cases(gen: torch.Generator) -> list[Case]:
    return [
        state_case("parameters: gate_proj, up_proj, down_proj, no biases", "SwiGLU", (12, 20),
                   {"gate_proj.weight": (20, 12), "up_proj.weight": (20, 12),
                    "down_proj.weight": (12, 20)}),
        _swiglu_case(gen, "float32, (batch, seq, dim)", (2, 5, 16), 40, points=3),
        _swiglu_case(gen, "2-D input (tokens, dim), hidden < dim", (6, 32), 8),
        _swiglu_case(gen, "gradients match (input and all three projections)", (2, 4, 16), 24,
                     grad=True, points=2),
        _swiglu_case(gen, "bfloat16 in, bfloat16 out", (2, 6, 32), 48, dtype=torch.bfloat16),
        _swiglu_case(gen, "all-zero input gives zeros", (1, 3, 8), 16, zero=True),
    ]


# ---------------------------------------------------------------- best_activation

# The table travels as (name, runs) pairs and is rebuilt in the worker in that order; the
# script only turns what came back into plain values, the check judges it.
BEST_SCRIPT = """
_table = {name: list(runs) for name, runs in pairs}
_out = best_activation(_table)
if isinstance(_out, (tuple, list)) and len(_out) == 2:
    _name, _clear = _out
    _flag = None
    if type(_clear).__name__ in ("bool", "bool_"):  # a Python or a NumPy bool
        _flag = bool(_clear)
    elif (type(_clear).__name__ == "Tensor" and str(_clear.dtype) == "torch.bool"
          and _clear.numel() == 1):
        _flag = bool(_clear.item())
    result = {"pair": True, "name": str(_name) if isinstance(_name, str) else None,
              "name_type": type(_name).__name__, "clear": _flag,
              "clear_type": type(_clear).__name__}
else:
    result = {"pair": False, "type": type(_out).__name__}
"""

Table = dict[str, list[float]]


def _mean(runs: list[float]) -> float:
    return sum(runs) / len(runs)


def _name_mistakes(table: Table) -> dict[str, str]:
    """The activation common wrong rankings pick, with the message each one earns."""
    means = {k: _mean(v) for k, v in table.items()}
    return {
        "you picked the highest loss: the best activation has the LOWEST mean validation loss":
            max(means, key=means.get),
        "rank the activations by the mean over their runs, not by their single best run":
            min(table, key=lambda k: min(table[k])),
        "rank the activations by the mean over all their runs, not by the first run":
            min(table, key=lambda k: table[k][0]),
        "average the runs (sum / count): activations with fewer runs have smaller sums":
            min(table, key=lambda k: sum(table[k])),
    }


def _clear_mistakes(table: Table) -> dict[str, bool]:
    """What common wrong tests of "the lead is clear" say about the right winner."""
    name, _ = best_activation(table)
    means = {k: _mean(v) for k, v in table.items()}
    enough = all(len(v) >= 2 for v in table.values())
    worst = max(table[name])
    others_best = min(min(v) for k, v in table.items() if k != name)
    runner_up = sorted(means, key=means.get)[1]
    noise = max((statistics.stdev(table[k]) if len(table[k]) > 1 else 0.0)
                for k in (name, runner_up))
    return {
        "one run per activation says nothing about seed noise: with fewer than two runs of "
        "any activation, the lead cannot be clear": worst < others_best,
        "compare the winner with EVERY other activation, not only the runner-up: another one "
        "may have a run as good as the winner's worst":
            enough and worst < min(table[runner_up]),
        "ranges that touch overlap: the winner's worst run must be strictly below every other "
        "activation's best run": enough and worst <= others_best,
        "the lead is clear when the ranges of runs do not overlap (the winner's worst run "
        "below every other's best), not when the gap between means beats a standard deviation":
            enough and means[runner_up] - means[name] > noise,
        "compare the winner's worst run with the others' best runs, not the means":
            enough and means[name] < others_best,
    }


def _best_case(name: str, table: Table, points: float = 1.0) -> Case:
    expected = best_activation(table)
    name_mistakes = known_mistakes(_name_mistakes(table), expected[0])
    clear_mistakes = known_mistakes(_clear_mistakes(table), expected[1])

    def check(result: dict) -> None:
        out = result["output"]
        if not out["pair"]:
            raise Mismatch(f"best_activation should return a pair (name, clear), got a "
                           f"{out['type']}")
        if out["name"] is None:
            if out["name_type"] == "bool" and out["clear_type"] == "str":
                raise Mismatch("return (name, clear) in that order: the name first")
            raise Mismatch(f"the first item should be the activation's name (a str), got a "
                           f"{out['name_type']}")
        if out["clear"] is None:
            raise Mismatch(f"the second item should be a bool (is the lead clear?), got a "
                           f"{out['clear_type']}")
        if out["name"] not in table:
            raise Mismatch(f"{out['name']!r} is not one of the table's activations "
                           f"{sorted(table)}")
        expect_answer(out["name"], expected[0], name_mistakes, f"the lowest mean final loss is "
                      f"{expected[0]!r}'s, not {out['name']!r}'s")
        expect_answer(out["clear"], expected[1], clear_mistakes, f"{expected[0]!r} is right, but "
                      f"its lead is {'' if expected[1] else 'not '}clear here (got clear="
                      f"{out['clear']})")

    pairs = [[k, list(v)] for k, v in table.items()]
    return Case(name, script_call(BEST_SCRIPT, pairs=pairs), check, points)


def best_activation_cases(gen: torch.Generator) -> list[Case]:
    u = lambda lo, hi: lo + (hi - lo) * float(torch.rand((), generator=gen))  # noqa: E731
    names = ["relu", "gelu", "silu", "swiglu"]
    order = torch.randperm(4, generator=gen).tolist()

    def runs(center: float, n: int, half_width: float) -> list[float]:
        return [round(center + u(-half_width, half_width), 4) for _ in range(n)]

    # a clear winner: its runs sit well below everyone else's
    base = u(1.6, 2.2)
    clear = {names[i]: runs(base + 0.15 * rank, 3, 0.02) for rank, i in enumerate(order)}
    # seed noise (+-0.05) larger than the gaps between the means (0.02): no clear lead
    noisy = {names[i]: [round(c - 0.05, 4), *runs(c, 1, 0.01), round(c + 0.05, 4)]
             for c, i in ((base + 0.02 * rank, i) for rank, i in enumerate(order))}
    # the runner-up by mean is cleanly behind, but a third activation has one lucky run
    lucky = {"relu": [2.00, 2.01, 2.02], "gelu": [2.10, 2.11, 2.12],
             "silu": [2.015, 2.30, 2.31], "swiglu": [2.20, 2.21, 2.22]}
    # the single lowest run belongs to an activation whose mean is not the lowest
    best_run = {"relu": [1.80, 2.10, 2.11], "gelu": [1.95, 1.96, 1.97],
                "silu": [2.05, 2.06, 2.07], "swiglu": [1.99, 2.00, 2.01]}
    # the first seed misleads
    first_seed = {"relu": [2.00, 2.10, 2.12], "gelu": [2.05, 1.95, 1.96],
                  "silu": [2.20, 2.21, 2.22], "swiglu": [2.30, 2.31, 2.32]}
    # different numbers of runs: the sums mislead, the means do not
    uneven = {"relu": [2.10, 2.11], "gelu": [1.90, 1.91, 1.92, 1.93], "silu": [2.3, 2.31],
              "swiglu": [2.4, 2.41, 2.42]}
    # ranges that touch exactly
    touching = {"relu": [2.0, 2.25], "gelu": [2.25, 2.5], "silu": [2.75, 3.0]}
    # the gap between the means beats a standard deviation, yet the ranges overlap
    overlap = {"relu": [2.0, 2.0, 2.0, 2.3], "gelu": [2.28, 2.29, 2.30], "silu": [2.6, 2.61]}
    one_run = {names[i]: runs(base + 0.2 * rank, 1, 0.01) for rank, i in enumerate(order)}
    mixed = dict(clear, **{names[order[-1]]: [round(base + 0.6, 4)]})
    other_names = {"geglu": runs(base + 0.1, 2, 0.01), "tanh": runs(base, 2, 0.01),
                   "swish": runs(base + 0.3, 2, 0.01)}
    return [
        _best_case("four activations, three seeds, a clear winner", clear, points=2),
        _best_case("seed noise larger than the gaps: a winner, but not a clear one", noisy,
                   points=2),
        _best_case("the runner-up is behind, but a third activation has a run as good as the "
                   "winner's worst", lucky),
        _best_case("the lowest single run is not the lowest mean", best_run),
        _best_case("the first seed points to the wrong activation", first_seed),
        _best_case("different numbers of runs per activation", uneven),
        _best_case("ranges that touch are not separated", touching),
        _best_case("the means are far apart, the ranges still overlap", overlap),
        _best_case("one run each: never clear", one_run),
        _best_case("one activation has a single run: not clear", mixed),
        _best_case("other names, two runs each", other_names),
    ]

