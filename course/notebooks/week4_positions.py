# %% [markdown]
# # Week 4: Positions
#
# Attention compares every token with every other token, and nothing in that comparison
# says *where* the tokens are. This week you first see that for yourself, then give attention
# a sense of order in the two ways modern models do it without learned position vectors:
#
# - **RoPE** (rotary position embedding), used by LLaMA, Mistral and Mixtral: rotate each
#   query and key by angles that depend on its position, so that $q \cdot k$ depends only on
#   how far apart the two tokens are;
# - **ALiBi** (attention with linear biases), used by BLOOM and MPT: add to each attention
#   score a penalty proportional to the distance, with a different slope per head.
#
# Read the [week 4 lesson](../../../site/weeks/week4/lesson.md) first (also on the course
# site, Week 4 → Lesson). The exact conventions the graders enforce are listed in each
# exercise; they follow the Hugging Face `transformers` Llama implementation, so your RoPE
# can later rotate real Llama queries and keys.
#
# **How this notebook works.** Write your code where it says `# YOUR CODE HERE` (delete the
# `raise NotImplementedError()`), then run the check cell below it. The visible checks catch
# the common mistakes; hidden tests with other shapes, positions, dtypes and gradients grade
# the submission. You can run the same grader yourself: save the notebook and run its last
# cell, **Grade this notebook**; or from a terminal:
#
# ```bash
# .venv/bin/autograder grade course/release/week4/positions.ipynb   # from the course folder
# autograder grade positions.ipynb   # from this folder, after `source .venv/bin/activate`
# ```

# %% role="locked"
import math

import matplotlib.pyplot as plt
import torch
from torch import Tensor

torch.manual_seed(0)
print(f"torch {torch.__version__}")

# %% [markdown]
# ## Attention alone cannot see order
#
# Take one attention layer with no position information and no mask, feed it a sequence,
# then feed it the same tokens shuffled. If attention knew about order, the outputs would
# change in some complicated way. Instead each token gets *exactly* the output it had
# before, only in the new order: attention is **permutation-equivariant**. To this layer,
# "dog bites man" and "man bites dog" are the same bag of three tokens.

# %% role="locked"
def attention_no_positions(x: Tensor, wq: Tensor, wk: Tensor, wv: Tensor) -> Tensor:
    """One head of softmax attention, no mask, no positions: (T, d) -> (T, d)."""
    q, k, v = x @ wq, x @ wk, x @ wv
    weights = torch.softmax(q @ k.T / math.sqrt(q.shape[-1]), dim=-1)
    return weights @ v


d_model = 16
tokens = torch.randn(5, d_model)  # five token embeddings
wq, wk, wv = (torch.randn(d_model, d_model) / math.sqrt(d_model) for _ in range(3))
perm = torch.tensor([3, 0, 4, 1, 2])

out = attention_no_positions(tokens, wq, wk, wv)
out_shuffled = attention_no_positions(tokens[perm], wq, wk, wv)
print("shuffle the input, and the output is the same rows shuffled the same way:",
      torch.allclose(out_shuffled, out[perm], atol=1e-6))
print("largest difference:", (out_shuffled - out[perm]).abs().max().item())

# %% [markdown]
# (A causal mask breaks the symmetry a little: token $t$ sees $t$ tokens, so the model can
# in principle count. Models without any position scheme do learn something from that, but
# every model in this course gives positions explicitly.)
#
# The first fix, in the original Transformer, was to **add** a fixed pattern of sines and
# cosines to each token embedding; GPT-2 adds a learned vector per position instead. Here is
# the sinusoidal pattern: each column is a sine or cosine of a different frequency, fast on
# the left, slow on the right.

# %% role="locked" code="solutions.positions:sinusoidal_positions"
pe = sinusoidal_positions(128, 64)
fig, ax = plt.subplots(figsize=(7, 3.5))
im = ax.imshow(pe, aspect="auto", cmap="RdBu", vmin=-1, vmax=1)
ax.set_xlabel("embedding dimension")
ax.set_ylabel("position")
ax.set_title("sinusoidal position embeddings (Vaswani et al., 2017)")
fig.colorbar(im, ax=ax)
plt.show()

