"""Week 3: the feed-forward block of a LLaMA-style transformer.

SwiGLU (Shazeer, 2020, "GLU Variants Improve Transformer") gates one linear projection of
the input with the SiLU of another, then projects back to the model width.
"""

import torch.nn.functional as F
from torch import Tensor, nn


class SwiGLU(nn.Module):
    """Gated feed-forward block: ``down_proj(silu(gate_proj(x)) * up_proj(x))``.

    Args:
        dim: model width (input and output size).
        hidden_dim: width of the gated hidden layer.

    State dict:
        ``gate_proj.weight``: ``(hidden_dim, dim)``
        ``up_proj.weight``: ``(hidden_dim, dim)``
        ``down_proj.weight``: ``(dim, hidden_dim)``

    Shapes:
        ``x``: ``(..., dim)`` -> ``(..., dim)``.
    """

    def __init__(self, dim: int, hidden_dim: int) -> None:
        super().__init__()
        self.gate_proj = nn.Linear(dim, hidden_dim, bias=False)
        self.up_proj = nn.Linear(dim, hidden_dim, bias=False)
        self.down_proj = nn.Linear(hidden_dim, dim, bias=False)

    def forward(self, x: Tensor) -> Tensor:
        return self.down_proj(F.silu(self.gate_proj(x)) * self.up_proj(x))  # (..., dim)


def swiglu_hidden_dim(dim: int, hidden_dim: int, bias: bool = False) -> int:
    """The SwiGLU width with the parameters of a plain MLP ``dim -> hidden_dim -> dim``.

    SwiGLU has three ``dim x width`` matrices where the plain MLP has two (and, with ``bias``,
    ``hidden_dim + dim`` biases), so ``width = (2 * dim * hidden_dim + biases) / (3 * dim)``,
    rounded: ``8/3 * dim`` for the usual ``4 * dim``. The counts then differ by at most
    ``1.5 * dim`` parameters, under 1 % from ``dim = 19`` on (``solutions.ablate`` compares
    the MLPs at equal parameters with it).
    """
    plain = 2 * dim * hidden_dim + (hidden_dim + dim if bias else 0)
    return max(1, round(plain / (3 * dim)))
