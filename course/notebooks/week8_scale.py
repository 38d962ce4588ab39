# %% [markdown]
# # Week 8: Scale
#
# How many parameters does a model have, what does it cost to train, and how should a compute
# budget be split between a bigger model and more data? This notebook answers with code. You
# write three functions:
#
# 1. `count_parameters(config, active=False)`: the exact parameter count of a `MiniGPT`
#    configuration, from arithmetic alone;
# 2. `chinchilla_loss(N, D)`: the loss predicted by the Chinchilla scaling law;
# 3. `compute_optimal(C)`: the model size and number of tokens that minimise that loss for a
#    budget of `C` FLOPs.
#
# Then you use them: where the parameters of a 7B model are, how many FLOPs training takes
# (counted by PyTorch, against the $6ND$ rule), the compute-optimal split for several
# budgets, the loss surface, a power law fitted to your own small training runs, and what a
# long context costs.
#
# Read the [week 8 lesson](../../../site/weeks/week8/lesson.md) first (also on the course
# site, Week 8 → Lesson).
#
# **How this notebook works.** Write your code where it says `# YOUR CODE HERE` (delete the
# `raise NotImplementedError()`), then run the check cell below it. The visible checks catch
# the common mistakes; hidden tests with other configurations grade the submission. You can
# run the same grader yourself: save the notebook and run its last cell, **Grade this
# notebook**; or from a terminal:
#
# ```bash
# .venv/bin/autograder grade course/release/week8/scale.ipynb   # from the course folder
# autograder grade scale.ipynb   # from this folder, after `source .venv/bin/activate`
# ```

# %% role="locked"
import math
import time
from dataclasses import dataclass, replace  # noqa: F401 (used by the given code)

import matplotlib.pyplot as plt
import numpy as np
import torch
from torch.utils.flop_counter import FlopCounterMode

# the week-7 reference model and trainer, for the FLOP count and the training runs below
from solutions.data import load_dataset
from solutions.model import MiniGPT
from solutions.train import TrainConfig, Trainer

torch.manual_seed(0)
# the models here are tiny: one thread is fastest, and it does not fight other processes
torch.set_num_threads(1)
print(f"torch {torch.__version__}")

# %% [markdown]
# ## The configuration: `GPTConfig` from week 7
#
# One dataclass describes every model of the course: GPT-2 (LayerNorm, GELU MLP, learned
# positions, tied embeddings, biases), Llama 2 (RMSNorm, SwiGLU, RoPE, grouped-query
# attention), Mistral (plus a sliding window) and Mixtral (plus a mixture of experts). It is
# given here as in week 7. Below it, `PRESETS` writes out the published configurations this
# notebook counts; `GPTConfig.preset("llama2_7b")` builds one.
#
# Note how `__post_init__` fills in defaults: `n_kv_heads=None` means as many key/value heads
# as query heads, and `hidden_dim=None` means `4 * dim` for the GELU MLP and LLaMA's rule
# (`8/3 * dim` rounded up to a multiple of 256) for SwiGLU. Count from the filled-in fields.

# %% role="locked" code="solutions.positions:ROPE_THETA"

