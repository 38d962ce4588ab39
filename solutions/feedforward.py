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
