"""Week 4 submissions for the grader's own tests: known-wrong ones and correct variants.

Each wrong submission is a realistic mistake. The test suite grades each one and asserts it
loses points and, where the grader knows the mistake, that its message names it.
"""

HEADER = """
import math

import torch
from torch import Tensor
"""

ROTATE_HALF = """
def rotate_half(x):
    x1, x2 = x.chunk(2, dim=-1)
    return torch.cat((-x2, x1), dim=-1)
"""


def rope(body: str, inv_freq: str = "1.0 / (theta ** (torch.arange(0, d, 2).float() / d))",
         angles: str = "positions.float()[:, None] * inv_freq[None, :]") -> str:
    """A rotate-half RoPE whose frequencies, angles or final step are replaced by a mistake."""
    return f"""{HEADER}{ROTATE_HALF}

def apply_rope(x, positions, theta=10000.0):
    d = x.shape[-1]
    inv_freq = {inv_freq}
    angles = {angles}
{body}
"""


CAT = """    emb = torch.cat((angles, angles), dim=-1)
    cos, sin = emb.cos().to(x.dtype), emb.sin().to(x.dtype)
"""
CORRECT_RETURN = CAT + "    return x * cos + rotate_half(x) * sin"
CAT_LOW = """    emb = torch.cat((angles, angles), dim=-1)
    cos, sin = emb.cos(), emb.sin()
"""


def alibi(body: str) -> str:
    return f"""{HEADER}

def alibi_bias(n_heads, seq_len):
{body}
"""


SLOPES = "    slopes = 2.0 ** (-8.0 * torch.arange(1, n_heads + 1) / n_heads)\n"
DISTANCE = "    pos = torch.arange(seq_len)\n    distance = (pos[:, None] - pos[None, :]).float()\n"

