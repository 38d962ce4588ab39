# %% [markdown]
# # Week 5: Attention for inference
#
# A trained model spends most of its life generating text one token at a time. Each new token
# needs the keys and values of every earlier token, so they are kept in a **KV cache**, and
# that cache, more than the weights, decides how many sequences and how long a context fit on
# a GPU. This week you build the attention layer of Llama 2 and Mistral, which shrinks the
# cache two ways: **grouped-query attention** (fewer key/value heads than query heads) and a
# **sliding window** (each token looks back a fixed number of positions). Then you compute the
# cache of real models, check that a tiled "online softmax" attention (the idea behind
# FlashAttention) gives the same result as the ordinary one, and measure what a sliding window
# saves as the sequence grows.
#
# Read the [week 5 lesson](../../../site/weeks/week5/lesson.md) first (also on the course
# site, Week 5 → Lesson). The conventions the graders enforce follow the Hugging Face
# `transformers` Llama and Mistral implementations, so your `Attention` can load their weights
# by name.
#
# **How this notebook works.** Write your code where it says `# YOUR CODE HERE` (delete the
# `raise NotImplementedError()`), then run the check cell below it. The visible checks catch
# the common mistakes; hidden tests with other shapes, dtypes and gradients grade the
# submission. You can run the same grader yourself: save the notebook and run its last cell,
# **Grade this notebook**; or from a terminal:
#
# ```bash
# .venv/bin/autograder grade course/release/week5/inference_attention.ipynb   # from the course folder
# autograder grade inference_attention.ipynb   # from this folder, after `source .venv/bin/activate`
# ```

# %% role="locked"
import math
import time

import matplotlib.pyplot as plt
import torch
import torch.nn.functional as F  # noqa: F401 (allowed in your answers)
from torch import Tensor, nn  # noqa: F401 (nn: used by the answer cells)
from torch.utils._python_dispatch import TorchDispatchMode

torch.manual_seed(0)
print(f"torch {torch.__version__}")

# %% [markdown]
# ## Given: attention from week 1 and RoPE from week 4
#
# Your `Attention` needs scaled dot-product attention with a boolean mask (week 1) and rotary
# position embeddings (week 4). They are given below, exactly as the course's reference
# wrote them, so that this notebook stands on its own. You may paste your own versions from
# weeks 1 and 4 over them instead, as long as the names and signatures stay the same:
#
# - `causal_mask(seq_len, device=None)`: `(T, T)` bool, True where key `j <= i`;
# - `scaled_dot_product_attention(q, k, v, mask=None)`: `softmax(q k^T / sqrt(D), masked)
#   @ v`, with a bool mask (True = may attend) broadcastable to `(..., T_q, T_k)`;
# - `apply_rope(x, positions, theta=ROPE_THETA)` (`ROPE_THETA = 10000.0`): rotates `x` of
#   shape `(..., T, head_dim)`, pairing dimension `p` with `p + head_dim/2` (rotate-half).
#
# `torch.nn.functional.scaled_dot_product_attention` is also allowed this week.

# %% role="locked" code="solutions.attention:causal_mask,scaled_dot_product_attention"

# %% role="locked" code="solutions.positions:ROPE_THETA,rope_angles,rotate_half,apply_rope"

# %% [markdown]
# ## Exercise 1: `repeat_kv`, sharing key/value heads
#
# In grouped-query attention (GQA) there are `n_heads` query heads but only `n_kv_heads`
# key/value heads; each kv head serves a **group** of `n_rep = n_heads // n_kv_heads`
# consecutive query heads. With 8 query heads and 2 kv heads, query heads 0-3 read kv head 0
# and query heads 4-7 read kv head 1:
#
# $$\text{query head } h \;\longrightarrow\; \text{kv head } \lfloor h / n_\text{rep} \rfloor .$$
#
# The simplest way to compute it is to repeat each kv head `n_rep` times so that there is one
# per query head, then run ordinary multi-head attention.
#
# - `repeat_kv(x, n_rep)`: `x` of shape `(B, H_kv, T, D)` → `(B, H_kv * n_rep, T, D)`, where
#   output head `h` is input head `h // n_rep`;
# - each head is repeated **in place** (`0, 0, 0, 1, 1, 1`), not tiled (`0, 1, 0, 1, 0, 1`):
#   `x.repeat(1, n_rep, 1, 1)` tiles, which is the classic mistake;
# - `n_rep = 1` returns `x` unchanged; gradients must flow back to `x`.
#
# Hint: `torch.repeat_interleave` does it in one call. Transformers' version adds an axis
# after the head axis, `x[:, :, None]`, expands it to `n_rep` (no copy) and reshapes; calling
# it (`transformers`' `repeat_kv`) is not allowed.

