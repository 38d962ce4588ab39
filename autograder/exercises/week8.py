"""Week 8 graders: exact parameter counts, the Chinchilla loss and the compute-optimal split.

The three functions take and return plain numbers, so every case is a grader script run in
the worker: it calls the learner's function and reports what came back (value and type); the
checks here compare it with the reference and name the known mistakes. ``count_parameters``
gets its configurations from the reference ``GPTConfig``, built inside the script from the
reference source, so a learner's own copy of the class cannot change what is counted.
"""

from __future__ import annotations

import math
from dataclasses import replace

import torch

from autograder.compare import Mismatch
from autograder.exercises.common import name_mistake, randint, script_call
from autograder.grading import Case, given_code
from solutions.model import PRESETS, GPTConfig
from solutions.scaling import (
    chinchilla_loss,
    compute_optimal,
    count_parameters,
    parameter_breakdown,
)

# what came back from a learner's function, in a script: its type's name and its value as a
# number (an int stays an int; None when it is no number)
AS_NUMBER = """
def _as_number(out):
    try:
        return {"type": type(out).__name__, "value": out if type(out) is int else float(out)}
    except Exception:
        return {"type": type(out).__name__, "value": None}
"""

# ---------------------------------------------------------------- count_parameters

COUNT_SCRIPT = AS_NUMBER + """
_ns = {}
exec(config_source, _ns)  # the reference GPTConfig, whatever the submission defines
_config = _ns["GPTConfig"](**fields)
if "parameter_breakdown" in count_parameters.__globals__:
    def _refuse(*args, **kwargs):
        raise RuntimeError("parameter_breakdown is the notebook's given answer to this exercise "
                           "split by component: count from the config yourself")
    count_parameters.__globals__["parameter_breakdown"] = _refuse
result = {}
for _active in actives:  # "default": count_parameters(config), the default of `active`
    _kwargs = {} if _active == "default" else {"active": _active}
    result[str(_active)] = _as_number(count_parameters(_config, **_kwargs))
"""


def _count_mistakes(c: GPTConfig, active: bool) -> dict[str, int]:
    """The count with one mistake, from the reference count of a config changed to match it
    (or minus the part the mistake leaves out)."""
    right = count_parameters(c, active=active)
    parts = parameter_breakdown(c, active)
    L, d, hd = c.n_layers, c.dim, c.dim // c.n_heads

    def count(**change) -> int:
        return count_parameters(replace(c, **change), active=active)

    m = {
        "tied embeddings counted twice: with tie_embeddings, lm_head IS embed_tokens' matrix, "
        "so count it once": count(tie_embeddings=False),
        "the norms are missing: two RMSNorm/LayerNorm per layer and a final norm, dim weights "
        "each": right - parts["norms"],
        "the biases are missing: with bias=True every attention and MLP linear layer has one "
        "bias per output feature": count(bias=False),
        "LayerNorm with bias=True has a weight AND a bias: 2 * dim per norm":
            right - (2 * L + 1) * d * (c.norm == "layernorm" and c.bias),
        "SwiGLU has three matrices (gate_proj, up_proj, down_proj), not two":
            right - L * d * c.hidden_dim * (c.mlp == "swiglu" and not c.n_experts),
        "under GQA, k_proj and v_proj have n_kv_heads * head_dim outputs, not n_heads * "
        "head_dim": count(n_kv_heads=c.n_heads),
        "with active=True count only top_k experts per layer, not all n_experts":
            count_parameters(c),
        "the router (gate, n_experts x dim per layer) is missing: every token uses it":
            right - L * d * c.n_experts,
        "the learned position table (max_seq_len x dim) is missing: pos='learned' models "
        "have one": count(pos="rope"),
        # the mirror images
        "lm_head is missing: without tie_embeddings the head has its own vocab_size x dim "
        "matrix": right - parts["head"],
        "biases counted although bias=False: only bias=True models have them": count(bias=True),
        "a LayerNorm without bias (bias=False) has only its weight: dim per norm":
            right + (2 * L + 1) * d * (c.norm == "layernorm" and not c.bias),
        "the GELU MLP has two matrices (up_proj, down_proj), not three":
            right + L * d * c.hidden_dim * (c.mlp == "gelu" and not c.n_experts),
        "q_proj and o_proj have n_heads * head_dim features; only k_proj and v_proj shrink "
        "with n_kv_heads": right - L * (2 * d + c.bias) * (c.n_heads - c.n_kv_heads) * hd,
        "without active=True count all n_experts of every layer, not only top_k":
            count_parameters(c, active=True),
        f"a position table counted for pos={c.pos!r}: "
        + ("rotary positions have no parameters" if c.pos == "rope" else
           "only learned positions have parameters (ALiBi and NoPE have none)"):
            count(pos="learned"),
        "the experts are SwiGLU without biases and the router gate has none either, also "
        "with bias=True (which gives biases to attention and a dense MLP only)":
            right + L * (c.top_k if active else c.n_experts) * (2 * c.hidden_dim + d)
            * bool(c.n_experts and c.bias),
        "the router gate has no bias (Linear(dim, n_experts, bias=False)), also with bias=True":
            right + L * c.n_experts * bool(c.bias),
        # the options of weeks 3 and 4: only SwiGLU is gated
        f"mlp={c.mlp!r} is a plain MLP with two matrices (up_proj, down_proj), like GELU's; "
        "only SwiGLU has three": count(mlp="swiglu") if c.mlp in ("relu", "silu") else right,
    }
    return {k: v for k, v in m.items() if v != right}


