"""Week 5 reference: repeat_kv, sliding_window_mask, Attention (GQA + RoPE + window), KV cache."""

import os
import subprocess
import sys
import textwrap

import pytest
import torch
import torch.nn.functional as F
from torch.testing import assert_close
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten

from solutions.attention import causal_mask, scaled_dot_product_attention
from solutions.efficient_attention import (
    Attention,
    KVCache,
    kv_cache_bytes,
    repeat_kv,
    sliding_window_attention,
    sliding_window_mask,
)
from solutions.positions import apply_rope

# ---------------------------------------------------------------- repeat_kv


@pytest.mark.repeat_kv
def test_repeat_kv_maps_query_head_h_to_kv_head_h_div_n_rep():
    x = torch.randn(2, 3, 5, 4)
    out = repeat_kv(x, 4)
    assert out.shape == (2, 12, 5, 4)
    for h in range(12):
        assert torch.equal(out[:, h], x[:, h // 4])
    assert torch.equal(out, torch.repeat_interleave(x, 4, dim=1))
    assert torch.equal(repeat_kv(x, 1), x)


# ---------------------------------------------------------------- sliding_window_mask


@pytest.mark.sliding_window_mask
def test_sliding_window_mask_picture():
    # the picture in transformers' masking_utils docstring for sliding_window=3
    expected = torch.tensor(
        [
            [1, 0, 0, 0, 0],
            [1, 1, 0, 0, 0],
            [1, 1, 1, 0, 0],
            [0, 1, 1, 1, 0],
            [0, 0, 1, 1, 1],
        ],
        dtype=torch.bool,
    )
    assert torch.equal(sliding_window_mask(5, 3), expected)


@pytest.mark.sliding_window_mask
@pytest.mark.parametrize("seq_len", [1, 6, 13])
@pytest.mark.parametrize("window", [1, 2, 5, 13, 40])
def test_sliding_window_mask_rule(seq_len, window):
    mask = sliding_window_mask(seq_len, window)
    assert mask.shape == (seq_len, seq_len) and mask.dtype == torch.bool
    i = torch.arange(seq_len)[:, None]
    j = torch.arange(seq_len)[None, :]
    assert torch.equal(mask, (i - j >= 0) & (i - j < window))
    # query i sees itself and the window - 1 keys before it: w keys once i >= w - 1
    assert mask.sum(-1).tolist() == [min(t + 1, window) for t in range(seq_len)]


@pytest.mark.sliding_window_mask
def test_sliding_window_mask_none_and_large_windows_are_causal():
    assert torch.equal(sliding_window_mask(9), causal_mask(9))
    assert torch.equal(sliding_window_mask(9, 9), causal_mask(9))
    assert torch.equal(sliding_window_mask(9, 1), torch.eye(9, dtype=torch.bool))
    assert sliding_window_mask(4, 2, device="cpu").device.type == "cpu"


# ---------------------------------------------------------------- banded attention


@pytest.mark.attention
@pytest.mark.parametrize("seq_len", [1, 5, 16, 37])
@pytest.mark.parametrize("window", [1, 3, 8, 16, 37, 64])
def test_banded_sliding_window_equals_the_masked_full_form(seq_len, window):
    g = torch.Generator().manual_seed(seq_len * 100 + window)
    q, k = (torch.randn(2, 3, seq_len, 8, generator=g, dtype=torch.float64) for _ in range(2))
    v = torch.randn(2, 3, seq_len, 5, generator=g, dtype=torch.float64)
    expected = scaled_dot_product_attention(q, k, v, sliding_window_mask(seq_len, window))
    out = sliding_window_attention(q, k, v, window)
    assert out.shape == expected.shape
    assert_close(out, expected, atol=1e-12, rtol=1e-12)
    out32 = sliding_window_attention(q.float(), k.float(), v.float(), window)
    assert_close(out32, expected.float(), atol=1e-6, rtol=1e-5)


@pytest.mark.attention
def test_banded_sliding_window_gradients_match():
    q, k, v = (torch.randn(1, 2, 11, 4, dtype=torch.float64, requires_grad=True) for _ in range(3))
    (g_banded,) = torch.autograd.grad(sliding_window_attention(q, k, v, 4).sum(), [k])
    full = scaled_dot_product_attention(q, k, v, sliding_window_mask(11, 4))
    (g_full,) = torch.autograd.grad(full.sum(), [k])
    assert_close(g_banded, g_full)


class _LargestTensor(TorchDispatchMode):
    """Records the largest storage any operation produces (catches a (T, T) tensor)."""

    def __init__(self):
        super().__init__()
        self.largest = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        for t in tree_flatten(out)[0]:
            if isinstance(t, torch.Tensor):
                self.largest = max(self.largest, t.untyped_storage().nbytes())
        return out


@pytest.mark.attention
def test_windowed_attention_never_builds_a_seq_by_seq_tensor():
    T, w = 8192, 256
    attn = Attention(dim=32, n_heads=2, n_kv_heads=1, window=w)
    x = torch.randn(1, T, 32)
    with torch.no_grad(), _LargestTensor() as mode:
        attn(x)
    full_scores = 1 * 2 * T * T * 4  # (B, H, T, T) float32 of the masked full form
    assert mode.largest <= full_scores / 8
    assert mode.largest <= 2 * 2 * T * w * 4 * 1.01  # (B, H, T/w, w, 2w)


_PEAK_SCRIPT = textwrap.dedent(
    """
    import torch
    from solutions.attention import scaled_dot_product_attention
    from solutions.efficient_attention import sliding_window_attention, sliding_window_mask

    def status(key):
        for line in open("/proc/self/status"):
            if line.startswith(key):
                return int(line.split()[1]) * 1024

    def peak_bytes(fn):
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")  # resets VmHWM, the peak resident memory, to the current VmRSS
        before = status("VmRSS:")
        fn()
        return status("VmHWM:") - before

    T, w = 8192, 256
    q, k, v = (torch.randn(1, 1, T, 64) for _ in range(3))
    sliding_window_attention(q[:, :, :512], k[:, :, :512], v[:, :, :512], w)  # warm up
    banded = peak_bytes(lambda: sliding_window_attention(q, k, v, w))
    full = peak_bytes(lambda: scaled_dot_product_attention(q, k, v, sliding_window_mask(T, w)))
    print(banded, full)
    """
)


@pytest.mark.attention
@pytest.mark.skipif(not os.path.exists("/proc/self/clear_refs"), reason="needs Linux /proc")
def test_windowed_attention_peak_memory_is_at_most_an_eighth_of_the_masked_form():
    """Peak resident memory at T=8192, w=256, measured in a fresh process (about 51 MiB for
    the banded path, 640 MiB for the masked full form)."""
    # a fixed mmap threshold makes glibc return every large block at once, so RSS is exact
    env = {**os.environ, "MALLOC_MMAP_THRESHOLD_": "65536"}
    result = subprocess.run(
        [sys.executable, "-c", _PEAK_SCRIPT], capture_output=True, text=True, check=True, env=env
    )
    banded, full = map(int, result.stdout.split())
    assert full > 2 * 8192**2 * 4  # scores and weights, (T, T) float32 each: O(T^2)
    assert banded <= full / 8, (banded, full)


# ---------------------------------------------------------------- Attention


def _reference_attention(attn: Attention, x: torch.Tensor, window: int | None) -> torch.Tensor:
    """The module's weights, the textbook steps, torch's kernel, a (T, T) mask."""
    B, T, _ = x.shape
    H, H_kv, D = attn.n_heads, attn.n_kv_heads, attn.head_dim
    q = (x @ attn.q_proj.weight.T).view(B, T, H, D).transpose(1, 2)
    k = (x @ attn.k_proj.weight.T).view(B, T, H_kv, D).transpose(1, 2)
    v = (x @ attn.v_proj.weight.T).view(B, T, H_kv, D).transpose(1, 2)
    pos = torch.arange(T)
    q, k = apply_rope(q, pos, attn.rope_theta), apply_rope(k, pos, attn.rope_theta)
    k, v = k.repeat_interleave(H // H_kv, dim=1), v.repeat_interleave(H // H_kv, dim=1)
    y = F.scaled_dot_product_attention(q, k, v, attn_mask=sliding_window_mask(T, window))
    return y.transpose(1, 2).reshape(B, T, H * D) @ attn.o_proj.weight.T


@pytest.mark.attention
@pytest.mark.parametrize(
    "n_heads,n_kv_heads,window,seq_len",
    [(4, None, None, 9), (4, 4, None, 9), (4, 2, None, 9), (4, 1, None, 9), (4, 2, 3, 10),
     (4, 1, 4, 16), (2, 2, 1, 7), (8, 2, 5, 23), (4, 2, 12, 12), (4, 2, 50, 12)],
)  # fmt: skip
def test_attention_matches_the_textbook_computation(n_heads, n_kv_heads, window, seq_len):
    torch.manual_seed(0)
    attn = Attention(32, n_heads, n_kv_heads, window=window).double()
    x = torch.randn(2, seq_len, 32, dtype=torch.float64)
    assert_close(attn(x), _reference_attention(attn, x, window), atol=1e-12, rtol=1e-10)


@pytest.mark.attention
def test_attention_state_dict_shapes_for_gqa_and_mqa():
    for n_kv_heads, kv_rows in ((None, 64), (8, 64), (2, 16), (1, 8)):
        attn = Attention(64, 8, n_kv_heads)
        shapes = {name: tuple(t.shape) for name, t in attn.state_dict().items()}
        assert shapes == {
            "q_proj.weight": (64, 64),
            "k_proj.weight": (kv_rows, 64),
            "v_proj.weight": (kv_rows, 64),
            "o_proj.weight": (64, 64),
        }


@pytest.mark.attention
@pytest.mark.parametrize("n_kv_heads", [1, 2, 4])
def test_gqa_equals_mha_with_repeated_kv_weights(n_kv_heads):
    """GQA is MHA whose query head h reads kv head h // n_rep (MQA: n_kv_heads = 1)."""
    torch.manual_seed(0)
    gqa = Attention(32, 4, n_kv_heads, window=3)
    mha = Attention(32, 4, window=3)
    d, n_rep = gqa.head_dim, 4 // n_kv_heads

    def repeat_rows(w):
        return w.view(n_kv_heads, d, -1).repeat_interleave(n_rep, dim=0).reshape(4 * d, -1)

    mha.load_state_dict(
        {
            "q_proj.weight": gqa.q_proj.weight,
            "k_proj.weight": repeat_rows(gqa.k_proj.weight),
            "v_proj.weight": repeat_rows(gqa.v_proj.weight),
            "o_proj.weight": gqa.o_proj.weight,
        }
    )
    x = torch.randn(2, 9, 32)
    assert_close(gqa(x), mha(x), atol=1e-6, rtol=1e-5)


@pytest.mark.attention
@pytest.mark.parametrize("window,seq_len", [(None, 10), (3, 10), (4, 17)])
def test_attention_output_never_depends_on_future_tokens(window, seq_len):
    torch.manual_seed(0)
    attn = Attention(16, 4, 2, window=window)
    x = torch.randn(1, seq_len, 16)
    out = attn(x)
    for t in range(seq_len - 1):
        x2 = x.clone()
        x2[:, t + 1 :] = torch.randn_like(x2[:, t + 1 :])
        assert_close(attn(x2)[:, : t + 1], out[:, : t + 1], atol=0, rtol=0)


@pytest.mark.attention
def test_window_hides_exactly_the_keys_w_or_more_back():
    torch.manual_seed(0)
    w, T = 4, 12
    attn = Attention(16, 2, window=w)
    x = torch.randn(1, T, 16)
    out = attn(x)
    i = 9
    far, near = x.clone(), x.clone()
    far[:, i - w] += 1.0  # w back: out of the window
    near[:, i - w + 1] += 1.0  # w - 1 back: the oldest key in the window
    assert torch.equal(attn(far)[:, i], out[:, i])
    assert not torch.allclose(attn(near)[:, i], out[:, i])


@pytest.mark.attention
@pytest.mark.parametrize("seq_len", [5, 8])
def test_window_at_least_seq_len_equals_causal_attention(seq_len):
    torch.manual_seed(0)
    causal = Attention(16, 4, 2)
    x = torch.randn(2, seq_len, 16)
    for window in (seq_len, seq_len + 1, 1000):
        windowed = Attention(16, 4, 2, window=window)
        windowed.load_state_dict(causal.state_dict())
        assert torch.equal(windowed(x), causal(x))


@pytest.mark.attention
def test_attention_uses_rope_so_order_matters():
    torch.manual_seed(0)
    attn = Attention(16, 2)
    x = torch.randn(1, 6, 16)
    shuffled = torch.cat((x[:, torch.tensor([3, 0, 4, 1, 2])], x[:, 5:]), dim=1)
    assert not torch.allclose(attn(shuffled)[:, -1], attn(x)[:, -1], atol=1e-4)


# ---------------------------------------------------------------- kv_cache_bytes


@pytest.mark.attention
@pytest.mark.parametrize("window", [None, 1, 3, 6])
def test_tokens_fed_through_a_kv_cache_give_the_full_forward(window):
    """Prompt, then single tokens, then a chunk: the same outputs as one pass, and with a
    window the cache stops growing at the window."""
    torch.manual_seed(0)
    attn = Attention(24, 6, 2, window=window, rope_theta=300.0)
    x = torch.randn(2, 13, 24)
    cache = KVCache(window)
    cuts = [(0, 5), (5, 6), (6, 7), (7, 13)]
    pieces = []
    for a, b in cuts:
        pieces.append(attn(x[:, a:b], cache))
        assert cache.pos == b
        assert cache.k.size(2) == (b if window is None else min(b, window))
    assert_close(torch.cat(pieces, dim=1), attn(x), atol=1e-5, rtol=1e-4)


@pytest.mark.attention
def test_attend_with_more_keys_than_queries_is_the_last_rows_of_the_full_attention():
    """``attend``: T queries on S keys are the last T positions of an S-token attention."""
    torch.manual_seed(0)
    attn = Attention(16, 4, 2, window=3)
    q, k, v = torch.randn(1, 4, 9, 4), torch.randn(1, 2, 9, 4), torch.randn(1, 2, 9, 4)
    assert_close(attn.attend(q[:, :, -2:], k, v), attn.attend(q, k, v)[:, :, -2:])


@pytest.mark.kv_cache_bytes
def test_kv_cache_bytes_per_token_of_published_models():
    assert kv_cache_bytes(n_layers=32, n_kv_heads=32, head_dim=128, seq_len=1) == 524_288  # L2 7B
    assert kv_cache_bytes(n_layers=80, n_kv_heads=8, head_dim=128, seq_len=1) == 327_680  # L2 70B
    assert kv_cache_bytes(n_layers=32, n_kv_heads=8, head_dim=128, seq_len=1) == 131_072  # Mistral


@pytest.mark.kv_cache_bytes
def test_kv_cache_bytes_scales_and_stops_at_the_window():
    per_token = kv_cache_bytes(32, 8, 128, 1)
    assert kv_cache_bytes(32, 32, 128, 4096) == 2 * 2**30  # Llama-2 7B, full context: 2 GiB
    assert kv_cache_bytes(32, 8, 128, 100, batch_size=3) == 300 * per_token
    assert kv_cache_bytes(32, 8, 128, 10, bytes_per_elem=4) == 20 * per_token
    assert kv_cache_bytes(32, 8, 128, 32768, window=4096) == 4096 * per_token
    assert kv_cache_bytes(32, 8, 128, 1000, window=4096) == 1000 * per_token
    assert isinstance(kv_cache_bytes(1, 1, 1, 1), int)
