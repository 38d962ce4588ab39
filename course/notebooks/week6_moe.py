# %% [markdown]
# # Week 6: Mixture of experts
#
# Mixtral 8x7B keeps Mistral's attention but replaces the single feed-forward block of each
# layer by **eight** SwiGLU experts and a small **router**. Every token is sent to its two
# best experts only, so the model stores about 46.7 billion parameters but uses about 12.9
# billion of them per token. In this notebook you build that block, the auxiliary loss that
# keeps the router from overloading a few experts, and then look at the routing, check that
# the sparse computation equals a dense one, and count total against active parameters.
#
# Read the [week 6 lesson](../../../site/weeks/week6/lesson.md) first (also on the course
# site, Week 6 → Lesson). The conventions the graders enforce follow the Hugging Face
# `transformers` Mixtral implementation, so your block can load Mixtral weights by name.
#
# **How this notebook works.** Write your code where it says `# YOUR CODE HERE` (delete the
# `raise NotImplementedError()`), then run the check cell below it. The visible checks catch
# the common mistakes; hidden tests with other shapes, dtypes and gradients grade the
# submission. You can run the same grader yourself: save the notebook and run its last cell,
# **Grade this notebook**; or from a terminal:
#
# ```bash
# .venv/bin/autograder grade course/release/week6/moe.ipynb   # from the course folder
# autograder grade moe.ipynb   # from this folder, after `source .venv/bin/activate`
# ```

# %% role="locked"
import time

import matplotlib.pyplot as plt
import torch
import torch.nn.functional as F  # noqa: F401 (used by the given SwiGLU below)
from torch import Tensor, nn  # noqa: F401 (nn: used by the given code and the answer cells)

torch.manual_seed(0)
print(f"torch {torch.__version__}")

# %% [markdown]
# ## The experts: SwiGLU from week 3
#
# Each expert is exactly the week-3 feed-forward block,
# `down_proj(silu(gate_proj(x)) * up_proj(x))` with three bias-free projections. It is given
# here so that this notebook stands on its own; it is the same as the `SwiGLU` you wrote in
# week 3 (you may paste yours instead, as long as the names stay the same).

# %% role="locked" code="solutions.feedforward:SwiGLU"

# %% [markdown]
# ## Exercise 1: a top-k mixture-of-experts block
#
# For a token $x \in \mathbb{R}^d$, the router is one linear map with a row per expert:
# $z = W_g x \in \mathbb{R}^E$ (the **router logits**). Mixtral's routing then
#
# 1. takes a softmax over **all** $E$ experts, in float32: $p = \mathrm{softmax}(z)$;
# 2. keeps the $k$ largest probabilities, $\mathcal{T} = \mathrm{topk}(p, k)$;
# 3. **renormalises** them so the $k$ weights sum to one: $w_e = p_e / \sum_{j \in \mathcal{T}} p_j$;
# 4. returns the weighted sum of the chosen experts' **outputs**:
#
# $$y = \sum_{e \in \mathcal{T}} w_e \, \mathrm{SwiGLU}_e(x).$$
#
# Softmax-then-renormalise equals a softmax over the $k$ chosen logits alone (the common
# factor $\sum_{j} e^{z_j}$ cancels), so either way of writing it is right.
#
# The conventions:
#
# - `MoE(dim, hidden_dim, n_experts, top_k)` with `self.gate = nn.Linear(dim, n_experts,
#   bias=False)` and `self.experts = nn.ModuleList` of `n_experts` `SwiGLU(dim, hidden_dim)`,
#   so the state dict has `gate.weight` `(n_experts, dim)` and
#   `experts.{e}.gate_proj.weight`, `experts.{e}.up_proj.weight`, `experts.{e}.down_proj.weight`;
# - `forward(x)` takes `x` of shape `(batch, seq, dim)` and returns a pair
#   `(y, router_logits)`: `y` has the shape and dtype of `x`; `router_logits` are the **raw**
#   logits `gate(x)` (before any softmax), flattened to `(batch * seq, n_experts)`, which is
#   what the load-balancing loss of exercise 2 takes;
# - the weights of the chosen experts must stay differentiable functions of the logits, so
#   that the router learns.
#
# The skeleton has a helper `route(router_logits, top_k)` returning the `(N, k)` weights and
# the `(N, k)` chosen experts: write it (the dense check further down calls it); using it
# in `MoE` is up to you. The efficient way to run the experts
# ("index dispatch"): for each expert, find the tokens that chose it (`torch.where(chosen ==
# e)`), run the expert on those rows only, and add the weighted result back with `index_add_`.
#
# **Not allowed:** `transformers`' `MixtralSparseMoeBlock` and its `...Experts` and
# `...TopKRouter` classes. `torch.topk`, `F.softmax`, `torch.where` and `index_add_` are the
# building blocks.

