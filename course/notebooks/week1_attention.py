# %% [markdown]
# # Week 1: Inside a decoder-only transformer
#
# GPT-2, LLaMA, Mistral and Mixtral are all **decoder-only** transformers: a stack of
# identical blocks that read a sequence of token vectors and, at every position, predict the
# next token. The part that lets positions talk to each other is **causal self-attention**.
# In this notebook you write it from scratch in three steps:
#
# 1. `causal_mask`: which keys each query may look at;
# 2. `scaled_dot_product_attention`: the attention formula itself;
# 3. `MultiHeadAttention`: several heads in parallel, with the projections of a real model.
#
# Then you look at attention weights, check numerically that no output depends on a future
# token, compare your attention with PyTorch's fused kernel, and follow a (tiny, untrained)
# model from text to next-token probabilities and a few generated tokens.
#
# Read the [week 1 lesson](../../../site/weeks/week1/lesson.md) first (it is also on the
# course site, Week 1 → Lesson). The conventions the graders enforce are listed in each
# exercise; they follow the Hugging Face `transformers` Llama implementation, so your
# attention can later load real weights by name.
#
# **How this notebook works.** Write your code where it says `# YOUR CODE HERE` (delete the
# `raise NotImplementedError()`), then run the check cell below it. The visible checks catch
# the common mistakes; hidden tests with other shapes, dtypes and gradients grade the
# submission. You can run the same grader yourself: save the notebook and run its last cell,
# **Grade this notebook**; or from a terminal:
#
# ```bash
# .venv/bin/autograder grade course/release/week1/attention.ipynb   # from the course folder
# autograder grade attention.ipynb   # from this folder, after `source .venv/bin/activate`
# ```

# %% role="locked"
import math
import time

import matplotlib.pyplot as plt
import torch
import torch.nn.functional as F
from torch import Tensor, nn

torch.manual_seed(0)
print(f"torch {torch.__version__}")

# %% [markdown]
# ## Exercise 1: the causal mask
#
# A decoder-only model is trained to predict token $t+1$ from tokens $0..t$, at every position
# at once. So when position $i$ (the **query**) gathers information, it may only look at
# positions $j \le i$ (the **keys**): itself and the past, never the future.
#
# The mask is a boolean matrix with one row per query and one column per key:
#
# - `causal_mask(seq_len, device=None)` returns a `(seq_len, seq_len)` tensor of dtype
#   `torch.bool`, built on `device`;
# - `mask[i, j]` is **`True` when query `i` may attend to key `j`**, that is when `j <= i`:
#   the lower triangle, diagonal included.
#
# For `seq_len = 3`:
#
# ```
# [[ True, False, False],
#  [ True,  True, False],
#  [ True,  True,  True]]
# ```
#
# Hint: `torch.ones(..., dtype=torch.bool)` and `torch.tril`.
#
# **Library calls.** `torch.tril` is the building block to use. Ready-made causal masks
# (`nn.Transformer.generate_square_subsequent_mask`, `torch.nn.attention.bias.causal_upper_left`,
# the mask helpers of `transformers`) are not allowed: the grader refuses them. It also builds
# your mask on PyTorch's `meta` device, so pass `device` on to the tensor you create.

# %% role="answer" exercise="causal_mask"

# %% [markdown]
# Run the checks. A failed check tells you what to look at.

# %% role="test" exercise="causal_mask"
m = causal_mask(4)
assert isinstance(m, torch.Tensor), f"causal_mask should return a tensor, got {type(m)}"
assert m.dtype == torch.bool, (
    f"the mask should have dtype torch.bool (True = may attend), got {m.dtype}")
assert m.shape == (4, 4), f"causal_mask(4) should have shape (4, 4), got {tuple(m.shape)}"
lower = torch.tensor([[1, 0, 0, 0], [1, 1, 0, 0], [1, 1, 1, 0], [1, 1, 1, 1]]).bool()
assert not torch.equal(m, ~lower), "your mask is inverted: True must mean 'may attend'"
assert not torch.equal(m, lower.T), "you built the upper triangle; keys j <= i are the lower one"
assert m.diagonal().all(), "the diagonal must be True: every token may attend to itself"
assert torch.equal(m, lower), f"causal_mask(4) should be\n{lower}\ngot\n{m}"
assert causal_mask(1).tolist() == [[True]], "a single token sees itself"
assert causal_mask(3, device="cpu").device.type == "cpu", "build the mask on the given device"
print("causal_mask: visible checks passed")

