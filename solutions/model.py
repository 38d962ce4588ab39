"""Week 7: a mini-GPT of your own, assembled from the parts of weeks 1-6.

One decoder-only model whose config picks the architecture: GPT-2 (LayerNorm, GELU MLP,
learned positions, tied embeddings, biases), Llama 2 (RMSNorm, SwiGLU, RoPE, GQA), Mistral
(+ sliding window) and Mixtral (+ mixture of experts) are all presets of it, and so, from week
9, are DeepSeek-V3 (latent attention, DeepSeekMoE) and Llama 4 (chunked and NoPE layers); and
``MiniGPT.from_hf`` loads those models' transformers weights. ``generate`` samples from it
with temperature, top-k and top-p, and decodes with a KV cache.

The attention and RMSNorm layers have a fast path (``fast``, off by default, on in the
trainer), with the same results up to float rounding: PyTorch's fused kernels, RoPE as one
complex multiplication, and on a CPU RMSNorm's backward written out by hand.
"""

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from solutions.attention import scaled_dot_product_attention
from solutions.deepseek_moe import DeepSeekMoE
from solutions.efficient_attention import (
    Attention,
    KVCache,
    repeat_kv,
    sliding_window_mask,
)
from solutions.feedforward import SwiGLU
from solutions.latent_attention import CachedLatentAttention
from solutions.llama4 import (
    ChunkedKVCache,
    Llama4MoE,
    attention_temperature,
    chunked_attention_mask,
    qk_norm,
)
from solutions.moe import MoE
from solutions.normalization import RMSNorm
from solutions.positions import ROPE_THETA, alibi_bias, rope_angles, rope_interleaved