# %% role="answer" exercise="moe"

# %% [markdown]
# Run the checks. A failed check tells you what to look at.

# %% role="test" exercise="moe"
block = MoE(dim=16, hidden_dim=32, n_experts=4, top_k=2)
shapes = {name: tuple(p.shape) for name, p in block.named_parameters()}
expected = {"gate.weight": (4, 16)}
for e in range(4):
    expected |= {f"experts.{e}.gate_proj.weight": (32, 16), f"experts.{e}.up_proj.weight": (32, 16),
                 f"experts.{e}.down_proj.weight": (16, 32)}
assert shapes == expected, f"parameters should be {expected} (no biases); got {shapes}"

x = torch.randn(2, 5, 16)
out = block(x)
assert isinstance(out, tuple) and len(out) == 2, "forward should return a pair (y, router_logits)"
y, logits = out
assert y.shape == x.shape and y.dtype == x.dtype, f"y should be like x; got {tuple(y.shape)}"
assert logits.shape == (10, 4), (
    f"router_logits should be (batch*seq, n_experts) = (10, 4); got {tuple(logits.shape)}")

with torch.no_grad():
    x_flat = x.reshape(-1, 16)
    raw = block.gate(x_flat)
    assert torch.allclose(logits, raw, atol=1e-6), (
        "router_logits should be the raw gate(x), before the softmax")
    probs = raw.softmax(-1)
    top, idx = probs.topk(2, dim=-1)
    outs = torch.stack([expert(x_flat) for expert in block.experts], dim=1)  # (N, E, dim)
    picked = outs.gather(1, idx[..., None].expand(-1, -1, 16))  # (N, k, dim)
    by_hand = (top[..., None] / top.sum(-1)[:, None, None] * picked).sum(1)
    not_renormalised = (top[..., None] * picked).sum(1)
y_flat = y.detach().reshape(-1, 16)
assert not torch.allclose(y_flat, not_renormalised, atol=1e-5), (
    "the two chosen weights should be renormalised to sum to 1 (divide by their sum)")
assert not torch.allclose(y_flat, outs[torch.arange(10), probs.argmax(-1)], atol=1e-5), (
    "you use only the best expert; take the top_k best (torch.topk)")
assert torch.allclose(y_flat, by_hand, atol=1e-5), (
    "y differs from the renormalised top-2 weighted sum of the experts' outputs; check that "
    "the softmax runs over the experts (last dim) and that the weights multiply the outputs")

dense = MoE(dim=16, hidden_dim=32, n_experts=4, top_k=4)
with torch.no_grad():
    y_dense, raw = dense(x)
    all_outs = torch.stack([expert(x) for expert in dense.experts], dim=-2)  # (B, T, E, dim)
    weights = raw.softmax(-1).view(2, 5, 4, 1)
assert torch.allclose(y_dense, (weights * all_outs).sum(-2), atol=1e-5), (
    "with top_k = n_experts the MoE is the softmax-weighted sum of all experts")

