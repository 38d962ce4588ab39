"""Week 7 reference: MiniGPT presets (exact parameter counts), forward/loss, the KV cache and
generate (greedy with and without the cache agree; sampling filters)."""

import pytest
import torch
from torch.testing import assert_close

from solutions.model import (
    PRESETS,
    CachedAttention,
    FastRMSNorm,
    GPTConfig,
    KVCache,
    MiniGPT,
    RMSNormFunction,
    filter_logits,
    generate,
    pairs_side_by_side,
    rotate_pairs,
)
from solutions.normalization import RMSNorm
from solutions.positions import apply_rope, interleaved_to_halves, rope_angles, rope_interleaved

pytestmark = pytest.mark.minigpt

# NOTES.md: sizes of the published models, instantiated on the meta device
EXACT_SIZES = {
    "gpt2": 124_439_808,
    "gpt2_medium": 354_823_168,
    "gpt2_large": 774_030_080,
    "gpt2_xl": 1_557_611_200,
    "llama2_7b": 6_738_415_616,
    "llama2_13b": 13_015_864_320,
    "llama2_70b": 68_976_648_192,
    "mistral_7b": 7_241_732_096,
    "mixtral_8x7b": 46_702_792_704,
}


def _n_params(cfg: GPTConfig) -> int:
    with torch.device("meta"):
        model = MiniGPT(cfg)
    return sum(p.numel() for p in model.parameters())  # a tied lm_head is counted once


@pytest.mark.parametrize("name", EXACT_SIZES)
def test_preset_parameter_counts(name):
    assert _n_params(GPTConfig.preset(name)) == EXACT_SIZES[name]


def test_mixtral_active_parameters():
    cfg = GPTConfig.preset("mixtral_8x7b")
    expert = 3 * cfg.dim * cfg.hidden_dim
    idle = (cfg.n_experts - cfg.top_k) * expert * cfg.n_layers
    assert _n_params(cfg) - idle == 12_879_925_248


def test_presets_build_and_derive_fields():
    for name in PRESETS:
        GPTConfig.preset(name)
    assert GPTConfig.preset("llama2_7b").hidden_dim == 11008  # LLaMA's 8/3 rule, multiple of 256
    assert GPTConfig.preset("gpt2").hidden_dim == 4 * 768
    assert GPTConfig.preset("tiny", dim=128).hidden_dim == 512  # derived again, not copied
    assert GPTConfig.preset("tiny", n_kv_heads=None).n_kv_heads == 4
    shakespeare = GPTConfig.preset("shakespeare_char")
    assert (shakespeare.n_layers, shakespeare.n_heads, shakespeare.dim) == (6, 6, 384)
    assert shakespeare.max_seq_len == 256


def test_module_names_and_tying():
    gpt2 = MiniGPT(GPTConfig.preset("tiny_gpt2"))
    keys = set(gpt2.state_dict())
    for key in ("embed_tokens.weight", "embed_positions.weight", "norm.weight", "norm.bias",
                "layers.0.input_layernorm.bias", "layers.0.self_attn.q_proj.bias",
                "layers.0.post_attention_layernorm.weight", "layers.0.mlp.up_proj.bias",
                "layers.1.mlp.down_proj.weight", "lm_head.weight"):
        assert key in keys, key
    assert gpt2.lm_head.weight is gpt2.embed_tokens.weight
    llama = MiniGPT(GPTConfig.preset("tiny"))
    assert "embed_positions.weight" not in llama.state_dict()
    assert "layers.0.mlp.gate_proj.weight" in llama.state_dict()
    assert llama.lm_head.weight is not llama.embed_tokens.weight


def test_gelu_approximate_picks_the_gelu():
    """GPT-2's tanh GELU by default (its weights need it); "none" is the exact erf GELU."""
    torch.manual_seed(0)
    tanh = MiniGPT(GPTConfig.preset("tiny_gpt2")).eval()
    with torch.no_grad():  # large enough weights that the two GELUs part
        for p in tanh.parameters():
            p.normal_(0, 0.5)
    exact = MiniGPT(GPTConfig.preset("tiny_gpt2", gelu_approximate="none")).eval()
    exact.load_state_dict(tanh.state_dict())
    with torch.no_grad():
        for model, gelu in ((exact, torch.nn.GELU()), (tanh, torch.nn.GELU("tanh"))):
            mlp, x = model.layers[0].mlp, torch.randn(3, 64)
            assert_close(mlp(x), mlp.down_proj(gelu(mlp.up_proj(x))), atol=1e-6, rtol=1e-6)
        idx = torch.randint(0, 65, (2, 16))
        assert (tanh(idx)[0] - exact(idx)[0]).abs().max() > 1e-4  # the tolerance of from_hf
    with pytest.raises(AssertionError):
        GPTConfig(gelu_approximate="erf")


