"""Week 4 graders: apply_rope (rotary position embedding), alibi_bias, and reading the
position experiment (extrapolation_limit).

RoPE outputs are compared with a float64 computation of the same rotation, within a tolerance
that grows with the largest angle of each row (its position): transformers computes the angles
in float32, so a correct float32 implementation and a correct float64 one differ by about
``1e-7 * position`` of the values, and both must get full marks. Known mistakes (the
interleaved pairing, the wrong rotation direction, the exponent's sign, ignored positions,
...) are computed here on the same inputs and named in the feedback.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from autograder.compare import Mismatch, describe
from autograder.exercises.common import (
    expect_answer,
    expect_inputs_untouched,
    function_call,
    function_case,
    hidden_input,
    known_mistakes,
    property_case,
    randn,
    script_call,
)
from autograder.grading import Case
from solutions import alibi_bias, apply_rope
from solutions.experiments import extrapolation_limit
from solutions.positions import ROPE_THETA

# base tolerance per output dtype, as (relative to the value, relative to the row's scale)
BASE_TOL = {
    torch.float64: (1e-6, 1e-6),
    torch.float32: (1e-4, 2e-5),
    torch.float16: (4e-3, 4e-3),
    torch.bfloat16: (2e-2, 2.5e-2),
}
# float32 angles are off by up to a few ulps: ~3e-7 * angle; allow 1e-6 * angle (x row scale)
ANGLE_TOL = 1e-6
# a learner's mistake is recognised within a looser band (only consulted once the output failed)
MISTAKE_TOL = 3e-3
# theta defaults a learner may have typed: Llama 3's 500000, Mixtral's and Code Llama's 1e6
WRONG_DEFAULT_THETA = (500000.0, 1e6, 1e5, 1000.0)


# ---------------------------------------------------------------- RoPE


def _inv_freq(head_dim: int, theta: float, exponents: Tensor | None = None) -> Tensor:
    """float64 ``theta^(-2i/head_dim)`` for i = 0..head_dim/2-1 (or the exponents given)."""
    if exponents is None:
        exponents = torch.arange(0, head_dim, 2, dtype=torch.float64) / head_dim
    return theta ** (-exponents.double())


def _angles(positions: Tensor, inv_freq: Tensor, float32: bool) -> Tensor:
    """``positions[:, None] * inv_freq``: float64, or computed in float32 as transformers does."""
    if float32:
        return (positions.float()[:, None] * inv_freq.float()[None, :]).double()
    return positions.double()[:, None] * inv_freq.double()[None, :]


def _rotate(x: Tensor, angles: Tensor, pairing: str = "halves", swap: bool = False) -> Tensor:
    """Rotate pairs of ``x`` (float64) by ``angles`` ``(T, D/2)``; returns float64. ``swap``:
    cos and sin exchanged (a mistake)."""
    x = x.double()
    cos, sin = angles.cos(), angles.sin()
    if swap:
        cos, sin = sin, cos
    if pairing == "halves":
        a, b = x.chunk(2, dim=-1)
        return torch.cat((a * cos - b * sin, b * cos + a * sin), dim=-1)
    a, b = x[..., 0::2], x[..., 1::2]
    return torch.stack((a * cos - b * sin, b * cos + a * sin), dim=-1).flatten(-2)


def _rotate_full(x: Tensor, angles: Tensor) -> Tensor:
    """``x * cos + rotate_half(x) * sin`` with a full ``(T, D)`` table of angles."""
    x = x.double()
    a, b = x.chunk(2, dim=-1)
    return x * angles.cos() + torch.cat((-b, a), dim=-1) * angles.sin()


INTERLEAVED = ("you used the interleaved pairing (GPT-J/Meta's original), pairs (x[2i], x[2i+1]); "
               "this course uses the rotate-half pairing of transformers' Llama: pair x[i] with "
               "x[i + head_dim/2], i.e. x * cos + rotate_half(x) * sin with cos and sin of "
               "cat((angles, angles), -1)")
WRONG_WAY = ("you are rotating the wrong way (the sign of sin is flipped): each pair (a, b) "
             "becomes (a cos - b sin, b cos + a sin), i.e. x * cos + rotate_half(x) * sin with "
             "rotate_half(x) = cat((-x2, x1), -1)")
POSITIVE_EXPONENT = ("your frequencies are theta^(+2i/head_dim), growing with i; RoPE uses "
                     "inv_freq[i] = theta^(-2i/head_dim) = 1 / theta^(2i/head_dim)")
IGNORES_POSITIONS = ("you ignored `positions`: your output rotates token t by angles for "
                     "position t (0..T-1); use the positions given (they can start at 1000 with "
                     "a KV cache, or be in any order)")
FULL_FREQS = ("you made head_dim different frequencies; RoPE has head_dim/2 of them, "
              "theta^(-2i/head_dim) for i = 0..head_dim/2-1, and x[i] and x[i + head_dim/2] "
              "share one: cos = cat((angles, angles), -1)")
NO_TWO = ("the exponent is 2i/head_dim (i = 0..head_dim/2-1), not i/head_dim: "
          "inv_freq = theta ** (-torch.arange(0, head_dim, 2) / head_dim)")
HALF_DIM = ("the exponent is divided by head_dim, not by head_dim/2: "
            "inv_freq[i] = theta^(-2i/head_dim)")
REPEAT_INTERLEAVE = ("your cos/sin tables repeat each angle twice in a row (repeat_interleave: "
                     "the interleaved layout) while rotate_half pairs x[i] with "
                     "x[i + head_dim/2]: build them with cat((angles, angles), -1)")
THETA_IGNORED = "you ignored the `theta` argument (rotated with theta = 10000 instead)"
COS_SIN_SWAPPED = ("cos and sin are swapped: x * cos + rotate_half(x) * sin, so that position 0 "
                   "(angle 0) leaves x unchanged")
THETA_DEFAULT = "apply_rope(x, positions) must default to theta=10000.0; yours behaves like {}"


def _rope_mistakes(x: Tensor, positions: Tensor, theta: float,
                   default: bool = False) -> dict[str, list]:
    """What common wrong RoPEs return (float64), each computed with float32 and with float64
    angles, since a learner may do either: message -> [(output, largest angle per row)].
    ``default``: the case relies on the default theta, so wrong defaults are named too."""
    D, T = x.shape[-1], positions.shape[0]
    half = torch.arange(0, D, 2, dtype=torch.float64)
    out: dict[str, list] = {}

    def add(message, inv_freq, rotate, at=positions):
        for f32 in (True, False):
            angles = _angles(at, inv_freq, f32)
            out.setdefault(message, []).append((rotate(angles), angles.abs().amax(dim=-1)))

    inv = _inv_freq(D, theta)
    add(INTERLEAVED, inv, lambda a: _rotate(x, a, "interleaved"))
    add(WRONG_WAY, inv, lambda a: _rotate(x, -a))
    add(POSITIVE_EXPONENT, 1 / inv, lambda a: _rotate(x, a))
    if not torch.equal(positions, torch.arange(T)):
        add(IGNORES_POSITIONS, inv, lambda a: _rotate(x, a), torch.arange(T))
    add(FULL_FREQS, _inv_freq(D, theta, torch.arange(D, dtype=torch.float64) / D),
        lambda a: _rotate_full(x, a))
    add(NO_TWO, _inv_freq(D, theta, half / 2 / D), lambda a: _rotate(x, a))
    add(HALF_DIM, _inv_freq(D, theta, 2 * half / D), lambda a: _rotate(x, a))
    add(REPEAT_INTERLEAVE, inv, lambda a: _rotate_full(x, a.repeat_interleave(2, dim=-1)))
    add(COS_SIN_SWAPPED, inv, lambda a: _rotate(x, a, swap=True))
    if theta != ROPE_THETA:
        add(THETA_IGNORED, _inv_freq(D, ROPE_THETA), lambda a: _rotate(x, a))
    if default:
        for wrong in WRONG_DEFAULT_THETA:
            add(THETA_DEFAULT.format(f"theta={wrong:g}"), _inv_freq(D, wrong),
                lambda a: _rotate(x, a))
    return out


def _row_bound(x: Tensor, max_angle: Tensor, expected: Tensor, rel: float,
               base: float) -> Tensor:
    """Allowed |difference| per entry: relative, plus a part that scales with the size of the
    row's vector and with its largest angle (float32 angles are off by a few ulps of it)."""
    scale = x.double().abs().amax(dim=-1, keepdim=True).clamp(min=1.0)  # (..., T, 1)
    return rel * expected.abs() + scale * (base + ANGLE_TOL * max_angle.double()[:, None])


