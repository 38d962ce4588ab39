"""Comparisons made in the grading process, on data that came back from a worker."""

from __future__ import annotations

import torch
from torch import Tensor

# (rtol, atol) per dtype; bf16 keeps 8 bits of mantissa, so one rounding step is ~0.4 %
TOLERANCES = {
    torch.float64: (1e-5, 1e-6),
    torch.float32: (1e-4, 1e-5),
    torch.float16: (2e-3, 1e-3),
    torch.bfloat16: (1.6e-2, 1e-2),
}


class Mismatch(Exception):
    """A learner's value differs from the expected one; the message says how."""


def unwrap(value):
    """Turn the worker's encoding of tuples and lists back into Python containers."""
    if isinstance(value, dict) and "__sequence__" in value:
        items = [unwrap(v) for v in value["items"]]
        return items if value["__sequence__"] == "list" else tuple(items)
    if isinstance(value, dict) and "__dict__" in value:
        return {k: unwrap(v) for k, v in value["__dict__"].items()}
    return value


def describe(value) -> str:
    if isinstance(value, Tensor):
        return f"a tensor of shape {tuple(value.shape)} and dtype {value.dtype}"
    if isinstance(value, dict) and "__unsupported__" in value:
        return f"an object of type {value['__unsupported__']}"
    if isinstance(value, tuple):
        return f"a tuple of {len(value)} items"
    return f"{type(value).__name__} {value!r}"[:120]


def close(actual: Tensor, expected: Tensor, rtol: float | None = None, atol: float | None = None):
    rt, at = TOLERANCES.get(expected.dtype, (1e-5, 1e-6))
    rt, at = rtol if rtol is not None else rt, atol if atol is not None else at
    return torch.allclose(actual.double(), expected.double(), rtol=rt, atol=at)


def check_tensor(
    actual,
    expected: Tensor,
    what: str = "output",
    rtol: float | None = None,
    atol: float | None = None,
    check_dtype: bool = True,
) -> None:
    """Raise ``Mismatch`` unless ``actual`` is a tensor equal to ``expected`` in every respect."""
    if type(actual) is not Tensor:
        raise Mismatch(f"your {what} should be a tensor, got {describe(actual)}")
    if actual.shape != expected.shape:
        raise Mismatch(
            f"your {what} has shape {tuple(actual.shape)}, expected {tuple(expected.shape)}"
        )
    if check_dtype and actual.dtype != expected.dtype:
        raise Mismatch(f"your {what} has dtype {actual.dtype}, expected {expected.dtype}")
    if expected.dtype == torch.bool or not expected.is_floating_point():
        if not torch.equal(actual, expected):
            wrong = (actual != expected).sum().item()
            raise Mismatch(f"your {what} differs from the expected one in {wrong} entries")
        return
    bad = ~torch.isfinite(actual) & torch.isfinite(expected)
    if bad.any():
        raise Mismatch(f"your {what} has {int(bad.sum())} NaN or infinite values")
    if not close(actual, expected, rtol, atol):
        diff = (actual.double() - expected.double()).abs()
        worst = diff.max().item()
        scale = expected.double().abs().max().item()
        raise Mismatch(
            f"your {what} differs from the expected one: largest difference {worst:.3g} "
            f"(values up to {scale:.3g})"
        )