# %% [markdown]
# ## Exercise 2: scaled dot-product attention
#
# Each query is compared with every key by a dot product; the scores are scaled, masked,
# turned into weights by a softmax over the keys, and the weights average the values:
#
# $$\mathrm{Attention}(Q, K, V) = \mathrm{softmax}\!\left(\frac{Q K^\top}{\sqrt{d}} + M\right) V,
# \qquad M_{ij} = \begin{cases} 0 & \text{mask}[i, j] \text{ is True} \\ -\infty & \text{otherwise}\end{cases}$$
#
# where $d$ is the size of the last dimension of `q` (the head dimension). The lesson explains
# why we divide by $\sqrt{d}$: it keeps the scores at unit variance, so the softmax does not
# saturate.
#
# The conventions:
#
# - `scaled_dot_product_attention(q, k, v, mask=None)` with `q: (..., T_q, D)`,
#   `k: (..., T_k, D)`, `v: (..., T_k, D_v)`; it returns `(..., T_q, D_v)`. Usually the
#   leading dimensions are `(batch, heads)`;
# - `mask` is `None` (everything visible) or a **boolean** tensor, `True` = may attend, that
#   **broadcasts** to `(..., T_q, T_k)`: a `(T, T)` causal mask works for every batch and head;
# - masked scores become `float("-inf")` **before** the softmax (`Tensor.masked_fill`), so
#   they get exactly zero weight and every row of weights still sums to 1;
# - the softmax is over the keys, the last dimension;
# - keep the input's dtype (float32, bfloat16, float64 in, the same out).
#
# **Not allowed:** `torch.nn.functional.scaled_dot_product_attention`, under any name
# (`torch.ops.aten.scaled_dot_product_attention`, `torch._scaled_dot_product_attention_math`,
# flex attention, the attention functions of `transformers`). Write the formula out (the
# grader makes the fused functions raise); you compare with it in a demo below. From week 5 on
# it is allowed.

# %% role="answer" exercise="scaled_dot_product_attention"

# %% role="test" exercise="scaled_dot_product_attention"
def attention_by_loops(q, k, v, mask=None):
    """Attention for 2-D q (T_q, D), k (T_k, D), v (T_k, D_v), one query at a time."""
    rows = []
    for i in range(q.shape[0]):
        scores = [float(q[i] @ k[j]) / math.sqrt(q.shape[1]) for j in range(k.shape[0])]
        keep = [mask is None or bool(mask[i, j]) for j in range(k.shape[0])]
        top = max(s for s, ok in zip(scores, keep, strict=True) if ok)
        w = [math.exp(s - top) if ok else 0.0 for s, ok in zip(scores, keep, strict=True)]
        rows.append(sum(wj / sum(w) * v[j] for j, wj in enumerate(w)))
    return torch.stack(rows)


q, k, v = torch.randn(5, 8), torch.randn(5, 8), torch.randn(5, 3)
mask = causal_mask(5)
out = scaled_dot_product_attention(q, k, v, mask)
assert out.shape == (5, 3), f"output should have shape (T_q, D_v) = (5, 3), got {tuple(out.shape)}"
assert not torch.isnan(out).any(), "NaN in the output: is the mask inverted (True = may attend)?"
expected = attention_by_loops(q, k, v, mask)
if torch.allclose(out, attention_by_loops(q * math.sqrt(8), k, v, mask), atol=1e-5):
    raise AssertionError("the scores are not divided by sqrt(D)")
assert torch.allclose(out, expected, atol=1e-5), (
    "output differs from softmax(q k^T / sqrt(D), masked = -inf) v: check the scaling, that "
    "the softmax is over the last dimension, and that masked scores are -inf, not 0")
