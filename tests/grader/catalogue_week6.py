"""Week 6 submissions for the grader's own tests: known-wrong ones and correct variants.

Each wrong submission is a realistic mistake. The test suite grades each one and asserts it
loses points and, where the grader knows the mistake, that its message names it.
"""

HEADER = """
import torch
import torch.nn.functional as F
from torch import nn
"""

SWIGLU = """
class SwiGLU(nn.Module):
    def __init__(self, dim, hidden_dim):
        super().__init__()
        self.gate_proj = nn.Linear(dim, hidden_dim, bias=False)
        self.up_proj = nn.Linear(dim, hidden_dim, bias=False)
        self.down_proj = nn.Linear(hidden_dim, dim, bias=False)

    def forward(self, x):
        return self.down_proj(F.silu(self.gate_proj(x)) * self.up_proj(x))
"""

MOE_INIT = """
    def __init__(self, dim, hidden_dim, n_experts, top_k):
        super().__init__()
        self.top_k = top_k
        self.gate = nn.Linear(dim, n_experts, bias=False)
        self.experts = nn.ModuleList([SwiGLU(dim, hidden_dim) for _ in range(n_experts)])
"""

# the reference's index-dispatch loop, after `weights` (N, k) and `chosen` (N, k) are known
DISPATCH = """
        y = torch.zeros_like(x_flat)
        for e, expert in enumerate(self.experts):
            token_idx, slot = torch.where(chosen == e)
            out = expert(x_flat[token_idx]) * weights[token_idx, slot, None]
            y.index_add_(0, token_idx, out.to(y.dtype))
        return y.view_as(x), logits"""


def moe(forward: str, init: str = MOE_INIT) -> str:
    return f"{HEADER}{SWIGLU}\n\nclass MoE(nn.Module):{init}\n    def forward(self, x):\n{forward}\n"


def routed(routing: str) -> str:
    """A MoE whose forward computes `weights` and `chosen` with ``routing``, then dispatches."""
    return moe("""
        x_flat = x.reshape(-1, x.shape[-1])
        logits = self.gate(x_flat)""" + routing + DISPATCH)


def lbl(body: str) -> str:
    return f"{HEADER}\n\ndef load_balancing_loss(router_logits, n_experts, top_k):\n{body}\n"


LBL_STEPS = """
    probs = F.softmax(router_logits, dim=-1)
    _, chosen = probs.topk(top_k, dim=-1)
    counts = F.one_hot(chosen, n_experts).sum(dim=(0, 1)).float()"""