# %% role="locked" code="solutions.model:GPTConfig"
# The published models (GPTConfig fields; the others keep their defaults)
PRESETS: dict[str, dict] = {
    # Radford et al. (2019)
    "gpt2": dict(vocab_size=50257, dim=768, n_layers=12, n_heads=12, max_seq_len=1024,
                 norm="layernorm", mlp="gelu", pos="learned", tie_embeddings=True, bias=True),
    "gpt2_medium": dict(vocab_size=50257, dim=1024, n_layers=24, n_heads=16, max_seq_len=1024,
                        norm="layernorm", mlp="gelu", pos="learned", tie_embeddings=True,
                        bias=True),
    "gpt2_large": dict(vocab_size=50257, dim=1280, n_layers=36, n_heads=20, max_seq_len=1024,
                       norm="layernorm", mlp="gelu", pos="learned", tie_embeddings=True,
                       bias=True),
    "gpt2_xl": dict(vocab_size=50257, dim=1600, n_layers=48, n_heads=25, max_seq_len=1024,
                    norm="layernorm", mlp="gelu", pos="learned", tie_embeddings=True,
                    bias=True),
    # Touvron et al. (2023); the 7B's hidden_dim, 11008, follows from LLaMA's rule
    "llama2_7b": dict(vocab_size=32000, dim=4096, n_layers=32, n_heads=32, max_seq_len=4096),
    "llama2_13b": dict(vocab_size=32000, dim=5120, n_layers=40, n_heads=40, max_seq_len=4096),
    "llama2_70b": dict(vocab_size=32000, dim=8192, n_layers=80, n_heads=64, n_kv_heads=8,
                       hidden_dim=28672, max_seq_len=4096),
    # Jiang et al. (2023, 2024)
    "mistral_7b": dict(vocab_size=32000, dim=4096, n_layers=32, n_heads=32, n_kv_heads=8,
                       hidden_dim=14336, max_seq_len=32768, window=4096),
    "mixtral_8x7b": dict(vocab_size=32000, dim=4096, n_layers=32, n_heads=32, n_kv_heads=8,
                         hidden_dim=14336, max_seq_len=32768, rope_theta=1e6, n_experts=8,
                         top_k=2),
    # week 9's models, from their config.json: DeepSeek-AI (2024), the main model without its
    # multi-token-prediction layer; Meta (2025), the text models of Llama 4 Scout and Maverick
    "deepseek_v3": dict(vocab_size=129280, dim=7168, n_layers=61, n_heads=128, hidden_dim=18432,
                        max_seq_len=163840, norm_eps=1e-6, kv_lora_rank=512, q_lora_rank=1536,
                        qk_nope_head_dim=128, qk_rope_head_dim=64, v_head_dim=128,
                        rope_pairs="interleaved", moe="deepseek", n_experts=256, top_k=8,
                        expert_hidden_dim=2048, n_shared_experts=1, n_group=8, topk_group=4,
                        routed_scaling_factor=2.5, first_dense_layers=3),
    "llama4_scout": dict(vocab_size=202048, dim=5120, n_layers=48, n_heads=40, n_kv_heads=8,
                         hidden_dim=16384, max_seq_len=10485760, rope_theta=500000.0,
                         rope_pairs="interleaved", moe="llama4", n_experts=16, top_k=1,
                         expert_hidden_dim=8192, n_shared_experts=1, nope_every=4, chunk=8192,
                         qk_norm=True, attn_scale=0.1, floor_scale=8192),
    "llama4_maverick": dict(vocab_size=202048, dim=5120, n_layers=48, n_heads=40, n_kv_heads=8,
                            hidden_dim=16384, max_seq_len=1048576, rope_theta=500000.0,
                            rope_pairs="interleaved", moe="llama4", n_experts=128, top_k=1,
                            expert_hidden_dim=8192, n_shared_experts=1, moe_every=2,
                            nope_every=4, chunk=8192, attn_scale=0.1, floor_scale=8192),
}
NAMES = {"gpt2": "GPT-2 small", "gpt2_medium": "GPT-2 medium", "gpt2_large": "GPT-2 large",
         "gpt2_xl": "GPT-2 XL", "llama2_7b": "Llama 2 7B", "llama2_13b": "Llama 2 13B",
         "llama2_70b": "Llama 2 70B", "mistral_7b": "Mistral 7B", "mixtral_8x7b": "Mixtral 8x7B"}
FRONTIER = {"deepseek_v3": "DeepSeek-V3", "llama4_scout": "Llama 4 Scout",
            "llama4_maverick": "Llama 4 Maverick"}
print(GPTConfig.preset("llama2_7b"))

# %% [markdown]
# ## Exercise 1: count the parameters
#
# Write `count_parameters(config, active=False)`, returning a Python `int` equal to
# `sum(p.numel() for p in MiniGPT(config).parameters())`, without building the model. With
# $V$ = `vocab_size`, $d$ = `dim`, $L$ = `n_layers`, head size $d_h = d / n_q$ with $n_q$ =
# `n_heads` and $n_{kv}$ = `n_kv_heads`, and $h$ = `hidden_dim`, a `MiniGPT` has:
#
# | part | parameters |
# |---|---|
# | `embed_tokens` | $V d$, plus a position table of `max_seq_len` $\times d$ when `pos == "learned"` |
# | per layer, attention | `q_proj` $d \times n_q d_h$, `k_proj` and `v_proj` $d \times n_{kv} d_h$ each, `o_proj` $n_q d_h \times d$ |
# | per layer, MLP | SwiGLU: `gate_proj`, `up_proj`, `down_proj`, $d \times h$ each; GELU: `up_proj`, `down_proj` |
# | per layer, MoE (`n_experts > 0`) | the router `gate`, $E \times d$, and $E$ SwiGLU experts |
# | per layer, norms | `input_layernorm`, `post_attention_layernorm`: $d$ each (RMSNorm) |
# | final `norm` | $d$ |
# | `lm_head` | $V d$, or nothing when `tie_embeddings` (it shares `embed_tokens`' matrix) |
#
# When `bias` is set (GPT-2), every linear layer of the attention and the MLP has a bias (one
# number per output feature) and the LayerNorms have one too ($2d$ per norm instead of $d$).
# With `active=True`, count only `top_k` experts per MoE layer (the router still counts): the
# parameters one token passes through. For a dense model `active` changes nothing.
#
# Count from the config: building a model and summing `numel()` is not allowed (it is what
# the checks below do), nor is calling the `parameter_breakdown` given further down. The
# default `active=False` is graded.

