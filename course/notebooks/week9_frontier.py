# %% [markdown]
# # Week 9: The frontier, DeepSeek-V3 and Llama 4
#
# Mixtral (week 6) was the state of the art in open models at the end of 2023. A year later
# DeepSeek-V3 (671 billion parameters, about 37 billion used per token) and then Llama 4 Scout
# and Maverick (17 billion active) changed three things: how attention stores its past, how
# a mixture of experts is cut up and balanced, and how attention reaches across millions of
# tokens. In this notebook you build DeepSeek-V3's two signature parts, **multi-head latent
# attention** and **DeepSeekMoE**, and check them the way the real implementations are
# checked; then you look at Llama 4's chunked attention, NoPE layers, attention temperature
# and QK-norm, and count both families' parameters exactly.
#
# Read the [week 9 lesson](../../../site/weeks/week9/lesson.md) first (also on the course
# site, Week 9 → Lesson). The state-dict names follow Hugging Face `transformers`'
# `DeepseekV3Attention` and `DeepseekV3MoE`, so your modules load their weights by name.
#
# **How this notebook works.** Write your code where it says `# YOUR CODE HERE` (delete the
# `raise NotImplementedError()`), then run the check cell below it. The visible checks catch
# the common mistakes; hidden tests with other sizes, dtypes and gradients grade the
# submission, with the parts of earlier weeks given. From a terminal:
#
# ```bash
# python -m autograder grade course/release/week9/frontier.ipynb
# ```

# %% role="locked"
import math

import matplotlib.pyplot as plt
import torch
import torch.nn.functional as F
from torch import Tensor, nn  # noqa: F401 (nn: the classes you write)

torch.manual_seed(0)
print(f"torch {torch.__version__}")

# %% [markdown]
# ## Parts from earlier weeks
#
# Given here so that the notebook stands on its own: week 1's causal mask and attention,
# week 4's RoPE in both pairings, week 3's `RMSNorm` and `SwiGLU`, and week 5's KV-cache
# size. You may paste yours instead, as long as the names stay the same.

# %% role="locked" code="solutions.attention:causal_mask,scaled_dot_product_attention"

# %% role="locked" code="solutions.positions:ROPE_THETA,rope_angles,rotate_half,apply_rope,rope_interleaved"

# %% role="locked" code="solutions.normalization:RMSNorm"

# %% role="locked" code="solutions.feedforward:SwiGLU"

# %% role="locked" code="solutions.efficient_attention:kv_cache_bytes"

# %% [markdown]
# ## Why latent attention: the cache at DeepSeek-V3's size
#
# Generating a token needs the keys and values of every earlier token in every layer, so they
# are cached (week 5). DeepSeek-V3 has 61 layers and 128 attention heads; its `config.json`
# (published on the Hugging Face hub as `deepseek-ai/DeepSeek-V3`, and equal to the defaults
# of `transformers`' `DeepseekV3Config`) gives `num_hidden_layers: 61`,
# `num_attention_heads: 128`, `kv_lora_rank: 512`, `qk_rope_head_dim: 64`,
# `qk_nope_head_dim: 128` and `v_head_dim: 128`. Multi-head latent attention (MLA) caches, per
# token and layer, one 512-number **latent** and one 64-number **RoPE key**, whatever the
# number of heads. Below, bytes per token at 16 bits against the designs of week 5 with
# 128-dimensional heads, and what one 128K-token sequence costs.

# %% role="locked"
LAYERS, HEADS, HEAD_DIM = 61, 128, 128  # DeepSeek-V3's config.json
KV_LORA_RANK, ROPE_DIM, NOPE_DIM, V_DIM = 512, 64, 128, 128

