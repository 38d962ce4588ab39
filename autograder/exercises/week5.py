"""Week 5 graders: repeat_kv, sliding_window_mask, Attention (GQA, RoPE, window), kv_cache_bytes."""

from __future__ import annotations

import math

import torch
from torch import Tensor

from autograder.compare import Mismatch, close, describe
from autograder.exercises.common import (
    expect,
    expect_answer,
    expect_inputs_untouched,
    expect_mask,
    function_call,
    function_case,
    future_batch,
    future_case,
    hidden_input,
    linear,
    module_call,
    module_case,
    randint,
    randn,
    reference_run,
    run_reference,
    same_as,
    state_case,
    tolerance,
)
from autograder.exercises.week1 import device_case
from autograder.grading import Case
from solutions import Attention, apply_rope, kv_cache_bytes, repeat_kv, sliding_window_mask
from solutions.positions import ROPE_THETA, rope_interleaved

# ---------------------------------------------------------------- repeat_kv

TILED = ("your kv heads are tiled (what x.repeat(1, n_rep, 1, 1) gives), so query head h "
         "reads kv head h % n_kv_heads; it must read kv head h // n_rep: repeat each head "
         "n_rep times in place (torch.repeat_interleave(x, n_rep, dim=1), or expand a new "
         "axis right after the head axis)")


def _repeat_kv_mistakes(x: Tensor, n_rep: int) -> dict[str, Tensor]:
    B, H, T, D = x.shape
    return {
        TILED: x.repeat(1, n_rep, 1, 1),
        "the copies were put on an axis after the sequence axis, which mixes heads and "
        "positions: insert the new axis right after the head axis, x[:, :, None], then expand "
        "and reshape": x[:, :, :, None].expand(B, H, T, n_rep, D).reshape(B, H * n_rep, T, D),
    }


def _check_repeat_shape(actual, x: Tensor, n_rep: int) -> None:
    B, H, T, D = x.shape
    if type(actual) is not Tensor or n_rep == 1:
        return
    shape = tuple(actual.shape)
    hints = {
        (B, H, T * n_rep, D): "you repeated along the sequence axis (dim 2); repeat the heads, "
                              "dim 1: (B, H_kv, T, D) -> (B, H_kv * n_rep, T, D)",
        (B, H, T, D * n_rep): "you repeated along the last axis (head_dim); repeat the heads, "
                              "dim 1",
        (B * n_rep, H, T, D): "you repeated along the batch axis (dim 0); repeat the heads, dim 1",
    }
    if shape != (B, H * n_rep, T, D) and shape in hints:
        raise Mismatch(hints[shape])
    if len(shape) == 5:
        raise Mismatch(f"your result has 5 dimensions {shape}: merge the new axis into the head "
                       "axis, reshape to (B, H_kv * n_rep, T, D)")


def _repeat_kv_case(gen, name, shape, n_rep, dtype=torch.float32, grad=False,
                    transposed=False, points=1.0) -> Case:
    B, H, T, D = shape
    if transposed:  # (B, T, H, D) seen as (B, H, T, D): what k.view(...).transpose(1, 2) gives
        x = randn(gen, B, T, H, D, dtype=dtype).transpose(1, 2)
    else:
        x = randn(gen, *shape, dtype=dtype)
    grad_output = randn(gen, B, H * n_rep, T, D, dtype=dtype) if grad else None
    expected, grads = run_reference(lambda t: repeat_kv(t, n_rep), [x], grad_output)
    mistakes = _repeat_kv_mistakes(x, n_rep)

    def check_output(result: dict) -> None:
        _check_repeat_shape(result["output"], x, n_rep)
        expect(result["output"], expected, mistakes=mistakes)

    return function_case(name, "repeat_kv", [x], expected, grads or None, grad_output,
                         points=points, check_output=check_output, args=[n_rep])