# (exercise, code, a phrase the feedback must contain, or None)
WRONG = {
    "moe_no_renormalisation": ("moe", routed("""
        probs = F.softmax(logits.float(), dim=-1)
        weights, chosen = probs.topk(self.top_k, dim=-1)"""), "not renormalised"),
    "moe_argmax_regardless_of_top_k": ("moe", routed("""
        probs = F.softmax(logits.float(), dim=-1)
        chosen = probs.argmax(dim=-1, keepdim=True)
        weights = torch.ones_like(chosen, dtype=probs.dtype)"""), "not the argmax"),
    "moe_argmax_times_probability": ("moe", routed("""
        probs = F.softmax(logits.float(), dim=-1)
        weights, chosen = probs.max(dim=-1, keepdim=True)"""), "only one expert per token"),
    "moe_softmax_over_tokens": ("moe", routed("""
        probs = F.softmax(logits.float(), dim=0)
        weights, chosen = probs.topk(self.top_k, dim=-1)
        weights = weights / weights.sum(-1, keepdim=True)"""), "not over the tokens"),
    "moe_no_softmax": ("moe", routed("""
        weights, chosen = logits.float().topk(self.top_k, dim=-1)"""), "softmax"),
    "moe_weights_on_inputs": ("moe", moe("""
        x_flat = x.reshape(-1, x.shape[-1])
        logits = self.gate(x_flat)
        probs = F.softmax(logits.float(), dim=-1)
        weights, chosen = probs.topk(self.top_k, dim=-1)
        weights = weights / weights.sum(-1, keepdim=True)
        y = torch.zeros_like(x_flat)
        for e, expert in enumerate(self.experts):
            token_idx, slot = torch.where(chosen == e)
            scaled = (x_flat[token_idx] * weights[token_idx, slot, None]).to(x.dtype)
            y.index_add_(0, token_idx, expert(scaled))
        return y.view_as(x), logits"""), "not their inputs"),
    "moe_returns_probabilities": ("moe", moe("""
        x_flat = x.reshape(-1, x.shape[-1])
        probs = F.softmax(self.gate(x_flat).float(), dim=-1)
        weights, chosen = probs.topk(self.top_k, dim=-1)
        weights = weights / weights.sum(-1, keepdim=True)
        logits = probs.to(x.dtype)""" + DISPATCH), "raw router logits"),
    "moe_logits_not_flattened": ("moe", moe("""
        x_flat = x.reshape(-1, x.shape[-1])
        logits = self.gate(x_flat)
        weights, chosen = F.softmax(logits.float(), dim=-1).topk(self.top_k, dim=-1)
        weights = weights / weights.sum(-1, keepdim=True)""" + DISPATCH.replace(
        "return y.view_as(x), logits", "return y.view_as(x), logits.view(*x.shape[:-1], -1)")),
        "flattened"),
    "moe_gate_with_bias": ("moe", routed("""
        weights, chosen = F.softmax(logits.float(), dim=-1).topk(self.top_k, dim=-1)
        weights = weights / weights.sum(-1, keepdim=True)""").replace(
        "nn.Linear(dim, n_experts, bias=False)", "nn.Linear(dim, n_experts)"), "bias=False"),
    "moe_router_detached": ("moe", routed("""
        probs = F.softmax(logits.detach().float(), dim=-1)
        weights, chosen = probs.topk(self.top_k, dim=-1)
        weights = weights / weights.sum(-1, keepdim=True)"""), "gate.weight"),
    "moe_experts_misnamed": ("moe", routed("""
        weights, chosen = F.softmax(logits.float(), dim=-1).topk(self.top_k, dim=-1)
        weights = weights / weights.sum(-1, keepdim=True)""").replace(
        "self.experts = nn.ModuleList", "self.ffns = nn.ModuleList").replace(
        "enumerate(self.experts)", "enumerate(self.ffns)"), "state dict keys differ"),
    "moe_float32_output_for_bf16": ("moe", routed("""
        weights, chosen = F.softmax(logits.float(), dim=-1).topk(self.top_k, dim=-1)
        weights = weights / weights.sum(-1, keepdim=True)""").replace(
        "y = torch.zeros_like(x_flat)", "y = torch.zeros_like(x_flat, dtype=torch.float32)"),
        "dtype"),
    "lbl_top1_only": ("load_balancing_loss", lbl("""
    probs = F.softmax(router_logits, dim=-1)
    counts = F.one_hot(probs.argmax(-1), n_experts).sum(0).float()
    return n_experts * (counts / router_logits.shape[0] * probs.float().mean(0)).sum()"""),
        "not only its best expert"),
    "lbl_not_times_n_experts": ("load_balancing_loss", lbl(LBL_STEPS + """
    return (counts / router_logits.shape[0] * probs.float().mean(0)).sum()"""),
        "multiply by n_experts"),
    "lbl_logits_not_probabilities": ("load_balancing_loss", lbl(LBL_STEPS + """
    P = router_logits.float().mean(0)
    return n_experts * (counts / router_logits.shape[0] * P).sum()"""), "apply a softmax"),
    "lbl_mean_over_tokens_and_slots": ("load_balancing_loss", lbl("""
    probs = F.softmax(router_logits, dim=-1)
    _, chosen = probs.topk(top_k, dim=-1)
    f = F.one_hot(chosen, n_experts).float().mean(dim=(0, 1))
    return n_experts * (f * probs.float().mean(0)).sum()"""), "not by N * top_k"),
    "lbl_sum_not_mean": ("load_balancing_loss", lbl(LBL_STEPS + """
    return n_experts * (counts / router_logits.shape[0] * probs.float().sum(0)).sum()"""),
        "not their sum"),
    "lbl_soft_fractions": ("load_balancing_loss", lbl("""
    P = F.softmax(router_logits.float(), dim=-1).mean(0)
    return n_experts * (P * P).sum()"""), "hard top-k picks"),
    "lbl_softmax_over_tokens": ("load_balancing_loss", lbl("""
    probs = F.softmax(router_logits, dim=0)
    _, chosen = probs.topk(top_k, dim=-1)
    counts = F.one_hot(chosen, n_experts).sum(dim=(0, 1)).float()
    return n_experts * (counts / router_logits.shape[0] * probs.float().mean(0)).sum()"""),
        "not over the tokens"),
    "lbl_detached": ("load_balancing_loss", lbl(LBL_STEPS + """
    P = probs.float().mean(0).detach()
    return n_experts * (counts / router_logits.shape[0] * P).sum()"""), "autograd"),
    "lbl_keepdim_shape": ("load_balancing_loss", lbl(LBL_STEPS + """
    P = probs.float().mean(0)
    return n_experts * (counts / router_logits.shape[0] * P).sum(-1, keepdim=True)"""),
        "0-dimensional"),
}