assert torch.allclose(out[0], v[0], atol=1e-6), "query 0 sees only key 0, so its output is v[0]"

# all-zero queries give equal weights to the visible keys: a running mean of the values
zeros = torch.zeros(5, 8)
mean = scaled_dot_product_attention(zeros, zeros, v, mask)
running = v.cumsum(0) / torch.arange(1, 6)[:, None]
assert torch.allclose(mean, running, atol=1e-6), "with q = k = 0, query i should average v[0..i]"

no_mask = scaled_dot_product_attention(q, k, v)
assert torch.allclose(no_mask, attention_by_loops(q, k, v), atol=1e-5), "mask=None: all visible"

# batched (B, H, T, D) with a (T, T) mask, T_q != T_k, and dtypes
qb, kb, vb = torch.randn(2, 3, 4, 8), torch.randn(2, 3, 6, 8), torch.randn(2, 3, 6, 8)
pad = torch.rand(4, 6) < 0.7
pad[:, 0] = True
ob = scaled_dot_product_attention(qb, kb, vb, pad)
assert ob.shape == (2, 3, 4, 8), f"batched output shape {tuple(ob.shape)}, expected (2, 3, 4, 8)"
assert torch.allclose(ob[1, 2], attention_by_loops(qb[1, 2], kb[1, 2], vb[1, 2], pad), atol=1e-5)
o64 = scaled_dot_product_attention(qb.double(), kb.double(), vb.double(), pad)
assert o64.dtype == torch.float64, "float64 in should give float64 out"
obf = scaled_dot_product_attention(qb.bfloat16(), kb.bfloat16(), vb.bfloat16(), pad)
assert obf.dtype == torch.bfloat16, "bfloat16 in should give bfloat16 out"

qg = torch.randn(1, 2, 4, 8, requires_grad=True)
scaled_dot_product_attention(qg, qg, qg, causal_mask(4)).sum().backward()
assert qg.grad is not None and torch.isfinite(qg.grad).all(), "gradients should flow through"
print("scaled_dot_product_attention: visible checks passed")

# %% [markdown]
# ## Exercise 3: multi-head attention
#
# One attention computes one weighted average per query. **Multi-head attention** runs
# `n_heads` of them in parallel, each in its own smaller subspace of width
# `head_dim = dim // n_heads`, so different heads can attend to different things:
#
# 1. project the input `x: (B, T, dim)` to queries, keys and values with `q_proj`, `k_proj`,
#    `v_proj`;
# 2. split the width into heads: `(B, T, dim)` → `view` as `(B, T, n_heads, head_dim)` →
#    `transpose(1, 2)` to `(B, n_heads, T, head_dim)`;
# 3. run your `scaled_dot_product_attention` with `causal_mask(T, x.device)`;
# 4. put the heads side by side again: `transpose(1, 2)` back to `(B, T, n_heads, head_dim)`,
#    then `reshape` to `(B, T, dim)`;
# 5. mix the heads with `o_proj`.
#
# The conventions (as in `transformers`' Llama attention, without positions for now):
#
# - `MultiHeadAttention(dim, n_heads)` with four submodules `q_proj`, `k_proj`, `v_proj`,
#   `o_proj`, each `nn.Linear(dim, dim, bias=False)`: **no biases**;
# - `forward(x)` takes `(B, T, dim)` and returns `(B, T, dim)`, and is **causal**.
#
# Careful with step 4: reshaping `(B, n_heads, T, head_dim)` straight to `(B, T, dim)` runs
# without an error but mixes tokens with heads. Transpose first.
#
# **Not allowed:** `nn.MultiheadAttention`, `F.multi_head_attention_forward` and the fused
# attention functions above: build it from `nn.Linear` and your own functions.

# %% role="answer" exercise="multi_head_attention"

# %% role="test" exercise="multi_head_attention"
mha = MultiHeadAttention(16, 4)
shapes = {name: tuple(p.shape) for name, p in mha.named_parameters()}
expected_shapes = {f"{p}.weight": (16, 16) for p in ("q_proj", "k_proj", "v_proj", "o_proj")}
assert shapes == expected_shapes, f"parameters should be {expected_shapes} (no biases); got {shapes}"