# %% role="answer" exercise="count_parameters"

# %% [markdown]
# The checks compare your counts with the sizes of the Hugging Face `transformers`
# implementations of the same models, instantiated without weights.

# %% role="test" exercise="count_parameters"
small = GPTConfig(vocab_size=10, dim=8, n_layers=1, n_heads=2, hidden_dim=16)
by_hand = 10 * 8 + (4 * 8 * 8) + (3 * 8 * 16) + 3 * 8 + 10 * 8  # emb, attn, mlp, norms, head
got = count_parameters(small)
assert isinstance(got, int), f"return a Python int, got {type(got).__name__}"
assert got == by_hand, f"a 1-layer, width-8 Llama-style model has {by_hand} parameters, got {got}"

gpt2 = count_parameters(GPTConfig.preset("gpt2"))
assert gpt2 != 124_439_808 + 50257 * 768, (
    "GPT-2 ties lm_head to embed_tokens: the shared matrix counts once")
assert gpt2 != 124_439_808 - 1024 * 768, "GPT-2 has a learned position table (max_seq_len x dim)"
assert gpt2 == 124_439_808, f"GPT-2 small has 124,439,808 parameters, got {gpt2:,}"

llama = count_parameters(GPTConfig.preset("llama2_7b"))
assert llama != 6_738_415_616 - 65 * 4096, "you forgot the norms: 2 per layer and a final one"
assert llama != 6_738_415_616 - 32 * 4096 * 11008, "SwiGLU has three matrices, not two"
assert llama == 6_738_415_616, f"Llama 2 7B has 6,738,415,616 parameters, got {llama:,}"

mistral = count_parameters(GPTConfig.preset("mistral_7b"))
assert mistral != 7_241_732_096 + 32 * 2 * 4096 * (4096 - 1024), (
    "under GQA, k_proj and v_proj have n_kv_heads * head_dim outputs, not n_heads * head_dim")
assert mistral == 7_241_732_096, f"Mistral 7B has 7,241,732,096 parameters, got {mistral:,}"

mixtral = GPTConfig.preset("mixtral_8x7b")
total, active = count_parameters(mixtral), count_parameters(mixtral, active=True)
assert total == 46_702_792_704, f"Mixtral 8x7B has 46,702,792,704 parameters, got {total:,}"
assert active != total, "with active=True count only top_k experts per layer"
assert active != 12_879_925_248 - 32 * 8 * 4096, "the router is used by every token: count it"
assert active == 12_879_925_248, f"Mixtral 8x7B has 12,879,925,248 active, got {active:,}"
print("count_parameters: visible checks passed")

# %% [markdown]
# ## Published sizes
#
# Your function sizes every preset in microseconds, 70B included. The memory column is the
# weights alone in bfloat16 (2 bytes per parameter); training needs several times more
# (gradients, Adam's two moments, activations).

# %% role="locked"
print(f"{'model':>14} {'parameters':>16} {'active':>16} {'bf16 weights':>13}")
for name, label in NAMES.items():
    config = GPTConfig.preset(name)
    n, n_active = count_parameters(config), count_parameters(config, active=True)
    print(f"{label:>14} {n:>16,d} {n_active:>16,d} {2 * n / 1e9:>10.1f} GB")

# %% [markdown]
# The frontier of the lesson's table, DeepSeek-V3 and Llama 4, adds parts that exercise 1 does
# not have (week 9 builds them: latent attention, shared experts, dense layers between the MoE
# layers). The course's own `count_parameters`, which week 9 extends, sizes their
# configurations above; the counts equal `transformers`' models of the same configurations.

# %% role="locked"
from solutions.scaling import count_parameters as course_count_parameters  # noqa: E402

print(f"{'model':>16} {'parameters':>16} {'active':>16} {'bf16 weights':>13}")
for name, label in FRONTIER.items():
    config = GPTConfig.preset(name)
    n, n_active = course_count_parameters(config), course_count_parameters(config, active=True)
    print(f"{label:>16} {n:>16,d} {n_active:>16,d} {2 * n / 1e9:>10.1f} GB")

# %% [markdown]
# ## Where the parameters are
#
# `parameter_breakdown` splits the same count by component. It is given, and it counts
# nothing itself: each part is what your `count_parameters` loses when that part is taken
# out of the configuration (no layers, no vocabulary, a tied head, an MLP of width 0). First
# Llama 2 7B, then the share of each component across the presets.

