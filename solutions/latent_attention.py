"""Week 9: multi-head latent attention (MLA), the attention of DeepSeek-V2 and DeepSeek-V3.

Grouped-query attention shrinks the KV cache by sharing keys and values between heads. MLA
shrinks it further by caching one small **latent** vector per token (``kv_lora_rank`` numbers,
512 in DeepSeek-V3) from which every head's keys and values are re-expanded by ``kv_b_proj``.
Position goes through a separate, small **RoPE key** (``qk_rope_head_dim`` numbers, 64) shared
by all heads: a rotation between ``kv_b_proj`` and the query would depend on the position of
each key, so ``kv_b_proj`` could no longer be folded into the query ("absorbed") at inference,
and the latent alone could not be attended to. Decoupling RoPE keeps absorption possible.

- :class:`MultiHeadLatentAttention` is the training form (expand keys and values, attend);
- :class:`CachedLatentAttention` decodes from a :class:`LatentKVCache` in the absorbed form
  (attend to the cached latents directly); the two give the same outputs.

RoPE pairs adjacent dimensions ``(2i, 2i+1)`` as DeepSeek's own code does. transformers 5.25's
``DeepseekV3Attention`` does the same when ``config.rope_interleave`` is True (its default, and
the published config's behaviour): ``apply_rotary_pos_emb_interleave`` rotates the pairs
``(x[2i], x[2i+1])`` and writes the results back split into halves. That output order is the
same permutation for queries and keys, so the scores, and hence the outputs, are those of the
interleaved rotation (:func:`solutions.positions.rope_interleaved`).
"""

import math

import torch
from torch import Tensor, nn

from solutions.attention import causal_mask, scaled_dot_product_attention
from solutions.normalization import RMSNorm
from solutions.positions import ROPE_THETA, rope_interleaved