designs = {
    "MHA, 128 heads of 128": kv_cache_bytes(LAYERS, HEADS, HEAD_DIM, seq_len=1),
    "MLA's keys and values expanded": LAYERS * HEADS * (NOPE_DIM + ROPE_DIM + V_DIM) * 2,
    "GQA, 8 kv heads": kv_cache_bytes(LAYERS, 8, HEAD_DIM, seq_len=1),
    "MLA: latent + RoPE key": LAYERS * (KV_LORA_RANK + ROPE_DIM) * 2,
    "MQA, 1 kv head": kv_cache_bytes(LAYERS, 1, HEAD_DIM, seq_len=1),
}
mla_bytes = designs["MLA: latent + RoPE key"]
context = 128 * 1024
print(f"{'design':<32}{'bytes/token':>13}{'vs MLA':>9}{'GB at 128K tokens':>20}")
for name, per_token in designs.items():
    print(f"{name:<32}{per_token:>13,}{per_token / mla_bytes:>8.2f}x"
          f"{per_token * context / 1e9:>20.1f}")

fig, ax = plt.subplots(figsize=(8, 2.8))
ax.barh(list(designs), [b / 1024 for b in designs.values()], color="tab:blue")
ax.set_xscale("log")
ax.set_xlabel("KiB per token (61 layers, bf16), log scale")
ax.invert_yaxis()
plt.tight_layout()
plt.show()

# %% [markdown]
# MLA's cache is about 57 times smaller than that of full multi-head attention with the same
# heads, and 2.25 times that of a single shared key/value head (MQA), whose quality it does not
# share: every head still gets its own keys and values, expanded from the latent. That is the
# point of the design: the cache of an extremely aggressive GQA, with the expressiveness of
# many heads.
#
# ## Exercise 1: multi-head latent attention
#
# For a token $x \in \mathbb{R}^d$ and head $h$:
#
# - **query**, compressed then expanded: $c^Q = \mathrm{RMSNorm}(W^{DQ} x)$ (`q_a_proj`,
#   `q_a_layernorm`, width `q_lora_rank`), then $[q^C_h \,|\, q^R_h] = (W^{UQ} c^Q)_h$
#   (`q_b_proj`): per head a `qk_nope_head_dim` part without position and a
#   `qk_rope_head_dim` part that gets RoPE. With `q_lora_rank=None` one `q_proj` replaces the
#   three (DeepSeek-V2-Lite does this);
# - **keys and values** from one projection `kv_a_proj_with_mqa` (width `kv_lora_rank +
#   qk_rope_head_dim`): its first `kv_lora_rank` outputs are the latent $c^{KV}$, normalised by
#   `kv_a_layernorm`; its last `qk_rope_head_dim` outputs are the **RoPE key** $k^R$, one for
#   all heads. `kv_b_proj` expands the latent: per head, `qk_nope_head_dim` key numbers $k^C_h$
#   then `v_head_dim` value numbers $v_h$;
# - **RoPE** rotates $q^R_h$ and $k^R$ only, pairing adjacent dimensions $(2i, 2i+1)$ as
#   DeepSeek does (`rope_interleaved` from week 4, not `apply_rope`), positions $0..T-1$;
# - **attention**, causal, with $q_h = [q^C_h \,|\, \mathrm{RoPE}(q^R_h)]$ and
#   $k_{h} = [k^C_h \,|\, \mathrm{RoPE}(k^R)]$, scaled by $1/\sqrt{d^C + d^R}$, the full width
#   of $q_h$ (here `scaled_dot_product_attention` does exactly that, since it divides by the
#   square root of the query's last dimension); the heads' outputs go through `o_proj`.
#
# `MultiHeadLatentAttention(dim, n_heads, q_lora_rank, kv_lora_rank, qk_nope_head_dim,
# qk_rope_head_dim, v_head_dim, rope_theta=ROPE_THETA, norm_eps=1e-6)` (`ROPE_THETA =
# 10000.0`, given above), no biases, `norm_eps` for both RMSNorms; `forward(x)` maps
# `(B, T, dim)` to `(B, T, dim)`.

# %% role="answer" exercise="multi_head_latent_attention"

# %% role="test" exercise="multi_head_latent_attention"
attn = MultiHeadLatentAttention(dim=32, n_heads=4, q_lora_rank=24, kv_lora_rank=16,
                                qk_nope_head_dim=8, qk_rope_head_dim=4, v_head_dim=6)