# (exercise, code, a phrase the feedback must contain, or None)
WRONG = {
    "rope_interleaved_pairs": ("apply_rope", rope("""
    cos, sin = angles.cos().to(x.dtype), angles.sin().to(x.dtype)
    even, odd = x[..., 0::2], x[..., 1::2]
    out = torch.stack((even * cos - odd * sin, odd * cos + even * sin), dim=-1)
    return out.flatten(-2)"""), "interleaved pairing"),
    "rope_complex_interleaved": ("apply_rope", rope("""
    xc = torch.view_as_complex(x.float().reshape(*x.shape[:-1], -1, 2).contiguous())
    rot = torch.polar(torch.ones_like(angles), angles)
    return torch.view_as_real(xc * rot).flatten(-2).to(x.dtype)"""), "interleaved pairing"),
    "rope_sin_sign_flipped": ("apply_rope", rope(
        CAT + "    return x * cos - rotate_half(x) * sin"), "rotating the wrong way"),
    "rope_positive_exponent": ("apply_rope", rope(
        CORRECT_RETURN, inv_freq="theta ** (torch.arange(0, d, 2).float() / d)"),
        "theta^(+2i/head_dim)"),
    "rope_ignores_positions": ("apply_rope", f"""{HEADER}{ROTATE_HALF}

def apply_rope(x, positions, theta=10000.0):
    d, T = x.shape[-1], x.shape[-2]
    inv_freq = 1.0 / (theta ** (torch.arange(0, d, 2).float() / d))
    angles = torch.arange(T).float()[:, None] * inv_freq[None, :]
{CORRECT_RETURN}
""", "ignored `positions`"),
    "rope_head_dim_frequencies": ("apply_rope", f"""{HEADER}{ROTATE_HALF}

def apply_rope(x, positions, theta=10000.0):
    d = x.shape[-1]
    inv_freq = 1.0 / (theta ** (torch.arange(d).float() / d))
    emb = positions.float()[:, None] * inv_freq[None, :]
    return x * emb.cos().to(x.dtype) + rotate_half(x) * emb.sin().to(x.dtype)
""", "head_dim different frequencies"),
    "rope_exponent_without_two": ("apply_rope", rope(
        CORRECT_RETURN, inv_freq="theta ** (-torch.arange(d // 2).float() / d)"),
        "not i/head_dim"),
    "rope_exponent_over_half_dim": ("apply_rope", rope(
        CORRECT_RETURN, inv_freq="theta ** (-torch.arange(0, d, 2).float() / (d // 2))"),
        "not by head_dim/2"),
    "rope_repeat_interleave_tables": ("apply_rope", rope("""
    emb = angles.repeat_interleave(2, dim=-1)
    return x * emb.cos().to(x.dtype) + rotate_half(x) * emb.sin().to(x.dtype)"""),
        "repeat_interleave"),
    "rope_theta_ignored": ("apply_rope", rope(
        CORRECT_RETURN, inv_freq="1.0 / (10000.0 ** (torch.arange(0, d, 2).float() / d))"),
        "`theta` argument"),
    "rope_float32_out": ("apply_rope", rope("""
    emb = torch.cat((angles, angles), dim=-1)
    return x * emb.cos() + rotate_half(x) * emb.sin()"""), "dtype"),
    "rope_angles_in_bfloat16": ("apply_rope", rope(CAT_LOW + "    return x * cos + rotate_half(x) * sin",
        inv_freq="1.0 / (theta ** (torch.arange(0, d, 2, dtype=x.dtype) / d))",
        angles="positions.to(x.dtype)[:, None] * inv_freq[None, :]"), "compute them in float32"),
    "rope_in_place": ("apply_rope", rope(CAT + """
    rotated = rotate_half(x) * sin
    return x.mul_(cos).add_(rotated)"""), "in place"),
    "rope_detached": ("apply_rope", rope(
        CAT + "    return (x * cos + rotate_half(x) * sin).detach()"), "not connected to autograd"),
    "rope_added_not_rotated": ("apply_rope", rope(
        CAT + "    return x + sin"), None),
    "alibi_slopes_from_zero": ("alibi_bias", alibi(
        "    slopes = 2.0 ** (-8.0 * torch.arange(n_heads) / n_heads)\n" + DISTANCE
        + "    return -slopes[:, None, None] * distance.clamp(min=0)"), "start at h = 0"),
    "alibi_positive_sign": ("alibi_bias", alibi(
        SLOPES + DISTANCE + "    return slopes[:, None, None] * distance.clamp(min=0)"),
        "rewards distance"),
    "alibi_j_minus_i": ("alibi_bias", alibi(
        SLOPES + "    pos = torch.arange(seq_len)\n"
        + "    return -slopes[:, None, None] * (pos[None, :] - pos[:, None])"),
        "rewards distance"),
    "alibi_no_head_dim": ("alibi_bias", alibi(
        SLOPES + DISTANCE + "    return -slopes[0] * distance.clamp(min=0)"), "(T, T)"),
    "alibi_float64": ("alibi_bias", alibi("""
    slopes = [2 ** (-8 * h / n_heads) for h in range(1, n_heads + 1)]
    return torch.tensor([[[-m * max(i - j, 0) for j in range(seq_len)] for i in range(seq_len)]
                         for m in slopes], dtype=torch.float64)"""), "dtype"),
    "alibi_reversed_slopes": ("alibi_bias", alibi(
        SLOPES + DISTANCE + "    return -slopes.flip(0)[:, None, None] * distance.clamp(min=0)"),
        "reverse order"),
    "alibi_no_eight": ("alibi_bias", alibi(
        "    slopes = 2.0 ** (-torch.arange(1, n_heads + 1) / n_heads)\n" + DISTANCE
        + "    return -slopes[:, None, None] * distance.clamp(min=0)"), "left out the 8"),
    "alibi_paper_slopes": ("alibi_bias", alibi("""
    def power_of_two(n):
        start = 2 ** (-(2 ** -(math.log2(n) - 3)))
        return [start * start**i for i in range(n)]
    if math.log2(n_heads).is_integer():
        slopes = power_of_two(n_heads)
    else:
        closest = 2 ** math.floor(math.log2(n_heads))
        slopes = power_of_two(closest) + power_of_two(2 * closest)[0::2][: n_heads - closest]
    slopes = torch.tensor(slopes)
    pos = torch.arange(seq_len)
    distance = (pos[:, None] - pos[None, :]).clamp(min=0).float()
    return -slopes[:, None, None] * distance"""), "paper's"),
    "alibi_wrong_clamp": ("alibi_bias", alibi(
        SLOPES + DISTANCE + "    return -slopes[:, None, None] * (-distance).clamp(min=0)"),
        "is 0 for every key"),
    "alibi_heads_last": ("alibi_bias", alibi(
        SLOPES + DISTANCE + "    return -distance.clamp(min=0)[:, :, None] * slopes"),
        "heads first"),
    "alibi_distance_plus_one": ("alibi_bias", alibi(
        SLOPES + DISTANCE + "    return -slopes[:, None, None] * (distance.abs() + 1)"),
        "gets bias 0"),
}

