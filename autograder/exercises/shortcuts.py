"""The library calls an exercise may not hand its own work to, and why (``Exercise.forbidden``).

Each exercise forbids exactly what would do its own work; what an earlier week (or another
exercise of the same week, graded on its own) taught stays allowed, and so do the building
blocks the exercise is meant to combine (``torch.tril`` for the causal mask, ``F.silu`` for
SwiGLU, ``torch.topk`` for routing). The instructor guide lists what stays allowed, week by
week (site/instructors.md, "Library calls the graders refuse").

A path is checked twice. In the source, by its last component, under any spelling (``F.name``,
``torch.nn.functional.name``, ``from ... import name as other``, ``getattr(F, "name")``); a
last component with ``*`` is a pattern for a family of classes (``?*RMSNorm``: transformers'
``LlamaRMSNorm``, ``MistralRMSNorm``, ...). In the worker, each exact path is made to raise
(a class at construction), so a spelling the source check misses still fails.
"""

from __future__ import annotations


def _why(work: str, allowed: str = "") -> str:
    return f"not allowed, it does this exercise's own work ({work}): write it yourself" + (
        f"; {allowed}" if allowed else "")


def _paths(paths: tuple[str, ...], why: str) -> dict[str, str]:
    return dict.fromkeys(paths, why)


# ---------------------------------------------------------------- week 1

CAUSAL_MASK = _paths((
    "torch.nn.Transformer.generate_square_subsequent_mask",
    "torch.nn.modules.transformer._generate_square_subsequent_mask",
    "torch.nn.attention.bias.causal_upper_left",
    "torch.nn.attention.bias.causal_lower_right",
    "torch.nn.attention.bias.CausalBias",
    "transformers.masking_utils.causal_mask_function",
    "transformers.masking_utils.create_causal_mask",
    "transformers.modeling_attn_mask_utils.AttentionMaskConverter",
    "transformers.modeling_attn_mask_utils._prepare_4d_causal_attention_mask",
    "transformers.modeling_attn_mask_utils._create_4d_causal_attention_mask",
), _why("building the causal mask", "torch.ones(...).tril() and torch.tril are the building "
        "blocks to use"))

# every fused or library form of softmax(q k^T / sqrt(d)) v
ATTENTION_KERNELS = _paths((
    "torch.nn.functional.scaled_dot_product_attention",
    "torch._C._nn.scaled_dot_product_attention",
    "torch.ops.aten.scaled_dot_product_attention",
    "torch._scaled_dot_product_attention_math",
    "torch.ops.aten._scaled_dot_product_attention_math",
    "torch._scaled_dot_product_flash_attention_for_cpu",
    "torch.ops.aten._scaled_dot_product_flash_attention_for_cpu",
    "torch._scaled_dot_product_flash_attention",
    "torch._scaled_dot_product_efficient_attention",
    "torch._scaled_dot_product_cudnn_attention",
    "torch._triton_scaled_dot_attention",
    "torch.nn.attention.flex_attention.flex_attention",
    "transformers.integrations.sdpa_attention.sdpa_attention_forward",
    "transformers.integrations.flex_attention.flex_attention_forward",
    "transformers.models.llama.modeling_llama.eager_attention_forward",
), "this exercise is to write attention out yourself, so F.scaled_dot_product_attention and "
   "the other fused or library attention functions are not allowed (the notebook compares "
   "yours with it in a demo cell; week 5 on may use it)")

MULTI_HEAD = _paths((
    "torch.nn.MultiheadAttention",
    "torch.nn.functional.multi_head_attention_forward",
    "torch._native_multi_head_attention",
    "torch.ops.aten._native_multi_head_attention",
    "torch._triton_multi_head_attention",
    "transformers.models.llama.modeling_llama.?*Attention",
), _why("multi-head attention with its projections", "nn.Linear and your own "
        "scaled_dot_product_attention are what to build it from"))

# ---------------------------------------------------------------- week 2

BPE = _paths((
    "tokenizers.Tokenizer",
    "tokenizers.models.BPE",
    "tokenizers.trainers.BpeTrainer",
    "tokenizers.ByteLevelBPETokenizer",
    "tokenizers.CharBPETokenizer",
    "tokenizers.SentencePieceBPETokenizer",
    "transformers.PreTrainedTokenizerFast.train_new_from_iterator",
    "sentencepiece.SentencePieceTrainer",
    "sentencepiece.SentencePieceProcessor",
    "tiktoken.Encoding",
    "tiktoken.get_encoding",
    "tiktoken._educational.SimpleBytePairEncoding",
    "tiktoken._educational.bpe_train",
), _why("training or applying BPE merges", "re, collections and heapq are fine"))

