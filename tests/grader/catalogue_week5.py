"""Week 5 submissions for the grader's own tests: known-wrong ones and correct variants.

Each wrong submission is a realistic mistake. The test suite grades each one and asserts it
loses points and, where the grader knows the mistake, that its message names it.
"""

HEADER = """
import math

import torch
import torch.nn.functional as F
from torch import nn
"""

# the helpers the notebook gives as locked code (week 1's attention, week 4's RoPE)
GIVEN = """
def causal_mask(seq_len, device=None):
    return torch.ones(seq_len, seq_len, dtype=torch.bool, device=device).tril()


def scaled_dot_product_attention(q, k, v, mask=None):
    scores = q @ k.transpose(-2, -1) / math.sqrt(q.size(-1))
    if mask is not None:
        scores = scores.masked_fill(~mask, float("-inf"))
    return torch.softmax(scores, dim=-1) @ v


def rotate_half(x):
    x1, x2 = x.chunk(2, dim=-1)
    return torch.cat((-x2, x1), dim=-1)


def apply_rope(x, positions, theta=10000.0):
    d = x.size(-1)
    inv_freq = 1.0 / (theta ** (torch.arange(0, d, 2, dtype=torch.float32) / d))
    angles = positions.float()[:, None] * inv_freq[None, :]
    angles = torch.cat((angles, angles), dim=-1)
    cos, sin = angles.cos().to(x.dtype), angles.sin().to(x.dtype)
    return x * cos + rotate_half(x) * sin
"""


def repeat_kv(body: str) -> str:
    return f"{HEADER}\n\ndef repeat_kv(x, n_rep):\n{body}\n"


def mask(body: str) -> str:
    return f"{HEADER}\n\ndef sliding_window_mask(seq_len, window=None, device=None):\n{body}\n"


def kv(body: str) -> str:
    return (f"{HEADER}\n\ndef kv_cache_bytes(n_layers, n_kv_heads, head_dim, seq_len, "
            f"batch_size=1, bytes_per_elem=2, *, window=None):\n{body}\n")


ATTN_INIT = """
    def __init__(self, dim, n_heads, n_kv_heads=None, window=None, rope_theta=10000.0):
        super().__init__()
        self.n_heads = n_heads
        self.n_kv_heads = n_kv_heads or n_heads
        self.head_dim = dim // n_heads
        self.window = window
        self.rope_theta = rope_theta
        self.q_proj = nn.Linear(dim, n_heads * self.head_dim, bias=False)
        self.k_proj = nn.Linear(dim, self.n_kv_heads * self.head_dim, bias=False)
        self.v_proj = nn.Linear(dim, self.n_kv_heads * self.head_dim, bias=False)
        self.o_proj = nn.Linear(n_heads * self.head_dim, dim, bias=False)
"""

PROJECT = """
        B, T, _ = x.shape
        H, K, D = self.n_heads, self.n_kv_heads, self.head_dim
        q = self.q_proj(x).view(B, T, H, D).transpose(1, 2)
        k = self.k_proj(x).view(B, T, K, D).transpose(1, 2)
        v = self.v_proj(x).view(B, T, K, D).transpose(1, 2)
        pos = torch.arange(T)"""

ROPE_QK = """
        q = apply_rope(q, pos, self.rope_theta)
        k = apply_rope(k, pos, self.rope_theta)"""

REPEAT = """
        k = k.repeat_interleave(H // K, dim=1)
        v = v.repeat_interleave(H // K, dim=1)"""

WINDOW_MASK = """
        i = torch.arange(T)[:, None]
        j = torch.arange(T)[None, :]
        m = j <= i
        if self.window is not None:
            m = m & (i - j < self.window)"""

FINISH = """
        y = scaled_dot_product_attention(q, k, v, m)
        return self.o_proj(y.transpose(1, 2).reshape(B, T, H * D))"""


def attention(forward: str, init: str = ATTN_INIT, given: str = GIVEN) -> str:
    return (f"{HEADER}{given}\n\nclass Attention(nn.Module):{init}\n"
            f"    def forward(self, x):\n{forward}\n")


def attn(project=PROJECT, rope=ROPE_QK, repeat=REPEAT, window=WINDOW_MASK, finish=FINISH):
    return attention(project + rope + repeat + window + finish)


