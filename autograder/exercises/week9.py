"""Week 9 graders: multi-head latent attention (DeepSeek-V3) and DeepSeekMoE.

Both are graded with the parts of earlier weeks given (their ``given`` in
autograder/registry.py: the week-1 attention, the interleaved RoPE of week 4, RMSNorm and SwiGLU
of week 3), so a file holding only this week's class grades, and a mistake in an earlier part is
not charged again. Every known mistake is computed here in float64 from the same weights and
inputs, and named when a submission's output equals it.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor

from autograder.compare import Mismatch, describe
from autograder.exercises.common import (
    expect,
    expect_grads,
    hidden_input,
    module_call,
    module_case,
    randn,
    reference_run,
    run_reference,
    script_call,
    state_case,
    swiglu_state,
    tolerance,
)
from autograder.grading import Case
from solutions.deepseek_moe import DeepSeekMoE, deepseek_route
from solutions.latent_attention import MultiHeadLatentAttention
from solutions.positions import ROPE_THETA, apply_rope, rope_interleaved

# ---------------------------------------------------------------- multi-head latent attention

# (dim, n_heads, q_lora_rank, kv_lora_rank, qk_nope_head_dim, qk_rope_head_dim, v_head_dim)
SMALL = (32, 4, 24, 16, 8, 4, 6)

ROPE_WHOLE = ("RoPE rotates only the rope part: the query's last qk_rope_head_dim dimensions "
              "and the shared RoPE key from kv_a_proj_with_mqa, not the whole query and key "
              "(the nope part carries no position, which is what lets kv_b_proj be absorbed)")
ROPE_HALVES = ("you paired dimension i with i + d/2 (week 4's rotate_half); DeepSeek-V3 pairs "
               "adjacent dimensions (2i, 2i+1): use rope_interleaved, as transformers does "
               "with rope_interleave=True")
SCALE_NOPE = ("the scores are scaled by 1/sqrt(qk_nope_head_dim); the query and key are "
              "qk_nope_head_dim + qk_rope_head_dim wide, so scale by 1/sqrt(nope + rope)")


def _mla_state(gen: torch.Generator, dim, n_heads, q_lora, r, nope, rope, v) -> dict:
    """Weights of an MLA with norm weights away from one (so a skipped norm shows)."""
    state = {}
    if q_lora is None:
        state["q_proj.weight"] = randn(gen, n_heads * (nope + rope), dim, scale=dim**-0.5)
    else:
        state["q_a_proj.weight"] = randn(gen, q_lora, dim, scale=dim**-0.5)
        state["q_a_layernorm.weight"] = 1 + randn(gen, q_lora, scale=0.3)
        state["q_b_proj.weight"] = randn(gen, n_heads * (nope + rope), q_lora, scale=q_lora**-0.5)
    state["kv_a_proj_with_mqa.weight"] = randn(gen, r + rope, dim, scale=dim**-0.5)
    state["kv_a_layernorm.weight"] = 1 + randn(gen, r, scale=0.3)
    state["kv_b_proj.weight"] = randn(gen, n_heads * (nope + v), r, scale=r**-0.5)
    state["o_proj.weight"] = randn(gen, dim, n_heads * v, scale=(n_heads * v) ** -0.5)
    return state


def _mla_shapes(dim, n_heads, q_lora, r, nope, rope, v) -> dict[str, tuple[int, ...]]:
    shapes = {"q_proj.weight": (n_heads * (nope + rope), dim)} if q_lora is None else {
        "q_a_proj.weight": (q_lora, dim), "q_a_layernorm.weight": (q_lora,),
        "q_b_proj.weight": (n_heads * (nope + rope), q_lora)}
    return shapes | {
        "kv_a_proj_with_mqa.weight": (r + rope, dim), "kv_a_layernorm.weight": (r,),
        "kv_b_proj.weight": (n_heads * (nope + v), r), "o_proj.weight": (dim, n_heads * v)}


def _rms(t: Tensor, w: Tensor, eps: float | None) -> Tensor:
    if eps is None:  # the norm is skipped
        return t
    return t * torch.rsqrt(t.pow(2).mean(-1, keepdim=True) + eps) * w


def _mla_variant(x: Tensor, state: dict, dims: tuple, theta: float = ROPE_THETA,
                 eps: float = 1e-6, *, rope: str = "pairs", scale: str = "full",
                 q_eps: float | None | str = "same", kv_eps: float | None | str = "same",
                 kv_a: str = "latent_first", kv_b: str = "per_head", q_split: str = "nope_first",
                 rope_first: str = "", order: str = "qk", causal: bool = True) -> Tensor:
    """MLA in float64 on the weights and inputs as the learner has them: the reference and
    the known mistakes. ``rope``: "pairs" (right), "halves", "none", "whole" (the full query
    and key), "key_only", "query_only" (only one of the two rotated); ``scale``: "full"
    (right), "nope", "none"; ``q_eps``/``kv_eps``: the epsilon of each RMSNorm (None skips
    it); ``kv_a``: split order of kv_a_proj_with_mqa; ``kv_b``: "per_head" ([key | value] per
    head, right) or "blocks" (all keys, then all values); ``q_split``: "nope_first" (right) or
    "rope_first"; ``rope_first``: "q" or "k" builds that one as [rope | nope] (the other as
    [nope | rope]); ``order``: "qk" (right) or "kq" (the query and key swapped)."""
    _, H, q_lora, r, nope, rope_dim, v = dims
    w = {k: t.to(x.dtype).double() for k, t in state.items()}
    x = x.double()
    B, T, _ = x.shape
    pos = torch.arange(T)
    q_eps = eps if q_eps == "same" else q_eps
    kv_eps = eps if kv_eps == "same" else kv_eps

    if q_lora is None:
        q = x @ w["q_proj.weight"].T
    else:
        q = _rms(x @ w["q_a_proj.weight"].T, w["q_a_layernorm.weight"], q_eps)
        q = q @ w["q_b_proj.weight"].T
    q = q.view(B, T, H, nope + rope_dim).transpose(1, 2)
    if q_split == "nope_first":
        q_nope, q_rope = q.split([nope, rope_dim], -1)
    else:
        q_rope, q_nope = q.split([rope_dim, nope], -1)
    kv_a_out = x @ w["kv_a_proj_with_mqa.weight"].T
    if kv_a == "latent_first":
        latent, k_rope = kv_a_out.split([r, rope_dim], -1)
    else:
        k_rope, latent = kv_a_out.split([rope_dim, r], -1)
    latent = _rms(latent, w["kv_a_layernorm.weight"], kv_eps)
    kv = latent @ w["kv_b_proj.weight"].T  # (B, T, H * (nope + v))
    if kv_b == "per_head":
        kv = kv.view(B, T, H, nope + v).transpose(1, 2)
        k_nope, val = kv.split([nope, v], -1)
    else:
        k_flat, v_flat = kv.split([H * nope, H * v], -1)
        k_nope = k_flat.view(B, T, H, nope).transpose(1, 2)
        val = v_flat.view(B, T, H, v).transpose(1, 2)
    k_rope = k_rope[:, None].expand(B, H, T, rope_dim)

    rot = {"pairs": rope_interleaved, "halves": apply_rope, "whole": rope_interleaved,
           "key_only": rope_interleaved, "query_only": rope_interleaved}.get(rope)
    if rope == "whole":
        q = rot(torch.cat((q_nope, q_rope), -1), pos, theta)
        k = rot(torch.cat((k_nope, k_rope), -1), pos, theta)
    else:
        if rot is not None and rope != "key_only":
            q_rope = rot(q_rope, pos, theta)
        if rot is not None and rope != "query_only":
            k_rope = rot(k_rope, pos, theta)
        q = torch.cat((q_rope, q_nope) if rope_first == "q" else (q_nope, q_rope), -1)
        k = torch.cat((k_rope, k_nope) if rope_first == "k" else (k_nope, k_rope), -1)
    factor = {"full": (nope + rope_dim) ** -0.5, "nope": nope**-0.5, "none": 1.0}[scale]
    scores = (q @ k.transpose(-2, -1) if order == "qk" else k @ q.transpose(-2, -1)) * factor
    if causal:
        scores = scores.masked_fill(~torch.ones(T, T, dtype=torch.bool).tril(), float("-inf"))
    y = scores.softmax(-1) @ val  # (B, H, T, v)
    return y.transpose(1, 2).reshape(B, T, H * v) @ w["o_proj.weight"].T


def _mla_mistakes(x: Tensor, state: dict, dims: tuple, theta: float, eps: float,
                  theta_given: bool, eps_given: bool) -> dict[str, Tensor]:
    m = lambda **kw: _mla_variant(x, state, dims, theta, eps, **kw)  # noqa: E731
    q_lora = dims[2]
    mistakes = {
        ROPE_HALVES: m(rope="halves"),
        ROPE_WHOLE: m(rope="whole"),
        "no RoPE: rotate the rope part of the query and the shared RoPE key with "
        "rope_interleaved(..., positions=arange(T), rope_theta)": m(rope="none"),
        "the query's rope part is not rotated: apply rope_interleaved to it as to the shared "
        "RoPE key (and attend with the rotated query)": m(rope="key_only"),
        "the shared RoPE key is not rotated: apply rope_interleaved to it as to the query's "
        "rope part": m(rope="query_only"),
        **{f"build the query and the key in the same order, [nope | rope]: yours puts the "
           f"rope part first in the {which}": m(rope_first=which[0]) for which in ("query", "key")},
        "the query and the key are swapped: the scores are q @ k^T (a row per query), so pass "
        "q first to the attention": m(order="kq"),
        SCALE_NOPE: m(scale="nope"),
        "the scores are not scaled: divide by sqrt(qk_nope_head_dim + qk_rope_head_dim)":
            m(scale="none"),
        "the latent is not normalised: apply kv_a_layernorm (RMSNorm) to the latent part of "
        "kv_a_proj_with_mqa's output, before kv_b_proj": m(kv_eps=None),
        "kv_a_proj_with_mqa's output is [latent (kv_lora_rank) | RoPE key (qk_rope_head_dim)]: "
        "you took the RoPE key first": m(kv_a="rope_first"),
        "kv_b_proj's output holds, per head, the key's nope part then the value: view it as "
        "(B, T, n_heads, qk_nope_head_dim + v_head_dim) before splitting, not as all keys "
        "then all values": m(kv_b="blocks"),
        "each head's query is [nope (qk_nope_head_dim) | rope (qk_rope_head_dim)]: you took "
        "the rope part first": m(q_split="rope_first"),
        "your attention is not causal: a token must not attend to later tokens":
            m(causal=False),
    }
    if q_lora is not None:
        mistakes["the compressed query is not normalised: apply q_a_layernorm between q_a_proj "
                 "and q_b_proj"] = m(q_eps=None)
    if eps_given:
        mistakes["norm_eps is not passed to the RMSNorms (both keep their default 1e-6)"] = \
            m(q_eps=1e-6, kv_eps=1e-6)
        mistakes["pass norm_eps to kv_a_layernorm too"] = m(kv_eps=1e-6)
        if q_lora is not None:
            mistakes["pass norm_eps to q_a_layernorm too"] = m(q_eps=1e-6)
    else:
        mistakes["the default norm_eps is 1e-6 (DeepSeek-V3's rms_norm_eps), not 1e-5"] = \
            m(q_eps=1e-5, kv_eps=1e-5)
    if theta_given:
        mistakes["use the rope_theta given to the constructor, not 10000"] = \
            _mla_variant(x, state, dims, ROPE_THETA, eps)
    elif theta == ROPE_THETA:
        mistakes["the default rope_theta is 10000"] = _mla_variant(x, state, dims, 500000.0, eps)
    return mistakes


def _mla_kwargs(theta: float | None, eps: float | None) -> dict:
    kwargs = {}
    if theta is not None:
        kwargs["rope_theta"] = theta
    if eps is not None:
        kwargs["norm_eps"] = eps
    return kwargs


def _mla_case(gen, name, shape, dims=SMALL, theta: float | None = None, eps: float | None = None,
              dtype=torch.float32, grad=False, zero=False, x_scale=1.0, points=1.0) -> Case:
    B, T = shape
    dim = dims[0]
    state = _mla_state(gen, *dims)
    x, grad_output = hidden_input(gen, (B, T, dim), dtype, zero, x_scale, grad)
    the_theta, the_eps = theta or ROPE_THETA, eps or 1e-6
    kwargs = _mla_kwargs(theta, eps)
    if dtype == torch.bfloat16:  # float64 maths on the same bf16 weights and inputs
        expected, grads = _mla_variant(x, state, dims, the_theta, the_eps).to(dtype), {}
    else:
        expected, grads = reference_run(MultiHeadLatentAttention(*dims, **kwargs), state, x,
                                        grad_output)
    mistakes = _mla_mistakes(x, state, dims, the_theta, the_eps, theta is not None,
                             eps is not None)
    return module_case(name, "MultiHeadLatentAttention", dims, kwargs, state, x, expected, grads,
                       grad_output, mistakes, tolerance(dtype), points)


def _mla_state_case(gen, name, dims) -> Case:
    return state_case(name, "MultiHeadLatentAttention", dims, _mla_shapes(*dims),
                      x=randn(gen, 2, 3, dims[0]))


def _mla_future_case(gen) -> Case:
    """A property: changing the tokens from ``cut`` on leaves every earlier output unchanged."""
    T = 10
    cut = int(torch.randint(3, T - 1, (1,), generator=gen))
    state = _mla_state(gen, *SMALL)
    x = randn(gen, 1, T, SMALL[0])
    x2 = x.clone()
    x2[:, cut:] = 3 * randn(gen, 1, T - cut, SMALL[0])
    batch = torch.cat([x, x2])
    ref = MultiHeadLatentAttention(*SMALL)
    ref.load_state_dict(state)
    expected, _ = run_reference(ref, [batch])
    mistakes = _mla_mistakes(batch, state, SMALL, ROPE_THETA, 1e-6, False, False)

    def check(result: dict) -> None:
        y = result["output"]
        if type(y) is Tensor and y.shape == batch.shape and torch.isfinite(y).all():
            diff = (y[0, :cut] - y[1, :cut]).abs().amax(-1)
            changed = [i for i in range(cut) if diff[i] > 1e-5 + 1e-4 * y[0, i].abs().max()]
            if changed:
                raise Mismatch(f"changing only tokens {cut}..{T - 1} changed your output at "
                               f"position(s) {changed}: an output depends on a later token")
        expect(y, expected, mistakes=mistakes)

    call = module_call("MultiHeadLatentAttention", SMALL, {}, state, [batch])
    return Case("property: no output depends on a later token", call, check)


def mla_cases(gen: torch.Generator) -> list[Case]:
    wide = (48, 3, 20, 12, 16, 8, 10)  # v_head_dim differs from qk_nope_head_dim
    return [
        _mla_state_case(gen, "parameters: q_a_proj, q_a_layernorm, q_b_proj, "
                        "kv_a_proj_with_mqa, kv_a_layernorm, kv_b_proj, o_proj (no biases)",
                        SMALL),
        _mla_state_case(gen, "parameters with q_lora_rank=None: one q_proj (dim -> "
                        "n_heads * (nope + rope))", (32, 4, None, 16, 8, 4, 6)),
        _mla_case(gen, "float32, (2, 9) tokens, 4 heads, q_lora_rank 24, kv_lora_rank 16",
                  (2, 9), theta=500.0, points=2),
        _mla_case(gen, "q_lora_rank=None: one q_proj", (2, 7), (32, 4, None, 16, 8, 4, 6),
                  theta=500.0),
        _mla_case(gen, "v_head_dim differs from qk_nope_head_dim, 3 heads, rope dim 8",
                  (1, 12), wide, theta=1000.0),
        _mla_case(gen, "default rope_theta (10000), 40 positions", (1, 40)),
        _mla_case(gen, "default norm_eps (1e-6): tiny activations, where epsilon matters",
                  (2, 6), theta=500.0, x_scale=3e-4),
        _mla_case(gen, "norm_eps = 1e-3 reaches both RMSNorms", (2, 6), theta=500.0, eps=1e-3,
                  x_scale=3e-2),
        _mla_case(gen, "a single head and a single token", (3, 1), (16, 1, 8, 8, 4, 4, 4)),
        _mla_case(gen, "gradients: the input and every projection and norm", (2, 7),
                  theta=500.0, grad=True, points=2),
        _mla_case(gen, "bfloat16 in, bfloat16 out", (2, 8), theta=500.0, dtype=torch.bfloat16),
        _mla_case(gen, "float64 in, float64 out", (1, 6), theta=500.0, dtype=torch.float64),
        _mla_case(gen, "all-zero input gives zeros, not NaN", (1, 5), zero=True),
        _mla_future_case(gen),
    ]


# ---------------------------------------------------------------- DeepSeekMoE

# (dim, expert_hidden_dim, n_routed_experts, n_shared_experts, top_k)
MOE_ARGS = (16, 12, 8, 2, 3)
MOE_KW = {"n_group": 4, "topk_group": 2, "routed_scaling_factor": 2.5}


def _moe_state(gen, dim, hidden, n_experts, n_shared, bias_scale=0.15) -> dict:
    state = {"gate.weight": randn(gen, n_experts, dim, scale=1.5 * dim**-0.5),
             "gate.e_score_correction_bias": randn(gen, n_experts, scale=bias_scale)}
    for e in range(n_experts):
        state |= swiglu_state(gen, dim, hidden, f"experts.{e}.")
    return state | swiglu_state(gen, dim, n_shared * hidden, "shared_experts.")


def _moe_shapes(dim, hidden, n_experts, n_shared) -> dict[str, tuple[int, ...]]:
    shapes = {"gate.weight": (n_experts, dim), "gate.e_score_correction_bias": (n_experts,)}
    for e in range(n_experts):
        shapes |= {f"experts.{e}.gate_proj.weight": (hidden, dim),
                   f"experts.{e}.up_proj.weight": (hidden, dim),
                   f"experts.{e}.down_proj.weight": (dim, hidden)}
    shared = n_shared * hidden
    return shapes | {"shared_experts.gate_proj.weight": (shared, dim),
                     "shared_experts.up_proj.weight": (shared, dim),
                     "shared_experts.down_proj.weight": (dim, shared)}


def _full_kw(kw: dict) -> dict:
    return {"n_group": 1, "topk_group": 1, "routed_scaling_factor": 1.0,
            "norm_topk_prob": True} | kw


def _route_gaps(logits: Tensor, bias: Tensor, top_k: int, kw: dict) -> Tensor:
    """Per token, the smallest gap at a routing boundary (groups kept or not, experts chosen
    or not) of the reference routing, in float64: a near-tie there would let two correct
    implementations (float32 against bf16 logits) choose differently."""
    kw = _full_kw(kw)
    N, E = logits.shape
    G, keep = kw["n_group"], kw["topk_group"]
    biased = logits.double().sigmoid() + bias.double()
    group = biased.view(N, G, E // G).topk(min(2, E // G), -1).values.sum(-1)  # (N, G)
    gaps = torch.full((N,), math.inf, dtype=torch.float64)
    if keep < G:
        s = group.sort(-1, descending=True).values
        gaps = torch.minimum(gaps, s[:, keep - 1] - s[:, keep])
    allowed = torch.zeros_like(group, dtype=torch.bool).scatter(1, group.topk(keep, -1).indices,
                                                                True)
    masked = biased.masked_fill(~allowed.repeat_interleave(E // G, 1), -math.inf)
    s = masked.sort(-1, descending=True).values
    if top_k < keep * (E // G):
        gaps = torch.minimum(gaps, s[:, top_k - 1] - s[:, top_k])
    return gaps


def _moe_input(gen, shape, state, top_k, kw, dtype, zero=False, every_expert=False) -> Tensor:
    """Tokens whose routing is unambiguous (redrawn where a boundary is a near-tie); with
    ``every_expert``, redrawn until every expert gets a token (so each has a gradient)."""
    N = math.prod(shape[:-1])
    if zero:
        return torch.zeros(shape, dtype=dtype)
    w = state["gate.weight"].to(dtype).double()
    bias = state["gate.e_score_correction_bias"].to(dtype)
    margin = 0.03 if dtype == torch.bfloat16 else 2e-3
    x = randn(gen, N, shape[-1]).to(dtype)
    for _ in range(500):
        logits = x.double() @ w.T
        bad = _route_gaps(logits, bias, top_k, kw) < margin
        if every_expert and not bad.any():
            _, chosen = deepseek_route(logits, bias, top_k, **_full_kw(kw))
            if len(chosen.unique()) < w.shape[0]:
                bad[int(torch.randint(N, (1,), generator=gen))] = True
        if not bad.any():
            return x.reshape(shape)
        x = x.clone()
        x[bad] = randn(gen, int(bad.sum()), shape[-1]).to(dtype)
    raise RuntimeError("could not draw unambiguous routing")


def _moe_variant(x: Tensor, state: dict, top_k: int, kw: dict, *, score="sigmoid",
                 weights_from="unbiased", groups="top2", bias_in_choice=True, norm="given",
                 scale="after", shared="added", on_inputs=False, bias_sign=1.0,
                 invert_groups=False, weighted=True, accumulate="add") -> Tensor:
    """DeepSeekMoE in float64 on the weights and inputs as the learner has them: the
    reference (all defaults) and the known mistakes. ``norm``: "given", "always", "never" or
    "mean" (divided by the mean, not the sum); ``scale``: "after" (right), "before", "none",
    "total" (shared experts too), "divide"; ``shared``: "added" (right), "missing", "only" (no
    routed experts); ``accumulate``: "add" (right) or "last" (each token keeps only its
    highest-numbered expert, as ``index_copy_`` in a loop over the experts does)."""
    kw = _full_kw(kw)
    w = {k: t.to(x.dtype).double() for k, t in state.items()}
    xf = x.reshape(-1, x.shape[-1]).double()  # (N, dim)
    N, (E, _) = xf.shape[0], w["gate.weight"].shape
    G, keep = kw["n_group"], kw["topk_group"]
    logits = xf @ w["gate.weight"].T
    s = logits.sigmoid() if score == "sigmoid" else logits.softmax(-1)
    bias = w["gate.e_score_correction_bias"] if bias_in_choice else torch.zeros(E).double()
    biased = s + bias_sign * bias
    if groups == "none":
        allowed = torch.ones(N, E, dtype=torch.bool)
    else:
        rated = biased if groups != "unbiased" else s
        per_group = rated.view(N, G, E // G)
        group_score = {"top2": per_group.topk(min(2, E // G), -1).values.sum(-1),
                       "unbiased": per_group.topk(min(2, E // G), -1).values.sum(-1),
                       "max": per_group.amax(-1), "sum": per_group.sum(-1)}[groups]
        kept = group_score.topk(keep, -1).indices
        allowed = torch.zeros(N, G, dtype=torch.bool).scatter(1, kept, True)
        allowed = allowed.repeat_interleave(E // G, 1)
        if invert_groups:
            allowed = ~allowed
    chosen = biased.masked_fill(~allowed, -math.inf).topk(top_k, -1).indices  # (N, k)
    weights = (biased if weights_from == "biased" else s).gather(1, chosen)
    factor = kw["routed_scaling_factor"]
    if scale == "before":
        weights = weights * factor
    normalise = {"given": kw["norm_topk_prob"], "always": True, "never": False,
                 "mean": True}[norm]
    if normalise:
        total = weights.mean(-1, keepdim=True) if norm == "mean" else weights.sum(-1, True)
        weights = weights / total
    if scale == "after":
        weights = weights * factor
    elif scale == "divide":
        weights = weights / factor

    def swiglu(p: str, h: Tensor) -> Tensor:
        g, u = h @ w[p + "gate_proj.weight"].T, h @ w[p + "up_proj.weight"].T
        return (F.silu(g) * u) @ w[p + "down_proj.weight"].T

    routed = torch.zeros_like(xf)
    counted = chosen == chosen.amax(-1, keepdim=True) if accumulate == "last" else \
        torch.ones_like(chosen, dtype=torch.bool)
    for slot in range(top_k):
        wt = weights[:, slot, None] if weighted else torch.ones(N, 1, dtype=torch.float64)
        for e in range(E):
            rows = (chosen[:, slot] == e) & counted[:, slot]
            if rows.any():
                h = xf[rows] * wt[rows] if on_inputs else xf[rows]
                out = swiglu(f"experts.{e}.", h)
                routed[rows] += out if on_inputs else out * wt[rows]
    y = routed if shared != "only" else torch.zeros_like(xf)
    if shared in ("added", "only"):
        y = y + swiglu("shared_experts.", xf)
    if scale == "total":
        y = y * factor
    return y.reshape(x.shape)


def _moe_mistakes(x: Tensor, state: dict, top_k: int, kw: dict) -> tuple[dict, dict]:
    """(mistakes for y, mistakes for the router logits)."""
    m = lambda **k: _moe_variant(x, state, top_k, kw, **k)  # noqa: E731
    full = _full_kw(kw)
    y = {
        "the routing weights must be the *unbiased* sigmoid scores of the chosen experts: "
        "e_score_correction_bias only decides which experts are chosen":
            m(weights_from="biased"),
        "e_score_correction_bias is ignored: add it to the sigmoid scores to choose the "
        "experts (and the groups), though not to weight them": m(bias_in_choice=False),
        "DeepSeek-V3 routes with sigmoid scores, not a softmax over the experts":
            m(score="softmax"),
        "the shared experts are missing: add shared_experts(x), which every token goes "
        "through, to the routed experts' sum": m(shared="missing"),
        "routed_scaling_factor must scale only the routed experts' weights, not the shared "
        "experts' output too": m(scale="total"),
        "the routing weights must multiply the experts' outputs, not their inputs":
            m(on_inputs=True),
        "add e_score_correction_bias to the sigmoid scores, do not subtract it (a raised bias "
        "makes an under-used expert more likely to be chosen)": m(bias_sign=-1.0),
        "the routed experts' outputs are not weighted: multiply each chosen expert's output by "
        "its routing weight": m(weighted=False),
        "the routed experts are missing: add each token's top_k chosen experts, weighted, to "
        "the shared experts' output": m(shared="only"),
    }
    if top_k > 1:
        y["a token's top_k experts must add up: index_copy_ (or an assignment) keeps only the "
          "last expert written, index_add_ (or +=) sums them"] = m(accumulate="last")
        if full["norm_topk_prob"]:
            y["with norm_topk_prob divide the chosen scores by their sum, not their mean"] = \
                m(norm="mean")
    if full["routed_scaling_factor"] != 1.0:
        y["the routed weights are not multiplied by routed_scaling_factor (after normalising "
          "them)"] = m(scale="none")
        if full["norm_topk_prob"]:
            y["multiply by routed_scaling_factor after normalising the weights: normalising "
              "afterwards cancels it"] = m(scale="before")
        y["multiply the routed weights by routed_scaling_factor, do not divide by it"] = \
            m(scale="divide")
    if full["norm_topk_prob"]:
        y["with norm_topk_prob the chosen scores must be divided by their sum"] = m(norm="never")
    else:
        y["norm_topk_prob=False: keep the chosen sigmoid scores as they are (do not "
          "normalise them)"] = m(norm="always")
    if full["topk_group"] < full["n_group"]:
        y |= {
            "the group limit is missing: choose the topk_group best groups first (rated by "
            "the sum of their two best biased scores), then the top_k experts inside them":
                m(groups="none"),
            "rate each group by the sum of its two best biased scores, not by its best one":
                m(groups="max"),
            "rate each group by the sum of its two best biased scores, not by the sum of all "
            "of them": m(groups="sum"),
            "rate the groups on the biased scores (sigmoid + e_score_correction_bias), as the "
            "experts are chosen": m(groups="unbiased"),
            "the group mask is inverted: choose the experts inside the topk_group best groups, "
            "not outside them (masked_fill fills where its mask is True)":
                m(invert_groups=True),
        }
    xf = x.reshape(-1, x.shape[-1]).double()
    logits = xf @ state["gate.weight"].to(x.dtype).double().T
    logit_mistakes = {
        "return the raw router logits gate(x) (float32), not their sigmoid": logits.sigmoid(),
        "return the raw router logits gate(x), without the correction bias":
            logits + state["gate.e_score_correction_bias"].double(),
    }
    return y, logit_mistakes


def _check_moe(result: dict, expected: tuple[Tensor, Tensor], y_mistakes: dict,
               logit_mistakes: dict, batch_shape, loose: bool) -> None:
    out = result["output"]
    if not isinstance(out, tuple | list) or len(out) != 2:
        raise Mismatch(f"forward should return a pair (y, router_logits); got {describe(out)}")
    y, logits = out
    want_y, want_logits = expected
    n_experts = want_logits.shape[-1]
    if isinstance(logits, Tensor) and tuple(logits.shape) == (*batch_shape, n_experts) \
            and len(batch_shape) > 1:
        raise Mismatch(f"router_logits should be flattened to (batch*seq, n_experts) = "
                       f"{tuple(want_logits.shape)}; got {tuple(logits.shape)}")
    if isinstance(logits, Tensor) and logits.is_floating_point() \
            and logits.dtype != torch.float32:
        raise Mismatch(f"router_logits should be float32 (the router runs in float32); got "
                       f"{logits.dtype}")
    tol = {"rtol": 3e-2, "atol": 3e-2} if loose else {}
    expect(y, want_y, "output y", mistakes=y_mistakes, **tol)
    expect(logits, want_logits, "router_logits", mistakes=logit_mistakes,
           **({"rtol": 2e-2, "atol": 2e-2} if loose else {}))


def _moe_case(gen, name, shape, args=MOE_ARGS, kw=None, dtype=torch.float32, grad=False,
              zero=False, points=1.0) -> Case:
    kw = MOE_KW if kw is None else kw
    dim, hidden, n_experts, n_shared, top_k = args
    state = _moe_state(gen, dim, hidden, n_experts, n_shared)
    if zero:  # routing by the bias alone: keep its boundaries clear
        for _ in range(200):
            gaps = _route_gaps(torch.zeros(1, n_experts), state["gate.e_score_correction_bias"]
                               .to(dtype), top_k, kw)
            if gaps.min() > 0.01:
                break
            state["gate.e_score_correction_bias"] = randn(gen, n_experts, scale=0.15)
    x = _moe_input(gen, shape, state, top_k, kw, dtype, zero=zero, every_expert=grad)
    grad_output = randn(gen, *shape, dtype=dtype) if grad else None
    expected, grads = reference_run(DeepSeekMoE(*args, **kw), state, x, grad_output)
    y_mistakes, logit_mistakes = _moe_mistakes(x, state, top_k, kw)

    def check_grads(result: dict, grads: dict) -> None:
        try:
            expect_grads(result, grads)
        except Mismatch as exc:
            if "gate.weight" in str(exc):
                raise Mismatch(f"{exc} (the weights of the chosen experts are sigmoid scores of "
                               "the router logits: keep them differentiable, so the router "
                               "learns)") from None
            raise

    return module_case(name, "DeepSeekMoE", args, kw, state, x, expected, grads, grad_output,
                       points=points, check_grads=check_grads,
                       check_output=lambda result: _check_moe(
                           result, expected, y_mistakes, logit_mistakes, shape[:-1],
                           loose=dtype == torch.bfloat16))


BUFFER_SCRIPT = """
moe = DeepSeekMoE(*args)
result = {"params": [n for n, _ in moe.named_parameters()],
          "buffers": [n for n, _ in moe.named_buffers()],
          "bias": dict(moe.named_buffers()).get("gate.e_score_correction_bias")}