def _within(actual: Tensor, expected: Tensor, bound: Tensor) -> bool:
    return bool(((actual.double() - expected).abs() <= bound).all())


def _expect_rope(actual, x: Tensor, positions: Tensor, theta: float, what: str = "output",
                 mistakes: dict[str, list] | None = None) -> None:
    expected = _rotate(x, _angles(positions, _inv_freq(x.shape[-1], theta), False))
    if type(actual) is not Tensor:
        raise Mismatch(f"apply_rope should return a tensor, got {describe(actual)}")
    if actual.shape != x.shape:
        raise Mismatch(f"your {what} has shape {tuple(actual.shape)}; RoPE keeps the shape of "
                       f"x, {tuple(x.shape)}")
    if actual.dtype != x.dtype:
        raise Mismatch(f"your {what} has dtype {actual.dtype}, expected {x.dtype}: return x's "
                       "dtype (compute the angles in float32, then cast cos and sin to x.dtype "
                       "or cast the result back)")
    if not torch.isfinite(actual).all():
        raise Mismatch(f"your {what} has NaN or infinite values")
    rel, base = BASE_TOL[x.dtype]
    # the fastest pair turns by 1 radian per position: the largest angle of a row is |position|
    if _within(actual, expected, _row_bound(x, positions.abs(), expected, rel, base)):
        return
    loose = max(base, MISTAKE_TOL)
    for message, candidates in (mistakes or {}).items():
        for wrong, max_angle in candidates:
            if ANGLE_TOL * float(max_angle.max()) > 0.05:
                continue  # angles so large that float32 rounding makes the output arbitrary
            bound = _row_bound(x, max_angle, wrong, max(rel, MISTAKE_TOL), loose)
            if _within(actual, wrong, bound):
                raise Mismatch(message) from None
    if x.dtype in (torch.bfloat16, torch.float16) and _within(
            actual, expected, 4 * _row_bound(x, positions.abs(), expected, rel, base)):
        raise Mismatch(f"your {what} is close but not within {x.dtype}'s tolerance: compute the "
                       "angles, cos and sin in float32 (not in x's dtype), then cast cos and "
                       "sin to x.dtype")
    diff = (actual.double() - expected).abs()
    worst = diff.flatten(0, -3).amax(dim=(0, 2)) if diff.dim() > 2 else diff.amax(dim=-1)
    t = int(worst.argmax())
    hint = ""
    if x.dtype in (torch.bfloat16, torch.float16):
        hint = (f"; if you computed the angles in {x.dtype}, compute them in float32 (in 16 "
                "bits, position times frequency is off by whole radians at large positions)")
    raise Mismatch(f"your {what} differs from the expected one: largest difference "
                   f"{float(worst[t]):.3g} (values up to {float(expected.abs().max()):.3g}), "
                   f"at sequence index {t} (position {int(positions[t])}){hint}")


