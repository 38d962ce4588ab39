"""Reference solutions: the answer key of the course, one module per topic.

Every name of the exercise contract is importable from here: ``from solutions import RMSNorm``.
Written by ``python course/build.py`` from autograder/registry.py (each exercise's
reference and ``ALSO_EXPORTED``): change those, not this file.
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
from solutions.finetune import LoRALinear, add_lora, dpo_loss, sequence_logprobs, sft_loss
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
from solutions.model import Block, CachedAttention, GPTConfig, MiniGPT, filter_logits, generate
from solutions.moe import MoE, dense_moe_forward, load_balancing_loss, route
from solutions.normalization import RMSNorm
from solutions.positions import (
    alibi_bias,
    alibi_slopes,
    apply_rope,
    interleaved_to_halves,
    rope_angles,
    rope_interleaved,
    sinusoidal_positions,
)
from solutions.scaling import chinchilla_loss, compute_optimal, count_parameters
from solutions.tokenizer import GPT2_SPLIT_PATTERN, BPETokenizer, merge_pair

__all__ = [
    # week 1
    "causal_mask", "scaled_dot_product_attention", "MultiHeadAttention",
    # week 2
    "merge_pair", "BPETokenizer", "GPT2_SPLIT_PATTERN",
    # week 3
    "RMSNorm", "SwiGLU", "best_activation", "swiglu_hidden_dim",
    # week 4
    "rope_angles", "apply_rope", "alibi_slopes", "alibi_bias", "extrapolation_limit",
    "rope_interleaved", "interleaved_to_halves", "sinusoidal_positions",
    # week 5
    "repeat_kv", "sliding_window_mask", "Attention", "kv_cache_bytes", "sliding_window_attention",
    "KVCache",
    # week 6
    "route", "MoE", "load_balancing_loss", "dense_moe_forward",
    # week 7
    "Block", "MiniGPT", "filter_logits", "generate", "GPTConfig", "CachedAttention",
    # week 8
    "count_parameters", "chinchilla_loss", "compute_optimal",
    # week 9
    "MultiHeadLatentAttention", "deepseek_route", "DeepSeekMoE", "CachedLatentAttention",
    "LatentKVCache", "latent_cache_bytes", "decode_from_latents", "absorbed_projections",
    "expert_load", "update_routing_bias", "Llama4MoE", "chunked_attention_mask", "ChunkedKVCache",
    "attention_temperature", "qk_norm",
    # week 10
    "sequence_logprobs", "sft_loss", "dpo_loss", "LoRALinear", "add_lora",
]
