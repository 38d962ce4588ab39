"""Building blocks for exercise graders: calls for the worker, the usual cases of a module
exercise, and checks for their results. A week's grader holds its cases and its mistakes."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor, nn

from autograder.compare import Mismatch, check_tensor, close, describe
from autograder.grading import Case

# bf16 keeps 8 significant bits: correct bf16 attentions written in different orders (RoPE in
# bf16 or float32, torch's kernel or the textbook steps) differ from float64 maths on the same
# bf16 weights and inputs by up to ~2 % of the largest value (measured over 40 seeds): allow 3 %
BF16_TOL = {"rtol": 3e-2, "atol": 3e-2}


def tolerance(dtype: torch.dtype) -> dict:
    """The tolerance of a float64 reference for an output in ``dtype``: BF16_TOL in bfloat16,
    else ``check_tensor``'s default."""
    return BF16_TOL if dtype == torch.bfloat16 else {}


def randn(gen: torch.Generator, *shape: int, scale: float = 1.0, dtype=torch.float32) -> Tensor:
    return (torch.randn(*shape, generator=gen) * scale).to(dtype)


def linear(gen: torch.Generator, out_features: int, in_features: int) -> Tensor:
    """A hidden ``nn.Linear`` weight ``(out, in)``, scaled by 1/sqrt(in) like a trained one."""
    return randn(gen, out_features, in_features, scale=in_features**-0.5)


def swiglu_state(gen: torch.Generator, dim: int, hidden: int, prefix: str = "") -> dict:
    """The weights of a ``SwiGLU(dim, hidden)``, their keys prefixed (``"experts.0."``)."""
    return {f"{prefix}gate_proj.weight": linear(gen, hidden, dim),
            f"{prefix}up_proj.weight": linear(gen, hidden, dim),
            f"{prefix}down_proj.weight": linear(gen, dim, hidden)}


def hidden_input(gen: torch.Generator, shape, dtype=torch.float32, zero: bool = False,
                 scale: float = 1.0, grad: bool = False) -> tuple[Tensor, Tensor | None]:
    """A hidden input of ``shape`` in ``dtype`` (all zeros with ``zero``) and, with ``grad``,
    the gradient of the output to backpropagate (else None)."""
    x = (torch.zeros(shape) if zero else randn(gen, *shape, scale=scale)).to(dtype)
    return x, (randn(gen, *shape, dtype=dtype) if grad else None)


def module_call(symbol: str, args=(), kwargs=None, state=None, inputs=(), dtype=None,
                grad_output=None, return_init=False) -> dict:
    """Build ``symbol(*args, **kwargs)``, load ``state``, cast to ``dtype`` (a ``torch.dtype`` or
    its name), run ``forward``."""
    return {
        "kind": "module", "symbol": symbol, "args": list(args), "kwargs": kwargs or {},
        "state": state, "inputs": list(inputs),
        "dtype": None if dtype is None else str(dtype).removeprefix("torch."),
        "grad": grad_output is not None, "grad_output": grad_output, "return_init": return_init,
    }


def function_call(symbol: str, inputs=(), args=(), kwargs=None, grad_output=None) -> dict:
    """Call ``symbol(*inputs, *args, **kwargs)``; with ``grad_output``, backpropagate it."""
    return {"kind": "function", "symbol": symbol, "inputs": list(inputs), "args": list(args),
            "kwargs": kwargs or {}, "grad": grad_output is not None, "grad_output": grad_output}


def script_call(source: str, **inputs) -> dict:
    """Run the grader's own ``source`` in the worker, in a fresh copy of the submission's
    namespace (its functions and classes are globals there) with ``inputs`` (tensors, numbers,
    strings, lists, dicts of those) bound as variables. The script must assign ``result``: a
    dict of str -> tensor / int / float / bool / str / None / list or tuple of those, which
    comes back as ``result["output"]`` to the case's check. An exception in the script is the
    usual error result, pointing at the last line of the learner's code it passed through.

    The script is trusted code, but what it computes comes from the learner's code: compare it
    in the check, never in the script (the worker judges nothing)."""
    return {"kind": "script", "source": source, "inputs": dict(inputs)}


