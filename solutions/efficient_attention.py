"""Week 5: attention for inference (grouped-query attention, sliding windows, the KV cache).

Generating a token needs the keys and values of every earlier token, so they are cached, and
that cache, not the weights, is what limits batch size and context length. Two ways to shrink
it, both in Mistral 7B:

- Grouped-query attention (GQA, Ainslie et al. 2023): ``n_kv_heads < n_heads`` key/value heads,
  each shared by a group of ``n_heads // n_kv_heads`` query heads. ``n_kv_heads == n_heads`` is
  ordinary multi-head attention (MHA), ``n_kv_heads == 1`` is multi-query attention (MQA).
- Sliding-window attention (Longformer, Mistral): each query sees only the last ``w`` keys.
  The cache stops growing at ``w`` tokens and the attention cost grows with ``T * w``, not
  ``T^2``; stacked layers still pass information from further back (receptive field
  ``n_layers * w``).

``Attention.forward`` takes an optional :class:`KVCache`: fed one new token at a time, it
attends over the cached keys and values of all the tokens before.
"""

import torch
from torch import Tensor, nn

from solutions.attention import causal_mask, scaled_dot_product_attention
from solutions.positions import ROPE_THETA, apply_rope


def repeat_kv(x: Tensor, n_rep: int) -> Tensor:
    """Repeat each key/value head ``n_rep`` times so that every query head has one.

    Query head ``h`` then uses kv head ``h // n_rep`` (heads repeated in place, not tiled).

    Shapes:
        ``x``: ``(B, H_kv, T, D)`` -> ``(B, H_kv * n_rep, T, D)``.
    """
    B, H_kv, T, D = x.shape
    if n_rep == 1:
        return x
    x = x[:, :, None, :, :].expand(B, H_kv, n_rep, T, D)  # (B, H_kv, n_rep, T, D), no copy yet
    return x.reshape(B, H_kv * n_rep, T, D)


def sliding_window_mask(
    seq_len: int, window: int | None = None, device: torch.device | str | None = None
) -> Tensor:
    """Boolean sliding-window causal mask: True where query ``i`` may attend to key ``j``.

    Key ``j`` is visible iff ``0 <= i - j < window``: the query itself and the ``window - 1``
    keys before it (the convention of transformers' Mistral, ``kv_idx > q_idx - window``).
    ``window=None`` gives the full causal mask.

    Shapes:
        returns ``(T, T)``, dtype ``torch.bool``.
    """
    mask = causal_mask(seq_len, device)  # (T, T): j <= i
    if window is not None:
        mask = mask.triu(-(window - 1))  # and j >= i - (window - 1)
    return mask


