"""Week 9 submissions for the grader's own tests: known-wrong ones and correct variants.

Each wrong submission is a realistic mistake. The test suite grades each one and asserts it
loses points and, where the grader knows the mistake, that its message names it. The graders
give the earlier weeks' parts (RMSNorm, SwiGLU, rope_interleaved, apply_rope, causal_mask,
scaled_dot_product_attention), so these files define only the week's class.
"""

HEADER = """
import math

import torch
import torch.nn.functional as F
from torch import nn
"""

MLA_INIT = """
    def __init__(self, dim, n_heads, q_lora_rank, kv_lora_rank, qk_nope_head_dim,
                 qk_rope_head_dim, v_head_dim, rope_theta=10000.0, norm_eps=1e-6):
        super().__init__()
        self.n_heads, self.q_lora_rank, self.kv_lora_rank = n_heads, q_lora_rank, kv_lora_rank
        self.nope, self.rope, self.v_dim = qk_nope_head_dim, qk_rope_head_dim, v_head_dim
        self.rope_theta = rope_theta
        qk = qk_nope_head_dim + qk_rope_head_dim
        if q_lora_rank is None:
            self.q_proj = nn.Linear(dim, n_heads * qk, bias=False)
        else:
            self.q_a_proj = nn.Linear(dim, q_lora_rank, bias=False)
            self.q_a_layernorm = RMSNorm(q_lora_rank, norm_eps)
            self.q_b_proj = nn.Linear(q_lora_rank, n_heads * qk, bias=False)
        self.kv_a_proj_with_mqa = nn.Linear(dim, kv_lora_rank + qk_rope_head_dim, bias=False)
        self.kv_a_layernorm = RMSNorm(kv_lora_rank, norm_eps)
        self.kv_b_proj = nn.Linear(kv_lora_rank, n_heads * (qk_nope_head_dim + v_head_dim),
                                   bias=False)
        self.o_proj = nn.Linear(n_heads * v_head_dim, dim, bias=False)
"""

# the steps of a correct forward; wrong variants replace one line
MLA_FORWARD = """
    def forward(self, x):
        B, T, _ = x.shape
        H = self.n_heads
        pos = torch.arange(T)
        if self.q_lora_rank is None:
            q = self.q_proj(x)
        else:
            q = self.q_b_proj(self.q_a_layernorm(self.q_a_proj(x)))
        q = q.view(B, T, H, self.nope + self.rope).transpose(1, 2)
        q_nope, q_rope = q.split([self.nope, self.rope], dim=-1)
        latent, k_rope = self.kv_a_proj_with_mqa(x).split([self.kv_lora_rank, self.rope], dim=-1)
        latent = self.kv_a_layernorm(latent)
        kv = self.kv_b_proj(latent).view(B, T, H, self.nope + self.v_dim).transpose(1, 2)
        k_nope, v = kv.split([self.nope, self.v_dim], dim=-1)
        q_rope = rope_interleaved(q_rope, pos, self.rope_theta)
        k_rope = rope_interleaved(k_rope[:, None], pos, self.rope_theta).expand(B, H, T, self.rope)
        q = torch.cat((q_nope, q_rope), dim=-1)
        k = torch.cat((k_nope, k_rope), dim=-1)
        y = scaled_dot_product_attention(q, k, v, causal_mask(T))
        return self.o_proj(y.transpose(1, 2).reshape(B, T, H * self.v_dim))
"""


def mla(forward: str = MLA_FORWARD, init: str = MLA_INIT) -> str:
    return f"{HEADER}\n\nclass MultiHeadLatentAttention(nn.Module):{init}{forward}"


def mla_edit(old: str, new: str, init: str = MLA_INIT) -> str:
    assert old in MLA_FORWARD + init, old
    return mla(MLA_FORWARD.replace(old, new), init.replace(old, new))


