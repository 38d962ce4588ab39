"""Week 1 submissions for the grader's own tests: known-wrong ones and correct variants.

Each wrong submission is a realistic mistake. The test suite grades each one and asserts it
loses points and, where the grader knows the mistake, that its message names it.
"""

HEADER = """
import math

import torch
import torch.nn.functional as F
from torch import nn
"""

MASK_OK = """
def causal_mask(seq_len, device=None):
    return torch.ones(seq_len, seq_len, dtype=torch.bool, device=device).tril()
"""

SDPA_OK = """
def scaled_dot_product_attention(q, k, v, mask=None):
    scores = q @ k.transpose(-2, -1) / math.sqrt(q.size(-1))
    if mask is not None:
        scores = scores.masked_fill(~mask, float("-inf"))
    return torch.softmax(scores, dim=-1) @ v
"""

MHA_INIT = """
    def __init__(self, dim, n_heads):
        super().__init__()
        self.n_heads = n_heads
        self.head_dim = dim // n_heads
        self.q_proj = nn.Linear(dim, dim, bias={bias})
        self.k_proj = nn.Linear(dim, dim, bias={bias})
        self.v_proj = nn.Linear(dim, dim, bias={bias})
        self.o_proj = nn.Linear(dim, dim, bias={bias})
"""

SPLIT = """
        B, T, C = x.shape
        q = self.q_proj(x).view(B, T, self.n_heads, self.head_dim).transpose(1, 2)
        k = self.k_proj(x).view(B, T, self.n_heads, self.head_dim).transpose(1, 2)
        v = self.v_proj(x).view(B, T, self.n_heads, self.head_dim).transpose(1, 2)"""

MERGE = """
        y = y.transpose(1, 2).reshape(B, T, C)
        return self.o_proj(y)"""


def mask(body: str, signature: str = "seq_len, device=None") -> str:
    return f"{HEADER}\ndef causal_mask({signature}):\n{body}\n"


def sdpa(body: str) -> str:
    return f"{HEADER}\ndef scaled_dot_product_attention(q, k, v, mask=None):\n{body}\n"


def mha(forward: str, bias: bool = False, helpers: str = MASK_OK + SDPA_OK) -> str:
    init = MHA_INIT.format(bias=bias)
    return (f"{HEADER}\n{helpers}\n\nclass MultiHeadAttention(nn.Module):{init}\n"
            f"    def forward(self, x):{forward}\n")