def run_reference(module: Callable, inputs: list[Tensor], grad_output: Tensor | None = None):
    """Run the reference (a module or a function) the way the worker runs the learner's:
    output and grads (of the inputs, and of a module's parameters)."""
    inputs = [t.clone().requires_grad_(grad_output is not None) for t in inputs]
    out = module(*inputs)
    first = out[0] if isinstance(out, tuple) else out
    grads: dict = {}
    if grad_output is not None:
        first.backward(grad_output.to(first.dtype))
        grads["inputs"] = [t.grad for t in inputs]
        if isinstance(module, nn.Module):
            grads["params"] = {n: p.grad for n, p in module.named_parameters()}
    detach = lambda t: t.detach() if isinstance(t, Tensor) else t
    out = tuple(detach(o) for o in out) if isinstance(out, tuple) else detach(out)
    return out, grads


def reference_run(module: nn.Module, state: dict, x: Tensor, grad_output: Tensor | None = None,
                  float64: bool = False):
    """``module`` with the weights ``state`` run on ``x`` in x's dtype, as the worker runs the
    learner's: output and grads. With ``float64``, a bfloat16 ``x`` is run in float64 on the
    bf16-rounded weights instead and cast back (no grads): held to it within ``BF16_TOL``."""
    if float64 and x.dtype == torch.bfloat16:
        module.load_state_dict({k: t.bfloat16() for k, t in state.items()})
        with torch.no_grad():
            return module.double()(x.double()).to(x.dtype), {}
    module.load_state_dict(state)
    module.to(x.dtype)
    return run_reference(module, [x], grad_output)


def module_case(name: str, symbol: str, args, kwargs, state: dict, x: Tensor, expected,
                grads=None, grad_output: Tensor | None = None, mistakes=None, tol=None,
                points: float = 1.0, check_output=None, check_grads=None) -> Case:
    """The usual case of a module exercise: the learner's ``symbol(*args, **kwargs)`` with the
    weights ``state`` runs on ``x`` in x's dtype (backpropagating ``grad_output``), judged by
    ``output_check``."""
    call = module_call(symbol, args, kwargs, state, [x], dtype=x.dtype, grad_output=grad_output)
    return Case(name, call, output_check(expected, [x], mistakes, tol, grads if grad_output
                                         is not None else None, check_output, check_grads),
                points)


def function_case(name: str, symbol: str, inputs: list, expected, grads=None,
                  grad_output: Tensor | None = None, mistakes=None, tol=None,
                  points: float = 1.0, check_output=None, grad_names=None, **call) -> Case:
    """The usual case of a function exercise: ``symbol(*inputs, **call)`` (``args``,
    ``kwargs``), backpropagating ``grad_output``, judged by ``output_check``."""
    check_grads = None if grad_names is None else (
        lambda result, grads: expect_grads(result, grads, grad_names))
    return Case(name, function_call(symbol, inputs, grad_output=grad_output, **call),
                output_check(expected, inputs, mistakes, tol, grads, check_output, check_grads),
                points)


def output_check(expected, inputs: list[Tensor], mistakes=None, tol=None, grads=None,
                 check_output=None, check_grads=None) -> Callable[[dict], None]:
    """The output must equal ``expected`` (naming ``mistakes``; or ``check_output(result)``
    judges it), the gradients ``grads`` when given (``check_grads(result, grads)``, by default
    ``expect_grads``), and the ``inputs`` must be left as they were."""

    def check(result: dict) -> None:
        if check_output is None:
            expect(result["output"], expected, mistakes=mistakes, **(tol or {}))
        else:
            check_output(result)
        if grads is not None:
            (check_grads or expect_grads)(result, grads)
        expect_inputs_untouched(result, inputs)

    return check


def property_case(name: str, call: dict, shape, holds: str, prop: Callable,
                  value: Callable[[dict], None], points: float = 1.0) -> Case:
    """A property case (see ``expect_property``): ``prop(y)`` on the learner's output when it
    is ``well_formed`` for ``shape``, ``value(result)`` for the comparison with the reference."""

    def check(result: dict) -> None:
        expect_property(holds, prop, lambda: value(result), result["output"], shape)

    return Case(name, call, check, points)


def twin_case(name: str, call: dict, shape, inputs: list[Tensor], expected: Tensor,
              mistakes: dict, holds: str, prop: Callable, points: float = 1.0) -> Case:
    """A property case on a batch of an input and a changed copy of it (``prop(y)`` compares
    their outputs): the output has ``shape``, its first ``len(expected)`` rows equal
    ``expected`` (naming ``mistakes``), and the ``inputs`` are left as they were."""

    def value(result: dict) -> None:
        expect_shape(result["output"], shape)
        expect(result["output"][:len(expected)], expected, mistakes=mistakes)
        expect_inputs_untouched(result, inputs)

    return property_case(name, call, shape, holds, prop, value, points)


