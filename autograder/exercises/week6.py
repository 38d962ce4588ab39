"""Week 6 graders: the mixture-of-experts block and its load-balancing loss."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor

from autograder.compare import Mismatch, check_tensor, close, describe
from autograder.exercises.common import (
    expect,
    expect_graph,
    expect_inputs_untouched,
    expect_property,
    function_call,
    module_call,
    module_case,
    name_mistake,
    randn,
    reference_run,
    run_reference,
    state_case,
    swiglu_state,
)
from autograder.grading import Case
from solutions import MoE, SwiGLU, load_balancing_loss


def _separate(gen, logits_of, draw, rows: int, top_k: int, margin: float, tries: int = 200):
    """Draw ``rows`` rows whose k-th and (k+1)-th router logits are at least ``margin`` apart.

    A near-tie at the top-k boundary would let two correct implementations (einsum against
    ``nn.Linear``, float32 against bfloat16 logits) pick different experts; redrawing those
    rows keeps every hidden input unambiguous. ``draw(n)`` returns ``n`` new rows and
    ``logits_of(rows)`` their logits in float64.
    """
    data = draw(rows)
    for _ in range(tries):
        logits = logits_of(data)
        n_experts = logits.shape[-1]
        if top_k >= n_experts:
            return data
        top = logits.topk(top_k + 1, dim=-1).values
        bad = (top[:, top_k - 1] - top[:, top_k]) < margin
        if not bad.any():
            return data
        data = data.clone()
        data[bad] = draw(int(bad.sum()))
    raise RuntimeError("could not draw well-separated router logits")


def _expect_grads(result: dict, grads: dict) -> None:
    """Like ``common.expect_grads``, but a parameter that gets no gradient is accepted when the
    expected gradient is exactly zero (an expert no token was routed to may be skipped)."""
    expect_graph(result)
    params = grads.get("params", {})
    for name in sorted(params, key=lambda n: n != "gate.weight"):  # the router first
        expected, got = params[name], result.get("param_grads", {}).get(name)
        router = name == "gate.weight"
        if got is None:
            if expected is None or not expected.any():
                continue
            hint = (" (the routing weights must come from the router's softmax, so the router "
                    "learns)") if router else ""
            raise Mismatch(f"`{name}` received no gradient: is it used in forward?{hint}")
        try:
            expect(got, torch.zeros_like(got) if expected is None else expected,
                   f"gradient of `{name}`")
        except Mismatch:
            if router:
                raise Mismatch("the gradient of the router `gate.weight` differs: the weights "
                               "of the chosen experts must be differentiable functions of the "
                               "router logits (softmax, top-k, renormalise), not constants") \
                    from None
            raise
    # after the parameters: a detached router shows first as a missing router gradient
    for i, expected in enumerate(grads.get("inputs", [])):
        got = (result.get("input_grads") or [None] * (i + 1))[i]
        if got is None:
            raise Mismatch("the input received no gradient: is the output computed from it?")
        expect(got, expected, "gradient with respect to the input")


# ---------------------------------------------------------------- MoE


def _moe_state(gen, dim: int, hidden: int, n_experts: int, same_experts: bool = False):
    state = {"gate.weight": randn(gen, n_experts, dim, scale=1.5 * dim**-0.5)}
    first = swiglu_state(gen, dim, hidden)
    for e in range(n_experts):
        expert = first if same_experts or e == 0 else swiglu_state(gen, dim, hidden)
        state |= {f"experts.{e}.{k}": v for k, v in expert.items()}
    return state


def _moe_input(gen, shape, state: dict, top_k: int, dtype, zero: bool = False) -> Tensor:
    if zero:
        return torch.zeros(shape, dtype=dtype)
    w = state["gate.weight"].to(dtype).double()
    margin = 0.1 if dtype == torch.bfloat16 else 0.02
    flat = _separate(gen, lambda x: x.to(dtype).double() @ w.T,
                     lambda n: randn(gen, n, shape[-1]), math.prod(shape[:-1]), top_k, margin)
    return flat.reshape(shape).to(dtype)


def _moe_mistakes(x: Tensor, state: dict, n_experts: int, top_k: int):
    """What common wrong MoEs return for ``x``: (mistakes for y, mistakes for the logits)."""
    shape = x.shape
    xf = x.reshape(-1, shape[-1]).double()  # (N, dim)
    w = {k: v.to(x.dtype).double() for k, v in state.items()}
    logits = xf @ w["gate.weight"].T  # (N, E)

    def expert(e: int, h: Tensor) -> Tensor:  # (N, dim) -> (N, dim)
        p = f"experts.{e}."
        g = h @ w[p + "gate_proj.weight"].T
        u = h @ w[p + "up_proj.weight"].T
        return (F.silu(g) * u) @ w[p + "down_proj.weight"].T

    outs = torch.stack([expert(e, xf) for e in range(n_experts)], dim=1)  # (N, E, dim)

    def dense(weights: Tensor, chosen: Tensor) -> Tensor:  # (N, k) each -> (N, E)
        return torch.zeros_like(logits).scatter(1, chosen, weights)

    def combine(dense_w: Tensor) -> Tensor:
        return (dense_w[..., None] * outs).sum(1).reshape(shape)

    routed = lambda weights, chosen: combine(dense(weights, chosen))  # the k chosen, weighted
    renormalised = lambda p: p / p.sum(-1, keepdim=True)
    probs = logits.softmax(-1)
    top_p, chosen = probs.topk(top_k, dim=-1)
    renorm = renormalised(top_p)
    arg = probs.argmax(-1, keepdim=True)
    tok_p, tok_chosen = logits.softmax(0).topk(top_k, dim=-1)  # softmax over the tokens
    low_p, low = probs.topk(top_k, dim=-1, largest=False)
    y_mistakes = {}
    if top_k > 1:
        y_mistakes["only one expert per token is used: take the top_k best experts "
                   "(torch.topk), not the argmax"] = routed(torch.ones_like(arg.double()), arg)
        y_mistakes["only one expert per token is used (the argmax, weighted by its "
                   "probability): take the top_k best experts with torch.topk"] = routed(
            probs.gather(1, arg), arg)
    if top_k < n_experts:
        y_mistakes["the k chosen weights are not renormalised: divide the top-k "
                   "probabilities by their sum so that they add up to 1"] = routed(top_p, chosen)
        y_mistakes["every expert is used, weighted by its probability: keep only the top_k "
                   "best experts of each token"] = combine(probs)
        y_mistakes["you chose the k LEAST likely experts: take the top_k largest "
                    "probabilities (torch.topk's default)"] = routed(renormalised(low_p), low)
    if top_k > 1:
        y_mistakes["the chosen experts' outputs are summed without their routing weights: "
                   "weight each by its renormalised probability"] = routed(
            torch.ones_like(renorm), chosen)
    y_mistakes.update({
        "the routing weights must multiply the experts' outputs, not their inputs": sum(
            expert(e, dense(renorm, chosen)[:, e:e + 1] * xf)
            for e in range(n_experts)).reshape(shape),
        "the softmax must run over the experts (the last dimension of the router logits), "
        "not over the tokens": routed(renormalised(tok_p), tok_chosen),
        "the routing weights must be probabilities: take a softmax of the router logits "
        "(over all experts, in float32) before choosing and renormalising": routed(
            logits.gather(1, chosen), chosen),
    })
    logit_mistakes = {
        "return the raw router logits, gate(x), not their softmax: the load-balancing loss "
        "applies its own softmax": probs,
        "return the raw router logits, gate(x), not the renormalised top-k weights scattered "
        "into a matrix": dense(renorm, chosen),
    }
    return y_mistakes, logit_mistakes


def _check_moe_output(result: dict, expected: tuple[Tensor, Tensor], y_mistakes: dict,
                      logit_mistakes: dict, batch_shape) -> None:
    out = result["output"]
    if not isinstance(out, tuple | list) or len(out) != 2:
        raise Mismatch(f"forward should return a pair (y, router_logits); got {describe(out)}")
    y, logits = out
    want_y, want_logits = expected
    n_tokens, n_experts = want_logits.shape
    if isinstance(logits, Tensor) and tuple(logits.shape) == (*batch_shape, n_experts) \
            and len(batch_shape) > 1:
        raise Mismatch(f"router_logits should be flattened to (batch*seq, n_experts) = "
                       f"{(n_tokens, n_experts)}; got {tuple(logits.shape)}")
    expect(y, want_y, "output y", mistakes=y_mistakes)
    expect(logits, want_logits, "router_logits", mistakes=logit_mistakes)


def _moe_case(gen, name, shape, hidden, n_experts, top_k, dtype=torch.float32, grad=False,
              zero=False, points=1.0) -> Case:
    dim = shape[-1]
    state = _moe_state(gen, dim, hidden, n_experts)
    x = _moe_input(gen, shape, state, top_k, dtype, zero=zero)
    grad_output = randn(gen, *shape, dtype=dtype) if grad else None
    expected, grads = reference_run(MoE(dim, hidden, n_experts, top_k), state, x, grad_output)
    y_mistakes, logit_mistakes = _moe_mistakes(x, state, n_experts, top_k)
    return module_case(name, "MoE", (dim, hidden, n_experts, top_k), None, state, x, expected,
                       grads, grad_output, points=points, check_grads=_expect_grads,
                       check_output=lambda result: _check_moe_output(
                           result, expected, y_mistakes, logit_mistakes, shape[:-1]))


SMALL = (16, 24, 4, 2)  # dim, hidden_dim, n_experts, top_k of the property cases


def _moe_property_case(name: str, holds: str, state: dict, x: Tensor, prop) -> Case:
    """A property of the SMALL MoE's output ``y`` on ``x``: ``prop(y, y_mistakes)`` (see
    ``expect_property``), then the values of ``y`` and the router logits."""
    expected, _ = reference_run(MoE(*SMALL), state, x)
    y_mistakes, logit_mistakes = _moe_mistakes(x, state, *SMALL[2:])

    def check(result: dict) -> None:
        out = result["output"]
        y = out[0] if isinstance(out, tuple | list) and out else out
        expect_property(holds, lambda y: prop(y, y_mistakes), lambda: _check_moe_output(
            result, expected, y_mistakes, logit_mistakes, x.shape[:-1]), y, x.shape)

    return Case(name, module_call("MoE", SMALL, None, state, [x]), check)


def _moe_same_experts_case(gen) -> Case:
    """When every expert is the same SwiGLU, the MoE is that SwiGLU, whatever the routing,
    because each token's k weights sum to 1."""
    dim, hidden, n_experts, top_k = SMALL
    state = _moe_state(gen, dim, hidden, n_experts, same_experts=True)
    x = _moe_input(gen, (2, 6, dim), state, top_k, torch.float32)
    ffn = SwiGLU(dim, hidden)
    ffn.load_state_dict({k.removeprefix("experts.0."): v for k, v in state.items()
                         if k.startswith("experts.0.")})
    with torch.no_grad():
        single = ffn(x)

    def prop(y: Tensor, y_mistakes: dict) -> bool:
        if y.dtype != single.dtype:
            return False
        if not close(y, single):
            for message, wrong in y_mistakes.items():
                if "renormalised" in message and close(y, wrong.to(y.dtype)):
                    raise Mismatch("with all experts identical the MoE should equal one "
                                   "expert, but yours scales it: " + message)
            raise Mismatch("with all experts identical your MoE should equal that one "
                           "expert (each token's k routing weights sum to 1); it does not")
        return True

    return _moe_property_case("property: with identical experts the MoE equals one expert "
                              "(weights sum to 1)",
                              "with identical experts your MoE equals one expert", state, x, prop)