y.sum().backward()
assert block.gate.weight.grad is not None and block.gate.weight.grad.abs().sum() > 0, (
    "the router gate.weight gets no gradient: keep the routing weights attached to autograd")
print("MoE: visible checks passed")

# %% [markdown]
# ## Exercise 2: the load-balancing loss
#
# Nothing in the MoE block stops the router from sending most tokens to the same few experts,
# which then learn faster and attract even more tokens. The Switch Transformer (Fedus et al.,
# 2021) adds an auxiliary loss per layer. For $N$ tokens and $E$ experts,
#
# $$\mathcal{L}_\text{balance} = E \sum_{e=1}^{E} f_e \, P_e,\qquad
# f_e = \frac{1}{N}\,\#\{\text{tokens with } e \text{ among their top } k\},\qquad
# P_e = \frac{1}{N}\sum_{t=1}^{N} p_{t,e}$$
#
# where $p_t = \mathrm{softmax}(z_t)$ over the experts. $f_e$ counts hard picks (no gradient);
# $P_e$ is differentiable and carries the push toward balance. This is the value of
# `transformers`' `load_balancing_loss_func` for one layer without an attention mask. Since
# $\sum_e f_e = k$, perfectly uniform routing gives exactly $k$ (`top_k`); sending everything
# to one expert pushes it toward $E$.
#
# - `load_balancing_loss(router_logits, n_experts, top_k)` with `router_logits` of shape
#   `(N, n_experts)` (what your `MoE` returns);
# - return a 0-dimensional float32 tensor, differentiable with respect to the logits.
#
# **Not allowed:** `transformers`' `load_balancing_loss_func`, which computes the same value.

# %% role="answer" exercise="load_balancing_loss"

# %% role="test" exercise="load_balancing_loss"
uniform = load_balancing_loss(torch.zeros(8, 4), 4, 2)
assert isinstance(uniform, Tensor) and uniform.dim() == 0, "return a 0-dimensional tensor"
assert torch.isclose(uniform, torch.tensor(2.0)), (
    f"all-equal logits should give top_k = 2, got {uniform.item():.4f}; did you multiply by "
    "n_experts and count every top-k pick?")

# by hand: both tokens put probability (0.25, 0.75) on two experts, top-1 picks expert 1,
# so f = (0, 1), P = (0.25, 0.75) and the loss is 2 * 0.75 = 1.5
two = torch.log(torch.tensor([[1.0, 3.0], [1.0, 3.0]]))
got = load_balancing_loss(two, 2, 1)
assert torch.isclose(got, torch.tensor(1.5)), (
    f"expected 1.5, got {got.item():.4f}: P_e is the mean softmax probability, f_e the "
    "fraction of tokens that picked e")
assert torch.isclose(load_balancing_loss(two, 2, 2), torch.tensor(2.0)), (
    "with top_k = 2 of 2 experts every expert is picked by every token: f = (1, 1), loss 2")

collapsed = torch.zeros(16, 4)
collapsed[:, 0] = 10.0
assert load_balancing_loss(collapsed, 4, 1) > 3.9, "all tokens on one expert should cost about 4"

logits = torch.randn(32, 8, requires_grad=True)
loss = load_balancing_loss(logits, 8, 2)
loss.backward()
assert logits.grad is not None and logits.grad.abs().sum() > 0, (
    "the loss must be differentiable with respect to the logits (through P_e)")
print("load_balancing_loss: visible checks passed")

# %% [markdown]
# ## Where do the tokens go? A routing histogram
#
# Below, 4096 random tokens go through your `MoE` (8 experts, top-2) and we count how many
# tokens each expert receives. A freshly initialised router on random tokens spreads them
# roughly evenly; trained routers on real text do not, unless something pushes them to.
# Then we shift the tokens so that expert 0's logit rises by 1 for every one of them, the
# start of a collapse, and see what the load-balancing loss makes of it.

