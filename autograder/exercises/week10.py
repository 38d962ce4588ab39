"""Week 10 graders: sequence_logprobs, sft_loss, dpo_loss, LoRALinear and add_lora.

The three losses take and return tensors, so they are plain function calls with hidden inputs.
``LoRALinear`` wraps an ``nn.Linear`` and ``add_lora`` changes a model in place; neither can
travel to the worker as data, so their cases are grader scripts that build the layer or a
small model in the worker and send back plain tensors and flags, judged here.

``add_lora`` is graded with the reference ``LoRALinear`` (the script puts it in place of the
learner's), so a mistake in ``LoRALinear`` is charged once, in its own exercise. A wrapped
layer is recognised by its ``base``, ``lora_A`` and ``lora_B`` attributes, whatever class
the learner's ``add_lora`` uses.

``F.cross_entropy`` and ``F.log_softmax`` are allowed (week 7 taught them): the point of the
losses is what is counted and how it is averaged. Handing the work to TRL, PEFT, loralib or
transformers' ``ForCausalLMLoss`` is not (their ``forbidden`` in autograder/registry.py).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from autograder.compare import Mismatch, describe
from autograder.exercises.common import expect, expect_graph, function_call, randn, script_call
from autograder.grading import Case
from autograder.reference import given_code
from solutions.finetune import LoRALinear, add_lora, dpo_loss, sequence_logprobs, sft_loss


def _floating(actual, expected: Tensor, what: str):
    """``actual`` as a tensor of ``expected``'s dtype, after checking it is a floating tensor
    of the right shape (any floating dtype is accepted: float64 arithmetic is fine)."""
    if type(actual) is not Tensor:
        raise Mismatch(f"your {what} should be a tensor, got {describe(actual)}")
    if actual.shape != expected.shape:
        raise Mismatch(f"your {what} has shape {tuple(actual.shape)}, expected "
                       f"{tuple(expected.shape)}")
    if not actual.is_floating_point():
        raise Mismatch(f"your {what} has dtype {actual.dtype}: it should be a floating tensor")
    return actual.to(expected.dtype)


def _expect_inputs_untouched(result: dict, inputs: list[Tensor]) -> None:
    after = result.get("inputs_after", [])
    for a, b in zip(after, inputs, strict=False):
        if type(a) is not Tensor or a.shape != b.shape or not torch.equal(a, b):
            raise Mismatch("your function changed one of its inputs in place; compute on new "
                           "tensors instead")


# ---------------------------------------------------------------- shared inputs


def _mask(gen: torch.Generator, B: int, T: int, empty_row: bool = False) -> Tensor:
    """A prompt, then a response, then padding, per row; the rows count different numbers of
    response tokens (so averaging per sequence and over the batch differ)."""
    assert T >= B + 2
    counts = (torch.randperm(T - 2, generator=gen)[:B] + 1).tolist()  # distinct, 1..T-2
    mask = torch.zeros(B, T, dtype=torch.bool)
    for b, n in enumerate(counts):
        start = int(torch.randint(1, T - n + 1, (1,), generator=gen))  # >= 1 prompt token
        mask[b, start:start + n] = True
    if empty_row:
        mask[-1] = False
    return mask


def _inputs(gen, B, T, V, dtype=torch.float32, scale=2.0, empty_row=False):
    logits = randn(gen, B, T, V, scale=scale, dtype=dtype)
    labels = torch.randint(V, (B, T), generator=gen)
    return logits, labels, _mask(gen, B, T, empty_row)


def _token_logprobs(logits: Tensor, labels: Tensor) -> Tensor:
    return logits.double().log_softmax(-1).gather(-1, labels[..., None])[..., 0]  # (B, T)


SHIFTED = ("the logits are already aligned with the labels (logits[:, t] scores labels[:, t]):"
           " do not shift them again")


def _shifted_again(logits: Tensor, labels: Tensor, mask: Tensor) -> dict[str, tuple]:
    """Message -> (token log-probs, the mask applied to them) of code that shifts logits that
    are already aligned, either way, with the mask shifted along or not."""
    ahead = _token_logprobs(logits[:, :-1], labels[:, 1:])  # logits[:, t] scoring labels[:, t+1]
    behind = _token_logprobs(logits[:, 1:], labels[:, :-1])  # and the mirror image
    return {SHIFTED: (ahead, mask[:, 1:]),
            SHIFTED + " (nor the mask)": (ahead, mask[:, :-1]),
            SHIFTED + " (in either direction)": (behind, mask[:, :-1]),
            SHIFTED + " (in either direction, nor the mask)": (behind, mask[:, 1:])}


# ---------------------------------------------------------------- sequence_logprobs


def _logprob_mistakes(logits: Tensor, labels: Tensor, mask: Tensor) -> dict[str, Tensor]:
    tok = _token_logprobs(logits, labels)  # (B, T)
    m = mask.double()
    probs = logits.double().softmax(-1).gather(-1, labels[..., None])[..., 0]
    over_time = logits.double().log_softmax(1).gather(-1, labels[..., None])[..., 0]
    over_batch = logits.double().log_softmax(0).gather(-1, labels[..., None])[..., 0]
    mistakes = {
        "you average over the masked tokens: sum them (a sequence's log-probability is the "
        "sum over its tokens)": (tok * m).sum(-1) / m.sum(-1),
        "the mask is ignored: sum only where mask is True (the response), not over the prompt "
        "and the padding": tok.sum(-1),
        "the mask is inverted: sum where mask is True, not where it is False": (tok * (1 - m))
        .sum(-1),
        "take log_softmax over the vocabulary first: raw logits are not log-probabilities":
            (logits.double().gather(-1, labels[..., None])[..., 0] * m).sum(-1),
        "sum the log-probabilities, not the probabilities": (probs * m).sum(-1),
        "return the log-probability (a sum of logs), not the probability": (tok * m).sum(-1)
        .exp(),
        "return the log-probability (negative), not the negative log-likelihood":
            -(tok * m).sum(-1),
        "the log-softmax must run over the vocabulary (the last dimension), not over the "
        "positions": (over_time * m).sum(-1),
        "the log-softmax must run over the vocabulary, dim=-1, not over the batch (without "
        "dim=, F.log_softmax picks dim 0 for a 3-D tensor)": (over_batch * m).sum(-1),
        "sum the masked tokens' log-probabilities: a mean over the sequence divides the sum by "
        "its length T": (tok * m).mean(-1),
    }
    for message, (tok_shifted, m_shifted) in _shifted_again(logits, labels, mask).items():
        mistakes[message] = (tok_shifted * m_shifted).sum(-1)
    return mistakes


def _check_logprobs(result: dict, expected: Tensor, mistakes: dict, **tol) -> None:
    out = result["output"]
    if type(out) is Tensor and out.dim() == 0:
        raise Mismatch(f"return one log-probability per sequence, shape {tuple(expected.shape)}"
                       ", not a total over the batch")
    out = _floating(out, expected, "output")
    if not torch.isfinite(out).all() and torch.isfinite(expected).all():
        raise Mismatch("your output has infinite or NaN values: log(softmax(x)) underflows to "
                       "-inf for unlikely tokens, use log_softmax")
    expect(out, expected, "output", mistakes=mistakes, **tol)


def _logprobs_case(gen, name, B, T, V, dtype=torch.float32, scale=2.0, empty_row=False,
                   grad=False, points=1.0) -> Case:
    logits, labels, mask = _inputs(gen, B, T, V, dtype, scale, empty_row)
    expected = sequence_logprobs(logits, labels, mask)
    mistakes = _logprob_mistakes(logits, labels, mask)
    tol = {"rtol": 2e-2, "atol": 0.1} if dtype == torch.bfloat16 else {}
    grad_output = randn(gen, B) if grad else None
    if grad:
        leaf = logits.clone().requires_grad_(True)
        sequence_logprobs(leaf, labels, mask).backward(grad_output)
        want_grad = leaf.grad

    def check(result: dict) -> None:
        _check_logprobs(result, expected.to(torch.promote_types(dtype, torch.float32)),
                        mistakes, **tol)
        if grad:
            expect_graph(result, "output")
            expect(result["input_grads"][0], want_grad, "gradient with respect to the logits")
        _expect_inputs_untouched(result, [logits, labels, mask])

    call = function_call("sequence_logprobs", [logits, labels, mask], grad_output=grad_output)
    return Case(name, call, check, points)


def sequence_logprobs_cases(gen: torch.Generator) -> list[Case]:
    return [
        _logprobs_case(gen, "float32, (B, T, V) = (3, 9, 13): the masked tokens' summed "
                       "log-probabilities", 3, 9, 13, points=2),
        _logprobs_case(gen, "float64, a longer batch", 4, 12, 20, dtype=torch.float64),
        _logprobs_case(gen, "bfloat16 logits (compare loosely; upcast to float32 is best)", 2,
                       8, 16, dtype=torch.bfloat16),
        _logprobs_case(gen, "a row whose mask is all False scores 0", 3, 7, 9, empty_row=True),
        _logprobs_case(gen, "large logits: no -inf for unlikely labels (use log_softmax)", 2, 6,
                       11, scale=60.0),
        _logprobs_case(gen, "gradient with respect to the logits", 3, 8, 10, grad=True,
                       points=2),
        _logprobs_case(gen, "a single sequence", 1, 5, 7),
    ]


# ---------------------------------------------------------------- sft_loss


def _sft_mistakes(logits: Tensor, labels: Tensor, mask: Tensor) -> dict[str, Tensor]:
    nll = -_token_logprobs(logits, labels)  # (B, T)
    m = mask.double()
    B, T = mask.shape
    mistakes = {
        "you average per sequence and then over the batch: average over all the counted "
        "tokens of the batch at once (every response token weighs the same)":
            ((nll * m).sum(-1) / m.sum(-1)).mean(),
        "the prompt and padding tokens are not masked: average the cross-entropy only where "
        "loss_mask is True": nll.mean(),
        "the mask is inverted: learn where loss_mask is True (the response), not the prompt":
            (nll * (1 - m)).sum() / (1 - m).sum(),
        "divide by the number of counted tokens: the loss is a mean, not a sum":
            (nll * m).sum(),
        "divide by the number of tokens where loss_mask is True, not by all B * T positions":
            (nll * m).sum() / (B * T),
        "divide by the number of counted tokens, not by the batch size": (nll * m).sum() / B,
        "return the cross-entropy (a positive number), the negative mean log-probability":
            -(nll * m).sum() / m.sum(),
    }
    for message, (tok_shifted, m_shifted) in _shifted_again(logits, labels, mask).items():
        mistakes[message] = -(tok_shifted * m_shifted).sum() / m_shifted.sum()
    return mistakes


def _sft_case(gen, name, B, T, V, dtype=torch.float32, scale=2.0, grad=False,
              points=1.0) -> Case:
    logits, labels, mask = _inputs(gen, B, T, V, dtype, scale)
    expected = sft_loss(logits, labels, mask)
    mistakes = _sft_mistakes(logits, labels, mask)
    grad_output = torch.tensor(1.0, dtype=dtype) if grad else None
    if grad:
        leaf = logits.clone().requires_grad_(True)
        sft_loss(leaf, labels, mask).backward()
        want_grad = leaf.grad

    def check(result: dict) -> None:
        out = result["output"]
        if type(out) is Tensor and out.dim() > 0:
            raise Mismatch(f"return a single number (a 0-dimensional tensor), not shape "
                           f"{tuple(out.shape)}: the mean over every counted token of the batch")
        out = _floating(out, expected, "loss")
        if not torch.isfinite(out).all():
            raise Mismatch("your loss is infinite or NaN: log(softmax(x)) underflows for "
                           "unlikely tokens, use log_softmax (or F.cross_entropy)")
        expect(out, expected, "loss", mistakes=mistakes)
        if grad:
            expect_graph(result, "loss")
            expect(result["input_grads"][0], want_grad, "gradient with respect to the logits")
        _expect_inputs_untouched(result, [logits, labels, mask])

    call = function_call("sft_loss", [logits, labels, mask], grad_output=grad_output)
    return Case(name, call, check, points)


def sft_loss_cases(gen: torch.Generator) -> list[Case]:
    return [
        _sft_case(gen, "float32, (B, T, V) = (4, 10, 17): mean cross-entropy over the response "
                  "tokens of the whole batch", 4, 10, 17, points=2),
        _sft_case(gen, "rows with very different response lengths (1 token to many)", 3, 14, 9),
        _sft_case(gen, "float64", 2, 6, 12, dtype=torch.float64),
        _sft_case(gen, "large logits: finite (use log_softmax or F.cross_entropy)", 3, 7, 11,
                  scale=60.0),
        _sft_case(gen, "gradient with respect to the logits", 3, 8, 10, grad=True, points=2),
        _sft_case(gen, "a larger vocabulary", 2, 5, 300),
    ]


# ---------------------------------------------------------------- dpo_loss


def _dpo_reference(pc, pr, rc, rr, beta, ls):
    out = dpo_loss(pc.double(), pr.double(), rc.double(), rr.double(), beta, ls)
    return tuple(t.to(pc.dtype) for t in out)


def _sig_loss(h: Tensor, beta: float, ls: float) -> Tensor:
    return -F.logsigmoid(beta * h) * (1 - ls) - F.logsigmoid(-beta * h) * ls


def _dpo_mistakes(pc, pr, rc, rr, beta: float, ls: float):
    """Wrong values of (losses, chosen_rewards, rejected_rewards), each a dict message ->
    tensor, computed in float64."""
    pc, pr, rc, rr = (t.double() for t in (pc, pr, rc, rr))
    h = (pc - pr) - (rc - rr)
    if ls:
        flipped = ("the sign is flipped: with label smoothing eps the loss is -(1 - eps) * "
                   "log sigmoid(beta * h) - eps * log sigmoid(-beta * h); yours swaps the two "
                   "(or uses -beta)")
    else:
        flipped = ("the sign is flipped: the loss must fall as the policy prefers the chosen "
                   "response more than the reference does, -log sigmoid(beta * h) with h = "
                   "(policy_chosen - policy_rejected) - (ref_chosen - ref_rejected)")
    losses = {
        flipped: _sig_loss(-h, beta, ls),
        "the reference's chosen and rejected log-probs are swapped: h = (policy_chosen - "
        "policy_rejected) - (ref_chosen - ref_rejected)": _sig_loss((pc - pr) - (rr - rc), beta,
                                                                    ls),
        "the policy's chosen and rejected log-probs are swapped: h = (policy_chosen - "
        "policy_rejected) - (ref_chosen - ref_rejected)": _sig_loss((pr - pc) - (rc - rr), beta,
                                                                    ls),
        "the reference model is missing: subtract its log-ratio, ref_chosen - ref_rejected":
            _sig_loss(pc - pr, beta, ls),
        "beta divides h: the loss is -log sigmoid(beta * h), not -log sigmoid(h / beta)":
            _sig_loss(h / beta**2, beta, ls),
    }
    if beta != 1:
        losses["beta is missing: the loss is -log sigmoid(beta * h), not -log sigmoid(h)"] = \
            _sig_loss(h, 1.0, ls)
    if ls:
        losses["label_smoothing is ignored: the conservative loss mixes -log sigmoid(beta * h)"
               " and -log sigmoid(-beta * h) with weights 1 - eps and eps"] = _sig_loss(h, beta,
                                                                                       0.0)
        losses["the smoothing term has the wrong sign: subtract eps * log sigmoid(-beta * h) "
               "(a cross-entropy against the soft label 1 - eps)"] = (
            -F.logsigmoid(beta * h) * (1 - ls) + F.logsigmoid(-beta * h) * ls)
        losses["the smoothing term is missing: add -eps * log sigmoid(-beta * h)"] = (
            -F.logsigmoid(beta * h) * (1 - ls))
    rewards = []
    for pol, ref, other_pol, other_ref in ((pc, rc, pr, rr), (pr, rr, pc, rc)):
        r = {
            "the chosen and rejected rewards are swapped: return (losses, chosen_rewards, "
            "rejected_rewards)": beta * (other_pol - other_ref),
            "the rewards are measured against the reference: beta * (policy_logps - "
            "ref_logps)": beta * pol,
            "the reward is beta * (policy - reference), not reference - policy":
                beta * (ref - pol),
        }
        if beta != 1:
            r["the rewards are scaled by beta: beta * (policy_logps - ref_logps)"] = pol - ref
        rewards.append(r)
    return losses, rewards[0], rewards[1]


def _dpo_inputs(gen, B: int, dtype=torch.float32, equal=False, spread=3.0):
    pc = -(5 + 35 * torch.rand(B, generator=gen))
    pr = -(5 + 35 * torch.rand(B, generator=gen))
    if equal:
        rc, rr = pc.clone(), pr.clone()
    else:
        rc = pc + randn(gen, B, scale=spread)
        rr = pr + randn(gen, B, scale=spread)
    return [t.to(dtype) for t in (pc, pr, rc, rr)]


def _check_dpo(result: dict, expected: tuple, mistakes: tuple, tol: dict) -> None:
    out = result["output"]
    if isinstance(out, Tensor) or not isinstance(out, tuple | list) or len(out) != 3:
        raise Mismatch("dpo_loss should return a tuple (losses, chosen_rewards, "
                       f"rejected_rewards); got {describe(out)}")
    losses, chosen, rejected = out
    if type(losses) is Tensor and losses.dim() == 0:
        raise Mismatch("return the per-pair losses, shape (B,), not their mean (the training "
                       "loop takes the mean)")
    if type(losses) is Tensor and losses.is_floating_point() and not torch.isfinite(
            losses).all() and torch.isfinite(expected[0]).all():
        raise Mismatch("your losses are infinite or NaN: log(sigmoid(x)) underflows for very "
                       "negative x, use F.logsigmoid")
    for got, want, wrong, what in zip((losses, chosen, rejected), expected, mistakes,
                                      ("losses", "chosen_rewards", "rejected_rewards"),
                                      strict=True):
        expect(_floating(got, want, what), want, what, mistakes=wrong, **tol)


def _dpo_case(gen, name, B=6, beta=None, ls=None, positional=False, dtype=torch.float32,
              equal=False, spread=3.0, grad=False, points=1.0, extra_mistakes=None) -> Case:
    inputs = _dpo_inputs(gen, B, dtype, equal, spread)
    b = 0.1 if beta is None else beta
    e = 0.0 if ls is None else ls
    expected = _dpo_reference(*inputs, b, e)
    losses, chosen, rejected = _dpo_mistakes(*inputs, b, e)
    if extra_mistakes:  # first: a wrong default explains the case better
        losses = {**extra_mistakes(inputs), **losses}
    tol = {"rtol": 1e-4, "atol": 5e-5} if dtype == torch.float32 else {}
    args, kwargs = [], {}
    if positional:
        args = [b, e]
    else:
        kwargs = {k: v for k, v in (("beta", beta), ("label_smoothing", ls)) if v is not None}
    grad_output = randn(gen, B, dtype=dtype) if grad else None
    if grad:
        leaves = [t.clone().requires_grad_(True) for t in inputs]
        dpo_loss(*leaves, b, e)[0].backward(grad_output)
        want = [t.grad for t in leaves[:2]]

    def check(result: dict) -> None:
        _check_dpo(result, expected, (losses, chosen, rejected), tol)
        if grad:
            expect_graph(result, "losses")
            for i, what in enumerate(("policy_chosen_logps", "policy_rejected_logps")):
                got = (result.get("input_grads") or [None, None])[i]
                if got is None:
                    raise Mismatch(f"the losses carry no gradient to {what}")
                expect(got, want[i], f"gradient with respect to {what}")
        _expect_inputs_untouched(result, inputs)

    call = function_call("dpo_loss", inputs, args, kwargs, grad_output=grad_output)
    return Case(name, call, check, points)


def _other_defaults(name: str, right: float, values, beta: float = 0.1, ls: float = 0.0):
    """Mistakes of a wrong default for ``name`` ("beta" or "label_smoothing"): the losses
    computed with each of ``values`` in its place."""
    def mistakes(inputs):
        pc, pr, rc, rr = (t.double() for t in inputs)
        h = (pc - pr) - (rc - rr)
        return {f"{name}'s default should be {right}; yours behaves as {name} = {v}":
                _sig_loss(h, v, ls) if name == "beta" else _sig_loss(h, beta, v)
                for v in values}
    return mistakes


def dpo_loss_cases(gen: torch.Generator) -> list[Case]:
    return [
        _dpo_case(gen, "beta = 0.5: per-pair losses and the implicit rewards", beta=0.5,
                  ls=0.0, points=2),
        _dpo_case(gen, "beta = 2, label_smoothing = 0.2 (conservative DPO)", beta=2.0, ls=0.2,
                  points=1.5),
        _dpo_case(gen, "beta left to its default (0.1), label_smoothing = 0.3", ls=0.3,
                  extra_mistakes=_other_defaults("beta", 0.1, (1.0, 0.5, 0.2, 0.05, 0.01),
                                                 ls=0.3)),
        _dpo_case(gen, "label_smoothing left to its default (0.0), beta = 0.3", beta=0.3,
                  extra_mistakes=_other_defaults("label_smoothing", 0.0, (0.1, 0.05, 0.2, 0.5),
                                                 beta=0.3)),
        _dpo_case(gen, "both defaults: dpo_loss(pc, pr, rc, rr)",
                  extra_mistakes=_other_defaults("beta", 0.1, (1.0, 0.5), ls=0.0)),
        _dpo_case(gen, "beta and label_smoothing passed by position (in that order)", beta=0.7,
                  ls=0.1, positional=True),
        _dpo_case(gen, "policy equal to the reference: every loss is log 2, rewards are 0",
                  beta=0.5, ls=0.1, equal=True),
        _dpo_case(gen, "extreme log-ratios stay finite (F.logsigmoid)", beta=1.0, spread=150.0),
        _dpo_case(gen, "float64 log-probabilities", B=5, beta=0.25, ls=0.05,
                  dtype=torch.float64),
        _dpo_case(gen, "gradient with respect to the policy's log-probabilities", beta=0.5,
                  ls=0.1, grad=True, points=2),
        _dpo_case(gen, "a single pair", B=1, beta=0.3),
    ]


# ---------------------------------------------------------------- LoRALinear

LORA_SCRIPT = """
base = nn.Linear(fin, fout, bias=bias)
base.load_state_dict(base_state)
layer = LoRALinear(base, r, alpha, **kwargs)
state = layer.state_dict()
result = {"shapes": {k: list(v.shape) for k, v in state.items()},
          "trainable": {n: p.requires_grad for n, p in layer.named_parameters()}}