# %% role="locked" code="solutions.scaling:parameter_breakdown"
config = GPTConfig.preset("llama2_7b")
parts = parameter_breakdown(config)
total = sum(parts.values())
print(f"Llama 2 7B, {total:,d} parameters")
for part, n in parts.items():
    print(f"{part:>12} {n:>15,d} {n / total:8.2%}")

fig, ax = plt.subplots(figsize=(8, 3))
left = np.zeros(len(NAMES))
for part in parts:
    shares = np.array([parameter_breakdown(GPTConfig.preset(n))[part]
                       / count_parameters(GPTConfig.preset(n)) for n in NAMES])
    ax.barh(list(NAMES.values()), shares, left=left, label=part)
    left += shares
ax.set_xlabel("share of the parameters")
ax.legend(ncol=5, loc="upper center", bbox_to_anchor=(0.5, -0.25), frameon=False)
ax.invert_yaxis()
plt.tight_layout()
plt.show()

# %% [markdown]
# Two thirds of Llama 2 7B is MLP and a third attention; the 65 norms hold 266,240
# parameters, 0.004 %. GPT-2 small is different: its 50,257-token vocabulary makes the
# embedding table almost a third of the model, which is why Kaplan et al. (2020) fitted their
# scaling laws to non-embedding parameters. Grouped-query attention shrinks Mistral's
# attention share, and in Mixtral the eight experts take almost everything.
#
# ## Training FLOPs: about 6·N·D
#
# A forward pass costs about 2 FLOPs per parameter per token (a multiply and an add), the
# backward pass twice that, so training on $D$ tokens costs about $6ND$. Rather than take
# that on trust, let PyTorch count: `torch.utils.flop_counter.FlopCounterMode` records the
# FLOPs of every matrix product in one forward and backward pass of a small model (the
# reference `MiniGPT` of week 7; yours would count the same). Embedding lookups and norms
# are not matrix products, so the prediction uses the parameters that are, plus the
# attention term $12 \cdot L \cdot d \cdot T$ per token (scores and weighted sum, forward and
# backward) that no parameter accounts for.

# %% role="locked" code="solutions.scaling:training_flops"
tiny = GPTConfig(vocab_size=65, dim=64, n_layers=2, n_heads=4, max_seq_len=128)
batch, T = 4, 128
idx = torch.randint(0, 65, (batch, T))
with FlopCounterMode(display=False) as counter:
    _, loss = MiniGPT(tiny)(idx, idx)
    loss.backward()
measured = counter.get_total_flops()

parts = parameter_breakdown(tiny)
in_matmuls = count_parameters(tiny) - parts["embeddings"] - parts["norms"]
tokens = batch * T
print(f"measured by PyTorch:       {measured:>14,d} FLOPs")
print(f"6 N D:                     {6 * in_matmuls * tokens:>14,.0f}")
print(f"6 N D + attention (12LdT): {training_flops(in_matmuls, tokens, 2, 64, T):>14,.0f}")

# %% [markdown]
# The count is exact once the attention term is in. That term is PaLM's (Chowdhery et al.,
# 2022): it prices every query against all $T$ keys, and it matches here because this
# `MiniGPT` computes the whole $T \times T$ score matrix and masks it afterwards. With the
# causal mask, query $i$ needs only the keys $j \le i$, about half, so a kernel that skips the
# masked blocks (FlashAttention) does about $6 \cdot L \cdot d \cdot T$ per token. For big
# models at short contexts the attention term is small either way and $6ND$ is a good
# estimate; the table below prices some famous training runs, and then shows how the
# attention share grows with the context length, by both counts.

# %% role="locked"
runs = {  # parameters, training tokens (from the papers)
    "GPT-3 (Brown et al. 2020)": (175e9, 300e9),
    "Gopher (Rae et al. 2021)": (280e9, 300e9),
    "Chinchilla (Hoffmann et al. 2022)": (70e9, 1.4e12),
    "Llama 2 7B (Touvron et al. 2023)": (count_parameters(GPTConfig.preset("llama2_7b")), 2e12),
    "Llama 2 70B": (count_parameters(GPTConfig.preset("llama2_70b")), 2e12),
}
h100 = 0.4 * 989e12  # an H100 at 40 % model FLOPs utilisation (week 7)
print(f"{'run':>34} {'N':>9} {'D':>9} {'6ND FLOPs':>10} {'H100-years':>11}")
for run, (N, D) in runs.items():
    C = training_flops(N, D)
    print(f"{run:>34} {N:9.3g} {D:9.3g} {C:10.2e} {C / h100 / 3.15e7:11.1f}")

