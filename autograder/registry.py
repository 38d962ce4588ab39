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
    # dotted path of a function the learner may not call -> why not; checked in the source
    # and made to raise in the worker
    forbidden: Mapping[str, str] = field(default_factory=dict)
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


NO_SDPA = dict.fromkeys(
    ("torch.nn.functional.scaled_dot_product_attention",
     "torch._C._nn.scaled_dot_product_attention"),
    "this exercise is to write attention out yourself, so F.scaled_dot_product_attention is "
    "not allowed (the notebook compares yours with it in a demo cell)")

# the reference parts of weeks 1-6 and week 7's locked code: week 7 grades the assembly alone
WEEK7_GIVEN = (
    "solutions.attention:causal_mask,scaled_dot_product_attention",
    "solutions.positions:rope_angles,rotate_half,apply_rope",
    "solutions.efficient_attention:repeat_kv,sliding_window_mask,sliding_window_attention,"
    "Attention",
    "solutions.normalization:RMSNorm",
    "solutions.feedforward:SwiGLU",
    "solutions.moe:route,MoE,load_balancing_loss",
    "solutions.model:KVCache,CachedAttention,GPTConfig,PRESETS,make_norm,GeluMLP",
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
]

EXERCISES = [
    Exercise(1, "causal_mask", "The causal mask", "solutions.attention:causal_mask"),
    Exercise(1, "scaled_dot_product_attention", "Scaled dot-product attention",
             "solutions.attention:scaled_dot_product_attention", "sdpa_cases", forbidden=NO_SDPA),
    Exercise(1, "multi_head_attention", "Causal multi-head attention",
             "solutions.attention:MultiHeadAttention", "mha_cases", forbidden=NO_SDPA),
    Exercise(2, "bpe", "Byte-level BPE tokenizer", "solutions.tokenizer:merge_pair,BPETokenizer"),
    Exercise(3, "rmsnorm", "RMSNorm", "solutions.normalization:RMSNorm"),
    Exercise(3, "swiglu", "SwiGLU feed-forward", "solutions.feedforward:SwiGLU"),
    Exercise(4, "apply_rope", "Rotary position embedding (RoPE)",
             "solutions.positions:rope_angles,apply_rope", "rope_cases"),
    Exercise(4, "alibi_bias", "ALiBi attention bias", "solutions.positions:alibi_slopes,alibi_bias",
             "alibi_cases"),
    Exercise(5, "repeat_kv", "repeat_kv (grouped-query heads)",
             "solutions.efficient_attention:repeat_kv"),
    Exercise(5, "sliding_window_mask", "The sliding-window mask",
             "solutions.efficient_attention:sliding_window_mask"),
    Exercise(5, "attention", "Attention: GQA, RoPE and a sliding window",
             "solutions.efficient_attention:Attention"),
    Exercise(5, "kv_cache_bytes", "KV-cache memory",
             "solutions.efficient_attention:kv_cache_bytes"),
    Exercise(6, "moe", "Mixture of experts (top-k routing)", "solutions.moe:route,MoE"),
    Exercise(6, "load_balancing_loss", "Load-balancing loss", "solutions.moe:load_balancing_loss"),
    Exercise(7, "minigpt", "MiniGPT: the assembled model", "solutions.model:Block,MiniGPT",
             "build_minigpt", given=WEEK7_GIVEN),
    # with the reference MiniGPT too: `generate` is graded on the reference model, and a
    # broken MiniGPT cell must not break the definition of `generate` (its annotations)
    Exercise(7, "generate", "generate: sampling and the KV cache",
             "solutions.model:filter_logits,generate", "build_generate",
             given=(*WEEK7_GIVEN, "solutions.model:Block,MiniGPT")),
    Exercise(8, "count_parameters", "Exact parameter counts", "solutions.scaling:count_parameters"),
    Exercise(8, "chinchilla_loss", "The Chinchilla loss", "solutions.scaling:chinchilla_loss"),
    Exercise(8, "compute_optimal", "The compute-optimal N and D",
             "solutions.scaling:compute_optimal"),
]

# Names of the exercise contract that are no exercise's answer: ``solutions`` exports them
# too, next to every name of every exercise's reference (course/build.py writes the imports).
ALSO_EXPORTED = (
    "solutions.tokenizer:GPT2_SPLIT_PATTERN",
    "solutions.positions:rope_interleaved,interleaved_to_halves,sinusoidal_positions",
    "solutions.efficient_attention:sliding_window_attention",
    "solutions.moe:dense_moe_forward",
    "solutions.model:GPTConfig,KVCache,CachedAttention",
)

BY_NAME: dict[str, Exercise] = {e.name: e for e in EXERCISES}
BY_WEEK: dict[int, Week] = {w.number: w for w in WEEKS}


def exercises_of(week: int) -> list[Exercise]:
    return [e for e in EXERCISES if e.week == week]
