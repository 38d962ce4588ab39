"""The course in one place: its weeks and every graded exercise, one line each.

Everything else reads this file:

- ``course/build.py`` fills each notebook's answer and test cells from it (a cell names only
  its exercise) and writes the week tables of README.md and site/index.md, the weeks of
  mkdocs.yml's nav and the exports of ``solutions/__init__.py``;
- the graders (``autograder.exercises``) grade exactly these exercises, with these points,
  forbidden calls and given parts, and ``autograder.parts`` finds a week's notebook here;
- the tests register one pytest marker per exercise (``pytest -m rmsnorm``), find each
  week's lesson, quiz and topics, and check that the catalogues and the site cover them all.

No torch here: reading the course must stay cheap.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from autograder.reference import Spec


@dataclass(frozen=True)
class Week:
    number: int
    notebook: str  # its name: course/notebooks/weekN_<notebook>.py -> <notebook>.ipynb
    title: str  # "Week N: <title>" in the nav and the README
    topics: str  # the outline's line: the site's home page, checked by tests/site

    @property
    def folder(self) -> str:
        """The week's folder in course/source, course/release and site/weeks."""
        return f"week{self.number}"

    @property
    def text_notebook(self) -> str:
        """Where the notebook is written, under course/notebooks/."""
        return f"{self.folder}_{self.notebook}.py"

    @property
    def notebook_file(self) -> str:
        """The built notebook, relative to course/source/ and course/release/."""
        return f"{self.folder}/{self.notebook}.ipynb"


@dataclass(frozen=True)
class Exercise:
    week: int
    name: str  # the pytest marker and nbgrader's grade_id ("test_<name>")
    title: str
    # the answer cell's reference code, "module:Helper,Symbol": the last symbol is the one
    # graded; those before it are written in the same cell
    reference: str
    # the grader's case builder, (torch.Generator) -> list[Case]: a function's name in
    # autograder/exercises/weekN.py (default "<name>_cases"), "module:function", or the
    # function itself
    cases: str | Callable | None = None
    points: float = 10.0
    # dotted path of a function the learner may not call -> why not (the lists below);
    # checked in the source and made to raise in the worker
    forbidden: Mapping[str, str] = field(default_factory=dict)
    # what stays allowed (markdown): the instructor guide's table of refused calls
    allowed: str = ""
    # reference code run before the submission, as "module:Sym,Sym": the parts of earlier
    # weeks a later exercise builds on; the submission's own definitions override them
    given: tuple[str, ...] = ()
    timeout_s: float | None = None  # None: the sandbox's default (AUTOGRADER_TIMEOUT)

    @property
    def symbol(self) -> str:
        """The name the learner defines, e.g. ``RMSNorm``."""
        return Spec.parse(self.reference).symbols[-1]

    @property
    def build(self) -> Callable:
        """The grader's case builder."""
        if callable(self.cases):
            return self.cases
        pointer = self.cases or f"{self.name}_cases"
        if ":" not in pointer:
            pointer = f"autograder.exercises.week{self.week}:{pointer}"
        return Spec.parse(pointer).load()


# --- the library calls an exercise may not hand its own work to (``Exercise.forbidden``) ---
#
# Each exercise refuses exactly what would do its own work; what an earlier week (or another
# exercise of the same week, graded on its own) taught stays allowed, and so do the building
# blocks the exercise is meant to combine (``torch.tril`` for the causal mask, ``F.silu`` for
# SwiGLU, ``torch.topk`` for routing): ``Exercise.allowed`` says which, in the instructor
# guide's table (site/instructors.md, written by course/build.py).
#
# A path is checked twice. In the source, by its last component, under any spelling
# (``F.name``, ``torch.nn.functional.name``, ``from ... import name as other``,
# ``getattr(F, "name")``); a last component with ``*`` is a pattern for a family of classes
# (``?*RMSNorm``: transformers' ``LlamaRMSNorm``, ``MistralRMSNorm``, ...). In the worker, each
# exact path is made to raise (a class at construction), so a spelling the source check misses
# still fails.


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

# ---------------------------------------------------------------- week 9

# transformers implements both; the source check refuses the names, and the worker patches
# them when transformers is loaded there
_DEEPSEEK_V3 = "transformers.models.deepseek_v3.modeling_deepseek_v3."
_WHY_NOT_HF = ("wrapping transformers' implementation is not allowed: this exercise is to "
               "build it yourself (the course's tests compare the two)")

LATENT_ATTENTION = _paths(tuple(_DEEPSEEK_V3 + name for name in (
    "DeepseekV3Attention", "apply_rotary_pos_emb_interleave", "DeepseekV3RotaryEmbedding",
)), _WHY_NOT_HF)

