"""Week 3: normalization layers.

RMSNorm (Zhang & Sennrich, 2019) is the LayerNorm that LLaMA, Mistral and Mixtral use: it
drops LayerNorm's mean subtraction and bias and only rescales by the root mean square.
"""

import torch
from torch import Tensor, nn


class RMSNorm(nn.Module):
    """Root-mean-square normalization over the last dimension.

    ``y = x / sqrt(mean(x**2) + eps) * weight``, with the normalization computed in float32
    and cast back to the input dtype before the weight is applied (as transformers' Llama).

    Args:
        dim: size of the last dimension of the input.
        eps: added to the mean square, inside the square root.

    State dict:
        ``weight``: ``(dim,)``, initialised to ones.

    Shapes:
        ``x``: ``(..., dim)`` -> ``(..., dim)``, same dtype as ``x``.
    """

    def __init__(self, dim: int, eps: float = 1e-6) -> None:
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x: Tensor) -> Tensor:
        # bf16 has too few mantissa bits for a stable mean of squares: compute in float32
        x32 = x.float()
        inv_rms = torch.rsqrt(x32.pow(2).mean(dim=-1, keepdim=True) + self.eps)  # (..., 1)
        return self.weight * (x32 * inv_rms).to(x.dtype)