# ---------------------------------------------------------------- week 3

RMSNORM = _paths((
    "torch.nn.functional.rms_norm",
    "torch.rms_norm",
    "torch.ops.aten.rms_norm",
    "torch._fused_rms_norm",
    "torch.ops.aten._fused_rms_norm",
    "torch.nn.RMSNorm",
    "transformers.models.llama.modeling_llama.?*RMSNorm",
), _why("the root-mean-square normalization", "torch.rsqrt, mean and pow are the "
        "building blocks; the notebook times F.rms_norm in a demo cell"))

SWIGLU = _paths((
    "transformers.models.llama.modeling_llama.?*MLP",
), _why("the whole gated feed-forward block", "F.silu and nn.Linear are the building blocks: "
        "the exercise is the gating"))

# ---------------------------------------------------------------- week 4

ROPE = _paths((
    "transformers.models.llama.modeling_llama.apply_rotary_pos_emb*",
    "transformers.models.llama.modeling_llama.?*RotaryEmbedding",
    "transformers.modeling_rope_utils.ROPE_INIT_FUNCTIONS",
    "transformers.models.llama.modeling_llama.LlamaRotaryEmbedding.compute_default_rope_parameters",
    "transformers.models.llama4.modeling_llama4.apply_rotary_emb",
    "torchtune.modules.RotaryPositionalEmbeddings",
), _why("the rotary frequencies, angles and rotation", "the given rotate_half, torch.cos, "
        "torch.sin and torch.polar are the building blocks"))

ALIBI = _paths((
    "transformers.models.bloom.modeling_bloom.build_alibi_tensor",
    "transformers.models.mpt.modeling_mpt.build_mpt_alibi_tensor",
    "transformers.models.bloom.modeling_bloom._get_alibi_slopes",
), _why("the ALiBi slopes and bias"))

# ---------------------------------------------------------------- week 5

REPEAT_KV = _paths((
    "transformers.models.llama.modeling_llama.repeat_kv",
    "transformers.integrations.sdpa_attention.pack_gqa",
), _why("repeating the kv heads", "torch.repeat_interleave, expand and reshape are the "
        "building blocks"))

SLIDING_WINDOW = _paths((
    "transformers.masking_utils.sliding_window_causal_mask_function",
    "transformers.masking_utils.sliding_window_overlay",
    "transformers.masking_utils.create_sliding_window_causal_mask",
    "transformers.models.t5gemma2.modeling_t5gemma2.sliding_window_mask_function",
    "transformers.modeling_attn_mask_utils.AttentionMaskConverter",
    "transformers.modeling_attn_mask_utils._prepare_4d_causal_attention_mask",
), _why("building the sliding-window mask", "your causal_mask, torch.tril and torch.triu are "
        "the building blocks"))

GQA_ATTENTION = _paths((
    "transformers.models.llama.modeling_llama.LlamaAttention",
    "transformers.models.mistral.modeling_mistral.MistralAttention",
    "transformers.models.mixtral.modeling_mixtral.MixtralAttention",
    "transformers.models.qwen2.modeling_qwen2.Qwen2Attention",
    "transformers.models.qwen3.modeling_qwen3.Qwen3Attention",
    "transformers.models.gemma.modeling_gemma.GemmaAttention",
    "transformers.models.llama.modeling_llama.eager_attention_forward",
    "transformers.integrations.sdpa_attention.sdpa_attention_forward",
    "transformers.integrations.flex_attention.flex_attention_forward",
), _why("the whole attention module (projections, RoPE, shared kv heads, window)",
        "F.scaled_dot_product_attention, repeat_kv and apply_rope are allowed"))

# ---------------------------------------------------------------- week 6

MOE = _paths((
    "transformers.models.mixtral.modeling_mixtral.?*SparseMoeBlock",
    "transformers.models.mixtral.modeling_mixtral.?*Experts",
    "transformers.models.mixtral.modeling_mixtral.?*TopKRouter",
), _why("the routing and the weighted sum of the chosen experts", "torch.topk, F.softmax, "
        "index_add_ and torch.where are the building blocks"))