# library shortcuts (keys with "shortcut" must score zero), the mirror images of named
# mistakes, and what a property case says when only its values are wrong
WRONG |= {
    "moe_every_expert_weighted": ("moe", moe("""
        x_flat = x.reshape(-1, x.shape[-1])
        logits = self.gate(x_flat)
        probs = F.softmax(logits.float(), dim=-1)
        outs = torch.stack([expert(x_flat) for expert in self.experts], dim=1)
        return (probs[..., None] * outs).sum(1).to(x.dtype).view_as(x), logits"""),
        "every expert is used"),
    "moe_least_likely_experts": ("moe", routed("""
        probs = F.softmax(logits.float(), dim=-1)
        weights, chosen = probs.topk(self.top_k, dim=-1, largest=False)
        weights = weights / weights.sum(-1, keepdim=True)"""), "LEAST likely"),
    "moe_unweighted_sum": ("moe", routed("""
        probs = F.softmax(logits.float(), dim=-1)
        _, chosen = probs.topk(self.top_k, dim=-1)
        weights = torch.ones(chosen.shape)"""), "without their routing weights"),
    "moe_unnormalised_still_per_token": ("moe", routed("""
        probs = F.softmax(logits.float(), dim=-1)
        weights, chosen = probs.topk(self.top_k, dim=-1)"""),
        "the property holds (shuffling the tokens shuffled the output), but the values are "
        "wrong: the k chosen weights are not renormalised"),
    "moe_mixtral_block_shortcut": ("moe", HEADER + SWIGLU + """
from transformers import MixtralConfig
from transformers.models.mixtral.modeling_mixtral import MixtralSparseMoeBlock


class MoE(nn.Module):""" + MOE_INIT + """
    def forward(self, x):
        config = MixtralConfig(hidden_size=x.shape[-1], num_local_experts=len(self.experts),
                               num_experts_per_tok=self.top_k)
        block = MixtralSparseMoeBlock(config)
        return block(x)
""", "not allowed"),
    "lbl_times_top_k": ("load_balancing_loss", lbl(LBL_STEPS + """
    return top_k * n_experts * (counts / router_logits.shape[0] * F.softmax(
        router_logits.float(), -1).mean(0)).sum()"""), "top_k times too large"),
    "lbl_balanced_routing_not_top_k": ("load_balancing_loss", lbl(LBL_STEPS + """
    f = (counts + 1) / (router_logits.shape[0] + n_experts)  # add-one smoothing
    return n_experts * (f * probs.float().mean(0)).sum()"""),
        "perfectly balanced routing (every expert picked equally often"),
    "lbl_transformers_shortcut": ("load_balancing_loss", HEADER + """
from transformers.models.mixtral.modeling_mixtral import load_balancing_loss_func


def load_balancing_loss(router_logits, n_experts, top_k):
    return load_balancing_loss_func((router_logits,), n_experts, top_k)
""", "not allowed"),
}

