"""Week 10 submissions for the grader's own tests: known-wrong ones and correct variants.

Each wrong submission is a realistic mistake. The test suite grades each one and asserts it
loses points and, where the grader knows the mistake, that its message names it.
"""

HEADER = """
import copy
import math

import torch
import torch.nn.functional as F
from torch import nn
"""


def logprobs(body: str) -> str:
    return f"{HEADER}\n\ndef sequence_logprobs(logits, labels, mask):\n{body}\n"


def sft(body: str) -> str:
    return f"{HEADER}\n\ndef sft_loss(logits, labels, loss_mask):\n{body}\n"


def dpo(body: str, defaults: str = "beta=0.1, label_smoothing=0.0") -> str:
    return (f"{HEADER}\n\ndef dpo_loss(policy_chosen_logps, policy_rejected_logps, "
            f"ref_chosen_logps, ref_rejected_logps, {defaults}):\n"
            "    pc, pr = policy_chosen_logps, policy_rejected_logps\n"
            "    rc, rr = ref_chosen_logps, ref_rejected_logps\n"
            f"{body}\n")


TOKEN_LOGPROBS = """
    lp = F.log_softmax(logits.float(), dim=-1).gather(-1, labels.unsqueeze(-1)).squeeze(-1)"""
DPO_H = """
    h = (pc - pr) - (rc - rr)"""
DPO_LOSSES = """
    losses = (-F.logsigmoid(beta * h) * (1 - label_smoothing)
              - F.logsigmoid(-beta * h) * label_smoothing)"""
DPO_REWARDS = """
    chosen = beta * (pc - rc).detach()
    rejected = beta * (pr - rr).detach()
    return losses, chosen, rejected"""

# the reference LoRALinear, in pieces a mistake can replace
LORA_INIT = """
    def __init__(self, base, r, alpha, dropout=0.0):
        super().__init__()
        self.base = base
        self.base.requires_grad_(False)
        self.lora_A = nn.Linear(base.in_features, r, bias=False)
        self.lora_B = nn.Linear(r, base.out_features, bias=False)
        self.scaling = alpha / r
        self.dropout = nn.Dropout(dropout)
        nn.init.kaiming_uniform_(self.lora_A.weight, a=math.sqrt(5))
        nn.init.zeros_(self.lora_B.weight)
"""
LORA_FORWARD = """
    def forward(self, x):
        return self.base(x) + self.scaling * self.lora_B(self.lora_A(self.dropout(x)))
"""
LORA_MERGE = """
    @torch.no_grad()
    def merge(self):
        merged = nn.Linear(self.base.in_features, self.base.out_features,
                           bias=self.base.bias is not None)
        merged.weight.copy_(self.base.weight + self.scaling * self.lora_B.weight @ self.lora_A.weight)
        if self.base.bias is not None:
            merged.bias.copy_(self.base.bias)
        return merged
"""


def lora(init: str = LORA_INIT, forward: str = LORA_FORWARD, merge: str = LORA_MERGE) -> str:
    return f"{HEADER}\n\nclass LoRALinear(nn.Module):{init}{forward}{merge}"


ADD_LORA = """
def add_lora(model, r, alpha, targets=("q_proj", "v_proj")):
    for p in model.parameters():
        p.requires_grad_(False)
    found = [(parent, name, child) for parent in model.modules()
             for name, child in parent.named_children()
             if name in targets and isinstance(child, nn.Linear)]
    for parent, name, child in found:
        setattr(parent, name, LoRALinear(child, r, alpha))
    return sum(p.numel() for p in model.parameters() if p.requires_grad)
"""


def add(code: str = ADD_LORA) -> str:
    return lora() + code