def repeat_kv_cases(gen: torch.Generator) -> list[Case]:
    return [
        _repeat_kv_case(gen, "(2, 3, 5, 4), n_rep = 4: query head h reads kv head h // n_rep",
                        (2, 3, 5, 4), 4, points=3),
        _repeat_kv_case(gen, "4 kv heads, n_rep = 2", (1, 4, 7, 8), 2),
        _repeat_kv_case(gen, "n_rep = 1 returns the input unchanged", (2, 4, 3, 8), 1),
        _repeat_kv_case(gen, "MQA: one kv head repeated 8 times", (2, 1, 6, 16), 8),
        _repeat_kv_case(gen, "a non-contiguous input (keys after .transpose(1, 2))",
                        (2, 2, 6, 8), 3, transposed=True),
        _repeat_kv_case(gen, "bfloat16 in, bfloat16 out", (1, 2, 4, 8), 4, dtype=torch.bfloat16),
        _repeat_kv_case(gen, "gradients reach each kv head, summed over its group",
                        (2, 2, 5, 4), 3, grad=True, points=2),
        _repeat_kv_case(gen, "degenerate sizes: T = 1, head_dim = 1", (3, 2, 1, 1), 2),
    ]


# ---------------------------------------------------------------- sliding_window_mask

OFF_BY_ONE = ("your window holds window + 1 keys (0 <= i - j <= window: the convention of "
              "Mistral's original reference code); the course follows transformers' Mistral: "
              "key j is visible iff 0 <= i - j < window, the query and the window - 1 keys "
              "before it")
WINDOW_IGNORED = ("the window is ignored: keys window or more positions back (i - j >= window) "
                  "must be hidden")
NOT_CAUSAL_WINDOW = ("your mask lets queries see future keys: the window comes on top of the "
                     "causal mask, key j is visible iff 0 <= i - j < window")
SHORT_BY_ONE = ("your window holds only window - 1 keys: key j is visible iff 0 <= i - j < "
                "window (the query itself and the window - 1 keys before it)")


def _band(T: int, lo: float, hi: float) -> Tensor:
    """``lo <= i - j < hi`` as a (T, T) bool tensor."""
    d = torch.arange(T)[:, None] - torch.arange(T)[None, :]
    return (d >= lo) & (d < hi)


def _mask_mistakes(T: int, window: int | None) -> dict[str, Tensor]:
    w = math.inf if window is None else window
    expected = sliding_window_mask(T, window)
    mistakes = {
        "your mask is inverted: True must mean 'may attend'": ~expected,
        "your mask is transposed (a band above the diagonal): query i sees keys j <= i, the "
        "lower triangle": expected.T.clone(),
        "the diagonal is missing: a query always sees itself (i - j = 0)": _band(T, 1, w),
        "your mask also shows each query the next key (i - j = -1): key j is visible iff "
        "0 <= i - j": _band(T, -1, w),
    }
    if window is None:
        mistakes["window=None must give the full causal mask, key j visible iff j <= i"] = \
            torch.ones(T, T, dtype=torch.bool)
        for w in range(1, T):  # a default window instead of None
            mistakes[f"window=None (the default) must give the full causal mask; yours cuts a "
                     f"window of {w}"] = _band(T, 0, w)
        return mistakes
    d = torch.arange(T)[:, None] - torch.arange(T)[None, :]
    mistakes |= {
        OFF_BY_ONE: _band(T, 0, w + 1),
        SHORT_BY_ONE: _band(T, 0, w - 1),
        WINDOW_IGNORED: _band(T, 0, math.inf),
        NOT_CAUSAL_WINDOW: _band(T, -math.inf, w),
        "your window looks both ways (|i - j| < window): the mask must stay causal, "
        "0 <= i - j < window": d.abs() < w,
    }
    return mistakes


def _mask_case(name: str, T: int, window: int | None, args=None, kwargs=None,
               points: float = 1.0) -> Case:
    args = (T, window) if args is None else args

    def check(result: dict) -> None:
        expect_mask(result["output"], sliding_window_mask(T, window), _mask_mistakes(T, window))

    return Case(name, function_call("sliding_window_mask", args=args, kwargs=kwargs), check,
                points)


def sliding_window_mask_cases(gen: torch.Generator) -> list[Case]:
    T1, w1, T2 = randint(gen, 12, 40), randint(gen, 2, 8), randint(gen, 6, 20)
    return [
        _mask_case("T = 5, window = 3: bool, 0 <= i - j < window", 5, 3, points=3),
        _mask_case(f"T = {T1}, window = {w1}", T1, w1, points=2),
        _mask_case("window = None (the default) is the causal mask", 7, None, args=(7,)),
        _mask_case("window=None given as a keyword is the causal mask", T2, None, args=(T2,),
                   kwargs={"window": None}),
        _mask_case("window = 1: each query sees only itself (the diagonal)", 6, 1),
        _mask_case("window = T: nothing is cut, the causal mask", 6, 6),
        _mask_case("window > T: the causal mask", 5, 50),
        _mask_case("device='cpu' as a keyword (T = 9, window = 4)", 9, 4,
                   kwargs={"device": "cpu"}),
        _mask_case("T = 1", 1, 3),
        _mask_case("T = 300, window = 64", 300, 64),
        device_case("sliding_window_mask", 9, "4, "),
    ]


