"""Week 4 reference: apply_rope (and the interleaved form), alibi_bias, sinusoidal_positions."""

import math

import pytest
import torch
from torch.testing import assert_close

from solutions.positions import (
    alibi_bias,
    alibi_slopes,
    apply_rope,
    interleaved_to_halves,
    rope_interleaved,
    sinusoidal_positions,
)


def _rope_complex(x, positions, theta=10000.0):
    """RoPE as complex multiplication, all in float64: pairs (p, p + D/2) as complex numbers."""
    d = x.size(-1)
    inv_freq = theta ** (-torch.arange(0, d, 2, dtype=torch.float64) / d)
    angles = positions.double()[:, None] * inv_freq
    z = torch.complex(x[..., : d // 2].double(), x[..., d // 2 :].double()) * torch.polar(
        torch.ones_like(angles), angles
    )
    return torch.cat((z.real, z.imag), dim=-1)


@pytest.mark.apply_rope
def test_rope_is_a_rotation_of_the_split_half_pairs():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(2, 3, 10, 16, generator=g, dtype=torch.float64)
    positions = torch.arange(10)
    # the angles are float32, as in transformers: exact only to ~1e-7 * position
    assert_close(apply_rope(x, positions), _rope_complex(x, positions), atol=1e-6, rtol=0)
    far = torch.arange(10) * 7 + 3
    assert_close(apply_rope(x, far, theta=1e6), _rope_complex(x, far, 1e6), atol=1e-5, rtol=0)


@pytest.mark.apply_rope
def test_rope_position_zero_is_identity_and_dtype_is_kept():
    x = torch.randn(4, 5, 8)
    assert torch.equal(apply_rope(x, torch.zeros(5, dtype=torch.long)), x)
    for dtype in (torch.float32, torch.float64, torch.bfloat16):
        assert apply_rope(x.to(dtype), torch.arange(5)).dtype == dtype


@pytest.mark.apply_rope
def test_rope_preserves_norms_of_each_pair():
    x = torch.randn(3, 50, 32, dtype=torch.float64)
    out = apply_rope(x, torch.arange(50))
    pair_norm = lambda t: t[..., :16] ** 2 + t[..., 16:] ** 2  # noqa: E731
    assert_close(pair_norm(out), pair_norm(x))
    assert_close(out.norm(dim=-1), x.norm(dim=-1))


@pytest.mark.apply_rope
def test_rope_scores_depend_only_on_the_offset():
    g = torch.Generator().manual_seed(1)
    q = torch.randn(64, generator=g, dtype=torch.float64)
    k = torch.randn(64, generator=g, dtype=torch.float64)

    def score(m, n):
        qm = apply_rope(q[None], torch.tensor([m]))[0]
        kn = apply_rope(k[None], torch.tensor([n]))[0]
        return (qm @ kn).item()

    for offset in (0, 1, 5, 37):
        values = [score(m + offset, m) for m in (0, 3, 100, 1000)]
        # angles are float32 (as in transformers), hence 1e-4 and not 1e-12
        assert max(values) - min(values) < 1e-4 * max(1.0, abs(values[0]))


@pytest.mark.apply_rope
def test_rope_angles_are_float32_like_transformers():
    """Pins the course tolerance: exact float64 RoPE drifts ~1e-5 near 100, ~1e-4 near 4096."""
    x = torch.randn(1, 1, 1, 128, dtype=torch.float64).expand(1, 1, 4097, 128)
    positions = torch.arange(4097)
    drift = (apply_rope(x, positions) - _rope_complex(x, positions)).abs().amax(dim=(0, 1, 3))
    assert drift[:10].max() < 1e-6
    assert 1e-6 < drift[90:110].max() < 1e-4
    assert 1e-5 < drift[4000:].max() < 2e-3


@pytest.mark.apply_rope
def test_interleaved_form_is_a_permutation_of_the_split_half_form():
    x = torch.randn(2, 7, 12, dtype=torch.float64)
    positions = torch.arange(7)
    perm = interleaved_to_halves(12)
    assert perm.tolist() == [0, 2, 4, 6, 8, 10, 1, 3, 5, 7, 9, 11]
    assert_close(rope_interleaved(x, positions)[..., perm], apply_rope(x[..., perm], positions))
    # but they are different functions of the same vector
    assert not torch.allclose(rope_interleaved(x, positions), apply_rope(x, positions))
    # permuting q and k alike leaves every score unchanged: weights can be converted
    q, k = x, torch.randn_like(x)
    s_inter = rope_interleaved(q, positions) @ rope_interleaved(k, positions).transpose(-2, -1)
    s_halves = apply_rope(q[..., perm], positions) @ apply_rope(k[..., perm], positions).mT
    assert_close(s_inter, s_halves)


@pytest.mark.alibi_bias
def test_alibi_values():
    bias = alibi_bias(8, 5)
    assert bias.shape == (8, 5, 5) and bias.dtype == torch.float32
    slopes = [2.0 ** (-h) for h in range(1, 9)]  # 2^(-8h/8)
    assert_close(alibi_slopes(8), torch.tensor(slopes))
    for h in range(8):
        for i in range(5):
            for j in range(i + 1):
                assert bias[h, i, j].item() == pytest.approx(-slopes[h] * (i - j))
    assert (bias.triu(1) == 0).all()  # above the diagonal: left to the causal mask


@pytest.mark.alibi_bias
def test_alibi_slopes_for_other_head_counts():
    for n_heads in (1, 3, 12):
        expected = [2.0 ** (-8 * h / n_heads) for h in range(1, n_heads + 1)]
        assert_close(alibi_slopes(n_heads), torch.tensor(expected))
        assert_close(alibi_bias(n_heads, 4)[:, 3, 0], -3 * torch.tensor(expected))


@pytest.mark.alibi_bias
def test_alibi_favours_recent_tokens():
    """With equal raw scores, attention weights decrease with distance, faster in early heads."""
    weights = torch.softmax(alibi_bias(4, 6)[:, -1], dim=-1)  # (H, T): last query
    assert (weights.diff(dim=-1) > 0).all()
    assert (weights[:, -1].diff() < 0).all()


@pytest.mark.apply_rope  # week 4, lesson helper
def test_sinusoidal_positions():
    pe = sinusoidal_positions(50, 16)
    assert pe.shape == (50, 16) and pe.dtype == torch.float32
    assert torch.equal(pe[0, 0::2], torch.zeros(8)) and torch.equal(pe[0, 1::2], torch.ones(8))
    assert pe[7, 2].item() == pytest.approx(math.sin(7 / 10000 ** (2 / 16)), abs=1e-6)
    assert pe[7, 3].item() == pytest.approx(math.cos(7 / 10000 ** (2 / 16)), abs=1e-6)