# (exercise, code, a phrase the feedback must contain, or None)
WRONG = {
    # ---- repeat_kv
    "repeat_kv_tiled": ("repeat_kv", repeat_kv("""
    return x.repeat(1, n_rep, 1, 1)"""), "h // n_rep"),
    "repeat_kv_sequence_dim": ("repeat_kv", repeat_kv("""
    return x.repeat_interleave(n_rep, dim=2)"""), "along the sequence"),
    "repeat_kv_expand_wrong_axis": ("repeat_kv", repeat_kv("""
    B, H, T, D = x.shape
    return x[:, None].expand(B, n_rep, H, T, D).reshape(B, H * n_rep, T, D)"""), "h // n_rep"),
    "repeat_kv_last_dim": ("repeat_kv", repeat_kv("""
    return x.repeat_interleave(n_rep, dim=-1)"""), "head_dim"),
    "repeat_kv_no_merge": ("repeat_kv", repeat_kv("""
    B, H, T, D = x.shape
    return x[:, :, None].expand(B, H, n_rep, T, D).transpose(1, 2)"""), "merge the new axis"),
    "repeat_kv_detached": ("repeat_kv", repeat_kv("""
    return x.detach().repeat_interleave(n_rep, dim=1)"""), "autograd"),
    "repeat_kv_float32_output": ("repeat_kv", repeat_kv("""
    out = torch.cat([x[:, h:h + 1].expand(-1, n_rep, -1, -1) for h in range(x.shape[1])], 1)
    return out.float()"""), "dtype"),
    # ---- sliding_window_mask
    "mask_mistral_original_off_by_one": ("sliding_window_mask", mask("""
    i = torch.arange(seq_len)[:, None]
    j = torch.arange(seq_len)[None, :]
    m = j <= i
    if window is not None:
        m &= i - j <= window
    return m"""), "Mistral's original reference code"),
    "mask_window_ignored": ("sliding_window_mask", mask("""
    return torch.ones(seq_len, seq_len, dtype=torch.bool).tril()"""), "window is ignored"),
    "mask_symmetric_band": ("sliding_window_mask", mask("""
    i = torch.arange(seq_len)[:, None]
    j = torch.arange(seq_len)[None, :]
    if window is None:
        return j <= i
    return (i - j).abs() < window"""), "must stay causal"),
    "mask_float": ("sliding_window_mask", mask("""
    m = torch.ones(seq_len, seq_len).tril()
    if window is not None:
        m = m.triu(-(window - 1))
    return m"""), "boolean mask"),
    "mask_inverted": ("sliding_window_mask", mask("""
    m = torch.ones(seq_len, seq_len, dtype=torch.bool).tril()
    if window is not None:
        m = m.triu(-(window - 1))
    return ~m"""), "inverted"),
    "mask_transposed": ("sliding_window_mask", mask("""
    m = torch.ones(seq_len, seq_len, dtype=torch.bool).triu()
    if window is not None:
        m = m.tril(window - 1)
    return m"""), "transposed"),
    "mask_too_short": ("sliding_window_mask", mask("""
    m = torch.ones(seq_len, seq_len, dtype=torch.bool).tril()
    if window is not None:
        m = m.triu(-(window - 2))
    return m"""), "window - 1 keys"),
    "mask_none_crashes": ("sliding_window_mask", mask("""
    return torch.ones(seq_len, seq_len, dtype=torch.bool).tril().triu(-(window - 1))"""),
        "TypeError"),
    # ---- Attention
    "attention_no_rope": ("attention", attn(rope=""), "no RoPE"),
    "attention_rope_on_v": ("attention", attn(rope=ROPE_QK + """
        v = apply_rope(v, pos, self.rope_theta)"""), "also applied to v"),
    "attention_rope_only_q": ("attention", attn(rope="""
        q = apply_rope(q, pos, self.rope_theta)"""), "keys too"),
    "attention_kv_heads_tiled": ("attention", attn(repeat="""
        k = k.repeat(1, H // K, 1, 1)
        v = v.repeat(1, H // K, 1, 1)"""), "h // n_rep"),
    "attention_window_ignored": ("attention", attn(window="""
        m = torch.ones(T, T, dtype=torch.bool).tril()"""), "window is ignored"),
    "attention_window_off_by_one": ("attention", attn(window="""
        i = torch.arange(T)[:, None]
        j = torch.arange(T)[None, :]
        m = j <= i
        if self.window is not None:
            m = m & (i - j <= self.window)"""), "Mistral's original reference code"),
    "attention_no_causal_mask": ("attention", attn(window="""
        m = None"""), "causal"),
    "attention_interleaved_rope": ("attention", attn(rope="""
        def rope_pairs(t):
            d = t.size(-1)
            inv = 1.0 / (self.rope_theta ** (torch.arange(0, d, 2).float() / d))
            ang = pos.float()[:, None] * inv
            a, b = t[..., 0::2], t[..., 1::2]
            return torch.stack((a * ang.cos() - b * ang.sin(),
                                b * ang.cos() + a * ang.sin()), -1).flatten(-2)
        q, k = rope_pairs(q), rope_pairs(k)"""), "interleaved"),
    "attention_theta_ignored": ("attention", attn(rope="""
        q = apply_rope(q, pos)
        k = apply_rope(k, pos)"""), "rope_theta"),
    "attention_kv_as_query_heads": ("attention", attention(PROJECT.replace(
        "K, D = self.n_heads, self.n_kv_heads", "K, D = self.n_heads, self.n_heads"
    ) + ROPE_QK + WINDOW_MASK + FINISH), None),
    "attention_rope_before_head_split": ("attention", attention("""
        B, T, _ = x.shape
        H, K, D = self.n_heads, self.n_kv_heads, self.head_dim
        pos = torch.arange(T)
        q = apply_rope(self.q_proj(x), pos, self.rope_theta).view(B, T, H, D).transpose(1, 2)
        k = apply_rope(self.k_proj(x), pos, self.rope_theta).view(B, T, K, D).transpose(1, 2)
        v = self.v_proj(x).view(B, T, K, D).transpose(1, 2)""" + REPEAT + WINDOW_MASK + FINISH),
        "per head"),
    "attention_unscaled_scores": ("attention", attn(finish="""
        s = (q @ k.transpose(-2, -1)).masked_fill(~m, float("-inf"))
        y = s.softmax(-1) @ v
        return self.o_proj(y.transpose(1, 2).reshape(B, T, H * D))"""), "sqrt(head_dim)"),
    "attention_window_without_causal": ("attention", attn(window="""
        i = torch.arange(T)[:, None]
        j = torch.arange(T)[None, :]
        m = torch.ones(T, T, dtype=torch.bool)
        if self.window is not None:
            m = i - j < self.window"""), "future"),
    # ---- kv_cache_bytes
    "kv_no_factor_two": ("kv_cache_bytes", kv("""
    tokens = seq_len if window is None else min(seq_len, window)
    return n_layers * n_kv_heads * head_dim * tokens * batch_size * bytes_per_elem"""),
        "keys AND values"),
    "kv_hardcoded_heads": ("kv_cache_bytes", kv("""
    n_heads = 32 if n_layers == 32 else 64  # Llama-2 7B / 70B
    tokens = seq_len if window is None else min(seq_len, window)
    return 2 * n_layers * n_heads * head_dim * tokens * batch_size * bytes_per_elem"""),
        "n_kv_heads"),
    "kv_no_layers": ("kv_cache_bytes", kv("""
    tokens = seq_len if window is None else min(seq_len, window)
    return 2 * n_kv_heads * head_dim * tokens * batch_size * bytes_per_elem"""),
        "n_layers"),
    "kv_bits": ("kv_cache_bytes", kv("""
    tokens = seq_len if window is None else min(seq_len, window)
    return 2 * n_layers * n_kv_heads * head_dim * tokens * batch_size * bytes_per_elem * 8"""),
        "bits, not bytes"),
    "kv_window_ignored": ("kv_cache_bytes", kv("""
    return 2 * n_layers * n_kv_heads * head_dim * seq_len * batch_size * bytes_per_elem"""),
        "window is ignored"),
    "kv_batch_ignored": ("kv_cache_bytes", kv("""
    tokens = seq_len if window is None else min(seq_len, window)
    return 2 * n_layers * n_kv_heads * head_dim * tokens * bytes_per_elem"""),
        "batch_size"),
    "kv_fp16_hardcoded": ("kv_cache_bytes", kv("""
    tokens = seq_len if window is None else min(seq_len, window)
    return 2 * n_layers * n_kv_heads * head_dim * tokens * batch_size * 2"""),
        "bytes_per_elem"),
    "kv_float_gib": ("kv_cache_bytes", kv("""
    tokens = seq_len if window is None else min(seq_len, window)
    return 2 * n_layers * n_kv_heads * head_dim * tokens * batch_size * bytes_per_elem / 1"""),
        "not a float"),
    "kv_window_not_min": ("kv_cache_bytes", kv("""
    tokens = seq_len if window is None else window
    return 2 * n_layers * n_kv_heads * head_dim * tokens * batch_size * bytes_per_elem"""),
        "min(seq_len, window)"),
}