llama = GPTConfig.preset("llama2_7b")
N = count_parameters(llama)
print("\nLlama 2 7B: the attention term per token against 6N, by context length")
print(f"{'context':>8} {'PaLM 12LdT':>11} {'causal 6LdT':>12}")
for context in [1024, 4096, 32768, 131072]:
    extra = training_flops(N, 1, llama.n_layers, llama.dim, context) - training_flops(N, 1)
    print(f"{context:>8,d} {extra / (6 * N):>11.1%} {extra / 2 / (6 * N):>12.1%}")
palm_even = 6 * N / (12 * llama.n_layers * llama.dim)
print(f"the attention term equals 6N at T = {palm_even:,.0f} by PaLM's count, "
      f"at T = {2 * palm_even:,.0f} by the causal one")

# %% [markdown]
# ## Exercise 2: the Chinchilla loss
#
# Hoffmann et al. (2022) trained over 400 models and fitted the final loss of a model with
# $N$ parameters trained on $D$ tokens as
#
# $$L(N, D) = E + \frac{A}{N^{\alpha}} + \frac{B}{D^{\beta}},\qquad
# E = 1.69,\ A = 406.4,\ B = 410.7,\ \alpha = 0.34,\ \beta = 0.28.$$
#
# Write `chinchilla_loss(N, D)` (the constants are default arguments). It must work for
# Python floats and, elementwise, for tensors or NumPy arrays of `N` and `D`, which the loss
# surface below relies on.

# %% role="answer" exercise="chinchilla_loss"

# %% role="test" exercise="chinchilla_loss"
got = float(chinchilla_loss(70e9, 1.4e12))
expected = 1.69 + 406.4 / 70e9**0.34 + 410.7 / 1.4e12**0.28
swapped = 1.69 + 406.4 / 70e9**0.28 + 410.7 / 1.4e12**0.34
assert not math.isclose(got, swapped, rel_tol=1e-9), (
    "alpha = 0.34 goes with N (and A), beta = 0.28 with D (and B)")
assert math.isclose(got, expected, rel_tol=1e-9), (
    f"Chinchilla (70B on 1.4T tokens) should get {expected:.4f}, got {got:.4f}")
assert float(chinchilla_loss(1e40, 1e40)) < 1.7, "with endless N and D the loss tends to E = 1.69"

N = torch.tensor([1e8, 1e9, 1e10], dtype=torch.float64)
D = torch.tensor([2e9, 2e10, 2e11], dtype=torch.float64)
losses = chinchilla_loss(N, D)
assert torch.is_tensor(losses) and losses.shape == (3,), "tensors in, a tensor of losses out"
assert bool((losses[1:] < losses[:-1]).all()), "bigger models on more data should do better"
print(f"Chinchilla: predicted loss {got:.4f}; losses for the tensor inputs {losses.tolist()}")
print("chinchilla_loss: visible checks passed")

# %% [markdown]
# ## Exercise 3: the compute-optimal model
#
# A budget of $C$ FLOPs buys any $N$ and $D$ with $C = 6ND$. Write `compute_optimal(C)`,
# returning the `(N, D)` (floats) that minimise `chinchilla_loss(N, D)` on that budget.
# Substitute $D = C / (6N)$ and minimise over $N$ alone: setting the derivative to zero gives
# a closed form (a power of $C$), or you can minimise numerically, for instance over a fine
# grid of $\log N$ (your own, or `scipy.optimize` if you have it: both are allowed). Note
# that $E$ plays no part: it moves the loss, not its minimum.

# %% role="answer" exercise="compute_optimal"

# %% role="test" exercise="compute_optimal"
for C in [1e19, 5.76e23, 1e25]:
    N, D = compute_optimal(C)
    assert math.isclose(6 * N * D, C, rel_tol=1e-6), (
        f"for C = {C:.3g}, 6 N D = {6 * N * D:.3g}: training costs 6 N D FLOPs (not 2 N D)")
    best = chinchilla_loss(N, D)
    for factor in [0.8, 0.95, 1.05, 1.25]:
        other = chinchilla_loss(N * factor, C / (6 * N * factor))
        assert other >= best, (
            f"for C = {C:.3g}, a model {factor}x your N on the same budget has a lower loss: "
            "your (N, D) is not the minimum")
N, D = compute_optimal(5.76e23)
assert not math.isclose(D / N, 20, rel_tol=0.05), (
    "20 tokens per parameter is the rule of thumb; the exercise asks for the minimiser of the fit")