shapes = {name: tuple(p.shape) for name, p in attn.state_dict().items()}
expected = {"q_a_proj.weight": (24, 32), "q_a_layernorm.weight": (24,),
            "q_b_proj.weight": (48, 24), "kv_a_proj_with_mqa.weight": (20, 32),
            "kv_a_layernorm.weight": (16,), "kv_b_proj.weight": (56, 16),
            "o_proj.weight": (32, 24)}
assert shapes == expected, f"parameters should be {expected} (no biases); got {shapes}"
plain_q = MultiHeadLatentAttention(32, 4, None, 16, 8, 4, 6)
assert tuple(plain_q.q_proj.weight.shape) == (48, 32), "q_lora_rank=None: one q_proj"

with torch.no_grad():  # norm weights away from one, so that a skipped norm shows
    attn.q_a_layernorm.weight.uniform_(0.5, 1.5)
    attn.kv_a_layernorm.weight.uniform_(0.5, 1.5)
x = torch.randn(2, 7, 32)
y = attn(x)
assert y.shape == x.shape, f"output should be (B, T, dim) = {tuple(x.shape)}; got {tuple(y.shape)}"
x2 = x.clone()
x2[:, 4:] = torch.randn(2, 3, 32)
assert torch.allclose(attn(x2)[:, :4], y[:, :4], atol=1e-6), "a token must not see later ones"


@torch.no_grad()
def by_hand(rope=rope_interleaved, scale_dim=12):
    pos = torch.arange(7)
    q = attn.q_b_proj(attn.q_a_layernorm(attn.q_a_proj(x))).view(2, 7, 4, 12).transpose(1, 2)
    latent, k_rope = attn.kv_a_proj_with_mqa(x).split([16, 4], dim=-1)
    kv = attn.kv_b_proj(attn.kv_a_layernorm(latent)).view(2, 7, 4, 14).transpose(1, 2)
    q = torch.cat((q[..., :8], rope(q[..., 8:], pos)), dim=-1)
    k = torch.cat((kv[..., :8], rope(k_rope[:, None], pos).expand(2, 4, 7, 4)), dim=-1)
    scores = (q @ k.transpose(-1, -2) / math.sqrt(scale_dim)).masked_fill(
        ~causal_mask(7), float("-inf"))
    return attn.o_proj((scores.softmax(-1) @ kv[..., 8:]).transpose(1, 2).reshape(2, 7, 24))


assert not torch.allclose(y, by_hand(rope=apply_rope), atol=1e-5), (
    "you paired dimensions i and i + d/2 (apply_rope); DeepSeek pairs (2i, 2i+1): rope_interleaved")
assert not torch.allclose(y, by_hand(scale_dim=8), atol=1e-5), (
    "scale the scores by 1/sqrt(qk_nope_head_dim + qk_rope_head_dim), not 1/sqrt(nope)")
assert torch.allclose(y, by_hand(), atol=1e-5), (
    "your output differs from the steps above: check the splits ([latent | RoPE key], per head "
    "[nope | rope] and [key | value]), the two RMSNorms and that RoPE touches only the rope parts")
y.sum().backward()
assert attn.kv_b_proj.weight.grad is not None and attn.q_a_proj.weight.grad is not None
print("MultiHeadLatentAttention: visible checks passed")

# %% [markdown]
# ## Decoding from the latent cache, and absorption
#
# At inference MLA never builds the per-head keys and values of the cached tokens. The score
# of head $h$ against cached token $j$ is
#
# $$q^C_h \cdot k^C_{h,j} = q^C_h \cdot (W^{UK}_h c_j) = \big((W^{UK}_h)^\top q^C_h\big) \cdot c_j,$$
#
# so the query is mapped once into the latent space and compared with the cached latents
# directly; likewise the softmax mixes the latents first and $W^{UV}_h$ expands the mix once.
# `kv_b_proj`'s key and value rows are thus **absorbed** into the query and output sides.
# `decode_from_latents` below does this on any module with the contract's names (yours), with
# a `LatentKVCache` that stores only latents and RoPE keys. Feeding your module a prompt and
# then one token at a time must give what your `forward` gives on the whole sequence.