DEEPSEEK_MOE = _paths(tuple(_DEEPSEEK_V3 + name for name in (
    "DeepseekV3MoE", "DeepseekV3TopkRouter", "DeepseekV3Experts",
)), _WHY_NOT_HF)


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

LORA_ALLOWED = ("`nn.Linear`, `nn.init`, `nn.Dropout`, `requires_grad_`, `named_modules`, "
                "`setattr`; `add_lora` is graded with the reference `LoRALinear`")


WEEK1_ALLOWED = ("`torch.softmax`, `masked_fill`, matmul and einsum, `nn.Linear`; the learner's "
                 "own `scaled_dot_product_attention` in `MultiHeadAttention`")

# the reference parts of weeks 1-6 and week 7's locked code: week 7 grades the assembly alone
WEEK7_GIVEN = (
    "solutions.attention:causal_mask,scaled_dot_product_attention",
    "solutions.positions:ROPE_THETA,rope_angles,rotate_half,apply_rope,alibi_slopes,alibi_bias",
    "solutions.efficient_attention:repeat_kv,sliding_window_mask,sliding_window_attention,"
    "KVCache,Attention",
    "solutions.normalization:RMSNorm",
    "solutions.feedforward:SwiGLU",
    "solutions.moe:route,MoE,load_balancing_loss",
    "solutions.model:pairs_side_by_side,rotate_pairs,CachedAttention,GPTConfig,PRESETS,"
    "RMSNormFunction,FastRMSNorm,make_norm,GeluMLP",
)

WEEKS = [
    Week(1, "attention", "Inside a decoder-only transformer",
         "Inside a decoder-only transformer: embeddings, causal self-attention, multi-head "
         "attention, residuals, the forward pass, next-token prediction"),
    Week(2, "bpe", "Tokenization",
         "Tokenization: byte-level BPE; SentencePiece and WordPiece compared; tokens vs words"),
    Week(3, "rmsnorm_swiglu", "Normalization and activations",
         "Normalization and activations: LayerNorm vs RMSNorm, pre-norm, ReLU/GELU/SiLU, "
         "SwiGLU"),
    Week(4, "positions", "Positions",
         "Positions: sinusoidal, learned, RoPE, ALiBi; length extrapolation"),
    Week(5, "inference_attention", "Attention for inference",
         "Attention for inference: MHA/MQA/GQA, the KV cache and its memory, sliding-window "
         "attention and its receptive field, the idea of FlashAttention (tiling, online "
         "softmax)"),
    Week(6, "moe", "Mixture of experts",
         "Mixture of experts: router, top-k, renormalisation, load balancing, total vs active "
         "parameters (Mixtral, DeepSeek-V3, Llama 4)"),
    Week(7, "minigpt", "A mini-GPT of your own",
         "A mini-GPT of your own: assemble your parts, train on a GPU (or CPU), sample "
         "(temperature, top-k, top-p), generate with a KV cache"),
    Week(8, "scale", "Scale",
         "Scale: parameter counting, training FLOPs (about $6ND$), the Chinchilla scaling law "
         "and compute-optimal $N$ and $D$, context windows and their cost, training stages "
         "(pretraining, SFT, RLHF/DPO), beyond attention (state-space models)"),
    Week(9, "frontier", "The frontier, DeepSeek-V3 and Llama 4",
         "The frontier, DeepSeek-V3 and Llama 4: multi-head latent attention (low-rank KV, "
         "decoupled RoPE, absorption, cache bytes against GQA), fine-grained and shared experts, "
         "sigmoid and group-limited routing, auxiliary-loss-free balancing, multi-token "
         "prediction, Llama 4's chunked attention, NoPE layers and QK-norm"),
    Week(10, "finetune", "After pretraining",
         "After pretraining: supervised fine-tuning with a chat format and prompt masking, "
         "LoRA, preference optimisation with DPO; where RLHF with PPO and Constitutional AI "
         "fit"),
]