# (exercise, code, a phrase the feedback must contain, or None)
WRONG = {
    # ------------------------------------------------------------ causal_mask
    "mask_inverted": ("causal_mask", mask(
        "    return torch.ones(seq_len, seq_len, dtype=torch.bool, device=device).triu(1)"),
        "inverted"),
    "mask_upper_triangle": ("causal_mask", mask(
        "    return torch.ones(seq_len, seq_len, dtype=torch.bool, device=device).triu()"),
        "upper triangle"),
    "mask_upper_by_comparison": ("causal_mask", mask("""
    i = torch.arange(seq_len, device=device)
    return i[:, None] <= i[None, :]"""), "upper triangle"),
    "mask_diagonal_excluded": ("causal_mask", mask(
        "    return torch.ones(seq_len, seq_len, dtype=torch.bool, device=device).tril(-1)"),
        "diagonal is missing"),
    "mask_additive_float": ("causal_mask", mask("""
    m = torch.full((seq_len, seq_len), float("-inf"), device=device)
    return torch.triu(m, diagonal=1)"""), "additive float mask"),
    "mask_float_ones": ("causal_mask", mask(
        "    return torch.tril(torch.ones(seq_len, seq_len, device=device))"), "torch.bool"),
    "mask_all_visible": ("causal_mask", mask(
        "    return torch.ones(seq_len, seq_len, dtype=torch.bool, device=device)"),
        "every key"),
    "mask_no_device_argument": ("causal_mask", mask(
        "    return torch.ones(seq_len, seq_len, dtype=torch.bool).tril()", signature="seq_len"),
        "device"),
    # ------------------------------------------------------------ scaled_dot_product_attention
    "sdpa_no_scaling": ("scaled_dot_product_attention", sdpa("""
    scores = q @ k.transpose(-2, -1)
    if mask is not None:
        scores = scores.masked_fill(~mask, float("-inf"))
    return torch.softmax(scores, dim=-1) @ v"""), "not scaled"),
    "sdpa_scaled_by_d": ("scaled_dot_product_attention", sdpa("""
    scores = q @ k.transpose(-2, -1) / q.shape[-1]
    if mask is not None:
        scores = scores.masked_fill(~mask, float("-inf"))
    return torch.softmax(scores, dim=-1) @ v"""), "divided the scores by head_dim"),
    "sdpa_softmax_wrong_axis": ("scaled_dot_product_attention", sdpa("""
    scores = q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1])
    if mask is not None:
        scores = scores.masked_fill(~mask, float("-inf"))
    return torch.softmax(scores, dim=-2) @ v"""), "wrong axis"),
    "sdpa_mask_inverted": ("scaled_dot_product_attention", sdpa("""
    scores = q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1])
    if mask is not None:
        scores = scores.masked_fill(mask, float("-inf"))
    return torch.softmax(scores, dim=-1) @ v"""), "inverted"),
    "sdpa_mask_fills_zero": ("scaled_dot_product_attention", sdpa("""
    scores = q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1])
    if mask is not None:
        scores = scores.masked_fill(~mask, 0.0)
    return torch.softmax(scores, dim=-1) @ v"""), "set to 0"),
    "sdpa_scores_times_mask": ("scaled_dot_product_attention", sdpa("""
    scores = q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1])
    if mask is not None:
        scores = scores * mask
    return torch.softmax(scores, dim=-1) @ v"""), "multiplied by the mask"),
    "sdpa_mask_after_softmax": ("scaled_dot_product_attention", sdpa("""
    weights = torch.softmax(q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1]), dim=-1)
    if mask is not None:
        weights = weights * mask
    return weights @ v"""), "after the softmax"),
    "sdpa_scale_after_softmax": ("scaled_dot_product_attention", sdpa("""
    scores = q @ k.transpose(-2, -1)
    if mask is not None:
        scores = scores.masked_fill(~mask, float("-inf"))
    return torch.softmax(scores, dim=-1) / math.sqrt(q.shape[-1]) @ v"""),
        "before the softmax"),
    "sdpa_mask_ignored": ("scaled_dot_product_attention", sdpa("""
    scores = q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1])
    return torch.softmax(scores, dim=-1) @ v"""), "mask is ignored"),
    "sdpa_calls_torch_kernel": ("scaled_dot_product_attention", sdpa(
        "    return F.scaled_dot_product_attention(q, k, v, attn_mask=mask)"), "not allowed"),
    "sdpa_imports_torch_kernel": ("scaled_dot_product_attention", HEADER + """
from torch.nn.functional import scaled_dot_product_attention as fused


def scaled_dot_product_attention(q, k, v, mask=None):
    return fused(q, k, v, attn_mask=mask)
""", "not allowed"),
    "sdpa_float32_for_bf16": ("scaled_dot_product_attention", sdpa("""
    q, k, v = q.float(), k.float(), v.float()
    scores = q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1])
    if mask is not None:
        scores = scores.masked_fill(~mask, float("-inf"))
    return torch.softmax(scores, dim=-1) @ v"""), "dtype"),
    "sdpa_detached": ("scaled_dot_product_attention", sdpa("""
    q, k, v = q.detach(), k.detach(), v.detach()
    scores = q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1])
    if mask is not None:
        scores = scores.masked_fill(~mask, float("-inf"))
    return torch.softmax(scores, dim=-1) @ v"""), "not connected to autograd"),
    "sdpa_scales_q_in_place": ("scaled_dot_product_attention", sdpa("""
    with torch.no_grad():
        q.div_(math.sqrt(q.shape[-1]))
    scores = q @ k.transpose(-2, -1)
    if mask is not None:
        scores = scores.masked_fill(~mask, float("-inf"))
    return torch.softmax(scores, dim=-1) @ v"""), "in place"),
    # ------------------------------------------------------------ MultiHeadAttention
    "mha_not_causal": ("multi_head_attention", mha(SPLIT + """
        y = scaled_dot_product_attention(q, k, v)""" + MERGE), "not causal"),
    "mha_merge_without_transpose": ("multi_head_attention", mha(SPLIT + """
        y = scaled_dot_product_attention(q, k, v, causal_mask(T))
        return self.o_proj(y.reshape(B, T, C))"""), "merged the heads"),
    "mha_split_without_transpose": ("multi_head_attention", mha("""
        B, T, C = x.shape
        q = self.q_proj(x).view(B, self.n_heads, T, self.head_dim)
        k = self.k_proj(x).view(B, self.n_heads, T, self.head_dim)
        v = self.v_proj(x).view(B, self.n_heads, T, self.head_dim)
        y = scaled_dot_product_attention(q, k, v, causal_mask(T))
        return self.o_proj(y.reshape(B, T, C))"""), "split the heads"),
    "mha_no_o_proj": ("multi_head_attention", mha(SPLIT + """
        y = scaled_dot_product_attention(q, k, v, causal_mask(T))
        return y.transpose(1, 2).reshape(B, T, C)"""), "o_proj is never applied"),
    "mha_with_biases": ("multi_head_attention", mha(SPLIT + """
        y = scaled_dot_product_attention(q, k, v, causal_mask(T))""" + MERGE, bias=True),
        "bias=False"),
    "mha_scaled_by_model_width": ("multi_head_attention", mha(SPLIT + """
        scores = q @ k.transpose(-2, -1) / math.sqrt(C)
        scores = scores.masked_fill(~causal_mask(T), float("-inf"))
        y = torch.softmax(scores, dim=-1) @ v""" + MERGE), "1/sqrt(dim)"),
    "mha_one_wide_head": ("multi_head_attention", mha("""
        B, T, C = x.shape
        q, k, v = self.q_proj(x), self.k_proj(x), self.v_proj(x)
        return self.o_proj(scaled_dot_product_attention(q, k, v, causal_mask(T)))"""),
        "one head of width dim"),
    "mha_upper_triangle_mask": ("multi_head_attention", mha(SPLIT + """
        y = scaled_dot_product_attention(q, k, v, causal_mask(T))""" + MERGE,
        helpers=SDPA_OK + """
def causal_mask(seq_len, device=None):
    return torch.ones(seq_len, seq_len, dtype=torch.bool, device=device).triu()
"""), "upper triangle"),
    "mha_torch_kernel": ("multi_head_attention", mha(SPLIT + """
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True)""" + MERGE),
        "not allowed"),
    "mha_wraps_nn_multiheadattention_shortcut": ("multi_head_attention", HEADER + MASK_OK + """

class MultiHeadAttention(nn.Module):
    def __init__(self, dim, n_heads):
        super().__init__()
        self.attn = nn.MultiheadAttention(dim, n_heads, bias=False, batch_first=True)

    def forward(self, x):
        T = x.shape[1]
        return self.attn(x, x, x, attn_mask=~causal_mask(T), need_weights=False)[0]
""", "not allowed"),
}

