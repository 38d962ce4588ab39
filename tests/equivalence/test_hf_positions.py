"""Week 4 against transformers: apply_rope vs Llama's rotary embedding, ALiBi vs BLOOM's."""

import pytest
import torch
from torch.testing import assert_close

from solutions.attention import causal_mask
from solutions.positions import alibi_bias, alibi_slopes, apply_rope

transformers = pytest.importorskip("transformers")
modeling_llama = pytest.importorskip("transformers.models.llama.modeling_llama")
modeling_bloom = pytest.importorskip("transformers.models.bloom.modeling_bloom")

pytestmark = pytest.mark.equivalence
TOL = {"atol": 1e-5, "rtol": 1e-5}


def _hf_rope(q, k, positions, theta):
    """Llama's path: LlamaRotaryEmbedding gives (cos, sin), apply_rotary_pos_emb rotates."""
    head_dim = q.size(-1)
    config = transformers.LlamaConfig(
        hidden_size=head_dim * 2,
        num_attention_heads=2,
        max_position_embeddings=8192,
        rope_parameters={"rope_type": "default", "rope_theta": theta},
    )
    rotary = modeling_llama.LlamaRotaryEmbedding(config)
    cos, sin = rotary(q, positions[None])  # (1, T, D)
    return modeling_llama.apply_rotary_pos_emb(q, k, cos, sin)


@pytest.mark.apply_rope
@pytest.mark.parametrize("theta", [10000.0, 1e6])
@pytest.mark.parametrize("start", [0, 4090])
def test_apply_rope_matches_llama_rotary_embedding(theta, start):
    g = torch.Generator().manual_seed(0)
    q = torch.randn(2, 4, 12, 32, generator=g)
    k = torch.randn(2, 2, 12, 32, generator=g)
    positions = torch.arange(start, start + 12)
    q_hf, k_hf = _hf_rope(q, k, positions, theta)
    assert_close(apply_rope(q, positions, theta), q_hf, **TOL)
    assert_close(apply_rope(k, positions, theta), k_hf, **TOL)


@pytest.mark.apply_rope
def test_rope_angles_are_float32_in_transformers_too():
    """With float64 inputs both keep float32 angles and agree to 1e-12; float64 angles drift
    from transformers by ~1e-4 near position 4096 (the tolerance the graders allow)."""
    g = torch.Generator().manual_seed(1)
    q = torch.randn(1, 2, 8, 128, generator=g, dtype=torch.float64)
    positions = torch.arange(4090, 4098)
    q_hf, _ = _hf_rope(q, q, positions, 10000.0)
    assert q_hf.dtype == torch.float64
    assert_close(apply_rope(q, positions), q_hf, atol=1e-12, rtol=1e-12)

    inv_freq = 10000.0 ** (-torch.arange(0, 128, 2, dtype=torch.float64) / 128)
    angles = torch.cat((positions.double()[:, None] * inv_freq,) * 2, dim=-1)
    rotate_half = torch.cat((-q[..., 64:], q[..., :64]), dim=-1)
    exact = q * angles.cos() + rotate_half * angles.sin()
    drift = (exact - q_hf).abs().max().item()
    assert 1e-5 < drift < 2e-3


@pytest.mark.alibi_bias
@pytest.mark.parametrize("n_heads", [4, 8, 16])
def test_alibi_matches_bloom_up_to_a_per_row_constant(n_heads):
    """BLOOM adds slope * j (key position), which differs from -slope * (i - j) by slope * i,
    a constant per query row: the attention weights are the same."""
    T = 7
    bloom = modeling_bloom.build_alibi_tensor(torch.ones(1, T), n_heads, torch.float32)
    bloom = bloom.view(n_heads, 1, T)  # (H, 1, T): slope_h * j
    assert_close(bloom[:, 0, 1], alibi_slopes(n_heads), **TOL)  # same slopes (powers of two)

    scores = torch.randn(n_heads, T, T, generator=torch.Generator().manual_seed(0))
    masked = ~causal_mask(T)
    ours = (scores + alibi_bias(n_heads, T)).masked_fill(masked, float("-inf")).softmax(-1)
    theirs = (scores + bloom).masked_fill(masked, float("-inf")).softmax(-1)
    assert_close(ours, theirs, **TOL)


@pytest.mark.alibi_bias
def test_alibi_slopes_differ_from_bloom_when_heads_are_not_a_power_of_two():
    """Pinned difference: the course uses 2^(-8h/H) for every H; BLOOM (like the paper)
    interleaves two power-of-two sequences when H is not a power of two."""
    bloom = modeling_bloom.build_alibi_tensor(torch.ones(1, 2), 12, torch.float32)
    bloom_slopes = bloom.view(12, 1, 2)[:, 0, 1]
    assert not torch.allclose(bloom_slopes, alibi_slopes(12))
    assert_close(bloom_slopes[:8], alibi_slopes(8))  # the first 8 follow the H = 8 sequence