"""


def _moe_state_case(gen) -> Case:
    return state_case("parameters: gate.weight, experts.{e}.*, shared_experts.* (n_shared * "
                      "width), no biases", "DeepSeekMoE", (12, 10, 6, 1, 2),
                      _moe_shapes(12, 10, 6, 1))


def _moe_buffer_case(gen) -> Case:
    args = (12, 10, 6, 1, 2)

    def check(result: dict) -> None:
        out = result["output"]
        if "gate.e_score_correction_bias" in out["params"]:
            raise Mismatch("gate.e_score_correction_bias must be a buffer (register_buffer), "
                           "not a parameter: the balancing rule sets it after each step, and "
                           "an optimiser (and its weight decay) must not touch it")
        if "gate.e_score_correction_bias" not in out["buffers"]:
            raise Mismatch("gate.e_score_correction_bias should be a buffer of the gate: "
                           "self.gate.register_buffer('e_score_correction_bias', "
                           "torch.zeros(n_routed_experts))")
        bias = out["bias"]
        if type(bias) is not Tensor or bias.shape != (6,) or bias.dtype != torch.float32 \
                or bias.abs().sum() != 0:
            raise Mismatch(f"a new layer's e_score_correction_bias should be float32 zeros of "
                           f"shape (n_routed_experts,) = (6,); got {describe(bias)}")

    return Case("the correction bias is a buffer, zeros at first",
                script_call(BUFFER_SCRIPT, args=list(args)), check)


def moe_cases(gen: torch.Generator) -> list[Case]:
    return [
        _moe_state_case(gen),
        _moe_buffer_case(gen),
        _moe_case(gen, "float32, 8 experts in 4 groups (2 kept), top-3, 2 shared, scaling 2.5",
                  (2, 5, 16), points=2),
        _moe_case(gen, "defaults: n_group=1, topk_group=1, routed_scaling_factor=1.0, "
                  "norm_topk_prob=True", (2, 6, 16), kw={}),
        _moe_case(gen, "norm_topk_prob=False: the chosen sigmoid scores, scaled", (1, 9, 16),
                  kw=MOE_KW | {"norm_topk_prob": False}),
        _moe_case(gen, "16 experts in 4 groups, topk_group left to its default (1): every "
                  "token stays in one group", (1, 10, 16), (16, 8, 16, 1, 4),
                  kw={"n_group": 4, "routed_scaling_factor": 1.5}),
        _moe_case(gen, "top-1, one shared expert, one group", (3, 4, 16), (16, 12, 4, 1, 1),
                  kw={}),
        _moe_case(gen, "gradients: input, router, experts and shared experts", (2, 8, 16),
                  grad=True, points=2),
        _moe_case(gen, "bfloat16 in, bfloat16 out (router logits in float32)", (2, 6, 16),
                  dtype=torch.bfloat16),
        _moe_case(gen, "all-zero input: routing by the bias alone, zeros out, not NaN",
                  (1, 4, 16), zero=True),
    ]