# %% role="locked"
torch.manual_seed(0)
dim, n_experts, top_k = 64, 8, 2
layer = MoE(dim, 128, n_experts, top_k)
tokens = torch.randn(1, 4096, dim)


def tokens_per_expert(logits: Tensor, k: int) -> Tensor:
    chosen = logits.topk(k, dim=-1).indices  # (N, k)
    return torch.bincount(chosen.flatten(), minlength=logits.shape[-1])


with torch.no_grad():
    _, fresh_logits = layer(tokens)
    # move every token a little along expert 0's router row: its logit rises by 1 for all
    row = layer.gate.weight[0]
    _, tilted_logits = layer(tokens + row / row.norm() ** 2)

fig, axes = plt.subplots(1, 2, figsize=(9, 3), sharey=True)
panels = [("fresh router", fresh_logits), ("tilted router", tilted_logits)]
for ax, (title, lg) in zip(axes, panels, strict=True):
    counts = tokens_per_expert(lg, top_k)
    loss = load_balancing_loss(lg, n_experts, top_k).item()
    ax.bar(range(n_experts), counts.tolist())
    ax.axhline(4096 * top_k / n_experts, color="grey", ls="--", lw=1)
    ax.set_title(f"{title}: balance loss {loss:.3f}")
    ax.set_xlabel("expert")
    print(f"{title:>14}: tokens per expert {counts.tolist()}, loss {loss:.3f} (ideal {top_k})")
axes[0].set_ylabel("tokens routed (top-2)")
plt.tight_layout()
plt.show()

# %% [markdown]
# The dashed line is perfect balance, $N k / E$ tokens per expert. With a balanced router the
# loss sits at `top_k`; the more the counts pile up, the higher it climbs. In training its
# gradient flows through $P_e$ and lowers the probability of overloaded experts.
#
# ## Is `top_k` the lowest value?
#
# Uniform routing gives exactly $k$, but that is not a floor. $f_e$ counts hard picks while
# $P_e$ averages probabilities, and the two can disagree: many tokens that barely prefer one
# expert raise its $f_e$ but hardly its $P_e$. Below, the example of the lesson ($E = 2$,
# $k = 1$: three tokens at $p \approx (0.5, 0.5)$ leaning to expert 0, one token sure of
# expert 1), then a blind search over random routings of four tokens for the smallest loss.

# %% role="locked"
near_tie = torch.log(torch.tensor([[0.501, 0.499]] * 3 + [[0.001, 0.999]]))
print(f"lesson's example: loss {load_balancing_loss(near_tie, 2, 1).item():.3f} (top_k = 1), "
      f"tokens per expert {tokens_per_expert(near_tie, 1).tolist()}")

search = torch.Generator().manual_seed(0)
best_loss, best_logits = float("inf"), None
for _ in range(2000):
    logits = 3 * torch.randn(4, 2, generator=search)
    value = load_balancing_loss(logits, 2, 1).item()
    if value < best_loss:
        best_loss, best_logits = value, logits
print(f"search, best of 2000: loss {best_loss:.3f}, tokens per expert "
      f"{tokens_per_expert(best_logits, 1).tolist()}, mean probabilities "
      f"{[round(p, 3) for p in best_logits.softmax(-1).mean(0).tolist()]}")
assert best_loss < 1, "a routing with loss below top_k exists"

# %% [markdown]
# The best routing found sends three tokens to one expert and one to the other: unbalanced,
# yet below $k$, because the busy expert's tokens were unsure of it while the lone token was
# sure of its own. (For two experts and $k = 1$ the loss cannot go below $7/8$.) So read
# `top_k` as the value of a balanced router, not as the best possible one: what the loss
# rewards is routing in which the experts that get many tokens are not also the ones the
# router gives high probability. When the counts follow the probabilities ($f_e = k P_e$),
# the loss is $k E \sum_e P_e^2$, which is smallest, exactly $k$, at uniform routing.
#
# ## Sparse equals dense
#
# Your `MoE` runs each expert only on the tokens routed to it. The same result can be written
# densely: run **every** expert on **every** token and weight the outputs by an $(N, E)$
# routing matrix that holds the $k$ renormalised weights of each token and zeros elsewhere.
# The dense form is easy to read and check, and does $E/k$ times the expert work. It calls
# your `route` for the weights: what it checks is how your `MoE` sends the tokens.