def _count_case(name: str, fields: dict, actives=("default",), points: float = 1.0) -> Case:
    config = GPTConfig(**fields)
    expected = {str(a): count_parameters(config, active=a is True) for a in actives}
    mistakes = {str(a): _count_mistakes(config, a is True) for a in actives}

    def check(result: dict) -> None:
        for key, want in expected.items():
            got = result["output"][key]
            what = f"count_parameters(config{'' if key == 'default' else ', active=' + key})"
            if got["type"] != "int":
                if got["value"] == want:
                    raise Mismatch(f"{what} should return a Python int (an exact count), "
                                   f"not a {got['type']}")
                raise Mismatch(f"{what} returned a {got['type']} ({got['value']}), expected "
                               f"the int {want:,}")
            if got["value"] != want:
                name_mistake(mistakes[key], lambda wrong, got=got: got["value"] == wrong)
                raise Mismatch(f"{what} gave {got['value']:,}, expected {want:,}")

    config_source = given_code("solutions.positions:ROPE_THETA") + given_code(
        "solutions.model:GPTConfig")
    call = script_call(COUNT_SCRIPT, config_source=config_source, fields=fields,
                       actives=list(actives))
    return Case(name, call, check, points)


def count_parameters_cases(gen: torch.Generator) -> list[Case]:
    r = lambda lo, hi: randint(gen, lo, hi)
    heads = r(2, 9)
    kv = [h for h in range(1, heads) if heads % h == 0][-1]  # fewer kv heads than heads
    hd = 2 * r(2, 17)
    llama = dict(vocab_size=r(50, 5000), dim=heads * hd, n_layers=r(1, 7), n_heads=heads,
                 n_kv_heads=kv, hidden_dim=r(16, 400), max_seq_len=r(16, 512))
    gpt2 = dict(vocab_size=r(50, 5000), dim=heads * hd, n_layers=r(1, 7), n_heads=heads,
                max_seq_len=r(16, 512), norm="layernorm", mlp="gelu", pos="learned",
                tie_embeddings=True, bias=True)
    moe = dict(llama, n_experts=r(3, 9), top_k=2, n_kv_heads=kv)
    cases = [
        _count_case("a small Llama-style model with GQA", llama, points=2),
        _count_case("a small GPT-2-style model (biases, learned positions, tied embeddings)",
                    gpt2, points=2),
        _count_case("GPT-2 style, untied head and no biases",
                    dict(gpt2, tie_embeddings=False, bias=False)),
        _count_case("Llama style with tied embeddings", dict(llama, tie_embeddings=True)),
        _count_case("LayerNorm + GELU with biases but RoPE (no position table)",
                    dict(gpt2, pos="rope", tie_embeddings=False)),
        _count_case("multi-query attention (one kv head)", dict(llama, n_kv_heads=1)),
        _count_case("hidden_dim left to its default (LLaMA's 8/3 rule)",
                    dict(llama, hidden_dim=None)),
        _count_case("a mixture of experts: total (active defaults to False) and active", moe,
                    ("default", False, True), points=2),
        _count_case("a dense model: active=True changes nothing", llama, ("default", True)),
        _count_case("a mixture of experts with top_k = 1", dict(moe, top_k=1),
                    ("default", True)),
        _count_case("a mixture of experts with bias=True: attention biases, none in the "
                    "experts or the router", dict(moe, bias=True), ("default", True)),
        _count_case("a plain ReLU MLP and ALiBi (no position parameters)",
                    dict(llama, mlp="relu", pos="alibi")),
        _count_case("a plain SiLU MLP with biases and no positions (NoPE)",
                    dict(gpt2, mlp="silu", pos="none", tie_embeddings=False)),
    ]
    for name, label in [("gpt2", "GPT-2 small: 124,439,808"), ("gpt2_xl", "GPT-2 XL"),
                        ("llama2_7b", "Llama 2 7B: 6,738,415,616"), ("llama2_70b", "Llama 2 70B"),
                        ("mistral_7b", "Mistral 7B")]:
        cases.append(_count_case(label, dict(PRESETS[name])))
    cases.append(_count_case("Mixtral 8x7B: 46.7B total, 12.9B active",
                             dict(PRESETS["mixtral_8x7b"]), ("default", True), points=2))
    return cases


