"""Week 9 against transformers' DeepSeek-V3: MultiHeadLatentAttention vs DeepseekV3Attention
(with its RoPE pairing), DeepSeekMoE vs DeepseekV3MoE (random correction bias), built from
small configs, eager attention and experts, no hub."""

import pytest
import torch
from torch.testing import assert_close

from solutions.deepseek_moe import DeepSeekMoE, deepseek_route
from solutions.latent_attention import MultiHeadLatentAttention
from solutions.positions import interleaved_to_halves

transformers = pytest.importorskip("transformers")
modeling = pytest.importorskip("transformers.models.deepseek_v3.modeling_deepseek_v3")

pytestmark = pytest.mark.equivalence
TOL = {"atol": 1e-5, "rtol": 1e-5}
DIM = 32


def _config(**overrides):
    config = dict(
        vocab_size=50, hidden_size=DIM, intermediate_size=48, moe_intermediate_size=12,
        num_hidden_layers=1, num_attention_heads=4, num_key_value_heads=4,
        q_lora_rank=24, kv_lora_rank=16, qk_nope_head_dim=8, qk_rope_head_dim=4, v_head_dim=6,
        n_routed_experts=8, n_shared_experts=2, num_experts_per_tok=3, n_group=4, topk_group=2,
        routed_scaling_factor=2.5, norm_topk_prob=True, first_k_dense_replace=0,
        max_position_embeddings=128, rope_parameters={"rope_type": "default", "rope_theta": 500.0},
        attn_implementation="eager", experts_implementation="eager",
    )
    return transformers.DeepseekV3Config(**{**config, **overrides})


def _randomise(module: torch.nn.Module, seed: int = 0) -> None:
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in module.named_parameters():
            if "layernorm" in name:
                p.copy_(1 + 0.3 * torch.randn(p.shape, generator=g))
            else:
                p.copy_(torch.randn(p.shape, generator=g) / p.shape[-1] ** 0.5)


def _hf_attention(config, x: torch.Tensor) -> torch.Tensor:
    attn = modeling.DeepseekV3Attention(config, layer_idx=0).eval()
    _randomise(attn)
    T = x.shape[1]
    rotary = modeling.DeepseekV3RotaryEmbedding(config)
    position_embeddings = rotary(x, torch.arange(T)[None])
    mask = torch.full((T, T), float("-inf")).triu(1)[None, None]  # additive causal mask
    with torch.no_grad():
        out, _ = attn(x, position_embeddings=position_embeddings, attention_mask=mask)
    return attn, out


def _ours(attn, config) -> MultiHeadLatentAttention:
    ours = MultiHeadLatentAttention(
        DIM, config.num_attention_heads, config.q_lora_rank, config.kv_lora_rank,
        config.qk_nope_head_dim, config.qk_rope_head_dim, config.v_head_dim,
        rope_theta=config.rope_parameters["rope_theta"])
    ours.load_state_dict(attn.state_dict())  # the same names: loads by key
    return ours.eval()


@pytest.mark.multi_head_latent_attention
@pytest.mark.parametrize("q_lora_rank", [24, None])
def test_mla_matches_deepseek_v3_attention(q_lora_rank):
    config = _config(q_lora_rank=q_lora_rank)
    assert config.rope_interleave  # transformers' default, as in the published config
    x = torch.randn(2, 11, DIM)
    attn, expected = _hf_attention(config, x)
    with torch.no_grad():
        assert_close(_ours(attn, config)(x), expected, **TOL)


@pytest.mark.multi_head_latent_attention
def test_mla_matches_at_long_positions():
    config = _config(rope_parameters={"rope_type": "default", "rope_theta": 10000.0})
    x = torch.randn(1, 300, DIM)
    attn, expected = _hf_attention(config, x)
    with torch.no_grad():
        assert_close(_ours(attn, config)(x), expected, atol=2e-5, rtol=2e-5)


@pytest.mark.multi_head_latent_attention
def test_rope_pairing_of_deepseek_v3_is_adjacent_pairs():
    """The finding, written as a test: with ``rope_interleave=True`` transformers pairs
    (2i, 2i+1), as we do; with False it pairs (i, i + d/2), which equals our module only after
    the RoPE rows of q_b_proj and kv_a_proj_with_mqa are permuted (halves -> interleaved)."""
    x = torch.randn(2, 9, DIM)
    config = _config(rope_interleave=False)
    attn, expected = _hf_attention(config, x)
    ours = _ours(attn, config)
    with torch.no_grad():
        assert not torch.allclose(ours(x), expected, atol=1e-3)
        # our pair (2i, 2i+1) must hold what transformers pairs as (i, i + d/2)
        rope, nope, H = 4, 8, 4
        to_pairs = torch.argsort(interleaved_to_halves(rope))
        q_b = ours.q_b_proj.weight.view(H, nope + rope, -1)
        q_b[:, nope:] = q_b[:, nope:][:, to_pairs].clone()
        kv_a = ours.kv_a_proj_with_mqa.weight
        kv_a[16:] = kv_a[16:][to_pairs].clone()
        assert_close(ours(x), expected, **TOL)