# %% role="locked" code="solutions.moe:dense_moe_forward"
torch.manual_seed(1)
moe = MoE(dim=256, hidden_dim=512, n_experts=8, top_k=2)
x = torch.randn(4, 256, 256)
with torch.no_grad():
    y_sparse, _ = moe(x)
    y_dense, _ = dense_moe_forward(moe, x)
    print(f"largest |sparse - dense|: {(y_sparse - y_dense).abs().max().item():.2e}")
    for name, fn in [("sparse (yours)", moe), ("dense", lambda t: dense_moe_forward(moe, t))]:
        fn(x)  # warm-up
        start = time.perf_counter()
        for _ in range(3):
            fn(x)
        print(f"{name:>15}: {1000 * (time.perf_counter() - start) / 3:7.1f} ms per forward")

# %% [markdown]
# The two agree to rounding error. On this CPU the sparse version should also be faster,
# since it does about $k/E = 1/4$ of the expert arithmetic; on a GPU the gathering and
# scattering have their own cost, which is why production kernels group tokens by expert.
#
# ## Total against active parameters: Mixtral 8x7B
#
# Mixtral 8x7B (Jiang et al., 2024) has 32 layers, width 4096, 32 query heads and 8 key/value
# heads of size 128, experts with hidden width 14336, 8 experts per layer with 2 active, a
# 32000-token vocabulary and separate input and output embeddings. From these numbers alone:

# %% role="locked"
def mixtral_parameters(active: bool, vocab=32000, dim=4096, layers=32, heads=32, kv_heads=8,
                       hidden=14336, experts=8, top_k=2) -> int:
    head_dim = dim // heads
    attention = dim * heads * head_dim * 2 + dim * kv_heads * head_dim * 2  # q, o and k, v
    expert = 3 * dim * hidden  # gate_proj, up_proj, down_proj
    router = experts * dim
    norms = 2 * dim
    used = top_k if active else experts
    per_layer = attention + used * expert + router + norms
    return layers * per_layer + 2 * vocab * dim + dim  # + embeddings, lm_head, final norm


total, active = mixtral_parameters(False), mixtral_parameters(True)
print(f"total  {total:>16,d}  ({total / 1e9:.1f} B)")
print(f"active {active:>16,d}  ({active / 1e9:.1f} B per token, {active / total:.0%})")
print(f"bf16 weights in memory: {2 * total / 1e9:.1f} GB, of which {2 * active / 1e9:.1f} GB "
      "are read for any one token")

# the same formula, scaled down, against a real MoE layer of yours
small = MoE(dim=32, hidden_dim=48, n_experts=8, top_k=2)
counted = sum(p.numel() for p in small.parameters())
assert counted == 8 * 3 * 32 * 48 + 8 * 32, counted
print(f"a small MoE layer: {counted:,d} parameters, formula agrees")

# %% [markdown]
# The result, 46,702,792,704 total and 12,879,925,248 active, is what instantiating
# `transformers`' Mixtral configuration gives; the "8x7B" name oversells it, because the
# attention, embeddings and norms are shared rather than copied eight times. The compute per
# token follows the active count, but the memory does not: any expert may be picked by the
# next token, so all 46.7 B parameters must sit in (GPU) memory, about 93 GB in bfloat16.
#
# ## How many experts does a batch touch?
#
# A decoding step reads the weights of every expert its tokens chose. One token uses 2 of the
# 8 experts of a layer; a batch of $B$ tokens needs all the experts any of them chose. If the
# choices were random and independent, a token would skip a given expert with probability
# $(E - k)/E = 3/4$, and all $B$ tokens would skip it with probability $(3/4)^B$. The cell
# simulates that with random router logits, then turns the experts used into the bytes of
# Mixtral's weights one decoding step reads, in bfloat16.