def _rope_case(gen, name, shape, positions, theta=None, dtype=torch.float32, grad=False,
               zero=False, scale=1.0, points=1.0) -> Case:
    x, grad_output = hidden_input(gen, shape, dtype, zero, scale, grad)
    positions = positions.long()
    th = ROPE_THETA if theta is None else theta
    kwargs = {} if theta is None else {"theta": theta}
    grads = None
    if grad:
        xr = x.clone().requires_grad_(True)
        apply_rope(xr, positions, th).backward(grad_output)
        grads = {"inputs": [xr.grad]}
    mistakes = _rope_mistakes(x, positions, th, default=theta is None)
    return function_case(name, "apply_rope", [x, positions], None, grads, grad_output,
                         points=points, kwargs=kwargs, check_output=lambda result: _expect_rope(
                             result["output"], x, positions, th, mistakes=mistakes))


def _rope_property_case(name: str, holds: str, x: Tensor, positions: Tensor, prop,
                        untouched: bool = False) -> Case:
    """A property of RoPE (theta 10000) on ``x`` at ``positions``; the values are checked too."""
    mistakes = _rope_mistakes(x, positions, ROPE_THETA)

    def value(result: dict) -> None:
        _expect_rope(result["output"], x, positions, ROPE_THETA, mistakes=mistakes)
        if untouched:
            expect_inputs_untouched(result, [x, positions])

    return property_case(name, function_call("apply_rope", [x, positions]), x.shape, holds,
                         prop, value)


def _rope_identity_case(gen) -> Case:
    x = randn(gen, 2, 3, 5, 16)

    def prop(y) -> None:
        if not torch.allclose(y.double(), x.double(), rtol=1e-5, atol=1e-6):
            raise Mismatch("with every position 0 all angles are 0, so RoPE must return x "
                           "unchanged (cos 0 = 1, sin 0 = 0); yours changes it")

    return _rope_property_case("property: position 0 is the identity",
                               "position 0 left x unchanged", x,
                               torch.zeros(5, dtype=torch.long), prop, untouched=True)


def _rope_norm_case(gen) -> Case:
    """A rotation keeps the length of every vector."""
    x = randn(gen, 3, 12, 32)

    def prop(y) -> None:
        before, after = x.double().norm(dim=-1), y.double().norm(dim=-1)
        change = ((after - before).abs() / before).max().item()
        if change > 1e-4:
            raise Mismatch("RoPE rotates each pair (x[i], x[i + head_dim/2]) by an angle, so it "
                           "must keep every vector's length; yours changes it by up to "
                           f"{100 * change:.3g} %")

    return _rope_property_case("property: every vector keeps its norm (positions up to 3000)",
                               "every vector kept its norm", x,
                               torch.randint(0, 3000, (12,), generator=gen), prop)