# %% [markdown]
# ## Exercise 1: RoPE
#
# RoPE does not touch the token embeddings. Inside every attention layer it **rotates** the
# query and the key of each head by angles that grow with the token's position. Cut a
# `head_dim`-dimensional vector into `head_dim / 2` pairs; pair $i$ turns at the frequency
#
# $$\omega_i = \theta^{-2i/d}, \qquad i = 0, 1, \dots, d/2 - 1,\quad d = \text{head\_dim},$$
#
# so at position $p$ it is rotated by the angle $p\,\omega_i$: pair 0 turns one radian per
# position, the last pair barely moves. A pair $(a, b)$ rotated by an angle $\phi$ becomes
#
# $$(a, b) \;\mapsto\; (a\cos\phi - b\sin\phi,\; b\cos\phi + a\sin\phi).$$
#
# Because a rotation by $m\omega$ followed by the transposed rotation by $n\omega$ is a
# rotation by $(m - n)\omega$, the score $q_m \cdot k_n$ depends only on $m - n$.
#
# The conventions (as in `transformers`' Llama, which the grader checks):
#
# - **pairing: rotate-half.** Dimension $i$ is paired with dimension $i + d/2$ (the first
#   half of the vector with the second half), *not* $2i$ with $2i+1$. With
#   `rotate_half(x) = cat((-x2, x1), -1)` (given below, `x1`, `x2` the two halves) and
#   `cos`, `sin` of `cat((angles, angles), -1)`, the rotation is
#   `x * cos + rotate_half(x) * sin`;
# - `apply_rope(x, positions, theta=ROPE_THETA)` (`ROPE_THETA = 10000.0`, given below): `x`
#   is `(..., seq, head_dim)` (any number of
#   leading dimensions, e.g. `(batch, heads, seq, head_dim)` or `(seq, head_dim)`), and
#   `positions` is a `(seq,)` integer tensor, the position of each token. It is usually
#   `arange(seq)`, but not always: with a KV cache the new token may sit at position 1000;
# - compute the angles `positions[:, None] * inv_freq` in **float32** (as `transformers`
#   does), take their cos and sin, cast those to `x.dtype`, and return a tensor of `x`'s
#   shape and dtype. Do not modify `x` in place.
#
# `rope_angles(positions, head_dim, theta)` is a suggested helper returning the
# `(seq, head_dim / 2)` angles (the interleaved form further down uses it too); only
# `apply_rope` is graded.
#
# **Not allowed:** `transformers`' `apply_rotary_pos_emb` and its `...RotaryEmbedding`
# classes. The given `rotate_half`, `torch.cos`, `torch.sin` (and `torch.polar`) are the
# building blocks. The default `theta=ROPE_THETA` is graded.

# %% role="locked" code="solutions.positions:ROPE_THETA,rotate_half"

# %% role="answer" exercise="apply_rope"

# %% [markdown]
# Run the checks. A failed check tells you what to look at.

# %% role="test" exercise="apply_rope"
x = torch.randn(2, 3, 6, 8)
pos = torch.arange(6)
y = apply_rope(x, pos)
assert isinstance(y, torch.Tensor), f"apply_rope should return a tensor, got {type(y)}"
assert y.shape == x.shape, f"output shape {tuple(y.shape)} should equal x's {tuple(x.shape)}"
assert y.dtype == x.dtype, f"output dtype {y.dtype} should be x's {x.dtype}"
assert torch.allclose(apply_rope(x, torch.zeros(6, dtype=torch.long)), x, atol=1e-6), (
    "at position 0 every angle is 0: RoPE must return x unchanged")
assert torch.allclose(y.norm(dim=-1), x.norm(dim=-1), rtol=1e-4), (
    "RoPE rotates pairs of coordinates, so it must keep each vector's length")