def state_case(name: str, symbol: str, args, shapes: dict[str, tuple[int, ...]], kwargs=None,
               x: Tensor | None = None, points: float = 1.0) -> Case:
    """A module built fresh (no weights loaded): its state-dict keys and shapes, and, given
    ``x``, that its forward returns a tensor of x's shape."""

    def check(result: dict) -> None:
        expect_state(result, shapes)
        if x is not None:
            expect_shape(result["output"], x.shape, "forward's output, (B, T, dim),")

    call = module_call(symbol, args, kwargs, inputs=[] if x is None else [x])
    return Case(name, call, check, points)


def future_batch(gen: torch.Generator, T: int, dim: int, cut: int, scale: float = 5.0) -> Tensor:
    """``(2, T, dim)``: one random sequence twice, the second with tokens ``cut..`` redrawn."""
    x = randn(gen, 1, T, dim)
    x2 = x.clone()
    x2[:, cut:] = scale * randn(gen, 1, T - cut, dim)
    return torch.cat([x, x2])


def future_case(name: str, symbol: str, args, kwargs, state: dict, batch: Tensor, cut: int,
                expected: Tensor, mistakes: dict, hint: str, points: float = 2.0) -> Case:
    """The property case of causal attention on a ``future_batch``: the second sequence differs
    from the first only from token ``cut`` on, so no output before ``cut`` may differ between
    the two (see ``twin_case``)."""
    T = batch.shape[1]

    def prop(y: Tensor) -> None:
        diff = (y[0, :cut] - y[1, :cut]).abs().amax(-1)  # (cut,)
        changed = [i for i in range(cut) if diff[i] > 1e-5 + 1e-4 * y[0, i].abs().max()]
        if changed:
            raise Mismatch(f"changing only tokens {cut}..{T - 1} changed your output at "
                           f"position(s) {changed}: an output depends on a future token ({hint})")

    return twin_case(name, module_call(symbol, args, kwargs, state, [batch]), batch.shape,
                     [batch], expected, mistakes, "no output depends on a future token", prop,
                     points)


def expect_mask(actual, expected: Tensor, mistakes: dict, hint: str = "") -> None:
    """A boolean attention mask (True = may attend) equal to ``expected``."""
    if type(actual) is Tensor and actual.dtype != torch.bool:
        if actual.is_floating_point() and torch.isinf(actual).any():
            raise Mismatch("you returned an additive float mask (0 and -inf); return a bool "
                           "tensor, True = may attend")
        raise Mismatch(f"your mask has dtype {actual.dtype}; return a boolean mask (torch.bool, "
                       f"True = may attend){hint}")
    expect(actual, expected, "mask", mistakes=mistakes)


def same_as(actual, wrong: Tensor, **tol) -> bool:
    """``actual`` equals a mistake's output, NaN where it has NaN (an inverted causal mask
    leaves a query with no visible key)."""
    if type(actual) is not Tensor or actual.shape != wrong.shape:
        return False
    if wrong.dtype == torch.bool:
        return actual.dtype == torch.bool and torch.equal(actual, wrong)
    if not actual.is_floating_point():
        return False
    wrong = wrong.to(actual.dtype)
    nan = torch.isnan(actual)
    if not torch.equal(nan, torch.isnan(wrong)) or nan.all():
        return False
    return close(actual[~nan], wrong[~nan], **tol)


def expect(actual, expected: Tensor, what: str = "output", mistakes=None, **tol) -> None:
    """Like ``check_tensor``, but name a known mistake when the learner's value matches one."""
    try:
        check_tensor(actual, expected, what, **tol)
    except Mismatch:
        for message, wrong in (mistakes or {}).items():
            if same_as(actual, wrong, **tol):
                raise Mismatch(message) from None
        raise