# %% role="locked" code="solutions.latent_attention:LatentKVCache,_queries,decode_from_latents,absorbed_projections"

# %% role="locked"
torch.manual_seed(1)
mla = MultiHeadLatentAttention(dim=64, n_heads=8, q_lora_rank=48, kv_lora_rank=32,
                               qk_nope_head_dim=16, qk_rope_head_dim=8, v_head_dim=16)
x = torch.randn(1, 12, 64)
with torch.no_grad():
    full = mla(x)
    cache = LatentKVCache()
    pieces = [decode_from_latents(mla, x[:, :5], cache, 8, 16, 8)]  # the prompt, then 1 by 1
    pieces += [decode_from_latents(mla, x[:, t:t + 1], cache, 8, 16, 8) for t in range(5, 12)]
    step_by_step = torch.cat(pieces, dim=1)
print(f"largest |absorbed, cached - your forward|: {(step_by_step - full).abs().max():.2e}")
per_token = cache.latent.shape[-1] + cache.k_rope.shape[-1]
expanded = 8 * (16 + 8) + 8 * 16
print(f"numbers cached per token and layer: {per_token} (latent {cache.latent.shape[-1]} + "
      f"RoPE key {cache.k_rope.shape[-1]}), against {expanded} for expanded keys and values")

# %% [markdown]
# The absorption can also be done once, on the weights: `absorbed_projections` multiplies
# $W^{UK}_h$ into head $h$'s rows of `q_b_proj` and $W^{UV}_h$ into its columns of `o_proj`.
# The outputs are the same; the matrices are larger than the factors they replace whenever
# `kv_lora_rank` exceeds the head sizes, as in DeepSeek-V3, which is why its inference code
# applies $W^{UK}$ and $W^{UV}$ at run time instead, as `decode_from_latents` does.

# %% role="locked"
with torch.no_grad():
    w_q, w_o = absorbed_projections(mla, n_heads=8, qk_nope_head_dim=16)  # (H, r, q), (d, H, r)
    T = x.shape[1]
    c_q = mla.q_a_layernorm(mla.q_a_proj(x))  # (1, T, q_lora_rank)
    q_rope = rope_interleaved(mla.q_b_proj(c_q).view(1, T, 8, 24)[..., 16:].transpose(1, 2),
                              torch.arange(T))
    latent, k_rope = mla.kv_a_proj_with_mqa(x).split([32, 8], dim=-1)
    latent, k_rope = mla.kv_a_layernorm(latent), rope_interleaved(k_rope[:, None], torch.arange(T))
    scores = torch.einsum("hrq,btq,bsr->bhts", w_q, c_q, latent) + q_rope @ k_rope.transpose(-1, -2)
    scores = (scores / math.sqrt(16 + 8)).masked_fill(~causal_mask(T), float("-inf"))
    folded = torch.einsum("dhr,bhtr->btd", w_o, scores.softmax(-1) @ latent[:, None])
print(f"largest |folded weights - your forward|: {(folded - full).abs().max():.2e}")

# at DeepSeek-V3's sizes (q_lora_rank 1536, dim 7168): parameters per layer
factors_q, folded_q = HEADS * NOPE_DIM * (1536 + KV_LORA_RANK), HEADS * KV_LORA_RANK * 1536
factors_o, folded_o = HEADS * V_DIM * (7168 + KV_LORA_RANK), 7168 * HEADS * KV_LORA_RANK
print(f"query side:  W_UQ(nope) + W_UK {factors_q / 1e6:6.1f} M  vs folded {folded_q / 1e6:6.1f} M")
print(f"output side: W_O + W_UV        {factors_o / 1e6:6.1f} M  vs folded {folded_o / 1e6:6.1f} M")

# %% [markdown]
# ## Why the RoPE key has to be decoupled
#
# Suppose the keys were rotated as in Llama: $k_{h,j} = R_j W^{UK}_h c_j$, with $R_j$ the
# rotation of position $j$. Then $q \cdot k_{h,j} = \big((R_j W^{UK}_h)^\top q\big) \cdot c_j$
# depends on $j$ through $R_j$: no single matrix maps the query into the latent space for
# every cached token, and absorption fails (one would have to expand every cached key again).
# MLA therefore leaves the latent part without position and adds a small separate RoPE key,
# shared by all heads, which is cached as it is.

