"""Week 1 reference: causal_mask, scaled_dot_product_attention, MultiHeadAttention."""

import itertools
import math

import pytest
import torch
import torch.nn.functional as F
from torch.testing import assert_close

from solutions.attention import MultiHeadAttention, causal_mask, scaled_dot_product_attention


@pytest.mark.causal_mask
@pytest.mark.parametrize("seq_len", [1, 2, 7])
def test_causal_mask_is_lower_triangle(seq_len):
    mask = causal_mask(seq_len)
    assert mask.shape == (seq_len, seq_len) and mask.dtype == torch.bool
    for i in range(seq_len):
        for j in range(seq_len):
            assert bool(mask[i, j]) == (j <= i)


@pytest.mark.causal_mask
def test_causal_mask_device_argument():
    assert causal_mask(3, device="cpu").device.type == "cpu"
    assert causal_mask(3, device=torch.device("cpu")).device.type == "cpu"


def _attention_loop(q, k, v, mask):
    """Query by query, in float64: the formula with nothing vectorised."""
    out = torch.empty(q.shape[:-1] + v.shape[-1:], dtype=torch.float64)
    mask = mask.expand(q.shape[:-2] + (q.size(-2), k.size(-2)))
    for idx in itertools.product(*(range(n) for n in q.shape[:-2])):
        for i in range(q.size(-2)):
            keep = mask[idx][i]
            scores = (k[idx][keep].double() @ q[idx][i].double()) / math.sqrt(q.size(-1))
            out[idx][i] = torch.softmax(scores, dim=0) @ v[idx][keep].double()
    return out


@pytest.mark.scaled_dot_product_attention
def test_sdpa_matches_the_formula_with_a_causal_mask():
    g = torch.Generator().manual_seed(0)
    q, k, v = (torch.randn(2, 3, 5, 4, generator=g) for _ in range(3))
    mask = causal_mask(5)
    out = scaled_dot_product_attention(q, k, v, mask)
    assert out.shape == (2, 3, 5, 4) and out.dtype == torch.float32
    assert_close(out.double(), _attention_loop(q, k, v, mask), atol=1e-6, rtol=1e-6)


@pytest.mark.scaled_dot_product_attention
def test_sdpa_agrees_with_torch_and_broadcasts_masks():
    g = torch.Generator().manual_seed(1)
    q = torch.randn(2, 3, 6, 8, generator=g)
    k, v = torch.randn(2, 3, 9, 8, generator=g), torch.randn(2, 3, 9, 5, generator=g)
    full_mask = torch.rand(2, 3, 6, 9, generator=g) > 0.3
    full_mask[..., 0] = True  # every query sees at least one key
    for mask in (None, full_mask[0, 0], full_mask[:, :1], full_mask):
        expected = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
        assert_close(scaled_dot_product_attention(q, k, v, mask), expected, atol=1e-6, rtol=1e-5)


@pytest.mark.scaled_dot_product_attention
def test_sdpa_masked_keys_have_no_influence():
    g = torch.Generator().manual_seed(2)
    q, k, v = (torch.randn(1, 2, 5, 4, generator=g) for _ in range(3))
    mask = causal_mask(5)
    out = scaled_dot_product_attention(q, k, v, mask)
    k2, v2 = k.clone(), v.clone()
    k2[..., 3:, :] += 100.0
    v2[..., 3:, :] -= 100.0
    out2 = scaled_dot_product_attention(q, k2, v2, mask)
    assert torch.equal(out[..., :3, :], out2[..., :3, :])


@pytest.mark.scaled_dot_product_attention
def test_sdpa_does_not_call_the_torch_kernel(monkeypatch):
    def forbidden(*args, **kwargs):
        raise AssertionError("the reference must write attention out")

    monkeypatch.setattr(F, "scaled_dot_product_attention", forbidden)
    monkeypatch.setattr(torch._C._nn, "scaled_dot_product_attention", forbidden)
    q = torch.randn(1, 1, 3, 2)
    scaled_dot_product_attention(q, q, q, causal_mask(3))


@pytest.mark.scaled_dot_product_attention
def test_sdpa_is_differentiable_and_keeps_float64():
    q, k, v = (torch.randn(1, 2, 4, 3, dtype=torch.float64, requires_grad=True) for _ in range(3))
    out = scaled_dot_product_attention(q, k, v, causal_mask(4))
    assert out.dtype == torch.float64
    out.sum().backward()
    assert all(t.grad is not None and torch.isfinite(t.grad).all() for t in (q, k, v))


@pytest.mark.multi_head_attention
def test_mha_state_dict_and_shapes():
    mha = MultiHeadAttention(dim=32, n_heads=4)
    shapes = {name: tuple(t.shape) for name, t in mha.state_dict().items()}
    assert shapes == {f"{p}_proj.weight": (32, 32) for p in "qkvo"}
    assert mha(torch.randn(2, 7, 32)).shape == (2, 7, 32)


@pytest.mark.multi_head_attention
def test_mha_matches_per_head_computation():
    torch.manual_seed(0)
    dim, n_heads, T = 24, 3, 6
    mha = MultiHeadAttention(dim, n_heads)
    x = torch.randn(2, T, dim)
    d = dim // n_heads
    heads = []
    for h in range(n_heads):
        rows = slice(h * d, (h + 1) * d)
        q = x @ mha.q_proj.weight[rows].T
        k = x @ mha.k_proj.weight[rows].T
        v = x @ mha.v_proj.weight[rows].T
        heads.append(F.scaled_dot_product_attention(q, k, v, is_causal=True))  # (B, T, d)
    expected = torch.cat(heads, dim=-1) @ mha.o_proj.weight.T
    assert_close(mha(x), expected, atol=1e-5, rtol=1e-5)


@pytest.mark.multi_head_attention
def test_mha_output_never_depends_on_future_tokens():
    torch.manual_seed(0)
    mha = MultiHeadAttention(16, 2)
    x = torch.randn(1, 8, 16)
    out = mha(x)
    for t in range(8):
        x2 = x.clone()
        x2[:, t + 1 :] = torch.randn_like(x2[:, t + 1 :])
        assert torch.equal(mha(x2)[:, : t + 1], out[:, : t + 1])


@pytest.mark.multi_head_attention
def test_mha_has_no_position_information():
    """Without positions, the last token's output ignores the order of the tokens before it."""
    torch.manual_seed(0)
    mha = MultiHeadAttention(16, 4)
    x = torch.randn(1, 6, 16)
    shuffled = torch.cat((x[:, torch.tensor([3, 0, 4, 1, 2])], x[:, 5:]), dim=1)
    assert_close(mha(shuffled)[:, -1], mha(x)[:, -1], atol=1e-6, rtol=1e-5)