def pairs_side_by_side(n_heads: int, head_dim: int) -> Tensor:
    """Each head's rows ``[0, D/2, 1, D/2 + 1, ...]``: the order that puts each RoPE pair
    ``(p, p + D/2)`` side by side (the inverse of week 4's ``interleaved_to_halves``).

    Shapes:
        returns ``(n_heads * head_dim,)``, indices into the rows of a q or k projection.
    """
    half = torch.arange(head_dim // 2)
    per_head = torch.stack((half, half + head_dim // 2), dim=-1).flatten()  # (D,)
    return (torch.arange(n_heads)[:, None] * head_dim + per_head).flatten()


def rotate_pairs(x: Tensor, angles: Tensor) -> Tensor:
    """RoPE on ``x`` whose pairs sit side by side: each pair ``(a, b)`` is the complex number
    ``a + ib``, and turning it by ``angle`` is multiplying by ``e^(i angle)``, one operation
    forward and one backward (``apply_rope`` takes about five of each). Computed in float32.

    Shapes:
        ``x``: ``(..., T, D)``, ``angles``: ``(T, D/2)`` -> ``(..., T, D)``, dtype of ``x``.
    """
    turn = torch.polar(torch.ones_like(angles), angles)  # (T, D/2): e^(i angle)
    pairs = torch.view_as_complex(x.float().unflatten(-1, (-1, 2)))  # (..., T, D/2), no copy
    return torch.view_as_real(pairs * turn).flatten(-2).to(x.dtype)


class CachedAttention(Attention):
    """Week 5's :class:`Attention` (with its KV cache) and what a whole model needs: biases
    (GPT-2), no rotary embedding (``rope_theta=None``: GPT-2 adds learned positions to the
    embeddings instead), and a fast path.

    ``fast`` (a class attribute; the trainer's ``fast`` switch sets it per module) swaps in
    faster steps with the same results up to float rounding. ``project`` and ``rotate``: RoPE
    as one complex multiplication (``rotate_pairs``), which wants each rotated pair side by
    side in memory, so the rows of ``q_proj`` and ``k_proj`` are read in that order (no
    q . k changes: queries and keys are reordered alike); not under ``torch.compile``, which
    fuses the plain form and has no complex numbers. ``attend``: PyTorch's fused
    ``F.scaled_dot_product_attention``. The cache then holds keys in the reordered layout:
    set ``fast`` between generations, not during one.

    Llama 4's options (week 9), in ``rotate`` and ``attend``: ``rope_pairs="interleaved"``
    rotates pairs ``(2i, 2i+1)`` (already side by side: the fast path reorders nothing);
    ``qk_norm_eps`` RMS-normalises each head's queries and keys (no weight) after RoPE;
    ``attn_scale`` multiplies the queries by :func:`~solutions.llama4.attention_temperature`
    of their positions (with ``floor_scale``), on the layers without RoPE; ``chunk`` lets a
    query see only the earlier keys of its own chunk of ``chunk`` tokens.

    ``alibi`` (week 4's ALiBi, with ``rope_theta=None``): ``alibi_bias`` is added to the
    scores, a penalty growing with the distance to each key, with one slope per head; it
    needs no table of positions, so like RoPE and no positions at all it runs on sequences of
    any length.

    State dict: as :class:`Attention`; with ``bias``, also ``{q,k,v,o}_proj.bias``.
    """

    fast: bool = False

    def __init__(
        self,
        dim: int,
        n_heads: int,
        n_kv_heads: int | None = None,
        window: int | None = None,
        rope_theta: float | None = ROPE_THETA,
        bias: bool = False,
        rope_pairs: str = "halves",
        chunk: int | None = None,
        qk_norm_eps: float | None = None,
        attn_scale: float = 0.0,
        floor_scale: int = 8192,
        alibi: bool = False,
    ) -> None:
        super().__init__(dim, n_heads, n_kv_heads, window)
        self.rope_theta, self.rope_pairs, self.alibi = rope_theta, rope_pairs, alibi
        self.chunk, self.qk_norm_eps = chunk, qk_norm_eps
        self.attn_scale, self.floor_scale = attn_scale, floor_scale
        if bias:
            for name in ("q_proj", "k_proj", "v_proj", "o_proj"):
                old = getattr(self, name)
                setattr(self, name, nn.Linear(old.in_features, old.out_features, bias=True))

    def _complex_rope(self) -> bool:
        return self.fast and self.rope_theta is not None and not torch.compiler.is_compiling()

    def project(self, x: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        if not (self._complex_rope() and self.rope_pairs == "halves"):
            return super().project(x)
        B, T, _ = x.shape

        def heads(proj: nn.Linear, n: int) -> Tensor:  # (B, n, T, D), pairs side by side
            rows = pairs_side_by_side(n, self.head_dim).to(x.device)
            bias = None if proj.bias is None else proj.bias[rows]
            return F.linear(x, proj.weight[rows], bias).view(B, T, n, -1).transpose(1, 2)

        v = self.v_proj(x).view(B, T, self.n_kv_heads, self.head_dim).transpose(1, 2)
        return heads(self.q_proj, self.n_heads), heads(self.k_proj, self.n_kv_heads), v

    def rotate(self, q: Tensor, k: Tensor, positions: Tensor) -> tuple[Tensor, Tensor]:
        if self._complex_rope():
            angles = rope_angles(positions, self.head_dim, self.rope_theta)  # (T, D/2), float32
            q, k = rotate_pairs(q, angles), rotate_pairs(k, angles)
        elif self.rope_theta is not None and self.rope_pairs == "interleaved":
            q = rope_interleaved(q, positions, self.rope_theta)
            k = rope_interleaved(k, positions, self.rope_theta)
        elif self.rope_theta is not None:  # learned positions (None): nothing to rotate
            q, k = super().rotate(q, k, positions)
        if self.qk_norm_eps is not None:  # Llama 4: bounded scores, whatever the activations
            q, k = qk_norm(q, self.qk_norm_eps), qk_norm(k, self.qk_norm_eps)
        if self.attn_scale:  # Llama 4's NoPE layers: sharper attention far into the context
            temperature = attention_temperature(positions, self.attn_scale, self.floor_scale)
            q = q * temperature[:, None].to(q.dtype)
        return q, k

    def attend(self, q: Tensor, k: Tensor, v: Tensor) -> Tensor:
        if self.chunk is None and not self.fast and not self.alibi:
            return super().attend(q, k, v)
        n_rep = self.n_heads // self.n_kv_heads
        k, v = repeat_kv(k, n_rep), repeat_kv(v, n_rep)  # (B, H, S, D)
        T, S = q.size(2), k.size(2)
        if self.chunk is not None:  # Llama 4: the first of the S keys starts a chunk (new_cache)
            mask = chunked_attention_mask(S, self.chunk, q.device)[S - T:]  # (T, S)
            if not self.fast and not self.alibi:
                return scaled_dot_product_attention(q, k, v, mask)
        elif T == S and (self.window is None or T <= self.window) and not self.alibi:
            return F.scaled_dot_product_attention(q, k, v, is_causal=True)
        else:
            mask = sliding_window_mask(S, self.window, q.device)[S - T:]  # (T, S)
        if self.alibi:  # the queries are the last T of the S positions: the last T rows
            bias = alibi_bias(self.n_heads, S).to(q.device, q.dtype)[:, S - T:]  # (H, T, S)
            mask = bias.masked_fill(~mask, float("-inf"))  # a float mask is added to the scores
        return F.scaled_dot_product_attention(q, k, v, attn_mask=mask)

    def new_cache(self) -> KVCache:
        """The cache ``forward`` expects: with ``chunk``, one that keeps only the current
        chunk's keys, so that the first key it returns always starts a chunk."""
        return KVCache(self.window) if self.chunk is None else ChunkedKVCache(self.chunk)


@dataclass
class GPTConfig:
    """The architecture of a :class:`MiniGPT`; ``GPTConfig.preset(name)`` gives a named one.

    ``n_kv_heads=None`` means ``n_heads`` (MHA); ``mlp`` is the gated ``"swiglu"`` or a plain
    MLP with ``"gelu"`` (GPT-2), ``"relu"`` (the original transformer) or ``"silu"``;
    ``hidden_dim=None`` means ``4 * dim`` for a plain MLP and LLaMA's ``8/3 * dim`` rounded up
    to a multiple of 256 for SwiGLU (``swiglu_hidden_dim`` gives the width with a plain MLP's
    parameter count); ``gelu_approximate`` is ``F.gelu``'s argument: GPT-2 was trained with
    the tanh approximation, which its weights need; the exact GELU is cheaper on a CPU.
    ``pos``: ``"rope"`` (rotated queries and keys), ``"learned"`` (GPT-2's table of
    ``max_seq_len`` rows, added to the embeddings: longer inputs raise an error),
    ``"alibi"`` (a distance penalty on the scores) or ``"none"`` (NoPE: only the causal mask
    tells order); all but ``"learned"`` run on sequences longer than ``max_seq_len``.
    ``window=None`` is full causal attention; ``n_experts=0`` is a dense MLP (else a MoE of
    SwiGLU experts with ``top_k`` per token); ``bias`` adds biases to the attention, MLP and
    LayerNorms (GPT-2).

    Week 9's fields. Mixture of experts: ``moe`` picks the block (``"mixtral"``: week 6's
    ``MoE``; ``"deepseek"``: ``DeepSeekMoE``; ``"llama4"``: ``Llama4MoE``), whose routed
    experts are ``expert_hidden_dim`` wide (None: ``hidden_dim``) beside ``n_shared_experts``
    shared ones; layer ``i`` is a MoE layer iff ``i >= first_dense_layers`` and
    ``(i + 1) % moe_every == 0``, the others use a SwiGLU of width ``hidden_dim``.
    ``kv_lora_rank`` set means multi-head latent attention (with ``q_lora_rank``,
    ``qk_nope_head_dim``, ``qk_rope_head_dim``, ``v_head_dim``). Llama 4: ``rope_pairs``
    ("halves" | "interleaved"); every ``nope_every``-th layer has no RoPE (0: none) and
    attends to everything, with the query temperature ``attn_scale``/``floor_scale``; the
    RoPE layers attend within chunks of ``chunk`` tokens and, with ``qk_norm``, normalise
    their queries and keys.
    """

    vocab_size: int = 65
    dim: int = 64
    n_layers: int = 2
    n_heads: int = 4
    n_kv_heads: int | None = None
    hidden_dim: int | None = None
    max_seq_len: int = 64
    norm: str = "rmsnorm"  # "rmsnorm" | "layernorm"
    mlp: str = "swiglu"  # "swiglu" | "gelu" | "relu" | "silu"
    gelu_approximate: str = "tanh"  # the GELU MLP's: "tanh" (GPT-2) | "none" (exact, nanoGPT)
    pos: str = "rope"  # "rope" | "learned" | "alibi" | "none"
    rope_theta: float = ROPE_THETA
    window: int | None = None
    n_experts: int = 0
    top_k: int = 2
    tie_embeddings: bool = False
    bias: bool = False
    norm_eps: float = 1e-5
    # week 9: DeepSeek-V3's experts and latent attention, Llama 4's layers
    moe: str = "mixtral"  # "mixtral" | "deepseek" | "llama4"
    expert_hidden_dim: int | None = None
    n_shared_experts: int = 0
    n_group: int = 1
    topk_group: int = 1
    routed_scaling_factor: float = 1.0
    norm_topk_prob: bool = True
    first_dense_layers: int = 0
    moe_every: int = 1
    kv_lora_rank: int | None = None
    q_lora_rank: int | None = None
    qk_nope_head_dim: int = 0
    qk_rope_head_dim: int = 0
    v_head_dim: int = 0
    rope_pairs: str = "halves"  # "halves" | "interleaved"
    nope_every: int = 0
    chunk: int | None = None
    qk_norm: bool = False
    attn_scale: float = 0.0
    floor_scale: int = 8192

    def __post_init__(self) -> None:
        assert self.norm in ("rmsnorm", "layernorm"), f"unknown norm {self.norm!r}"
        assert self.mlp in ("swiglu", "gelu", "relu", "silu"), f"unknown mlp {self.mlp!r}"
        assert self.pos in ("rope", "learned", "alibi", "none"), f"unknown pos {self.pos!r}"
        assert self.moe in ("mixtral", "deepseek", "llama4")
        assert self.rope_pairs in ("halves", "interleaved")
        assert self.gelu_approximate in ("tanh", "none")
        assert self.dim % self.n_heads == 0, "dim must be divisible by n_heads"
        self.n_kv_heads = self.n_kv_heads or self.n_heads
        if self.hidden_dim is None:
            llama = 256 * math.ceil(8 * self.dim / 3 / 256)
            self.hidden_dim = llama if self.mlp == "swiglu" else 4 * self.dim
        self.expert_hidden_dim = self.expert_hidden_dim or self.hidden_dim

    @classmethod
    def preset(cls, name: str, **overrides) -> "GPTConfig":
        """A named configuration of :data:`PRESETS`, with any field overridden."""
        return cls(**{**PRESETS[name], **overrides})

    def is_moe_layer(self, layer: int) -> bool:
        return bool(self.n_experts) and layer >= self.first_dense_layers and (
            (layer + 1) % self.moe_every == 0)

    def has_rope(self, layer: int) -> bool:
        """Layer ``layer`` rotates its queries and keys (Llama 4: not every fourth layer)."""
        return self.pos == "rope" and not (self.nope_every and (layer + 1) % self.nope_every == 0)


_GPT2 = dict(vocab_size=50257, dim=768, n_layers=12, n_heads=12, max_seq_len=1024,
             norm="layernorm", mlp="gelu", pos="learned", tie_embeddings=True, bias=True)
_LLAMA2_7B = dict(vocab_size=32000, dim=4096, n_layers=32, n_heads=32, max_seq_len=4096)
_MISTRAL_7B = dict(_LLAMA2_7B, n_kv_heads=8, hidden_dim=14336, max_seq_len=32768, window=4096)
_TINY = dict(vocab_size=65, dim=64, n_layers=2, n_heads=4, n_kv_heads=2, max_seq_len=64)
_DEEPSEEK_V3 = dict(vocab_size=129280, dim=7168, n_layers=61, n_heads=128, hidden_dim=18432,
                    max_seq_len=163840, norm_eps=1e-6, kv_lora_rank=512, q_lora_rank=1536,
                    qk_nope_head_dim=128, qk_rope_head_dim=64, v_head_dim=128,
                    rope_pairs="interleaved", moe="deepseek", n_experts=256, top_k=8,
                    expert_hidden_dim=2048, n_shared_experts=1, n_group=8, topk_group=4,
                    routed_scaling_factor=2.5, first_dense_layers=3)
_LLAMA4_SCOUT = dict(vocab_size=202048, dim=5120, n_layers=48, n_heads=40, n_kv_heads=8,
                     hidden_dim=16384, max_seq_len=10485760, rope_theta=500000.0,
                     rope_pairs="interleaved", moe="llama4", n_experts=16, top_k=1,
                     expert_hidden_dim=8192, n_shared_experts=1, nope_every=4, chunk=8192,
                     qk_norm=True, attn_scale=0.1, floor_scale=8192)
PRESETS: dict[str, dict] = {  # GPTConfig fields; the others keep their defaults
    "gpt2": _GPT2,  # 124M
    "gpt2_medium": dict(_GPT2, dim=1024, n_layers=24, n_heads=16),  # 355M
    "gpt2_large": dict(_GPT2, dim=1280, n_layers=36, n_heads=20),  # 774M
    "gpt2_xl": dict(_GPT2, dim=1600, n_layers=48, n_heads=25),  # 1.5B
    "llama2_7b": _LLAMA2_7B,  # hidden_dim 11008 by LLaMA's rule
    "llama2_13b": dict(_LLAMA2_7B, dim=5120, n_layers=40, n_heads=40),  # 13824, same rule
    "llama2_70b": dict(_LLAMA2_7B, dim=8192, n_layers=80, n_heads=64, n_kv_heads=8,
                       hidden_dim=28672),
    "mistral_7b": _MISTRAL_7B,
    "mixtral_8x7b": dict(_MISTRAL_7B, window=None, rope_theta=1e6, n_experts=8, top_k=2),
    # nanoGPT's character-level Shakespeare size (65 characters, block 256), Llama-style
    "shakespeare_char": dict(vocab_size=65, dim=384, n_layers=6, n_heads=6, max_seq_len=256),
    # tiny ones train in seconds on a CPU
    "tiny": _TINY,
    "tiny_gpt2": dict(_TINY, n_kv_heads=None, norm="layernorm", mlp="gelu", pos="learned",
                      tie_embeddings=True, bias=True),
    "tiny_mistral": dict(_TINY, window=8),
    "tiny_mixtral": dict(_TINY, n_experts=4, top_k=2),
    # week 9: the text models of their published config.json files (DeepSeek-V3 without its
    # multi-token-prediction layer). The RoPE scalings that stretch their contexts (YaRN,
    # llama3) are left out: they change no parameter count.
    "deepseek_v3": _DEEPSEEK_V3,
    "llama4_scout": _LLAMA4_SCOUT,
    "llama4_maverick": dict(_LLAMA4_SCOUT, n_experts=128, moe_every=2, qk_norm=False,
                            max_seq_len=1048576),
    "tiny_deepseek": dict(_TINY, n_kv_heads=None, hidden_dim=96, norm_eps=1e-6,
                          kv_lora_rank=16, q_lora_rank=24, qk_nope_head_dim=16,
                          qk_rope_head_dim=8, v_head_dim=16, rope_pairs="interleaved",
                          moe="deepseek", n_experts=8, top_k=2, expert_hidden_dim=32,
                          n_shared_experts=1, n_group=4, topk_group=2, routed_scaling_factor=2.5,
                          first_dense_layers=1),
    "tiny_llama4": dict(_TINY, n_layers=4, rope_pairs="interleaved", moe="llama4", n_experts=4,
                        top_k=1, expert_hidden_dim=64, n_shared_experts=1, moe_every=2,
                        nope_every=4, chunk=16, qk_norm=True, attn_scale=0.1, floor_scale=8),
}


class RMSNormFunction(torch.autograd.Function):
    """RMSNorm of a float32 ``x`` with its backward written out, for the CPU: autograd
    through the plain formula (and through ``F.rms_norm``, the same chain of small
    operations there) takes about three times as long.

    With ``x_hat = x * r``, ``r = (mean(x^2) + eps)^(-1/2)`` and ``g = grad * weight``:
    ``d loss / dx = r * (g - x_hat * mean(g * x_hat))``, ``d loss / d weight = sum(grad *
    x_hat)`` over every row.
    """

    @staticmethod
    def forward(ctx, x: Tensor, weight: Tensor, eps: float) -> Tensor:
        inv_rms = torch.rsqrt(x.pow(2).mean(dim=-1, keepdim=True) + eps)  # (..., 1)
        x_hat = x * inv_rms
        ctx.save_for_backward(x_hat, weight, inv_rms)
        return x_hat * weight

    @staticmethod
    def backward(ctx, grad: Tensor) -> tuple[Tensor, Tensor, None]:
        x_hat, weight, inv_rms = ctx.saved_tensors
        g = grad * weight  # d loss / d x_hat
        dot = (g * x_hat).mean(dim=-1, keepdim=True)  # (..., 1)
        grad_x = torch.addcmul(g, x_hat, dot, value=-1).mul_(inv_rms)
        grad_weight = (grad * x_hat).flatten(0, -2).sum(0)  # (dim,)
        return grad_x, grad_weight, None


class FastRMSNorm(RMSNorm):
    """Week 3's ``RMSNorm`` with a fast path for float32 inputs when ``fast`` is set (like
    ``CachedAttention.fast``): PyTorch's fused ``F.rms_norm`` on a GPU, ``RMSNormFunction``
    on a CPU. The same weights, and the same outputs up to float rounding.
    """

    fast: bool = False

    def __init__(self, dim: int, eps: float = 1e-6) -> None:
        super().__init__(dim, eps)
        self.eps = eps  # what the fast path reads, whatever the parent names it

    def forward(self, x: Tensor) -> Tensor:
        if not self.fast or x.dtype != torch.float32:
            return super().forward(x)
        if x.is_cuda:
            return F.rms_norm(x, self.weight.shape, self.weight, self.eps)
        return RMSNormFunction.apply(x, self.weight, self.eps)


def make_norm(cfg: GPTConfig) -> nn.Module:
    """The config's normalization layer: ``RMSNorm`` (as ``FastRMSNorm``) or ``nn.LayerNorm``
    (with bias if ``bias``)."""
    if cfg.norm == "rmsnorm":
        return FastRMSNorm(cfg.dim, cfg.norm_eps)
    return nn.LayerNorm(cfg.dim, cfg.norm_eps, bias=cfg.bias)


class GeluMLP(nn.Module):
    """The plain (ungated) feed-forward block: ``down_proj(act(up_proj(x)))``. ``activation``
    is ``"gelu"`` (GPT-2's; ``approximate="tanh"`` is GPT-2's GELU, transformers'
    ``gelu_new``, ``"none"`` the exact one, erf), ``"relu"`` (the original transformer's) or
    ``"silu"`` (SiLU alone, without SwiGLU's gate).

    State dict: ``up_proj.weight`` ``(hidden_dim, dim)``, ``down_proj.weight``
    ``(dim, hidden_dim)``, and their ``.bias`` when ``bias`` (GPT-2's ``c_fc``, ``c_proj``).
    """

    def __init__(self, dim: int, hidden_dim: int, bias: bool = True,
                 approximate: str = "tanh", activation: str = "gelu") -> None:
        super().__init__()
        assert activation in ("gelu", "relu", "silu"), f"unknown activation {activation!r}"
        self.approximate, self.activation = approximate, activation
        self.up_proj = nn.Linear(dim, hidden_dim, bias=bias)
        self.down_proj = nn.Linear(hidden_dim, dim, bias=bias)

    def forward(self, x: Tensor) -> Tensor:
        h = self.up_proj(x)  # (..., hidden_dim)
        if self.activation == "gelu":
            h = F.gelu(h, approximate=self.approximate)
        else:
            h = F.relu(h) if self.activation == "relu" else F.silu(h)
        return self.down_proj(h)  # (..., dim)



class Block(nn.Module):
    """One pre-norm transformer layer: ``x + attn(norm(x))``, then ``h + mlp(norm(h))``.

    ``layer``, its index, matters only for week 9's models, whose layers differ: DeepSeek-V3's
    first layers are dense, Llama 4 alternates MoE and dense, RoPE and NoPE layers.

    State dict: ``input_layernorm.*``, ``self_attn.{q,k,v,o}_proj.*`` (see ``Attention``; or
    those of ``MultiHeadLatentAttention``), ``post_attention_layernorm.*``, ``mlp.*``
    (``SwiGLU``, ``GeluMLP`` for gelu/relu/silu, ``MoE``, ``DeepSeekMoE`` or ``Llama4MoE``).
    """

    def __init__(self, cfg: GPTConfig, layer: int = 0) -> None:
        super().__init__()
        rope = cfg.has_rope(layer)
        self.input_layernorm = make_norm(cfg)
        if cfg.kv_lora_rank:  # DeepSeek-V3's multi-head latent attention (week 9)
            self.self_attn = CachedLatentAttention(
                cfg.dim, cfg.n_heads, cfg.q_lora_rank, cfg.kv_lora_rank, cfg.qk_nope_head_dim,
                cfg.qk_rope_head_dim, cfg.v_head_dim, cfg.rope_theta)
        else:  # Llama 4 (week 9): chunks and QK-norm with RoPE, a temperature without
            self.self_attn = CachedAttention(
                cfg.dim, cfg.n_heads, cfg.n_kv_heads, cfg.window, cfg.rope_theta if rope else None,
                bias=cfg.bias, rope_pairs=cfg.rope_pairs, chunk=cfg.chunk if rope else None,
                qk_norm_eps=cfg.norm_eps if cfg.qk_norm and rope else None,
                attn_scale=0.0 if rope else cfg.attn_scale, floor_scale=cfg.floor_scale,
                alibi=cfg.pos == "alibi")
        self.post_attention_layernorm = make_norm(cfg)
        moe = cfg.is_moe_layer(layer)
        if moe and cfg.moe == "deepseek":
            self.mlp = DeepSeekMoE(cfg.dim, cfg.expert_hidden_dim, cfg.n_experts,
                                   cfg.n_shared_experts, cfg.top_k, cfg.n_group, cfg.topk_group,
                                   cfg.routed_scaling_factor, cfg.norm_topk_prob)
        elif moe and cfg.moe == "llama4":
            self.mlp = Llama4MoE(cfg.dim, cfg.expert_hidden_dim, cfg.n_experts, cfg.top_k,
                                 cfg.n_shared_experts)
        elif moe:
            self.mlp = MoE(cfg.dim, cfg.hidden_dim, cfg.n_experts, cfg.top_k)
        elif cfg.mlp == "swiglu":
            self.mlp = SwiGLU(cfg.dim, cfg.hidden_dim)
        else:
            self.mlp = GeluMLP(cfg.dim, cfg.hidden_dim, cfg.bias, cfg.gelu_approximate, cfg.mlp)

    def forward(self, x: Tensor, cache: KVCache | None = None) -> tuple[Tensor, Tensor | None]:
        """Returns the new ``(B, T, dim)`` activations and the router logits (None if dense)."""
        h = x + self.self_attn(self.input_layernorm(x), cache)  # (B, T, dim)
        out = self.mlp(self.post_attention_layernorm(h))
        out, router_logits = out if isinstance(out, tuple) else (out, None)
        return h + out, router_logits


class MiniGPT(nn.Module):
    """A decoder-only language model: embeddings, ``n_layers`` blocks, final norm, LM head.

    State dict (the keys of transformers' Llama/Mistral/Mixtral without their ``model.``):
        ``embed_tokens.weight`` ``(vocab_size, dim)``; ``embed_positions.weight``
        ``(max_seq_len, dim)`` only with learned positions; ``layers.{i}.*`` (see ``Block``);
        ``norm.*``; ``lm_head.weight`` ``(vocab_size, dim)``, the same tensor as
        ``embed_tokens.weight`` when ``tie_embeddings``.

    After each forward, ``router_logits`` holds one ``(B * T, n_experts)`` tensor per layer
    of a MoE model (empty otherwise), for ``load_balancing_loss``; the returned loss is the
    plain next-token cross-entropy.
    """

    def __init__(self, config: GPTConfig) -> None:
        super().__init__()
        self.config = config
        self.embed_tokens = nn.Embedding(config.vocab_size, config.dim)
        if config.pos == "learned":
            self.embed_positions = nn.Embedding(config.max_seq_len, config.dim)
        self.layers = nn.ModuleList(Block(config, i) for i in range(config.n_layers))
        self.norm = make_norm(config)
        self.lm_head = nn.Linear(config.dim, config.vocab_size, bias=False)
        if config.tie_embeddings:
            self.lm_head.weight = self.embed_tokens.weight
        self.router_logits: list[Tensor] = []
        self.apply(self._init_weights)

    @staticmethod
    def _init_weights(module: nn.Module) -> None:
        """GPT-2's initialisation: normal(0, 0.02) weights, zero biases, norms at one."""
        if isinstance(module, (nn.Linear, nn.Embedding)):
            nn.init.normal_(module.weight, std=0.02)
        if isinstance(module, nn.Linear) and module.bias is not None:
            nn.init.zeros_(module.bias)

    def new_cache(self) -> list[KVCache]:
        """An empty KV cache, one per layer, to pass to ``forward`` when decoding."""
        return [layer.self_attn.new_cache() for layer in self.layers]

    def forward(
        self, idx: Tensor, targets: Tensor | None = None, cache: list[KVCache] | None = None
    ) -> tuple[Tensor, Tensor | None]:
        """``idx``: ``(B, T)`` token ids -> ``(logits (B, T, vocab_size), loss or None)``.

        ``targets``: ``(B, T)`` next-token ids (-100 ignored) for the cross-entropy loss.
        ``cache``: from ``new_cache()``; the tokens then continue the cached ones.
        """
        B, T = idx.shape
        start = 0 if cache is None else cache[0].pos
        x = self.embed_tokens(idx)  # (B, T, dim)
        if self.config.pos == "learned":
            if start + T > self.config.max_seq_len:  # the one position scheme with an end
                raise ValueError(f"positions up to {start + T - 1}, but the learned position "
                                 f"table has {self.config.max_seq_len} rows (max_seq_len)")
            x = x + self.embed_positions(torch.arange(start, start + T, device=idx.device))
        self.router_logits = []
        for i, layer in enumerate(self.layers):
            x, router_logits = layer(x, None if cache is None else cache[i])
            if router_logits is not None:
                self.router_logits.append(router_logits)
        logits = self.lm_head(self.norm(x))  # (B, T, vocab_size)
        loss = None
        if targets is not None:
            loss = F.cross_entropy(logits.flatten(0, 1).float(), targets.flatten())
        return logits, loss


def _gpt2_state_dict(sd: dict[str, Tensor], n_layers: int) -> dict[str, Tensor]:
    """Rename GPT-2's keys to ours; its Conv1D weights are ``(in, out)``, so transpose them,
    and split its fused ``c_attn`` (``(dim, 3 * dim)``: q, k, v side by side)."""
    state = {"embed_tokens.weight": sd["transformer.wte.weight"],
             "embed_positions.weight": sd["transformer.wpe.weight"],
             "norm.weight": sd["transformer.ln_f.weight"], "norm.bias": sd["transformer.ln_f.bias"],
             "lm_head.weight": sd["lm_head.weight"]}
    names = {"ln_1": "input_layernorm", "ln_2": "post_attention_layernorm",
             "attn.c_proj": "self_attn.o_proj", "mlp.c_fc": "mlp.up_proj",
             "mlp.c_proj": "mlp.down_proj"}
    for i in range(n_layers):
        h, ours = f"transformer.h.{i}.", f"layers.{i}."
        for theirs, mine in names.items():
            w = sd[h + theirs + ".weight"]
            state[ours + mine + ".weight"] = w if theirs.startswith("ln") else w.T  # Conv1D
            state[ours + mine + ".bias"] = sd[h + theirs + ".bias"]
        w, b = sd[h + "attn.c_attn.weight"].T, sd[h + "attn.c_attn.bias"]  # (3 dim, dim), (3 dim,)
        for name, w_part, b_part in zip("qkv", w.chunk(3), b.chunk(3), strict=True):
            state[f"{ours}self_attn.{name}_proj.weight"] = w_part
            state[f"{ours}self_attn.{name}_proj.bias"] = b_part
    return state


def _unfuse_experts(state: dict[str, Tensor], n_layers: int,
                    transposed: bool = False) -> dict[str, Tensor]:
    """Mixtral's and DeepSeek-V3's fused ``mlp.experts.gate_up_proj`` ``(E, 2I, dim)`` (rows
    ``[:I]`` gate, ``[I:]`` up) and ``mlp.experts.down_proj`` ``(E, dim, I)`` -> one SwiGLU per
    expert; ``transposed``: stored as ``(E, dim, 2I)`` and ``(E, I, dim)`` (Llama 4). Layers
    without fused experts (dense ones) are left as they are."""
    for i in range(n_layers):
        p = f"layers.{i}.mlp.experts."
        if p + "gate_up_proj" not in state:
            continue
        gate_up, down = state.pop(p + "gate_up_proj"), state.pop(p + "down_proj")
        if transposed:
            gate_up, down = gate_up.transpose(1, 2), down.transpose(1, 2)
        for e, (gu, d) in enumerate(zip(gate_up, down, strict=True)):
            gate, up = gu.chunk(2)
            state[f"{p}{e}.gate_proj.weight"] = gate
            state[f"{p}{e}.up_proj.weight"] = up
            state[f"{p}{e}.down_proj.weight"] = d
    return state


def _deepseek_v3_config(c) -> GPTConfig:
    """The GPTConfig of a transformers ``DeepseekV3Config``."""
    assert c.rope_interleave, "our latent attention pairs RoPE dimensions (2i, 2i+1)"
    assert not c.attention_bias and c.hidden_act == "silu"
    return GPTConfig(vocab_size=c.vocab_size, dim=c.hidden_size, n_layers=c.num_hidden_layers,
                     n_heads=c.num_attention_heads, hidden_dim=c.intermediate_size,
                     max_seq_len=c.max_position_embeddings,
                     rope_theta=c.rope_parameters["rope_theta"], rope_pairs="interleaved",
                     tie_embeddings=c.tie_word_embeddings, norm_eps=c.rms_norm_eps,
                     kv_lora_rank=c.kv_lora_rank, q_lora_rank=c.q_lora_rank,
                     qk_nope_head_dim=c.qk_nope_head_dim, qk_rope_head_dim=c.qk_rope_head_dim,
                     v_head_dim=c.v_head_dim, moe="deepseek", n_experts=c.n_routed_experts,
                     top_k=c.num_experts_per_tok, expert_hidden_dim=c.moe_intermediate_size,
                     n_shared_experts=c.n_shared_experts, n_group=c.n_group,
                     topk_group=c.topk_group, routed_scaling_factor=c.routed_scaling_factor,
                     norm_topk_prob=c.norm_topk_prob, first_dense_layers=c.first_k_dense_replace)


def _llama4_config(c) -> GPTConfig:
    """The GPTConfig of a transformers ``Llama4TextConfig``; its per-layer lists must follow
    the regular patterns that GPTConfig describes (as the published models do)."""
    L = c.num_hidden_layers
    nope_every = c.no_rope_layer_interval if 0 in c.no_rope_layers[:L] else 0
    moe_every = c.interleave_moe_layer_step
    assert c.no_rope_layers[:L] == [int(not nope_every or (i + 1) % nope_every != 0)
                                    for i in range(L)]
    assert list(c.moe_layers) == list(range(moe_every - 1, L, moe_every))
    assert c.head_dim == c.hidden_size // c.num_attention_heads and not c.attention_bias
    chunked = "chunked_attention" in c.layer_types
    return GPTConfig(vocab_size=c.vocab_size, dim=c.hidden_size, n_layers=L,
                     n_heads=c.num_attention_heads, n_kv_heads=c.num_key_value_heads,
                     hidden_dim=c.intermediate_size_mlp, max_seq_len=c.max_position_embeddings,
                     rope_theta=c.rope_parameters["rope_theta"], rope_pairs="interleaved",
                     tie_embeddings=c.tie_word_embeddings, norm_eps=c.rms_norm_eps,
                     moe="llama4", n_experts=c.num_local_experts, top_k=c.num_experts_per_tok,
                     expert_hidden_dim=c.intermediate_size, n_shared_experts=1,
                     moe_every=moe_every, nope_every=nope_every,
                     chunk=c.attention_chunk_size if chunked else None, qk_norm=c.use_qk_norm,
                     attn_scale=c.attn_scale if c.attn_temperature_tuning else 0.0,
                     floor_scale=c.floor_scale)


_LLAMA4_NAMES = {".feed_forward.router.": ".mlp.gate.", ".feed_forward.shared_expert.":
                 ".mlp.shared_experts.", ".feed_forward.": ".mlp."}


def from_hf(model: nn.Module) -> MiniGPT:
    """A MiniGPT with the config and weights of a transformers ``GPT2LMHeadModel``,
    ``LlamaForCausalLM``, ``MistralForCausalLM``, ``MixtralForCausalLM``,
    ``DeepseekV3ForCausalLM`` or ``Llama4ForCausalLM``.

    Also ``MiniGPT.from_hf(model)`` (attached below): kept out of the class so that the class
    is the part a learner writes, and the key renaming stays apart from the model."""
    c = model.config
    sd = {k: v.detach() for k, v in model.state_dict().items()}
    if c.model_type == "gpt2":
        assert not c.scale_attn_by_inverse_layer_idx
        gelu = {"gelu_new": "tanh", "gelu_pytorch_tanh": "tanh", "gelu": "none"}
        cfg = GPTConfig(vocab_size=c.vocab_size, dim=c.n_embd, n_layers=c.n_layer,
                        n_heads=c.n_head, hidden_dim=c.n_inner, max_seq_len=c.n_positions,
                        norm="layernorm", mlp="gelu", pos="learned",
                        gelu_approximate=gelu[c.activation_function],
                        tie_embeddings=c.tie_word_embeddings, bias=True,
                        norm_eps=c.layer_norm_epsilon)
        state = _gpt2_state_dict(sd, c.n_layer)
    elif c.model_type in ("llama", "mistral", "mixtral"):
        assert getattr(c, "head_dim", None) in (None, c.hidden_size // c.num_attention_heads)
        assert not getattr(c, "attention_bias", False) and not getattr(c, "mlp_bias", False)
        assert c.rope_parameters.get("rope_type", "default") == "default"
        cfg = GPTConfig(vocab_size=c.vocab_size, dim=c.hidden_size,
                        n_layers=c.num_hidden_layers, n_heads=c.num_attention_heads,
                        n_kv_heads=c.num_key_value_heads,
                        hidden_dim=c.intermediate_size, max_seq_len=c.max_position_embeddings,
                        rope_theta=c.rope_parameters["rope_theta"],
                        window=getattr(c, "sliding_window", None),
                        n_experts=getattr(c, "num_local_experts", 0),
                        top_k=getattr(c, "num_experts_per_tok", 2),
                        tie_embeddings=c.tie_word_embeddings, norm_eps=c.rms_norm_eps)
        state = {k.removeprefix("model."): v for k, v in sd.items()}
        if cfg.n_experts:
            state = _unfuse_experts(state, cfg.n_layers)
    elif c.model_type in ("deepseek_v3", "llama4_text"):
        assert c.rope_parameters.get("rope_type", "default") == "default"
        cfg = _deepseek_v3_config(c) if c.model_type == "deepseek_v3" else _llama4_config(c)
        state = {}
        for key, value in sd.items():
            key = key.removeprefix("model.")
            for theirs, ours in _LLAMA4_NAMES.items():  # Llama 4 calls the MLP feed_forward
                key = key.replace(theirs, ours)
            state[key] = value
        state = _unfuse_experts(state, cfg.n_layers, transposed=c.model_type == "llama4_text")
    else:
        raise ValueError(f"unsupported model type {c.model_type!r}")
    ours = MiniGPT(cfg)
    ours.load_state_dict(state)
    return ours


MiniGPT.from_hf = staticmethod(from_hf)


@torch.no_grad()
def generate(
    model: MiniGPT,
    idx: Tensor,
    max_new_tokens: int,
    temperature: float = 1.0,
    top_k: int | None = None,
    top_p: float | None = None,
    use_cache: bool = True,
    *,
    generator: torch.Generator | None = None,
) -> Tensor:
    """Append ``max_new_tokens`` sampled tokens to ``idx`` ``(B, T)``; returns ``(B, T + new)``.

    ``temperature=0`` is greedy (argmax); otherwise the logits are divided by ``temperature``,
    cut to the ``top_k`` most likely tokens and then to the smallest set whose probability
    reaches ``top_p`` (nucleus), and a token is drawn with ``torch.multinomial`` from
    ``generator`` (the global RNG when None; pass a seeded one for reproducible samples).

    With ``use_cache`` the prompt is run once and then one token per step, reusing the cached
    keys and values; without it the whole sequence (its last ``max_seq_len`` tokens) is rerun
    every step. While the sequence fits in ``max_seq_len`` the two give the same logits (up to
    rounding), so greedy decoding gives the same tokens. Call ``model.eval()`` first.
    """
    cache = model.new_cache() if use_cache else None
    next_input = idx
    for _ in range(max_new_tokens):
        if cache is None:
            next_input = idx[:, -model.config.max_seq_len:]
        logits, _ = model(next_input, cache=cache)
        logits = logits[:, -1, :].float()  # (B, vocab_size): the next token's scores
        if temperature == 0:
            next_token = logits.argmax(dim=-1, keepdim=True)  # (B, 1)
        else:
            probs = F.softmax(filter_logits(logits / temperature, top_k, top_p), dim=-1)
            next_token = torch.multinomial(probs, 1, generator=generator)  # (B, 1)
        idx = torch.cat((idx, next_token), dim=1)
        next_input = next_token
    return idx


def filter_logits(logits: Tensor, top_k: int | None = None, top_p: float | None = None) -> Tensor:
    """Set to -inf every logit outside the ``top_k`` largest and outside the nucleus: the
    smallest set of most likely tokens whose probabilities sum to at least ``top_p``.

    Shapes: ``logits``: ``(B, V)`` -> ``(B, V)``.
    """
    if top_k is not None:
        kth = logits.topk(min(top_k, logits.size(-1)), dim=-1).values[:, -1:]  # (B, 1)
        logits = logits.masked_fill(logits < kth, float("-inf"))
    if top_p is not None:
        sorted_logits, order = logits.sort(dim=-1, descending=True)  # (B, V)
        cum = sorted_logits.softmax(dim=-1).cumsum(dim=-1)
        # drop a token when the tokens before it already reach top_p (the first always stays)
        drop_sorted = (cum - sorted_logits.softmax(dim=-1)) >= top_p
        drop = torch.zeros_like(drop_sorted).scatter(1, order, drop_sorted)  # vocabulary order
        logits = logits.masked_fill(drop, float("-inf"))
    return logits