# (exercise, code): correct however written; each must get full marks
CORRECT = {
    # only the answer cell (SwiGLU is the notebook's given code): every expert on every token,
    # then the chosen outputs gathered
    "moe_only_the_class_dense_gather": ("moe", HEADER + """

class MoE(nn.Module):""" + MOE_INIT + """
    def forward(self, x):
        h = x.reshape(-1, x.shape[-1])
        logits = self.gate(h)
        top_logits, chosen = logits.float().topk(self.top_k, dim=-1)
        weights = top_logits.softmax(dim=-1)  # (N, k)
        outs = torch.stack([expert(h) for expert in self.experts], dim=1)  # (N, E, dim)
        picked = outs.gather(1, chosen[..., None].expand(-1, -1, h.size(-1)))  # (N, k, dim)
        y = (weights[..., None] * picked.float()).sum(1).to(x.dtype)
        return y.view_as(x), logits
"""),
    # softmax over the k chosen logits equals the renormalised top-k of the full softmax
    "moe_softmax_over_top_k_logits": ("moe", routed("""
        top_logits, chosen = logits.float().topk(self.top_k, dim=-1)
        weights = F.softmax(top_logits, dim=-1)""")),
    "moe_dense_einsum": ("moe", moe("""
        x_flat = x.reshape(-1, x.shape[-1])
        logits = self.gate(x_flat)
        probs = torch.softmax(logits, dim=-1, dtype=torch.float32)
        top, idx = torch.topk(probs, self.top_k, dim=-1)
        routing = torch.zeros_like(probs).scatter(-1, idx, top / top.sum(-1, keepdim=True))
        outs = torch.stack([expert(x_flat) for expert in self.experts], dim=1)
        y = torch.einsum("ne,ned->nd", routing, outs.float())
        return y.to(x.dtype).reshape(x.shape), logits""")),
    "moe_hf_style_hit_experts_only": ("moe", moe("""
        b, t, d = x.shape
        hidden = x.view(-1, d)
        logits = self.gate(hidden)
        weights = F.softmax(logits, dim=1, dtype=torch.float)
        weights, selected = torch.topk(weights, self.top_k, dim=-1)
        weights /= weights.sum(dim=-1, keepdim=True)
        weights = weights.to(hidden.dtype)
        final = torch.zeros((b * t, d), dtype=hidden.dtype)
        mask = F.one_hot(selected, num_classes=len(self.experts)).permute(2, 1, 0)
        hit = torch.greater(mask.sum(dim=(-1, -2)), 0).nonzero()
        for e in hit.flatten().tolist():
            slot, tok = torch.where(mask[e])
            current = self.experts[e](hidden[tok]) * weights[tok, slot, None]
            final.index_add_(0, tok, current.to(hidden.dtype))
        return final.reshape(b, t, d), logits""")),
    "moe_token_loop_float64": ("moe", moe("""
        x_flat = x.reshape(-1, x.shape[-1])
        logits = self.gate(x_flat)
        rows = []
        for i in range(x_flat.shape[0]):
            p = torch.softmax(logits[i].double(), dim=0)
            w, idx = p.topk(self.top_k)
            w = w / w.sum()
            rows.append(sum(w[j] * self.experts[int(idx[j])](x_flat[i]).double()
                            for j in range(self.top_k)))
        return torch.stack(rows).to(x.dtype).view_as(x), logits""")),
    "moe_float64_dense_cast_back": ("moe", moe("""
        xf = x.reshape(-1, x.shape[-1]).double()
        logits = self.gate(x.reshape(-1, x.shape[-1]))
        p = (xf @ self.gate.weight.double().T).softmax(-1)
        top, idx = p.topk(self.top_k, -1)
        routing = torch.zeros_like(p).scatter(1, idx, top / top.sum(-1, keepdim=True))
        outs = []
        for ex in self.experts:
            g = xf @ ex.gate_proj.weight.double().T
            u = xf @ ex.up_proj.weight.double().T
            outs.append((F.silu(g) * u) @ ex.down_proj.weight.double().T)
        y = (routing[..., None] * torch.stack(outs, 1)).sum(1)
        return y.to(x.dtype).view_as(x), logits""")),
    "lbl_transformers_style": ("load_balancing_loss", lbl("""
    routing_weights = torch.nn.functional.softmax(router_logits, dim=-1)
    _, selected_experts = torch.topk(routing_weights, top_k, dim=-1)
    expert_mask = torch.nn.functional.one_hot(selected_experts, n_experts)
    tokens_per_expert = torch.mean(expert_mask.float(), dim=0)
    router_prob_per_expert = torch.mean(routing_weights, dim=0)
    overall_loss = torch.sum(tokens_per_expert * router_prob_per_expert.unsqueeze(0))
    return (overall_loss * n_experts).float()""")),
    "lbl_bincount_float32": ("load_balancing_loss", lbl("""
    probs = router_logits.float().softmax(-1)
    chosen = probs.topk(top_k, dim=-1).indices.flatten()
    f = torch.bincount(chosen, minlength=n_experts).float() / router_logits.shape[0]
    return n_experts * torch.dot(f, probs.mean(0))""")),
    "lbl_scatter_mask_float64": ("load_balancing_loss", lbl("""
    z = router_logits.double()
    probs = torch.exp(z - torch.logsumexp(z, dim=-1, keepdim=True))
    idx = torch.argsort(probs, dim=-1, descending=True)[:, :top_k]
    mask = torch.zeros_like(probs).scatter(1, idx, 1.0)
    loss = n_experts * (mask.mean(0) * probs.mean(0)).sum()
    return loss.float()""")),
    "lbl_expert_loop": ("load_balancing_loss", lbl("""
    n = router_logits.shape[0]
    probs = F.softmax(router_logits.float(), dim=-1)
    top = probs.topk(top_k, dim=-1).indices
    total = 0.0
    for e in range(n_experts):
        f_e = (top == e).any(dim=-1).float().sum() / n
        total = total + f_e * probs[:, e].mean()
    return n_experts * total""")),
}
