"""Week 1: causal self-attention, the heart of a decoder-only transformer.

Each token builds a query, a key and a value; it attends to the keys of itself and of the
tokens before it (never after: the model predicts the next token), and mixes their values
with the softmax of the scaled scores. Several heads do this in parallel in smaller
subspaces, and an output projection mixes them back together.
"""

import math

import torch
from torch import Tensor, nn


def causal_mask(seq_len: int, device: torch.device | str | None = None) -> Tensor:
    """Boolean causal mask: ``mask[i, j]`` is True when query ``i`` may attend to key ``j``.

    Key ``j`` is visible to query ``i`` iff ``j <= i`` (lower triangle, diagonal included).

    Args:
        seq_len: number of positions ``T``.
        device: where to build the mask.

    Shapes:
        returns ``(T, T)``, dtype ``torch.bool``.
    """
    return torch.ones(seq_len, seq_len, dtype=torch.bool, device=device).tril()


def scaled_dot_product_attention(
    q: Tensor, k: Tensor, v: Tensor, mask: Tensor | None = None
) -> Tensor:
    """``softmax(q @ k^T / sqrt(head_dim), masked positions = -inf) @ v``, written out.

    Args:
        q: queries.
        k: keys.
        v: values.
        mask: optional boolean mask, True = may attend, broadcastable to ``(..., T_q, T_k)``.
            A query row with no visible key gives NaN (softmax of all -inf).

    Shapes:
        ``q``: ``(..., T_q, D)``, ``k``: ``(..., T_k, D)``, ``v``: ``(..., T_k, D_v)``
        -> ``(..., T_q, D_v)``. Usually ``(B, H, T, D)``.
    """
    # divide by sqrt(D) so the scores keep unit variance and the softmax does not saturate
    scores = q @ k.transpose(-2, -1) / math.sqrt(q.size(-1))  # (..., T_q, T_k)
    if mask is not None:
        scores = scores.masked_fill(~mask, float("-inf"))
    weights = torch.softmax(scores, dim=-1)  # (..., T_q, T_k), each row sums to 1
    return weights @ v  # (..., T_q, D_v)


class MultiHeadAttention(nn.Module):
    """Causal multi-head self-attention (GPT-style, without positional information).

    Args:
        dim: model width; must be divisible by ``n_heads``.
        n_heads: number of attention heads; each works in ``head_dim = dim // n_heads``.

    State dict:
        ``q_proj.weight``, ``k_proj.weight``, ``v_proj.weight``, ``o_proj.weight``:
        each ``(dim, dim)``, no biases.

    Shapes:
        ``x``: ``(B, T, dim)`` -> ``(B, T, dim)``.
    """

    def __init__(self, dim: int, n_heads: int) -> None:
        super().__init__()
        assert dim % n_heads == 0, "dim must be divisible by n_heads"
        self.n_heads = n_heads
        self.head_dim = dim // n_heads
        self.q_proj = nn.Linear(dim, dim, bias=False)
        self.k_proj = nn.Linear(dim, dim, bias=False)
        self.v_proj = nn.Linear(dim, dim, bias=False)
        self.o_proj = nn.Linear(dim, dim, bias=False)

    def forward(self, x: Tensor) -> Tensor:
        B, T, _ = x.shape
        # split the width into heads: (B, T, dim) -> (B, H, T, D)
        q = self.q_proj(x).view(B, T, self.n_heads, self.head_dim).transpose(1, 2)
        k = self.k_proj(x).view(B, T, self.n_heads, self.head_dim).transpose(1, 2)
        v = self.v_proj(x).view(B, T, self.n_heads, self.head_dim).transpose(1, 2)
        y = scaled_dot_product_attention(q, k, v, causal_mask(T, x.device))  # (B, H, T, D)
        y = y.transpose(1, 2).reshape(B, T, -1)  # (B, T, dim): heads side by side again
        return self.o_proj(y)