# ---------------------------------------------------------------- Attention


def _attn_weights(gen, dim: int, n_heads: int, n_kv: int) -> dict[str, Tensor]:
    D = dim // n_heads
    return {"q_proj.weight": linear(gen, n_heads * D, dim),
            "k_proj.weight": linear(gen, n_kv * D, dim),
            "v_proj.weight": linear(gen, n_kv * D, dim),
            "o_proj.weight": linear(gen, dim, n_heads * D)}


def _attn_variant(x: Tensor, w: dict[str, Tensor], n_heads: int, n_kv: int,
                  window: int | None, theta: float = ROPE_THETA, rope: str = "qk",
                  kv_map: str = "div", allowed: Tensor | None = None,
                  scale: float | None = None) -> Tensor:
    """One variant of GQA attention in float64: the reference and the known mistakes.

    ``rope``: which of q, k, v are rotated ("qk" is right; "wide" rotates the full projections
    before the heads are split; "interleaved" pairs (2i, 2i+1)); ``kv_map``: "div" (h // n_rep,
    right) or "mod" (h % n_kv, tiled); ``allowed``: a wrong (T, T) mask instead of the window's.
    """
    w = {k: t.to(x.dtype).double() for k, t in w.items()}  # the weights as the learner has them
    x = x.double()
    B, T, dim = x.shape
    D = w["q_proj.weight"].shape[0] // n_heads
    pos = torch.arange(T)
    q, k, v = (x @ w[f"{p}_proj.weight"].T for p in "qkv")  # (B, T, H*D), (B, T, H_kv*D)
    if rope == "wide":
        q, k = apply_rope(q, pos, theta), apply_rope(k, pos, theta)
    q, k, v = (t.view(B, T, -1, D).transpose(1, 2) for t in (q, k, v))  # (B, H or H_kv, T, D)
    rot = rope_interleaved if rope == "interleaved" else apply_rope
    if rope in ("qk", "q", "qkv", "interleaved"):
        q = rot(q, pos, theta)
    if rope in ("qk", "k", "qkv", "interleaved"):
        k = rot(k, pos, theta)
    if rope == "qkv":
        v = rot(v, pos, theta)
    heads = torch.arange(n_heads)
    idx = heads // (n_heads // n_kv) if kv_map == "div" else heads % n_kv
    k, v = k[:, idx], v[:, idx]
    allowed = sliding_window_mask(T, window) if allowed is None else allowed
    scores = q @ k.transpose(-2, -1) * (D**-0.5 if scale is None else scale)
    y = scores.masked_fill(~allowed, float("-inf")).softmax(-1) @ v  # (B, H, T, D)
    return y.transpose(1, 2).reshape(B, T, n_heads * D) @ w["o_proj.weight"].T