MOE_INIT = """
    def __init__(self, dim, expert_hidden_dim, n_routed_experts, n_shared_experts, top_k,
                 n_group=1, topk_group=1, routed_scaling_factor=1.0, norm_topk_prob=True):
        super().__init__()
        self.top_k, self.n_group, self.topk_group = top_k, n_group, topk_group
        self.scale, self.norm = routed_scaling_factor, norm_topk_prob
        self.gate = nn.Linear(dim, n_routed_experts, bias=False)
        self.gate.register_buffer("e_score_correction_bias", torch.zeros(n_routed_experts))
        self.experts = nn.ModuleList(SwiGLU(dim, expert_hidden_dim)
                                     for _ in range(n_routed_experts))
        self.shared_experts = SwiGLU(dim, n_shared_experts * expert_hidden_dim)
"""

# routing steps of a correct forward; wrong variants replace one line
MOE_FORWARD = """
    def forward(self, x):
        xf = x.reshape(-1, x.shape[-1])
        logits = F.linear(xf.float(), self.gate.weight.float())
        N, E = logits.shape
        scores = logits.sigmoid()
        biased = scores + self.gate.e_score_correction_bias
        group_scores = biased.view(N, self.n_group, -1).topk(2, dim=-1).values.sum(-1)
        keep = group_scores.topk(self.topk_group, dim=-1).indices
        group_mask = torch.zeros_like(group_scores).scatter(1, keep, 1.0)
        allowed = group_mask.repeat_interleave(E // self.n_group, dim=1).bool()
        chosen = biased.masked_fill(~allowed, float("-inf")).topk(self.top_k, dim=-1).indices
        weights = scores.gather(1, chosen)
        if self.norm:
            weights = weights / weights.sum(-1, keepdim=True)
        weights = weights * self.scale
        routed = torch.zeros_like(xf)
        for e, expert in enumerate(self.experts):
            tok, slot = torch.where(chosen == e)
            routed.index_add_(0, tok, (expert(xf[tok]) * weights[tok, slot, None]).to(xf.dtype))
        y = routed + self.shared_experts(xf)
        return y.view_as(x), logits
"""


def moe(forward: str = MOE_FORWARD, init: str = MOE_INIT) -> str:
    return f"{HEADER}\n\nclass DeepSeekMoE(nn.Module):{init}{forward}"


def moe_edit(old: str, new: str, init: str = MOE_INIT) -> str:
    assert old in MOE_FORWARD + init, old
    return moe(MOE_FORWARD.replace(old, new), init.replace(old, new))