# library shortcuts (keys with "shortcut" must score zero), ignored contract defaults, the
# mirror images of named mistakes, and what a property case says when only its values are wrong
WRONG |= {
    "rope_transformers_shortcut": ("apply_rope", f"""{HEADER}{ROTATE_HALF}
from transformers.models.llama.modeling_llama import apply_rotary_pos_emb


def apply_rope(x, positions, theta=10000.0):
    d = x.shape[-1]
    inv_freq = 1.0 / (theta ** (torch.arange(0, d, 2).float() / d))
    emb = torch.cat([positions.float()[:, None] * inv_freq[None, :]] * 2, dim=-1)
    out, _ = apply_rotary_pos_emb(x, x, emb.cos().to(x.dtype), emb.sin().to(x.dtype),
                                  unsqueeze_dim=0)
    return out
""", "not allowed"),
    "rope_rotary_embedding_class_shortcut": ("apply_rope", f"""{HEADER}{ROTATE_HALF}
from transformers import LlamaConfig
from transformers.models.llama.modeling_llama import LlamaRotaryEmbedding


def apply_rope(x, positions, theta=10000.0):
    config = LlamaConfig(head_dim=x.shape[-1], rope_theta=theta)
    cos, sin = LlamaRotaryEmbedding(config)(x, positions[None])
    return x * cos[0].to(x.dtype) + rotate_half(x) * sin[0].to(x.dtype)
""", "not allowed"),
    "rope_default_theta_of_llama3": ("apply_rope", rope(CORRECT_RETURN).replace(
        "theta=10000.0", "theta=500000.0"), "default to theta=10000.0; yours behaves like "
        "theta=500000"),
    "rope_cos_and_sin_swapped": ("apply_rope", rope(
        CAT + "    return x * sin + rotate_half(x) * cos"), "cos and sin are swapped"),
    "rope_wrong_way_keeps_norms": ("apply_rope", rope(
        CAT + "    return x * cos - rotate_half(x) * sin"),
        "the property holds (every vector kept its norm), but the values are wrong: you are "
        "rotating the wrong way"),
    "rope_interleaved_is_relative_too": ("apply_rope", rope("""
    cos, sin = angles.cos().to(x.dtype), angles.sin().to(x.dtype)
    even, odd = x[..., 0::2], x[..., 1::2]
    out = torch.stack((even * cos - odd * sin, odd * cos + even * sin), dim=-1)
    return out.flatten(-2)"""),
        "the property holds (q . k depended only on the offset), but the values are wrong: you "
        "used the interleaved pairing"),
    "alibi_bloom_shortcut": ("alibi_bias", HEADER + """
from transformers.models.bloom.modeling_bloom import build_alibi_tensor


def alibi_bias(n_heads, seq_len):
    mask = torch.ones(1, seq_len)
    slopes = build_alibi_tensor(mask, n_heads, torch.float32)[:, 0, 1]  # (H,)
    pos = torch.arange(seq_len)
    return -slopes[:, None, None] * (pos[:, None] - pos[None, :]).clamp(min=0).float()
""", "not allowed"),
    "alibi_slopes_from_two": ("alibi_bias", alibi(
        "    slopes = 2.0 ** (-8.0 * torch.arange(2, n_heads + 2) / n_heads)\n" + DISTANCE
        + "    return -slopes[:, None, None] * distance.clamp(min=0)"), "start at h = 2"),
    "alibi_distance_minus_one": ("alibi_bias", alibi(
        SLOPES + DISTANCE + "    return -slopes[:, None, None] * (distance - 1)"),
        "not i - j - 1"),
}