# %% role="locked"
expert_params = 3 * 4096 * 14336  # one expert of one layer
shared = total - 32 * 8 * expert_params  # attention, embeddings, norms, routers
draws = torch.Generator().manual_seed(0)
print(f"{'batch':>5} {'experts used':>13} {'(1 - 0.75^B)':>13} {'GB read per step':>17}")
for batch in [1, 2, 4, 8, 16, 64]:
    logits = torch.randn(1000, batch, 8, generator=draws)  # 1000 layers' worth of routing
    chosen = logits.topk(2, dim=-1).indices  # (1000, batch, 2)
    used = torch.zeros(1000, 8).scatter(1, chosen.flatten(1), 1.0).mean().item()
    read = 2 * (shared + used * 32 * 8 * expert_params)
    print(f"{batch:>5} {used:>13.1%} {1 - 0.75 ** batch:>13.1%} {read / 1e9:>17.1f}")

# %% [markdown]
# One sequence at a time, a step reads about 26 GB, what a 13 B dense model reads, so batch-1
# decoding, which waits on memory, runs at about a 13 B model's speed. By 16 tokens nearly
# every expert is needed and a step reads about 92 GB, as a 47 B dense model would: batched
# decoding pays for the total, not the active, parameters until the batch is large enough for
# arithmetic, not memory, to set the pace. A trained router is not random, and the tokens of
# one text are not independent, so real numbers differ; but the balancing loss exists to push
# the usage toward exactly this even spread.
#
# ## DeepSeek-V3 and Llama 4
#
# The lesson's other rows, DeepSeek-V3 and Llama 4, have parts that come in week 9 (latent
# attention, shared experts, dense layers between the MoE ones). The course's presets hold
# their published configurations and its `count_parameters` (week 8) counts them exactly,
# as `transformers` does:

# %% role="locked"
from solutions.model import GPTConfig  # noqa: E402
from solutions.scaling import count_parameters  # noqa: E402

rows = {"mixtral_8x7b": "Mixtral 8x7B", "deepseek_v3": "DeepSeek-V3",
        "llama4_scout": "Llama 4 Scout", "llama4_maverick": "Llama 4 Maverick"}
print(f"{'model':<17}{'routed experts':>15}{'shared':>8}{'per token':>10}{'total':>19}"
      f"{'active':>18}{'active share':>14}")
for preset, name in rows.items():
    c = GPTConfig.preset(preset)
    total, active = count_parameters(c), count_parameters(c, active=True)
    print(f"{name:<17}{c.n_experts:>15}{c.n_shared_experts:>8}{c.top_k:>10}{total:>19,}"
          f"{active:>18,}{active / total:>14.1%}")

# %% [markdown]
# DeepSeek-V3 activates 5.6 % of its parameters per token, Mixtral 27.6 %: many small experts,
# few of them used. Llama 4 Maverick has eight times Scout's experts, in half of its layers,
# for nearly the same active count.
#
# ## What you built
#
# - `MoE`: a router, top-k selection with renormalised weights, and index dispatch to SwiGLU
#   experts, returning the raw router logits for the auxiliary loss.
# - `load_balancing_loss`: the Switch-Transformer loss that is `top_k` when routing is balanced.
#
# In week 7 an `n_experts` setting in your GPT's config swaps the feed-forward block for this
# one. Next: take the [week 6 quiz](../../../site/weeks/week6/quiz.md).


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
    grading = subprocess.run([sys.executable, "-m", "autograder", "grade", "moe.ipynb"],
                             capture_output=True, text=True)
    print(grading.stdout + grading.stderr)