x = torch.randn(2, 5, 16)
y = mha(x)
assert y.shape == x.shape, f"output shape {tuple(y.shape)} should equal input shape {tuple(x.shape)}"


def mha_by_hand(module, x, n_heads):
    """Each head separately, on its slice of the projections, then o_proj."""
    T, dim = x.shape[1], x.shape[2]
    hd = dim // n_heads
    q, k, v = module.q_proj(x), module.k_proj(x), module.v_proj(x)
    heads = []
    for h in range(n_heads):
        s = slice(h * hd, (h + 1) * hd)
        scores = q[..., s] @ k[..., s].transpose(-2, -1) / math.sqrt(hd)
        future = torch.ones(T, T).triu(1).bool()
        heads.append(scores.masked_fill(future, float("-inf")).softmax(-1) @ v[..., s])
    return module.o_proj(torch.cat(heads, dim=-1))


with torch.no_grad():
    by_hand = mha_by_hand(mha, x, 4)
    one_head = mha_by_hand(mha, x, 1)
if torch.allclose(y, one_head, atol=1e-5) and not torch.allclose(y, by_hand, atol=1e-5):
    raise AssertionError("your output equals a single head of width dim: split into n_heads heads")
assert torch.allclose(y, by_hand, atol=1e-5), (
    "output differs from attention computed head by head: check the split into heads "
    "(view, then transpose(1, 2)), the merge (transpose back before reshape), the causal "
    "mask, the 1/sqrt(head_dim) scaling and o_proj")

x2 = x.clone()
x2[:, 3:] = torch.randn(2, 2, 16)  # change only the last two tokens
with torch.no_grad():
    assert torch.allclose(mha(x2)[:, :3], y[:, :3], atol=1e-6), (
        "changing tokens 3 and 4 changed the outputs at positions 0..2: apply the causal mask")
y.sum().backward()
assert all(p.grad is not None for p in mha.parameters()), "every projection should get a gradient"
print("MultiHeadAttention: visible checks passed")

# %% [markdown]
# ## Looking at attention weights
#
# Your `scaled_dot_product_attention` returns the weighted values, not the weights. A small
# trick gets the weights out of it: with `v` the identity matrix, $\mathrm{weights} \cdot I$ is
# the weights themselves. Below, the weights of random queries and keys without a mask and
# with the causal mask: the causal mask zeroes everything above the diagonal, and each row
# still sums to 1.

# %% role="locked"
T, D = 8, 16
q, k = torch.randn(T, D), torch.randn(T, D)
eye = torch.eye(T)
weights = {
    "no mask": scaled_dot_product_attention(q, k, eye),
    "causal mask": scaled_dot_product_attention(q, k, eye, causal_mask(T)),
}
fig, axes = plt.subplots(1, 2, figsize=(9, 4))
for ax, (title, w) in zip(axes, weights.items(), strict=True):
    im = ax.imshow(w, cmap="viridis", vmin=0, vmax=1)
    ax.set_title(title)
    ax.set_xlabel("key position j")
    ax.set_ylabel("query position i")
fig.colorbar(im, ax=axes, shrink=0.8, label="weight")
plt.show()
for title, w in weights.items():
    print(f"{title:<12} row sums: {w.sum(-1).numpy().round(4)}")

# %% [markdown]
# The same trick on the heads of your `MultiHeadAttention`: every head gets its own pattern
# from its own slice of `q_proj` and `k_proj`, and every pattern is lower-triangular.

# %% role="locked"
torch.manual_seed(1)
dim, n_heads, T = 32, 4, 10
mha = MultiHeadAttention(dim, n_heads)
x = torch.randn(1, T, dim)
with torch.no_grad():
    hd = dim // n_heads
    q = mha.q_proj(x).view(1, T, n_heads, hd).transpose(1, 2)
    k = mha.k_proj(x).view(1, T, n_heads, hd).transpose(1, 2)
    head_weights = scaled_dot_product_attention(q, k, torch.eye(T), causal_mask(T))[0]