def _moe_permutation_case(gen) -> Case:
    """Routing is per token, so shuffling the tokens shuffles the output."""
    dim, hidden, n_experts, top_k = SMALL
    state = _moe_state(gen, dim, hidden, n_experts)
    first = _moe_input(gen, (1, 8, dim), state, top_k, torch.float32)
    perm = torch.randperm(8, generator=gen)

    def prop(y: Tensor, y_mistakes: dict) -> None:
        if not close(y[1], y[0][perm], rtol=1e-4, atol=1e-5):
            raise Mismatch("shuffling the tokens changed what each token gets: every token "
                           "must be routed on its own (softmax over experts, not over tokens)")

    return _moe_property_case("property: each token is routed on its own (shuffled tokens, "
                              "shuffled output)", "shuffling the tokens shuffled the output",
                              state, torch.cat([first, first[:, perm]]), prop)


def moe_cases(gen: torch.Generator) -> list[Case]:
    return [
        state_case("parameters: gate.weight (n_experts, dim) and experts.{e}.gate_proj / "
                   "up_proj / down_proj, no biases", "MoE", (12, 20, 3, 2),
                   {k: tuple(v.shape) for k, v in MoE(12, 20, 3, 2).state_dict().items()}),
        _moe_case(gen, "float32, 8 experts, top-2, (batch, seq, dim)", (2, 5, 16), 24, 8, 2,
                  points=2),
        _moe_case(gen, "top-1 routing (Switch style), 4 experts", (3, 4, 16), 20, 4, 1),
        _moe_case(gen, "top-3 of 6 experts, a single token", (1, 1, 24), 16, 6, 3),
        _moe_case(gen, "top_k = n_experts: dense, every expert on every token", (2, 3, 16), 20,
                  4, 4),
        _moe_case(gen, "gradients match: input, experts and the router through the "
                  "renormalised weights", (2, 8, 16), 24, 4, 2, grad=True, points=2),
        _moe_case(gen, "gradients with top_k = n_experts", (1, 6, 8), 12, 3, 3, grad=True),
        _moe_case(gen, "bfloat16 in, bfloat16 out (y and router logits)", (2, 6, 32), 48, 4, 2,
                  dtype=torch.bfloat16),
        _moe_case(gen, "all-zero input gives zeros and zero logits, not NaN", (1, 4, 16), 24,
                  4, 2, zero=True),
        _moe_same_experts_case(gen),
        _moe_permutation_case(gen),
    ]