class MultiHeadLatentAttention(nn.Module):
    """Causal multi-head latent attention (DeepSeek-V2/V3), transformers' ``DeepseekV3Attention``.

    Per head ``h`` the query is ``[q_nope_h | RoPE(q_rope_h)]`` and the key is
    ``[k_nope_h | RoPE(k_rope)]``: the first part expanded from the token's latent, the second
    the one RoPE key shared by all heads. Values are expanded from the latent too. Scores are
    scaled by ``1 / sqrt(qk_nope_head_dim + qk_rope_head_dim)``, the full query-key width.

    Args:
        dim: model width.
        n_heads: attention heads.
        q_lora_rank: width of the compressed query, or None for one ``q_proj`` (DeepSeek-V2-Lite).
        kv_lora_rank: width of the latent cached per token.
        qk_nope_head_dim: per-head query/key width without position.
        qk_rope_head_dim: width of the rotated query part and of the shared RoPE key.
        v_head_dim: per-head value width.
        rope_theta: RoPE base.
        norm_eps: epsilon of the two RMSNorms.

    State dict (no biases):
        ``q_a_proj.weight`` ``(q_lora_rank, dim)``, ``q_a_layernorm.weight`` ``(q_lora_rank,)``,
        ``q_b_proj.weight`` ``(n_heads * (qk_nope + qk_rope), q_lora_rank)``; or, when
        ``q_lora_rank`` is None, ``q_proj.weight`` ``(n_heads * (qk_nope + qk_rope), dim)``;
        ``kv_a_proj_with_mqa.weight`` ``(kv_lora_rank + qk_rope, dim)``: the latent, then the
        RoPE key; ``kv_a_layernorm.weight`` ``(kv_lora_rank,)``;
        ``kv_b_proj.weight`` ``(n_heads * (qk_nope + v_head_dim), kv_lora_rank)``: per head, the
        key rows then the value rows; ``o_proj.weight`` ``(dim, n_heads * v_head_dim)``.

    Shapes:
        ``x``: ``(B, T, dim)`` -> ``(B, T, dim)``; token ``t`` is at position ``t``.
    """

    def __init__(
        self,
        dim: int,
        n_heads: int,
        q_lora_rank: int | None,
        kv_lora_rank: int,
        qk_nope_head_dim: int,
        qk_rope_head_dim: int,
        v_head_dim: int,
        rope_theta: float = ROPE_THETA,
        norm_eps: float = 1e-6,
    ) -> None:
        super().__init__()
        self.n_heads = n_heads
        self.q_lora_rank = q_lora_rank
        self.kv_lora_rank = kv_lora_rank
        self.qk_nope_head_dim = qk_nope_head_dim
        self.qk_rope_head_dim = qk_rope_head_dim
        self.v_head_dim = v_head_dim
        self.rope_theta = rope_theta
        qk_head_dim = qk_nope_head_dim + qk_rope_head_dim
        if q_lora_rank is None:
            self.q_proj = nn.Linear(dim, n_heads * qk_head_dim, bias=False)
        else:  # the query is compressed too: it saves activation memory in training
            self.q_a_proj = nn.Linear(dim, q_lora_rank, bias=False)
            self.q_a_layernorm = RMSNorm(q_lora_rank, norm_eps)
            self.q_b_proj = nn.Linear(q_lora_rank, n_heads * qk_head_dim, bias=False)
        self.kv_a_proj_with_mqa = nn.Linear(dim, kv_lora_rank + qk_rope_head_dim, bias=False)
        self.kv_a_layernorm = RMSNorm(kv_lora_rank, norm_eps)
        self.kv_b_proj = nn.Linear(kv_lora_rank, n_heads * (qk_nope_head_dim + v_head_dim),
                                   bias=False)
        self.o_proj = nn.Linear(n_heads * v_head_dim, dim, bias=False)

    def forward(self, x: Tensor) -> Tensor:
        B, T, _ = x.shape
        H, nope, rope = self.n_heads, self.qk_nope_head_dim, self.qk_rope_head_dim
        positions = torch.arange(T, device=x.device)

        if self.q_lora_rank is None:
            q = self.q_proj(x)
        else:
            q = self.q_b_proj(self.q_a_layernorm(self.q_a_proj(x)))
        q = q.view(B, T, H, nope + rope).transpose(1, 2)  # (B, H, T, nope + rope)
        q_nope, q_rope = q.split([nope, rope], dim=-1)
        q_rope = rope_interleaved(q_rope, positions, self.rope_theta)

        # one latent and one RoPE key per token: all that the cache has to keep
        latent, k_rope = self.kv_a_proj_with_mqa(x).split([self.kv_lora_rank, rope], dim=-1)
        latent = self.kv_a_layernorm(latent)  # (B, T, kv_lora_rank)
        k_rope = rope_interleaved(k_rope[:, None], positions, self.rope_theta)  # (B, 1, T, rope)

        kv = self.kv_b_proj(latent).view(B, T, H, nope + self.v_head_dim).transpose(1, 2)
        k_nope, v = kv.split([nope, self.v_head_dim], dim=-1)  # (B, H, T, nope), (B, H, T, v)

        q = torch.cat((q_nope, q_rope), dim=-1)  # (B, H, T, nope + rope)
        k = torch.cat((k_nope, k_rope.expand(B, H, T, rope)), dim=-1)  # the RoPE key is shared
        # scaled by 1 / sqrt(nope + rope), the width of q and k
        y = scaled_dot_product_attention(q, k, v, causal_mask(T, x.device))  # (B, H, T, v)
        return self.o_proj(y.transpose(1, 2).reshape(B, T, H * self.v_head_dim))