c1, s1 = math.cos(1.0), math.sin(1.0)
one = torch.tensor([1])
got = apply_rope(torch.tensor([[1.0, 0.0]]), one)  # head_dim 2: one pair, rotated by 1 rad
assert not torch.allclose(got, torch.tensor([[c1, -s1]]), atol=1e-5), (
    "you rotate the wrong way: (a, b) -> (a cos - b sin, b cos + a sin)")
assert torch.allclose(got, torch.tensor([[c1, s1]]), atol=1e-5), (
    f"(1, 0) at position 1 should become (cos 1, sin 1) = ({c1:.4f}, {s1:.4f}); got {got}")

got = apply_rope(torch.tensor([[1.0, 0.0, 0.0, 0.0]]), one)  # head_dim 4: pairs (0, 2), (1, 3)
assert not torch.allclose(got, torch.tensor([[c1, s1, 0.0, 0.0]]), atol=1e-5), (
    "you paired x[2i] with x[2i+1] (the interleaved form); this course pairs x[i] with "
    "x[i + head_dim/2] (rotate-half)")
assert torch.allclose(got, torch.tensor([[c1, 0.0, s1, 0.0]]), atol=1e-5), (
    f"x = (1, 0, 0, 0) at position 1 should become (cos 1, 0, sin 1, 0); got {got}")

got = apply_rope(torch.tensor([[0.0, 1.0, 0.0, 0.0]]), one)  # pair 1 turns at 10000^(-2/4)
want = torch.tensor([[0.0, math.cos(0.01), 0.0, math.sin(0.01)]])
assert torch.allclose(got, want, atol=1e-6), (
    f"pair 1 of head_dim 4 turns at theta^(-2/4) = 0.01 rad per position: expected {want}, got "
    f"{got}; check inv_freq = theta^(-2i/head_dim)")
got = apply_rope(torch.tensor([[0.0, 1.0, 0.0, 0.0]]), one, theta=100.0)
want = torch.tensor([[0.0, math.cos(0.1), 0.0, math.sin(0.1)]])
assert torch.allclose(got, want, atol=1e-6), "use the `theta` argument (here 100: 0.1 rad)"

far = apply_rope(x, pos + 1000)
assert torch.allclose(far[..., :1, :], apply_rope(x[..., :1, :], torch.tensor([1000])),
                      atol=1e-4), "token 0 at position 1000 must be rotated by 1000 * inv_freq"
assert not torch.allclose(far, y, atol=1e-3), (
    "you ignored `positions`: rotate each token by ITS position, not by 0..T-1")

q, k = torch.randn(64), torch.randn(64)
def score(m: int, n: int) -> float:
    return float(apply_rope(q[None], torch.tensor([m])) @ apply_rope(k[None], torch.tensor([n]))[0])
assert abs(score(3, 1) - score(103, 101)) < 1e-3, "q . k should depend only on m - n"

half = apply_rope(x.bfloat16(), pos)
assert half.dtype == torch.bfloat16, "a bfloat16 input should give a bfloat16 output"
print("apply_rope: visible checks passed")

# %% [markdown]
# ## Seeing it: $q \cdot k$ depends only on the offset
#
# Put the same query $q$ at every position $m$ and the same key $k$ at every position $n$,
# rotate them with your `apply_rope`, and compute all scores $S_{mn} = q_m \cdot k_n$. If RoPE
# works, $S$ is constant along every diagonal ($m - n$ fixed): a Toeplitz matrix. The cell
# measures how far each diagonal is from constant.

# %% role="locked"
head_dim, n_pos = 64, 48
q, k = torch.randn(head_dim), torch.randn(head_dim)
positions = torch.arange(n_pos)
q_rot = apply_rope(q.expand(n_pos, head_dim), positions)  # q at positions 0..47
k_rot = apply_rope(k.expand(n_pos, head_dim), positions)
S = q_rot @ k_rot.T  # S[m, n] = q at m . k at n