# %% role="answer" exercise="repeat_kv"

# %% [markdown]
# Run the checks. A failed check tells you what to look at.

# %% role="test" exercise="repeat_kv"
x = torch.randn(2, 3, 5, 4)
out = repeat_kv(x, 4)
assert out.shape == (2, 12, 5, 4), f"expected shape (2, 12, 5, 4), got {tuple(out.shape)}"
for h in range(12):
    if not torch.equal(out[:, h], x[:, h // 4]):
        tiled = torch.equal(out[:, h], x[:, h % 3])
        raise AssertionError(f"query head {h} should read kv head {h // 4}" + (
            "; yours reads kv head h % n_kv_heads: the heads are tiled (x.repeat), repeat each "
            "one in place instead (repeat_interleave)" if tiled else ""))
assert torch.equal(repeat_kv(x, 1), x), "n_rep = 1 should return the input unchanged"
k = torch.randn(1, 6, 2, 8).transpose(1, 2)  # (B, H_kv, T, D), not contiguous, like real keys
assert torch.equal(repeat_kv(k, 3), torch.repeat_interleave(k, 3, dim=1)), (
    "wrong result on a non-contiguous input: use reshape rather than view")
leaf = torch.randn(1, 2, 3, 4, requires_grad=True)
repeat_kv(leaf, 3).sum().backward()
assert leaf.grad is not None and torch.allclose(leaf.grad, torch.full_like(leaf, 3.0)), (
    "each kv head feeds n_rep query heads, so its gradient should be summed over them")
print("repeat_kv: visible checks passed")

# %% [markdown]
# ## Exercise 2: the sliding-window mask
#
# With a sliding window of `w` positions (Mistral 7B: $w = 4096$), query $i$ attends to itself
# and the $w - 1$ keys before it, never to the future:
#
# $$\text{key } j \text{ is visible to query } i \iff 0 \le i - j < w .$$
#
# For $T = 5$ and $w = 3$ (rows are queries, columns keys, 1 = may attend):
#
# ```
# 1 0 0 0 0
# 1 1 0 0 0
# 1 1 1 0 0
# 0 1 1 1 0
# 0 0 1 1 1
# ```
#
# This is the convention of `transformers`' Mistral (`kv_idx > q_idx - window`). Mistral's
# original reference code let one more key in ($i - j \le w$); the course, like the Hugging
# Face implementation, uses the strict form.
#
# - `sliding_window_mask(seq_len, window=None, device=None)`: a `(T, T)` **bool** tensor,
#   True where query `i` may attend to key `j`;
# - `window=None` is the ordinary causal mask (you have `causal_mask` above);
# - `window=1` keeps only the diagonal; `window >= T` cuts nothing.
#
# Hint: `torch.tril` and `torch.triu` take a diagonal offset. The sliding-window mask
# functions of `transformers` are not allowed. As in week 1, the grader checks that the mask
# is built on the `device` given.

# %% role="answer" exercise="sliding_window_mask"

# %% role="test" exercise="sliding_window_mask"
picture = torch.tensor([[1, 0, 0, 0, 0],
                        [1, 1, 0, 0, 0],
                        [1, 1, 1, 0, 0],
                        [0, 1, 1, 1, 0],
                        [0, 0, 1, 1, 1]], dtype=torch.bool)
m = sliding_window_mask(5, 3)
assert isinstance(m, Tensor) and m.dtype == torch.bool, "return a bool tensor (True = may attend)"
assert m.shape == (5, 5), f"expected shape (5, 5), got {tuple(m.shape)}"
if not torch.equal(m, picture):
    if torch.equal(m, torch.ones(5, 5, dtype=torch.bool).tril().triu(-3)):
        raise AssertionError("your window holds w + 1 keys (i - j <= w, Mistral's original "
                             "code); the course uses 0 <= i - j < w")
    raise AssertionError(f"T = 5, window = 3 should give\n{picture.int()}\ngot\n{m.int()}")
causal = torch.ones(7, 7, dtype=torch.bool).tril()
assert torch.equal(sliding_window_mask(7), causal), "window=None should be the causal mask"
assert torch.equal(sliding_window_mask(7, 7), causal), "window >= T should cut nothing"
assert torch.equal(sliding_window_mask(7, 100), causal), "window >= T should cut nothing"
assert torch.equal(sliding_window_mask(4, 1), torch.eye(4, dtype=torch.bool)), (
    "window = 1: each query sees only itself")
assert sliding_window_mask(6, 2, device="cpu").sum().item() == 11, "T = 6, w = 2 has 6 + 5 ones"
print("sliding_window_mask: visible checks passed")

# %% [markdown]
# ## Given: banded sliding-window attention
#
# Masking a full $(T, T)$ score matrix gives the right answer but still computes and stores
# all $T^2$ scores, most of them thrown away. The function below computes exactly the same
# thing in blocks of $w$ queries: a query in block $b$ can only see keys in blocks $b - 1$ and
# $b$, so each block attends to $2w$ keys, and memory grows like $T \cdot w$ instead of
# $T^2$. It is given (and used by the reference `Attention` when $T > w$); the cell checks it
# against your mask. Using it in your `Attention` is optional: a plain mask is correct too,
# only more memory-hungry for long sequences.

# %% role="locked" code="solutions.efficient_attention:sliding_window_attention"
q, k, v = (torch.randn(2, 3, 37, 8, dtype=torch.float64) for _ in range(3))
for w in (1, 4, 16, 50):
    banded = sliding_window_attention(q, k, v, w)
    masked = scaled_dot_product_attention(q, k, v, sliding_window_mask(37, w))
    print(f"window {w:>2}: largest |banded - masked| = {(banded - masked).abs().max().item():.1e}")

# %% [markdown]
# ## Exercise 3: `Attention` with GQA, RoPE, an optional window and a KV cache
#
# The attention layer of Llama 2 and Mistral, for an input `x` of shape `(B, T, dim)`, in
# four steps. Each step is a method of its own, because week 7 extends your class: its
# `CachedAttention` overrides `rotate` (GPT-2 has no RoPE) and swaps faster kernels into
# `project`, `rotate` and `attend`, and it keeps your `forward`.
#
# 1. `project(x) -> (q, k, v)`: `q = q_proj(x)`, `k = k_proj(x)`, `v = v_proj(x)`, split
#    into heads: q to `(B, n_heads, T, head_dim)`, k and v to `(B, n_kv_heads, T, head_dim)`
#    (`view(B, T, heads, head_dim).transpose(1, 2)`), with `head_dim = dim // n_heads`;
# 2. `rotate(q, k, positions) -> (q, k)`: `apply_rope` on **q and k** (never v), with
#    `rope_theta`; token `t` sits at position `t`, so `forward` passes `torch.arange(T)`;
# 3. `attend(q, k, v)`: give every query head its kv head (`repeat_kv`), then attend with
#    the causal mask, or the sliding-window mask when `window` is set;
# 4. `forward(x)` runs the three, merges the heads back to `(B, T, n_heads * head_dim)` and
#    applies `o_proj`.
#
# **The KV cache.** To generate, a model runs the prompt once and then one new token at a
# time; every step needs the keys and values of all the tokens before, which the
# `KVCache` below keeps (given: it appends and, with a window, drops what no query can see
# any more). `forward(x, cache)` with a cache:
#
# - the `T` new tokens sit at positions `cache.pos, ..., cache.pos + T - 1`: rotate with
#   those positions (read `cache.pos` before the update);
# - after RoPE, `k, v = cache.update(k, v)` returns the cached keys and values followed by
#   the new ones: `S >= T` of them, the queries being the last `T`;
# - so `attend` takes `T` queries and `S` keys; query `t` sits at key position `S - T + t`,
#   and its mask row is row `S - T + t` of the `(S, S)` mask: `sliding_window_mask(S,
#   window)[S - T:]`.
#
# Without a cache, `S = T` and this is the mask you know. The conventions:
#
# - `Attention(dim, n_heads, n_kv_heads=None, window=None, rope_theta=ROPE_THETA)`
#   (`ROPE_THETA = 10000.0`, given above); `n_kv_heads=None` means `n_heads` (ordinary
#   multi-head attention), `1` is multi-query attention;
# - four `nn.Linear` layers without bias: `q_proj` `(dim → n_heads * head_dim)`, `k_proj` and
#   `v_proj` `(dim → n_kv_heads * head_dim)`, `o_proj` `(n_heads * head_dim → dim)`;
# - `forward(x, cache=None)` returns `(B, T, dim)` in the dtype of `x`.
#
# The cache stays small because k and v are cached with `n_kv_heads` heads; the repetition
# only happens at attention time, in `attend`.
#
# Allowed: `F.scaled_dot_product_attention` (its `enable_gqa=True` too), your `repeat_kv` and
# `sliding_window_mask`, the given `apply_rope`. Not allowed: the attention modules and
# functions of `transformers` (`MistralAttention`, `eager_attention_forward`, ...). The
# defaults (`n_kv_heads=None`, `window=None`, `rope_theta=ROPE_THETA`) are graded.

# %% role="locked" code="solutions.efficient_attention:KVCache"

# %% role="answer" exercise="attention"

# %% role="test" exercise="attention"
attn = Attention(dim=64, n_heads=8, n_kv_heads=2, window=4)
shapes = {name: tuple(p.shape) for name, p in attn.named_parameters()}
expected = {"q_proj.weight": (64, 64), "k_proj.weight": (16, 64), "v_proj.weight": (16, 64),
            "o_proj.weight": (64, 64)}
assert shapes == expected, f"parameters should be {expected} (no biases); got {shapes}"

x = torch.randn(2, 11, 64)
y = attn(x)
assert y.shape == x.shape, f"output shape {tuple(y.shape)} should be {tuple(x.shape)}"


def by_hand(module, x, window):
    """The steps, written out with the given helpers and your mask."""
    B, T, _ = x.shape
    H, D = 8, 8
    q = module.q_proj(x).view(B, T, H, D).transpose(1, 2)
    k = module.k_proj(x).view(B, T, 2, D).transpose(1, 2)
    v = module.v_proj(x).view(B, T, 2, D).transpose(1, 2)
    pos = torch.arange(T)
    q, k = apply_rope(q, pos), apply_rope(k, pos)
    k, v = k.repeat_interleave(4, dim=1), v.repeat_interleave(4, dim=1)
    out = scaled_dot_product_attention(q, k, v, sliding_window_mask(T, window))
    return module.o_proj(out.transpose(1, 2).reshape(B, T, H * D))


with torch.no_grad():
    x_later = x.clone()
    x_later[:, 6:] = torch.randn(2, 5, 64)
    assert torch.allclose(attn(x_later)[:, :6], y[:, :6], atol=1e-6), (
        "changing tokens 6.. changed earlier outputs: apply the causal mask")
    x_far = x.clone()
    x_far[:, 10 - 4] += 1.0  # 4 positions before the last query: outside a window of 4
    assert torch.allclose(attn(x_far)[:, 10], y[:, 10], atol=1e-6), (
        "the last token's output changed when a token `window` positions back changed: "
        "key j is visible iff 0 <= i - j < window")
    assert torch.allclose(y, by_hand(attn, x, 4), atol=1e-5), (
        "output differs from the step-by-step computation: check RoPE on q and k (not v), "
        "query head h reading kv head h // n_rep, and the window mask")
    free = Attention(64, 8, 2)
    free.load_state_dict(attn.state_dict())
    assert torch.allclose(free(x), by_hand(free, x, None), atol=1e-5), (
        "with window=None your output differs from full causal attention")
    wide = Attention(64, 8, 2, window=11)
    wide.load_state_dict(attn.state_dict())
    assert torch.allclose(wide(x), free(x), atol=1e-6), "a window >= T should cut nothing"
    mha = Attention(32, 4)
    assert mha.k_proj.weight.shape == (32, 32), "n_kv_heads=None means n_heads kv heads"
    for step in ("project", "rotate", "attend"):
        assert callable(getattr(attn, step, None)), f"write the step `{step}` as a method"
    q, k, v = attn.project(x)
    assert q.shape == (2, 8, 11, 8) and k.shape == v.shape == (2, 2, 11, 8), (
        "project: q (B, n_heads, T, head_dim), k and v (B, n_kv_heads, T, head_dim)")
    for window, cuts in ((None, ((0, 6), (6, 7), (7, 11))), (4, ((0, 5), (5, 6), (6, 11)))):
        module = Attention(64, 8, 2, window=window)
        module.load_state_dict(attn.state_dict())
        cache = KVCache(window)
        pieces = torch.cat([module(x[:, a:b], cache) for a, b in cuts], dim=1)
        assert cache.pos == 11, "pass the cache on: forward(x, cache) calls cache.update(k, v)"
        assert torch.allclose(pieces, module(x), atol=1e-5), (
            f"window={window}: tokens fed in pieces through a KVCache should give the full "
            "forward's outputs: positions start at cache.pos, and the T queries are the last "
            "T of the S keys (mask rows S - T .. S - 1)")
y.sum().backward()
assert all(p.grad is not None for p in attn.parameters()), "every projection needs a gradient"
print("Attention: visible checks passed")

# %% [markdown]
# ## Exercise 4: how big is the KV cache?
#
# Every layer caches one key and one value vector of `head_dim` numbers per kv head, per
# token, per sequence in the batch:
#
# $$\text{bytes} = 2 \times n_\text{layers} \times n_\text{kv heads} \times d_\text{head}
# \times \text{tokens} \times \text{batch} \times \text{bytes per number}$$
#
# The 2 counts keys and values. With a sliding window the cache is a rolling buffer: a key
# more than `window - 1` positions back can never be attended again, so only
# $\text{tokens} = \min(T, w)$ are kept ($T$ = `seq_len`, $w$ = `window`).
#
# - `kv_cache_bytes(n_layers, n_kv_heads, head_dim, seq_len, batch_size=1, bytes_per_elem=2,
#   *, window=None) -> int` (`window` is keyword-only);
# - `bytes_per_elem`: 2 for fp16/bf16, 4 for fp32, 1 for an 8-bit cache;
# - return a Python `int`.
#
# Check yourself: Llama 2 7B (32 layers, 32 kv heads of 128) caches 524,288 bytes per token
# at fp16, so its full 4096-token context takes exactly 2 GiB.

# %% role="answer" exercise="kv_cache_bytes"

# %% role="test" exercise="kv_cache_bytes"
got = kv_cache_bytes(32, 32, 128, 1)
assert isinstance(got, int), f"return an int, got {type(got).__name__}"
assert got == 524_288, (f"Llama 2 7B, one token: expected 524,288 bytes, got {got:,}"
                        + (" (keys AND values: a factor 2 is missing)" if got == 262_144 else ""))
assert kv_cache_bytes(32, 32, 128, 4096) == 2**31, "Llama 2 7B at 4096 tokens is 2 GiB"
assert kv_cache_bytes(n_layers=80, n_kv_heads=8, head_dim=128, seq_len=1) == 327_680, (
    "Llama 2 70B (80 layers, 8 kv heads of 128): 327,680 bytes per token")
assert kv_cache_bytes(32, 8, 128, 10, batch_size=3, bytes_per_elem=4) == 30 * 262_144, (
    "batch_size and bytes_per_elem multiply the total")
assert kv_cache_bytes(32, 8, 128, 32768, window=4096) == kv_cache_bytes(32, 8, 128, 4096), (
    "with a window the cache keeps only min(seq_len, window) tokens")
assert kv_cache_bytes(32, 8, 128, 100, window=4096) == 100 * 131_072, (
    "with fewer tokens than the window, all of them are cached")
print("kv_cache_bytes: visible checks passed")

# %% [markdown]
# ## The cache of real models
#
# The configurations below are those of the Llama 2 paper (Touvron et al., 2023) and the
# Mistral 7B paper (Jiang et al., 2023). Note which number goes in: the **kv** heads, not the
# query heads. Llama 2 70B has 64 query heads but only 8 kv heads; if it used ordinary
# multi-head attention its cache would be 8 times larger.

# %% role="locked"
models = {  # name: (layers, query heads, kv heads, head_dim, window)
    "Llama 2 7B (MHA)": (32, 32, 32, 128, None),
    "Llama 2 70B (GQA)": (80, 64, 8, 128, None),
    "Llama 2 70B if it were MHA": (80, 64, 64, 128, None),
    "Mistral 7B (GQA + window 4096)": (32, 32, 8, 128, 4096),
}
GiB = 2**30
print(f"{'model':<32} {'bytes/token':>12} {'4k tokens':>10} {'32k tokens':>11} "
      f"{'32k x batch 8':>14}")
for name, (layers, _heads, kv_heads, head_dim, window) in models.items():
    per_token = kv_cache_bytes(layers, kv_heads, head_dim, 1)
    at_4k = kv_cache_bytes(layers, kv_heads, head_dim, 4096, window=window) / GiB
    at_32k = kv_cache_bytes(layers, kv_heads, head_dim, 32768, window=window) / GiB
    batch = kv_cache_bytes(layers, kv_heads, head_dim, 32768, 8, window=window) / GiB
    print(f"{name:<32} {per_token:>12,d} {at_4k:>8.2f} G {at_32k:>9.2f} G {batch:>12.1f} G")

# %% [markdown]
# At fp16 the weights of a 7B model take about 13.5 GB. At 32k tokens the cache of a single
# Llama 2 7B-style sequence (16 GiB) is already larger than that; Mistral's cache stops growing
# at its window. (Llama 2 itself was trained with a 4096-token context; the longer columns
# show how the cache would scale.)
#
# ## The receptive field grows by a window per layer
#
# A window hides distant tokens from one layer, but not from the model: layer 2 reads layer
# 1's outputs, which already mix in $w - 1$ earlier positions, so information can travel
# $w - 1$ positions per layer. Below, "reachable" is the product of the masks of $L$ stacked
# layers, computed with your `sliding_window_mask`.

# %% role="locked"
T, w = 64, 4
one_layer = sliding_window_mask(T, w).float()
reach = torch.eye(T)
print(f"T = {T}, window w = {w}: how far back can the last token see after L layers?")
for layers in range(1, 8):
    reach = (one_layer @ reach).clamp(max=1)  # paths through one more layer
    oldest = int(torch.nonzero(reach[-1])[0])
    print(f"  L = {layers}: back to token {oldest:>2}, {T - 1 - oldest:>2} positions "
          f"= L * (w - 1) = {layers * (w - 1)}")
print(f"Mistral 7B: 32 layers x window 4096 = {32 * 4096:,} tokens of theoretical reach")

# %% [markdown]
# ## FlashAttention's idea: tiles and an online softmax
#
# Ordinary attention builds the whole $(T, T)$ score matrix, takes a softmax over each row and
# multiplies by $V$. FlashAttention (Dao et al., 2022) never builds it: it walks over the keys
# in tiles, and for each query row keeps three running quantities: the largest score seen so
# far $m$, the sum of exponentials $\ell$ (relative to $m$) and the weighted sum of values
# $o$ (also relative to $m$). When a new tile raises the maximum to $m'$, the old sums are
# rescaled by $e^{m - m'}$; at the end $o / \ell$ is exactly the softmax-weighted average.
# On a GPU the tiles live in fast on-chip memory, which is the point: far fewer reads and
# writes of slow memory. Here, written plainly in PyTorch, the point is only that the
# arithmetic is exact.

# %% role="locked"
def tiled_attention(q: Tensor, k: Tensor, v: Tensor, block: int = 16) -> Tensor:
    """Causal attention over key tiles with an online softmax; never builds (T, T) scores."""
    T, D = q.shape[-2], q.shape[-1]
    m = torch.full(q.shape[:-1] + (1,), float("-inf"), dtype=q.dtype)  # running max
    ell = torch.zeros_like(m)  # running sum of exp(score - m)
    o = torch.zeros_like(q)  # running sum of exp(score - m) * v
    rows = torch.arange(T)[:, None]
    for start in range(0, T, block):
        kb, vb = k[..., start:start + block, :], v[..., start:start + block, :]
        s = q @ kb.transpose(-2, -1) / math.sqrt(D)  # (..., T, block): one tile of scores
        s = s.masked_fill(torch.arange(start, start + kb.shape[-2]) > rows, float("-inf"))
        m_new = torch.maximum(m, s.amax(-1, keepdim=True))
        p = torch.exp(s - m_new)
        fix = torch.exp(m - m_new)  # rescale what was summed under the old maximum
        ell = ell * fix + p.sum(-1, keepdim=True)
        o = o * fix + p @ vb
        m = m_new
    return o / ell


q, k, v = (torch.randn(2, 4, 100, 32) for _ in range(3))
full = scaled_dot_product_attention(q, k, v, causal_mask(100))
for block in (1, 7, 16, 100):
    diff = (tiled_attention(q, k, v, block) - full).abs().max().item()
    print(f"tiles of {block:>3} keys: largest difference from full attention {diff:.1e}")

# %% [markdown]
# ## Measured: sliding window against full attention as the sequence grows
#
# Two ways to compute the same windowed attention ($w = 128$, one head of 64):
#
# - **masked full**: `scaled_dot_product_attention(q, k, v, sliding_window_mask(T, w))`,
#   which builds $(T, T)$ scores and weights;
# - **banded**: the given `sliding_window_attention`, blocks of $(w, 2w)$ scores.
#
# For memory we record the size of the largest tensor each computation creates (with a
# `TorchDispatchMode`, which sees every operation); it is the term that decides the peak.
# `benchmarks/sliding_window_memory.py` measures the real peak memory of whole processes up
# to $T = 8192$.

# %% role="locked"
class LargestTensor(TorchDispatchMode):
    """Records the largest tensor storage any operation creates."""

    def __init__(self):
        super().__init__()
        self.largest = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        for t in out if isinstance(out, (tuple, list)) else [out]:
            if isinstance(t, Tensor):
                self.largest = max(self.largest, t.untyped_storage().nbytes())
        return out


def measure(fn, repeats: int = 5) -> tuple[float, float]:
    """(largest tensor in MiB, best of ``repeats`` times in milliseconds)."""
    with torch.no_grad(), LargestTensor() as mode:
        fn()
    times = []
    with torch.no_grad():
        for _ in range(repeats):
            start = time.perf_counter()
            fn()
            times.append(time.perf_counter() - start)
    return mode.largest / 2**20, 1000 * min(times)  # the least disturbed run


w = 128
lengths = [256, 512, 1024, 2048]
results = {"masked full": [], "banded": []}
for T in lengths:
    q, k, v = (torch.randn(1, 1, T, 64) for _ in range(3))
    masked_full = lambda q=q, k=k, v=v, T=T: scaled_dot_product_attention(  # noqa: E731
        q, k, v, sliding_window_mask(T, w))
    banded = lambda q=q, k=k, v=v: sliding_window_attention(q, k, v, w)  # noqa: E731
    results["masked full"].append(measure(masked_full))
    results["banded"].append(measure(banded))

print(f"{'T':>6} {'masked MiB':>11} {'banded MiB':>11} {'masked ms':>10} {'banded ms':>10}")
for n, T in enumerate(lengths):
    (fm, ft), (bm, bt) = results["masked full"][n], results["banded"][n]
    print(f"{T:>6} {fm:>11.2f} {bm:>11.2f} {ft:>10.2f} {bt:>10.2f}")

fig, axes = plt.subplots(1, 2, figsize=(9, 3.2))
for name, values in results.items():
    axes[0].plot(lengths, [m for m, _ in values], "o-", label=name)
    axes[1].plot(lengths, [t for _, t in values], "o-", label=name)
axes[0].set_ylabel("largest tensor (MiB)")
axes[1].set_ylabel("time (ms)")
for ax in axes:
    ax.set_xlabel("sequence length T")
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    ax.legend()
fig.suptitle(f"sliding window w = {w}: masked full attention against banded")
plt.tight_layout()
plt.show()

# %% [markdown]
# On the log-log plot the masked form's memory has slope 2 ($T^2$: doubling $T$ quadruples
# it) and the banded form's slope 1 ($T \cdot w$). Time follows the same trend once $T$ is
# large against $w$; for short sequences the banded form's extra bookkeeping can cost more
# than it saves. Whatever your timings say, they are the honest answer for your machine.
#
# ## What you built
#
# - `repeat_kv`: one kv head per group of `n_rep` query heads, head `h` reading `h // n_rep`;
# - `sliding_window_mask`: the causal band `0 <= i - j < w`;
# - `Attention`: the Llama 2 / Mistral attention layer, with GQA, RoPE, an optional window
#   and a KV cache for decoding;
# - `kv_cache_bytes`: the memory that GQA and windows are there to save.
#
# In week 7 your `Attention` goes into your own GPT, and generation uses a KV cache. Next:
# take the [week 5 quiz](../../../site/weeks/week5/quiz.md).


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
    grading = subprocess.run([sys.executable, "-m", "autograder", "grade", "inference_attention.ipynb"],
                             capture_output=True, text=True)
    print(grading.stdout + grading.stderr)