@pytest.mark.parametrize("name", ["tiny", "tiny_gpt2", "tiny_mistral", "tiny_mixtral"])
def test_forward_loss_and_backward(name):
    torch.manual_seed(0)
    cfg = GPTConfig.preset(name)
    model = MiniGPT(cfg)
    idx = torch.randint(0, cfg.vocab_size, (2, 20))
    logits, loss = model(idx)
    assert logits.shape == (2, 20, cfg.vocab_size) and loss is None
    logits, loss = model(idx[:, :-1], idx[:, 1:])
    # at init (std 0.02) the prediction is nearly uniform: loss ~ log(vocab_size)
    assert abs(loss.item() - torch.log(torch.tensor(cfg.vocab_size)).item()) < 0.1
    loss.backward()
    assert all(p.grad is not None for p in model.parameters())
    assert len(model.router_logits) == (cfg.n_layers if cfg.n_experts else 0)
    if cfg.n_experts:
        assert model.router_logits[0].shape == (2 * 19, cfg.n_experts)


@pytest.mark.parametrize("name", ["tiny", "tiny_gpt2", "tiny_mistral"])
def test_causal(name):
    """Changing a later token never changes earlier logits."""
    torch.manual_seed(0)
    cfg = GPTConfig.preset(name)
    model = MiniGPT(cfg).eval()
    idx = torch.randint(0, cfg.vocab_size, (1, 24))
    other = idx.clone()
    other[0, 15:] = (other[0, 15:] + 1) % cfg.vocab_size
    with torch.no_grad():
        assert_close(model(idx)[0][:, :15], model(other)[0][:, :15])


def test_tiny_model_learns():
    torch.manual_seed(0)
    model = MiniGPT(GPTConfig.preset("tiny", vocab_size=16))
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2)
    data = torch.arange(33).remainder(16)[None]  # a cycle: fully predictable
    for _ in range(60):
        _, loss = model(data[:, :-1], data[:, 1:])
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert loss.item() < 0.1