ratios = [D / N for N, D in map(compute_optimal, [1e19, 1e25])]
assert ratios[1] > ratios[0], "with alpha > beta, tokens per parameter grow with the budget"
print(f"Gopher's budget: N = {N:.3g} parameters on D = {D:.3g} tokens ({D / N:.0f} per parameter)")
print("compute_optimal: visible checks passed")

# %% [markdown]
# ## Compute-optimal budgets
#
# The optimum for budgets from $10^{18}$ FLOPs (a few minutes of a modern GPU) to $10^{25}$,
# then some real models against the optimum for their own budget.

# %% role="locked"
print(f"{'C (FLOPs)':>10} {'N opt':>10} {'D opt':>10} {'D/N':>6} {'loss':>7}")
for C in [1e18, 1e19, 1e20, 1e21, 1e22, 1e23, 5.76e23, 1e24, 1e25]:
    N, D = compute_optimal(C)
    print(f"{C:10.3g} {N:10.3g} {D:10.3g} {D / N:6.0f} {float(chinchilla_loss(N, D)):7.3f}")

print(f"\n{'run':>34} {'loss':>6} | {'optimum for its budget':>24} {'loss':>6}")
for run, (N, D) in runs.items():
    N_opt, D_opt = compute_optimal(6 * N * D)
    print(f"{run:>34} {float(chinchilla_loss(N, D)):6.3f} | "
          f"{N_opt:9.3g} on {D_opt:9.3g} tok {float(chinchilla_loss(N_opt, D_opt)):6.3f}")

# %% [markdown]
# Read the second table the way Hoffmann et al. did. GPT-3 and Gopher sit far from their
# optimum, with too many parameters for their tokens: undertrained. Chinchilla, with about
# Gopher's compute, is much closer and predicted lower. Llama 2 7B sits on the other side
# (about 300 tokens per parameter): the optimum for its budget is a model about twice as big,
# but only 0.007 better, and the 7B model is half as expensive at every token it generates.
#
# ## The loss surface
#
# The whole picture: the predicted loss over $N$ and $D$ (contours), lines of equal compute
# $C = 6ND$ (grey), and the compute-optimal frontier your `compute_optimal` traces across
# them (red). Along each grey line the loss is lowest where the red line crosses it.

# %% role="locked"
log_n = torch.linspace(7, 12, 200, dtype=torch.float64)  # 10M to 1T parameters
log_d = torch.linspace(9, 14, 200, dtype=torch.float64)  # 1B to 100T tokens
grid_n, grid_d = torch.meshgrid(10**log_n, 10**log_d, indexing="xy")
surface = chinchilla_loss(grid_n, grid_d)

fig, ax = plt.subplots(figsize=(7, 5.5))
contours = ax.contourf(grid_n, grid_d, surface, levels=np.linspace(1.8, 3.6, 19), cmap="viridis",
                       extend="both")
fig.colorbar(contours, label="predicted loss")
for C in [1e19, 1e21, 1e23, 1e25]:
    ax.plot(10**log_n, C / (6 * 10**log_n), color="grey", lw=0.8)
    n_label = min(max(C / (6 * 5e13), 1.2e7), 5e11)  # a point of the line inside the axes
    ax.annotate(f"C = 1e{round(math.log10(C))}", (n_label, C / (6 * n_label)), color="white",
                fontsize=8)
budgets = np.logspace(17, 26, 50)
frontier = np.array([compute_optimal(C) for C in budgets])
ax.plot(frontier[:, 0], frontier[:, 1], color="red", lw=2, label="compute-optimal")
for run, (N, D) in runs.items():
    ax.plot(N, D, "w*", ms=9)
    below = run.startswith(("GPT-3", "Chinchilla"))  # keep neighbouring labels apart
    ax.annotate(run.split(" (")[0], (N, D), color="white", fontsize=8,
                xytext=(4, -12 if below else 4), textcoords="offset points")
ax.set(xscale="log", yscale="log", xlabel="parameters N", ylabel="training tokens D",
       xlim=(1e7, 1e12), ylim=(1e9, 1e14))
ax.legend(loc="lower right")
plt.tight_layout()
plt.show()

# %% [markdown]
# ## Your own scaling law
#
# The laws above were fitted to hundreds of runs on a cluster. The same shape appears at
# laptop scale. Below, four models of increasing size train for the same 200 steps
# (about 200k characters of tiny Shakespeare, the week-7 data), and we fit a power law
# $L(N) = a \cdot N^{-\alpha}$, a straight line on log-log axes, to their validation losses
# against their non-embedding parameters (Kaplan et al.'s convention). The runs use the
# reference `MiniGPT` and `Trainer` of week 7 (your own `MiniGPT` from week 7 would do the
# same); they take under a minute on two CPU cores.