# %% role="locked"
torch.manual_seed(2)
w_uk = torch.randn(16, 32)  # one head: latent (32) -> key (16)
q, latents = torch.randn(16), torch.randn(6, 32)  # one query, six cached latents
folded_query = w_uk.T @ q  # computed once, used for every cached token
plain = latents @ w_uk.T @ q
rotated = rope_interleaved((latents @ w_uk.T)[None], torch.arange(6))[0] @ q
print("without RoPE on the latent keys, folded == expanded:",
      torch.allclose(latents @ folded_query, plain, atol=1e-5))
print("with RoPE on them, folded == expanded:              ",
      torch.allclose(latents @ folded_query, rotated, atol=1e-5))

# %% [markdown]
# ## Exercise 2: DeepSeekMoE
#
# DeepSeek-V3's MoE layer has 256 **fine-grained** routed experts of width 2048 (a seventh of
# Mixtral's 14336), 8 of them per token, and one **shared** expert that every token uses. For
# $N$ tokens and $E$ experts:
#
# 1. router logits $z = W_g x$ in float32 (`gate.weight`, shape `(E, dim)`), scores
#    $s = \sigma(z)$: a sigmoid, so each expert is scored on its own;
# 2. **selection** on the biased scores $s + b$, with $b$ the buffer
#    `gate.e_score_correction_bias`: the experts form `n_group` equal, contiguous groups; each
#    group is rated by the sum of its two best biased scores; only the `topk_group` best
#    groups stay; the `top_k` best biased scores among their experts are chosen;
# 3. **weights** are the chosen experts' *unbiased* scores $s_e$, divided by their sum when
#    `norm_topk_prob`, times `routed_scaling_factor`;
# 4. $y = \mathrm{shared\_experts}(x) + \sum_{e \text{ chosen}} w_e \,\mathrm{expert}_e(x)$.
#
# `DeepSeekMoE(dim, expert_hidden_dim, n_routed_experts, n_shared_experts, top_k, n_group=1,
# topk_group=1, routed_scaling_factor=1.0, norm_topk_prob=True)` with `gate` (bias-free
# linear, plus the buffer `e_score_correction_bias`, zeros at first, registered with
# `self.gate.register_buffer(...)`), `experts` (a `ModuleList` of `SwiGLU(dim,
# expert_hidden_dim)`) and `shared_experts` (one `SwiGLU(dim, n_shared_experts *
# expert_hidden_dim)`). `forward(x)` returns `(y, router_logits)`: `y` like `x`, the raw float32
# logits flattened to `(batch * seq, E)`.
#
# The helper `deepseek_route(router_logits, bias, top_k, n_group, topk_group,
# routed_scaling_factor, norm_topk_prob)` returns the `(N, top_k)` weights and chosen experts;
# it is part of the exercise, and the experiments below use it.

# %% role="answer" exercise="deepseek_moe"

# %% role="test" exercise="deepseek_moe"
moe = DeepSeekMoE(dim=16, expert_hidden_dim=12, n_routed_experts=8, n_shared_experts=2, top_k=3,
                  n_group=4, topk_group=2, routed_scaling_factor=2.5)
params = dict(moe.named_parameters())
assert tuple(params["gate.weight"].shape) == (8, 16) and len(moe.experts) == 8
assert tuple(params["shared_experts.up_proj.weight"].shape) == (24, 16), (
    "shared_experts is one SwiGLU of width n_shared_experts * expert_hidden_dim")
buffers = dict(moe.named_buffers())
assert "gate.e_score_correction_bias" in buffers and "gate.e_score_correction_bias" not in params, (
    "e_score_correction_bias is a buffer of the gate (register_buffer), not a parameter")
assert torch.equal(buffers["gate.e_score_correction_bias"], torch.zeros(8)), "it starts at zero"

with torch.no_grad():
    moe.gate.e_score_correction_bias.copy_(0.2 * torch.randn(8))