LOAD_BALANCING = _paths((
    "transformers.models.mixtral.modeling_mixtral.load_balancing_loss_func",
), _why("the load-balancing loss", "F.one_hot, topk and mean are the building blocks"))

# ---------------------------------------------------------------- week 7

MINIGPT = _paths((
    "torch.nn.Transformer",
    "torch.nn.TransformerEncoderLayer",
    "torch.nn.TransformerDecoderLayer",
    "torch.nn.TransformerEncoder",
    "torch.nn.TransformerDecoder",
    "transformers.models.llama.modeling_llama.?*ForCausalLM",
    "transformers.models.llama.modeling_llama.?*LMHeadModel",
    "transformers.models.llama.modeling_llama.?*DecoderLayer",
    "transformers.models.llama.modeling_llama.LlamaModel",
    "transformers.models.mistral.modeling_mistral.MistralModel",
    "transformers.models.mixtral.modeling_mixtral.MixtralModel",
    "transformers.models.gpt2.modeling_gpt2.GPT2Model",
    "transformers.models.gpt2.modeling_gpt2.GPT2Block",
), _why("assembling the transformer blocks and the model", "the parts of weeks 1-6, yours or "
        "the library's (F.scaled_dot_product_attention, nn.LayerNorm, ...), are allowed"))

GENERATE = _paths((
    "transformers.generation.logits_process.TopKLogitsWarper",
    "transformers.generation.logits_process.TopPLogitsWarper",
    "transformers.generation.logits_process.TemperatureLogitsWarper",
    "transformers.generation.logits_process.MinPLogitsWarper",
    "transformers.generation.logits_process.LogitsProcessorList",
    "transformers.generation.utils.GenerationMixin",
    "transformers.top_k_top_p_filtering",  # transformers 4
), _why("temperature, top-k and top-p sampling", "torch.topk, sort, cumsum, softmax and "
        "torch.multinomial are the building blocks"))

# ---------------------------------------------------------------- week 8

COUNT_PARAMETERS = _paths((
    "torch.Tensor.numel",
    "torch.Tensor.nelement",
), "not allowed: count_parameters counts from the config alone (analytically), so it sizes "
   "a 70B model in microseconds on a laptop; building a model and summing numel() is what the "
   "notebook's check does, not the exercise")

# ---------------------------------------------------------------- week 10

# F.log_softmax, F.cross_entropy and gather stay allowed (week 7 taught them): the exercises
# are which positions count and how they are summed or averaged
SEQUENCE_LOGPROBS = _paths((
    "trl.trainer.utils.selective_log_softmax",
    "trl.trainer.dpo_trainer.DPOTrainer.get_batch_logps",  # TRL before 0.12
), _why("the log-probabilities of the labels, summed over the response", "F.log_softmax, "
        "gather and F.cross_entropy(..., reduction='none') are the building blocks"))

SFT_LOSS = _paths((
    "transformers.loss.loss_utils.ForCausalLMLoss",
    "trl.SFTTrainer",
), _why("the masked mean of the cross-entropy", "F.cross_entropy (with ignore_index or on the "
        "masked rows) and F.log_softmax are the building blocks"))

DPO = _paths((
    "trl.DPOTrainer",
    "trl.trainer.dpo_trainer.DPOTrainer",
    "openrlhf.models.loss.DPOLoss",
), _why("the DPO loss and its implicit rewards", "F.logsigmoid, F.softplus and "
        "F.binary_cross_entropy_with_logits are the building blocks"))

# a class is refused at construction, and the layers of both libraries construct these bases,
# so `peft`'s and `loralib`'s own `Linear` (a name the source check cannot refuse: it is also
# nn.Linear's) fail in the worker once their module is loaded
LORA = _paths((
    "peft.get_peft_model",
    "peft.inject_adapter_in_model",
    "peft.LoraConfig",
    "peft.LoraModel",
    "peft.PeftModel",
    "peft.tuners.lora.layer.LoraLayer",
    "loralib.layers.LoRALayer",
    "loralib.layers.MergedLinear",
    "loralib.utils.mark_only_lora_as_trainable",
), _why("the low-rank adapter and the wrapping and freezing of the model", "nn.Linear, "
        "nn.init, nn.Dropout, requires_grad_ and named_modules are the building blocks"))
