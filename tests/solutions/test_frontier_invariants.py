"""Week 9 reference: multi-head latent attention and DeepSeekMoE, checked by invariants."""

import math

import pytest
import torch
import torch.nn.functional as F
from torch.testing import assert_close

from solutions.attention import scaled_dot_product_attention
from solutions.deepseek_moe import DeepSeekMoE, deepseek_route, expert_load, update_routing_bias
from solutions.efficient_attention import kv_cache_bytes
from solutions.latent_attention import (
    CachedLatentAttention,
    LatentKVCache,
    MultiHeadLatentAttention,
    absorbed_projections,
    decode_from_latents,
    latent_cache_bytes,
)
from solutions.llama4 import attention_temperature, chunked_attention_mask, qk_norm
from solutions.moe import route
from solutions.positions import apply_rope, rope_interleaved

MLA = dict(dim=32, n_heads=4, q_lora_rank=24, kv_lora_rank=16, qk_nope_head_dim=8,
           qk_rope_head_dim=4, v_head_dim=6)


def _mla(cls=MultiHeadLatentAttention, seed=0, **overrides) -> MultiHeadLatentAttention:
    torch.manual_seed(seed)
    attn = cls(**{**MLA, **overrides}).double()
    with torch.no_grad():  # norm weights away from one, so that a skipped norm shows
        for name, p in attn.named_parameters():
            if "layernorm" in name:
                p.copy_(1 + 0.3 * torch.randn_like(p))
            else:
                p.copy_(torch.randn_like(p) / math.sqrt(p.shape[-1]))
    return attn


def _naive_mla(attn: MultiHeadLatentAttention, x: torch.Tensor) -> torch.Tensor:
    """MLA written head by head and token by token, from the state dict alone."""
    B, T, _ = x.shape
    H, nope, rope = attn.n_heads, attn.qk_nope_head_dim, attn.qk_rope_head_dim
    sd = attn.state_dict()

    def rms(t, w):
        return t * torch.rsqrt(t.pow(2).mean(-1, keepdim=True) + 1e-6) * w

    if attn.q_lora_rank is None:
        q = x @ sd["q_proj.weight"].T
    else:
        q = rms(x @ sd["q_a_proj.weight"].T, sd["q_a_layernorm.weight"]) @ sd["q_b_proj.weight"].T
    kv_a = x @ sd["kv_a_proj_with_mqa.weight"].T
    latent = rms(kv_a[..., :attn.kv_lora_rank], sd["kv_a_layernorm.weight"])
    k_rope = kv_a[..., attn.kv_lora_rank:]
    kv = (latent @ sd["kv_b_proj.weight"].T).view(B, T, H, nope + attn.v_head_dim)
    q = q.view(B, T, H, nope + rope)
    out = torch.zeros(B, T, H, attn.v_head_dim, dtype=x.dtype)

    def rotate_pairs(vec, position):  # (B, rope): pairs (2i, 2i+1) turned by position * f_i
        angle = position * attn.rope_theta ** (-torch.arange(0, rope, 2, dtype=x.dtype) / rope)
        a, b = vec[:, 0::2], vec[:, 1::2]
        turned = torch.stack((a * angle.cos() - b * angle.sin(), b * angle.cos() + a * angle.sin()))
        return turned.permute(1, 2, 0).reshape(vec.shape)

    for t in range(T):
        for h in range(H):
            qr = rotate_pairs(q[:, t, h, nope:], t)
            scores = []
            for j in range(t + 1):
                kr = rotate_pairs(k_rope[:, j], j)
                s = (q[:, t, h, :nope] * kv[:, j, h, :nope]).sum(-1) + (qr * kr).sum(-1)
                scores.append(s / math.sqrt(nope + rope))
            w = torch.stack(scores, -1).softmax(-1)  # (B, t + 1)
            out[:, t, h] = (w[..., None] * kv[:, : t + 1, h, nope:]).sum(1)
    return out.reshape(B, T, -1) @ sd["o_proj.weight"].T


@pytest.mark.multi_head_latent_attention
def test_mla_state_dict_names_and_shapes():
    attn = MultiHeadLatentAttention(**MLA)
    shapes = {k: tuple(v.shape) for k, v in attn.state_dict().items()}
    assert shapes == {
        "q_a_proj.weight": (24, 32), "q_a_layernorm.weight": (24,),
        "q_b_proj.weight": (4 * 12, 24), "kv_a_proj_with_mqa.weight": (16 + 4, 32),
        "kv_a_layernorm.weight": (16,), "kv_b_proj.weight": (4 * (8 + 6), 16),
        "o_proj.weight": (32, 4 * 6)}
    no_q_lora = MultiHeadLatentAttention(**{**MLA, "q_lora_rank": None})
    assert "q_proj.weight" in no_q_lora.state_dict() and not hasattr(no_q_lora, "q_a_proj")