def expect_property(holds: str, prop: Callable, value: Callable[[], None], y=None,
                    shape=None) -> None:
    """A property case, reported by what actually failed.

    ``prop`` checks the property on the learner's output: it raises ``Mismatch`` (its own
    message) when the property fails, and returns False when the output is too malformed to
    check it (wrong type or shape, NaN), leaving ``value`` to say why; given ``shape``,
    ``prop(y)`` is called only when ``y`` is ``well_formed`` for it. ``value`` compares the
    output with the reference; when only it fails, the message says so, so that the case's
    name ("property: ...") is not read as the failure."""
    if shape is None:
        checked = prop()
    else:
        checked = well_formed(y, shape) and prop(y) is not False
    try:
        value()
    except Mismatch as exc:
        if not checked:
            raise
        raise Mismatch(f"the property holds ({holds}), but the values are wrong: {exc}") from None


def well_formed(y, shape) -> bool:
    """``y`` is a finite floating-point tensor of ``shape``: a property can be checked on it."""
    return (type(y) is Tensor and tuple(y.shape) == tuple(shape) and y.is_floating_point()
            and bool(torch.isfinite(y).all()))


def expect_shape(y, shape, what: str = "your output") -> None:
    if type(y) is not Tensor or y.shape != shape:
        raise Mismatch(f"{what} should have shape {tuple(shape)}, got {describe(y)}")


def expect_state(result: dict, shapes: dict[str, tuple[int, ...]]) -> None:
    got = {k: tuple(v) for k, v in result["state_shapes"].items()}
    missing = sorted(set(shapes) - set(got))
    extra = sorted(set(got) - set(shapes))
    if missing or extra:
        parts = []
        if missing:
            parts.append(f"missing {', '.join(missing)}")
        if extra:
            parts.append(f"unexpected {', '.join(extra)}")
        hint = " (the contract has no biases here: bias=False)" if any(
            k.endswith("bias") for k in extra) else ""
        raise Mismatch(f"state dict keys differ: {'; '.join(parts)}{hint}")
    for key, shape in shapes.items():
        if got[key] != tuple(shape):
            raise Mismatch(f"`{key}` has shape {got[key]}, expected {tuple(shape)}")


def expect_graph(result: dict, what: str = "output") -> None:
    if result.get("no_graph"):
        raise Mismatch(f"your {what} is not connected to autograd (did you use .detach(), "
                       ".item(), numpy or torch.no_grad()?), so nothing can be trained")


def expect_grads(result: dict, grads: dict, names=None) -> None:
    """Gradients equal to ``grads`` (``"inputs"``: a list, named by ``names``, else "the
    input"; ``"params"``: by name)."""
    expect_graph(result)
    for i, expected in enumerate(grads.get("inputs", [])):
        what = "the input" if names is None else names[i]
        expect(result["input_grads"][i], expected, f"gradient with respect to {what}")
    for name, expected in grads.get("params", {}).items():
        got = result.get("param_grads", {}).get(name)
        if got is None:
            raise Mismatch(f"`{name}` received no gradient: is it used in forward?")
        expect(got, expected, f"gradient of `{name}`")


def expect_inputs_untouched(result: dict, inputs: list[Tensor]) -> None:
    after = result.get("inputs_after", [])
    if len(after) != len(inputs) or any(
        type(a) is not Tensor or a.shape != b.shape or not torch.equal(a, b)
        for a, b in zip(after, inputs, strict=True)
    ):
        raise Mismatch("your forward changed its input in place; work on a new tensor instead")


def known_mistakes(mistakes: dict, expected) -> dict:
    """The ``mistakes`` (message -> wrong answer) whose answer differs from ``expected``."""
    return {message: wrong for message, wrong in mistakes.items() if wrong != expected}


def expect_answer(got, expected, mistakes: dict, otherwise: str | None = None) -> None:
    """A plain answer (a name, a flag, a dict) equal to ``expected``; else the message of the
    first known mistake it equals, else ``otherwise`` (when given)."""
    if got == expected:
        return
    name_mistake(mistakes, lambda wrong: got == wrong)
    if otherwise is not None:
        raise Mismatch(otherwise)


def name_mistake(mistakes: dict, matches: Callable[[object], bool]) -> None:
    """Raise the message of the first of ``mistakes`` (message -> wrong value) whose value
    ``matches`` the learner's; return if none does."""
    for message, wrong in mistakes.items():
        if matches(wrong):
            raise Mismatch(message)


def randint(gen: torch.Generator, lo: int, hi: int) -> int:
    """A hidden integer in ``[lo, hi)``."""
    return int(torch.randint(lo, hi, (1,), generator=gen))