# ---------------------------------------------------------------- load-balancing loss


def _router_logits(gen, n_tokens: int, n_experts: int, top_k: int, dtype, scale=1.5):
    margin = 0.1 if dtype == torch.bfloat16 else 1e-3
    logits = _separate(gen, lambda t: t.to(dtype).double(),
                       lambda n: randn(gen, n, n_experts, scale=scale), n_tokens, top_k, margin)
    return logits.to(dtype)


def _lbl_mistakes(logits: Tensor, n_experts: int, top_k: int) -> dict[str, Tensor]:
    z = logits.double()
    n = z.shape[0]
    probs = z.softmax(-1)
    chosen = probs.topk(top_k, dim=-1).indices
    picks = F.one_hot(chosen, n_experts).double().sum((0, 1))  # (E,)
    f = picks / n
    p = probs.mean(0)
    mistakes = {}
    if top_k > 1:  # first: on balanced routing it coincides with dividing by N * top_k
        top1 = F.one_hot(probs.argmax(-1), n_experts).double().mean(0)
        mistakes["count all top_k picks of each token in f_e, not only its best expert"] = (
            n_experts * (top1 * p).sum())
    mistakes |= {
        "multiply by n_experts: the loss is n_experts * sum_e f_e * P_e, so that perfectly "
        "uniform routing gives top_k": (f * p).sum(),
        "P_e is the mean router *probability* of expert e: apply a softmax to the logits "
        "before averaging": n_experts * (f * z.mean(0)).sum(),
        "f_e is the fraction of tokens that picked expert e: divide the pick counts by the "
        "number of tokens N, not by N * top_k (mean over the tokens only)":
            n_experts * (f / top_k * p).sum(),
        "the loss is n_experts * sum_e f_e * P_e: yours is top_k times too large":
            top_k * n_experts * (f * p).sum(),
        "P_e is the mean of the probabilities over the tokens, not their sum":
            n_experts * (f * probs.sum(0)).sum(),
        "f_e counts hard top-k picks (a one-hot of the chosen experts), not probabilities":
            n_experts * (p * p).sum(),
        "take the softmax over the experts (the last dimension), not over the tokens": (
            lambda q: n_experts * (F.one_hot(q.topk(top_k, -1).indices, n_experts).double()
                                   .sum((0, 1)) / n * q.mean(0)).sum())(z.softmax(0)),
    }
    return mistakes