class LatentKVCache:
    """What one MLA layer caches per token: the normalised latent and the rotated RoPE key.

    ``kv_lora_rank + qk_rope_head_dim`` numbers per token and layer (576 in DeepSeek-V3),
    whatever the number of heads; keys and values are never stored.

    Attributes:
        latent: ``(B, S, kv_lora_rank)`` or None before the first call.
        k_rope: ``(B, S, qk_rope_head_dim)``, after RoPE, or None.
        pos: tokens seen so far, i.e. the position of the next token.
    """

    def __init__(self) -> None:
        self.latent: Tensor | None = None
        self.k_rope: Tensor | None = None
        self.pos = 0

    def update(self, latent: Tensor, k_rope: Tensor) -> tuple[Tensor, Tensor]:
        """Append ``(B, T, r)`` latents and ``(B, T, rope)`` keys; return all of them."""
        self.pos += latent.size(1)
        if self.latent is not None:
            latent = torch.cat((self.latent, latent), dim=1)  # (B, S, r)
            k_rope = torch.cat((self.k_rope, k_rope), dim=1)  # (B, S, rope)
        self.latent, self.k_rope = latent, k_rope
        return latent, k_rope


def _queries(attn: nn.Module, x: Tensor, n_heads: int) -> Tensor:
    """``(B, T, dim)`` -> ``(B, H, T, nope + rope)``: through ``q_proj``, or the compressed
    path ``q_a_proj``, ``q_a_layernorm``, ``q_b_proj``."""
    B, T, _ = x.shape
    if getattr(attn, "q_a_proj", None) is None:
        q = attn.q_proj(x)
    else:
        q = attn.q_b_proj(attn.q_a_layernorm(attn.q_a_proj(x)))
    return q.view(B, T, n_heads, -1).transpose(1, 2)


def decode_from_latents(attn: nn.Module, x: Tensor, cache: LatentKVCache, n_heads: int,
                        qk_nope_head_dim: int, qk_rope_head_dim: int,
                        rope_theta: float = ROPE_THETA) -> Tensor:
    """MLA on new tokens ``x`` that attend to themselves and to a :class:`LatentKVCache`, in
    the absorbed form; works on any module with the contract's submodule names.

    The score of head ``h`` against token ``j``, ``q_nope_h . (W_UK_h c_j)``, is computed as
    ``(W_UK_h^T q_nope_h) . c_j``, and the values ``W_UV_h c_j`` are mixed as latents first and
    expanded once, after the softmax (``W_UK_h``, ``W_UV_h``: the key and value rows of head
    ``h`` in ``kv_b_proj``). No per-head key or value is built for the cached tokens. The
    result equals the training form's.

    Shapes:
        ``x``: ``(B, T, dim)`` -> ``(B, T, dim)``; token ``t`` is at position
        ``cache.pos + t``; the cache is updated in place.
    """
    B, T, _ = x.shape
    H, nope, rope = n_heads, qk_nope_head_dim, qk_rope_head_dim
    r = attn.kv_b_proj.in_features
    v_dim = attn.kv_b_proj.out_features // H - nope
    positions = torch.arange(cache.pos, cache.pos + T, device=x.device)

    q_nope, q_rope = _queries(attn, x, H).split([nope, rope], dim=-1)  # (B, H, T, .)
    q_rope = rope_interleaved(q_rope, positions, rope_theta)
    latent, k_rope = attn.kv_a_proj_with_mqa(x).split([r, rope], dim=-1)
    latent = attn.kv_a_layernorm(latent)  # (B, T, r)
    k_rope = rope_interleaved(k_rope[:, None], positions, rope_theta)[:, 0]  # (B, T, rope)
    latent, k_rope = cache.update(latent, k_rope)  # (B, S, r), (B, S, rope): all tokens so far

    kv_b = attn.kv_b_proj.weight.view(H, nope + v_dim, r)
    w_uk, w_uv = kv_b[:, :nope], kv_b[:, nope:]  # (H, nope, r), (H, v, r)
    q_latent = torch.einsum("bhtn,hnr->bhtr", q_nope, w_uk)  # the query in latent space
    scores = q_latent @ latent[:, None].transpose(-2, -1)  # (B, H, T, S)
    scores = scores + q_rope @ k_rope[:, None].transpose(-2, -1)
    scores = scores / math.sqrt(nope + rope)
    key_positions = torch.arange(latent.size(1), device=x.device)
    scores = scores.masked_fill(key_positions[None, :] > positions[:, None], float("-inf"))
    mixed = torch.softmax(scores, dim=-1) @ latent[:, None]  # (B, H, T, r): mixed latents
    y = torch.einsum("bhtr,hvr->bthv", mixed, w_uv)  # (B, T, H, v)
    return attn.o_proj(y.reshape(B, T, H * v_dim))