@pytest.mark.multi_head_latent_attention
@pytest.mark.parametrize("q_lora_rank", [24, None])
def test_mla_equals_head_by_head_loop(q_lora_rank):
    attn = _mla(q_lora_rank=q_lora_rank)
    x = torch.randn(2, 6, 32, dtype=torch.float64)
    # float32 RoPE angles (as transformers) against float64 ones here
    assert_close(attn(x), _naive_mla(attn, x), rtol=1e-5, atol=1e-6)


@pytest.mark.multi_head_latent_attention
def test_mla_is_causal():
    attn = _mla()
    x = torch.randn(1, 8, 32, dtype=torch.float64)
    y = attn(x)
    x2 = x.clone()
    x2[:, 5:] = torch.randn(1, 3, 32, dtype=torch.float64)
    assert_close(attn(x2)[:, :5], y[:, :5])
    assert not torch.allclose(attn(x2)[:, 5:], y[:, 5:])


@pytest.mark.multi_head_latent_attention
@pytest.mark.parametrize("q_lora_rank", [24, None])
def test_absorbed_cached_decoding_equals_training_form(q_lora_rank):
    """Prefill and then one token at a time from the latent cache (the absorbed form) gives
    the training form's outputs; the cache holds only the latent and the RoPE key."""
    attn = _mla(CachedLatentAttention, q_lora_rank=q_lora_rank)
    x = torch.randn(2, 9, 32, dtype=torch.float64)
    full = attn(x)
    cache = LatentKVCache()
    pieces = [attn(x[:, a:b], cache) for a, b in [(0, 4), (4, 5), (5, 6), (6, 9)]]
    assert_close(torch.cat(pieces, dim=1), full, rtol=1e-10, atol=1e-10)
    assert cache.pos == 9
    assert cache.latent.shape == (2, 9, 16) and cache.k_rope.shape == (2, 9, 4)


@pytest.mark.multi_head_latent_attention
def test_folding_kv_b_proj_into_the_query_and_output_projections():
    """W_UK folded into q_b_proj and W_UV into o_proj: attention over the latents alone."""
    attn = _mla()
    x = torch.randn(1, 7, 32, dtype=torch.float64)
    H, nope, rope, r = 4, 8, 4, 16
    T = x.shape[1]
    w_q, w_o = absorbed_projections(attn, H, nope)  # (H, r, q_lora), (dim, H, r)
    assert w_q.shape == (H, r, 24) and w_o.shape == (32, H, r)
    c_q = attn.q_a_layernorm(attn.q_a_proj(x))  # (1, T, q_lora)
    latent, k_rope = attn.kv_a_proj_with_mqa(x).split([r, rope], -1)
    latent = attn.kv_a_layernorm(latent)
    pos = torch.arange(T)
    q_rope = rope_interleaved(attn.q_b_proj(c_q).view(1, T, H, -1)[..., nope:].transpose(1, 2),
                              pos)
    k_rope = rope_interleaved(k_rope[:, None], pos)
    q_latent = torch.einsum("hri,bti->bhtr", w_q, c_q)
    scores = (q_latent @ latent[:, None].transpose(-1, -2) + q_rope @ k_rope.transpose(-1, -2))
    weights = (scores / math.sqrt(nope + rope)).masked_fill(
        ~torch.ones(T, T, dtype=torch.bool).tril(), float("-inf")).softmax(-1)
    y = torch.einsum("dhr,bhtr->btd", w_o, weights @ latent[:, None])
    assert_close(y, attn(x), rtol=1e-10, atol=1e-10)


@pytest.mark.multi_head_latent_attention
def test_rope_on_the_latent_would_break_absorption():
    """Why RoPE is decoupled: a rotation between W_UK and the query depends on the key's
    position, so (R_t W_UK)^T q cannot be precomputed once for all cached tokens."""
    torch.manual_seed(0)
    w_uk = torch.randn(8, 16, dtype=torch.float64)  # one head: latent (16) -> key (8)
    q = torch.randn(8, dtype=torch.float64)
    latents = torch.randn(5, 16, dtype=torch.float64)
    keys = rope_interleaved((latents @ w_uk.T)[None], torch.arange(5))[0]  # (5, 8)
    folded = latents @ (w_uk.T @ q)  # one vector for every key: only valid without rotation
    assert not torch.allclose(keys @ q, folded)
    assert_close(latents @ w_uk.T @ q, folded)


