"""Week 1 graders: the causal mask, scaled dot-product attention and multi-head attention."""

from __future__ import annotations

import math

import torch
from torch import Tensor

from autograder.compare import Mismatch
from autograder.exercises.common import (
    expect_mask,
    function_call,
    function_case,
    future_batch,
    future_case,
    hidden_input,
    linear,
    module_case,
    randn,
    reference_run,
    script_call,
    state_case,
    tolerance,
    twin_case,
)
from autograder.grading import Case
from solutions import MultiHeadAttention, causal_mask, scaled_dot_product_attention

# ---------------------------------------------------------------- causal_mask


def _mask_mistakes(T: int) -> dict[str, Tensor]:
    ones = torch.ones(T, T, dtype=torch.bool)
    return {
        "your mask is inverted: True must mean 'may attend' (key j <= query i), not 'masked'":
            ~ones.tril(),
        "you kept the upper triangle: query i may attend to keys j <= i, the lower triangle "
        "(torch.tril)": ones.triu(),
        "the diagonal is missing: each token may attend to itself (j <= i, not j < i)":
            ones.tril(-1),
        "your mask also shows each query the next key (j <= i + 1): the diagonal is the "
        "last visible key (tril() with diagonal 0)": ones.tril(1),
        "your mask hides every key: each query must see the keys j <= i":
            torch.zeros(T, T, dtype=torch.bool),
        "your mask lets every query see every key: a causal mask hides the keys j > i":
            ones,
    }


def _mask_case(name: str, T: int, args=(), kwargs=None, points: float = 1.0) -> Case:
    def check(result: dict) -> None:
        expect_mask(result["output"], causal_mask(T), _mask_mistakes(T),
                    ", e.g. torch.ones(T, T, dtype=torch.bool).tril()")

    return Case(name, function_call("causal_mask", args=(T, *args), kwargs=kwargs), check,
                points)


MASK_ON_DEVICE = """
m = {symbol}({args}device="meta")
result = {{"device": str(getattr(m, "device", None)), "dtype": str(getattr(m, "dtype", None)),
          "shape": list(getattr(m, "shape", []))}}
"""


def device_case(symbol: str, T: int, args: str = "", points: float = 1.0) -> Case:
    """The mask is built on the device asked for: the meta device (shapes without memory), the
    one device besides the CPU that every machine has. Shared with week 5."""

    def check(result: dict) -> None:
        out = result["output"]
        if out["device"] != "meta":
            raise Mismatch(f"{symbol}({T}, {args}device='meta') returned a mask on "
                           f"{out['device']}: build it on the device given "
                           "(torch.ones(..., device=device)), so that it lives with the scores")
        if out["dtype"] != "torch.bool" or out["shape"] != [T, T]:
            raise Mismatch(f"on the meta device your mask has dtype {out['dtype']} and shape "
                           f"{tuple(out['shape'])}, expected torch.bool and {(T, T)}")

    return Case(f"device='meta' is honoured (T = {T})",
                script_call(MASK_ON_DEVICE.format(symbol=symbol, args=f"{T}, {args}")), check,
                points)


def causal_mask_cases(gen: torch.Generator) -> list[Case]:
    sizes = torch.randint(6, 40, (2,), generator=gen).tolist()
    return [
        _mask_case("T = 5: bool, (T, T), lower triangle with the diagonal", 5, points=3),
        _mask_case(f"T = {sizes[0]}", sizes[0], points=2),
        _mask_case("T = 1: a single token sees itself", 1),
        _mask_case(f"device='cpu' as a keyword (T = {sizes[1]})", sizes[1],
                   kwargs={"device": "cpu"}, points=2),
        _mask_case("device='cpu' as the second positional argument (T = 4)", 4, args=("cpu",)),
        _mask_case("T = 128", 128),
        device_case("causal_mask", 7),
    ]


# ---------------------------------------------------------------- scaled_dot_product_attention


def _attend(q, k, v, mask, scale, fill=float("-inf"), softmax_dim=-1, post=None,
            swap_qk=False):
    """One variant of attention in float64: the reference and the known mistakes.

    ``post="multiply"``: the mask multiplies the weights after the softmax instead of filling
    the scores; ``post="scale"``: the scale multiplies the weights instead of the scores;
    ``swap_qk``: the scores are ``k @ q^T`` (the transpose of ``q @ k^T``).
    """
    q, k, v = q.double(), k.double(), v.double()
    scores = k @ q.transpose(-2, -1) if swap_qk else q @ k.transpose(-2, -1)
    if post != "scale":
        scores = scores * scale
    if mask is not None and post != "multiply":
        scores = scores.masked_fill(~mask, fill)
    weights = torch.softmax(scores, dim=softmax_dim)
    if post == "multiply":
        weights = weights * mask
    if post == "scale":
        weights = weights * scale
    return weights @ v