def _check_scalar(actual, expected: Tensor, mistakes: dict, loose: bool) -> None:
    if isinstance(actual, Tensor) and actual.numel() == 1 and actual.dim() > 0:
        raise Mismatch(f"return a 0-dimensional tensor (a scalar), not shape "
                       f"{tuple(actual.shape)}: sum without keepdim, or use .squeeze()")
    if loose:  # bfloat16 logits: a float32 softmax or a bfloat16 result are both fine
        if isinstance(actual, Tensor) and not actual.is_floating_point():
            raise Mismatch(f"the loss should be a floating-point tensor, got {actual.dtype}")
        try:
            check_tensor(actual, expected, "loss", rtol=2e-2, atol=2e-3, check_dtype=False)
        except Mismatch:
            name_mistake(mistakes, lambda wrong: isinstance(actual, Tensor) and close(
                actual, wrong, rtol=2e-2, atol=2e-3))
            raise
    else:
        expect(actual, expected, "loss", mistakes=mistakes)


def _lbl_case(name: str, logits: Tensor, top_k: int, grad: bool = False, points: float = 1.0,
              balanced: bool = False, untouched: bool = True) -> Case:
    """``load_balancing_loss(logits, n_experts, top_k)`` against the reference; ``balanced``:
    the logits route perfectly evenly, so the loss must be exactly top_k."""
    n_experts = logits.shape[1]
    grad_output = torch.tensor(1.0) if grad else None
    expected, grads = run_reference(lambda z: load_balancing_loss(z, n_experts, top_k),
                                    [logits], grad_output)
    mistakes = _lbl_mistakes(logits, n_experts, top_k)
    loose = logits.dtype != torch.float32

    def check(result: dict) -> None:
        y = result["output"]
        try:
            _check_scalar(y, expected, mistakes, loose)
        except Mismatch as exc:
            if balanced and str(exc).startswith("your loss differs") and isinstance(
                    y, Tensor) and y.numel() == 1:
                raise Mismatch(f"perfectly balanced routing (every expert picked equally "
                               f"often, equal mean probabilities) should give exactly top_k = "
                               f"{top_k}; yours gives {float(y):.4g}") from None
            raise
        if not logits.any() and not torch.isclose(y.double(), torch.tensor(
                float(top_k), dtype=torch.float64)):
            raise Mismatch(f"all-equal logits should give exactly top_k = {top_k}")
        if grad:
            if result.get("no_graph"):
                raise Mismatch("your loss is not connected to autograd (did you use .detach(), "
                               ".item() or numpy?): it must push the router towards balance")
            got = (result.get("input_grads") or [None])[0]
            if got is None:
                raise Mismatch("the router logits received no gradient")
            expect(got, grads["inputs"][0], "gradient with respect to the router logits")
        if untouched:
            expect_inputs_untouched(result, [logits])

    call = function_call("load_balancing_loss", [logits], [n_experts, top_k],
                         grad_output=grad_output)
    return Case(name, call, check, points)


