"""Week 9: DeepSeekMoE, the mixture of experts of DeepSeek-V3.

Four changes to Mixtral's MoE (week 6):

- **fine-grained experts**: many narrow experts (256 of width 2048) with more of them per
  token (8), so that a token's expert combination can be far more specific;
- **shared experts** that every token passes through, to hold what all tokens need;
- **sigmoid affinities** instead of a softmax: each expert's score is independent of the
  others, and the chosen scores are normalised to sum to one, then scaled;
- **auxiliary-loss-free balancing**: a per-expert bias, added to the scores only to *choose*
  the experts, is nudged after every training step (up for under-loaded experts, down for
  over-loaded ones), so the router is balanced without a loss pulling on its gradients.

**Group-limited routing** bounds communication when experts are spread over devices: the
experts form ``n_group`` groups (DeepSeek-V3: 8 groups, one per node), each token first picks
its ``topk_group`` best groups (4) and then its experts inside those only, so it reaches at
most 4 nodes.
"""

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from solutions.feedforward import SwiGLU


def deepseek_route(
    router_logits: Tensor,
    bias: Tensor,
    top_k: int,
    n_group: int = 1,
    topk_group: int = 1,
    routed_scaling_factor: float = 1.0,
    norm_topk_prob: bool = True,
) -> tuple[Tensor, Tensor]:
    """DeepSeek-V3's routing of ``N`` tokens among ``E`` experts.

    Scores ``s = sigmoid(logits)``. Experts are *chosen* on ``s + bias``: among the
    ``topk_group`` groups (of ``n_group`` equal, contiguous groups) whose two best biased
    scores sum highest, the ``top_k`` best. Their *weights* are the unbiased scores, divided by
    their sum when ``norm_topk_prob``, times ``routed_scaling_factor``.

    Shapes:
        ``router_logits``: ``(N, E)``, ``bias``: ``(E,)`` -> ``weights``: ``(N, top_k)``
        float32, ``experts``: ``(N, top_k)`` int64.
    """
    N, E = router_logits.shape
    scores = router_logits.float().sigmoid()  # (N, E): independent affinities in (0, 1)
    biased = scores + bias.float()  # the bias decides who is chosen, never by how much
    # rate each group by its two best experts, keep the topk_group best groups
    group_scores = biased.view(N, n_group, E // n_group).topk(min(2, E // n_group), dim=-1)
    group_scores = group_scores.values.sum(dim=-1)  # (N, n_group)
    groups = group_scores.topk(topk_group, dim=-1).indices  # (N, topk_group)
    group_mask = torch.zeros_like(group_scores, dtype=torch.bool).scatter(1, groups, True)
    expert_mask = group_mask.repeat_interleave(E // n_group, dim=1)  # (N, E)
    experts = biased.masked_fill(~expert_mask, float("-inf")).topk(top_k, dim=-1).indices
    weights = scores.gather(1, experts)  # (N, k): unbiased scores of the chosen experts
    if norm_topk_prob:
        weights = weights / weights.sum(dim=-1, keepdim=True)
    return weights * routed_scaling_factor, experts


class DeepSeekMoE(nn.Module):
    """DeepSeek-V3's feed-forward block: shared experts plus routed, fine-grained experts.

    ``y = shared_experts(x) + sum over the chosen experts e of weight_e * expert_e(x)``, with
    the routing of :func:`deepseek_route`.

    Args:
        dim: model width.
        expert_hidden_dim: hidden width of each routed expert (``moe_intermediate_size``).
        n_routed_experts: routed experts ``E``.
        n_shared_experts: shared experts, merged into one SwiGLU ``n_shared_experts`` times as
            wide.
        top_k: routed experts per token.
        n_group: groups of experts (must divide ``E``); ``topk_group``: groups a token may use.
        routed_scaling_factor: multiplies the routed experts' weights (2.5 in DeepSeek-V3).
        norm_topk_prob: normalise the chosen scores to sum to one.

    State dict:
        ``gate.weight`` ``(E, dim)``; ``gate.e_score_correction_bias`` ``(E,)``, a buffer (set
        by :func:`update_routing_bias`, not by gradients); ``experts.{e}.gate_proj.weight``,
        ``experts.{e}.up_proj.weight`` ``(expert_hidden_dim, dim)``,
        ``experts.{e}.down_proj.weight`` ``(dim, expert_hidden_dim)``;
        ``shared_experts.{gate,up}_proj.weight`` ``(n_shared * expert_hidden_dim, dim)``,
        ``shared_experts.down_proj.weight`` ``(dim, n_shared * expert_hidden_dim)``.

    Shapes:
        ``x``: ``(B, T, dim)`` -> ``(y, router_logits)``: ``y`` ``(B, T, dim)`` in the dtype
        of ``x``, ``router_logits`` ``(B * T, E)`` in float32.
    """

    def __init__(
        self,
        dim: int,
        expert_hidden_dim: int,
        n_routed_experts: int,
        n_shared_experts: int,
        top_k: int,
        n_group: int = 1,
        topk_group: int = 1,
        routed_scaling_factor: float = 1.0,
        norm_topk_prob: bool = True,
    ) -> None:
        super().__init__()
        assert n_routed_experts % n_group == 0 and topk_group <= n_group
        self.top_k = top_k
        self.n_group, self.topk_group = n_group, topk_group
        self.routed_scaling_factor = routed_scaling_factor
        self.norm_topk_prob = norm_topk_prob
        self.gate = nn.Linear(dim, n_routed_experts, bias=False)
        self.gate.register_buffer("e_score_correction_bias", torch.zeros(n_routed_experts))
        self.experts = nn.ModuleList(
            SwiGLU(dim, expert_hidden_dim) for _ in range(n_routed_experts))
        self.shared_experts = SwiGLU(dim, n_shared_experts * expert_hidden_dim)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        x_flat = x.reshape(-1, x.size(-1))  # (N, dim)
        # routing decisions in float32 (DeepSeek-V3 keeps the router in full precision)
        router_logits = F.linear(x_flat.float(), self.gate.weight.float())  # (N, E)
        weights, chosen = deepseek_route(
            router_logits, self.gate.e_score_correction_bias, self.top_k, self.n_group,
            self.topk_group, self.routed_scaling_factor, self.norm_topk_prob)  # (N, k) each

        routed = torch.zeros_like(x_flat)  # (N, dim)
        for e, expert in enumerate(self.experts):
            token_idx, slot = torch.where(chosen == e)  # (n_e,), (n_e,)
            out = expert(x_flat[token_idx]) * weights[token_idx, slot, None]  # (n_e, dim)
            routed.index_add_(0, token_idx, out.to(routed.dtype))
        y = self.shared_experts(x_flat) + routed  # the shared experts see every token
        return y.view_as(x), router_logits


def expert_load(chosen: Tensor, n_experts: int) -> Tensor:
    """How many (token, slot) picks each expert got: ``(N, k)`` indices -> ``(E,)`` counts."""
    return torch.bincount(chosen.flatten(), minlength=n_experts)


@torch.no_grad()
def update_routing_bias(moe: DeepSeekMoE, load: Tensor, rate: float = 1e-3) -> None:
    """The auxiliary-loss-free balancing rule, applied after each training step.

    Each expert's selection bias moves by ``rate`` (DeepSeek-V3's ``gamma``: 0.001 for most of
    its pre-training) toward balance: up if the expert got fewer picks than the mean over
    experts, down if it got more. Only the choice of experts changes, never their weights,
    and no gradient is involved.

    Args:
        moe: the layer whose ``gate.e_score_correction_bias`` is updated in place.
        load: ``(E,)`` picks per expert over the step (:func:`expert_load`).
        rate: the bias update speed.
    """
    load = load.float()
    moe.gate.e_score_correction_bias += rate * torch.sign(load.mean() - load)