spread = max((S.diagonal(off).max() - S.diagonal(off).min()).item()
             for off in range(-n_pos + 1, n_pos))
print(f"largest spread along a diagonal of S: {spread:.2e} (scores are of size {S.abs().max():.2f})")

fig, axes = plt.subplots(1, 2, figsize=(11, 4))
im = axes[0].imshow(S, cmap="RdBu")
axes[0].set_xlabel("key position n")
axes[0].set_ylabel("query position m")
axes[0].set_title("q . k after RoPE: constant along diagonals")
fig.colorbar(im, ax=axes[0])

# RoFormer's "long-term decay": with q = k = all ones, the score shrinks (on average) as the
# distance grows, because the pairs turn at different speeds and stop adding up in phase
ones = torch.ones(1, 128)
dist = torch.arange(0, 2048)
far_keys = apply_rope(ones.expand(len(dist), 128), dist)
near_query = apply_rope(ones, torch.tensor([0]))
axes[1].plot(dist, (far_keys @ near_query[0]).abs())
axes[1].set_xscale("symlog", linthresh=10)
axes[1].set_xlabel("distance m - n")
axes[1].set_ylabel("|q . k|, q = k = ones (head_dim 128)")
axes[1].set_title("the score decays with distance")
plt.tight_layout()
plt.show()

# %% [markdown]
# ## The rotation frequencies
#
# Pair $i$ turns by $\omega_i = \theta^{-2i/d}$ radians per position, so it comes back to
# where it started after $2\pi / \omega_i$ positions: its **wavelength**. With `head_dim`
# 128 the wavelengths run from $2\pi \approx 6$ positions up to $2\pi\,\theta^{126/128}$, just under $2\pi\,\theta$. Pairs
# whose wavelength is far longer than the context never complete a turn during training; a
# larger $\theta$ (500 000 in Llama 3, 1 000 000 in Code Llama and Mixtral) makes more pairs
# slow, which is one way models reach long contexts (see the lesson).