EXERCISES = [
    Exercise(1, "causal_mask", "The causal mask", "solutions.attention:causal_mask",
             forbidden=CAUSAL_MASK, allowed="`torch.tril`, `torch.triu`, `torch.ones`, "
             "comparisons of `arange`: choosing the triangle and the diagonal is the exercise"),
    Exercise(1, "scaled_dot_product_attention", "Scaled dot-product attention",
             "solutions.attention:scaled_dot_product_attention", "sdpa_cases",
             forbidden=ATTENTION_KERNELS | MULTI_HEAD, allowed=WEEK1_ALLOWED),
    Exercise(1, "multi_head_attention", "Causal multi-head attention",
             "solutions.attention:MultiHeadAttention", "mha_cases",
             forbidden=ATTENTION_KERNELS | MULTI_HEAD, allowed=WEEK1_ALLOWED),
    Exercise(2, "bpe", "Byte-level BPE tokenizer", "solutions.tokenizer:merge_pair,BPETokenizer",
             forbidden=BPE, allowed="`re`, `collections`, `heapq`, `itertools`"),
    Exercise(3, "rmsnorm", "RMSNorm", "solutions.normalization:RMSNorm", forbidden=RMSNORM,
             allowed="`torch.rsqrt`, `mean`, `pow`, `torch.linalg.vector_norm`"),
    Exercise(3, "swiglu", "SwiGLU feed-forward", "solutions.feedforward:SwiGLU", forbidden=SWIGLU,
             allowed="`F.silu`, `torch.sigmoid`, `nn.Linear`: the exercise is the gating"),
    Exercise(3, "best_activation", "Reading the activation experiment",
             "solutions.experiments:best_activation",
             allowed="everything: no library reads a results table"),
    Exercise(4, "apply_rope", "Rotary position embedding (RoPE)",
             "solutions.positions:rope_angles,apply_rope", "rope_cases", forbidden=ROPE,
             # the notebook's locked rotate_half, for a `.py` holding only the answer
             given=("solutions.positions:ROPE_THETA,rotate_half",),
             allowed="the given `rotate_half`, `torch.cos`, `torch.sin`, `torch.polar`, "
             "`view_as_complex`"),
    Exercise(4, "alibi_bias", "ALiBi attention bias", "solutions.positions:alibi_slopes,alibi_bias",
             "alibi_cases", forbidden=ALIBI, allowed="`torch.arange`, powers of 2"),
    Exercise(4, "extrapolation_limit", "Reading the position experiment",
             "solutions.experiments:extrapolation_limit",
             allowed="everything: no library reads a results table"),
    Exercise(5, "repeat_kv", "repeat_kv (grouped-query heads)",
             "solutions.efficient_attention:repeat_kv", forbidden=REPEAT_KV,
             allowed="`torch.repeat_interleave`, `expand`, `reshape`, `index_select`"),
    Exercise(5, "sliding_window_mask", "The sliding-window mask",
             "solutions.efficient_attention:sliding_window_mask", forbidden=SLIDING_WINDOW,
             allowed="week 1's `causal_mask`, `torch.tril`, `torch.triu`"),
    Exercise(5, "attention", "Attention: GQA, RoPE and a sliding window",
             "solutions.efficient_attention:Attention", forbidden=GQA_ATTENTION,
             # the week's locked code and its other exercises, for a `.py` that defines only
             # `Attention` and relies on them as the notebook does
             given=("solutions.attention:causal_mask,scaled_dot_product_attention",
                    "solutions.positions:ROPE_THETA,rope_angles,rotate_half,apply_rope",
                    "solutions.efficient_attention:repeat_kv,sliding_window_mask,"
                    "sliding_window_attention"),
             allowed="week 1's attention, `F.scaled_dot_product_attention` (with "
             "`enable_gqa=True` too: sharing kv heads is `repeat_kv`'s exercise), `repeat_kv`, "
             "`apply_rope`, `nn.MultiheadAttention` (useless here, but taught)"),
    Exercise(5, "kv_cache_bytes", "KV-cache memory",
             "solutions.efficient_attention:kv_cache_bytes",
             allowed="everything: no library computes it"),
    Exercise(6, "moe", "Mixture of experts (top-k routing)", "solutions.moe:route,MoE",
             given=("solutions.feedforward:SwiGLU",),  # the notebook's locked SwiGLU
             forbidden=MOE, allowed="`torch.topk`, `F.softmax`, `torch.where`, `index_add_`, "
             "`scatter`, `F.grouped_mm` and `torch._grouped_mm` (batched matrix products, no "
             "routing)"),
    Exercise(6, "load_balancing_loss", "Load-balancing loss", "solutions.moe:load_balancing_loss",
             forbidden=LOAD_BALANCING, allowed="`F.one_hot`, `torch.bincount`, `topk`, `mean`"),
    Exercise(7, "minigpt", "MiniGPT: the assembled model", "solutions.model:Block,MiniGPT",
             "build_minigpt", given=WEEK7_GIVEN, forbidden=MINIGPT,
             allowed="every part of weeks 1-6, the learner's or the library's "
             "(`F.scaled_dot_product_attention`, `nn.RMSNorm`, `nn.LayerNorm`, `F.gelu`, ...)"),
    # with the reference MiniGPT too: `generate` is graded on the reference model, and a
    # broken MiniGPT cell must not break the definition of `generate` (its annotations)
    Exercise(7, "generate", "generate: sampling and the KV cache",
             "solutions.model:filter_logits,generate", "build_generate",
             given=(*WEEK7_GIVEN, "solutions.model:Block,MiniGPT"), forbidden=GENERATE,
             allowed="`torch.topk`, `sort`, `cumsum`, `softmax`, `torch.multinomial`"),
    Exercise(8, "count_parameters", "Exact parameter counts", "solutions.scaling:count_parameters",
             forbidden=COUNT_PARAMETERS, allowed="arithmetic on the config, `math.prod` (a "
             "built model's count is refused; the given `parameter_breakdown` at run time too)"),
    Exercise(8, "chinchilla_loss", "The Chinchilla loss", "solutions.scaling:chinchilla_loss",
             allowed="everything: it is one formula"),
    Exercise(8, "compute_optimal", "The compute-optimal N and D",
             "solutions.scaling:compute_optimal", allowed="a numerical minimiser (a grid, golden "
             "section, `scipy.optimize`): the answer must be right to 0.1 %"),
    # graded with the parts of weeks 1, 3 and 4 they build on, so a file holding only this
    # week's class grades, and a mistake in an earlier part is not charged again
    Exercise(9, "multi_head_latent_attention", "Multi-head latent attention (DeepSeek-V3)",
             "solutions.latent_attention:MultiHeadLatentAttention", "mla_cases",
             forbidden=LATENT_ATTENTION,
             given=("solutions.attention:causal_mask,scaled_dot_product_attention",
                    "solutions.positions:ROPE_THETA,rope_angles,rotate_half,apply_rope,"
                    "rope_interleaved",
                    "solutions.normalization:RMSNorm"),
             allowed="the given parts of weeks 1, 3 and 4 (`scaled_dot_product_attention`, "
             "`RMSNorm`, `rope_interleaved`), `F.scaled_dot_product_attention`, `nn.Linear`"),
    Exercise(9, "deepseek_moe", "DeepSeekMoE: shared and routed experts",
             "solutions.deepseek_moe:deepseek_route,DeepSeekMoE", "moe_cases",
             forbidden=DEEPSEEK_MOE, given=("solutions.feedforward:SwiGLU",),
             allowed="the given `SwiGLU`, `torch.sigmoid`, `torch.topk`, `index_add_`, "
             "`scatter`"),
    Exercise(10, "sequence_logprobs", "Sequence log-probabilities",
             "solutions.finetune:sequence_logprobs", forbidden=SEQUENCE_LOGPROBS,
             allowed="`F.log_softmax`, `gather`, `F.cross_entropy(..., reduction=\"none\")`: "
             "choosing the positions and summing them is the exercise"),
    Exercise(10, "sft_loss", "SFT loss with the prompt masked", "solutions.finetune:sft_loss",
             forbidden=SFT_LOSS, allowed="`F.cross_entropy` (with `ignore_index`, or on the "
             "masked rows), `F.log_softmax`, `F.nll_loss`"),
    Exercise(10, "dpo_loss", "DPO loss (sigmoid, conservative label smoothing)",
             "solutions.finetune:dpo_loss", forbidden=DPO,
             allowed="`F.logsigmoid`, `F.softplus`, `F.binary_cross_entropy_with_logits`"),
    Exercise(10, "lora_linear", "LoRALinear: a frozen layer plus B @ A",
             "solutions.finetune:LoRALinear", forbidden=LORA, allowed=LORA_ALLOWED),
    # graded with the reference LoRALinear (its case script brings it), so a mistake in the
    # layer is not charged again here
    Exercise(10, "add_lora", "add_lora: wrap the targets, freeze the rest",
             "solutions.finetune:add_lora", forbidden=LORA, allowed=LORA_ALLOWED),
]