@pytest.mark.multi_head_latent_attention
def test_interleaved_and_split_halves_rope_differ_on_the_same_weights():
    torch.manual_seed(0)
    x = torch.randn(1, 6, 8, dtype=torch.float64)
    pos = torch.arange(6)
    assert not torch.allclose(rope_interleaved(x, pos), apply_rope(x, pos))


def test_cache_bytes_per_token_at_deepseek_v3_sizes():
    """61 layers of 512 + 64 cached numbers against MHA, GQA and MQA with keys of 128."""
    mla = latent_cache_bytes(61, 512, 64, seq_len=1)
    assert mla == 61 * 576 * 2 == 70_272
    mha = kv_cache_bytes(61, 128, 128, seq_len=1)
    assert round(mha / mla, 1) == 56.9  # 128 heads of keys and values of 128
    assert kv_cache_bytes(61, 8, 128, 1) > mla > kv_cache_bytes(61, 1, 128, 1)
    assert mla / kv_cache_bytes(61, 1, 128, 1) == 2.25  # "GQA with 2.25 groups" (DeepSeek-V2)


# ---------------------------------------------------------------- DeepSeekMoE

MOE = dict(dim=16, expert_hidden_dim=12, n_routed_experts=8, n_shared_experts=2, top_k=3,
           n_group=4, topk_group=2, routed_scaling_factor=2.5)


def _moe(seed=0, **overrides) -> DeepSeekMoE:
    torch.manual_seed(seed)
    moe = DeepSeekMoE(**{**MOE, **overrides}).double()
    with torch.no_grad():
        for p in moe.parameters():
            p.copy_(torch.randn_like(p) / math.sqrt(p.shape[-1]))
        moe.gate.e_score_correction_bias.copy_(0.3 * torch.randn(moe.gate.weight.shape[0]))
    return moe


def _dense_deepseek(moe: DeepSeekMoE, x: torch.Tensor) -> torch.Tensor:
    """Every expert on every token, weighted by a zero-filled (N, E) routing matrix."""
    x_flat = x.reshape(-1, x.size(-1))
    logits = F.linear(x_flat.float(), moe.gate.weight.float())
    weights, chosen = deepseek_route(logits, moe.gate.e_score_correction_bias, moe.top_k,
                                     moe.n_group, moe.topk_group, moe.routed_scaling_factor,
                                     moe.norm_topk_prob)
    dense = torch.zeros_like(logits).scatter(1, chosen, weights).to(x.dtype)  # (N, E)
    outs = torch.stack([e(x_flat) for e in moe.experts], 1)  # (N, E, dim)
    return (moe.shared_experts(x_flat) + (dense[..., None] * outs).sum(1)).view_as(x)


@pytest.mark.deepseek_moe
def test_deepseek_moe_state_dict():
    moe = DeepSeekMoE(**MOE)
    shapes = {k: tuple(v.shape) for k, v in moe.state_dict().items()}
    assert shapes["gate.weight"] == (8, 16) and shapes["gate.e_score_correction_bias"] == (8,)
    assert "gate.e_score_correction_bias" not in dict(moe.named_parameters())
    assert shapes["experts.7.down_proj.weight"] == (16, 12)
    assert shapes["shared_experts.gate_proj.weight"] == (24, 16)
    assert len(shapes) == 2 + 8 * 3 + 3
    y, logits = moe(torch.randn(2, 3, 16, dtype=torch.bfloat16).float())
    assert y.shape == (2, 3, 16) and logits.shape == (6, 8) and logits.dtype == torch.float32


@pytest.mark.deepseek_moe
@pytest.mark.parametrize("overrides", [
    {}, {"norm_topk_prob": False}, {"n_group": 1, "topk_group": 1},
    {"top_k": 8, "n_group": 1, "topk_group": 1}])
def test_sparse_deepseek_moe_equals_dense_form(overrides):
    moe = _moe(**overrides)
    x = torch.randn(3, 5, 16, dtype=torch.float64)
    y, logits = moe(x)
    assert_close(y, _dense_deepseek(moe, x), rtol=1e-10, atol=1e-10)
    assert_close(logits, moe.gate(x.reshape(-1, 16)).float())