# library shortcuts (keys with "shortcut" must score zero), ignored contract defaults, the
# mirror images of named mistakes, and what a property case says when only its values are wrong
WRONG |= {
    "mask_also_next_key": ("causal_mask", mask(
        "    return torch.ones(seq_len, seq_len, dtype=torch.bool, device=device).tril(1)"),
        "the next key"),
    "mask_hides_everything": ("causal_mask", mask(
        "    return torch.zeros(seq_len, seq_len, dtype=torch.bool, device=device)"),
        "hides every key"),
    "mask_ignores_device": ("causal_mask", mask(
        "    return torch.ones(seq_len, seq_len, dtype=torch.bool).tril()"), "device='meta'"),
    "mask_square_subsequent_shortcut": ("causal_mask", mask(
        "    return nn.Transformer.generate_square_subsequent_mask(seq_len, device=device) == 0"),
        "not allowed"),
    "sdpa_scores_transposed": ("scaled_dot_product_attention", sdpa("""
    scores = k @ q.transpose(-2, -1) / math.sqrt(q.shape[-1])
    if mask is not None:
        scores = scores.masked_fill(~mask, float("-inf"))
    return torch.softmax(scores, dim=-1) @ v"""), "scores are transposed"),
    "sdpa_mask_transposed": ("scaled_dot_product_attention", sdpa("""
    scores = q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1])
    if mask is not None:
        scores = scores.masked_fill(~mask.transpose(-2, -1), float("-inf"))
    return torch.softmax(scores, dim=-1) @ v"""), "mask is applied transposed"),
    "sdpa_aten_op_shortcut": ("scaled_dot_product_attention", sdpa(
        "    return torch.ops.aten.scaled_dot_product_attention(q, k, v, attn_mask=mask)"),
        "not allowed"),
    "sdpa_math_kernel_shortcut": ("scaled_dot_product_attention", sdpa(
        "    return torch._scaled_dot_product_attention_math(q, k, v, attn_mask=mask)[0]"),
        "not allowed"),
    # a name the source check cannot see is refused when called
    "sdpa_computed_name_refused_at_run_time": ("scaled_dot_product_attention", sdpa(
        '    return getattr(F, "scaled_dot_" + "product_attention")(q, k, v, attn_mask=mask)'),
        "is not allowed in this exercise"),
    "sdpa_unscaled_keeps_hidden_keys_hidden": ("scaled_dot_product_attention", sdpa("""
    scores = q @ k.transpose(-2, -1)
    if mask is not None:
        scores = scores.masked_fill(~mask, float("-inf"))
    return torch.softmax(scores, dim=-1) @ v"""),
        "the property holds (the hidden keys had no influence), but the values are wrong: the "
        "scores are not scaled"),
    "mha_split_without_transpose_merge_right": ("multi_head_attention", mha("""
        B, T, C = x.shape
        q = self.q_proj(x).view(B, self.n_heads, T, self.head_dim)
        k = self.k_proj(x).view(B, self.n_heads, T, self.head_dim)
        v = self.v_proj(x).view(B, self.n_heads, T, self.head_dim)
        y = scaled_dot_product_attention(q, k, v, causal_mask(T))""" + MERGE),
        "(the merge is right)"),
    "mha_q_and_k_swapped": ("multi_head_attention", mha("""
        B, T, C = x.shape
        q = self.k_proj(x).view(B, T, self.n_heads, self.head_dim).transpose(1, 2)
        k = self.q_proj(x).view(B, T, self.n_heads, self.head_dim).transpose(1, 2)
        v = self.v_proj(x).view(B, T, self.n_heads, self.head_dim).transpose(1, 2)
        y = scaled_dot_product_attention(q, k, v, causal_mask(T))""" + MERGE),
        "q_proj and k_proj are swapped"),
    "mha_k_and_v_swapped": ("multi_head_attention", mha("""
        B, T, C = x.shape
        q = self.q_proj(x).view(B, T, self.n_heads, self.head_dim).transpose(1, 2)
        k = self.v_proj(x).view(B, T, self.n_heads, self.head_dim).transpose(1, 2)
        v = self.k_proj(x).view(B, T, self.n_heads, self.head_dim).transpose(1, 2)
        y = scaled_dot_product_attention(q, k, v, causal_mask(T))""" + MERGE),
        "k_proj and v_proj are swapped"),
    "mha_unscaled_but_causal": ("multi_head_attention", mha(SPLIT + """
        scores = (q @ k.transpose(-2, -1)).masked_fill(~causal_mask(T), float("-inf"))
        y = torch.softmax(scores, dim=-1) @ v""" + MERGE),
        "the property holds (no output depends on a future token), but the values are wrong"),
    "mha_functional_kernel_shortcut": ("multi_head_attention", mha("""
        B, T, C = x.shape
        w = torch.cat([self.q_proj.weight, self.k_proj.weight, self.v_proj.weight])
        y, _ = F.multi_head_attention_forward(
            x.transpose(0, 1), x.transpose(0, 1), x.transpose(0, 1), C, self.n_heads, w, None,
            None, None, False, 0.0, self.o_proj.weight, None, attn_mask=~causal_mask(T),
            need_weights=False)
        return y.transpose(0, 1)"""), "not allowed"),
}