# Names of the exercise contract that are no exercise's answer, by the week that teaches them:
# ``solutions`` exports them too, next to every name of every exercise's reference
# (course/build.py writes the imports).
ALSO_EXPORTED: dict[int, tuple[str, ...]] = {
    2: ("solutions.tokenizer:GPT2_SPLIT_PATTERN",),
    3: ("solutions.feedforward:swiglu_hidden_dim",),
    4: ("solutions.positions:rope_interleaved,interleaved_to_halves,sinusoidal_positions",),
    5: ("solutions.efficient_attention:sliding_window_attention,KVCache",),
    6: ("solutions.moe:dense_moe_forward",),
    7: ("solutions.model:GPTConfig,CachedAttention",),
    9: ("solutions.latent_attention:CachedLatentAttention,LatentKVCache,latent_cache_bytes,"
         "decode_from_latents,absorbed_projections",
         "solutions.deepseek_moe:expert_load,update_routing_bias",
         "solutions.llama4:Llama4MoE,chunked_attention_mask,ChunkedKVCache,"
         "attention_temperature,qk_norm"),
}

BY_NAME: dict[str, Exercise] = {e.name: e for e in EXERCISES}
BY_WEEK: dict[int, Week] = {w.number: w for w in WEEKS}


def exercises_of(week: int) -> list[Exercise]:
    return [e for e in EXERCISES if e.week == week]