def load_balancing_loss_cases(gen: torch.Generator) -> list[Case]:
    logits = lambda n_tokens, n_experts, top_k, dtype=torch.float32: _router_logits(
        gen, n_tokens, n_experts, top_k, dtype)
    cases = [
        _lbl_case("float32, 64 tokens, 8 experts, top-2", logits(64, 8, 2), 2, points=2),
        _lbl_case("top-1 (Switch Transformer), 4 experts", logits(40, 4, 1), 1),
        _lbl_case("top-3 of 16 experts", logits(50, 16, 3), 3),
        _lbl_case("top_k = n_experts gives n_experts", logits(10, 4, 4), 4),
        _lbl_case("gradient with respect to the router logits", logits(32, 8, 2), 2, grad=True,
                  points=2),
        _lbl_case("bfloat16 router logits", logits(48, 8, 2, torch.bfloat16), 2),
        _lbl_case("all-zero logits (uniform router) give top_k, not NaN", torch.zeros(12, 8),
                  2),
    ]
    # every expert picked equally often, with equal mean probabilities: the rows are the
    # cyclic shifts of one vector
    row = logits(1, 8, 2)[0]
    balanced = torch.stack([row.roll(s) for s in range(8)] * 3)  # (24, E)
    # every token sends most of its probability to expert 0: the loss approaches n_experts
    collapsed = _separate(gen, lambda t: t.double(), lambda n: torch.cat(
        [8.0 + randn(gen, n, 1, scale=0.5), randn(gen, n, 3, scale=0.5)], 1), 32, 2, 1e-3)
    return cases + [
        _lbl_case("property: perfectly balanced routing gives exactly top_k", balanced, 2,
                  balanced=True),
        _lbl_case("collapsed routing (one expert takes nearly everything) is penalised",
                  collapsed, 2, untouched=False),
    ]