def _rope_relative_case(gen) -> Case:
    """q . k after RoPE depends only on the offset between the two positions: x[0] holds the
    same q at every index and x[1] the same k; the positions come in pairs (p, p + s) with one
    offset s, so the three dot products of the pairs must be equal."""
    D, offset = 16, int(torch.randint(1, 40, (1,), generator=gen))
    q, k = randn(gen, D), randn(gen, D)
    starts = [0] + torch.randint(50, 2000, (2,), generator=gen).tolist()
    positions = torch.tensor([p for s in starts for p in (s, s + offset)])
    x = torch.stack([q.expand(6, D), k.expand(6, D)]).contiguous()  # (2, 6, D)
    size = float(q.norm() * k.norm())

    def prop(y) -> None:
        yd = y.double()
        dots = [float(yd[0, 2 * i] @ yd[1, 2 * i + 1]) for i in range(3)]
        tol = size * (1e-5 + 4 * ANGLE_TOL * max(starts + [0]) + 4 * ANGLE_TOL * offset)
        if max(dots) - min(dots) > tol:
            listed = ", ".join(f"q at {starts[i]} . k at {starts[i] + offset}: {dots[i]:.4g}"
                               for i in range(3))
            raise Mismatch(f"after RoPE, q . k must depend only on the offset between the "
                           f"positions (here {offset}), but yours gives {listed}")

    return _rope_property_case("property: q . k after RoPE depends only on the offset",
                               "q . k depended only on the offset", x, positions, prop)


def rope_cases(gen: torch.Generator) -> list[Case]:
    shuffled = torch.randperm(12, generator=gen)
    return [
        _rope_case(gen, "float32 (batch, heads, seq, head_dim), positions 0..T-1", (2, 3, 6, 8),
                   torch.arange(6), points=2),
        _rope_case(gen, "2-D input (seq, head_dim), positions from 1000 (as with a KV cache)",
                   (5, 16), torch.arange(1000, 1005), points=2),
        _rope_case(gen, "shuffled positions, 3-D (heads, seq, head_dim)", (4, 12, 32), shuffled),
        _rope_case(gen, "head_dim 128 at positions near 4096", (1, 2, 4, 128),
                   torch.tensor([4090, 4093, 4095, 4096])),
        _rope_case(gen, "theta = 1e6 (Mixtral, Code Llama), positions from 500", (2, 7, 64),
                   torch.arange(500, 507), theta=1e6),
        _rope_case(gen, "theta = 500000 passed explicitly, short head_dim 4", (3, 9, 4),
                   torch.arange(9), theta=500000.0),
        _rope_case(gen, "gradient with respect to x", (2, 2, 5, 16), torch.arange(3, 8),
                   grad=True),
        _rope_case(gen, "bfloat16 in, bfloat16 out, positions from 500 (angles in float32)",
                   (2, 4, 10, 64), torch.arange(500, 510), dtype=torch.bfloat16),
        _rope_case(gen, "float64 in, float64 out", (2, 3, 16), torch.arange(3) * 7,
                   dtype=torch.float64),
        _rope_case(gen, "all-zero input gives zeros; head_dim 2 (one pair)", (3, 4, 2),
                   torch.arange(4), zero=True),
        _rope_case(gen, "a single token, head_dim 2 (one pair)", (2, 1, 2), torch.tensor([37])),
        _rope_identity_case(gen),
        _rope_norm_case(gen),
        _rope_relative_case(gen),
    ]


# ---------------------------------------------------------------- ALiBi


def _slopes(n_heads: int, h: Tensor | None = None, eight: float = 8.0) -> Tensor:
    h = torch.arange(1, n_heads + 1, dtype=torch.float64) if h is None else h.double()
    return 2.0 ** (-eight * h / n_heads)


def _paper_slopes(n_heads: int) -> Tensor:
    """The ALiBi paper's (and BLOOM's) slopes for any H: for a power of two, 2^(-8h/H); else
    those of the closest power of two below, then every other slope of twice that."""
    closest = 2 ** math.floor(math.log2(n_heads))
    slopes = _slopes(closest).tolist()
    if closest != n_heads:
        slopes += _slopes(2 * closest).tolist()[0::2][: n_heads - closest]
    return torch.tensor(slopes, dtype=torch.float64)


def _bias(slopes: Tensor, seq_len: int, distance: Tensor | None = None) -> Tensor:
    pos = torch.arange(seq_len, dtype=torch.float64)
    if distance is None:
        distance = pos[:, None] - pos[None, :]
    return -slopes.double()[:, None, None] * distance