def _attn_mistakes(x, w, n_heads, n_kv, window, theta) -> dict[str, Tensor]:
    T, dim = x.shape[1], x.shape[2]
    v = lambda **kw: _attn_variant(x, w, n_heads, n_kv, window, **{"theta": theta, **kw})
    mistakes = {
        "no RoPE: rotate q and k with apply_rope(..., positions=arange(T), rope_theta) before "
        "the scores, so attention knows where tokens are": v(rope="none"),
        "RoPE is applied to q only: rotate the keys too, so that q . k depends on the offset "
        "between the two positions": v(rope="q"),
        "RoPE is applied to k only: rotate the queries too": v(rope="k"),
        "RoPE is also applied to v: rotate only q and k (values carry content, not position)":
            v(rope="qkv"),
        "you rotated interleaved pairs (2i, 2i+1); the course pairs dimension p with "
        "p + head_dim/2 (rotate_half), as transformers' Llama does": v(rope="interleaved"),
        "RoPE must be applied per head, on (B, H, T, head_dim) after splitting the heads; you "
        "rotated the whole projection": v(rope="wide"),
        "wrong kv head for a query head: query head h must use kv head h // n_rep "
        "(repeat_interleave), not h % n_kv_heads (what x.repeat(1, n_rep, 1, 1) tiles)":
            v(kv_map="mod"),
        "your attention is not causal: a token must not attend to later tokens (mask j > i)":
            v(allowed=torch.ones(T, T, dtype=torch.bool)),
        "the scores are not scaled: divide by sqrt(head_dim)": v(scale=1.0),
        "you scaled by 1/sqrt(dim); each head scales by 1/sqrt(head_dim)": v(scale=dim**-0.5),
    }
    if theta != ROPE_THETA:
        mistakes["use the rope_theta given to the constructor, not 10000"] = v(theta=ROPE_THETA)
    else:  # built without rope_theta: the default is graded
        for wrong in (500000.0, 1e6):
            mistakes[f"Attention(...) must default to rope_theta={ROPE_THETA}; yours behaves "
                     f"like rope_theta={wrong:g}"] = v(theta=wrong)
    if window is not None:  # the window's mistakes, as sliding_window_mask's grader has them
        masks = _mask_mistakes(T, window)
        mistakes |= {message: v(allowed=masks[message]) for message in (
            OFF_BY_ONE, NOT_CAUSAL_WINDOW, SHORT_BY_ONE, WINDOW_IGNORED)}
    return mistakes


def _attn_kwargs(n_kv, window, theta) -> dict:
    kwargs = {"n_kv_heads": n_kv, "window": window, "rope_theta": theta}
    return {k: v for k, v in kwargs.items() if v is not None and v != ROPE_THETA}


def _attn_case(gen, name, shape, n_heads, n_kv=None, window=None, theta=ROPE_THETA,
               dtype=torch.float32, grad=False, zero=False, points=1.0) -> Case:
    B, T, dim = shape
    kv = n_kv or n_heads
    weights = _attn_weights(gen, dim, n_heads, kv)
    x, grad_output = hidden_input(gen, shape, dtype, zero, grad=grad)
    kwargs = _attn_kwargs(n_kv, window, theta)
    expected, grads = reference_run(Attention(dim, n_heads, **kwargs), weights, x, grad_output,
                                    float64=True)
    return module_case(name, "Attention", (dim, n_heads), kwargs, weights, x, expected, grads,
                       grad_output, _attn_mistakes(x, weights, n_heads, kv, window, theta),
                       tolerance(dtype), points)


def _attn_state_case(gen, name, dim, n_heads, n_kv) -> Case:
    D, kv = dim // n_heads, n_kv or n_heads
    shapes = {"q_proj.weight": (n_heads * D, dim), "k_proj.weight": (kv * D, dim),
              "v_proj.weight": (kv * D, dim), "o_proj.weight": (dim, n_heads * D)}
    return state_case(name, "Attention", (dim, n_heads), shapes, _attn_kwargs(n_kv, None, None),
                      x=randn(gen, 2, 3, dim))


def _attn_future_case(gen) -> Case:
    """A property: changing tokens cut.. leaves every output before cut unchanged."""
    dim, n_heads, n_kv, window, T = 32, 4, 2, 4, 11
    cut = randint(gen, 3, T - 1)
    weights = _attn_weights(gen, dim, n_heads, n_kv)
    batch = future_batch(gen, T, dim, cut)
    kwargs = {"n_kv_heads": n_kv, "window": window}
    expected, _ = reference_run(Attention(dim, n_heads, **kwargs), weights, batch)
    return future_case("property: no output depends on a future token (GQA, window 4)",
                       "Attention", (dim, n_heads), kwargs, weights, batch, cut, expected,
                       _attn_mistakes(batch, weights, n_heads, n_kv, window, ROPE_THETA),
                       "the window comes on top of the causal mask")


def _attn_equals_case(gen, name, shape, n_heads, kwargs, built_as: dict, message: str,
                      points=1.0) -> Case:
    """A property: the module built with ``kwargs`` equals the reference built with
    ``built_as`` (e.g. window >= T and no window), on the same weights."""
    B, T, dim = shape
    n_kv = kwargs.get("n_kv_heads") or n_heads
    weights = _attn_weights(gen, dim, n_heads, n_kv)
    x = randn(gen, *shape)
    expected, _ = reference_run(Attention(dim, n_heads, **built_as), weights, x)
    mistakes = _attn_mistakes(x, weights, n_heads, n_kv, kwargs.get("window"), ROPE_THETA)

    def check(result: dict) -> None:
        y = result["output"]
        if type(y) is Tensor and y.shape == expected.shape and torch.isfinite(y).all() \
                and not close(y, expected) and not any(
                    same_as(y, wrong) for wrong in mistakes.values()):
            raise Mismatch(message)
        expect(y, expected, mistakes=mistakes)
        expect_inputs_untouched(result, [x])

    call = module_call("Attention", (dim, n_heads), kwargs, weights, [x])
    return Case(name, call, check, points)