@pytest.mark.generate
@pytest.mark.parametrize("name", ["tiny", "tiny_gpt2", "tiny_mistral", "tiny_mixtral"])
def test_cached_logits_match_full_forward(name):
    """Prefill a prompt, then feed tokens one, three and one at a time: same logits as a
    full forward (the Mistral one, window 8, runs past its window)."""
    torch.manual_seed(0)
    cfg = GPTConfig.preset(name)
    model = MiniGPT(cfg).eval()
    idx = torch.randint(0, cfg.vocab_size, (2, 30))
    with torch.no_grad():
        full, _ = model(idx)
        cache = model.new_cache()
        pieces = []
        for a, b in ((0, 25), (25, 26), (26, 29), (29, 30)):
            pieces.append(model(idx[:, a:b], cache=cache)[0])
    assert_close(torch.cat(pieces, dim=1), full, atol=1e-5, rtol=1e-5)
    assert cache[0].pos == 30
    held = 30 if cfg.window is None else cfg.window
    assert cache[0].k.shape == (2, cfg.n_kv_heads, held, cfg.dim // cfg.n_heads)


def test_sliding_window_cache_stops_growing():
    cache = KVCache(window=4)
    for t in range(10):
        k, v = cache.update(torch.full((1, 2, 1, 3), float(t)), torch.zeros(1, 2, 1, 3))
        assert k.size(2) == min(t + 1, 5)  # returns the kept keys plus the new one
    assert cache.pos == 10 and cache.k.size(2) == 4
    assert cache.k[0, 0, :, 0].tolist() == [6.0, 7.0, 8.0, 9.0]


@pytest.mark.generate
@pytest.mark.parametrize("name", ["tiny", "tiny_gpt2", "tiny_mistral", "tiny_mixtral"])
def test_greedy_same_with_and_without_cache(name):
    torch.manual_seed(1)
    cfg = GPTConfig.preset(name)
    model = MiniGPT(cfg).eval()
    with torch.no_grad():  # sharpen the tiny random model so greedy has clear winners
        model.lm_head.weight.mul_(20)
    prompt = torch.randint(0, cfg.vocab_size, (2, 5))
    # 40 new tokens: far past the Mistral window of 8, within max_seq_len 64
    cached = generate(model, prompt, 40, temperature=0)
    uncached = generate(model, prompt, 40, temperature=0, use_cache=False)
    assert cached.shape == (2, 45)
    assert torch.equal(cached[:, :5], prompt)
    assert torch.equal(cached, uncached)


@pytest.mark.generate
def test_sampling_is_reproducible_with_a_generator():
    torch.manual_seed(0)
    model = MiniGPT(GPTConfig.preset("tiny")).eval()
    prompt = torch.zeros(1, 1, dtype=torch.long)
    runs = [generate(model, prompt, 20, temperature=1.0, top_k=10, top_p=0.9,
                     generator=torch.Generator().manual_seed(7)) for _ in range(2)]
    assert torch.equal(runs[0], runs[1])
    assert runs[0].shape == (1, 21)


@pytest.mark.generate
def test_filter_logits():
    logits = torch.log(torch.tensor([[0.5, 0.05, 0.3, 0.15]]))
    kept = lambda out: torch.isfinite(out)[0].tolist()  # noqa: E731
    assert kept(filter_logits(logits, top_k=2)) == [True, False, True, False]
    assert kept(filter_logits(logits, top_p=0.5)) == [True, False, False, False]
    assert kept(filter_logits(logits, top_p=0.6)) == [True, False, True, False]
    assert kept(filter_logits(logits, top_p=0.95)) == [True, False, True, True]
    assert kept(filter_logits(logits, top_k=1, top_p=0.99)) == [True, False, False, False]
    # top_k = 1 sampling is greedy
    model = MiniGPT(GPTConfig.preset("tiny")).eval()
    prompt = torch.randint(0, 65, (1, 4))
    assert torch.equal(generate(model, prompt, 8, top_k=1), generate(model, prompt, 8, 0))


@pytest.mark.parametrize("name", ["tiny", "tiny_gpt2", "tiny_mistral", "tiny_mixtral"])
def test_fast_switch_gives_the_same_logits_and_gradients(name):
    """``fast`` (GQA, a window shorter than the sequence, GPT-2's learned positions and biases,
    experts): the fast paths and the course's own code agree, gradients included, and a
    cache fed in pieces still gives the full forward."""
    torch.manual_seed(0)
    cfg = GPTConfig.preset(name)
    model = MiniGPT(cfg)
    idx = torch.randint(0, cfg.vocab_size, (2, 30))  # 30 > the Mistral window of 8

    def logits_and_grads():
        model.zero_grad()
        logits, loss = model(idx[:, :-1], idx[:, 1:])
        loss.backward()
        return logits, {n: p.grad.clone() for n, p in model.named_parameters()}

    ours, ours_grads = logits_and_grads()
    switched = [m for m in model.modules() if hasattr(m, "fast")]
    expected = cfg.n_layers * (3 if cfg.norm == "rmsnorm" else 1) + (cfg.norm == "rmsnorm")
    assert len(switched) == expected  # every attention and every RMSNorm
    for m in switched:
        m.fast = True
    fast, fast_grads = logits_and_grads()
    assert_close(fast, ours, atol=1e-5, rtol=1e-4)
    for n, grad in ours_grads.items():
        assert_close(fast_grads[n], grad, atol=1e-6, rtol=1e-4, msg=n)
    with torch.no_grad():
        cache = model.new_cache()
        pieces = [model(idx[:, a:b], cache=cache)[0] for a, b in ((0, 20), (20, 21), (21, 30))]
        assert_close(torch.cat(pieces, dim=1), model(idx)[0], atol=1e-5, rtol=1e-4)
    assert CachedAttention.fast is False and FastRMSNorm.fast is False  # set per module


def test_rotate_pairs_is_apply_rope_on_reordered_dimensions():
    """RoPE on pairs side by side (one complex multiplication) equals ``apply_rope`` with the
    dimensions reordered; and reordering q and k alike leaves every q . k unchanged."""
    torch.manual_seed(0)
    H, T, D = 3, 7, 8
    q, k = torch.randn(2, H, T, D), torch.randn(2, H, T, D)
    positions = torch.arange(5, 5 + T)
    order = pairs_side_by_side(1, D)
    assert order.tolist() == [0, 4, 1, 5, 2, 6, 3, 7]
    assert torch.equal(interleaved_to_halves(D)[order], torch.arange(D))  # the inverse
    angles = rope_angles(positions, D, 500.0)
    assert_close(rotate_pairs(q[..., order], angles), apply_rope(q, positions, 500.0)[..., order])
    assert_close(rotate_pairs(q, angles), rope_interleaved(q, positions, 500.0))  # week 4's
    scores = apply_rope(q, positions) @ apply_rope(k, positions).transpose(-2, -1)
    angles = rope_angles(positions, D)
    pairs = rotate_pairs(q[..., order], angles) @ rotate_pairs(k[..., order], angles).mT
    assert_close(pairs, scores, atol=1e-5, rtol=1e-5)
    bf16 = rotate_pairs(q[..., order].bfloat16(), angles)
    assert bf16.dtype == torch.bfloat16
    assert_close(bf16.float(), rotate_pairs(q[..., order], angles), atol=3e-2, rtol=3e-2)
    assert pairs_side_by_side(2, 4).tolist() == [0, 2, 1, 3, 4, 6, 5, 7]


def test_rmsnorm_function_backward_by_hand():
    """The hand-written backward agrees with autograd through the formula (gradcheck in
    float64), and the module gives week 3's RMSNorm in float32 and falls back to it in bf16."""
    torch.manual_seed(0)
    x = torch.randn(3, 5, 8, dtype=torch.float64, requires_grad=True)
    weight = torch.randn(8, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda a, w: RMSNormFunction.apply(a, w, 1e-5), (x, weight))
    norm = FastRMSNorm(8, eps=0.5)  # a large eps, so that its place in the formula shows
    with torch.no_grad():
        norm.weight.copy_(torch.randn(8))
    plain = RMSNorm(8, eps=0.5)
    plain.load_state_dict(norm.state_dict())
    x = torch.randn(4, 8) * 0.3
    norm.fast = True
    assert_close(norm(x), plain(x))
    assert_close(norm(x.bfloat16()), plain(x.bfloat16()))  # the contract's order, not fast