SLOPES_FROM_ZERO = ("your slopes start at h = 0 (the first head gets m = 1); h runs from 1 to "
                    "H: m_h = 2^(-8h/H), so the first head has 2^(-8/H) and the last 2^(-8)")
SIGN = ("your bias rewards distance: it must be a penalty, -m_h * (i - j), zero on the diagonal "
        "and more negative the farther back the key; check the sign and the order (i - j, "
        "query minus key)")
REVERSED = ("your slopes are in reverse order: the first head has the largest slope, "
            "m_1 = 2^(-8/H), the last one the smallest, m_H = 2^(-8)")
NO_EIGHT = "the slopes are m_h = 2^(-8h/H): you left out the 8"
PAPER = ("for H not a power of two you used the ALiBi paper's (and BLOOM's) interleaved slopes; "
         "this course uses m_h = 2^(-8h/H), h = 1..H, for every H")
ZERO_BELOW = ("your bias is 0 for every key the query can see (j <= i): the distance is "
              "i - j (query minus key), so the bias there is -m_h * (i - j)")
ABS_PLUS_ONE = "the distance is i - j: a query attending to itself (j = i) gets bias 0"
SLOPES_FROM_TWO = ("your slopes start at h = 2 (the last head gets 2^(-8(H+1)/H)); h runs from 1 "
                   "to H: m_h = 2^(-8h/H), so the first head has 2^(-8/H) and the last 2^(-8)")
DISTANCE_MINUS_ONE = ("the distance is i - j, not i - j - 1: a query attending to itself gets "
                      "bias 0 and the key before it -m_h")


def _alibi_mistakes(n_heads: int, seq_len: int) -> dict[str, Tensor]:
    H = n_heads
    pos = torch.arange(seq_len, dtype=torch.float64)
    distance = pos[:, None] - pos[None, :]
    out = {
        SLOPES_FROM_ZERO: _bias(_slopes(H, torch.arange(H)), seq_len),
        SIGN: -_bias(_slopes(H), seq_len),
        REVERSED: _bias(_slopes(H).flip(0), seq_len),
        NO_EIGHT: _bias(_slopes(H, eight=1.0), seq_len),
        ZERO_BELOW: _bias(_slopes(H), seq_len, (-distance).clamp(min=0)),
        ABS_PLUS_ONE: _bias(_slopes(H), seq_len, distance + 1),
        SLOPES_FROM_TWO: _bias(_slopes(H, torch.arange(2, H + 2)), seq_len),
        DISTANCE_MINUS_ONE: _bias(_slopes(H), seq_len, distance - 1),
    }
    if H & (H - 1):
        out[PAPER] = _bias(_paper_slopes(H), seq_len)
    return out


def _alibi_visible(t: Tensor, seq_len: int) -> Tensor:
    """The entries a causal mask keeps (j <= i) of an (H, T, T) tensor, as (H, n)."""
    keep = torch.ones(seq_len, seq_len, dtype=torch.bool).tril()
    return t[:, keep]


def _diagnose_alibi(actual: Tensor, expected: Tensor, n_heads: int, seq_len: int) -> str:
    """A specific message for a bias that matches no known mistake."""
    if not torch.allclose(actual.diagonal(dim1=-2, dim2=-1).double(),
                          torch.zeros(n_heads, seq_len, dtype=torch.float64), atol=1e-5):
        return ABS_PLUS_ONE
    if seq_len > 1:
        got = -actual[:, 1, 0].double()
        linear = _bias(got, seq_len)
        if torch.allclose(_alibi_visible(actual.double(), seq_len),
                          _alibi_visible(linear, seq_len), rtol=1e-4, atol=1e-5):
            want = ", ".join(f"{v:.4g}" for v in expected[:4, 1, 0].neg().tolist())
            have = ", ".join(f"{v:.4g}" for v in got[:4].tolist())
            return (f"your bias is linear in i - j, but with the wrong slopes: yours start "
                    f"{have}, expected {want} (m_h = 2^(-8h/H), h = 1..H)")
        return "the bias must grow linearly with the distance: -m_h * (i - j) for j <= i"
    return "your bias differs from -m_h * (i - j)"