def _sdpa_mistakes(q: Tensor, k: Tensor, v: Tensor, mask: Tensor | None) -> dict[str, Tensor]:
    d = q.shape[-1]
    right = 1 / math.sqrt(d)
    out = {
        "the scores are not scaled: divide q @ k^T by sqrt(head_dim) before the softmax":
            _attend(q, k, v, mask, 1.0),
        "you divided the scores by head_dim; divide by sqrt(head_dim)":
            _attend(q, k, v, mask, 1 / d),
        "you multiplied the scores by sqrt(head_dim); divide by it":
            _attend(q, k, v, mask, math.sqrt(d)),
        "the softmax is taken over the wrong axis: normalise over the keys (dim=-1), so each "
        "query's weights sum to 1": _attend(q, k, v, mask, right, softmax_dim=-2),
    }
    if q.shape[-2] == k.shape[-2]:
        out["your scores are transposed (k @ q^T): scores[i, j] = q_i . k_j, i.e. "
            "q @ k.transpose(-2, -1)"] = _attend(q, k, v, mask, right, swap_qk=True)
        if mask is not None:
            out["the mask is applied transposed: mask[i, j] is for query i and key j, so "
                "fill where ~mask, not ~mask.T"] = _attend(q, k, v, mask.transpose(-2, -1),
                                                           right)
    if mask is not None:
        out.update({
            "the mask is applied inverted: True means 'may attend', so fill -inf where the "
            "mask is False (scores.masked_fill(~mask, float('-inf')))":
                _attend(q, k, v, ~mask, right),
            "masked scores were set to 0 (or multiplied by the mask), and exp(0) still gets "
            "weight: fill them with float('-inf') before the softmax":
                _attend(q, k, v, mask, right, fill=0.0),
            "you zeroed the masked weights after the softmax, so the rows no longer sum to 1: "
            "fill the scores with -inf before the softmax instead":
                _attend(q, k, v, mask, right, post="multiply"),
            "the mask is ignored: hidden keys still receive weight":
                _attend(q, k, v, None, right),
        })
    out["scale the scores before the softmax, not the weights after it"] = _attend(
        q, k, v, mask, right, post="scale")
    return out


def _sdpa_reference(q, k, v, mask, grad_output=None):
    """Expected output (float64 maths, cast to the inputs' dtype) and gradients."""
    if grad_output is None:
        out = scaled_dot_product_attention(q.double(), k.double(), v.double(), mask)
        return out.to(q.dtype), None
    leaves = [t.clone().requires_grad_(True) for t in (q, k, v)]
    out = scaled_dot_product_attention(*leaves, mask)
    out.backward(grad_output)
    return out.detach(), {"inputs": [t.grad for t in leaves]}


def _visible_mask(gen, shape, T_k: int) -> Tensor:
    """A random bool mask of ``shape`` (last dim T_k) with at least one visible key per row."""
    mask = torch.rand(*shape, generator=gen) < 0.6
    first = torch.randint(0, T_k, shape[:-1], generator=gen)
    return mask | torch.nn.functional.one_hot(first, T_k).bool()


def _sdpa_case(gen, name, q_shape, T_k=None, d_v=None, mask="causal", dtype=torch.float32,
               grad=False, zero_qk=False, points=1.0) -> Case:
    *lead, T_q, d = q_shape
    T_k = T_q if T_k is None else T_k
    d_v = d if d_v is None else d_v
    q = torch.zeros(q_shape) if zero_qk else randn(gen, *q_shape)
    k = torch.zeros(*lead, T_k, d) if zero_qk else randn(gen, *lead, T_k, d)
    v = randn(gen, *lead, T_k, d_v)
    if mask == "causal":
        m = causal_mask(T_q)
    elif mask is None:
        m = None
    else:  # a shape to broadcast
        m = _visible_mask(gen, mask, T_k)
    q, k, v = (t.to(dtype) for t in (q, k, v))
    inputs = [q, k, v] + ([m] if m is not None else [])
    grad_output = randn(gen, *lead, T_q, d_v, dtype=dtype) if grad else None
    expected, grads = _sdpa_reference(q, k, v, m, grad_output)
    return function_case(name, "scaled_dot_product_attention", inputs, expected, grads,
                         grad_output, _sdpa_mistakes(q, k, v, m), tolerance(dtype), points,
                         grad_names="qkv")