fig, axes = plt.subplots(1, n_heads, figsize=(3 * n_heads, 3))
for h, ax in enumerate(axes):
    ax.imshow(head_weights[h], cmap="viridis", vmin=0, vmax=1)
    ax.set_title(f"head {h}")
    ax.set_xlabel("key j")
axes[0].set_ylabel("query i")
plt.show()

# %% [markdown]
# ## Checked numerically: no output depends on a future token
#
# If the mask works, changing token $t$ can only change the outputs at positions $\ge t$.
# Below we change one token at a time and record, for every position, the largest change of
# your `MultiHeadAttention`'s output. In the picture (a row per changed token $t$, a column per
# output $i$), everything strictly below the diagonal is an output *before* the changed token:
# it must be exactly zero.

# %% role="locked"
T = 8
x = torch.randn(1, T, dim)
with torch.no_grad():
    base = mha(x)
    effect = torch.zeros(T, T)  # effect[t, i]: change at output i when token t changes
    for t in range(T):
        x_changed = x.clone()
        x_changed[:, t] = torch.randn(dim)
        effect[t] = (mha(x_changed) - base).abs().amax(-1)[0]
leaks = effect.tril(-1)  # outputs i < t that changed
print(f"largest change of an output before the changed token: {leaks.max().item():.1e}")
print(f"smallest change of the output at the changed token:   {effect.diagonal().min().item():.2f}")
assert leaks.max() == 0, "an output depends on a future token"

fig, ax = plt.subplots(figsize=(4, 3.5))
im = ax.imshow(effect, cmap="magma")
ax.set_xlabel("output position i")
ax.set_ylabel("changed token t")
ax.set_title("|change of output i|")
fig.colorbar(im)
plt.show()

# %% [markdown]
# ## Why divide by $\sqrt{d}$? Measured
#
# With queries and keys of independent unit-variance entries, a dot product of length $d$ has
# variance $d$. The cell measures the spread of the raw and scaled scores for growing $d$, and
# how much weight the softmax puts on its top key: without the scaling, the softmax becomes
# almost one-hot as $d$ grows, and its gradients vanish.

# %% role="locked"
print(f"{'d':>6} {'std raw':>9} {'std scaled':>11} {'top weight raw':>15} {'top weight scaled':>18}")
for d in (16, 64, 256, 1024):
    q, k = torch.randn(2000, d), torch.randn(32, d)
    raw = q @ k.T
    scaled = raw / math.sqrt(d)
    top_raw = raw.softmax(-1).amax(-1).mean()
    top_scaled = scaled.softmax(-1).amax(-1).mean()
    print(f"{d:>6} {raw.std():9.2f} {scaled.std():11.2f} {top_raw:15.3f} {top_scaled:18.3f}")

# %% [markdown]
# ## Your attention against PyTorch's fused kernel
#
# `torch.nn.functional.scaled_dot_product_attention` computes the same formula in one fused
# (and, on GPUs, FlashAttention-style) kernel. Its boolean `attn_mask` follows the same
# convention as ours (`True` = take part in attention), and `is_causal=True` builds the causal
# mask for you. You were not allowed to call it in your answer; here, in a cell that is not
# yours, we compare the two and time them.

# %% role="locked"
B, H, T, D = 4, 8, 128, 64
q, k, v = (torch.randn(B, H, T, D) for _ in range(3))
mask = causal_mask(T)
yours = scaled_dot_product_attention(q, k, v, mask)
torch_mask = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
torch_causal = F.scaled_dot_product_attention(q, k, v, is_causal=True)
print(f"largest difference, yours vs attn_mask=mask:  {(yours - torch_mask).abs().max():.2e}")
print(f"largest difference, yours vs is_causal=True:  {(yours - torch_causal).abs().max():.2e}")
assert torch.allclose(yours, torch_causal, atol=1e-5)