# (exercise, code, a phrase the feedback must contain, or None)
WRONG = {
    "mla_rope_on_the_whole_key": ("multi_head_latent_attention", mla_edit(
        """        q_rope = rope_interleaved(q_rope, pos, self.rope_theta)
        k_rope = rope_interleaved(k_rope[:, None], pos, self.rope_theta).expand(B, H, T, self.rope)
        q = torch.cat((q_nope, q_rope), dim=-1)
        k = torch.cat((k_nope, k_rope), dim=-1)""",
        """        k_rope = k_rope[:, None].expand(B, H, T, self.rope)
        q = rope_interleaved(torch.cat((q_nope, q_rope), dim=-1), pos, self.rope_theta)
        k = rope_interleaved(torch.cat((k_nope, k_rope), dim=-1), pos, self.rope_theta)"""),
        "only the rope part"),
    "mla_scale_over_nope_only": ("multi_head_latent_attention", mla_edit(
        "        y = scaled_dot_product_attention(q, k, v, causal_mask(T))",
        """        scores = q @ k.transpose(-2, -1) / math.sqrt(self.nope)
        scores = scores.masked_fill(~causal_mask(T), float("-inf"))
        y = scores.softmax(-1) @ v"""), "1/sqrt(qk_nope_head_dim)"),
    "mla_split_halves_rope": ("multi_head_latent_attention", mla_edit(
        """        q_rope = rope_interleaved(q_rope, pos, self.rope_theta)
        k_rope = rope_interleaved(k_rope[:, None], pos, self.rope_theta).expand(B, H, T, self.rope)""",
        """        q_rope = apply_rope(q_rope, pos, self.rope_theta)
        k_rope = apply_rope(k_rope[:, None], pos, self.rope_theta).expand(B, H, T, self.rope)"""),
        "adjacent dimensions"),
    "mla_no_rope": ("multi_head_latent_attention", mla_edit(
        """        q_rope = rope_interleaved(q_rope, pos, self.rope_theta)
        k_rope = rope_interleaved(k_rope[:, None], pos, self.rope_theta).expand(B, H, T, self.rope)""",
        """        k_rope = k_rope[:, None].expand(B, H, T, self.rope)"""), "no RoPE"),
    "mla_query_not_rotated": ("multi_head_latent_attention", mla_edit(
        "        q_rope = rope_interleaved(q_rope, pos, self.rope_theta)\n", ""),
        "query's rope part is not rotated"),
    "mla_rope_key_not_rotated": ("multi_head_latent_attention", mla_edit(
        "k_rope = rope_interleaved(k_rope[:, None], pos, self.rope_theta).expand(B, H, T, self.rope)",
        "k_rope = k_rope[:, None].expand(B, H, T, self.rope)"), "RoPE key is not rotated"),
    "mla_query_built_rope_first": ("multi_head_latent_attention", mla_edit(
        "q = torch.cat((q_nope, q_rope), dim=-1)", "q = torch.cat((q_rope, q_nope), dim=-1)"),
        "in the same order"),
    "mla_query_and_key_swapped": ("multi_head_latent_attention", mla_edit(
        "y = scaled_dot_product_attention(q, k, v, causal_mask(T))",
        "y = scaled_dot_product_attention(k, q, v, causal_mask(T))"), "are swapped"),
    "mla_latent_not_normalised": ("multi_head_latent_attention", mla_edit(
        "        latent = self.kv_a_layernorm(latent)\n", ""), "kv_a_layernorm"),
    "mla_query_not_normalised": ("multi_head_latent_attention", mla_edit(
        "q = self.q_b_proj(self.q_a_layernorm(self.q_a_proj(x)))",
        "q = self.q_b_proj(self.q_a_proj(x))"), "q_a_layernorm"),
    "mla_rope_key_taken_first": ("multi_head_latent_attention", mla_edit(
        "latent, k_rope = self.kv_a_proj_with_mqa(x).split([self.kv_lora_rank, self.rope], dim=-1)",
        "k_rope, latent = self.kv_a_proj_with_mqa(x).split([self.rope, self.kv_lora_rank], dim=-1)"),
        "you took the RoPE key first"),
    "mla_keys_then_values_in_blocks": ("multi_head_latent_attention", mla_edit(
        """        kv = self.kv_b_proj(latent).view(B, T, H, self.nope + self.v_dim).transpose(1, 2)
        k_nope, v = kv.split([self.nope, self.v_dim], dim=-1)""",
        """        k_flat, v_flat = self.kv_b_proj(latent).split([H * self.nope, H * self.v_dim], -1)
        k_nope = k_flat.view(B, T, H, self.nope).transpose(1, 2)
        v = v_flat.view(B, T, H, self.v_dim).transpose(1, 2)"""), "not as all keys"),
    "mla_rope_part_first_in_the_query": ("multi_head_latent_attention", mla_edit(
        "q_nope, q_rope = q.split([self.nope, self.rope], dim=-1)",
        "q_rope, q_nope = q.split([self.rope, self.nope], dim=-1)"), "rope part first"),
    "mla_not_causal": ("multi_head_latent_attention", mla_edit(
        "y = scaled_dot_product_attention(q, k, v, causal_mask(T))",
        "y = scaled_dot_product_attention(q, k, v)"), "not causal"),
    "mla_rope_theta_ignored": ("multi_head_latent_attention", mla_edit(
        "        self.rope_theta = rope_theta\n", "        self.rope_theta = 10000.0\n"),
        "rope_theta given"),
    "mla_norm_eps_not_passed": ("multi_head_latent_attention", mla_edit(
        "self.kv_a_layernorm = RMSNorm(kv_lora_rank, norm_eps)",
        "self.kv_a_layernorm = RMSNorm(kv_lora_rank)"), "kv_a_layernorm too"),
    "mla_wrong_default_eps": ("multi_head_latent_attention", mla_edit(
        "rope_theta=10000.0, norm_eps=1e-6", "rope_theta=10000.0, norm_eps=1e-5"),
        "default norm_eps is 1e-6"),
    "mla_wrong_default_theta": ("multi_head_latent_attention", mla_edit(
        "rope_theta=10000.0, norm_eps=1e-6", "rope_theta=500000.0, norm_eps=1e-6"),
        "default rope_theta is 10000"),
    "mla_biases": ("multi_head_latent_attention", mla(init=MLA_INIT.replace(
        "self.o_proj = nn.Linear(n_heads * v_head_dim, dim, bias=False)",
        "self.o_proj = nn.Linear(n_heads * v_head_dim, dim)")), "bias=False"),
    "mla_torch_kernel_transformers_wrapper": ("multi_head_latent_attention", HEADER + """
from transformers.models.deepseek_v3.modeling_deepseek_v3 import DeepseekV3Attention


class MultiHeadLatentAttention(nn.Module):
    def __init__(self, *args, **kwargs):
        super().__init__()
        self.inner = DeepseekV3Attention(*args, **kwargs)

    def forward(self, x):
        return self.inner(x)[0]
""", "not allowed"),
    "moe_softmax_routing": ("deepseek_moe", moe_edit(
        "scores = logits.sigmoid()", "scores = logits.softmax(-1)"), "not a softmax"),
    "moe_weights_from_biased_scores": ("deepseek_moe", moe_edit(
        "weights = scores.gather(1, chosen)", "weights = biased.gather(1, chosen)"),
        "unbiased"),
    "moe_bias_ignored": ("deepseek_moe", moe_edit(
        "biased = scores + self.gate.e_score_correction_bias", "biased = scores"),
        "is ignored"),
    "moe_no_group_limit": ("deepseek_moe", moe_edit(
        "chosen = biased.masked_fill(~allowed, float(\"-inf\")).topk(self.top_k, dim=-1).indices",
        "chosen = biased.topk(self.top_k, dim=-1).indices"), "group limit is missing"),
    "moe_group_rated_by_its_best_expert": ("deepseek_moe", moe_edit(
        "group_scores = biased.view(N, self.n_group, -1).topk(2, dim=-1).values.sum(-1)",
        "group_scores = biased.view(N, self.n_group, -1).amax(-1)"), "not by its best one"),
    "moe_shared_experts_missing": ("deepseek_moe", moe_edit(
        "y = routed + self.shared_experts(xf)", "y = routed"), "shared experts are missing"),
    "moe_scaling_on_the_shared_expert_too": ("deepseek_moe", moe_edit(
        "        weights = weights * self.scale\n", "").replace(
        "y = routed + self.shared_experts(xf)", "y = (routed + self.shared_experts(xf)) * self.scale"),
        "not the shared"),
    "moe_norm_topk_prob_ignored": ("deepseek_moe", moe_edit(
        """        if self.norm:
            weights = weights / weights.sum(-1, keepdim=True)""",
        """        weights = weights / weights.sum(-1, keepdim=True)"""), "do not"),
    "moe_scaling_factor_missing": ("deepseek_moe", moe_edit(
        "        weights = weights * self.scale\n", ""), "routed_scaling_factor"),
    "moe_scaling_before_normalising": ("deepseek_moe", moe_edit(
        """        if self.norm:
            weights = weights / weights.sum(-1, keepdim=True)
        weights = weights * self.scale""",
        """        weights = weights * self.scale
        if self.norm:
            weights = weights / weights.sum(-1, keepdim=True)"""), "after normalising"),
    "moe_weights_on_inputs": ("deepseek_moe", moe_edit(
        "(expert(xf[tok]) * weights[tok, slot, None]).to(xf.dtype)",
        "expert((xf[tok] * weights[tok, slot, None]).to(xf.dtype))"), "not their inputs"),
    "moe_bias_subtracted": ("deepseek_moe", moe_edit(
        "biased = scores + self.gate.e_score_correction_bias",
        "biased = scores - self.gate.e_score_correction_bias"), "do not subtract it"),
    "moe_group_mask_inverted": ("deepseek_moe", moe_edit(
        "chosen = biased.masked_fill(~allowed, ", "chosen = biased.masked_fill(allowed, "),
        "group mask is inverted"),
    "moe_normalised_by_the_mean": ("deepseek_moe", moe_edit(
        "weights = weights / weights.sum(-1, keepdim=True)",
        "weights = weights / weights.mean(-1, keepdim=True)"), "not their mean"),
    "moe_scaling_factor_divides": ("deepseek_moe", moe_edit(
        "weights = weights * self.scale", "weights = weights / self.scale"),
        "do not divide by it"),
    "moe_routed_outputs_unweighted": ("deepseek_moe", moe_edit(
        "(expert(xf[tok]) * weights[tok, slot, None]).to(xf.dtype)",
        "expert(xf[tok]).to(xf.dtype)"), "not weighted"),
    "moe_index_copy_keeps_the_last_expert": ("deepseek_moe", moe_edit(
        "routed.index_add_(0, tok, ", "routed.index_copy_(0, tok, "), "must add up"),
    "moe_bias_is_a_parameter": ("deepseek_moe", moe_edit(
        'self.gate.register_buffer("e_score_correction_bias", torch.zeros(n_routed_experts))',
        'self.gate.e_score_correction_bias = nn.Parameter(torch.zeros(n_routed_experts))'),
        "must be a buffer"),
    "moe_returns_scores_not_logits": ("deepseek_moe", moe_edit(
        "return y.view_as(x), logits", "return y.view_as(x), scores"), "not their sigmoid"),
    "moe_router_in_model_dtype": ("deepseek_moe", moe_edit(
        "logits = F.linear(xf.float(), self.gate.weight.float())", "logits = self.gate(xf)"),
        "float32"),
    "moe_wrong_default_scaling": ("deepseek_moe", moe_edit(
        "routed_scaling_factor=1.0", "routed_scaling_factor=2.5"), None),
    "moe_wrong_default_norm": ("deepseek_moe", moe_edit(
        "norm_topk_prob=True", "norm_topk_prob=False"), "divided by their sum"),
    "moe_wrong_default_topk_group": ("deepseek_moe", moe_edit(
        "n_group=1, topk_group=1", "n_group=1, topk_group=2"), None),
    "moe_torch_kernel_transformers_router": ("deepseek_moe", HEADER + """
from transformers.models.deepseek_v3 import modeling_deepseek_v3 as ds


class DeepSeekMoE(nn.Module):
    def __init__(self, *args, **kwargs):
        super().__init__()
        self.router = ds.DeepseekV3TopkRouter

    def forward(self, x):
        raise NotImplementedError
""", "not allowed"),
}