def _sdpa_hidden_keys_case(gen) -> Case:
    """A property: keys and values the mask hides have no influence on the output."""
    B, H, T, D = 1, 2, 7, 8
    q, k, v = (randn(gen, B, H, T, D) for _ in range(3))
    m = causal_mask(T)
    cut = 3  # queries 0..2 must ignore keys 3..6
    k2, v2 = k.clone(), v.clone()
    k2[..., cut:, :] = 50 * randn(gen, B, H, T - cut, D)
    v2[..., cut:, :] = 50 * randn(gen, B, H, T - cut, D)
    q2, k2, v2 = torch.cat([q, q]), torch.cat([k, k2]), torch.cat([v, v2])
    expected, _ = _sdpa_reference(q, k, v, m)
    inputs = [q2, k2, v2, m]

    def prop(y) -> None:
        if not torch.allclose(y[0, :, :cut], y[1, :, :cut], rtol=1e-4, atol=1e-5):
            raise Mismatch(f"changing only keys and values {cut}..{T - 1}, which the mask "
                           f"hides from queries 0..{cut - 1}, changed those queries' outputs")

    return twin_case("property: keys hidden by the mask have no influence",
                     function_call("scaled_dot_product_attention", inputs), q2.shape, inputs,
                     expected, _sdpa_mistakes(q, k, v, m), "the hidden keys had no influence",
                     prop)


def sdpa_cases(gen: torch.Generator) -> list[Case]:
    return [
        _sdpa_case(gen, "float32, (B, H, T, D) with a (T, T) causal mask", (2, 3, 6, 8),
                   points=2),
        _sdpa_case(gen, "no mask: every query sees every key", (2, 2, 5, 16), mask=None),
        _sdpa_case(gen, "T_q != T_k and D_v != D, with a (T_q, T_k) mask", (2, 2, 3, 8), T_k=7,
                   d_v=5, mask=(3, 7)),
        _sdpa_case(gen, "a (B, 1, 1, T) padding mask broadcast over heads and queries",
                   (2, 3, 5, 8), mask=(2, 1, 1, 5)),
        _sdpa_case(gen, "3-D input (B, T, D), causal", (3, 6, 4)),
        _sdpa_case(gen, "gradients with respect to q, k and v", (2, 2, 5, 8), grad=True,
                   points=2),
        _sdpa_case(gen, "bfloat16 in, bfloat16 out", (2, 2, 6, 16), dtype=torch.bfloat16),
        _sdpa_case(gen, "float64 in, float64 out", (1, 2, 6, 8), dtype=torch.float64),
        _sdpa_case(gen, "all-zero q and k: uniform weights over the visible keys",
                   (1, 2, 6, 4), zero_qk=True),
        _sdpa_hidden_keys_case(gen),
    ]


# ---------------------------------------------------------------- MultiHeadAttention

PROJ = ("q_proj", "k_proj", "v_proj", "o_proj")


def _mha_weights(gen, dim: int) -> dict[str, Tensor]:
    return {f"{p}.weight": linear(gen, dim, dim) for p in PROJ}


def _mha_variant(x: Tensor, w: dict[str, Tensor], n_heads: int, causal=True, mask_fn=None,
                 scale=None, split="transpose", merge="transpose", o_proj=True,
                 swap=None) -> Tensor:
    """Multi-head attention in float64 with one thing changed: the known mistakes. ``swap``:
    two projections used in each other's place, e.g. ``("q_proj", "k_proj")``."""
    x = x.double()
    B, T, dim = x.shape
    D = dim // n_heads
    proj = {p: x @ w[f"{p}.weight"].double().T for p in PROJ[:3]}
    if swap:
        a, b = swap
        proj[a], proj[b] = proj[b], proj[a]

    def heads(t: Tensor) -> Tensor:
        if split == "view":  # (B, T, dim) viewed as (B, H, T, D) without a transpose
            return t.reshape(B, n_heads, T, D)
        return t.reshape(B, T, n_heads, D).transpose(1, 2)

    q, k, v = (heads(proj[p]) for p in PROJ[:3])
    mask = (mask_fn or causal_mask)(T) if causal else None
    scale = 1 / math.sqrt(D) if scale is None else scale
    y = _attend(q, k, v, mask, scale)
    y = y.reshape(B, T, dim) if merge == "view" else y.transpose(1, 2).reshape(B, T, dim)
    return y @ w["o_proj.weight"].double().T if o_proj else y