def _alibi_case(gen, name, n_heads, seq_len, points=1.0) -> Case:
    expected = alibi_bias(n_heads, seq_len)
    mistakes = _alibi_mistakes(n_heads, seq_len)
    T = seq_len

    def check(result: dict) -> None:
        y = result["output"]
        if type(y) is not Tensor:
            raise Mismatch(f"alibi_bias should return a tensor, got {describe(y)}")
        if y.shape != (n_heads, T, T):
            if tuple(y.shape) == (T, T):
                raise Mismatch(f"your bias has shape (T, T) = {(T, T)}; return one (T, T) "
                               f"bias per head: (H, T, T) = {(n_heads, T, T)}")
            if tuple(y.shape) == (1, n_heads, T, T):
                raise Mismatch(f"your bias has an extra leading dimension: return (H, T, T) = "
                               f"{(n_heads, T, T)}")
            if tuple(y.shape) in {(T, T, n_heads), (T, n_heads, T)} and n_heads != T:
                raise Mismatch(f"your bias has shape {tuple(y.shape)}: put the heads first, "
                               f"(H, T, T) = {(n_heads, T, T)}")
            raise Mismatch(f"your bias has shape {tuple(y.shape)}, expected (H, T, T) = "
                           f"{(n_heads, T, T)}")
        if y.dtype != torch.float32:
            raise Mismatch(f"your bias has dtype {y.dtype}, expected torch.float32 (it is added "
                           "to float32 attention scores)")
        got = _alibi_visible(y, T)
        if not torch.isfinite(got).all():
            raise Mismatch("your bias has NaN or infinite values where j <= i (the keys a "
                           "query can see); only entries above the diagonal may be masked")
        want = _alibi_visible(expected, T)
        if torch.allclose(got.double(), want.double(), rtol=1e-4, atol=1e-5):
            return
        for message, wrong in mistakes.items():
            if torch.allclose(got.double(), _alibi_visible(wrong, T), rtol=1e-4, atol=1e-5):
                raise Mismatch(message)
        raise Mismatch(_diagnose_alibi(y, expected, n_heads, T))

    return Case(name, function_call("alibi_bias", args=(n_heads, seq_len)), check, points)


def _alibi_property_case(gen) -> Case:
    """Property: with the causal mask, softmax(scores + bias) of uniform scores puts more weight
    on recent keys, and a steeper head concentrates it more."""
    H, T = 8, 32

    def check(result: dict) -> None:
        y = result["output"]
        if type(y) is Tensor and y.shape == (H, T, T) and y.is_floating_point():
            keep = torch.ones(T, T, dtype=torch.bool).tril()
            scores = y.double().masked_fill(~keep, float("-inf"))
            if torch.isfinite(scores[:, keep]).all():
                last = scores[:, -1].softmax(-1)  # (H, T): the last query's attention
                recent = last[:, -1]
                if not (recent > last[:, 0]).all():
                    h = int((recent <= last[:, 0]).nonzero()[0])
                    raise Mismatch(f"with uniform scores plus your bias, the last query of head "
                                   f"{h} gives the first key weight {last[h, 0]:.3g}, no less "
                                   f"than itself ({last[h, -1]:.3g}): ALiBi must penalise "
                                   "distance, so nearer keys weigh more")
                if not (recent[:-1] >= recent[1:] - 1e-12).all():
                    raise Mismatch("the first heads should have the steepest slopes (the most "
                                   "local attention), the last heads the gentlest")
        # the exact values are checked by the other cases; this one is about behaviour
        if type(y) is not Tensor or y.shape != (H, T, T):
            raise Mismatch(f"expected a tensor of shape (H, T, T) = {(H, T, T)}, got "
                           f"{describe(y)}")

    return Case("property: added to uniform scores, the bias makes nearer keys weigh more, "
                "most in the first heads", function_call("alibi_bias", args=(H, T)), check)


def alibi_cases(gen: torch.Generator) -> list[Case]:
    H = int(torch.randint(2, 5, (1,), generator=gen)) * 2  # 4, 6 or 8 heads
    return [
        _alibi_case(gen, "8 heads, seq 16: slopes 1/2, 1/4, ..., 1/256", 8, 16, points=2),
        _alibi_case(gen, "12 heads (not a power of two), seq 10: m_h = 2^(-8h/H)", 12, 10,
                    points=2),
        _alibi_case(gen, f"{H} heads, seq 33", H, 33),
        _alibi_case(gen, "one head, seq 5", 1, 5),
        _alibi_case(gen, "16 heads, a single token (seq 1)", 16, 1),
        # long enough for distances past 100, small enough for a correct answer written as a
        # Python loop over heads, queries and keys (32 heads x 300 took over a minute)
        _alibi_case(gen, "8 heads, seq 128", 8, 128),
        _alibi_property_case(gen),
    ]


# ---------------------------------------------------------------- extrapolation_limit

