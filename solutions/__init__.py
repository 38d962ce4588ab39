"""Reference solutions: the answer key of the course, one module per topic.

Every name of the exercise contract is importable from here: ``from solutions import RMSNorm``.
"""

from solutions.attention import MultiHeadAttention, causal_mask, scaled_dot_product_attention
from solutions.deepseek_moe import DeepSeekMoE, deepseek_route, expert_load, update_routing_bias
from solutions.efficient_attention import (
    Attention,
    KVCache,
    kv_cache_bytes,
    repeat_kv,
    sliding_window_attention,
    sliding_window_mask,
)
from solutions.experiments import best_activation, extrapolation_limit
from solutions.feedforward import SwiGLU, swiglu_hidden_dim
from solutions.latent_attention import (
    CachedLatentAttention,
    LatentKVCache,
    MultiHeadLatentAttention,
    absorbed_projections,
    decode_from_latents,
    latent_cache_bytes,
)
from solutions.llama4 import (
    ChunkedKVCache,
    Llama4MoE,
    attention_temperature,
    chunked_attention_mask,
    qk_norm,
)
from solutions.model import CachedAttention, GPTConfig, MiniGPT, generate
from solutions.moe import MoE, dense_moe_forward, load_balancing_loss
from solutions.normalization import RMSNorm
from solutions.positions import (
    alibi_bias,
    alibi_slopes,
    apply_rope,
    interleaved_to_halves,
    rope_interleaved,
    sinusoidal_positions,
)
from solutions.scaling import chinchilla_loss, compute_optimal, count_parameters
from solutions.tokenizer import GPT2_SPLIT_PATTERN, BPETokenizer, merge_pair

__all__ = [
    # week 1
    "causal_mask", "scaled_dot_product_attention", "MultiHeadAttention",
    # week 2
    "BPETokenizer", "GPT2_SPLIT_PATTERN", "merge_pair",
    # week 3
    "RMSNorm", "SwiGLU", "swiglu_hidden_dim", "best_activation",
    # week 4
    "apply_rope", "alibi_bias", "alibi_slopes", "rope_interleaved", "interleaved_to_halves",
    "sinusoidal_positions", "extrapolation_limit",
    # week 5
    "repeat_kv", "sliding_window_mask", "sliding_window_attention", "Attention",
    "KVCache", "kv_cache_bytes",
    # week 6
    "MoE", "load_balancing_loss", "dense_moe_forward",
    # week 7
    "GPTConfig", "MiniGPT", "generate", "CachedAttention",
    # week 8
    "count_parameters", "chinchilla_loss", "compute_optimal",
    # week 9
    "MultiHeadLatentAttention", "CachedLatentAttention", "LatentKVCache", "latent_cache_bytes",
    "decode_from_latents", "absorbed_projections",
    "DeepSeekMoE", "deepseek_route", "expert_load", "update_routing_bias",
    "Llama4MoE", "chunked_attention_mask", "ChunkedKVCache", "attention_temperature", "qk_norm",
]