# library shortcuts (keys with "shortcut" must score zero), ignored contract defaults, the
# mirror images of named mistakes, and what a property case says when only its values are wrong
WRONG |= {
    "repeat_kv_transformers_shortcut": ("repeat_kv", HEADER + """
from transformers.models.llama import modeling_llama


def repeat_kv(x, n_rep):
    return modeling_llama.repeat_kv(x, n_rep)
""", "not allowed"),
    "mask_also_next_key": ("sliding_window_mask", mask("""
    m = torch.ones(seq_len, seq_len, dtype=torch.bool, device=device).tril(1)
    return m if window is None else m.triu(-(window - 1))"""), "the next key"),
    "mask_ignores_device": ("sliding_window_mask", mask("""
    m = torch.ones(seq_len, seq_len, dtype=torch.bool).tril()
    return m if window is None else m.triu(-(window - 1))"""), "device='meta'"),
    "mask_default_window": ("sliding_window_mask", f"""{HEADER}

def sliding_window_mask(seq_len, window=4, device=None):
    m = torch.ones(seq_len, seq_len, dtype=torch.bool, device=device).tril()
    return m if window is None else m.triu(-(window - 1))
""", "window=None (the default) must give the full causal mask"),
    "mask_transformers_shortcut": ("sliding_window_mask", HEADER + """
from transformers.masking_utils import sliding_window_causal_mask_function


def sliding_window_mask(seq_len, window=None, device=None):
    if window is None:
        return torch.ones(seq_len, seq_len, dtype=torch.bool, device=device).tril()
    allowed = sliding_window_causal_mask_function(window)
    return torch.tensor([[bool(allowed(0, 0, i, j)) for j in range(seq_len)]
                         for i in range(seq_len)], device=device)
""", "not allowed"),
    "attention_window_short_by_one": ("attention", attn(window="""
        i = torch.arange(T)[:, None]
        j = torch.arange(T)[None, :]
        m = j <= i
        if self.window is not None:
            m = m & (i - j < self.window - 1)"""), "only window - 1 keys"),
    "attention_off_by_one_is_still_causal": ("attention", attn(window="""
        i = torch.arange(T)[:, None]
        j = torch.arange(T)[None, :]
        m = j <= i
        if self.window is not None:
            m = m & (i - j <= self.window)"""),
        "the property holds (no output depends on a future token), but the values are wrong: "
        "your window holds window + 1 keys"),
    "attention_default_theta_of_mixtral": ("attention", attn().replace(
        "window=None, rope_theta=10000.0", "window=None, rope_theta=1e6"),
        "must default to rope_theta=10000.0; yours behaves like rope_theta=1e+06"),
    "attention_default_window": ("attention", attn().replace(
        "window=None, rope_theta", "window=16, rope_theta"), None),
    "attention_mistral_shortcut": ("attention", HEADER + GIVEN + """
from transformers import MistralConfig
from transformers.models.mistral.modeling_mistral import MistralAttention


class Attention(nn.Module):
    def __init__(self, dim, n_heads, n_kv_heads=None, window=None, rope_theta=10000.0):
        super().__init__()
        config = MistralConfig(hidden_size=dim, num_attention_heads=n_heads,
                               num_key_value_heads=n_kv_heads or n_heads, sliding_window=window,
                               rope_theta=rope_theta)
        attn = MistralAttention(config, layer_idx=0)
        self.q_proj, self.k_proj, self.v_proj, self.o_proj = (
            attn.q_proj, attn.k_proj, attn.v_proj, attn.o_proj)
        self.attn = [attn]

    def forward(self, x):
        return self.attn[0](x, position_embeddings=None, attention_mask=None)[0]
""", "not allowed"),
    "kv_factor_two_twice": ("kv_cache_bytes", kv("""
    tokens = seq_len if window is None else min(seq_len, window)
    return 2 * 2 * n_layers * n_kv_heads * head_dim * tokens * batch_size * bytes_per_elem"""),
        "counted twice"),
    "kv_default_window_of_mistral": ("kv_cache_bytes", f"""{HEADER}

def kv_cache_bytes(n_layers, n_kv_heads, head_dim, seq_len, batch_size=1, bytes_per_elem=2, *,
                   window=4096):
    tokens = seq_len if window is None else min(seq_len, window)
    return 2 * n_layers * n_kv_heads * head_dim * tokens * batch_size * bytes_per_elem
""", None),
}

