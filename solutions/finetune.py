"""Week 10: after pretraining. Supervised fine-tuning, LoRA and DPO.

Three losses and one layer turn a pretrained language model into an assistant:

- :func:`sequence_logprobs` scores a response: the sum of its tokens' log-probabilities;
- :func:`sft_loss` is next-token cross-entropy on the response only (the prompt is masked);
- :class:`LoRALinear` and :func:`add_lora` train a low-rank update ``B @ A`` next to each
  frozen weight instead of the weight itself (Hu et al., 2021), as PEFT does;
- :func:`dpo_loss` learns from pairs of a preferred and a dispreferred response without a
  reward model (Rafailov et al., 2023), valued as TRL's ``DPOTrainer`` (``loss_type="sigmoid"``).

The logits passed to the losses are already **aligned** with the labels: ``logits[:, t]``
scores ``labels[:, t]``. For a causal LM that means the caller has already shifted by one,
``logits = model(ids)[0][:, :-1]`` against ``labels = ids[:, 1:]``.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn


def sequence_logprobs(logits: Tensor, labels: Tensor, mask: Tensor) -> Tensor:
    """The log-probability of each sequence's masked tokens: ``sum_t mask * log p(labels_t)``.

    Args:
        logits: ``(B, T, V)``, aligned with ``labels`` (position ``t`` scores ``labels[:, t]``).
        labels: ``(B, T)`` token ids (valid ids everywhere, padding included).
        mask: ``(B, T)`` bool, True on the tokens that count (usually the response).

    Returns:
        ``(B,)``: one summed log-probability per sequence (0 where the mask is all False),
        float32 for half-precision logits, else the logits' dtype.
    """
    # a log-softmax over the vocabulary in bfloat16 loses most of its digits: upcast half
    # precision to float32 (float32 and float64 stay as they are)
    logits = logits.to(torch.promote_types(logits.dtype, torch.float32))
    logprobs = F.log_softmax(logits, dim=-1)  # (B, T, V)
    token_logprobs = logprobs.gather(-1, labels.unsqueeze(-1)).squeeze(-1)  # (B, T)
    return token_logprobs.masked_fill(~mask, 0.0).sum(dim=-1)  # (B,)


def sft_loss(logits: Tensor, labels: Tensor, loss_mask: Tensor) -> Tensor:
    """Supervised fine-tuning loss: the mean cross-entropy over every position where
    ``loss_mask`` is True, across the whole batch (prompt and padding positions excluded).

    Every counted token weighs the same, so a long answer counts more than a short one (the
    convention of transformers and TRL); averaging per sequence first would not. The loss is
    minus the summed response log-probabilities over the number of response tokens.

    Args:
        logits: ``(B, T, V)``, aligned with ``labels``.
        labels: ``(B, T)`` token ids.
        loss_mask: ``(B, T)`` bool, True on the response tokens to learn.

    Returns:
        a 0-dimensional tensor.
    """
    return -sequence_logprobs(logits, labels, loss_mask).sum() / loss_mask.sum()


def dpo_loss(
    policy_chosen_logps: Tensor,
    policy_rejected_logps: Tensor,
    ref_chosen_logps: Tensor,
    ref_rejected_logps: Tensor,
    beta: float = 0.1,
    label_smoothing: float = 0.0,
) -> tuple[Tensor, Tensor, Tensor]:
    """Direct Preference Optimization, the sigmoid loss with conservative label smoothing.

    With ``h = (log pi(y_w) - log pi(y_l)) - (log ref(y_w) - log ref(y_l))`` for the chosen
    response ``y_w`` and the rejected ``y_l``,

        ``loss = -(1 - eps) * log sigmoid(beta * h) - eps * log sigmoid(-beta * h)``,

    the logistic loss of a Bradley-Terry model whose reward is the implicit
    ``r(y) = beta * (log pi(y) - log ref(y))``. ``eps = label_smoothing`` is the assumed
    chance that a pair's label is flipped (cDPO); 0 gives the loss of Rafailov et al.

    Args:
        policy_chosen_logps, policy_rejected_logps: ``(B,)`` summed response log-probs under
            the model being trained (:func:`sequence_logprobs`).
        ref_chosen_logps, ref_rejected_logps: ``(B,)`` the same under the frozen reference.
        beta: strength of the pull toward the reference (larger: stay closer).
        label_smoothing: ``eps`` in ``[0, 0.5)``.

    Returns:
        ``(losses, chosen_rewards, rejected_rewards)``, each ``(B,)``; the rewards are
        ``beta * (policy - reference)`` per response, detached (for logging, as TRL does).
    """
    policy_logratios = policy_chosen_logps - policy_rejected_logps  # (B,)
    ref_logratios = ref_chosen_logps - ref_rejected_logps  # (B,)
    h = policy_logratios - ref_logratios  # (B,)
    # logsigmoid, not log(sigmoid(.)): sigmoid underflows to 0 for very negative inputs
    losses = (-F.logsigmoid(beta * h) * (1 - label_smoothing)
              - F.logsigmoid(-beta * h) * label_smoothing)
    chosen_rewards = beta * (policy_chosen_logps - ref_chosen_logps).detach()
    rejected_rewards = beta * (policy_rejected_logps - ref_rejected_logps).detach()
    return losses, chosen_rewards, rejected_rewards


class LoRALinear(nn.Module):
    """A frozen ``nn.Linear`` plus a trainable low-rank update (LoRA, Hu et al. 2021).

    ``y = base(x) + scaling * lora_B(lora_A(dropout(x)))`` with ``scaling = alpha / r``.
    ``lora_A`` starts as ``nn.Linear`` does (Kaiming-uniform with ``a = sqrt(5)``, i.e.
    uniform in ``+-1/sqrt(in_features)``) and ``lora_B`` at zero, so at step 0 the layer
    equals ``base`` exactly while the gradient still reaches ``lora_B`` (PEFT's default).

    Args:
        base: the layer to adapt; its parameters are frozen (``requires_grad=False``).
        r: rank of the update.
        alpha: the update is scaled by ``alpha / r``.
        dropout: dropout probability on the input of the LoRA path only.

    State dict:
        ``base.weight`` ``(out, in)`` (and ``base.bias`` ``(out,)`` if the base has one),
        ``lora_A.weight`` ``(r, in)``, ``lora_B.weight`` ``(out, r)``.

    Shapes:
        ``x``: ``(..., in)`` -> ``(..., out)``.
    """

    def __init__(self, base: nn.Linear, r: int, alpha: float, dropout: float = 0.0) -> None:
        super().__init__()
        self.base = base
        self.base.requires_grad_(False)
        self.lora_A = nn.Linear(base.in_features, r, bias=False)
        self.lora_B = nn.Linear(r, base.out_features, bias=False)
        self.scaling = alpha / r
        self.dropout = nn.Dropout(dropout)
        nn.init.kaiming_uniform_(self.lora_A.weight, a=math.sqrt(5))  # what nn.Linear does
        nn.init.zeros_(self.lora_B.weight)
        self.to(base.weight.device, base.weight.dtype)

    def forward(self, x: Tensor) -> Tensor:
        update = self.lora_B(self.lora_A(self.dropout(x)))  # (..., out), rank r
        return self.base(x) + self.scaling * update

    @torch.no_grad()
    def merge(self) -> nn.Linear:
        """A plain ``nn.Linear`` with ``W + scaling * B @ A`` and the base's bias: the same
        outputs (up to rounding), with no extra cost at inference. ``self`` is unchanged."""
        base = self.base
        merged = nn.Linear(base.in_features, base.out_features, bias=base.bias is not None,
                           device=base.weight.device, dtype=base.weight.dtype)
        delta = self.lora_B.weight @ self.lora_A.weight  # (out, r) @ (r, in) -> (out, in)
        merged.weight.copy_(base.weight + self.scaling * delta)
        if base.bias is not None:
            merged.bias.copy_(base.bias)
        return merged


def add_lora(model: nn.Module, r: int, alpha: float,
             targets: tuple[str, ...] = ("q_proj", "v_proj")) -> int:
    """Wrap every ``nn.Linear`` whose attribute name is in ``targets`` in a
    :class:`LoRALinear`, freeze every other parameter, and return the number of trainable
    parameters (``r * (in + out)`` per wrapped layer).

    The default targets are the query and value projections, the choice of the LoRA paper.
    ``model`` is changed in place; its outputs are unchanged until the adapters train.
    """
    model.requires_grad_(False)
    # collect first: replacing modules while iterating over named_modules() is unsafe
    found = [(parent, name, child) for parent in model.modules()
             for name, child in parent.named_children()
             if name in targets and isinstance(child, nn.Linear)]
    for parent, name, child in found:
        setattr(parent, name, LoRALinear(child, r, alpha))
    return sum(p.numel() for p in model.parameters() if p.requires_grad)