# (exercise, code): correct however written; each must get full marks
CORRECT = {
    "mla_einsum_float64": ("multi_head_latent_attention", mla_edit(
        """        q = torch.cat((q_nope, q_rope), dim=-1)
        k = torch.cat((k_nope, k_rope), dim=-1)
        y = scaled_dot_product_attention(q, k, v, causal_mask(T))
        return self.o_proj(y.transpose(1, 2).reshape(B, T, H * self.v_dim))""",
        """        scores = (torch.einsum("bhtd,bhsd->bhts", q_nope.double(), k_nope.double())
                  + torch.einsum("bhtd,bhsd->bhts", q_rope.double(), k_rope.double()))
        scores = scores / math.sqrt(self.nope + self.rope)
        scores = scores.masked_fill(~torch.ones(T, T, dtype=torch.bool).tril(), -math.inf)
        y = torch.einsum("bhts,bhsd->bthd", scores.softmax(-1), v.double())
        return self.o_proj(y.reshape(B, T, -1).to(x.dtype))""")),
    "mla_torch_sdpa_kernel_allowed": ("multi_head_latent_attention", mla_edit(
        "y = scaled_dot_product_attention(q, k, v, causal_mask(T))",
        "y = F.scaled_dot_product_attention(q, k, v, is_causal=True)")),
    "mla_complex_rope_and_head_loop": ("multi_head_latent_attention", mla("""
    def rotate(self, t, T):
        # pairs (2i, 2i+1) as complex numbers, turned by e^(i * t * f_i)
        f = self.rope_theta ** (-torch.arange(0, self.rope, 2, dtype=torch.float32) / self.rope)
        turn = torch.polar(torch.ones(T, self.rope // 2), torch.arange(T)[:, None] * f)
        c = torch.view_as_complex(t.float().reshape(*t.shape[:-1], -1, 2).contiguous())
        return torch.view_as_real(c * turn).flatten(-2).to(t.dtype)

    def forward(self, x):
        B, T, _ = x.shape
        if self.q_lora_rank is None:
            q = self.q_proj(x)
        else:
            q = self.q_b_proj(self.q_a_layernorm(self.q_a_proj(x)))
        q = q.view(B, T, self.n_heads, self.nope + self.rope)
        kv_a = self.kv_a_proj_with_mqa(x)
        latent = self.kv_a_layernorm(kv_a[..., :self.kv_lora_rank])
        k_rope = self.rotate(kv_a[..., self.kv_lora_rank:], T)
        kv = self.kv_b_proj(latent).view(B, T, self.n_heads, self.nope + self.v_dim)
        heads = []
        for h in range(self.n_heads):
            qh = torch.cat((q[:, :, h, :self.nope], self.rotate(q[:, :, h, self.nope:], T)), -1)
            kh = torch.cat((kv[:, :, h, :self.nope], k_rope), -1)
            s = qh @ kh.transpose(1, 2) / (self.nope + self.rope) ** 0.5
            s = s.masked_fill(torch.ones(T, T, dtype=torch.bool).triu(1), float("-inf"))
            heads.append(s.softmax(-1) @ kv[:, :, h, self.nope:])
        return self.o_proj(torch.cat(heads, dim=-1))
""")),
    "mla_absorbed_attention_over_latents": ("multi_head_latent_attention", mla_edit(
        """        kv = self.kv_b_proj(latent).view(B, T, H, self.nope + self.v_dim).transpose(1, 2)
        k_nope, v = kv.split([self.nope, self.v_dim], dim=-1)""",
        """        w = self.kv_b_proj.weight.view(H, self.nope + self.v_dim, self.kv_lora_rank)
        w_uk, w_uv = w[:, :self.nope], w[:, self.nope:]""").replace(
        """        q = torch.cat((q_nope, q_rope), dim=-1)
        k = torch.cat((k_nope, k_rope), dim=-1)
        y = scaled_dot_product_attention(q, k, v, causal_mask(T))
        return self.o_proj(y.transpose(1, 2).reshape(B, T, H * self.v_dim))""",
        """        q_lat = torch.einsum("bhtn,hnr->bhtr", q_nope, w_uk)
        s = q_lat @ latent[:, None].transpose(-1, -2) + q_rope @ k_rope.transpose(-1, -2)
        s = (s / math.sqrt(self.nope + self.rope)).masked_fill(~causal_mask(T), float("-inf"))
        mixed = s.softmax(-1) @ latent[:, None]
        y = torch.einsum("bhtr,hvr->bthv", mixed, w_uv)
        return self.o_proj(y.reshape(B, T, H * self.v_dim))""")),
    "mla_transformers_style_halves_output": ("multi_head_latent_attention", mla_edit(
        """        q_rope = rope_interleaved(q_rope, pos, self.rope_theta)
        k_rope = rope_interleaved(k_rope[:, None], pos, self.rope_theta).expand(B, H, T, self.rope)""",
        """        f = 1.0 / self.rope_theta ** (torch.arange(0, self.rope, 2).float() / self.rope)
        ang = pos.float()[:, None] * f
        cos, sin = ang.cos().to(x.dtype), ang.sin().to(x.dtype)

        def turn(t):  # rotate (t[2i], t[2i+1]); write the results as two halves
            a, b = t[..., 0::2], t[..., 1::2]
            return torch.cat((a * cos - b * sin, b * cos + a * sin), dim=-1)

        q_rope = turn(q_rope)
        k_rope = turn(k_rope[:, None]).expand(B, H, T, self.rope)""")),
    "moe_dense_einsum": ("deepseek_moe", moe_edit(
        """        routed = torch.zeros_like(xf)
        for e, expert in enumerate(self.experts):
            tok, slot = torch.where(chosen == e)
            routed.index_add_(0, tok, (expert(xf[tok]) * weights[tok, slot, None]).to(xf.dtype))""",
        """        dense = torch.zeros_like(scores).scatter(1, chosen, weights)
        outs = torch.stack([expert(xf) for expert in self.experts], dim=1)
        routed = torch.einsum("ne,ned->nd", dense, outs.float()).to(xf.dtype)""")),
    "moe_float64_token_loop": ("deepseek_moe", moe("""
    def forward(self, x):
        xf = x.reshape(-1, x.shape[-1])
        logits = xf.float() @ self.gate.weight.float().T
        E = logits.shape[1]
        per_group = E // self.n_group
        rows = []
        for n in range(xf.shape[0]):
            s = logits[n].double().sigmoid()
            b = s + self.gate.e_score_correction_bias.double()
            groups = sorted(range(self.n_group), key=lambda g: -float(
                b[g * per_group:(g + 1) * per_group].topk(2).values.sum()))[:self.topk_group]
            allowed = [e for e in range(E) if e // per_group in groups]
            best = sorted(allowed, key=lambda e: -float(b[e]))[:self.top_k]
            w = torch.stack([s[e] for e in best])
            if self.norm:
                w = w / w.sum()
            w = w * self.scale
            out = self.shared_experts(xf[n]).double()
            for j, e in enumerate(best):
                out = out + w[j] * self.experts[e](xf[n]).double()
            rows.append(out)
        return torch.stack(rows).to(x.dtype).view_as(x), logits
""")),
    "moe_transformers_style_masks": ("deepseek_moe", moe("""
    def forward(self, hidden_states):
        shape = hidden_states.shape
        h = hidden_states.view(-1, shape[-1])
        router_logits = F.linear(h.type(torch.float32), self.gate.weight.type(torch.float32))
        scores = router_logits.sigmoid()
        for_choice = scores + self.gate.e_score_correction_bias.unsqueeze(0)
        E = router_logits.shape[-1]
        group_scores = for_choice.view(-1, self.n_group, E // self.n_group).topk(2, dim=-1)[0]
        group_idx = torch.topk(group_scores.sum(dim=-1), k=self.topk_group, dim=-1,
                               sorted=False)[1]
        group_mask = torch.zeros(h.shape[0], self.n_group).scatter_(1, group_idx, 1)
        score_mask = group_mask.unsqueeze(-1).expand(-1, self.n_group, E // self.n_group)
        for_choice = for_choice.masked_fill(~score_mask.reshape(-1, E).bool(), float("-inf"))
        topk_idx = torch.topk(for_choice, k=self.top_k, dim=-1, sorted=False)[1]
        topk_w = scores.gather(1, topk_idx)
        if self.norm:
            topk_w = topk_w / (topk_w.sum(dim=-1, keepdim=True) + 1e-20)
        topk_w = topk_w * self.scale
        final = torch.zeros_like(h)
        mask = F.one_hot(topk_idx, num_classes=E).permute(2, 1, 0)
        for e in torch.greater(mask.sum(dim=(-1, -2)), 0).nonzero().flatten().tolist():
            slot, tok = torch.where(mask[e])
            out = self.experts[e](h[tok]) * topk_w[tok, slot, None]
            final.index_add_(0, tok, out.to(final.dtype))
        return (final + self.shared_experts(h)).view(shape), router_logits
""")),
    "moe_group_mask_with_gather": ("deepseek_moe", moe_edit(
        """        group_mask = torch.zeros_like(group_scores).scatter(1, keep, 1.0)
        allowed = group_mask.repeat_interleave(E // self.n_group, dim=1).bool()
        chosen = biased.masked_fill(~allowed, float("-inf")).topk(self.top_k, dim=-1).indices""",
        """        per = E // self.n_group
        grouped = biased.view(N, self.n_group, per).gather(
            1, keep[..., None].expand(-1, -1, per))  # (N, topk_group, per)
        local = grouped.flatten(1).topk(self.top_k, dim=-1).indices
        chosen = keep.gather(1, local // per) * per + local % per""")),
}