@pytest.mark.multi_head_latent_attention
def test_mla_float64_and_bf16_match():
    config = _config()
    x = torch.randn(2, 7, DIM, dtype=torch.float64)
    attn, _ = _hf_attention(config, x.float())
    attn = attn.double()
    rotary = modeling.DeepseekV3RotaryEmbedding(config)
    with torch.no_grad():
        pe = rotary(x, torch.arange(7)[None])
        mask = torch.full((7, 7), float("-inf"), dtype=torch.float64).triu(1)[None, None]
        expected, _ = attn(x, position_embeddings=pe, attention_mask=mask)
        # angles in float32 on both sides: float64 agrees to float32 rounding of the angles
        assert_close(_ours(attn, config).double()(x), expected, atol=1e-6, rtol=1e-6)


def _moe_state(block) -> dict[str, torch.Tensor]:
    """transformers' fused experts (gate_up_proj (E, 2I, d): rows [:I] gate, [I:] up;
    down_proj (E, d, I)) as one SwiGLU per expert; router and shared experts keep their keys."""
    state = {k: v for k, v in block.state_dict().items() if not k.startswith("experts.")}
    gate_up, down = block.experts.gate_up_proj, block.experts.down_proj
    for e in range(gate_up.shape[0]):
        gate, up = gate_up[e].chunk(2)
        state[f"experts.{e}.gate_proj.weight"] = gate
        state[f"experts.{e}.up_proj.weight"] = up
        state[f"experts.{e}.down_proj.weight"] = down[e]
    return state


def _block_and_ours(seed=0, **overrides):
    config = _config(**overrides)
    block = modeling.DeepseekV3MoE(config).eval()
    _randomise(block, seed)
    g = torch.Generator().manual_seed(seed + 1)
    with torch.no_grad():  # a fresh bias is all zeros: bias bugs would stay invisible
        block.gate.e_score_correction_bias.copy_(0.2 * torch.randn(8, generator=g))
    ours = DeepSeekMoE(DIM, config.moe_intermediate_size, config.n_routed_experts,
                       config.n_shared_experts, config.num_experts_per_tok, config.n_group,
                       config.topk_group, config.routed_scaling_factor, config.norm_topk_prob)
    ours.load_state_dict(_moe_state(block))
    return block, ours.eval()


@pytest.mark.deepseek_moe
@pytest.mark.parametrize("overrides", [
    {},
    {"norm_topk_prob": False},
    {"n_group": 1, "topk_group": 1},
    {"n_group": 2, "topk_group": 1},
    {"num_experts_per_tok": 1, "n_shared_experts": 1, "routed_scaling_factor": 1.0},
])
def test_deepseek_moe_matches_deepseek_v3_moe(overrides):
    block, ours = _block_and_ours(**overrides)
    x = torch.randn(3, 7, DIM)
    with torch.no_grad():
        y, router_logits = ours(x)
        expected = block(x)
        hf_logits, hf_weights, hf_experts = block.gate(x)
    assert_close(y, expected, **TOL)
    assert router_logits.dtype == torch.float32
    assert_close(router_logits, hf_logits, **TOL)
    weights, experts = deepseek_route(
        router_logits, ours.gate.e_score_correction_bias, ours.top_k, ours.n_group,
        ours.topk_group, ours.routed_scaling_factor, ours.norm_topk_prob)
    order, hf_order = experts.argsort(-1), hf_experts.argsort(-1)  # theirs are unsorted
    assert torch.equal(experts.gather(1, order), hf_experts.gather(1, hf_order))
    assert_close(weights.gather(1, order), hf_weights.gather(1, hf_order), **TOL)


@pytest.mark.deepseek_moe
def test_the_correction_bias_matters():
    """Without the bias, different experts are chosen: the comparison above would catch a
    submission that ignores it."""
    block, ours = _block_and_ours()
    x = torch.randn(4, 8, DIM)
    with torch.no_grad():
        ours.gate.e_score_correction_bias.zero_()
        y, _ = ours(x)
        assert not torch.allclose(y, block(x), atol=1e-4)
