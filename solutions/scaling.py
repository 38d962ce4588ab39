"""Week 8: scale. Exact parameter counts, and the Chinchilla scaling law.

``count_parameters`` works from the config alone (no model is built), so it can size a 70B
model on a laptop; a test checks it against ``numel()`` of every preset built on the meta
device. ``chinchilla_loss`` is the parametric fit of Hoffmann et al. (2022, "Training
Compute-Optimal Large Language Models", approach 3), and ``compute_optimal`` minimises it
under a compute budget ``C = 6 N D``.
"""

from solutions.model import GPTConfig

# Hoffmann et al. (2022), eq. 10: L(N, D) = E + A / N^alpha + B / D^beta
E, A, B, ALPHA, BETA = 1.69, 406.4, 410.7, 0.34, 0.28


def count_parameters(config: GPTConfig, active: bool = False) -> int:
    """Parameters of ``MiniGPT(config)``; with ``active``, only ``top_k`` experts per layer.

    Equals ``sum(p.numel() for p in MiniGPT(config).parameters())`` (tied embeddings counted
    once) when ``active`` is False.
    """
    c = config
    d, hd = c.dim, c.dim // c.n_heads
    q, kv = c.n_heads * hd, c.n_kv_heads * hd
    attention = d * q + 2 * d * kv + q * d + (q + 2 * kv + d if c.bias else 0)
    norm = d * (2 if c.norm == "layernorm" and c.bias else 1)
    if c.n_experts:
        experts = c.top_k if active else c.n_experts
        mlp = d * c.n_experts + experts * 3 * d * c.hidden_dim  # router + SwiGLU experts
    elif c.mlp == "swiglu":
        mlp = 3 * d * c.hidden_dim
    else:
        mlp = 2 * d * c.hidden_dim + (c.hidden_dim + d if c.bias else 0)
    layer = attention + mlp + 2 * norm
    embeddings = c.vocab_size * d + (c.max_seq_len * d if c.pos == "learned" else 0)
    head = 0 if c.tie_embeddings else c.vocab_size * d
    return embeddings + c.n_layers * layer + norm + head


def chinchilla_loss(N: float, D: float) -> float:
    """Predicted pre-training loss of a model with ``N`` parameters trained on ``D`` tokens."""
    return E + A / N**ALPHA + B / D**BETA


def compute_optimal(C: float) -> tuple[float, float]:
    """``(N, D)`` minimising ``chinchilla_loss`` with ``6 * N * D = C`` FLOPs.

    Setting the derivative of ``L(N, C / 6N)`` to zero gives
    ``N = G * (C / 6)^(beta / (alpha + beta))``, with
    ``G = (alpha A / (beta B))^(1 / (alpha + beta))``.
    """
    G = (ALPHA * A / (BETA * B)) ** (1 / (ALPHA + BETA))
    N = G * (C / 6) ** (BETA / (ALPHA + BETA))
    return N, C / (6 * N)