def attention_cases(gen: torch.Generator) -> list[Case]:
    return [
        _attn_state_case(gen, "parameters, GQA: q_proj (H*D, dim), k_proj and v_proj "
                         "(H_kv*D, dim), o_proj (dim, H*D), no biases", 32, 8, 2),
        _attn_state_case(gen, "parameters, MHA (n_kv_heads=None): four (dim, dim) "
                         "projections", 24, 4, None),
        _attn_state_case(gen, "parameters when n_heads does not divide dim: head_dim = "
                         "dim // n_heads, q_proj (H*D, dim), o_proj (dim, H*D)", 34, 4, 2),
        _attn_case(gen, "defaults: MHA (n_kv_heads=None), no window, rope_theta 10000, "
                   "(2, 40, 32), 4 heads", (2, 40, 32), 4, points=2),
        _attn_case(gen, "GQA: 8 query heads share 2 kv heads", (2, 9, 64), 8, 2, points=2),
        _attn_case(gen, "MQA: n_kv_heads = 1", (1, 8, 32), 4, 1),
        _attn_case(gen, "sliding window 3 (T = 10), GQA 4/2", (2, 10, 32), 4, 2, window=3,
                   points=2),
        _attn_case(gen, "window 1: each token attends to itself only", (1, 6, 16), 2, 1,
                   window=1),
        _attn_case(gen, "T much longer than the window (T = 40, window 8)", (1, 40, 32), 4, 2,
                   window=8),
        _attn_case(gen, "rope_theta = 500000 is used", (1, 12, 32), 2, 1, theta=500000.0),
        _attn_case(gen, "a single token (T = 1)", (3, 1, 16), 2, 1, window=2),
        _attn_case(gen, "gradients: input and the four projections (GQA, window 4)",
                   (2, 9, 32), 4, 2, window=4, grad=True, points=2),
        _attn_case(gen, "bfloat16 in, bfloat16 out (GQA, window 5)", (2, 12, 64), 8, 2,
                   window=5, dtype=torch.bfloat16),
        _attn_case(gen, "float64 in, float64 out", (1, 7, 16), 4, 2, window=3,
                   dtype=torch.float64),
        _attn_case(gen, "all-zero input gives zeros, not NaN", (1, 5, 16), 2, 1, window=2,
                   zero=True),
        _attn_future_case(gen),
        _attn_equals_case(gen, "property: a window >= T cuts nothing (equals no window)",
                          (2, 8, 32), 4, {"n_kv_heads": 2, "window": 11}, {"n_kv_heads": 2},
                          "with window >= T nothing is cut, so your output should equal full "
                          "causal attention; it does not"),
        _attn_equals_case(gen, "property: n_kv_heads == n_heads is ordinary MHA", (2, 6, 32),
                          4, {"n_kv_heads": 4}, {},
                          "with n_kv_heads == n_heads every query head has its own kv head: "
                          "your output should equal MHA (n_kv_heads=None); it does not"),
    ]


# ---------------------------------------------------------------- kv_cache_bytes