# (exercise, code): correct however written; each must get full marks
CORRECT = {
    "mask_by_comparison": ("causal_mask", mask("""
    i = torch.arange(seq_len, device=device)
    return i[:, None] >= i[None, :]""")),
    "mask_python_loops": ("causal_mask", mask("""
    m = torch.zeros(seq_len, seq_len, dtype=torch.bool, device=device)
    for i in range(seq_len):
        for j in range(i + 1):
            m[i, j] = True
    return m""")),
    "mask_not_strict_upper": ("causal_mask", mask(
        "    return ~torch.triu(torch.ones(seq_len, seq_len, device=device), 1).bool()")),
    "sdpa_einsum": ("scaled_dot_product_attention", sdpa("""
    scores = torch.einsum("...qd,...kd->...qk", q, k) * q.shape[-1] ** -0.5
    if mask is not None:
        scores = torch.where(mask, scores, torch.tensor(float("-inf"), dtype=scores.dtype))
    return torch.einsum("...qk,...kd->...qd", scores.softmax(-1), v)""")),
    "sdpa_float64_then_cast": ("scaled_dot_product_attention", sdpa("""
    dtype = q.dtype
    q, k, v = q.double(), k.double(), v.double()
    scores = torch.matmul(q, k.transpose(-1, -2)) / math.sqrt(q.shape[-1])
    if mask is not None:
        scores = scores.masked_fill(mask.logical_not(), -math.inf)
    return torch.matmul(F.softmax(scores, dim=-1), v).to(dtype)""")),
    "sdpa_finfo_min_and_manual_softmax": ("scaled_dot_product_attention", sdpa("""
    q = q / math.sqrt(q.shape[-1])
    scores = q @ k.mT
    if mask is not None:
        scores = scores.masked_fill(~mask, torch.finfo(scores.dtype).min)
    scores = scores - scores.amax(dim=-1, keepdim=True)
    e = scores.exp()
    return (e / e.sum(dim=-1, keepdim=True)) @ v""")),
    "sdpa_additive_bias": ("scaled_dot_product_attention", sdpa("""
    scores = q @ k.transpose(-2, -1) / q.shape[-1] ** 0.5
    if mask is not None:
        bias = torch.zeros(mask.shape, dtype=q.dtype)
        scores = scores + bias.masked_fill(~mask, float("-inf"))
    return scores.softmax(dim=-1) @ v""")),
    "mha_head_loop": ("multi_head_attention", mha("""
        B, T, C = x.shape
        D = self.head_dim
        q, k, v = self.q_proj(x), self.k_proj(x), self.v_proj(x)
        outs = []
        for h in range(self.n_heads):
            part = slice(h * D, (h + 1) * D)
            outs.append(scaled_dot_product_attention(
                q[..., part], k[..., part], v[..., part], causal_mask(T, x.device)))
        return self.o_proj(torch.cat(outs, dim=-1))""")),
    "mha_fused_qkv_permute": ("multi_head_attention", mha("""
        B, T, C = x.shape
        w = torch.cat([self.q_proj.weight, self.k_proj.weight, self.v_proj.weight])
        qkv = F.linear(x, w).view(B, T, 3, self.n_heads, self.head_dim)
        q, k, v = qkv.permute(2, 0, 3, 1, 4)
        y = scaled_dot_product_attention(q, k, v, causal_mask(T))
        y = y.permute(0, 2, 1, 3).contiguous().view(B, T, C)
        return F.linear(y, self.o_proj.weight)""")),
    "mha_einsum_inline": ("multi_head_attention", mha("""
        B, T, C = x.shape
        H, D = self.n_heads, self.head_dim
        q = torch.einsum("btc,ec->bte", x, self.q_proj.weight).reshape(B, T, H, D)
        k = torch.einsum("btc,ec->bte", x, self.k_proj.weight).reshape(B, T, H, D)
        v = torch.einsum("btc,ec->bte", x, self.v_proj.weight).reshape(B, T, H, D)
        scores = torch.einsum("bqhd,bkhd->bhqk", q, k) / math.sqrt(D)
        future = torch.triu(torch.ones(T, T, dtype=torch.bool), diagonal=1)
        weights = scores.masked_fill(future, -1e9).softmax(-1)
        y = torch.einsum("bhqk,bkhd->bqhd", weights, v).reshape(B, T, C)
        return self.o_proj(y)""")),
    "mha_one_query_at_a_time": ("multi_head_attention", mha(SPLIT + """
        rows = [scaled_dot_product_attention(q[:, :, t:t + 1], k[:, :, :t + 1], v[:, :, :t + 1])
                for t in range(T)]
        y = torch.cat(rows, dim=2)""" + MERGE)),
    # a method with a forbidden function's name is the learner's own (self.name)
    "mha_attention_as_a_method": ("multi_head_attention", HEADER + MASK_OK + """

class MultiHeadAttention(nn.Module):""" + MHA_INIT.format(bias=False) + """
    def scaled_dot_product_attention(self, q, k, v, mask):
        scores = q @ k.transpose(-2, -1) / math.sqrt(self.head_dim)
        return scores.masked_fill(~mask, float("-inf")).softmax(-1) @ v

    def forward(self, x):""" + SPLIT + """
        y = self.scaled_dot_product_attention(q, k, v, causal_mask(T, x.device))""" + MERGE + """
"""),
    "mask_torch_tril_function": ("causal_mask", mask(
        "    return torch.tril(torch.ones(seq_len, seq_len, device=device)).to(torch.bool)")),
}