def sliding_window_attention(q: Tensor, k: Tensor, v: Tensor, window: int) -> Tensor:
    """Sliding-window causal attention in blocks, with memory growing as ``T * window``.

    Equal to ``scaled_dot_product_attention(q, k, v, sliding_window_mask(T, window))`` without
    building the ``(T, T)`` scores. The queries are cut into blocks of ``w = window`` positions;
    a query in block ``b`` can only see keys in block ``b - 1`` or ``b`` (it looks back at most
    ``w - 1`` positions), so each block attends to those ``2w`` keys with a small ``(w, 2w)`` mask.

    Shapes:
        ``q``, ``k``, ``v``: ``(B, H, T, D)`` -> ``(B, H, T, D)``.
    """
    B, H, T, D = q.shape
    w = window
    n = -(-T // w)  # number of blocks, ceil(T / w)
    pad = n * w - T
    # pad the sequence to whole blocks; padded keys come after every real query, so are never
    # seen by one, and the outputs of the padded queries are dropped at the end
    q, k, v = (nn.functional.pad(t, (0, 0, 0, pad)).view(B, H, n, w, -1) for t in (q, k, v))

    # keys and values of block b - 1 next to those of block b (zeros before block 0)
    def with_previous_block(t: Tensor) -> Tensor:
        previous = torch.cat((torch.zeros_like(t[:, :, :1]), t[:, :, :-1]), dim=2)
        return torch.cat((previous, t), dim=3)  # (B, H, n, 2w, D)

    k, v = with_previous_block(k), with_previous_block(v)

    # a block's w queries are the last w of its 2w keys: the last w rows of a (2w, 2w) mask
    band = sliding_window_mask(2 * w, w, q.device)[w:]  # (w, 2w), the same in every block
    c = torch.arange(2 * w, device=q.device)
    key_pos = torch.arange(n, device=q.device)[:, None] * w - w + c  # (n, 2w): (b-1)*w + c
    mask = band & (key_pos >= 0)[:, None, :]  # (n, w, 2w): block 0 has no previous block

    y = scaled_dot_product_attention(q, k, v, mask)  # (B, H, n, w, D)
    return y.reshape(B, H, n * w, -1)[:, :, :T]  # (B, H, T, D)


class KVCache:
    """The keys and values one attention layer has seen so far, for token-by-token decoding.

    ``update`` appends the new tokens' keys and values and returns all of them; with a sliding
    window it then keeps only the last ``window`` (a rolling buffer: older keys can never be
    attended again, so the cache stops growing at ``window`` tokens, as in Mistral).

    Attributes:
        k, v: ``(B, H_kv, S, D)`` or None before the first call; keys are stored after RoPE.
        pos: tokens seen so far, i.e. the position of the next token.
    """

    def __init__(self, window: int | None = None) -> None:
        self.window = window
        self.k: Tensor | None = None
        self.v: Tensor | None = None
        self.pos = 0

    def update(self, k: Tensor, v: Tensor) -> tuple[Tensor, Tensor]:
        """Append ``(B, H_kv, T, D)`` keys and values; return the cached ones plus these."""
        self.pos += k.size(2)
        if self.k is not None:
            k, v = torch.cat((self.k, k), dim=2), torch.cat((self.v, v), dim=2)  # (B, H_kv, S, D)
        keep = k.size(2) if self.window is None else self.window
        self.k, self.v = k[:, :, -keep:], v[:, :, -keep:]
        return k, v


class Attention(nn.Module):
    """Causal self-attention of LLaMA / Mistral: RoPE, grouped-query heads, optional window.

    ``forward`` takes four steps, each a method, so that a subclass can change one (week 7's
    ``CachedAttention`` turns RoPE off for GPT-2 and swaps in PyTorch's fused kernels):
    ``project`` (q, k, v split into heads), ``rotate`` (RoPE on q and k), the KV cache if one
    is passed, ``attend`` (grouped-query attention under the window mask); then the heads
    are merged and projected back.

    Args:
        dim: model width; ``head_dim = dim // n_heads``.
        n_heads: number of query heads.
        n_kv_heads: number of key/value heads, dividing ``n_heads`` (None: ``n_heads``, MHA;
            1: MQA).
        window: sliding window ``w`` (query ``i`` sees keys ``i - w < j <= i``), or None for
            full causal attention.
        rope_theta: RoPE base.

    State dict:
        ``q_proj.weight``: ``(n_heads * head_dim, dim)``
        ``k_proj.weight``, ``v_proj.weight``: ``(n_kv_heads * head_dim, dim)``
        ``o_proj.weight``: ``(dim, n_heads * head_dim)``; no biases.

    Shapes:
        ``x``: ``(B, T, dim)`` -> ``(B, T, dim)``; token ``t`` is at position ``t``, or at
        ``cache.pos + t`` when a :class:`KVCache` is passed (it is then updated in place).
    """

    def __init__(
        self,
        dim: int,
        n_heads: int,
        n_kv_heads: int | None = None,
        window: int | None = None,
        rope_theta: float = ROPE_THETA,
    ) -> None:
        super().__init__()
        self.n_heads = n_heads
        self.n_kv_heads = n_kv_heads or n_heads
        assert n_heads % self.n_kv_heads == 0, "n_kv_heads must divide n_heads"
        assert window is None or window >= 1, "a window must hold at least the query itself"
        self.head_dim = dim // n_heads
        self.window = window
        self.rope_theta = rope_theta
        self.q_proj = nn.Linear(dim, n_heads * self.head_dim, bias=False)
        self.k_proj = nn.Linear(dim, self.n_kv_heads * self.head_dim, bias=False)
        self.v_proj = nn.Linear(dim, self.n_kv_heads * self.head_dim, bias=False)
        self.o_proj = nn.Linear(n_heads * self.head_dim, dim, bias=False)

    def forward(self, x: Tensor, cache: KVCache | None = None) -> Tensor:
        B, T, _ = x.shape
        start = 0 if cache is None else cache.pos  # position of the first of the T tokens
        q, k, v = self.project(x)  # (B, H, T, D), (B, H_kv, T, D), (B, H_kv, T, D)
        q, k = self.rotate(q, k, torch.arange(start, start + T, device=x.device))
        if cache is not None:
            k, v = cache.update(k, v)  # (B, H_kv, S, D): S - T cached keys, then the T new ones
        y = self.attend(q, k, v)  # (B, H, T, D)
        return self.o_proj(y.transpose(1, 2).reshape(B, T, -1))  # heads side by side again

    def project(self, x: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """Queries ``(B, H, T, D)``, keys and values ``(B, H_kv, T, D)``, from ``(B, T, dim)``."""
        B, T, _ = x.shape
        q = self.q_proj(x).view(B, T, self.n_heads, self.head_dim).transpose(1, 2)
        k = self.k_proj(x).view(B, T, self.n_kv_heads, self.head_dim).transpose(1, 2)
        v = self.v_proj(x).view(B, T, self.n_kv_heads, self.head_dim).transpose(1, 2)
        return q, k, v

    def rotate(self, q: Tensor, k: Tensor, positions: Tensor) -> tuple[Tensor, Tensor]:
        """RoPE on the queries and keys (never the values) of tokens at ``positions`` ``(T,)``."""
        return apply_rope(q, positions, self.rope_theta), apply_rope(k, positions, self.rope_theta)

    def attend(self, q: Tensor, k: Tensor, v: Tensor) -> Tensor:
        """Attention of T queries on S >= T keys, the queries being the last T of the S
        positions (``S > T`` when earlier keys come from a cache).

        Shapes:
            ``q``: ``(B, H, T, D)``, ``k``, ``v``: ``(B, H_kv, S, D)`` -> ``(B, H, T, D)``.
        """
        # the cache holds only H_kv heads; the sharing happens here, at attention time
        n_rep = self.n_heads // self.n_kv_heads
        k, v = repeat_kv(k, n_rep), repeat_kv(v, n_rep)  # (B, H, S, D)
        T, S = q.size(2), k.size(2)
        if self.window is not None and T == S > self.window:  # a long prompt: O(T * w) memory
            return sliding_window_attention(q, k, v, self.window)
        mask = sliding_window_mask(S, self.window, q.device)[S - T:]  # (T, S): the last T rows
        return scaled_dot_product_attention(q, k, v, mask)


def kv_cache_bytes(
    n_layers: int,
    n_kv_heads: int,
    head_dim: int,
    seq_len: int,
    batch_size: int = 1,
    bytes_per_elem: int = 2,
    *,
    window: int | None = None,
) -> int:
    """Memory of the KV cache: ``2 * n_layers * n_kv_heads * head_dim * tokens * batch * bytes``.

    The 2 is for keys and values; ``tokens`` is ``seq_len``, or ``min(seq_len, window)`` with a
    sliding window (a rolling buffer: older keys can never be attended again).

    Args:
        n_layers: transformer layers (each caches its own keys and values).
        n_kv_heads: key/value heads per layer (``n_heads`` for MHA, fewer with GQA/MQA).
        head_dim: size of each head.
        seq_len: tokens in context (prompt plus generated).
        batch_size: sequences decoded together.
        bytes_per_elem: 2 for fp16/bf16, 4 for fp32, 1 for an 8-bit cache.
        window: sliding window, if any (keyword only).

    Example:
        Llama-2 7B (32 layers, 32 kv heads of 128) at fp16 caches 524,288 bytes per token, so
        4096 tokens take 2 GiB: ``kv_cache_bytes(32, 32, 128, 4096) == 2**31``.
    """
    tokens = seq_len if window is None else min(seq_len, window)
    return 2 * n_layers * n_kv_heads * head_dim * tokens * batch_size * bytes_per_elem