def _kv_mistakes(L, H_kv, D, T, B=1, b=2, window=None, n_heads=None) -> dict[str, int]:
    tokens = T if window is None else min(T, window)
    right = kv_cache_bytes(L, H_kv, D, T, B, b, window=window)
    m = {}
    if n_heads is not None:  # a published model: its number of query heads is known
        m[f"this model has {n_heads} query heads but only {H_kv} key/value heads: the cache "
          "holds the kv heads only, so multiply by n_kv_heads, not n_heads"] = \
            right // H_kv * n_heads
    if window is not None:
        if T > window:
            m["the window is ignored: with a sliding window the cache keeps only the last "
              "window tokens, min(seq_len, window)"] = 2 * L * H_kv * D * T * B * b
        else:
            m["with fewer tokens than the window, the cache holds only seq_len tokens: "
              "min(seq_len, window)"] = 2 * L * H_kv * D * window * B * b
    if b != 2:
        m["use bytes_per_elem (2 for fp16/bf16, 4 for fp32, 1 for an 8-bit cache), not a "
          "constant 2"] = 2 * L * H_kv * D * tokens * B * 2
    m |= {
        "the cache holds keys AND values: multiply by 2": right // 2,
        "the factor 2 (keys and values) is counted twice": right * 2,
        "every layer caches its own keys and values: multiply by n_layers": right // L,
        "multiply by n_kv_heads: each key/value head caches a head_dim vector per token":
            right // H_kv,
        "multiply by head_dim: each kv head caches a vector of head_dim numbers per token":
            right // D,
        "each sequence of the batch has its own cache: multiply by batch_size": right // B,
        "you counted numbers, not bytes: multiply by bytes_per_elem": right // b,
        "that is bits, not bytes: do not multiply by 8": right * 8,
    }
    return {k: v for k, v in m.items() if v != right}


def _kv_case(name, args=(), kwargs=None, points=1.0, n_heads=None) -> Case:
    kwargs = kwargs or {}
    names = ("n_layers", "n_kv_heads", "head_dim", "seq_len", "batch_size", "bytes_per_elem")
    full = dict(zip(names, args, strict=False)) | kwargs
    expected = kv_cache_bytes(**full)
    mistakes = _kv_mistakes(full["n_layers"], full["n_kv_heads"], full["head_dim"],
                            full["seq_len"], full.get("batch_size", 1),
                            full.get("bytes_per_elem", 2), full.get("window"), n_heads)

    def check(result: dict) -> None:
        got = result["output"]
        if isinstance(got, Tensor):
            raise Mismatch("return a Python int, not a tensor (plain integer arithmetic)")
        if isinstance(got, float) and got == expected:
            raise Mismatch("return an int (a number of bytes), not a float: use integer "
                           "arithmetic (*, //), no true division")
        if isinstance(got, bool) or not isinstance(got, int):
            raise Mismatch(f"kv_cache_bytes should return an int, got {describe(got)}")
        expect_answer(got, expected, mistakes, f"got {got:,} bytes, expected {expected:,}")

    call = function_call("kv_cache_bytes", args=args, kwargs=kwargs)
    return Case(name, call, check, points)


def kv_cache_bytes_cases(gen: torch.Generator) -> list[Case]:
    r = lambda lo, hi: randint(gen, lo, hi)
    L, H_kv, D, T = r(2, 40), r(1, 9), 2 ** r(4, 8), r(100, 5000)
    batch = r(2, 9)
    return [
        _kv_case("Llama-2 7B, one token at fp16 (by keyword): 524,288 bytes",
                 kwargs={"n_layers": 32, "n_kv_heads": 32, "head_dim": 128, "seq_len": 1},
                 points=2, n_heads=32),
        _kv_case("Llama-2 70B, 8 kv heads, one token (by keyword): 327,680 bytes",
                 kwargs={"n_layers": 80, "n_kv_heads": 8, "head_dim": 128, "seq_len": 1},
                 n_heads=64),
        _kv_case("Mistral 7B, 8 kv heads, one token: 131,072 bytes", (32, 8, 128, 1), n_heads=32),
        _kv_case("Llama-2 7B at its full 4096-token context: 2 GiB", (32, 32, 128, 4096)),
        _kv_case(f"{L} layers, {H_kv} kv heads of {D}, {T} tokens", (L, H_kv, D, T)),
        _kv_case(f"a batch of {batch} sequences", (L, H_kv, D, T, batch)),
        _kv_case("an fp32 cache: bytes_per_elem=4", (24, 4, 64, 1000),
                 {"batch_size": 3, "bytes_per_elem": 4}),
        _kv_case("an 8-bit cache: bytes_per_elem=1", (32, 8, 128, 2048, 2, 1)),
        _kv_case("Mistral 7B at 32768 tokens with its 4096 window: the cache stops growing",
                 (32, 8, 128, 32768), {"window": 4096}, n_heads=32),
        _kv_case("a window longer than the context: seq_len tokens are cached",
                 (32, 8, 128, 1000), {"window": 4096, "batch_size": 2}),
        _kv_case("MQA: a single kv head", (L, 1, D, T)),
        _kv_case("no window by default: 32 layers, 8 kv heads, 100,000 tokens",
                 (32, 8, 128, 100_000)),
    ]