# ---------------------------------------------------------------- chinchilla_loss

LOSS_SCRIPT = AS_NUMBER + """
import torch

if kind == "numpy":
    import numpy as _np
    _out = chinchilla_loss(N.numpy(), D.numpy())
    if isinstance(_out, _np.ndarray):
        _out = torch.from_numpy(_out.astype(_np.float64))
else:
    _out = chinchilla_loss(N, D)
if isinstance(_out, torch.Tensor) and _out.dim() > 0:
    result = {"type": "tensor", "value": _out}
else:
    result = _as_number(_out)
"""

FIT = dict(E=1.69, A=406.4, B=410.7, alpha=0.34, beta=0.28)
# another fit, passed by keyword to a function whose signature takes the constants (the
# notebook's does): it must use them, not the numbers of the Hoffmann fit
OTHER_FIT = dict(E=2.1, A=310.0, B=520.0, alpha=0.31, beta=0.36)
CONSTANTS_SCRIPT = """
import inspect

try:
    _params = inspect.signature(_function).parameters
except (TypeError, ValueError):
    _params = {}
_named = (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
_taken = {k: v for k, v in constants.items() if k in _params and _params[k].kind in _named}
result = {"taken": sorted(_taken), "value": None}
if _taken:
    _out = _function(*args, **_taken)
    try:
        result["value"] = [float(v) for v in _out] if isinstance(_out, (tuple, list)) \
            else float(_out)
    except Exception:
        result["value"] = None
"""


def constants_case(function: str, args: tuple, names: tuple[str, ...],
                   reference, points: float = 1.0) -> Case:
    """``function(*args, **constants)`` with ``OTHER_FIT``'s values of the constants its
    signature takes (none: the contract's ``chinchilla_loss(N, D)`` may hard-code the fit):
    each given constant must be used."""
    other = {k: OTHER_FIT[k] for k in names}

    def close(got, want) -> bool:
        got, want = (got, want) if isinstance(want, tuple) else ((got,), (want,))
        return isinstance(got, (tuple, list)) and len(got) == len(want) and all(
            isinstance(g, float) and math.isclose(g, w, rel_tol=1e-3)
            for g, w in zip(got, want, strict=True))

    def check(result: dict) -> None:
        out = result["output"]
        taken = {k: other[k] for k in out["taken"] if k in other}
        if not taken:
            return
        want = reference(*args, **taken)
        if isinstance(want, tuple):
            want = tuple(float(v) for v in want)
        if close(out["value"], want):
            return
        ignored = [k for k in taken if close(out["value"], reference(
            *args, **{**taken, k: FIT[k]}))]
        shown = ", ".join(f"{k}={v}" for k, v in taken.items())
        if close(out["value"], reference(*args)):
            raise Mismatch(f"{function}(..., {shown}) gave the result of the Hoffmann fit: "
                           "it ignores its constant arguments; compute with the arguments, "
                           "not with the numbers 1.69, 406.4, ...")
        if len(ignored) == 1:
            raise Mismatch(f"{function}(..., {shown}) ignores its argument {ignored[0]}: use "
                           "the argument, not the number of the Hoffmann fit")
        raise Mismatch(f"{function}(..., {shown}) gave {out['value']}, expected {want}")

    call = script_call(CONSTANTS_SCRIPT.replace("_function", function), args=list(args),
                       constants=other)
    return Case(f"another fit, passed as arguments ({', '.join(names)}), is used", call, check,
                points)