CORRECT = {
    # only the answer cell: apply_rope, repeat_kv, sliding_window_mask and
    # scaled_dot_product_attention come from the notebook (given to a `.py` too)
    "attention_only_the_class_uses_the_given_helpers": ("attention", HEADER + """

class Attention(nn.Module):""" + ATTN_INIT + """
    def forward(self, x):
        B, T, _ = x.shape
        q = self.q_proj(x).view(B, T, -1, self.head_dim).transpose(1, 2)
        k = self.k_proj(x).view(B, T, -1, self.head_dim).transpose(1, 2)
        v = self.v_proj(x).view(B, T, -1, self.head_dim).transpose(1, 2)
        pos = torch.arange(T, device=x.device)
        q, k = apply_rope(q, pos, self.rope_theta), apply_rope(k, pos, self.rope_theta)
        n_rep = self.n_heads // self.n_kv_heads
        k, v = repeat_kv(k, n_rep), repeat_kv(v, n_rep)
        y = scaled_dot_product_attention(q, k, v, sliding_window_mask(T, self.window, x.device))
        return self.o_proj(y.transpose(1, 2).reshape(B, T, -1))
"""),
    # ---- repeat_kv
    "repeat_kv_interleave": ("repeat_kv", repeat_kv("""
    return torch.repeat_interleave(x, n_rep, dim=1)"""), ),
    "repeat_kv_expand_reshape": ("repeat_kv", repeat_kv("""
    if n_rep == 1:
        return x
    B, H, T, D = x.shape
    return x[:, :, None].expand(B, H, n_rep, T, D).reshape(B, H * n_rep, T, D)"""), ),
    "repeat_kv_loop_cat": ("repeat_kv", repeat_kv("""
    heads = []
    for h in range(x.shape[1]):
        for _ in range(n_rep):
            heads.append(x[:, h])
    return torch.stack(heads, dim=1)"""), ),
    "repeat_kv_index_select": ("repeat_kv", repeat_kv("""
    idx = torch.arange(x.shape[1] * n_rep) // n_rep
    return x.index_select(1, idx)"""), ),
    # ---- sliding_window_mask
    "mask_tril_triu": ("sliding_window_mask", mask("""
    m = torch.ones(seq_len, seq_len, dtype=torch.bool, device=device).tril()
    return m if window is None else m.triu(-(window - 1))"""), ),
    "mask_hf_style": ("sliding_window_mask", mask("""
    q_idx = torch.arange(seq_len, device=device)[:, None]
    kv_idx = torch.arange(seq_len, device=device)[None, :]
    m = kv_idx <= q_idx
    if window is not None:
        m = m & (kv_idx > q_idx - window)
    return m"""), ),
    "mask_loops": ("sliding_window_mask", mask("""
    w = seq_len if window is None else window
    m = torch.zeros(seq_len, seq_len, dtype=torch.bool, device=device)
    for i in range(seq_len):
        for j in range(max(0, i - w + 1), i + 1):
            m[i, j] = True
    return m"""), ),
    # ---- Attention
    "attention_matmul_mask": ("attention", attn(), ),
    "attention_float64_loop_heads": ("attention", attn(finish="""
        outs = []
        for h in range(H):
            kh, vh = k[:, h // (H // K)].double(), v[:, h // (H // K)].double()
            s = q[:, h].double() @ kh.transpose(-1, -2) / D ** 0.5
            s = s.masked_fill(~m, float("-inf"))
            outs.append((s.softmax(-1) @ vh).to(x.dtype))
        y = torch.stack(outs, dim=1)
        return self.o_proj(y.transpose(1, 2).reshape(B, T, H * D))""", repeat=""), ),
    "attention_torch_sdpa_additive": ("attention", attn(finish="""
        bias = torch.zeros(T, T, dtype=q.dtype).masked_fill(~m, float("-inf"))
        y = F.scaled_dot_product_attention(q, k, v, attn_mask=bias)
        return self.o_proj(y.transpose(1, 2).reshape(B, T, H * D))"""), ),
    "attention_torch_sdpa_enable_gqa": ("attention", attn(repeat="", finish="""
        y = F.scaled_dot_product_attention(q, k, v, attn_mask=m, enable_gqa=True)
        return self.o_proj(y.transpose(1, 2).reshape(B, T, H * D))"""), ),
    "attention_einsum_grouped": ("attention", attn(repeat="", finish="""
        G = H // K
        qg = q.view(B, K, G, T, D)
        s = torch.einsum("bkgtd,bksd->bkgts", qg, k) / math.sqrt(D)
        s = s.masked_fill(~m, float("-inf"))
        y = torch.einsum("bkgts,bksd->bkgtd", s.softmax(-1), v).reshape(B, H, T, D)
        return self.o_proj(y.transpose(1, 2).reshape(B, T, H * D))"""), ),
    # the notebook's form: forward in steps that week 7 overrides, and a KV cache
    "attention_steps_with_kv_cache": ("attention", f"""{HEADER}{GIVEN}

class Attention(nn.Module):{ATTN_INIT}
    def forward(self, x, cache=None):
        B, T, _ = x.shape
        start = 0 if cache is None else cache.pos
        q, k, v = self.project(x)
        q, k = self.rotate(q, k, torch.arange(start, start + T))
        if cache is not None:
            k, v = cache.update(k, v)
        y = self.attend(q, k, v)
        return self.o_proj(y.transpose(1, 2).reshape(B, T, -1))

    def project(self, x):
        B, T, _ = x.shape
        split = lambda t: t.view(B, T, -1, self.head_dim).transpose(1, 2)
        return split(self.q_proj(x)), split(self.k_proj(x)), split(self.v_proj(x))

    def rotate(self, q, k, positions):
        return apply_rope(q, positions, self.rope_theta), apply_rope(k, positions, self.rope_theta)

    def attend(self, q, k, v):
        rep = self.n_heads // self.n_kv_heads
        k, v = k.repeat_interleave(rep, dim=1), v.repeat_interleave(rep, dim=1)
        T, S = q.shape[2], k.shape[2]
        i = torch.arange(S - T, S)[:, None]
        j = torch.arange(S)[None, :]
        m = (j <= i) if self.window is None else (j <= i) & (i - j < self.window)
        return scaled_dot_product_attention(q, k, v, m)
""", ),
    # ---- kv_cache_bytes
    "kv_one_line": ("kv_cache_bytes", kv("""
    tokens = seq_len if window is None else min(seq_len, window)
    return 2 * n_layers * n_kv_heads * head_dim * tokens * batch_size * bytes_per_elem"""), ),
    "kv_per_token_then_total": ("kv_cache_bytes", kv("""
    per_token_per_layer = 2 * n_kv_heads * head_dim * bytes_per_elem  # K and V
    per_token = per_token_per_layer * n_layers
    if window is not None and seq_len > window:
        seq_len = window
    return per_token * seq_len * batch_size"""), ),
    "kv_math_prod": ("kv_cache_bytes", kv("""
    tokens = min(seq_len, window or seq_len)
    return int(math.prod([2, n_layers, n_kv_heads, head_dim, tokens, batch_size,
                          bytes_per_elem]))"""), ),
    "kv_tensor_numel": ("kv_cache_bytes", kv("""
    tokens = seq_len if window is None else min(seq_len, window)
    shape = (n_layers, 2, batch_size, n_kv_heads, tokens, head_dim)
    return math.prod(shape) * bytes_per_elem"""), ),
}
