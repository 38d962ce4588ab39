"""Week 4: telling attention where tokens are.

Attention by itself is blind to order. GPT-2 adds a learned (or, in the original transformer,
sinusoidal) vector to each token embedding; LLaMA, Mistral and Mixtral rotate queries and
keys by position-dependent angles (RoPE), so that ``q . k`` depends only on the offset
between the two tokens; ALiBi (BLOOM, MPT) adds a penalty proportional to the distance to
the attention scores instead.
"""

import torch
from torch import Tensor

ROPE_THETA = 10000.0  # RoPE's base (Su et al., 2021), kept by LLaMA 2 and Mistral; Mixtral: 1e6


def sinusoidal_positions(seq_len: int, dim: int, base: float = 10000.0) -> Tensor:
    """The fixed position embeddings of "Attention Is All You Need" (dim must be even).

    ``pe[p, 2i] = sin(p / base^(2i/dim))``, ``pe[p, 2i+1] = cos(p / base^(2i/dim))``.

    Shapes:
        returns ``(seq_len, dim)``, float32, added to the token embeddings.
    """
    inv_freq = base ** (-torch.arange(0, dim, 2, dtype=torch.float32) / dim)  # (dim/2,)
    angles = torch.arange(seq_len, dtype=torch.float32)[:, None] * inv_freq  # (T, dim/2)
    pe = torch.empty(seq_len, dim)
    pe[:, 0::2] = angles.sin()
    pe[:, 1::2] = angles.cos()
    return pe


def rope_angles(positions: Tensor, head_dim: int, theta: float = ROPE_THETA) -> Tensor:
    """RoPE angles ``positions[:, None] * inv_freq``, ``inv_freq[i] = theta^(-2i/head_dim)``.

    Computed in float32 whatever the model dtype, exactly as transformers does (so that weights
    trained with it see the same angles; float64 angles drift by ~1e-4 at position 4096).

    Shapes:
        ``positions``: ``(T,)`` -> ``(T, head_dim / 2)``, float32.
    """
    exponents = torch.arange(0, head_dim, 2, dtype=torch.float32, device=positions.device)
    inv_freq = 1.0 / (theta ** (exponents / head_dim))  # (D/2,): fast dims first, slow last
    return positions.float()[:, None] * inv_freq[None, :]  # (T, D/2)


def rotate_half(x: Tensor) -> Tensor:
    """``(x1, x2) -> (-x2, x1)`` on the two halves of the last dimension."""
    x1, x2 = x.chunk(2, dim=-1)
    return torch.cat((-x2, x1), dim=-1)


def apply_rope(x: Tensor, positions: Tensor, theta: float = ROPE_THETA) -> Tensor:
    """Rotary position embedding, split-halves (rotate-half) convention of LLaMA in transformers.

    Dimension ``p`` is paired with ``p + head_dim/2`` and the pair is rotated by the angle
    ``positions * theta^(-2p/head_dim)``. Apply it to queries and keys (not values).

    Args:
        x: queries or keys, ``(..., seq, head_dim)`` with ``head_dim`` even.
        positions: the position of each of the ``seq`` tokens (usually ``arange(seq)``).
        theta: RoPE base (10000 for LLaMA 2 and Mistral, 1e6 for Mixtral and Code Llama).

    Shapes:
        ``x``: ``(..., T, D)``, ``positions``: ``(T,)`` -> ``(..., T, D)``, same dtype as ``x``.
    """
    angles = rope_angles(positions, x.size(-1), theta)  # (T, D/2)
    angles = torch.cat((angles, angles), dim=-1)  # (T, D): pair p and p + D/2 share an angle
    cos, sin = angles.cos().to(x.dtype), angles.sin().to(x.dtype)
    # per pair (a, b): (a cos - b sin, b cos + a sin), a rotation in the plane of the pair
    return x * cos + rotate_half(x) * sin


def rope_interleaved(x: Tensor, positions: Tensor, theta: float = ROPE_THETA) -> Tensor:
    """RoPE in the interleaved-pairs form of the paper and Meta's original LLaMA code.

    Dimension ``2i`` is paired with ``2i + 1`` (instead of ``i`` with ``i + head_dim/2``), with
    the same angles. It is the same rotation on permuted dimensions:
    ``rope_interleaved(x)[..., perm] == apply_rope(x[..., perm])`` with
    ``perm = interleaved_to_halves(head_dim)``.

    Shapes:
        ``x``: ``(..., T, D)``, ``positions``: ``(T,)`` -> ``(..., T, D)``.
    """
    angles = rope_angles(positions, x.size(-1), theta)  # (T, D/2)
    cos, sin = angles.cos().to(x.dtype), angles.sin().to(x.dtype)
    a, b = x[..., 0::2], x[..., 1::2]  # (..., T, D/2): the even and odd member of each pair
    rotated = torch.stack((a * cos - b * sin, b * cos + a * sin), dim=-1)  # (..., T, D/2, 2)
    return rotated.flatten(-2)  # (..., T, D): pairs back in place


def interleaved_to_halves(head_dim: int) -> Tensor:
    """The permutation ``[0, 2, 4, ..., 1, 3, 5, ...]`` from interleaved pairs to halves.

    Indexing with it moves the first member of every pair to the first half and the second
    member to the second half. Permuting each head's rows of ``q_proj`` and ``k_proj`` by it
    turns a checkpoint trained with interleaved RoPE into one for split-halves RoPE (this is
    what transformers' LLaMA conversion script does); ``q . k`` is unchanged because both
    sides are permuted alike.
    """
    return torch.cat((torch.arange(0, head_dim, 2), torch.arange(1, head_dim, 2)))


def alibi_slopes(n_heads: int) -> Tensor:
    """ALiBi head slopes ``m_h = 2^(-8h/H)`` for ``h = 1..H``: a geometric sequence.

    (For ``H`` not a power of two the paper and BLOOM interleave two such sequences; the course
    uses this formula for every ``H``.)

    Shapes:
        returns ``(H,)``, float32.
    """
    h = torch.arange(1, n_heads + 1, dtype=torch.float32)
    return 2.0 ** (-8.0 * h / n_heads)


def alibi_bias(n_heads: int, seq_len: int) -> Tensor:
    """ALiBi attention bias ``bias[h, i, j] = -m_h * (i - j)`` for ``j <= i``.

    Added to the attention scores before the softmax: the farther back a key, the larger the
    penalty, with a different slope per head. Entries above the diagonal are 0 here and must
    be removed by the causal mask.

    Shapes:
        returns ``(H, T, T)``, float32.
    """
    pos = torch.arange(seq_len)
    distance = (pos[:, None] - pos[None, :]).clamp(min=0)  # (T, T): i - j, 0 above the diagonal
    return -alibi_slopes(n_heads)[:, None, None] * distance  # (H, T, T)