# %% role="locked"
data = load_dataset("char")  # tiny Shakespeare, one token per character
sizes = [(16, 1), (32, 2), (64, 2), (96, 3)]  # (dim, n_layers)
train_cfg = TrainConfig(batch_size=16, block_size=64, max_iters=200, lr=3e-3, min_lr=3e-4,
                        warmup_iters=20, eval_interval=200, eval_iters=10, device="cpu")
results = []
for dim, n_layers in sizes:
    config = GPTConfig(vocab_size=data.vocab_size, dim=dim, n_layers=n_layers, n_heads=4,
                       max_seq_len=64)
    parts = parameter_breakdown(config)
    n = count_parameters(config) - parts["embeddings"] - parts["head"]
    torch.manual_seed(0)
    start = time.perf_counter()
    history = Trainer(MiniGPT(config), data, train_cfg).fit(progress=False)
    results.append((n, history[-1]["val"]))
    print(f"dim {dim:3d}, {n_layers} layers: {n:>7,d} non-embedding parameters, "
          f"val loss {history[-1]['val']:.3f} ({time.perf_counter() - start:.0f} s)")

n_params, val_losses = np.array(results).T
slope, intercept = np.polyfit(np.log(n_params), np.log(val_losses), 1)
print(f"fit: L(N) = {math.exp(intercept):.2f} * N^(-{-slope:.3f})")

fig, ax = plt.subplots(figsize=(6, 4))
ax.plot(n_params, val_losses, "o", label="your runs (200 steps each)")
line = np.logspace(math.log10(n_params.min()) - 0.3, math.log10(n_params.max()) + 0.3, 50)
ax.plot(line, math.exp(intercept) * line**slope, "--", label=f"fit, alpha = {-slope:.3f}")
ax.set(xscale="log", yscale="log", xlabel="non-embedding parameters N",
       ylabel="validation loss (nats per character)")
ax.legend()
plt.tight_layout()
plt.show()

# %% [markdown]
# Bigger models reach lower loss on the same data, and on log-log axes the points fall close
# to a line. Do not read too much into the fitted exponent: four short runs on one seed are
# noisy, a pure power law ignores the irreducible loss, and at 200 steps the bigger models
# are far from done (they are "undertrained" in exactly the lesson's sense). Kaplan et al.
# found $\alpha_N \approx 0.076$ for models trained to convergence on web text. To see the
# data side of the law, rerun the cell with more steps (`max_iters`) for one size.
#
# ## What context costs
#
# Attention compares every query with every earlier key, so its work grows with the square
# of the context length $T$, while the weights' work grows linearly. First the numbers for
# Llama 2 7B (and the KV caches of three models, fp16), then a measurement: plain attention,
# `softmax(q k^T / sqrt(d)) v`, timed on this CPU as $T$ doubles.

# %% role="locked" code="solutions.efficient_attention:kv_cache_bytes"
def kv_cache_gib(config: GPTConfig, context: int) -> float:
    """Week 5's count for one sequence at fp16, in GiB; a sliding window caps the tokens."""
    head_dim = config.dim // config.n_heads
    return kv_cache_bytes(config.n_layers, config.n_kv_heads, head_dim, context,
                          window=config.window) / 2**30


llama7, llama70, mistral = (GPTConfig.preset(n) for n in ["llama2_7b", "llama2_70b", "mistral_7b"])
N = count_parameters(llama7)
print(f"{'context':>8} | {'attention / 6N':>14} {'scores/layer':>13} | KV cache (GiB): "
      f"{'Llama 2 7B':>10} {'Llama 2 70B':>11} {'Mistral 7B':>10}")
for context in [1024, 4096, 32768, 131072]:
    attention = 12 * llama7.n_layers * llama7.dim * context / (6 * N)
    scores = llama7.n_heads * context**2 * 2 / 2**30  # one T x T matrix per head, fp16
    print(f"{context:>8,d} | {attention:>14.1%} {scores:>9.2f} GiB | {'':15}"
          f"{kv_cache_gib(llama7, context):>10.2f} {kv_cache_gib(llama70, context):>11.2f} "
          f"{kv_cache_gib(mistral, context):>10.2f}")

# Llama 4 Scout, from Meta's published configuration: 48 layers with 8 key/value heads of
# 128; every fourth layer attends to all tokens, the other 36 within chunks of 8,192 tokens
per_layer_token = 2 * 8 * 128 * 2  # keys and values, bf16 bytes
scout_tokens = 10_000_000
scout = per_layer_token * (12 * scout_tokens + 36 * 8192)
print(f"Llama 4 Scout at 10M tokens: {scout / 1e12:.2f} TB of KV cache for one sequence "
      f"({per_layer_token * 48 * scout_tokens / 1e12:.2f} TB if all 48 layers were global)")