def _mha_mistakes(x: Tensor, w: dict[str, Tensor], n_heads: int) -> dict[str, Tensor]:
    dim = x.shape[-1]
    return {
        "your attention is not causal: apply causal_mask(T) so a token cannot attend to later "
        "tokens": _mha_variant(x, w, n_heads, causal=False),
        "the causal mask is inverted (True must mean 'may attend')":
            _mha_variant(x, w, n_heads, mask_fn=lambda t: ~causal_mask(t)),
        "your mask keeps the upper triangle: tokens attend to later tokens instead of earlier "
        "ones": _mha_variant(x, w, n_heads, mask_fn=lambda t: torch.ones(t, t).bool().triu()),
        "you merged the heads with a reshape of (B, H, T, D): transpose(1, 2) back to "
        "(B, T, H, D) before reshaping to (B, T, dim)": _mha_variant(x, w, n_heads, merge="view"),
        "you split the heads by viewing (B, T, dim) as (B, H, T, D): view as (B, T, H, D) and "
        "then transpose(1, 2)": _mha_variant(x, w, n_heads, split="view", merge="view"),
        "you split the heads by viewing (B, T, dim) as (B, H, T, D) (the merge is right): "
        "view as (B, T, H, D) and then transpose(1, 2)": _mha_variant(x, w, n_heads,
                                                                      split="view"),
        "q_proj and k_proj are swapped: queries come from q_proj, keys from k_proj":
            _mha_variant(x, w, n_heads, swap=("q_proj", "k_proj")),
        "k_proj and v_proj are swapped: keys come from k_proj, values from v_proj":
            _mha_variant(x, w, n_heads, swap=("k_proj", "v_proj")),
        "o_proj is never applied: the concatenated heads go through o_proj":
            _mha_variant(x, w, n_heads, o_proj=False),
        "the scores are not scaled: divide by sqrt(head_dim)":
            _mha_variant(x, w, n_heads, scale=1.0),
        "you scaled by 1/sqrt(dim); each head scales by 1/sqrt(head_dim), head_dim = dim // "
        "n_heads": _mha_variant(x, w, n_heads, scale=dim**-0.5),
        "you scaled by 1/head_dim; scale by 1/sqrt(head_dim)":
            _mha_variant(x, w, n_heads, scale=1 / (dim // n_heads)),
        "you computed one head of width dim: split into n_heads heads of head_dim = "
        "dim // n_heads": _mha_variant(x, w, 1),
    }


def _mha_case(gen, name, shape, n_heads, dtype=torch.float32, grad=False, zero=False,
              points=1.0) -> Case:
    dim = shape[-1]
    weights = _mha_weights(gen, dim)
    x, grad_output = hidden_input(gen, shape, dtype, zero, grad=grad)
    expected, grads = reference_run(MultiHeadAttention(dim, n_heads), weights, x, grad_output,
                                    float64=True)
    return module_case(name, "MultiHeadAttention", (dim, n_heads), None, weights, x, expected,
                       grads, grad_output, _mha_mistakes(x, weights, n_heads), tolerance(dtype),
                       points)


def _mha_future_case(gen) -> Case:
    """A property: perturbing tokens t >= cut leaves every output before cut unchanged."""
    dim, n_heads, T = 32, 4, 9
    cut = int(torch.randint(2, T - 1, (1,), generator=gen))
    weights = _mha_weights(gen, dim)
    batch = future_batch(gen, T, dim, cut)
    expected, _ = reference_run(MultiHeadAttention(dim, n_heads), weights, batch[:1])
    return future_case("property: no output depends on a future token", "MultiHeadAttention",
                       (dim, n_heads), None, weights, batch, cut, expected,
                       _mha_mistakes(batch[:1], weights, n_heads), "apply the causal mask")


def mha_cases(gen: torch.Generator) -> list[Case]:
    return [
        state_case("parameters: q_proj, k_proj, v_proj, o_proj, each (dim, dim), no biases",
                   "MultiHeadAttention", (24, 4), {f"{p}.weight": (24, 24) for p in PROJ},
                   x=randn(gen, 2, 3, 24)),
        _mha_case(gen, "float32, (B, T, dim) = (2, 6, 32), 4 heads", (2, 6, 32), 4, points=3),
        _mha_case(gen, "one head (n_heads = 1)", (1, 5, 16), 1),
        _mha_case(gen, "six heads of width 4", (2, 7, 24), 6),
        _mha_case(gen, "a single token (T = 1)", (3, 1, 16), 2),
        _mha_case(gen, "gradients: input and all four projections", (2, 5, 16), 2, grad=True,
                  points=2),
        _mha_case(gen, "bfloat16 in, bfloat16 out", (2, 6, 32), 4, dtype=torch.bfloat16),
        _mha_case(gen, "float64 in, float64 out", (1, 4, 16), 4, dtype=torch.float64),
        _mha_future_case(gen),
    ]