# The table travels as (scheme, [[length, loss], ...]) pairs, rebuilt in the worker in that
# order (the cases shuffle it); the script only reports plain values, the check judges them.
LIMIT_SCRIPT = """
_table = {scheme: {int(n): float(loss) for n, loss in rows} for scheme, rows in pairs}
if factor is None:
    _out = extrapolation_limit(_table, train_len)
else:
    _out = extrapolation_limit(_table, train_len, factor)
if isinstance(_out, dict):
    _items = {}
    for _key, _value in _out.items():
        if _value is None:
            _item = {"kind": "none"}
        elif isinstance(_value, bool):
            _item = {"kind": "bool", "value": _value}
        elif hasattr(type(_value), "__index__"):  # int, or a NumPy / 0-d tensor integer
            _item = {"kind": "int", "value": int(_value.__index__())}
        elif isinstance(_value, float):
            _item = {"kind": "float", "value": _value}
        else:
            _item = {"kind": type(_value).__name__}
        _items[str(_key)] = _item
    result = {"dict": True, "items": _items}
else:
    result = {"dict": False, "type": type(_out).__name__}
"""

Losses = dict[str, dict[int, float]]
DEFAULT_FACTOR = 1.2


def _limit_mistakes(table: Losses, train_len: int, factor: float,
                    default: bool) -> dict[str, dict[str, int | None]]:
    """What common wrong readings of the table return, with the message each one earns."""

    def first(rows, broken) -> int | None:
        return next((n for n, loss in rows if broken(loss)), None)

    def each(pick) -> dict[str, int | None]:
        return {scheme: pick(by_length) for scheme, by_length in table.items()}

    def up(d: dict) -> list[tuple[int, float]]:
        return sorted(d.items())

    def last_holding(d: dict) -> int | None:
        base = factor * d[train_len]
        held = [n for n, loss in up(d) if loss <= base]
        return held[-1] if held and len(held) < len(d) else None

    m = {
        "return the FIRST length where the loss is above factor x its training-length loss, "
        "not the last length where it still holds": each(last_holding),
        "compare with the loss at train_len, the training length, not with the lowest loss "
        "of the row": each(lambda d: first(up(d), lambda x: x > factor * min(d.values()))),
        "compare with the loss at train_len, not with the loss at the shortest length "
        "evaluated": each(lambda d: first(up(d), lambda x: x > factor * up(d)[0][1])),
        "factor multiplies the training-length loss (loss > factor * base), it is not added "
        "to it": each(lambda d: first(up(d), lambda x: x > factor + d[train_len])),
        "strictly greater: a loss of exactly factor x the training-length loss has not broken "
        "down yet": each(lambda d: first(up(d), lambda x: x >= factor * d[train_len])),
        "a length a scheme cannot run at has the loss inf and counts as broken down (learned "
        "positions fail at the first length past their table)":
            each(lambda d: first(up(d), lambda x: math.isfinite(x) and x > factor * d[train_len])),
        "every scheme needs an entry: None when it holds up at every length evaluated":
            {k: v for k, v in extrapolation_limit(table, train_len, factor).items()
             if v is not None},
    }
    # built without a factor, a wrong default is the likeliest explanation: name it first
    defaults = {f"extrapolation_limit(losses, train_len) must default to factor=1.2; yours "
                f"behaves like factor={wrong}": extrapolation_limit(table, train_len, wrong)
                for wrong in (1.5, 2.0, 1.0, 1.1, 1.25)} if default else {}
    return defaults | m


def _limit_case(name: str, table: Losses, train_len: int, factor: float | None = None,
                gen: torch.Generator | None = None, points: float = 1.0) -> Case:
    f = DEFAULT_FACTOR if factor is None else factor
    expected = extrapolation_limit(table, train_len, f)
    mistakes = known_mistakes(_limit_mistakes(table, train_len, f, factor is None), expected)
    pairs = []
    for scheme, by_length in table.items():
        rows = [[n, loss] for n, loss in by_length.items()]
        if gen is not None:  # shuffle the lengths: the dictionary's order is not theirs
            rows = [rows[i] for i in torch.randperm(len(rows), generator=gen).tolist()]
        pairs.append([scheme, rows])
    # reading the rows in the order the learner receives them, without sorting
    unsorted = {scheme: next((n for n, loss in rows if loss > f * table[scheme][train_len]),
                             None) for scheme, rows in pairs}
    if unsorted != expected:
        mistakes = {"check the lengths in increasing order: the dictionary's order is not the "
                    "lengths' order": unsorted, **mistakes}

    def check(result: dict) -> None:
        out = result["output"]
        if not out["dict"]:
            raise Mismatch(f"extrapolation_limit should return a dict {{scheme: length or "
                           f"None}}, got a {out['type']}")
        got: dict[str, int | None] = {}
        for scheme, item in out["items"].items():
            if item["kind"] == "none":
                got[scheme] = None
            elif item["kind"] == "int":
                got[scheme] = item["value"]
            elif item["kind"] == "float" and float(item["value"]).is_integer():
                raise Mismatch(f"the length for {scheme!r} should be an int (a length in "
                               f"tokens), got the float {item['value']}")
            elif item["kind"] == "bool":
                raise Mismatch(f"the value for {scheme!r} should be a length (an int) or None, "
                               f"got {item['value']}: use None, not False, for a scheme that "
                               "never breaks down")
            else:
                raise Mismatch(f"the value for {scheme!r} should be a length (an int) or None, "
                               f"got a {item['kind']}")
        expect_answer(got, expected, mistakes)
        if got == expected:
            return
        if set(got) != set(expected):
            raise Mismatch(f"the result should have one entry per scheme of the table, "
                           f"{sorted(expected)}; got {sorted(got)}")
        wrong_none = [k for k in expected if expected[k] is None and got[k] is not None]
        if wrong_none and all(got[k] == expected[k] for k in expected if k not in wrong_none):
            raise Mismatch(f"{wrong_none[0]!r} holds up at every length evaluated, so its "
                           f"value is None; got {got[wrong_none[0]]}")
        raise Mismatch(f"got {got}, expected {expected}")

    call = script_call(LIMIT_SCRIPT, pairs=pairs, train_len=train_len, factor=factor)
    return Case(name, call, check, points)