# (exercise, code): correct however written; each must get full marks
CORRECT = {
    "rope_float64": ("apply_rope", f"""{HEADER}{ROTATE_HALF}

def apply_rope(x, positions, theta=10000.0):
    d = x.shape[-1]
    inv_freq = theta ** (-torch.arange(0, d, 2, dtype=torch.float64) / d)
    angles = torch.outer(positions.double(), inv_freq)
    emb = torch.cat([angles, angles], dim=-1)
    out = x.double() * emb.cos() + rotate_half(x.double()) * emb.sin()
    return out.to(x.dtype)
"""),
    "rope_complex_halves": ("apply_rope", f"""{HEADER}

def apply_rope(x, positions, theta=10000.0):
    half = x.shape[-1] // 2
    freqs = torch.exp(-math.log(theta) * torch.arange(half, dtype=torch.float32) * 2 / (2 * half))
    angles = positions.to(torch.float32)[:, None] * freqs
    z = torch.complex(x[..., :half].float(), x[..., half:].float())
    z = z * torch.polar(torch.ones_like(angles), angles)
    return torch.cat([z.real, z.imag], dim=-1).to(x.dtype)
"""),
    # only the answer cell: rotate_half is the notebook's given code
    "rope_uses_the_given_rotate_half": ("apply_rope", f"""{HEADER}

def apply_rope(x, positions, theta=10000.0):
    d = x.shape[-1]
    inv_freq = 1.0 / (theta ** (torch.arange(0, d, 2).float() / d))
    angles = positions.float()[:, None] * inv_freq[None, :]
{CORRECT_RETURN}
"""),
    # the slowest correct answer: one tensor element at a time (graded within the time limit)
    "alibi_element_loops": ("alibi_bias", alibi("""
    out = torch.zeros(n_heads, seq_len, seq_len, dtype=torch.float64)
    for h in range(n_heads):
        m = 2.0 ** (-8.0 * (h + 1) / n_heads)
        for i in range(seq_len):
            for j in range(seq_len):
                out[h, i, j] = -m * abs(i - j)
    return out.to(torch.float32)""")),
    "rope_loop_over_pairs": ("apply_rope", f"""{HEADER}

def apply_rope(x, positions, theta=10000.0):
    d = x.shape[-1]
    half = d // 2
    parts_a, parts_b = [], []
    for i in range(half):
        freq = 1.0 / theta ** (2 * i / d)
        angle = positions.float() * freq  # (T,)
        c, s = torch.cos(angle)[:, None], torch.sin(angle)[:, None]
        a, b = x[..., i:i + 1].float(), x[..., i + half:i + half + 1].float()
        parts_a.append(a * c - b * s)
        parts_b.append(b * c + a * s)
    return torch.cat(parts_a + parts_b, dim=-1).to(x.dtype)
"""),
    "rope_einsum_rotation_matrix": ("apply_rope", f"""{HEADER}

def apply_rope(x, positions, theta=10000.0):
    d = x.shape[-1]
    half = d // 2
    inv_freq = 1.0 / (theta ** (torch.arange(0, d, 2).float() / d))
    angles = torch.einsum("t,f->tf", positions.float(), inv_freq)
    c, s = angles.cos(), angles.sin()
    rot = torch.stack([torch.stack([c, -s], -1), torch.stack([s, c], -1)], -2)  # (T, F, 2, 2)
    pairs = torch.stack([x[..., :half], x[..., half:]], -1).float()  # (..., T, F, 2)
    out = torch.einsum("tfij,...tfj->...tfi", rot, pairs)
    return torch.cat([out[..., 0], out[..., 1]], dim=-1).to(x.dtype)
"""),
    "alibi_lists": ("alibi_bias", alibi("""
    bias = []
    for h in range(1, n_heads + 1):
        m = 2 ** (-8 * h / n_heads)
        bias.append([[-m * (i - j) if j <= i else 0.0 for j in range(seq_len)]
                     for i in range(seq_len)])
    return torch.tensor(bias, dtype=torch.float32)""")),
    "alibi_masked_upper": ("alibi_bias", alibi("""
    start = 2 ** (-8 / n_heads)
    slopes = start ** torch.arange(1, n_heads + 1, dtype=torch.float32)
    i = torch.arange(seq_len)[:, None]
    j = torch.arange(seq_len)[None, :]
    bias = -slopes.view(-1, 1, 1) * (i - j)
    return bias.masked_fill(j > i, float("-inf"))""")),
    "alibi_abs_distance": ("alibi_bias", alibi("""
    slopes = torch.pow(2.0, -8.0 * torch.arange(1, n_heads + 1, dtype=torch.float64) / n_heads)
    pos = torch.arange(seq_len, dtype=torch.float64)
    distance = (pos[None, :] - pos[:, None]).abs()
    return (-slopes[:, None, None] * distance).float()""")),
    "alibi_positive_above_diagonal": ("alibi_bias", alibi(
        SLOPES + DISTANCE + "    return (-slopes[:, None, None] * distance).float()")),
}


