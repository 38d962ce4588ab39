"""Week 9: the parts that make Llama 4 (Scout, Maverick) differ from Llama 2 and Mixtral.

- **Chunked attention** on the RoPE layers: the sequence is cut into chunks of
  ``attention_chunk_size`` tokens (8192) and a query sees only the earlier keys of its own
  chunk, so those layers cost ``O(T * chunk)`` and cache at most ``chunk`` keys.
- **NoPE layers**: every fourth layer has no rotary embedding and attends to the whole context
  (causal), so information still crosses chunk borders; "interleaved RoPE" (iRoPE) in Meta's
  words. Queries of those layers are scaled up with the position (**attention temperature**),
  which keeps attention sharp over very long contexts.
- **QK-norm**: on the RoPE layers the rotated queries and keys are RMS-normalised (no weight)
  per head before the scores, which bounds the logits.
- **MoE with a shared expert**: one routed expert per token (``top_k = 1``), picked on the raw
  router logits and weighted by the sigmoid of its logit, which multiplies the token *before*
  the expert, plus a shared SwiGLU that every token uses. Maverick alternates MoE and dense
  layers; Scout uses MoE in every layer.

transformers 5.25's ``Llama4TextAttention`` rotates interleaved pairs ``(2i, 2i+1)``
(``torch.view_as_complex`` on pairs), not the split halves of Llama 2.
"""

import torch
from torch import Tensor, nn

from solutions.efficient_attention import KVCache
from solutions.feedforward import SwiGLU


def chunked_attention_mask(seq_len: int, chunk: int, device=None) -> Tensor:
    """``True`` where query ``i`` may see key ``j``: ``j <= i`` in the same chunk,
    ``j // chunk == i // chunk``.

    Shapes:
        returns ``(T, T)``, dtype ``torch.bool``.
    """
    pos = torch.arange(seq_len, device=device)
    same_chunk = pos[:, None] // chunk == pos[None, :] // chunk
    return same_chunk & (pos[None, :] <= pos[:, None])


class ChunkedKVCache(KVCache):
    """Week 5's :class:`~solutions.efficient_attention.KVCache` for a chunked layer: after
    each update it keeps only the keys and values of the chunk the next token falls in (none
    when that token starts a new chunk), so it never holds more than ``chunk - 1`` tokens and
    the first key it returns always starts a chunk: the mask of ``T`` new queries on those
    ``S`` keys is then ``chunked_attention_mask(S, chunk)[S - T:]``.
    """

    def __init__(self, chunk: int) -> None:
        super().__init__()
        self.chunk = chunk

    def update(self, k: Tensor, v: Tensor) -> tuple[Tensor, Tensor]:
        k, v = super().update(k, v)  # (B, H_kv, S, D): the cached keys, then the new ones
        keep = self.pos % self.chunk  # the next token's chunk so far
        self.k, self.v = k[:, :, k.size(2) - keep:], v[:, :, k.size(2) - keep:]
        return k, v


def attention_temperature(positions: Tensor, attn_scale: float = 0.1,
                          floor_scale: int = 8192) -> Tensor:
    """Llama 4's query scale on its NoPE layers: ``1 + attn_scale * log(1 + floor((p + 1) /
    floor_scale))`` for the token at position ``p``: 1 for the first ``floor_scale - 1``
    tokens, then growing with the log of the position.

    Shapes:
        ``positions``: ``(T,)`` -> ``(T,)`` float32.
    """
    steps = torch.floor((positions.float() + 1.0) / floor_scale)
    return 1.0 + attn_scale * torch.log1p(steps)


def qk_norm(x: Tensor, eps: float = 1e-5) -> Tensor:
    """RMSNorm without a weight over the last dimension (computed in float32), as Llama 4
    applies to each head's rotated queries and keys."""
    x32 = x.float()
    return (x32 * torch.rsqrt(x32.pow(2).mean(-1, keepdim=True) + eps)).to(x.dtype)


class Llama4MoE(nn.Module):
    """Llama 4's feed-forward block: ``top_k`` routed SwiGLU experts plus a shared one.

    The experts are chosen on the raw logits; a chosen expert ``e`` gets
    ``sigmoid(logit_e) * x`` as input (Llama 4 scales the token, not the expert's output) and
    the outputs are summed with ``shared_experts(x)``.

    State dict (the names of :class:`~solutions.deepseek_moe.DeepSeekMoE`, so both count the
    same way): ``gate.weight`` ``(E, dim)``; ``experts.{e}.{gate,up,down}_proj.weight``;
    ``shared_experts.{gate,up,down}_proj.weight`` of width ``n_shared_experts * hidden_dim``.

    Shapes:
        ``x``: ``(B, T, dim)`` -> ``(y, router_logits)``: ``(B, T, dim)``, ``(B * T, E)``.
    """

    def __init__(self, dim: int, hidden_dim: int, n_experts: int, top_k: int = 1,
                 n_shared_experts: int = 1) -> None:
        super().__init__()
        self.top_k = top_k
        self.gate = nn.Linear(dim, n_experts, bias=False)
        self.experts = nn.ModuleList(SwiGLU(dim, hidden_dim) for _ in range(n_experts))
        self.shared_experts = SwiGLU(dim, n_shared_experts * hidden_dim)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        x_flat = x.reshape(-1, x.size(-1))  # (N, dim)
        router_logits = self.gate(x_flat)  # (N, E)
        top, chosen = router_logits.topk(self.top_k, dim=-1)  # (N, k)
        scores = torch.sigmoid(top.float()).to(x.dtype)  # independent, not normalised
        y = self.shared_experts(x_flat)
        routed = torch.zeros_like(x_flat)
        for e, expert in enumerate(self.experts):
            token_idx, slot = torch.where(chosen == e)
            routed.index_add_(0, token_idx, expert(x_flat[token_idx] * scores[token_idx, slot,
                                                                                None]))
        return (y + routed).view_as(x), router_logits
