"""The MLP and position options of ``GPTConfig`` (issue 14): plain ReLU/GELU/SiLU MLPs beside
SwiGLU, and RoPE, learned, ALiBi and no positions; exact parameter counts for every
combination, inputs longer than ``max_seq_len``, and the KV cache for every ``pos``."""

import itertools
import math

import pytest
import torch
import torch.nn.functional as F
from torch.testing import assert_close

from solutions.attention import causal_mask
from solutions.feedforward import swiglu_hidden_dim
from solutions.model import GPTConfig, MiniGPT, generate
from solutions.positions import alibi_bias
from solutions.scaling import count_parameters

pytestmark = pytest.mark.minigpt

MLPS = ("swiglu", "gelu", "relu", "silu")
POSITIONS = ("rope", "learned", "alibi", "none")


def _tiny(**overrides) -> GPTConfig:
    return GPTConfig.preset("tiny", **overrides)


@pytest.mark.count_parameters
@pytest.mark.parametrize("mlp, pos", list(itertools.product(MLPS, POSITIONS)))
def test_count_parameters_exact_for_every_mlp_and_position(mlp, pos):
    for extra in ({}, {"bias": True, "norm": "layernorm", "tie_embeddings": True},
                  {"n_experts": 3, "top_k": 2}):
        cfg = _tiny(mlp=mlp, pos=pos, dim=48, hidden_dim=80, **extra)
        model = MiniGPT(cfg)
        assert count_parameters(cfg) == sum(p.numel() for p in model.parameters()), extra


def test_default_widths_and_unknown_options():
    assert _tiny(mlp="relu", dim=96).hidden_dim == 4 * 96
    assert _tiny(mlp="silu", dim=96).hidden_dim == 4 * 96
    assert _tiny(mlp="swiglu", dim=96).hidden_dim == 256  # LLaMA's rule
    for bad in ({"mlp": "tanh"}, {"pos": "sinusoidal"}):
        with pytest.raises(AssertionError, match="unknown"):
            _tiny(**bad)


@pytest.mark.parametrize("dim", [19, 32, 64, 96, 384, 4096])
@pytest.mark.parametrize("bias", [False, True])
def test_swiglu_width_matches_the_plain_mlp_within_one_percent(dim, bias):
    plain = 2 * dim * 4 * dim + (5 * dim if bias else 0)
    gated = 3 * dim * swiglu_hidden_dim(dim, 4 * dim, bias)
    assert abs(gated - plain) <= 1.5 * dim and abs(gated - plain) / plain < 0.01


@pytest.mark.count_parameters
@pytest.mark.parametrize("dim", [32, 96])
def test_whole_models_at_equal_parameters(dim):
    """A model with SwiGLU at the matched width counts what the plain-MLP models count."""
    plain = [_tiny(mlp=m, dim=dim, pos="none") for m in ("gelu", "relu", "silu")]
    gated = _tiny(mlp="swiglu", dim=dim, pos="none", hidden_dim=swiglu_hidden_dim(dim, 4 * dim))
    counts = {count_parameters(cfg) for cfg in plain}
    assert len(counts) == 1
    assert abs(count_parameters(gated) / counts.pop() - 1) < 0.01


@pytest.mark.parametrize("act, fn", [("relu", F.relu), ("silu", F.silu),
                                     ("gelu", lambda h: F.gelu(h, approximate="tanh"))])
def test_plain_mlps_are_ungated(act, fn):
    torch.manual_seed(0)
    model = MiniGPT(_tiny(mlp=act, hidden_dim=40))
    mlp = model.layers[0].mlp
    assert set(dict(mlp.named_parameters())) == {"up_proj.weight", "down_proj.weight"}
    x = torch.randn(2, 5, 64)
    assert_close(mlp(x), mlp.down_proj(fn(mlp.up_proj(x))))


def _attention_by_hand(attn, x: torch.Tensor, alibi: bool) -> torch.Tensor:
    """softmax(q k^T / sqrt(D) + ALiBi bias, causal) v, written out (no RoPE)."""
    B, T, _ = x.shape
    H, D = attn.n_heads, attn.head_dim
    q = attn.q_proj(x).view(B, T, H, D).transpose(1, 2)
    n_rep = H // attn.n_kv_heads
    k = attn.k_proj(x).view(B, T, -1, D).transpose(1, 2).repeat_interleave(n_rep, 1)
    v = attn.v_proj(x).view(B, T, -1, D).transpose(1, 2).repeat_interleave(n_rep, 1)
    scores = q @ k.transpose(-2, -1) / math.sqrt(D)  # (B, H, T, T)
    if alibi:
        scores = scores + alibi_bias(H, T)
    scores = scores.masked_fill(~causal_mask(T), float("-inf"))
    y = scores.softmax(-1) @ v
    return attn.o_proj(y.transpose(1, 2).reshape(B, T, -1))