scaling = getattr(layer, "scaling", None)
result["scaling"] = float(scaling) if isinstance(scaling, (int, float)) else repr(scaling)
if mode == "init":
    result["A"] = state.get("lora_A.weight")
    result["B"] = state.get("lora_B.weight")
    result["out"] = layer(x)
elif result["shapes"] == {k: list(v.shape) for k, v in lora_state.items()}:
    layer.load_state_dict(lora_state)
    layer.train(train)
    out = layer(x)
    result["out"] = out
    if mode == "grad":
        out.backward(grad_output)
        result["grads"] = {n: p.grad for n, p in layer.named_parameters()}
        result["x_grad"] = x.grad
    elif mode == "twice":
        result["again"] = layer(x)
    elif mode == "merge":
        merged = layer.merge()
        result["is_linear"] = isinstance(merged, nn.Linear)
        result["type"] = type(merged).__name__
        if result["is_linear"]:
            result["weight"] = merged.weight
            result["bias"] = merged.bias
            result["merged_out"] = merged(x)
    elif mode == "dropout":
        result["eval"] = layer.eval()(x)
        with torch.no_grad():
            layer.lora_B.weight.zero_()
        result["zero_b"] = layer.train()(x)
"""


def _lora_state_shapes(fin: int, fout: int, r: int, bias: bool) -> dict[str, tuple[int, ...]]:
    shapes = {"base.weight": (fout, fin), "lora_A.weight": (r, fin), "lora_B.weight": (fout, r)}
    if bias:
        shapes["base.bias"] = (fout,)
    return shapes


def _check_shapes(out: dict, fin: int, fout: int, r: int, bias: bool) -> None:
    want = _lora_state_shapes(fin, fout, r, bias)
    got = {k: tuple(v) for k, v in out["shapes"].items()}
    if got == want:
        return
    missing, extra = sorted(set(want) - set(got)), sorted(set(got) - set(want))
    if missing or extra:
        parts = ([f"missing {', '.join(missing)}"] if missing else []) + (
            [f"unexpected {', '.join(extra)}"] if extra else [])
        hint = ""
        if any(k.startswith("lora_") and k.endswith("bias") for k in extra):
            hint = " (lora_A and lora_B have no bias: bias=False)"
        elif "base.weight" in missing:
            hint = " (keep the wrapped layer as the submodule `base`)"
        raise Mismatch(f"state dict keys differ: {'; '.join(parts)}{hint}")
    for key, shape in want.items():
        if got[key] != shape:
            raise Mismatch(f"`{key}` has shape {got[key]}, expected {shape} (lora_A = "
                           "Linear(in_features, r), lora_B = Linear(r, out_features))")


def _check_trainable(out: dict) -> None:
    flags = out["trainable"]
    if any(flags.get(k) for k in ("base.weight", "base.bias")):
        raise Mismatch("the base layer must be frozen (requires_grad=False): only lora_A and "
                       "lora_B train")
    for k in ("lora_A.weight", "lora_B.weight"):
        if flags.get(k) is not True:
            raise Mismatch(f"`{k}` must be trainable (requires_grad=True)")


def _lora_setup(gen, fin, fout, r, bias, trained=True):
    base_state = {"weight": randn(gen, fout, fin, scale=fin**-0.5)}
    if bias:
        base_state["bias"] = randn(gen, fout, scale=0.5)
    lora_state = {f"base.{k}": v for k, v in base_state.items()}
    lora_state["lora_A.weight"] = randn(gen, r, fin, scale=fin**-0.5)
    lora_state["lora_B.weight"] = randn(gen, fout, r, scale=r**-0.5) if trained else \
        torch.zeros(fout, r)
    return base_state, lora_state


def _reference_layer(fin, fout, r, alpha, bias, lora_state, dropout=0.0):
    base = nn.Linear(fin, fout, bias=bias)
    layer = LoRALinear(base, r, alpha, dropout)
    layer.load_state_dict(lora_state)
    return layer


def _lora_call(mode, fin, fout, r, alpha, bias, base_state, x, lora_state=None, kwargs=None,
               train=False, grad_output=None):
    return script_call(LORA_SCRIPT, mode=mode, fin=fin, fout=fout, r=r, alpha=alpha, bias=bias,
                       base_state=base_state, x=x, lora_state=lora_state or {},
                       kwargs=kwargs or {}, train=train,
                       grad_output=grad_output if grad_output is not None else 0.0)


def _forward_mistakes(x: Tensor, lora_state: dict, r: int, alpha: float) -> dict[str, Tensor]:
    W, A, Bm = (lora_state[k].double() for k in ("base.weight", "lora_A.weight",
                                                 "lora_B.weight"))
    b = lora_state.get("base.bias")
    xd = x.double()
    base = xd @ W.T + (b.double() if b is not None else 0)
    update = xd @ A.T @ Bm.T
    m = {
        "the scaling is r / alpha: it should be alpha / r": base + (r / alpha) * update,
        "the update is not scaled: multiply lora_B(lora_A(x)) by scaling = alpha / r":
            base + update,
        "the scaling is alpha / sqrt(r) (rsLoRA): the contract's LoRA uses alpha / r":
            base + alpha / math.sqrt(r) * update,
        "alpha // r is integer division: scaling = alpha / r": base + (alpha // r) * update,
        "the base layer's output is missing: base(x) + scaling * lora_B(lora_A(x))":
            (alpha / r) * update,
        "the LoRA path is missing: add scaling * lora_B(lora_A(x)) to base(x)": base,
    }
    if b is not None:
        m["the base layer's bias is missing: call base(x) (weight and bias)"] = \
            xd @ W.T + (alpha / r) * update
    return {k: v.float() for k, v in m.items() if not torch.allclose(v, base + alpha / r *
                                                                     update)}


def _lora_init_case(gen) -> Case:
    fin, fout, r, alpha = 128, 24, 16, 32
    base_state, _ = _lora_setup(gen, fin, fout, r, True)
    x = randn(gen, 2, 5, fin)
    base_out = F.linear(x, base_state["weight"], base_state["bias"])
    bound = 1 / math.sqrt(fin)

    def check(result: dict) -> None:
        out = result["output"]
        _check_shapes(out, fin, fout, r, True)
        B, A = out["B"], out["A"]
        if type(B) is not Tensor or B.abs().max() != 0:
            raise Mismatch("lora_B must start at zero, so that the layer equals its base before "
                           "training (yours changes the model at step 0)")
        if type(A) is not Tensor or A.abs().max() == 0:
            raise Mismatch("lora_A must start random: with lora_A = 0 and lora_B = 0 both "
                           "gradients are zero and LoRA never learns")
        std, top = A.double().std().item(), A.abs().max().item()
        # of 2,048 uniform draws, the largest falls short of 0.97 of the bound with odds 1e-27
        if top > bound * (1 + 1e-5) or not 0.45 * bound < std < 0.7 * bound or top < 0.97 * bound:
            raise Mismatch("lora_A should start as nn.Linear's weight does, as PEFT does "
                           f"(Kaiming-uniform, a=sqrt(5): uniform in +-1/sqrt(in_features) = "
                           f"+-{bound:.3f}); yours has std {std:.3g} and largest value "
                           f"{top:.3g}")
        expect(out["out"], base_out, "output at step 0 (it should equal base(x))")

    return Case("initialisation: lora_B zeros, lora_A uniform in +-1/sqrt(in_features) (as "
                "nn.Linear and PEFT), so the layer equals its base at step 0",
                _lora_call("init", fin, fout, r, alpha, True, base_state, x), check, 2)


def _lora_structure_case(gen, fin, fout, r, bias) -> Case:
    base_state, _ = _lora_setup(gen, fin, fout, r, bias)
    x = randn(gen, 3, fin)

    def check(result: dict) -> None:
        out = result["output"]
        _check_shapes(out, fin, fout, r, bias)
        _check_trainable(out)

    what = "with" if bias else "without"
    return Case(f"parameters: base.weight{', base.bias' if bias else ''}, lora_A.weight "
                f"(r, in), lora_B.weight (out, r); only lora_A and lora_B train (a base "
                f"{what} bias)", _lora_call("init", fin, fout, r, 2 * r, bias, base_state, x),
                check)


def _lora_scaling_case(gen) -> Case:
    fin, fout, r, alpha = 10, 6, 3, 8
    base_state, _ = _lora_setup(gen, fin, fout, r, False)

    def check(result: dict) -> None:
        got = result["output"]["scaling"]
        if not isinstance(got, float):
            raise Mismatch(f"`scaling` should be the number alpha / r; got {got}")
        if abs(got - alpha / r) > 1e-9:
            for message, wrong in (("r / alpha: it should be alpha / r", r / alpha),
                                   ("alpha // r, integer division: use alpha / r", alpha // r),
                                   ("alpha / sqrt(r) (rsLoRA): the contract uses alpha / r",
                                    alpha / math.sqrt(r))):
                if abs(got - wrong) < 1e-9:
                    raise Mismatch(f"`scaling` is {message}")
            raise Mismatch(f"`scaling` is {got:.6g}; expected alpha / r = {alpha / r:.6g}")

    return Case("the attribute `scaling` is alpha / r (alpha = 8, r = 3)",
                _lora_call("init", fin, fout, r, alpha, False, base_state, randn(gen, 2, fin)),
                check)


def _lora_forward_case(gen, name, fin, fout, r, alpha, bias, shape, points=1.0) -> Case:
    base_state, lora_state = _lora_setup(gen, fin, fout, r, bias)
    x = randn(gen, *shape, fin)
    ref = _reference_layer(fin, fout, r, alpha, bias, lora_state)
    with torch.no_grad():
        expected = ref(x)
    mistakes = _forward_mistakes(x, lora_state, r, alpha)

    def check(result: dict) -> None:
        out = result["output"]
        _check_shapes(out, fin, fout, r, bias)
        expect(out.get("out"), expected, "output", mistakes=mistakes)

    return Case(name, _lora_call("forward", fin, fout, r, alpha, bias, base_state, x,
                                 lora_state), check, points)


def _lora_grad_case(gen) -> Case:
    fin, fout, r, alpha = 12, 20, 4, 8
    base_state, lora_state = _lora_setup(gen, fin, fout, r, True)
    x = randn(gen, 2, 3, fin)
    grad_output = randn(gen, 2, 3, fout)
    ref = _reference_layer(fin, fout, r, alpha, True, lora_state)
    leaf = x.clone().requires_grad_(True)
    ref(leaf).backward(grad_output)
    script = _lora_call("grad", fin, fout, r, alpha, True, base_state, x.clone(), lora_state,
                        grad_output=grad_output)
    script["source"] = "x.requires_grad_(True)\n" + script["source"]

    def check(result: dict) -> None:
        out = result["output"]
        _check_shapes(out, fin, fout, r, True)
        grads = out["grads"]
        for name in ("base.weight", "base.bias"):
            if grads.get(name) is not None:
                raise Mismatch(f"`{name}` received a gradient: the base layer must be frozen")
        for name in ("lora_A.weight", "lora_B.weight"):
            if grads.get(name) is None:
                raise Mismatch(f"`{name}` received no gradient: is it used in forward?")
            expect(grads[name], dict(ref.named_parameters())[name].grad, f"gradient of `{name}`")
        expect(out["x_grad"], leaf.grad, "gradient with respect to the input")

    return Case("gradients reach lora_A, lora_B and the input, never the frozen base", script,
                check, 1.5)


def _lora_merge_case(gen, name, fin, fout, r, alpha, bias) -> Case:
    base_state, lora_state = _lora_setup(gen, fin, fout, r, bias)
    x = randn(gen, 4, fin)
    ref = _reference_layer(fin, fout, r, alpha, bias, lora_state)
    merged = ref.merge()
    with torch.no_grad():
        unmerged = ref(x)
    W, A, Bm = (lora_state[k] for k in ("base.weight", "lora_A.weight", "lora_B.weight"))
    weight_mistakes = {
        "your merge forgets the scaling: W + (alpha / r) * B @ A": W + Bm @ A,
        "your merge uses r / alpha: W + (alpha / r) * B @ A": W + (r / alpha) * Bm @ A,
        "your merge returns the base weight alone: add (alpha / r) * B @ A": W,
        "your merged weight is (alpha / r) * B @ A alone: add the base weight W to it":
            (alpha / r) * Bm @ A,
    }

    def check(result: dict) -> None:
        out = result["output"]
        _check_shapes(out, fin, fout, r, bias)
        if not out.get("is_linear"):
            raise Mismatch(f"merge() should return a plain nn.Linear; got {out.get('type')}")
        expect(out["out"], unmerged, "output before merging")
        expect(out["weight"], merged.weight.detach(), "merged weight", mistakes=weight_mistakes)
        if bias:
            if out["bias"] is None:
                raise Mismatch("the merged layer must keep the base's bias")
            expect(out["bias"], merged.bias.detach(), "merged bias")
        elif out["bias"] is not None:
            raise Mismatch("the base has no bias, so the merged layer must not have one "
                           "(nn.Linear(..., bias=False))")
        expect(out["merged_out"], unmerged, "merged layer's output (it should equal the "
               "unmerged LoRA layer's)")

    return Case(name, _lora_call("merge", fin, fout, r, alpha, bias, base_state, x, lora_state),
                check, 1.5)


def _lora_default_dropout_case(gen) -> Case:
    fin, fout, r, alpha = 32, 16, 4, 4
    base_state, lora_state = _lora_setup(gen, fin, fout, r, False)
    x = randn(gen, 6, fin)
    with torch.no_grad():
        expected = _reference_layer(fin, fout, r, alpha, False, lora_state)(x)

    def check(result: dict) -> None:
        out = result["output"]
        _check_shapes(out, fin, fout, r, False)
        again = out.get("again")
        if isinstance(again, Tensor) and isinstance(out["out"], Tensor) and \
                again.shape == out["out"].shape and not torch.equal(again, out["out"]):
            raise Mismatch("two forwards in train mode gave different outputs: dropout is on, "
                           "but the default is dropout=0.0")
        expect(out["out"], expected, "output in train mode with the default dropout (0.0)")

    return Case("dropout defaults to 0.0: train mode is deterministic",
                _lora_call("twice", fin, fout, r, alpha, False, base_state, x, lora_state,
                           train=True), check)


def _lora_dropout_case(gen) -> Case:
    """Where dropout acts, read from its effect: with r = 1 the LoRA update of a token is
    ``scaling * c * b`` for the column ``b = lora_B`` and a number ``c``, so input dropout
    keeps it parallel to ``b`` with ``c = a . (m * x) / (1 - p)``, dropout on lora_A's output
    makes ``c`` either 0 or ``2 a . x``, and dropout on the output breaks the parallel."""
    fin, fout, r, alpha, p = 32, 12, 1, 2, 0.5
    base_state, lora_state = _lora_setup(gen, fin, fout, r, True)
    x = randn(gen, 40, fin)
    ref = _reference_layer(fin, fout, r, alpha, True, lora_state)
    with torch.no_grad():
        ref.eval()
        expected_eval = ref(x)
        base_out = ref.base(x)
    a, b = lora_state["lora_A.weight"][0].double(), lora_state["lora_B.weight"][:, 0].double()
    s = alpha / r
    full_c = x.double() @ a  # (N,): c without dropout

    def check(result: dict) -> None:
        out = result["output"]
        _check_shapes(out, fin, fout, r, True)
        expect(out["zero_b"], base_out, "train-mode output with lora_B = 0 (dropout must act "
               "on the LoRA path only, never on the base layer)")
        expect(out["eval"], expected_eval, "output in eval mode (dropout does nothing in "
               "eval mode: nn.Dropout or F.dropout(..., training=self.training))")
        delta = out["out"].double() - base_out.double()  # (N, fout)
        c = delta @ (s * b) / (s * b).dot(s * b)  # (N,)
        residual = (delta - c[:, None] * (s * b)).abs().max().item()
        if residual > 1e-4 * max(1.0, delta.abs().max().item()):
            raise Mismatch("dropout must be applied to the input x of lora_A "
                           "(lora_B(lora_A(dropout(x)))), not to the output of the LoRA path")
        if torch.allclose(c, full_c, rtol=1e-4, atol=1e-5):
            raise Mismatch("with dropout=0.5 in train mode your LoRA path is unchanged: apply "
                           "dropout to x before lora_A")
        on_hidden = torch.isclose(c, torch.zeros_like(c), atol=1e-5) | torch.isclose(
            c, full_c / (1 - p), rtol=1e-4, atol=1e-5)
        if on_hidden.float().mean() > 0.9:
            raise Mismatch("dropout must be applied to x, before lora_A, not to lora_A's output")

    return Case("dropout=0.5 acts on the input of lora_A only, and only in train mode",
                _lora_call("dropout", fin, fout, r, alpha, True, base_state, x, lora_state,
                           kwargs={"dropout": p}, train=True), check)


def lora_linear_cases(gen: torch.Generator) -> list[Case]:
    return [
        _lora_structure_case(gen, 12, 20, 4, True),
        _lora_structure_case(gen, 16, 8, 2, False),
        _lora_init_case(gen),
        _lora_scaling_case(gen),
        _lora_forward_case(gen, "forward with trained A and B: base(x) + (alpha / r) * "
                           "lora_B(lora_A(x)), (batch, seq, in)", 24, 16, 4, 10, True, (2, 5),
                           points=2),
        _lora_forward_case(gen, "forward: rank 3, alpha 8, no bias, (tokens, in)", 16, 40, 3,
                           8, False, (7,)),
        _lora_grad_case(gen),
        _lora_merge_case(gen, "merge(): a plain nn.Linear with W + (alpha / r) B @ A and the "
                         "base's bias; same outputs", 20, 12, 4, 6, True),
        _lora_merge_case(gen, "merge() of a base without bias", 9, 15, 2, 5, False),
        _lora_default_dropout_case(gen),
        _lora_dropout_case(gen),
    ]


# ---------------------------------------------------------------- add_lora

# the toy models of the add_lora cases: MiniGPT's names, in both processes
TOY_MODELS = """
import torch
from torch import nn


