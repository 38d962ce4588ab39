"""Week 3 parts against transformers' Llama: RMSNorm vs LlamaRMSNorm, SwiGLU vs LlamaMLP."""

import pytest
import torch
from torch.testing import assert_close

from solutions.feedforward import SwiGLU
from solutions.normalization import RMSNorm

modeling_llama = pytest.importorskip("transformers.models.llama.modeling_llama")
LlamaConfig = pytest.importorskip("transformers").LlamaConfig

pytestmark = pytest.mark.equivalence
TOL = {"atol": 1e-5, "rtol": 1e-5}


def _hf_norm(dim, eps, seed=0):
    hf = modeling_llama.LlamaRMSNorm(dim, eps=eps)
    with torch.no_grad():
        hf.weight.normal_(1.0, 0.5, generator=torch.Generator().manual_seed(seed))
    ours = RMSNorm(dim, eps=eps)
    ours.load_state_dict(hf.state_dict())
    return ours, hf


@pytest.mark.rmsnorm
@pytest.mark.parametrize("eps", [1e-6, 1e-5])
def test_rmsnorm_matches_llama_rmsnorm(eps):
    ours, hf = _hf_norm(64, eps)
    x = torch.randn(3, 7, 64) * 3
    assert_close(ours(x), hf(x), **TOL)


@pytest.mark.rmsnorm
def test_rmsnorm_eps_is_inside_the_square_root():
    """Eps placement only shows with a large eps or tiny inputs."""
    ours, hf = _hf_norm(16, eps=0.5)
    x = torch.randn(4, 16) * 1e-2
    assert_close(ours(x), hf(x), **TOL)
    outside = x / (x.pow(2).mean(-1, keepdim=True).sqrt() + 0.5) * hf.weight
    assert not torch.allclose(outside, hf(x), atol=1e-3)


@pytest.mark.rmsnorm
def test_rmsnorm_casts_back_before_the_weight_in_bf16():
    """transformers normalises in float32, casts to bf16, then multiplies by the weight."""
    ours, hf = _hf_norm(256, eps=1e-6)
    ours, hf = ours.to(torch.bfloat16), hf.to(torch.bfloat16)
    x = (torch.randn(8, 256) * 4).to(torch.bfloat16)
    assert torch.equal(ours(x), hf(x))
    x32 = x.float()
    normed = x32 * torch.rsqrt(x32.pow(2).mean(-1, keepdim=True) + 1e-6)
    other_order = (hf.weight.float() * normed).to(torch.bfloat16)  # weight in float32, then cast
    assert (other_order.float() - hf(x).float()).abs().max() > 1e-3


@pytest.mark.swiglu
def test_swiglu_matches_llama_mlp():
    config = LlamaConfig(hidden_size=32, intermediate_size=88, hidden_act="silu", mlp_bias=False)
    torch.manual_seed(0)
    hf = modeling_llama.LlamaMLP(config)
    ours = SwiGLU(32, 88)
    ours.load_state_dict(hf.state_dict())  # gate_proj / up_proj / down_proj by key
    x = torch.randn(2, 9, 32)
    assert_close(ours(x), hf(x), **TOL)