heads, head_dim = 4, 64
timings = {}
for T in [256, 512, 1024, 2048]:
    q, k, v = torch.randn(3, 1, heads, T, head_dim).unbind(0)
    mask = torch.ones(T, T, dtype=torch.bool).tril()
    best = float("inf")
    for _ in range(3):
        start = time.perf_counter()
        scores = (q @ k.transpose(-2, -1) / math.sqrt(head_dim)).masked_fill(~mask, float("-inf"))
        out = scores.softmax(-1) @ v
        best = min(best, time.perf_counter() - start)
    timings[T] = best
    growth = f"x{best / timings[T // 2]:.1f}" if T // 2 in timings else ""
    print(f"T = {T:5d}: {1000 * best:7.2f} ms {growth}")

# %% [markdown]
# Each doubling of $T$ costs about four times the time once the $T \times T$ work
# dominates, sometimes more when the score matrices outgrow the CPU's caches (small sizes
# are noisier). The score matrices are the memory problem that
# FlashAttention (Dao et al., 2022) removes by working in tiles; the quadratic FLOPs remain,
# which is one reason state-space models such as Mamba, with linear cost and a fixed-size
# state instead of a KV cache, are worth watching. And a long window is not the same as a
# well-used one: models read the start and end of a long context best and the middle worst
# (Liu et al., 2023, "Lost in the Middle").
#
# ## Linear attention: attention as a recurrence
#
# Replace the softmax's $\exp(q_i \cdot k_j)$ by $\phi(q_i) \cdot \phi(k_j)$ with a positive
# feature map $\phi$ (Katharopoulos et al., 2020, used $\operatorname{elu}(x) + 1$). Causal
# attention can then be computed two ways: in parallel, with a masked $T \times T$ matrix like
# ordinary attention, or one token at a time, carrying a $d \times d$ state $S$ and a
# $d$-vector $z$ instead of a growing KV cache. The cell computes both and compares them.

# %% role="locked"
def phi(x: torch.Tensor) -> torch.Tensor:
    return torch.nn.functional.elu(x) + 1  # positive features


T, d = 256, 32
q, k, v = torch.randn(3, T, d, dtype=torch.float64).unbind(0)
fq, fk = phi(q), phi(k)

weights = (fq @ fk.T).tril()  # (T, T): query i against keys j <= i, no softmax
parallel = weights @ v / weights.sum(-1, keepdim=True)

S = torch.zeros(d, d, dtype=torch.float64)  # the whole memory of the past
z = torch.zeros(d, dtype=torch.float64)
rows = []
for t in range(T):
    S += torch.outer(fk[t], v[t])
    z += fk[t]
    rows.append(fq[t] @ S / (fq[t] @ z))
recurrent = torch.stack(rows)

print(f"largest |parallel - recurrent|: {(parallel - recurrent).abs().max().item():.1e}")
print(f"state: {S.numel() + z.numel():,} numbers, whatever T; "
      f"a KV cache at T = {T} holds {2 * T * d:,} and grows with every token")
assert torch.allclose(parallel, recurrent)

# %% [markdown]
# The two forms agree to rounding. The fixed-size state is the strength (constant memory and
# time per generated token) and the weakness (everything the model keeps about the past must
# fit in it), exactly as for the state-space models of the lesson.
#
# ## What you built
#
# - `count_parameters`: an exact count from the configuration, total and active.
# - `chinchilla_loss`: the Hoffmann et al. (2022) fit of loss against $N$ and $D$.
# - `compute_optimal`: the best split of a budget $C = 6ND$ under that fit.
#
# With them you priced famous training runs, saw why Chinchilla beat Gopher and why Llama 2
# 7B was trained "too long" on purpose, fitted a scaling law of your own, and measured the
# quadratic cost of context. Next: take the [week 8 quiz](../../../site/weeks/week8/quiz.md).


# %% [markdown]
# ## Grade this notebook
#
# Save the notebook first (Ctrl+S): the grader reads the saved file. This cell runs the hidden
# tests your instructor uses, in a separate process started with this kernel's own Python, so
# it works wherever JupyterLab was started.

# %% role="locked"
# NBVAL_SKIP
import os
import subprocess
import sys

if os.environ.get("NBGRADER_EXECUTION") != "autograde":  # nbgrader grades after its own run
    grading = subprocess.run([sys.executable, "-m", "autograder", "grade", "scale.ipynb"],
                             capture_output=True, text=True)
    print(grading.stdout + grading.stderr)
