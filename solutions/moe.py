"""Week 6: sparse mixture of experts (the feed-forward block of Mixtral).

The single SwiGLU of a layer is replaced by ``n_experts`` of them and a router. Each token is
sent to its ``top_k`` best-scoring experts only, so the model holds many parameters (Mixtral
8x7B: 46.7B) but each token uses a fraction of them (12.9B active). An auxiliary loss keeps
the router from sending everything to a few experts.
"""

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from solutions.feedforward import SwiGLU


def route(router_logits: Tensor, top_k: int) -> tuple[Tensor, Tensor]:
    """Mixtral's routing: softmax over all experts (float32), keep the top k, renormalise.

    Returns:
        ``weights``: ``(N, top_k)`` float32, each row summing to 1;
        ``experts``: ``(N, top_k)`` int64, the chosen experts, best first.
    """
    probs = F.softmax(router_logits.float(), dim=-1)  # (N, E)
    weights, experts = probs.topk(top_k, dim=-1)  # (N, k)
    # renormalise so the k chosen weights sum to 1 (Mixtral; Switch and DeepSeek differ)
    return weights / weights.sum(dim=-1, keepdim=True), experts


class MoE(nn.Module):
    """Sparse mixture-of-experts feed-forward block with top-k routing (Mixtral).

    ``y = sum over the k chosen experts e of weight_e * expert_e(x)``, each expert a SwiGLU.

    Args:
        dim: model width.
        hidden_dim: hidden width of each expert.
        n_experts: number of experts ``E``.
        top_k: experts used per token.

    State dict:
        ``gate.weight``: ``(n_experts, dim)``, the router;
        ``experts.{e}.gate_proj.weight``, ``experts.{e}.up_proj.weight``: ``(hidden_dim, dim)``;
        ``experts.{e}.down_proj.weight``: ``(dim, hidden_dim)``.

    Shapes:
        ``x``: ``(B, T, dim)`` -> ``(y, router_logits)`` with ``y``: ``(B, T, dim)`` and
        ``router_logits``: ``(B * T, n_experts)`` (for :func:`load_balancing_loss`).
    """

    def __init__(self, dim: int, hidden_dim: int, n_experts: int, top_k: int) -> None:
        super().__init__()
        self.top_k = top_k
        self.gate = nn.Linear(dim, n_experts, bias=False)
        self.experts = nn.ModuleList(SwiGLU(dim, hidden_dim) for _ in range(n_experts))

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        x_flat = x.reshape(-1, x.size(-1))  # (N, dim), N = B * T tokens
        router_logits = self.gate(x_flat)  # (N, E)
        weights, chosen = route(router_logits, self.top_k)  # (N, k), (N, k)

        y = torch.zeros_like(x_flat)  # (N, dim)
        for e, expert in enumerate(self.experts):
            # the (token, slot) pairs routed to expert e: it runs on those tokens only
            token_idx, slot = torch.where(chosen == e)  # (n_e,), (n_e,)
            out = expert(x_flat[token_idx]) * weights[token_idx, slot, None]  # (n_e, dim)
            y.index_add_(0, token_idx, out.to(y.dtype))
        return y.view_as(x), router_logits


def dense_moe_forward(moe: MoE, x: Tensor) -> tuple[Tensor, Tensor]:
    """The same result as ``moe(x)``, computed densely: every expert on every token.

    Wasteful (``n_experts / top_k`` times the work) but easy to check: the routing weights are
    scattered into an ``(N, E)`` matrix that is zero for experts a token was not sent to.
    """
    x_flat = x.reshape(-1, x.size(-1))  # (N, dim)
    router_logits = moe.gate(x_flat)  # (N, E)
    weights, chosen = route(router_logits, moe.top_k)  # (N, k)
    dense_weights = torch.zeros_like(router_logits, dtype=weights.dtype)
    dense_weights = dense_weights.scatter(1, chosen, weights)  # (N, E), k non-zeros per row
    outs = torch.stack([expert(x_flat) for expert in moe.experts], dim=1)  # (N, E, dim)
    y = (dense_weights[..., None] * outs).sum(dim=1).to(x.dtype)  # (N, dim)
    return y.view_as(x), router_logits


def load_balancing_loss(router_logits: Tensor, n_experts: int, top_k: int) -> Tensor:
    """Switch-Transformer auxiliary loss, valued as transformers' ``load_balancing_loss_func``.

    ``loss = n_experts * sum_e f_e * P_e`` where ``f_e`` is the fraction of tokens with expert
    ``e`` among their top k (so ``sum_e f_e = top_k``) and ``P_e`` the mean router probability
    of expert ``e``. It is smallest when routing is uniform, where it equals ``top_k``.

    Args:
        router_logits: router outputs of one layer, ``(N, n_experts)`` for ``N`` tokens.
        n_experts: number of experts.
        top_k: experts per token.

    Shapes:
        returns a scalar float32 tensor (differentiable through ``P_e``).
    """
    # softmax in the logits' own dtype, as transformers does (it upcasts only for the means)
    probs = F.softmax(router_logits, dim=-1)  # (N, E)
    _, chosen = probs.topk(top_k, dim=-1)  # (N, k)
    picks = F.one_hot(chosen, n_experts).sum(dim=(0, 1)).float()  # (E,): top-k picks per expert
    tokens_per_expert = picks / router_logits.size(0)  # (E,) f_e
    prob_per_expert = probs.float().mean(dim=0)  # (E,) P_e
    return n_experts * (tokens_per_expert * prob_per_expert).sum()