def _loss_mistakes(N, D) -> dict[str, object]:
    f = lambda **kw: chinchilla_loss(N, D, **{**FIT, **kw})  # noqa: E731
    return {
        "alpha and beta are swapped: alpha = 0.34 goes with N, beta = 0.28 with D":
            f(alpha=0.28, beta=0.34),
        "A and B are swapped: A = 406.4 divides N^alpha, B = 410.7 divides D^beta":
            f(A=410.7, B=406.4),
        "the irreducible loss E = 1.69 is missing": f(E=0.0),
        "E and A are swapped (E = 1.69 is the constant term)": f(E=406.4, A=1.69),
        "the exponents should be negative (A / N^alpha): more parameters lower the loss":
            FIT["E"] + FIT["A"] * N ** FIT["alpha"] + FIT["B"] * D ** FIT["beta"],
        "write A / N^alpha, not (A / N)^alpha":
            FIT["E"] + (FIT["A"] / N) ** FIT["alpha"] + (FIT["B"] / D) ** FIT["beta"],
        "the data term B / D^beta is missing": f(B=0.0),
        "the parameter term A / N^alpha is missing": f(A=0.0),
    }


def _same(a, b, rel: float) -> bool:
    if isinstance(a, torch.Tensor) or isinstance(b, torch.Tensor):
        a, b = torch.as_tensor(a, dtype=torch.float64), torch.as_tensor(b, dtype=torch.float64)
        return a.shape == b.shape and bool(torch.allclose(a, b, rtol=rel, atol=0))
    return math.isclose(a, b, rel_tol=rel)


def _loss_case(name: str, N, D, kind: str = "float", points: float = 1.0) -> Case:
    N64, D64 = (N.double(), D.double()) if kind == "float32" else (N, D)
    expected, mistakes = chinchilla_loss(N64, D64), _loss_mistakes(N64, D64)
    rel = 1e-5 if kind == "float32" else 1e-6
    array = isinstance(N, torch.Tensor)

    def check(result: dict) -> None:
        out = result["output"]
        got = out["value"]
        if got is None:
            raise Mismatch(f"chinchilla_loss returned a {out['type']}, expected a number")
        if array and out["type"] != "tensor":
            raise Mismatch("with tensors (or arrays) of N and D, return the loss of each pair, "
                           "elementwise: use operators that broadcast, not math.pow or float()")
        if array and tuple(got.shape) != tuple(expected.shape):
            raise Mismatch(f"for N of shape {tuple(N.shape)} and D of shape {tuple(D.shape)} "
                           f"the result should have shape {tuple(expected.shape)}, got "
                           f"{tuple(got.shape)}")
        if _same(got, expected, rel):
            return
        name_mistake(mistakes, lambda wrong: _same(got, wrong, rel))
        shown = f"{got:.6f}" if not array else "different values"
        want = f"{expected:.6f}" if not array else "E + A / N^alpha + B / D^beta elementwise"
        raise Mismatch(f"got {shown}, expected {want}")

    inputs = {"N": N, "D": D, "kind": kind}
    return Case(name, script_call(LOSS_SCRIPT, **inputs), check, points)


def chinchilla_loss_cases(gen: torch.Generator) -> list[Case]:
    u = lambda lo, hi: 10 ** (lo + (hi - lo) * float(torch.rand((), generator=gen)))
    logs_n = 6 + 6 * torch.rand(5, generator=gen, dtype=torch.float64)
    logs_d = 8 + 6 * torch.rand(5, generator=gen, dtype=torch.float64)
    grid_n = 10 ** (6 + 6 * torch.rand(3, 1, generator=gen, dtype=torch.float64))
    grid_d = 10 ** (8 + 6 * torch.rand(1, 4, generator=gen, dtype=torch.float64))
    return [
        _loss_case("Chinchilla: 70B parameters on 1.4T tokens", 70e9, 1.4e12, points=2),
        _loss_case("a random model and dataset size (floats)", u(6, 12), u(8, 14)),
        _loss_case("another random pair (floats)", u(6, 12), u(8, 14)),
        _loss_case("integer N and D", int(u(6, 9)), int(u(8, 11))),
        _loss_case("float64 tensors of N and D, elementwise", 10**logs_n, 10**logs_d,
                   kind="tensor", points=2),
        _loss_case("float32 tensors", (10**logs_n).float(), (10**logs_d).float(),
                   kind="float32"),
        _loss_case("a grid: N of shape (3, 1) against D of shape (1, 4) broadcasts to (3, 4)",
                   grid_n, grid_d, kind="tensor"),
        _loss_case("NumPy arrays of N and D", 10**logs_n, 10**logs_d, kind="numpy"),
        constants_case("chinchilla_loss", (u(6, 12), u(8, 14)), tuple(FIT), chinchilla_loss),
    ]