@pytest.mark.parametrize("pos", ["alibi", "none"])
@pytest.mark.parametrize("fast", [False, True])
def test_alibi_and_nope_attention_written_out(pos, fast):
    torch.manual_seed(0)
    model = MiniGPT(_tiny(pos=pos))
    attn = model.layers[0].self_attn
    attn.fast = fast
    assert "embed_positions.weight" not in model.state_dict()
    x = torch.randn(2, 11, 64)
    with torch.no_grad():
        assert_close(attn(x), _attention_by_hand(attn, x, pos == "alibi"), atol=1e-5, rtol=1e-4)


def test_alibi_prefers_near_keys_and_none_does_not_see_order():
    """With equal scores, ALiBi's attention falls off with the distance, more steeply in the
    first heads (larger slopes); without positions it is uniform over the visible keys."""
    attn = MiniGPT(_tiny(pos="alibi")).layers[0].self_attn
    T, H, H_kv = 8, attn.n_heads, attn.n_kv_heads
    q, k = torch.zeros(1, H, T, attn.head_dim), torch.zeros(1, H_kv, T, attn.head_dim)
    v = torch.eye(T).expand(1, H_kv, T, T)  # the output rows are the attention weights
    with torch.no_grad():
        weights = attn.attend(q, k, v)[0, :, -1]  # (H, T): the last query's weights
        assert (weights.diff(dim=-1) > 0).all()  # nearer keys weigh more, in every head
        assert (weights[0, -1] > weights[-1, -1]).all()  # the steepest slope is head 0's
        attn.alibi = False
        assert_close(attn.attend(q, k, v)[0, :, -1], torch.full((H, T), 1 / T))


@pytest.mark.parametrize("pos", ["rope", "alibi", "none"])
def test_runs_past_max_seq_len(pos):
    torch.manual_seed(0)
    cfg = _tiny(pos=pos, max_seq_len=16)
    model = MiniGPT(cfg).eval()
    idx = torch.randint(0, cfg.vocab_size, (2, 64))  # 4x max_seq_len
    with torch.no_grad():
        logits, loss = model(idx, idx)
        assert logits.shape == (2, 64, cfg.vocab_size) and torch.isfinite(loss)
        # causal: the first 16 positions are what the model gives for 16 tokens
        assert_close(logits[:, :16], model(idx[:, :16])[0], atol=1e-5, rtol=1e-5)
        cache = model.new_cache()
        pieces = [model(idx[:, a:b], cache=cache)[0] for a, b in ((0, 30), (30, 31), (31, 64))]
    assert_close(torch.cat(pieces, 1), logits, atol=1e-5, rtol=1e-4)


def test_learned_positions_refuse_longer_inputs():
    cfg = _tiny(pos="learned", max_seq_len=16)
    model = MiniGPT(cfg).eval()
    model(torch.zeros(1, 16, dtype=torch.long))  # exactly max_seq_len is fine
    with pytest.raises(ValueError, match="learned position table has 16 rows"):
        model(torch.zeros(1, 17, dtype=torch.long))
    cache = model.new_cache()
    model(torch.zeros(1, 10, dtype=torch.long), cache=cache)
    with pytest.raises(ValueError, match="max_seq_len"):
        model(torch.zeros(1, 7, dtype=torch.long), cache=cache)


@pytest.mark.generate
@pytest.mark.parametrize("pos", POSITIONS)
@pytest.mark.parametrize("window", [None, 6])
def test_cached_equals_uncached_for_every_position(pos, window):
    torch.manual_seed(2)
    cfg = _tiny(pos=pos, window=window)
    model = MiniGPT(cfg).eval()
    with torch.no_grad():
        model.lm_head.weight.mul_(20)
    prompt = torch.randint(0, cfg.vocab_size, (2, 4))
    idx = torch.randint(0, cfg.vocab_size, (2, 24))
    with torch.no_grad():
        full = model(idx)[0]
        cache = model.new_cache()
        pieces = [model(idx[:, a:b], cache=cache)[0] for a, b in ((0, 13), (13, 14), (14, 24))]
    assert_close(torch.cat(pieces, 1), full, atol=1e-5, rtol=1e-4)
    cached = generate(model, prompt, 12, temperature=0)  # past the window of 6
    assert torch.equal(cached, generate(model, prompt, 12, temperature=0, use_cache=False))