def extrapolation_limit_cases(gen: torch.Generator) -> list[Case]:
    u = lambda lo, hi: lo + (hi - lo) * float(torch.rand((), generator=gen))  # noqa: E731
    inf = math.inf
    lengths = [64, 128, 256, 512]

    def row(base: float, growth: list[float]) -> dict[int, float]:
        return {n: round(base * g, 4) for n, g in zip(lengths, growth, strict=True)}

    base = u(1.8, 2.4)
    # the shape of the week's experiment: ALiBi holds, RoPE and NoPE break, learned cannot run
    typical = {
        "rope": row(base, [1.0, 1.3, u(1.6, 2.0), u(2.2, 3.0)]),
        "alibi": row(base, [1.0, u(0.93, 0.99), u(0.92, 0.99), u(0.92, 1.0)]),
        "none": row(base, [1.0, u(1.55, 1.9), u(2.0, 2.5), u(2.6, 3.2)]),
        "learned": {64: round(base, 4), 128: inf, 256: inf, 512: inf},
    }
    k = u(1.35, 1.6)
    # a length shorter than the training one, where the loss is higher (less context)
    shorter = {
        "rope": {32: 2.6, 64: 2.0, 128: 2.2, 256: 3.3},
        "alibi": {32: 2.5, 64: 2.0, 128: 1.9, 256: 1.95},
    }
    # a longer context helps ALiBi: its lowest loss is not at the training length
    dips = {
        "alibi": {64: 2.0, 128: 1.5, 256: 2.4, 512: 2.6},
        "rope": {64: 2.0, 128: 2.5, 256: 3.5, 512: 4.5},
    }
    exact = {"rope": {64: 2.0, 128: 3.0, 256: 3.5}, "alibi": {64: 2.0, 128: 2.5, 256: 3.0}}
    small = {"rope": {64: 0.5, 128: 0.6, 256: 2.0}, "none": {64: 0.4, 128: 0.5, 256: 0.55}}
    holds = {"alibi": row(base, [1.0, 0.97, 0.96, 0.96]),
             "rope": row(base, [1.0, 1.02, 1.04, 1.08])}
    gradual = {s: {n: round(base * (1 + rate * max(0, i)), 4) for i, n in
                   zip(range(-1, 6), [32, 64, 128, 256, 512, 1024, 2048], strict=True)}
               for s, rate in (("rope", u(0.1, 0.2)), ("alibi", u(0.0, 0.03)),
                               ("none", u(0.25, 0.45)))}
    return [
        _limit_case("the week's four schemes, factor 1.2 (the default)", typical, 64, gen=gen,
                    points=2),
        _limit_case(f"the same table, factor {k:.2f}", typical, 64, factor=k, gen=gen,
                    points=2),
        _limit_case("lengths given in increasing order", typical, 64, factor=1.5),
        _limit_case("a length shorter than the training length (train_len=64)", shorter, 64,
                    factor=1.3, gen=gen),
        _limit_case("the lowest loss is not at the training length", dips, 64, factor=1.2,
                    gen=gen),
        _limit_case("a loss of exactly 1.5 x the training loss has not broken down", exact, 64,
                    factor=1.5),
        _limit_case("small losses: factor multiplies", small, 64, factor=2.0, gen=gen),
        _limit_case("schemes that hold at every length: None", holds, 64, factor=1.2, gen=gen),
        _limit_case("trained at 128, evaluated from 32 to 2048", gradual, 128, factor=1.25,
                    gen=gen),
    ]