x = torch.randn(2, 5, 16)
y, logits = moe(x)
assert y.shape == x.shape and logits.shape == (10, 8) and logits.dtype == torch.float32, (
    "forward returns (y like x, router_logits (batch*seq, E) in float32)")
assert torch.allclose(logits, x.reshape(10, 16) @ moe.gate.weight.T, atol=1e-5), "raw logits"

weights, chosen = deepseek_route(logits, moe.gate.e_score_correction_bias, 3, 4, 2, 2.5, True)
assert weights.shape == chosen.shape == (10, 3)
assert torch.allclose(weights.sum(-1), torch.full((10,), 2.5)), (
    "the chosen scores are normalised to sum to 1, then times routed_scaling_factor")
assert all(len(set((row // 2).tolist())) <= 2 for row in chosen), "at most topk_group groups"
raw, _ = deepseek_route(logits, moe.gate.e_score_correction_bias, 3, 4, 2, 1.0, False)
assert torch.allclose(raw, logits.sigmoid().gather(1, chosen)), (
    "weights are the *unbiased* sigmoid scores of the chosen experts (the bias only selects)")

with torch.no_grad():
    flat = x.reshape(10, 16)
    routed = torch.stack([sum(w * moe.experts[int(e)](flat[n]) for w, e in
                              zip(weights[n], chosen[n], strict=True)) for n in range(10)])
    by_hand = moe.shared_experts(flat) + routed
assert torch.allclose(y.detach().reshape(10, 16), by_hand, atol=1e-5), (
    "y should be shared_experts(x) plus the weighted outputs of the chosen experts")
y.sum().backward()
assert moe.gate.weight.grad is not None and moe.gate.weight.grad.abs().sum() > 0, (
    "the router gets no gradient: keep the weights (sigmoid scores) attached to autograd")
print("DeepSeekMoE: visible checks passed")

# %% [markdown]
# ## Balancing without an auxiliary loss
#
# Week 6's Switch-style loss balances the experts by pulling on the router's gradients, which
# also pulls the model away from what the language-modelling loss wants. DeepSeek-V3 instead
# adjusts the selection bias after every training step: experts that got more than their share
# of tokens are lowered by $\gamma$, the others raised by $\gamma$ ($\gamma = 0.001$ for most of
# its pre-training). The bias only decides *which* experts a token goes to, never the weights
# of their outputs, and no gradient is involved. Below, a router that favours two experts is
# balanced by the rule alone, with your `deepseek_route`; the router's weights do not move.

# %% role="locked" code="solutions.deepseek_moe:expert_load,update_routing_bias"

# %% role="locked"
torch.manual_seed(3)
layer = DeepSeekMoE(dim=32, expert_hidden_dim=16, n_routed_experts=16, n_shared_experts=1,
                    top_k=2)
with torch.no_grad():
    layer.gate.weight[:2] += 0.3  # experts 0 and 1 start out favoured
tokens = torch.randn(2048, 32) + 0.5
gate_before = layer.gate.weight.clone()


def loads() -> Tensor:
    with torch.no_grad():
        logits = F.linear(tokens, layer.gate.weight)
        _, chosen = deepseek_route(logits, layer.gate.e_score_correction_bias, 2)
    return expert_load(chosen, 16)


history = [loads()]
for _ in range(300):
    update_routing_bias(layer, history[-1], rate=1e-3)
    history.append(loads())

fig, axes = plt.subplots(1, 2, figsize=(10, 3))
for ax, step in zip(axes, [0, 300], strict=True):
    ax.bar(range(16), history[step].tolist())
    ax.axhline(2048 * 2 / 16, color="grey", ls="--", lw=1)
    ax.set_title(f"after {step} bias updates: max/mean {history[step].max() / 256:.2f}")
    ax.set_xlabel("expert")
axes[0].set_ylabel("tokens (top-2)")
plt.tight_layout()
plt.show()
print("router weights unchanged:", torch.equal(layer.gate.weight, gate_before))
print("bias of experts 0, 1:", layer.gate.e_score_correction_bias[:2].tolist())

# %% [markdown]
# ## Group-limited routing bounds communication
#
# In training DeepSeek-V3 spreads its 256 routed experts over 8 nodes, 32 per node, and every
# token travels to the nodes of its experts and back. With 8 experts chosen freely a token
# could need all 8 nodes; `n_group=8, topk_group=4` (the values of its `config.json`) keeps each
# token on at most 4. Random router weights at DeepSeek-V3's expert counts show the difference
# (a small model width, the routing is what matters here):

# %% role="locked"
torch.manual_seed(4)
router_logits = torch.randn(4096, 64) @ torch.randn(256, 64).T / 8  # (tokens, 256 experts)
no_bias = torch.zeros(256)
for name, groups in [("free top-8", (1, 1)), ("group-limited (8 groups, 4 kept)", (8, 4))]:
    _, chosen = deepseek_route(router_logits, no_bias, 8, *groups)
    nodes = torch.tensor([len(set(row)) for row in (chosen // 32).tolist()])
    share = torch.bincount(nodes, minlength=9)[1:] / len(nodes)
    print(f"{name:<34} nodes per token: mean {nodes.float().mean():.2f}, max {nodes.max()}; "
          f"share using 1..8 nodes: {[round(v, 2) for v in share.tolist()]}")

# %% [markdown]
# ## Multi-token prediction (explained, not built)
#
# DeepSeek-V3 was also trained to predict the token after next. One extra module (a
# transformer layer with its own projection and norms, sharing the embedding table and the
# output head of the main model) takes the main model's last hidden state at position $t$
# together with the embedding of token $t+1$ and predicts token $t+2$; its cross-entropy is
# added to the main loss with a small weight. It densifies the training signal and can serve
# as a draft model for speculative decoding. The published checkpoint holds it as layer 61
# (`num_nextn_predict_layers: 1`, about 11.5 B more parameters); the counts below and the
# `deepseek_v3` preset leave it out, as `transformers` does.
#
# ## Llama 4: chunks, NoPE layers, temperature and QK-norm
#
# Llama 4 keeps grouped-query attention (40 query heads, 8 key/value heads of 128) and changes
# where attention looks. In three layers out of four (those with RoPE) a query sees only the
# earlier tokens of its own **chunk** of 8192 tokens (`attention_chunk_size: 8192`); every
# fourth layer has **no positional encoding** (NoPE) and sees the whole causal context, so
# information crosses the chunk borders there. On the NoPE layers the queries are multiplied by
# an **attention temperature** that grows with the log of the position (`attn_scale: 0.1`,
# `floor_scale: 8192`); on the RoPE layers Scout normalises each head's rotated queries and keys
# (**QK-norm**, `use_qk_norm: true`; Maverick's config sets it false). The helpers:

# %% role="locked" code="solutions.llama4:chunked_attention_mask,attention_temperature,qk_norm"

# %% role="locked"
T, CHUNK = 24, 8
pattern = ["RoPE, chunked"] * 3 + ["NoPE, full"]
fig, axes = plt.subplots(1, 4, figsize=(12, 3))
for layer_idx, (ax, kind) in enumerate(zip(axes, pattern, strict=True)):
    mask = chunked_attention_mask(T, CHUNK) if kind.startswith("RoPE") else causal_mask(T)
    ax.imshow(mask, cmap="Blues")
    ax.set_title(f"layer {layer_idx}: {kind}")
    ax.set_xlabel("key")
axes[0].set_ylabel("query")
plt.tight_layout()
plt.show()

# KV cache of Llama 4 Scout (48 layers: 36 chunked, 12 NoPE; 8 kv heads of 128) at bf16
tokens = 1_000_000
chunked = kv_cache_bytes(36, 8, 128, seq_len=min(tokens, 8192))
full = kv_cache_bytes(12, 8, 128, seq_len=tokens)
all_full = kv_cache_bytes(48, 8, 128, seq_len=tokens)
print(f"cache for one 1M-token sequence: {(chunked + full) / 1e9:.1f} GB with chunks "
      f"({chunked / 1e9:.2f} GB in the 36 chunked layers, {full / 1e9:.1f} GB in the 12 NoPE "
      f"layers), {all_full / 1e9:.1f} GB if all 48 layers attended to everything")

# %% [markdown]
# The chunked layers' cache stops at 8192 tokens, like Mistral's sliding window, but a chunk
# starts afresh at each border: the first token of a chunk sees only itself. The NoPE layers
# carry the long-range information, and their cost and cache still grow with the context.
# Next, the temperature of the NoPE layers' queries, and what QK-norm does to the scores.

# %% role="locked"
positions = torch.logspace(0, 7, 200)
temperature = attention_temperature(positions)
fig, ax = plt.subplots(figsize=(6, 2.8))
ax.plot(positions, temperature)
ax.set_xscale("log")
ax.set_xlabel("position")
ax.set_ylabel("query scale on NoPE layers")
plt.tight_layout()
plt.show()
for p in [100, 8191, 100_000, 1_000_000, 10_000_000]:
    print(f"position {p:>10,}: scale {attention_temperature(torch.tensor([p]))[0]:.3f}")

torch.manual_seed(5)
q, k = 30 * torch.randn(1000, 128), 30 * torch.randn(1000, 128)  # large activations
raw = (q * k).sum(-1) / math.sqrt(128)
normed = (qk_norm(q) * qk_norm(k)).sum(-1) / math.sqrt(128)
print(f"largest |score| without QK-norm {raw.abs().max():.0f}, with it {normed.abs().max():.2f} "
      f"(bound sqrt(128) = {math.sqrt(128):.2f})")

# %% [markdown]
# Without positions a NoPE layer's scores do not fall off with distance, so over millions of
# tokens the softmax spreads thin; scaling the queries up (by 1.48 at one million tokens,
# 1.71 at ten million) sharpens it again. QK-norm bounds every score by $\sqrt{d_h}$ whatever
# the size of the activations, which keeps the attention logits from growing during training.
#
# ## Total and active parameters, exactly
#
# The presets `deepseek_v3`, `llama4_scout` and `llama4_maverick` of the course's `GPTConfig`
# hold the published text configurations; week 8's `count_parameters` counts them from the
# configuration alone (the counts equal `transformers`' own models instantiated on the meta
# device, which the course's tests check).

# %% role="locked"
from solutions.model import GPTConfig  # noqa: E402
from solutions.scaling import count_parameters  # noqa: E402

announced = {"deepseek_v3": ("DeepSeek-V3", 671e9, 37e9), "llama4_scout": ("Llama 4 Scout", 109e9, 17e9),
             "llama4_maverick": ("Llama 4 Maverick", 400e9, 17e9)}
print(f"{'model':<18}{'total':>19}{'active':>18}{'announced':>16}{'active share':>14}")
for preset, (name, total_announced, active_announced) in announced.items():
    config = GPTConfig.preset(preset)
    total, active = count_parameters(config), count_parameters(config, active=True)
    print(f"{name:<18}{total:>19,}{active:>18,}{total_announced / 1e9:>9.0f}B/{active_announced / 1e9:.0f}B"
          f"{active / total:>13.1%}")

# %% [markdown]
# DeepSeek-V3's main model has 671.0 B parameters; its 37.6 B active (8 routed experts and the
# shared one in each of 58 MoE layers, every attention, the 3 dense layers, the embeddings and
# the head) are 5.6 % of them. Llama 4 Maverick's 400.7 B and Scout's 107.8 B text parameters
# both use 17.2 B per token: one routed and one shared expert per MoE layer. Scout's announced
# 109 B includes its vision encoder, which the text model leaves out.
#
# ## What you built
#
# - `MultiHeadLatentAttention`: queries and keys/values through low-rank bottlenecks, a
#   decoupled RoPE key shared by the heads, the scale over the full query width; with a cache
#   of 576 numbers per token and layer at DeepSeek-V3's size, and absorbed decoding that gives
#   the same outputs.
# - `DeepSeekMoE`: sigmoid scores, group-limited top-k selection on biased scores, unbiased
#   normalised and scaled weights, shared experts; balanced by a bias rule instead of a loss.
#
# Next: take the [week 9 quiz](../../../site/weeks/week9/quiz.md).
