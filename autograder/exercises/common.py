"""Building blocks for exercise graders: calls for the worker and checks for their results."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor, nn

from autograder.compare import Mismatch, check_tensor, close, describe


def randn(gen: torch.Generator, *shape: int, scale: float = 1.0, dtype=torch.float32) -> Tensor:
    return (torch.randn(*shape, generator=gen) * scale).to(dtype)


def module_call(symbol: str, args=(), kwargs=None, state=None, inputs=(), dtype=None,
                grad_output=None, return_init=False) -> dict:
    """Build ``symbol(*args, **kwargs)``, load ``state``, cast to ``dtype``, run ``forward``."""
    return {
        "kind": "module", "symbol": symbol, "args": list(args), "kwargs": kwargs or {},
        "state": state, "inputs": list(inputs), "dtype": dtype,
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


def run_reference(module: nn.Module, inputs: list[Tensor], grad_output: Tensor | None = None):
    """Run the reference the way the worker runs the learner's module: output and grads."""
    inputs = [t.clone().requires_grad_(grad_output is not None) for t in inputs]
    out = module(*inputs)
    first = out[0] if isinstance(out, tuple) else out
    grads: dict = {}
    if grad_output is not None:
        first.backward(grad_output.to(first.dtype))
        grads["inputs"] = [t.grad for t in inputs]
        grads["params"] = {n: p.grad for n, p in module.named_parameters()}
    detach = lambda t: t.detach() if isinstance(t, Tensor) else t
    out = tuple(detach(o) for o in out) if isinstance(out, tuple) else detach(out)
    return out, grads


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


def expect_property(holds: str, prop: Callable[[], bool], value: Callable[[], None]) -> None:
    """A property case, reported by what actually failed.

    ``prop`` checks the property on the learner's output: it raises ``Mismatch`` (its own
    message) when the property fails, and returns False when the output is too malformed to
    check it (wrong type or shape, NaN), leaving ``value`` to say why. ``value`` compares the
    output with the reference; when only it fails, the message says so, so that the case's
    name ("property: ...") is not read as the failure."""
    checked = prop()
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


def expect_no_future_leak(result: dict, batch: Tensor, cut: int, expected: Tensor,
                          mistakes: dict, hint: str) -> None:
    """The property case of causal attention: ``batch`` holds one sequence twice, the second
    with tokens ``cut..`` changed, so no output before ``cut`` may differ between the two; the
    first ``len(expected)`` rows must also equal ``expected``."""
    y = result["output"]
    T = batch.shape[1]

    def prop() -> bool:
        if not well_formed(y, batch.shape):
            return False
        diff = (y[0, :cut] - y[1, :cut]).abs().amax(-1)  # (cut,)
        changed = [i for i in range(cut) if diff[i] > 1e-5 + 1e-4 * y[0, i].abs().max()]
        if changed:
            raise Mismatch(f"changing only tokens {cut}..{T - 1} changed your output at "
                           f"position(s) {changed}: an output depends on a future token ({hint})")
        return True

    def value() -> None:
        if type(y) is not Tensor or y.shape != batch.shape:
            raise Mismatch(f"your output should have shape {tuple(batch.shape)}, got "
                           f"{describe(y)}")
        expect(y[:len(expected)], expected, mistakes=mistakes)
        expect_inputs_untouched(result, [batch])

    expect_property("no output depends on a future token", prop, value)


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


def expect_grads(result: dict, grads: dict, mistakes=None) -> None:
    if result.get("no_graph"):
        raise Mismatch("your output is not connected to autograd (did you use .detach(), "
                       ".item(), numpy or torch.no_grad()?), so nothing can be trained")
    for i, expected in enumerate(grads.get("inputs", [])):
        expect(result["input_grads"][i], expected, "gradient with respect to the input")
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