# (exercise, code, a phrase the feedback must contain, or None)
WRONG = {
    # sequence_logprobs
    "logprobs_mean_not_sum": ("sequence_logprobs", logprobs(TOKEN_LOGPROBS + """
    return (lp * mask).sum(-1) / mask.sum(-1)"""), "sum them"),
    "logprobs_mask_ignored": ("sequence_logprobs", logprobs(TOKEN_LOGPROBS + """
    return lp.sum(-1)"""), "the mask is ignored"),
    "logprobs_mask_inverted": ("sequence_logprobs", logprobs(TOKEN_LOGPROBS + """
    return (lp * ~mask).sum(-1)"""), "inverted"),
    "logprobs_shifted_again": ("sequence_logprobs", logprobs("""
    lp = F.log_softmax(logits[:, :-1].float(), -1).gather(-1, labels[:, 1:, None])[..., 0]
    return (lp * mask[:, 1:]).sum(-1)"""), "already aligned"),
    "logprobs_raw_logits": ("sequence_logprobs", logprobs("""
    picked = logits.gather(-1, labels.unsqueeze(-1)).squeeze(-1)
    return (picked * mask).sum(-1)"""), "log_softmax over the vocabulary first"),
    "logprobs_log_of_softmax": ("sequence_logprobs", logprobs("""
    lp = torch.log(F.softmax(logits.float(), -1)).gather(-1, labels.unsqueeze(-1)).squeeze(-1)
    return torch.where(mask, lp, torch.zeros_like(lp)).sum(-1)"""), "use log_softmax"),
    "logprobs_softmax_over_positions": ("sequence_logprobs", logprobs("""
    lp = F.log_softmax(logits.float(), dim=1).gather(-1, labels.unsqueeze(-1)).squeeze(-1)
    return (lp * mask).sum(-1)"""), "the last dimension"),
    "logprobs_log_softmax_without_dim": ("sequence_logprobs", logprobs("""
    lp = F.log_softmax(logits.float()).gather(-1, labels.unsqueeze(-1)).squeeze(-1)
    return (lp * mask).sum(-1)"""), "not over the batch"),
    "logprobs_mean_over_the_sequence": ("sequence_logprobs", logprobs(TOKEN_LOGPROBS + """
    return (lp * mask).mean(-1)"""), "divides the sum by its length"),
    "logprobs_summed_over_batch": ("sequence_logprobs", logprobs(TOKEN_LOGPROBS + """
    return (lp * mask).sum()"""), "one log-probability per sequence"),
    "logprobs_probability": ("sequence_logprobs", logprobs(TOKEN_LOGPROBS + """
    return (lp * mask).sum(-1).exp()"""), "not the probability"),
    "logprobs_detached": ("sequence_logprobs", logprobs(TOKEN_LOGPROBS + """
    return (lp * mask).sum(-1).detach()"""), "autograd"),
    "logprobs_in_place": ("sequence_logprobs", logprobs("""
    logits -= logits.logsumexp(-1, keepdim=True)
    lp = logits.gather(-1, labels.unsqueeze(-1)).squeeze(-1)
    return (lp * mask).sum(-1)"""), "in place"),
    # sft_loss
    "sft_mean_per_sequence": ("sft_loss", sft(TOKEN_LOGPROBS + """
    per_seq = -(lp * loss_mask).sum(-1) / loss_mask.sum(-1)
    return per_seq.mean()"""), "average per sequence"),
    "sft_prompt_not_masked": ("sft_loss", sft("""
    return F.cross_entropy(logits.flatten(0, 1).float(), labels.flatten())"""), "not masked"),
    "sft_mask_inverted": ("sft_loss", sft("""
    targets = labels.masked_fill(loss_mask, -100)
    return F.cross_entropy(logits.flatten(0, 1).float(), targets.flatten())"""), "inverted"),
    "sft_sum_not_mean": ("sft_loss", sft(TOKEN_LOGPROBS + """
    return -(lp * loss_mask).sum()"""), "not a sum"),
    "sft_divided_by_all_positions": ("sft_loss", sft(TOKEN_LOGPROBS + """
    return -(lp * loss_mask).sum() / loss_mask.numel()"""), "not by all B * T positions"),
    "sft_shifted_again": ("sft_loss", sft("""
    targets = labels[:, 1:].masked_fill(~loss_mask[:, 1:], -100)
    return F.cross_entropy(logits[:, :-1].flatten(0, 1).float(), targets.flatten())"""),
        "already aligned"),
    "sft_per_sequence_vector": ("sft_loss", sft(TOKEN_LOGPROBS + """
    return -(lp * loss_mask).sum(-1) / loss_mask.sum(-1)"""), "a single number"),
    "sft_item": ("sft_loss", sft(TOKEN_LOGPROBS + """
    return (-(lp * loss_mask).sum() / loss_mask.sum()).item()"""), "tensor"),
    "sft_log_of_softmax": ("sft_loss", sft("""
    p = F.softmax(logits.float(), -1).gather(-1, labels.unsqueeze(-1)).squeeze(-1)
    return -(torch.log(p) * loss_mask).sum() / loss_mask.sum()"""), "log_softmax"),
    # dpo_loss
    "dpo_sign_flipped": ("dpo_loss", dpo(DPO_H + """
    losses = (-F.logsigmoid(-beta * h) * (1 - label_smoothing)
              - F.logsigmoid(beta * h) * label_smoothing)""" + DPO_REWARDS), "sign is flipped"),
    "dpo_reference_swapped": ("dpo_loss", dpo("""
    h = (pc - pr) - (rr - rc)""" + DPO_LOSSES + DPO_REWARDS), "log-probs are swapped"),
    "dpo_no_reference": ("dpo_loss", dpo("""
    h = pc - pr""" + DPO_LOSSES + DPO_REWARDS), "reference model is missing"),
    "dpo_no_beta": ("dpo_loss", dpo(DPO_H + """
    losses = (-F.logsigmoid(h) * (1 - label_smoothing)
              - F.logsigmoid(-h) * label_smoothing)""" + DPO_REWARDS), "beta is missing"),
    "dpo_beta_divides": ("dpo_loss", dpo(DPO_H + """
    losses = (-F.logsigmoid(h / beta) * (1 - label_smoothing)
              - F.logsigmoid(-h / beta) * label_smoothing)""" + DPO_REWARDS), "beta divides"),
    "dpo_smoothing_ignored": ("dpo_loss", dpo(DPO_H + """
    losses = -F.logsigmoid(beta * h)""" + DPO_REWARDS), "label_smoothing is ignored"),
    "dpo_smoothing_sign": ("dpo_loss", dpo(DPO_H + """
    losses = (-F.logsigmoid(beta * h) * (1 - label_smoothing)
              + F.logsigmoid(-beta * h) * label_smoothing)""" + DPO_REWARDS), "wrong sign"),
    "dpo_default_beta_one": ("dpo_loss", dpo(DPO_H + DPO_LOSSES + DPO_REWARDS,
                                             "beta=1.0, label_smoothing=0.0"),
                             "beta's default should be 0.1"),
    "dpo_default_smoothing": ("dpo_loss", dpo(DPO_H + DPO_LOSSES + DPO_REWARDS,
                                              "beta=0.1, label_smoothing=0.1"),
                              "label_smoothing's default should be 0.0"),
    "dpo_mean_loss": ("dpo_loss", dpo(DPO_H + DPO_LOSSES + """
    losses = losses.mean()""" + DPO_REWARDS), "per-pair losses"),
    "dpo_rewards_without_reference": ("dpo_loss", dpo(DPO_H + DPO_LOSSES + """
    return losses, beta * pc.detach(), beta * pr.detach()"""), "against the reference"),
    "dpo_rewards_without_beta": ("dpo_loss", dpo(DPO_H + DPO_LOSSES + """
    return losses, (pc - rc).detach(), (pr - rr).detach()"""), "scaled by beta"),
    "dpo_rewards_swapped": ("dpo_loss", dpo(DPO_H + DPO_LOSSES + """
    return losses, beta * (pr - rr), beta * (pc - rc)"""), "rewards are swapped"),
    "dpo_log_of_sigmoid": ("dpo_loss", dpo(DPO_H + """
    losses = (-torch.log(torch.sigmoid(beta * h)) * (1 - label_smoothing)
              - torch.log(torch.sigmoid(-beta * h)) * label_smoothing)""" + DPO_REWARDS),
        "F.logsigmoid"),
    "dpo_no_grad": ("dpo_loss", dpo("""
    with torch.no_grad():
        h = (pc - pr) - (rc - rr)""" + DPO_LOSSES + DPO_REWARDS), "autograd"),
    # LoRALinear
    "lora_b_random": ("lora_linear", lora(init=LORA_INIT.replace(
        "        nn.init.zeros_(self.lora_B.weight)\n", "")), "lora_B must start at zero"),
    "lora_both_zero": ("lora_linear", lora(init=LORA_INIT.replace(
        "nn.init.kaiming_uniform_(self.lora_A.weight, a=math.sqrt(5))",
        "nn.init.zeros_(self.lora_A.weight)")), "lora_A must start random"),
    "lora_a_gpt2_init": ("lora_linear", lora(init=LORA_INIT.replace(
        "nn.init.kaiming_uniform_(self.lora_A.weight, a=math.sqrt(5))",
        "nn.init.normal_(self.lora_A.weight, std=0.02)")), "Kaiming-uniform"),
    "lora_scaling_r_over_alpha": ("lora_linear", lora(init=LORA_INIT.replace(
        "alpha / r", "r / alpha")), "r / alpha"),
    "lora_scaling_integer_division": ("lora_linear", lora(init=LORA_INIT.replace(
        "alpha / r", "alpha // r")), "integer division"),
    "lora_forward_unscaled": ("lora_linear", lora(forward=LORA_FORWARD.replace(
        "self.scaling * ", "")), "not scaled"),
    "lora_forward_without_the_update": ("lora_linear", lora(forward="""
    def forward(self, x):
        update = self.lora_B(self.lora_A(self.dropout(x)))
        return self.base(x)"""), "the LoRA path is missing"),
    "lora_merge_without_the_base_weight": ("lora_linear", lora(merge=LORA_MERGE.replace(
        "self.base.weight + ", "")), "add the base weight"),
    "lora_merge_forgets_scaling": ("lora_linear", lora(merge=LORA_MERGE.replace(
        "self.scaling * ", "")), "forgets the scaling"),
    "lora_merge_drops_bias": ("lora_linear", lora(merge="""
    @torch.no_grad()
    def merge(self):
        merged = nn.Linear(self.base.in_features, self.base.out_features, bias=False)
        merged.weight.copy_(self.base.weight + self.scaling * self.lora_B.weight @ self.lora_A.weight)
        return merged
"""), "keep the base's bias"),
    "lora_merge_returns_tensor": ("lora_linear", lora(merge="""
    def merge(self):
        return self.base.weight + self.scaling * self.lora_B.weight @ self.lora_A.weight
"""), "plain nn.Linear"),
    "lora_base_not_frozen": ("lora_linear", lora(init=LORA_INIT.replace(
        "        self.base.requires_grad_(False)\n", "")), "must be frozen"),
    "lora_with_biases": ("lora_linear", lora(init=LORA_INIT.replace(
        "bias=False", "bias=True")), "no bias"),
    "lora_dropout_on_output": ("lora_linear", lora(forward="""
    def forward(self, x):
        return self.base(x) + self.dropout(self.scaling * self.lora_B(self.lora_A(x)))
"""), "not to the output"),
    "lora_dropout_on_hidden": ("lora_linear", lora(forward="""
    def forward(self, x):
        return self.base(x) + self.scaling * self.lora_B(self.dropout(self.lora_A(x)))
"""), "not to lora_A's output"),
    "lora_dropout_in_eval_too": ("lora_linear", lora(forward="""
    def forward(self, x):
        dropped = F.dropout(x, self.dropout.p)
        return self.base(x) + self.scaling * self.lora_B(self.lora_A(dropped))
"""), "eval mode"),
    "lora_default_dropout": ("lora_linear", lora(init=LORA_INIT.replace(
        "dropout=0.0", "dropout=0.1")), "dropout=0.0"),
    "lora_base_weight_copied": ("lora_linear", lora(init="""
    def __init__(self, base, r, alpha, dropout=0.0):
        super().__init__()
        self.weight = nn.Parameter(base.weight.detach().clone(), requires_grad=False)
        self.bias = base.bias
        self.lora_A = nn.Linear(base.in_features, r, bias=False)
        self.lora_B = nn.Linear(r, base.out_features, bias=False)
        nn.init.zeros_(self.lora_B.weight)
        self.scaling = alpha / r
        self.dropout = nn.Dropout(dropout)
""", forward="""
    def forward(self, x):
        return F.linear(x, self.weight, self.bias) + self.scaling * self.lora_B(self.lora_A(x))
"""), "submodule `base`"),
    # add_lora
    "add_lora_nothing_frozen": ("add_lora", add(ADD_LORA.replace("""    for p in model.parameters():
        p.requires_grad_(False)
""", "")), "other parameters stay trainable"),
    "add_lora_frozen_after_wrapping": ("add_lora", add("""
def add_lora(model, r, alpha, targets=("q_proj", "v_proj")):
    for parent in list(model.modules()):
        for name, child in list(parent.named_children()):
            if name in targets and isinstance(child, nn.Linear):
                setattr(parent, name, LoRALinear(child, r, alpha))
    model.requires_grad_(False)
    return sum(p.numel() for p in model.parameters() if p.requires_grad)
"""), "frozen too"),
    "add_lora_returns_total": ("add_lora", add(ADD_LORA.replace(
        "return sum(p.numel() for p in model.parameters() if p.requires_grad)",
        "return sum(p.numel() for p in model.parameters() if not p.requires_grad)")),
        "all the parameters"),
    "add_lora_returns_layer_count": ("add_lora", add(ADD_LORA.replace(
        "return sum(p.numel() for p in model.parameters() if p.requires_grad)",
        "return len(found)")), "number of wrapped layers"),
    "add_lora_default_all_attention": ("add_lora", add(ADD_LORA.replace(
        'targets=("q_proj", "v_proj")', 'targets=("q_proj", "k_proj", "v_proj", "o_proj")')),
        "wrong layers are wrapped"),
    "add_lora_top_level_only": ("add_lora", add("""
def add_lora(model, r, alpha, targets=("q_proj", "v_proj")):
    model.requires_grad_(False)
    for name, child in list(model.named_children()):
        if name in targets and isinstance(child, nn.Linear):
            setattr(model, name, LoRALinear(child, r, alpha))
    return sum(p.numel() for p in model.parameters() if p.requires_grad)
"""), "wrong layers are wrapped"),
    "add_lora_returns_tensor": ("add_lora", add(ADD_LORA.replace(
        "return sum(p.numel() for p in model.parameters() if p.requires_grad)",
        "return torch.tensor(sum(p.numel() for p in model.parameters() if p.requires_grad))")),
        "Python int"),
    "add_lora_counts_wrapped_layers_whole": ("add_lora", add(ADD_LORA.replace(
        "return sum(p.numel() for p in model.parameters() if p.requires_grad)",
        "return sum(p.numel() for parent, name, _ in found\n"
        "               for p in getattr(parent, name).parameters())")),
        "trainable parameters after wrapping"),
    "add_lora_wraps_non_linear": ("add_lora", add("""
def add_lora(model, r, alpha, targets=("q_proj", "v_proj")):
    model.requires_grad_(False)
    found = [(parent, name, child) for parent in model.modules()
             for name, child in parent.named_children() if name in targets]
    for parent, name, child in found:
        setattr(parent, name, LoRALinear(child, r, alpha))
    return sum(p.numel() for p in model.parameters() if p.requires_grad)
"""), None),
    "add_lora_new_layers": ("add_lora", add("""
def add_lora(model, r, alpha, targets=("q_proj", "v_proj")):
    model.requires_grad_(False)
    found = [(parent, name, child) for parent in model.modules()
             for name, child in parent.named_children()
             if name in targets and isinstance(child, nn.Linear)]
    for parent, name, child in found:
        fresh = nn.Linear(child.in_features, child.out_features, bias=child.bias is not None)
        setattr(parent, name, LoRALinear(fresh, r, alpha))
    return sum(p.numel() for p in model.parameters() if p.requires_grad)
"""), "keep their weights"),
}