def absorbed_projections(attn: nn.Module, n_heads: int, qk_nope_head_dim: int) -> tuple[
        Tensor, Tensor]:
    """``kv_b_proj`` folded into the projections around it, once, as whole matrices.

    Returns ``w_q`` ``(H, kv_lora_rank, q_in)``: ``W_UK_h^T`` times head ``h``'s nope rows of
    ``q_b_proj`` (or ``q_proj``), mapping the (compressed) input straight to a query in latent
    space; and ``w_o`` ``(dim, H, kv_lora_rank)``: ``o_proj``'s columns of head ``h`` times
    ``W_UV_h``, mapping mixed latents straight to the output. Exact, but larger than the
    factors when ``kv_lora_rank`` exceeds the head sizes, which is why DeepSeek's inference
    code applies ``W_UK`` and ``W_UV`` at run time instead (:func:`decode_from_latents`).
    """
    H, nope = n_heads, qk_nope_head_dim
    r = attn.kv_b_proj.in_features
    kv_b = attn.kv_b_proj.weight.view(H, -1, r)
    w_uk, w_uv = kv_b[:, :nope], kv_b[:, nope:]  # (H, nope, r), (H, v, r)
    q_out = attn.q_proj if getattr(attn, "q_a_proj", None) is None else attn.q_b_proj
    q_nope_rows = q_out.weight.view(H, -1, q_out.in_features)[:, :nope]  # (H, nope, q_in)
    w_q = torch.einsum("hnr,hni->hri", w_uk, q_nope_rows)
    w_o = torch.einsum("dhv,hvr->dhr", attn.o_proj.weight.view(-1, H, w_uv.size(1)), w_uv)
    return w_q, w_o


class CachedLatentAttention(MultiHeadLatentAttention):
    """:class:`MultiHeadLatentAttention` that can decode from a :class:`LatentKVCache`.

    Without a cache it is the training form; with one, the absorbed form of
    :func:`decode_from_latents` (the same outputs).

    State dict: as :class:`MultiHeadLatentAttention`.

    Shapes:
        ``x``: ``(B, T, dim)`` -> ``(B, T, dim)``; with a cache, token ``t`` is at position
        ``cache.pos + t`` and the cache is updated in place.
    """

    def forward(self, x: Tensor, cache: LatentKVCache | None = None) -> Tensor:
        if cache is None:
            return super().forward(x)
        return decode_from_latents(self, x, cache, self.n_heads, self.qk_nope_head_dim,
                                   self.qk_rope_head_dim, self.rope_theta)

    def new_cache(self) -> LatentKVCache:
        return LatentKVCache()


def latent_cache_bytes(n_layers: int, kv_lora_rank: int, qk_rope_head_dim: int, seq_len: int,
                       batch_size: int = 1, bytes_per_elem: int = 2) -> int:
    """Memory of an MLA cache: ``n_layers * (kv_lora_rank + qk_rope_head_dim)`` numbers per
    token, for ``seq_len`` tokens of ``batch_size`` sequences (compare week 5's
    :func:`~solutions.efficient_attention.kv_cache_bytes`, which stores keys and values)."""
    return n_layers * (kv_lora_rank + qk_rope_head_dim) * seq_len * batch_size * bytes_per_elem