# ---------------------------------------------------------------- compute_optimal

OPTIMAL_SCRIPT = AS_NUMBER + """
_out = compute_optimal(C)
_pair = isinstance(_out, (tuple, list)) and len(_out) == 2
result = {"type": type(_out).__name__,
          "items": [_as_number(v)["value"] for v in _out] if _pair else None}
"""


def _optimal_mistakes(C: float) -> dict[str, tuple[float, float]]:
    """Each mistake's (N, D), mostly from the reference with changed arguments: N = G (C /
    6)^(beta / (alpha + beta)) with alpha and beta swapped, 3 C (so C / 2) or 6 C (so C)."""
    a, b = FIT["alpha"], FIT["beta"]
    spend = lambda n, flops=6: (n, C / (flops * n))  # an N and the D that spends C
    rule = math.sqrt(C / 120)
    N, D = compute_optimal(C)
    return {
        "that is the 20-tokens-per-parameter rule of thumb (D = 20 N), not the minimiser of "
        "this fit: minimise chinchilla_loss(N, C / (6 N)) over N": (rule, 20 * rule),
        "the exponents are swapped: N grows as C^(beta / (alpha + beta)) when D = C / (6 N)":
            spend(compute_optimal(C, alpha=b, beta=a)[0]),
        "training costs C = 6 N D FLOPs (2 forward, 4 backward per parameter and token), "
        "not 2 N D": spend(compute_optimal(3 * C)[0], flops=2),
        "the constant factor G = (alpha A / (beta B))^(1 / (alpha + beta)) is missing":
            spend((C / 6) ** (b / (a + b))),
        "return (N, D) in that order: parameters first, then tokens": (D, N),
        "D = C / (6 N): you left out the 6": (N, C / N),
        "N = G (C / 6)^(beta / (alpha + beta)): you used C instead of C / 6":
            spend(compute_optimal(6 * C)[0]),
    }


def _optimal_case(name: str, C: float, points: float = 1.0) -> Case:
    N, D = compute_optimal(C)
    mistakes = _optimal_mistakes(C)

    def check(result: dict) -> None:
        out = result["output"]
        items = out["items"]
        if items is None:
            raise Mismatch(f"compute_optimal should return a pair (N, D), got a {out['type']}")
        if None in items:
            raise Mismatch("N and D should be numbers (floats)")
        n, d = items
        near = lambda pair: math.isclose(n, pair[0], rel_tol=1e-3) and math.isclose(
            d, pair[1], rel_tol=1e-3)
        if near((N, D)):
            return
        name_mistake(mistakes, near)
        if not math.isfinite(n) or not math.isfinite(d) or n <= 0 or d <= 0:
            raise Mismatch(f"got N = {n}, D = {d}: both should be positive and finite")
        if not math.isclose(6 * n * d, C, rel_tol=1e-3):
            raise Mismatch(f"6 N D = {6 * n * d:.4g} but the budget is C = {C:.4g}: the pair "
                           "must spend the budget exactly (D = C / (6 N))")
        better = min(chinchilla_loss(n * f, C / (6 * n * f)) for f in (0.9, 1.1))
        hint = ("a model 10 % larger or smaller on the same budget reaches a lower loss"
                if better < chinchilla_loss(n, d) else "it is not the minimum within 0.1 %")
        raise Mismatch(f"got N = {n:.4g}, D = {d:.4g}; expected N = {N:.4g}, D = {D:.4g}: "
                       f"{hint}")

    return Case(name, script_call(OPTIMAL_SCRIPT, C=C), check, points)


def compute_optimal_cases(gen: torch.Generator) -> list[Case]:
    logs = (17 + 10 * torch.rand(4, generator=gen, dtype=torch.float64)).tolist()
    return [
        _optimal_case("Gopher's budget, 5.76e23 FLOPs", 5.76e23, points=2),
        _optimal_case("a small budget, 1e18 FLOPs", 1e18),
        _optimal_case("a frontier budget, 1e26 FLOPs", 1e26),
        *[_optimal_case(f"a random budget, {10**x:.3g} FLOPs", 10**x) for x in logs],
        _optimal_case("GPT-3's budget, 3.15e23 FLOPs", 3.15e23),
        constants_case("compute_optimal", (1e21,), ("A", "B", "alpha", "beta"),
                       compute_optimal),
    ]