def median_ms(fn, repeats=10):
    fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return 1000 * sorted(times)[len(times) // 2]


with torch.no_grad():
    ms_yours = median_ms(lambda: scaled_dot_product_attention(q, k, v, mask))
    ms_torch = median_ms(lambda: F.scaled_dot_product_attention(q, k, v, is_causal=True))
print(f"(B, H, T, D) = {(B, H, T, D)}: yours {ms_yours:.2f} ms, fused {ms_torch:.2f} ms "
      f"({torch.get_num_threads()} threads; timings depend on the machine)")

# %% [markdown]
# ## From text to next-token probabilities
#
# A whole decoder-only model is your attention plus a few more pieces. Below is a tiny one in
# the GPT-2 layout, with **random** (untrained) weights, and a character-level vocabulary so
# we need no tokenizer yet (week 2). Follow the shapes:
#
# 1. text → token ids `(B, T)`;
# 2. token embeddings + learned position embeddings → `(B, T, dim)`: the residual stream;
# 3. each block: `x = x + attn(norm1(x))`, then `x = x + mlp(norm2(x))` (pre-norm residual
#    blocks);
# 4. a final norm, then `lm_head` → logits `(B, T, vocab)`: one score per vocabulary entry at
#    every position;
# 5. softmax over the vocabulary at the **last** position → the next-token distribution.

# %% role="locked"
class TinyBlock(nn.Module):
    def __init__(self, dim: int, n_heads: int) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim)
        self.attn = MultiHeadAttention(dim, n_heads)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = nn.Sequential(nn.Linear(dim, 4 * dim), nn.GELU(), nn.Linear(4 * dim, dim))

    def forward(self, x: Tensor) -> Tensor:
        x = x + self.attn(self.norm1(x))  # tokens exchange information
        return x + self.mlp(self.norm2(x))  # each token is processed on its own


class TinyGPT(nn.Module):
    def __init__(self, vocab: int, dim: int, n_layers: int, n_heads: int, max_len: int) -> None:
        super().__init__()
        self.embed_tokens = nn.Embedding(vocab, dim)
        self.embed_positions = nn.Embedding(max_len, dim)
        self.layers = nn.ModuleList(TinyBlock(dim, n_heads) for _ in range(n_layers))
        self.norm = nn.LayerNorm(dim)
        self.lm_head = nn.Linear(dim, vocab, bias=False)

    def forward(self, idx: Tensor, verbose: bool = False) -> Tensor:
        positions = torch.arange(idx.shape[1])
        x = self.embed_tokens(idx) + self.embed_positions(positions)
        if verbose:
            print(f"token ids {tuple(idx.shape)} -> embeddings {tuple(x.shape)}")
        for i, layer in enumerate(self.layers):
            x = layer(x)
            if verbose:
                print(f"after block {i}: {tuple(x.shape)}")
        logits = self.lm_head(self.norm(x))
        if verbose:
            print(f"final norm + lm_head -> logits {tuple(logits.shape)}")
        return logits


# %% role="locked"
text = "attention is all you need"
chars = sorted(set(text))
stoi = {c: i for i, c in enumerate(chars)}
itos = {i: c for c, i in stoi.items()}
idx = torch.tensor([[stoi[c] for c in "attention is"]])

torch.manual_seed(0)
model = TinyGPT(vocab=len(chars), dim=32, n_layers=2, n_heads=4, max_len=64).eval()
with torch.no_grad():
    logits = model(idx, verbose=True)
    probs = logits[0, -1].softmax(-1)  # the distribution of the token after "attention is"
top = probs.topk(3)
best = {repr(itos[int(i)]): round(float(p), 3) for p, i in zip(*top, strict=True)}
print("next-token probabilities (untrained, so meaningless):", best)
print(f"they sum to {probs.sum():.4f} over a vocabulary of {len(chars)} characters")

# %% [markdown]
# Because attention is causal, the logits at position $t$ do not change when tokens are
# appended after it. That is what lets a model train on every position of a sequence in one
# pass, and generate **autoregressively**: predict a token, append it, predict again.
# Below, greedy generation (always the most probable token) with the untrained model: the
# output is gibberish, but the loop is the real one. Week 7 trains a model and adds
# sampling and a KV cache.