# library shortcuts (keys with "shortcut" must score zero), the mirror images of named
# mistakes, and the defaults
WRONG |= {
    "logprobs_shifted_backwards": ("sequence_logprobs", logprobs("""
    lp = F.log_softmax(logits[:, 1:].float(), -1).gather(-1, labels[:, :-1, None])[..., 0]
    return (lp * mask[:, :-1]).sum(-1)"""), "do not shift them again"),
    "logprobs_trl_selective_log_softmax_shortcut": ("sequence_logprobs", logprobs("""
    from trl.trainer.utils import selective_log_softmax
    return (selective_log_softmax(logits, labels) * mask).sum(-1)"""), "not allowed"),
    "logprobs_trl_get_batch_logps_shortcut": ("sequence_logprobs", logprobs("""
    from trl import DPOTrainer
    padded = torch.cat([labels[:, :1], labels.masked_fill(~mask, -100)], dim=1)
    return DPOTrainer.get_batch_logps(F.pad(logits, (0, 0, 0, 1)), padded)"""), "not allowed"),
    "sft_shifted_backwards": ("sft_loss", sft("""
    targets = labels[:, :-1].masked_fill(~loss_mask[:, :-1], -100)
    return F.cross_entropy(logits[:, 1:].flatten(0, 1).float(), targets.flatten())"""),
        "do not shift them again"),
    "sft_transformers_causal_lm_loss_shortcut": ("sft_loss", sft("""
    from transformers.loss.loss_utils import ForCausalLMLoss
    return ForCausalLMLoss(logits.float(), None, logits.shape[-1],
                           shift_labels=labels.masked_fill(~loss_mask, -100))"""), "not allowed"),
    "dpo_policy_swapped": ("dpo_loss", dpo("""
    h = (pr - pc) - (rc - rr)""" + DPO_LOSSES + DPO_REWARDS), "policy's chosen and rejected"),
    "dpo_trl_trainer_shortcut": ("dpo_loss", dpo("""
    from trl import DPOTrainer
    return DPOTrainer.dpo_loss(None, pc, pr, rc, rr)"""), "not allowed"),
    "dpo_openrlhf_shortcut": ("dpo_loss", dpo("""
    from openrlhf.models.loss import DPOLoss
    loss_fn = DPOLoss(beta, label_smoothing)
    return loss_fn(pc, pr, rc, rr)"""), "not allowed"),
    "lora_init_swapped": ("lora_linear", lora(init=LORA_INIT.replace(
        "nn.init.kaiming_uniform_(self.lora_A.weight, a=math.sqrt(5))",
        "nn.init.kaiming_uniform_(self.lora_B.weight, a=math.sqrt(5))").replace(
        "nn.init.zeros_(self.lora_B.weight)", "nn.init.zeros_(self.lora_A.weight)")),
        "lora_B must start at zero"),
    "lora_peft_shortcut": ("lora_linear", HEADER + """
from peft import LoraConfig, get_peft_model


class LoRALinear(nn.Module):
    def __init__(self, base, r, alpha, dropout=0.0):
        super().__init__()
        self.model = get_peft_model(base, LoraConfig(r=r, lora_alpha=alpha))
""", "not allowed"),
    "lora_loralib_shortcut": ("lora_linear", HEADER + """
import loralib


class LoRALinear(nn.Linear, loralib.LoRALayer):
    def __init__(self, base, r, alpha, dropout=0.0):
        nn.Linear.__init__(self, base.in_features, base.out_features, bias=base.bias is not None)
        loralib.LoRALayer.__init__(self, r=r, lora_alpha=alpha, lora_dropout=dropout,
                                   merge_weights=False)
""", "not allowed"),
    "add_lora_peft_shortcut": ("add_lora", add("""
def add_lora(model, r, alpha, targets=("q_proj", "v_proj")):
    from peft import LoraConfig, inject_adapter_in_model
    inject_adapter_in_model(LoraConfig(r=r, lora_alpha=alpha, target_modules=list(targets)),
                            model)
    return sum(p.numel() for p in model.parameters() if p.requires_grad)
"""), "not allowed"),
    "add_lora_loralib_freezing_shortcut": ("add_lora", add("""
def add_lora(model, r, alpha, targets=("q_proj", "v_proj")):
    from loralib import mark_only_lora_as_trainable
    for parent in list(model.modules()):
        for name, child in list(parent.named_children()):
            if name in targets and isinstance(child, nn.Linear):
                setattr(parent, name, LoRALinear(child, r, alpha))
    mark_only_lora_as_trainable(model)
    return sum(p.numel() for p in model.parameters() if p.requires_grad)
"""), "not allowed"),
}