# ---------------------------------------------------------------- extrapolation_limit
# Learners' readings of the position experiment's results table, one mistake each.

def limit(body: str, header: str = "", factor: str = "1.2") -> str:
    return f"{header}\ndef extrapolation_limit(losses, train_len, factor={factor}):\n{body}\n"


REFERENCE_LIMIT = """    out = {}
    for scheme, by_length in losses.items():
        base = by_length[train_len]
        out[scheme] = next((n for n in sorted(by_length) if by_length[n] > factor * base), None)
    return out"""

WRONG.update({
    "limit_unsorted": ("extrapolation_limit", limit("""    out = {}
    for scheme, by_length in losses.items():
        base = by_length[train_len]
        out[scheme] = next((n for n, loss in by_length.items() if loss > factor * base), None)
    return out"""), "increasing order"),
    "limit_last_holding": ("extrapolation_limit", limit("""    out = {}
    for scheme, by_length in losses.items():
        held = [n for n in sorted(by_length) if by_length[n] <= factor * by_length[train_len]]
        out[scheme] = held[-1] if len(held) < len(by_length) else None
    return out"""), "not the last length where it still holds"),
    "limit_min_baseline": ("extrapolation_limit", limit(
        REFERENCE_LIMIT.replace("by_length[train_len]", "min(by_length.values())")),
        "not with the lowest loss"),
    "limit_first_length_baseline": ("extrapolation_limit", limit(
        REFERENCE_LIMIT.replace("by_length[train_len]", "by_length[min(by_length)]")),
        "shortest length"),
    "limit_additive": ("extrapolation_limit", limit(
        REFERENCE_LIMIT.replace("factor * base", "base + factor")), "not added"),
    "limit_greater_or_equal": ("extrapolation_limit", limit(
        REFERENCE_LIMIT.replace("> factor * base", ">= factor * base")), "strictly greater"),
    "limit_skips_inf": ("extrapolation_limit", limit(REFERENCE_LIMIT.replace(
        "if by_length[n] > factor * base", "if math.isfinite(by_length[n]) and by_length[n] > factor * base"),
        "import math"), "counts as broken down"),
    "limit_drops_holding_schemes": ("extrapolation_limit", limit("""    out = {}
    for scheme, by_length in losses.items():
        for n in sorted(by_length):
            if by_length[n] > factor * by_length[train_len]:
                out[scheme] = n
                break
    return out"""), "every scheme needs an entry"),
    "limit_false_for_never": ("extrapolation_limit", limit(
        REFERENCE_LIMIT.replace("None)", "False)")), "use None, not False"),
    "limit_default_one_and_a_half": ("extrapolation_limit", limit(REFERENCE_LIMIT, factor="1.5"),
                                     "must default to factor=1.2"),
    "limit_longest_for_never": ("extrapolation_limit", limit(
        REFERENCE_LIMIT.replace("None)", "max(by_length))")), ""),
})

CORRECT.update({
    "limit_reference_form": ("extrapolation_limit", limit(REFERENCE_LIMIT)),
    "limit_numpy_ratios": ("extrapolation_limit", limit("""    result = {}
    for scheme, by_length in losses.items():
        lengths = np.array(sorted(by_length))
        ratio = np.array([by_length[n] for n in lengths]) / by_length[train_len]
        over = np.nonzero(ratio > factor)[0]
        result[scheme] = lengths[over[0]] if len(over) else None
    return result""", "import numpy as np")),
    "limit_loops_items": ("extrapolation_limit", limit("""    limits = {}
    for scheme in losses:
        limits[scheme] = None
        for length, loss in sorted(losses[scheme].items()):
            if loss / losses[scheme][train_len] > factor:
                limits[scheme] = length
                break
    return limits""")),
})