# %% role="locked"
with torch.no_grad():
    longer = torch.cat([idx, torch.tensor([[stoi["a"], stoi["l"]]])], dim=1)
    same = torch.allclose(model(longer)[:, : idx.shape[1]], logits, atol=1e-5)
    print(f"logits of the first {idx.shape[1]} positions unchanged after appending: {same}")

    generated = idx
    for _ in range(12):
        next_logits = model(generated)[:, -1]  # (B, vocab): only the last position matters
        next_id = next_logits.argmax(-1, keepdim=True)  # greedy choice, (B, 1)
        generated = torch.cat([generated, next_id], dim=1)
print(repr("".join(itos[int(i)] for i in generated[0])))

# %% [markdown]
# ## Computed: the size of GPT-2
#
# GPT-2 (Radford et al., 2019) used the layout above with a vocabulary of 50,257 byte-level
# BPE tokens, a context of 1,024 positions, GELU MLPs of width $4d$, biases everywhere, and
# the token embedding shared with `lm_head`. Its parameters can be counted from the
# configuration alone:
#
# - embeddings: $V d$ (tokens) $+\ 1024\, d$ (positions);
# - per block: attention $4 d^2 + 4 d$ (q, k, v, o with biases), MLP $8 d^2 + 5 d$, two
#   LayerNorms $4 d$, that is $12 d^2 + 13 d$;
# - the final LayerNorm $2 d$; `lm_head` adds nothing (tied).

# %% role="locked"
def gpt2_parameters(vocab: int, context: int, dim: int, n_layers: int) -> int:
    embeddings = vocab * dim + context * dim
    block = (4 * dim * dim + 4 * dim) + (8 * dim * dim + 5 * dim) + 4 * dim
    return embeddings + n_layers * block + 2 * dim


def gpt2_layout(vocab: int, context: int, dim: int, n_layers: int) -> nn.Module:
    """The GPT-2 modules with their biases (lm_head is tied to the token embedding)."""
    def block() -> nn.Module:
        return nn.ModuleList([nn.LayerNorm(dim), nn.Linear(dim, 3 * dim), nn.Linear(dim, dim),
                              nn.LayerNorm(dim), nn.Linear(dim, 4 * dim), nn.Linear(4 * dim, dim)])
    return nn.ModuleList([nn.Embedding(vocab, dim), nn.Embedding(context, dim),
                          nn.ModuleList(block() for _ in range(n_layers)), nn.LayerNorm(dim)])


configs = {  # name: (layers, width, heads); the paper reports 117M and 1,542M parameters
    "GPT-2 small": (12, 768, 12),
    "GPT-2 XL": (48, 1600, 25),
}
for name, (layers, width, heads) in configs.items():
    n = gpt2_parameters(50257, 1024, width, layers)
    with torch.device("meta"):  # shapes only: no memory is allocated
        built = sum(p.numel() for p in gpt2_layout(50257, 1024, width, layers).parameters())
    assert built == n, (built, n)
    print(f"{name:<12} {layers:>2} layers, width {width}, {heads} heads of {width // heads}: "
          f"{n:,} parameters (formula and built modules agree)")

# %% [markdown]
# The counts, about 124 M and 1,558 M, are those of the released checkpoints; the paper's
# table lists 117 M and 1,542 M. Week 8 counts the parameters of any configuration exactly.
#
# ## What you built
#
# - `causal_mask`: the lower-triangular boolean mask of a decoder-only model;
# - `scaled_dot_product_attention`: $\mathrm{softmax}(QK^\top/\sqrt{d} + M)V$, written out;
# - `MultiHeadAttention`: heads in parallel, with the `q_proj`/`k_proj`/`v_proj`/`o_proj`
#   layout of real models.
#
# Week 3 replaces LayerNorm and the GELU MLP with RMSNorm and SwiGLU, week 4 adds positions
# (RoPE) inside attention, and week 5 makes attention cheaper at inference. Next: take the
# [week 1 quiz](../../../site/weeks/week1/quiz.md).


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
    grading = subprocess.run([sys.executable, "-m", "autograder", "grade", "attention.ipynb"],
                             capture_output=True, text=True)
    print(grading.stdout + grading.stderr)
