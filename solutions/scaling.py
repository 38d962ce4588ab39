"""Week 8: scale. Exact parameter counts, training FLOPs, and the Chinchilla scaling law.

``count_parameters`` works from the config alone (no model is built), so it can size a 70B
model on a laptop; a test checks it against ``numel()`` of every preset built on the meta
device. ``chinchilla_loss`` is the parametric fit of Hoffmann et al. (2022, "Training
Compute-Optimal Large Language Models", approach 3), and ``compute_optimal`` minimises it
under a compute budget ``C = 6 N D``. The fit's constants are default arguments, so each
function stands alone (the notebook's answer cells are these functions) and another fit can
be passed in.
"""

from dataclasses import replace

from solutions.model import GPTConfig


def count_parameters(config: GPTConfig, active: bool = False) -> int:
    """Parameters of ``MiniGPT(config)``; with ``active``, only ``top_k`` experts per layer.

    Equals ``sum(p.numel() for p in MiniGPT(config).parameters())`` (tied embeddings counted
    once) when ``active`` is False.
    """
    c = config
    d, hd = c.dim, c.dim // c.n_heads
    q, kv = c.n_heads * hd, c.n_kv_heads * hd
    attention = d * q + 2 * d * kv + q * d + (q + 2 * kv + d if c.bias else 0)
    if c.kv_lora_rank:  # week 9: DeepSeek's latent attention (q and kv bottlenecks, 2 norms)
        H, nope, rope, r = c.n_heads, c.qk_nope_head_dim, c.qk_rope_head_dim, c.kv_lora_rank
        queries = d * H * (nope + rope) if c.q_lora_rank is None else \
            c.q_lora_rank * (d + 1 + H * (nope + rope))
        attention = queries + d * (r + rope) + r + r * H * (nope + c.v_head_dim) + \
            H * c.v_head_dim * d
    norm = d * (2 if c.norm == "layernorm" and c.bias else 1)
    if c.mlp == "swiglu":
        mlp = 3 * d * c.hidden_dim
    else:
        mlp = 2 * d * c.hidden_dim + (c.hidden_dim + d if c.bias else 0)
    layers = c.n_layers * (attention + mlp + 2 * norm)
    if c.n_experts:  # the MoE layers hold a router and experts instead of the dense MLP
        width = c.hidden_dim if c.moe == "mixtral" else c.expert_hidden_dim
        experts = (c.top_k if active else c.n_experts) + c.n_shared_experts
        moe = d * c.n_experts + experts * 3 * d * width
        layers += sum(c.is_moe_layer(i) for i in range(c.n_layers)) * (moe - mlp)
    embeddings = c.vocab_size * d + (c.max_seq_len * d if c.pos == "learned" else 0)
    head = 0 if c.tie_embeddings else c.vocab_size * d
    return embeddings + layers + norm + head


def parameter_breakdown(config: GPTConfig, active: bool = False) -> dict[str, int]:
    """``count_parameters`` split by component: embeddings (with a learned position table),
    attention, MLP (router included), norms, and the output head (0 when tied).

    Each part is what ``count_parameters`` loses when that part is taken out of the config
    (no layers, no vocabulary, a tied head, an MLP of width 0), so the arithmetic of the
    count is written once, in ``count_parameters``.
    """
    c = config

    def count(**change) -> int:
        return count_parameters(replace(c, **change), active)

    total = count()
    norm = count(n_layers=0, vocab_size=0, pos="rope", tie_embeddings=True)  # the final norm
    head = total - count(tie_embeddings=True)
    embeddings = count(n_layers=0, tie_embeddings=True) - norm
    mlp = total - count(n_experts=0, mlp="swiglu", hidden_dim=0)  # a width-0 SwiGLU: nothing
    norms = (2 * c.n_layers + 1) * norm
    attention = total - embeddings - mlp - norms - head
    return {"embeddings": embeddings, "attention": attention, "mlp": mlp, "norms": norms,
            "head": head}


def training_flops(N: float, D: float, n_layers: int = 0, dim: int = 0,
                   context: int = 0) -> float:
    """About ``6 N D`` FLOPs to train ``N`` parameters on ``D`` tokens (Kaplan et al., 2020).

    Forward: 2 FLOPs (a multiply and an add) per parameter per token; backward: twice that.
    With ``n_layers``, ``dim`` and ``context``, add the attention scores and their weighted
    sum, ``12 * n_layers * dim * context`` per token (PaLM's count, Chowdhery et al. 2022),
    which no parameter accounts for.
    """
    return 6 * N * D + 12 * n_layers * dim * context * D


def chinchilla_loss(N: float, D: float, E: float = 1.69, A: float = 406.4, B: float = 410.7,
                    alpha: float = 0.34, beta: float = 0.28) -> float:
    """Predicted pre-training loss of a model with ``N`` parameters trained on ``D`` tokens.

    Hoffmann et al. (2022), eq. 10: ``L(N, D) = E + A / N^alpha + B / D^beta``. Works
    elementwise on tensors or arrays of ``N`` and ``D`` too.
    """
    return E + A / N**alpha + B / D**beta


def compute_optimal(C: float, A: float = 406.4, B: float = 410.7, alpha: float = 0.34,
                    beta: float = 0.28) -> tuple[float, float]:
    """``(N, D)`` minimising ``chinchilla_loss`` with ``6 * N * D = C`` FLOPs.

    Returns floats. ``E`` plays no part: it shifts the loss, not where its minimum is.
    """
    G = (alpha * A / (beta * B)) ** (1 / (alpha + beta))
    # d/dN [A N^-alpha + B (C / 6N)^-beta] = 0  =>  alpha A N^-alpha = beta B (C / 6N)^-beta
    #   =>  N^(alpha + beta) = (alpha A / (beta B)) (C / 6)^beta
    N = G * (C / 6) ** (beta / (alpha + beta))
    return N, C / (6 * N)