@pytest.mark.deepseek_moe
def test_one_group_is_plain_top_k_of_biased_scores():
    torch.manual_seed(0)
    logits, bias = torch.randn(50, 8), 0.2 * torch.randn(8)
    weights, chosen = deepseek_route(logits, bias, top_k=3)
    expected = (logits.sigmoid() + bias).topk(3).indices
    assert torch.equal(chosen.sort(-1).values, expected.sort(-1).values)
    # and with every group allowed, grouping changes nothing
    _, all_groups = deepseek_route(logits, bias, top_k=3, n_group=4, topk_group=4)
    assert torch.equal(all_groups.sort(-1).values, expected.sort(-1).values)


@pytest.mark.deepseek_moe
def test_group_limit_keeps_each_token_inside_its_best_groups():
    torch.manual_seed(1)
    logits = torch.randn(200, 16)
    _, chosen = deepseek_route(logits, torch.zeros(16), top_k=4, n_group=4, topk_group=2)
    groups_used = (chosen // 4).sort(-1).values
    assert all(len(set(row.tolist())) <= 2 for row in groups_used)
    scores = logits.sigmoid().view(200, 4, 4)
    best_groups = scores.topk(2, -1).values.sum(-1).topk(2, -1).indices  # (200, 2)
    for used, best in zip(groups_used, best_groups, strict=True):
        assert set(used.tolist()) <= set(best.tolist())
    _, unlimited = deepseek_route(logits, torch.zeros(16), top_k=4)
    assert not torch.equal(chosen.sort(-1).values, unlimited.sort(-1).values)


@pytest.mark.deepseek_moe
def test_bias_changes_the_choice_but_not_the_weights():
    torch.manual_seed(2)
    logits = torch.randn(64, 8)
    w0, c0 = deepseek_route(logits, torch.zeros(8), top_k=2, norm_topk_prob=False)
    bias = torch.zeros(8)
    bias[5] = 10.0  # expert 5 is now always chosen
    w1, c1 = deepseek_route(logits, bias, top_k=2, norm_topk_prob=False)
    assert (c1 == 5).any(-1).all() and not (c0 == 5).any(-1).all()
    # the weight of every chosen expert is its own unbiased sigmoid score
    assert_close(w1, logits.sigmoid().gather(1, c1))
    assert_close(w0, logits.sigmoid().gather(1, c0))


@pytest.mark.deepseek_moe
def test_weights_normalised_then_scaled():
    torch.manual_seed(3)
    logits = torch.randn(10, 8)
    w, c = deepseek_route(logits, torch.zeros(8), top_k=3, routed_scaling_factor=2.5)
    assert_close(w.sum(-1), torch.full((10,), 2.5))
    raw, _ = deepseek_route(logits, torch.zeros(8), top_k=3, norm_topk_prob=False)
    assert_close(raw, logits.sigmoid().gather(1, c))


@pytest.mark.deepseek_moe
def test_sigmoid_routing_differs_from_softmax_routing_weights():
    torch.manual_seed(4)
    logits = torch.randn(10, 8)
    w, c = deepseek_route(logits, torch.zeros(8), top_k=2)
    w_softmax, c_softmax = route(logits, 2)
    assert torch.equal(c, c_softmax)  # both monotone: the same experts
    assert not torch.allclose(w, w_softmax)  # but not the same weights


@pytest.mark.deepseek_moe
def test_shared_experts_see_every_token():
    moe = _moe()
    x = torch.randn(1, 4, 16, dtype=torch.float64)
    with torch.no_grad():
        for expert in moe.experts:
            expert.down_proj.weight.zero_()
    y, _ = moe(x)
    assert_close(y, moe.shared_experts(x))


@pytest.mark.deepseek_moe
def test_gradients_reach_router_experts_and_shared_experts_but_not_the_bias():
    moe = _moe()
    x = torch.randn(2, 6, 16, dtype=torch.float64, requires_grad=True)
    y, _ = moe(x)
    y.square().sum().backward()
    assert moe.gate.weight.grad.abs().sum() > 0
    assert moe.shared_experts.up_proj.weight.grad.abs().sum() > 0
    assert x.grad.abs().sum() > 0
    assert moe.gate.e_score_correction_bias.grad is None


@pytest.mark.deepseek_moe
def test_aux_loss_free_rule_balances_a_skewed_router():
    """Experts 0 and 1 start with most tokens; a few hundred bias updates spread them out
    without touching any weight (the gate and experts are unchanged)."""
    torch.manual_seed(5)
    moe = DeepSeekMoE(16, 8, 8, 1, top_k=2)
    with torch.no_grad():
        moe.gate.weight[:2] += 0.5  # a router that favours experts 0 and 1
    x = torch.randn(512, 16) + 0.5
    before = {k: v.clone() for k, v in moe.named_parameters()}

    def load():
        logits = moe.gate(x)
        _, chosen = deepseek_route(logits, moe.gate.e_score_correction_bias, 2)
        return expert_load(chosen, 8)

    start = load()
    for _ in range(300):
        update_routing_bias(moe, load(), rate=1e-3)
    end = load()
    assert start.max() > 3 * start.float().mean()
    assert end.max() < 1.3 * end.float().mean() and end.min() > 0.7 * end.float().mean()
    assert all(torch.equal(before[k], v) for k, v in moe.named_parameters())
    bias = moe.gate.e_score_correction_bias
    assert bias[:2].max() < 0 < bias[2:].min()  # favoured experts pushed down, others up


@pytest.mark.deepseek_moe
def test_bf16_input_keeps_dtype_and_router_in_float32():
    moe = _moe().to(torch.bfloat16)
    moe.gate.e_score_correction_bias.data = moe.gate.e_score_correction_bias.float()
    y, logits = moe(torch.randn(2, 3, 16, dtype=torch.bfloat16))
    assert y.dtype == torch.bfloat16 and logits.dtype == torch.float32


def test_sdpa_scale_is_the_full_query_width():
    """The week-1 attention scales by sqrt(q.size(-1)): nope + rope for MLA's queries."""
    q, k = torch.randn(1, 1, 3, 12), torch.randn(1, 1, 3, 12)
    v = torch.randn(1, 1, 3, 5)
    expected = F.softmax(q @ k.transpose(-1, -2) / math.sqrt(12), -1) @ v
    assert_close(scaled_dot_product_attention(q, k, v), expected)


@pytest.mark.multi_head_latent_attention
def test_decode_from_latents_needs_only_the_contract_names():
    """The notebook runs it on the learner's module: only submodule names are used."""
    attn = _mla(q_lora_rank=None)
    x = torch.randn(1, 5, 32, dtype=torch.float64)
    cache = LatentKVCache()
    out = torch.cat([decode_from_latents(attn, x[:, t:t + 1], cache, 4, 8, 4) for t in range(5)],
                    dim=1)
    assert_close(out, attn(x), rtol=1e-10, atol=1e-10)


# ---------------------------------------------------------------- Llama 4's helpers


def test_chunked_mask_is_causal_within_chunks_and_the_model_uses_it():
    mask = chunked_attention_mask(10, 4)
    for i in range(10):
        for j in range(10):
            assert bool(mask[i, j]) == (j <= i and j // 4 == i // 4)
    assert torch.equal(chunked_attention_mask(6, 6), torch.ones(6, 6, dtype=torch.bool).tril())
    # the model's chunked attention equals attention under this mask
    from solutions.model import CachedAttention

    torch.manual_seed(0)
    attn = CachedAttention(32, 4, 2, rope_theta=500.0, rope_pairs="interleaved", chunk=4)
    x = torch.randn(2, 10, 32)
    B, T = 2, 10
    q = rope_interleaved(attn.q_proj(x).view(B, T, 4, 8).transpose(1, 2), torch.arange(T), 500.0)
    k = rope_interleaved(attn.k_proj(x).view(B, T, 2, 8).transpose(1, 2), torch.arange(T), 500.0)
    v = attn.v_proj(x).view(B, T, 2, 8).transpose(1, 2)
    k, v = k.repeat_interleave(2, 1), v.repeat_interleave(2, 1)
    y = scaled_dot_product_attention(q, k, v, chunked_attention_mask(T, 4))
    assert_close(attn(x), attn.o_proj(y.transpose(1, 2).reshape(B, T, 32)))


def test_attention_temperature_values():
    t = attention_temperature(torch.tensor([0, 8190, 8191, 16383, 10**6]), 0.1, 8192)
    assert_close(t[:2], torch.ones(2))
    assert_close(t[2], torch.tensor(1 + 0.1 * math.log(2)))
    assert_close(t[3], torch.tensor(1 + 0.1 * math.log(3)))
    assert_close(t[4], torch.tensor(1 + 0.1 * math.log(1 + (10**6 + 1) // 8192)))


def test_qk_norm_bounds_the_scores():
    q, k = 100 * torch.randn(50, 64), 100 * torch.randn(50, 64)
    scores = (qk_norm(q) * qk_norm(k)).sum(-1) / 8
    assert scores.abs().max() <= 8 + 1e-4  # sqrt(64)
    assert_close(qk_norm(q).pow(2).mean(-1), torch.ones(50), atol=1e-4, rtol=1e-4)