# %% role="locked"
head_dim = 128
i = torch.arange(head_dim // 2)
fig, ax = plt.subplots(figsize=(7, 4))
for theta in (10_000.0, 500_000.0, 1_000_000.0):
    wavelength = 2 * math.pi * theta ** (2 * i / head_dim)
    ax.plot(i, wavelength, label=f"theta = {theta:,.0f}")
    slow = int((wavelength > 4096).sum())
    print(f"theta = {theta:>11,.0f}: wavelengths {wavelength[0]:.1f} ... {wavelength[-1]:,.0f} "
          f"positions; {slow} of {head_dim // 2} pairs turn less than once in 4096 tokens")
ax.axhline(4096, color="grey", ls="--", lw=1, label="4096 tokens (Llama 2's context)")
ax.set_yscale("log")
ax.set_xlabel("pair index i")
ax.set_ylabel("wavelength 2 pi / omega_i (positions)")
ax.set_title("RoPE wavelength per dimension pair, head_dim 128")
ax.legend()
plt.show()

# %% [markdown]
# ## Interleaved pairs vs rotate-half: the same rotation, renamed dimensions
#
# The RoFormer paper and Meta's original LLaMA code pair dimension $2i$ with $2i + 1$
# (the *interleaved* form); `transformers` pairs $i$ with $i + d/2$. Both rotate pair $i$ by
# the same angle; they only disagree on *which* coordinates form pair $i$. Reordering the
# output rows of the query and key projections by the permutation
# `[0, 2, 4, ..., 1, 3, 5, ...]` (`interleaved_to_halves`) turns one into the other, and the
# attention scores do not change. The cell checks it with your `apply_rope` (and your
# `rope_angles`, which the interleaved form below calls).

# %% role="locked" code="solutions.positions:rope_interleaved,interleaved_to_halves"
d_model, head_dim, T = 32, 16, 10
h = torch.randn(T, d_model)  # hidden states of T tokens
w_q, w_k = torch.randn(head_dim, d_model), torch.randn(head_dim, d_model)  # one head's weights
to_halves = interleaved_to_halves(head_dim)
pos = torch.arange(T)

scores_interleaved = rope_interleaved(h @ w_q.T, pos) @ rope_interleaved(h @ w_k.T, pos).T
# permute the rows of W_q and W_k, then use the rotate-half form
scores_halves = apply_rope(h @ w_q[to_halves].T, pos) @ apply_rope(h @ w_k[to_halves].T, pos).T
scores_unpermuted = apply_rope(h @ w_q.T, pos) @ apply_rope(h @ w_k.T, pos).T
print("permutation:", to_halves.tolist())
print("same scores after permuting the weights:",
      torch.allclose(scores_interleaved, scores_halves, atol=1e-3))
print("same scores WITHOUT permuting the weights:",
      torch.allclose(scores_interleaved, scores_unpermuted, atol=1e-3))

# %% [markdown]
# This is why a checkpoint trained with one form can be used with the other, but only after
# its weights are permuted (the Llama conversion script in `transformers` does exactly this);
# loading the weights unchanged into the other form silently gives wrong attention.
#
# ## Exercise 2: ALiBi
#
# ALiBi (Press, Smith and Lewis, 2022) adds no position information to the tokens at all.
# It adds a bias to the attention scores, before the softmax: query $i$ looking at key
# $j \le i$ gets
#
# $$\text{bias}_h[i, j] = -m_h\,(i - j), \qquad m_h = 2^{-8h/H},\quad h = 1, \dots, H,$$
#
# a penalty that grows linearly with the distance, with a different slope $m_h$ per head.
# For $H = 8$ the slopes are $1/2, 1/4, \dots, 1/256$: the first heads look very locally,
# the last ones almost uniformly.
#
# The conventions:
#
# - `alibi_bias(n_heads, seq_len)` returns a float32 tensor of shape `(H, T, T)`;
# - `bias[h, i, j] = -m_h * (i - j)` for `j <= i`, with `m_h = 2 ** (-8 * h / H)` for
#   `h = 1..H` (head index 0 of the tensor has slope $2^{-8/H}$), for every $H$ (the paper
#   and BLOOM use a slightly different sequence when $H$ is not a power of two; we do not);
# - entries above the diagonal ($j > i$) are masked by the causal mask anyway: the grader
#   ignores them, so 0, $-\infty$ or anything else is fine.
#
# `alibi_slopes(n_heads)` is a suggested helper returning the `(H,)` slopes; only
# `alibi_bias` is graded. BLOOM's and MPT's `build_alibi_tensor` in `transformers` are not
# allowed (and use the paper's slopes).

# %% role="answer" exercise="alibi_bias"

# %% role="test" exercise="alibi_bias"
bias = alibi_bias(8, 5)
assert isinstance(bias, torch.Tensor), f"alibi_bias should return a tensor, got {type(bias)}"
assert bias.shape == (8, 5, 5), f"shape should be (H, T, T) = (8, 5, 5), got {tuple(bias.shape)}"
assert bias.dtype == torch.float32, f"dtype should be float32, got {bias.dtype}"
visible = torch.ones(5, 5, dtype=torch.bool).tril()
assert torch.isfinite(bias[:, visible]).all(), "entries with j <= i must be finite"
assert torch.all(bias.diagonal(dim1=1, dim2=2) == 0), "a query looking at itself gets bias 0"
assert torch.all(bias[:, 1, 0] < 0), (
    "the bias is a penalty: -m_h * (i - j) is negative for earlier keys (check the sign and "
    "that it is i - j, query minus key)")
slopes = -bias[:, 1, 0]
want = torch.tensor([2.0 ** (-h) for h in range(1, 9)])
assert torch.allclose(slopes, want), (
    f"with 8 heads the slopes should be 1/2, 1/4, ..., 1/256 (h = 1..H), got {slopes.tolist()}")
assert torch.allclose(bias[0, 4, 1], torch.tensor(-1.5)), (
    "bias[0, 4, 1] = -(1/2) * (4 - 1) = -1.5: the penalty grows linearly with i - j")
assert torch.allclose(-alibi_bias(12, 3)[:, 1, 0], 2.0 ** (-8 * torch.arange(1, 13) / 12)), (
    "for 12 heads (not a power of two) the slopes are still 2^(-8h/H), h = 1..12")
print("alibi_bias: visible checks passed")

# %% [markdown]
# ## Seeing it: the ALiBi bias and how far each head looks
#
# Left: the bias of a few of 8 heads on 24 tokens (the masked upper triangle is left white).
# Right: the attention of the last query when all raw scores are equal, so that only the
# bias decides: steep heads look at the last few tokens, gentle heads spread out.

# %% role="locked"
H, T = 8, 24
bias = alibi_bias(H, T)
causal = torch.ones(T, T, dtype=torch.bool).tril()
fig, axes = plt.subplots(1, 4, figsize=(14, 3.5))
for ax, head in zip(axes[:3], (0, 3, 7), strict=True):
    shown = bias[head].masked_fill(~causal, float("nan"))
    im = ax.imshow(shown, cmap="viridis")
    ax.set_title(f"head {head}: slope 2^-{head + 1}")
    ax.set_xlabel("key j")
    ax.set_ylabel("query i")
    fig.colorbar(im, ax=ax, fraction=0.046)
weights = bias[:, -1].softmax(dim=-1)  # last query, uniform raw scores
for head in (0, 3, 7):
    axes[3].plot(torch.arange(T), weights[head], marker=".", label=f"head {head}")
axes[3].set_xlabel("key position")
axes[3].set_ylabel("attention weight of the last query")
axes[3].legend()
plt.tight_layout()
plt.show()

# %% [markdown]
# ## Experiment: which positions survive a longer input?
#
# The lesson cites Press et al. (2022): trained on short sequences, a model with ALiBi keeps
# its loss on longer ones, while sinusoidal and rotary positions get much worse past the
# training length. Here you run a small version of that experiment. The course's experiment
# runner (`solutions/ablate.py`, on the week-7 trainer) trains the same small character-level
# model on tiny Shakespeare four times, changing only how it is told about positions: **RoPE**,
# **ALiBi** (with this week's slopes), **learned** absolute positions, and **none** at all (NoPE:
# only the causal mask says anything about order). All four train on windows of 64
# characters, with the same seed, the same batches and the same schedule. Then each is
# evaluated on windows of 64, 128, 256 and 512 characters. A learned table has no row for
# position 64 and beyond, so that model cannot run there at all: its loss there is recorded as
# infinite.
#
# On a laptop this cell takes a few minutes; in the course's automated tests it runs a tiny
# version for a few seconds (`COURSE_QUICK=1`), whose numbers mean nothing. The lesson shows
# the full run, made with
#
# ```bash
# python -m solutions.ablate positions
# ```

# %% role="locked"
from solutions.ablate import markdown_table, plot_results, run_positions

# on one thread (the fastest for a model this small); a tiny version of a few seconds, whose
# numbers say nothing about the positions, while nbgrader grades or validates the notebook and
# in the course's tests (COURSE_QUICK=1)
positions = run_positions()
print(markdown_table(positions))
plot_results(positions)
plt.show()

# the results table the exercise below reads: each scheme's mean loss at each length, inf
# where it cannot run (learned positions past their table)
TRAIN_LEN = positions["settings"]["train_length"]
position_losses = {name: {int(n): got.get("mean", math.inf) for n, got in variant["lengths"].items()}
                   for name, variant in positions["variants"].items()}
print(position_losses)

# %% [markdown]
# ## Exercise 3: read the results
#
# "Extrapolates" needs a definition before it can be checked. Write
# `extrapolation_limit(losses, train_len, factor=1.2)`:
#
# - `losses` maps each scheme to `{length: mean validation loss at that length}`, for
#   example `{"rope": {64: 1.9, 128: 2.4, 256: 3.1, 512: 3.6}, "learned": {64: 1.9, 128: inf,
#   ...}, ...}`; a length a scheme cannot run at has the loss `math.inf`;
# - `train_len` is the length the models were trained at; every scheme has an entry there;
# - a scheme has **broken down** at a length when its loss there is **strictly greater** than
#   `factor` times its own loss at `train_len`;
# - return `{scheme: the shortest length at which it has broken down}`, with `None` for a
#   scheme that holds up at every length evaluated. Check the lengths in increasing order,
#   whatever the order of the dictionary.
#
# **Why a function and not a sentence?** "ALiBi extrapolates" is easy to write and
# impossible to check. Turned into a rule (which length, compared with what, how much worse
# counts as broken), the claim can be tested on any table, including the awkward ones (a
# longer context that *lowers* the loss, a scheme that cannot run at all), so the grader can
# check your reasoning rather than one run's numbers, and you can apply the same rule to the
# lesson's full run. The factor is a choice, and the rule makes it visible: the default, 1.2
# (20 % worse than at the training length), is about the smallest change that stands out from
# the seed noise of the lesson's run; try 1.5 on your results and see what it hides.

# %% role="answer" exercise="extrapolation_limit"

# %% role="test" exercise="extrapolation_limit"
table = {"rope": {64: 2.0, 128: 2.6, 256: 3.2, 512: 4.0},
         "alibi": {64: 2.0, 128: 1.9, 256: 1.9, 512: 2.0},
         "learned": {64: 2.0, 128: math.inf, 256: math.inf, 512: math.inf}}
assert extrapolation_limit(table, 64, factor=1.5) == {"rope": 256, "alibi": None,
                                                     "learned": 128}, (
    f"with factor 1.5: rope passes 3.0 at 256, alibi never does, learned cannot run at 128; "
    f"got {extrapolation_limit(table, 64, factor=1.5)}")
assert extrapolation_limit(table, 64)["rope"] == 128, "the default factor is 1.2: 2.6 > 2.4"
shuffled = {"rope": {512: 4.0, 256: 3.2, 64: 2.0, 128: 2.6}}
assert extrapolation_limit(shuffled, 64, factor=1.5) == {"rope": 256}, (
    "check the lengths in increasing order")
assert extrapolation_limit({"rope": {64: 2.0, 128: 3.0}}, 64, factor=1.5) == {"rope": None}, (
    "3.0 is exactly 1.5 x 2.0: broken down means strictly greater")

limits = extrapolation_limit(position_losses, TRAIN_LEN)
for scheme, length in limits.items():
    verdict = "holds up at every length" if length is None else f"breaks down at {length}"
    print(f"{scheme:>8}: {verdict}")

# %% [markdown]
# Compare your verdicts with the lesson's full run, which also says how far this tiny
# experiment is from Press et al.'s models, trained on thousands of tokens with billions of
# parameters.
#
# ## What you built
#
# - `apply_rope`: rotate pairs $(x_i, x_{i + d/2})$ by position-dependent angles, so that
#   attention scores depend on relative positions; the form `transformers` uses for Llama,
#   Mistral and Mixtral.
# - `alibi_bias`: a fixed, linear distance penalty per head, added to the scores.
# - `extrapolation_limit`: a definition of "extrapolates" that a results table can be
#   checked against.
#
# RoPE comes back in week 5, inside the `Attention` module (applied to queries and keys after
# the projections, before the KV cache), and in week 7 in your own GPT. Next: take the
# [week 4 quiz](../../../site/weeks/week4/quiz.md).


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
    grading = subprocess.run([sys.executable, "-m", "autograder", "grade", "positions.ipynb"],
                             capture_output=True, text=True)
    print(grading.stdout + grading.stderr)
