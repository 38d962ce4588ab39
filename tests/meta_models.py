"""Full-size models on PyTorch's meta device, to count their parameters: every shape, no
storage.

A meta tensor holds no values, so filling one with random weights does nothing, yet each
``nn.init`` call still goes through torch's Python reference implementations, milliseconds a
tensor: 20 s of CPU for DeepSeek-V3's 60,000 modules, against 3 s without. ``on_meta()``
skips those calls (as transformers' ``no_init_weights`` does); the modules, their
parameters and their shapes are the same. ``preset_model`` builds each preset once a session.
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Iterator
from unittest import mock

import torch
from torch import nn

from solutions.model import GPTConfig, MiniGPT

# the initialisers that nn.Linear, nn.Embedding, the norms and MiniGPT._init_weights call
INITIALISERS = ("normal_", "uniform_", "zeros_", "ones_", "kaiming_uniform_", "trunc_normal_")


def _keep(tensor: torch.Tensor, *args, **kwargs) -> torch.Tensor:
    return tensor


@contextlib.contextmanager
def on_meta() -> Iterator[None]:
    """Build on the meta device, without the (empty) random initialisation."""
    with torch.device("meta"), mock.patch.multiple(nn.init, **dict.fromkeys(INITIALISERS, _keep)):
        yield


@functools.cache
def preset_model(name: str) -> MiniGPT:
    """``MiniGPT(GPTConfig.preset(name))`` on the meta device, built once; read it, never
    change it."""
    with on_meta():
        return MiniGPT(GPTConfig.preset(name))