# (exercise, code): correct however written; each must get full marks
CORRECT = {
    # sequence_logprobs
    "logprobs_cross_entropy": ("sequence_logprobs", logprobs("""
    nll = F.cross_entropy(logits.transpose(1, 2), labels, reduction="none")
    return -(nll * mask).sum(-1)""")),
    "logprobs_one_hot": ("sequence_logprobs", logprobs("""
    lp = (F.log_softmax(logits.float(), -1) * F.one_hot(labels, logits.shape[-1])).sum(-1)
    return torch.where(mask, lp, torch.zeros_like(lp)).sum(-1)""")),
    "logprobs_logsumexp": ("sequence_logprobs", logprobs("""
    picked = logits.gather(-1, labels[..., None])[..., 0].float()
    lp = picked - logits.float().logsumexp(-1)
    return lp.masked_fill(~mask, 0).sum(dim=1)""")),
    "logprobs_loops_float64": ("sequence_logprobs", logprobs("""
    rows = []
    for b in range(logits.shape[0]):
        total = torch.zeros((), dtype=torch.float64)
        for t in range(logits.shape[1]):
            if mask[b, t]:
                total = total + torch.log_softmax(logits[b, t].double(), 0)[labels[b, t]]
        rows.append(total)
    return torch.stack(rows).to(torch.promote_types(logits.dtype, torch.float32))""")),
    # a function of the learner's own that has a library's name is the learner's
    "logprobs_own_selective_log_softmax": ("sequence_logprobs", HEADER + """

def selective_log_softmax(logits, index):
    return F.log_softmax(logits.float(), -1).gather(-1, index[..., None])[..., 0]


def sequence_logprobs(logits, labels, mask):
    return (selective_log_softmax(logits, labels) * mask).sum(-1)
"""),
    # sft_loss
    "sft_cross_entropy_ignore_index": ("sft_loss", sft("""
    targets = labels.masked_fill(~loss_mask, -100)
    return F.cross_entropy(logits.flatten(0, 1), targets.flatten())""")),
    "sft_boolean_indexing": ("sft_loss", sft("""
    return F.cross_entropy(logits[loss_mask].float(), labels[loss_mask])""")),
    "sft_nll_sum_over_count_float64": ("sft_loss", sft("""
    lp = F.log_softmax(logits.double(), dim=-1)
    total = F.nll_loss(lp[loss_mask], labels[loss_mask], reduction="sum")
    return (total / loss_mask.sum()).to(logits.dtype)""")),
    "sft_row_loop": ("sft_loss", sft("""
    total, count = 0.0, 0
    for b in range(logits.shape[0]):
        lp = torch.log_softmax(logits[b], -1)
        picked = lp[torch.arange(lp.shape[0]), labels[b]]
        total = total - picked[loss_mask[b]].sum()
        count += int(loss_mask[b].sum())
    return total / count""")),
    # dpo_loss
    "dpo_softplus": ("dpo_loss", dpo(DPO_H + """
    losses = F.softplus(-beta * h) * (1 - label_smoothing) + F.softplus(beta * h) * label_smoothing
    return losses, beta * (pc - rc), beta * (pr - rr)""")),
    "dpo_bce_with_logits": ("dpo_loss", dpo(DPO_H + """
    target = torch.full_like(h, 1 - label_smoothing)
    losses = F.binary_cross_entropy_with_logits(beta * h, target, reduction="none")""" +
                                            DPO_REWARDS)),
    "dpo_trl_style_float64": ("dpo_loss", dpo("""
    pi_logratios = pc.double() - pr.double()
    ref_logratios = rc.double() - rr.double()
    logits = pi_logratios - ref_logratios
    losses = (-F.logsigmoid(beta * logits) * (1 - label_smoothing)
              - F.logsigmoid(-beta * logits) * label_smoothing).to(pc.dtype)
    chosen_rewards = (beta * (pc.double() - rc.double())).to(pc.dtype).detach()
    rejected_rewards = (beta * (pr.double() - rr.double())).to(pc.dtype).detach()
    return losses, chosen_rewards, rejected_rewards""")),
    "dpo_pair_loop": ("dpo_loss", dpo("""
    losses, chosen, rejected = [], [], []
    for i in range(pc.shape[0]):
        h = (pc[i] - rc[i]) - (pr[i] - rr[i])
        losses.append(-(1 - label_smoothing) * F.logsigmoid(beta * h)
                      - label_smoothing * F.logsigmoid(-beta * h))
        chosen.append(beta * (pc[i] - rc[i]))
        rejected.append(beta * (pr[i] - rr[i]))
    return torch.stack(losses), torch.stack(chosen).detach(), torch.stack(rejected).detach()""")),
    # LoRALinear
    "lora_default_linear_init_functional": ("lora_linear", lora(init="""
    def __init__(self, base, r, alpha, dropout=0.0):
        super().__init__()
        self.base = base
        for p in base.parameters():
            p.requires_grad = False
        self.lora_A = nn.Linear(base.in_features, r, bias=False)  # nn.Linear's own init
        self.lora_B = nn.Linear(r, base.out_features, bias=False)
        with torch.no_grad():
            self.lora_B.weight.zero_()
        self.scaling = alpha / r
        self.p = dropout
""", forward="""
    def forward(self, x):
        h = F.dropout(x, self.p, training=self.training)
        return self.base(x) + self.scaling * F.linear(F.linear(h, self.lora_A.weight),
                                                      self.lora_B.weight)
""")),
    "lora_merged_weight_forward": ("lora_linear", lora(forward="""
    def forward(self, x):
        if self.training and self.dropout.p > 0:
            update = self.lora_B(self.lora_A(self.dropout(x)))
            return self.base(x) + self.scaling * update
        weight = self.base.weight + self.scaling * self.lora_B.weight @ self.lora_A.weight
        return F.linear(x, weight, self.base.bias)
""", merge="""
    def merge(self):
        merged = copy.deepcopy(self.base)
        with torch.no_grad():
            merged.weight += self.scaling * (self.lora_B.weight @ self.lora_A.weight)
        return merged
""")),
    "lora_einsum_float64_in_place_merge": ("lora_linear", lora(forward="""
    def forward(self, x):
        a = torch.einsum("...i,ri->...r", self.dropout(x).double(), self.lora_A.weight.double())
        update = torch.einsum("...r,or->...o", a, self.lora_B.weight.double())
        return self.base(x) + (self.scaling * update).to(x.dtype)
""", merge="""
    @torch.no_grad()
    def merge(self):
        self.base.weight += self.scaling * self.lora_B.weight @ self.lora_A.weight
        return self.base
""")),
    # add_lora
    "add_lora_recursive": ("add_lora", add("""
def add_lora(model, r, alpha, targets=("q_proj", "v_proj")):
    def visit(module):
        for name, child in module.named_children():
            if name in targets and isinstance(child, nn.Linear):
                setattr(module, name, LoRALinear(child, r, alpha))
            else:
                visit(child)
    for p in model.parameters():
        p.requires_grad = False
    visit(model)
    return sum(p.numel() for name, p in model.named_parameters() if p.requires_grad)
""")),
    "add_lora_get_submodule": ("add_lora", add("""
def add_lora(model, r, alpha, targets=("q_proj", "v_proj")):
    model.requires_grad_(False)
    names = [n for n, m in model.named_modules()
             if n.split(".")[-1] in targets and isinstance(m, nn.Linear)]
    for full in names:
        parent_name, _, attr = full.rpartition(".")
        parent = model.get_submodule(parent_name) if parent_name else model
        setattr(parent, attr, LoRALinear(getattr(parent, attr), r, alpha))
    return sum(p.numel() for p in model.parameters() if p.requires_grad)
""")),
    "add_lora_analytic_count": ("add_lora", add("""
def add_lora(model, r, alpha, targets=("q_proj", "v_proj")):
    model.requires_grad_(False)
    count = 0
    for parent in list(model.modules()):
        for name, child in list(parent.named_children()):
            if name in targets and type(child) is nn.Linear:
                setattr(parent, name, LoRALinear(child, r, alpha))
                count += r * (child.in_features + child.out_features)
    return count
""")),
}