class ToyAttention(nn.Module):
    def __init__(self, dim, bias):
        super().__init__()
        self.q_proj = nn.Linear(dim, dim, bias=bias)
        self.k_proj = nn.Linear(dim, dim // 2, bias=bias)
        self.v_proj = nn.Linear(dim, dim // 2, bias=bias)
        self.o_proj = nn.Linear(dim, dim, bias=bias)

    def forward(self, x):
        k, v = self.k_proj(x), self.v_proj(x)
        return self.o_proj(self.q_proj(x) * torch.cat([k, v], -1).tanh())


class ToyMLP(nn.Module):
    def __init__(self, dim, hidden):
        super().__init__()
        self.gate_proj = nn.Linear(dim, hidden, bias=False)
        self.up_proj = nn.Linear(dim, hidden, bias=False)
        self.down_proj = nn.Linear(hidden, dim, bias=False)

    def forward(self, x):
        return self.down_proj(torch.sigmoid(self.gate_proj(x)) * self.up_proj(x))


class ToyBlock(nn.Module):
    def __init__(self, dim, hidden, bias):
        super().__init__()
        self.input_layernorm = nn.LayerNorm(dim)
        self.self_attn = ToyAttention(dim, bias)
        self.post_attention_layernorm = nn.LayerNorm(dim)
        self.mlp = ToyMLP(dim, hidden)

    def forward(self, x):
        h = x + self.self_attn(self.input_layernorm(x))
        return h + self.mlp(self.post_attention_layernorm(h))


class ToyModel(nn.Module):
    def __init__(self, vocab=23, dim=16, hidden=24, n_layers=2, bias=False, tie=False,
                 top_q_proj=False):
        super().__init__()
        self.embed_tokens = nn.Embedding(vocab, dim)
        self.layers = nn.ModuleList(ToyBlock(dim, hidden, bias) for _ in range(n_layers))
        self.norm = nn.LayerNorm(dim)
        self.lm_head = nn.Linear(dim, vocab, bias=False)
        if tie:
            self.lm_head.weight = self.embed_tokens.weight
        # a target name at the top level too, and a module that is not a Linear
        self.q_proj = nn.Linear(dim, dim) if top_q_proj else None
        self.v_proj = nn.Identity()

    def forward(self, idx):
        x = self.embed_tokens(idx)
        for layer in self.layers:
            x = layer(x)
        if self.q_proj is not None:
            x = x + self.q_proj(x)
        return self.lm_head(self.norm(self.v_proj(x)))
"""

ADD_LORA_SCRIPT = """
_ns = {}
exec(toy_source, _ns)
exec(lora_source, _ns)
if isinstance(add_lora, types.FunctionType):  # graded with the reference layer
    add_lora.__globals__["LoRALinear"] = _ns["LoRALinear"]
torch.manual_seed(seed)
model = _ns["ToyModel"](**model_kwargs)
model.load_state_dict(state)
before = model(idx)
count = add_lora(model, r, alpha, *args, **kwargs)
if type(count) is int or isinstance(count, float):
    _value = count
elif isinstance(count, torch.Tensor) and count.numel() == 1:
    _value = count.item()
else:
    _value = None
result = {
    "type": type(count).__name__, "value": _value,
    "wrapped": sorted(n for n, m in model.named_modules()
                      if all(hasattr(m, a) for a in ("base", "lora_A", "lora_B"))),
    "trainable": sorted(n for n, p in model.named_parameters() if p.requires_grad),
    "n_trainable": sum(p.numel() for p in model.parameters() if p.requires_grad),
    "before": before, "after": model(idx),
}
"""


def _toy_namespace() -> dict:
    ns: dict = {}
    exec(TOY_MODELS, ns)
    return ns


def _add_lora_case(gen, name, model_kwargs, r, alpha, targets=None, as_list=False,
                   points=1.0) -> Case:
    model = _toy_namespace()["ToyModel"](**model_kwargs)
    state = {k: (1 + randn(gen, *v.shape, scale=0.2)) if "norm" in k else
             randn(gen, *v.shape, scale=v.shape[-1] ** -0.5)
             for k, v in model.state_dict().items()}
    if model_kwargs.get("tie"):
        state["lm_head.weight"] = state["embed_tokens.weight"]
    model.load_state_dict(state)
    idx = torch.randint(model_kwargs.get("vocab", 23), (2, 5), generator=gen)
    with torch.no_grad():
        before = model(idx)
    total = sum(p.numel() for p in model.parameters())
    args = [] if targets is None else [list(targets) if as_list else tuple(targets)]
    count = add_lora(model, r, alpha, *args)
    wrapped = sorted(n for n, m in model.named_modules() if isinstance(m, LoRALinear))
    trainable = sorted(n for n, p in model.named_parameters() if p.requires_grad)
    lora_params = [n for n in trainable if ".lora_" in n]
    assert set(trainable) == set(lora_params) and count == sum(
        p.numel() for p in model.parameters() if p.requires_grad)
    shown = ", ".join(wrapped[:4]) + (", ..." if len(wrapped) > 4 else "")

    def check(result: dict) -> None:
        out = result["output"]
        got_wrapped, got_trainable = out["wrapped"], out["trainable"]
        if got_wrapped != wrapped:
            missing = sorted(set(wrapped) - set(got_wrapped))
            extra = sorted(set(got_wrapped) - set(wrapped))
            parts = ([f"not wrapped: {', '.join(missing[:4])}"] if missing else []) + (
                [f"wrapped but should not be: {', '.join(extra[:4])}"] if extra else [])
            hint = (" (wrap every nn.Linear whose attribute name is one of targets, at any "
                    "depth; the default targets are ('q_proj', 'v_proj'))")
            raise Mismatch(f"the wrong layers are wrapped: {'; '.join(parts)}{hint}")
        extra = sorted(set(got_trainable) - set(trainable))
        if extra:
            raise Mismatch("other parameters stay trainable: freeze everything except LoRA's "
                           f"lora_A and lora_B (still trainable: {', '.join(extra[:4])})")
        missing = sorted(set(trainable) - set(got_trainable))
        if missing:
            raise Mismatch("LoRA's own parameters are frozen too (freeze the model first, then "
                           f"wrap): {', '.join(missing[:4])}")
        expect(out["after"], before, "model output right after add_lora (the adapters start "
               "at zero, so it must not change: wrap the existing layers, keep their weights)",
               rtol=1e-5, atol=1e-6)
        got = out["value"]
        if got != count or out["type"] != "int":
            if got == count:
                raise Mismatch(f"return the count as a Python int, not a {out['type']}")
            if got == total:
                raise Mismatch(f"add_lora returned {got}, all the parameters of the model before "
                               f"wrapping: return the trainable ones ({count})")
            if got == len(wrapped):
                raise Mismatch(f"add_lora returned {got}, the number of wrapped layers: return "
                               f"the number of trainable parameters ({count})")
            if got == total + count:
                raise Mismatch(f"add_lora returned {got}, every parameter after wrapping: "
                               f"count only those with requires_grad ({count})")
            raise Mismatch(f"add_lora returned {got} ({out['type']}); the model has {count:,} "
                           "trainable parameters after wrapping (r * (in + out) per layer)")

    lora_source = given_code("solutions.finetune:LoRALinear")
    kwargs = {}
    call = script_call(ADD_LORA_SCRIPT, toy_source=TOY_MODELS, lora_source=lora_source,
                       model_kwargs=model_kwargs, state=state, idx=idx, r=r, alpha=alpha,
                       args=args, kwargs=kwargs, seed=0)
    call["source"] = "import types\n" + call["source"]
    return Case(f"{name} (wraps {shown}; {count:,} trainable)", call, check, points)


def add_lora_cases(gen: torch.Generator) -> list[Case]:
    everything = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")
    return [
        _add_lora_case(gen, "default targets ('q_proj', 'v_proj'), everything else frozen",
                       {}, 4, 8, points=2),
        _add_lora_case(gen, "default targets, projections with biases (biases stay frozen)",
                       {"bias": True, "n_layers": 3}, 2, 4),
        _add_lora_case(gen, "every projection of attention and MLP", {"hidden": 20}, 3, 6,
                       everything, points=1.5),
        _add_lora_case(gen, "targets given as a list: ['up_proj', 'down_proj']", {}, 2, 2,
                       ("up_proj", "down_proj"), as_list=True),
        _add_lora_case(gen, "lm_head tied to the embeddings: the shared weight stays frozen",
                       {"tie": True}, 2, 4, ("lm_head", "o_proj")),
        _add_lora_case(gen, "a target name at the top level as well as in every layer",
                       {"top_q_proj": True}, 4, 4, ("q_proj",)),
        _add_lora_case(gen, "a target naming modules that are not nn.Linear leaves them alone",
                       {}, 2, 4, ("v_proj", "input_layernorm", "embed_tokens")),
    ]

