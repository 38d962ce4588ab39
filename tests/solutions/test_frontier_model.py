"""Week 9 in the mini-GPT: the DeepSeek-V3 and Llama 4 presets (exact sizes, the pattern of
their layers), cached decoding across Llama 4's chunks, and training the tiny presets with the
week-7 trainer on tiny Shakespeare (DeepSeekMoE balanced by its bias rule, not by a loss)."""

import pytest
import torch
from torch.testing import assert_close

from solutions.data import load_dataset, load_text
from solutions.deepseek_moe import DeepSeekMoE
from solutions.latent_attention import CachedLatentAttention, LatentKVCache
from solutions.llama4 import Llama4MoE
from solutions.model import GPTConfig, KVCache, MiniGPT, generate
from solutions.scaling import count_parameters
from solutions.train import TrainConfig, Trainer

pytestmark = pytest.mark.minigpt

# transformers' DeepseekV3ForCausalLM and Llama4ForCausalLM of the published text
# configurations, built on the meta device (tests/equivalence/test_hf_frontier_models.py
# recomputes them): (total, active)
PUBLISHED = {"deepseek_v3": (671_026_404_352, 37_552_282_624),
             "llama4_scout": (107_769_861_120, 17_172_894_720),
             "llama4_maverick": (400_711_848_960, 17_184_691_200)}


@pytest.mark.count_parameters
@pytest.mark.parametrize("name", list(PUBLISHED))
def test_published_sizes(name):
    total, active = PUBLISHED[name]
    config = GPTConfig.preset(name)
    assert count_parameters(config) == total
    assert count_parameters(config, active=True) == active


def test_layer_patterns():
    with torch.device("meta"):
        deepseek = MiniGPT(GPTConfig.preset("deepseek_v3", n_layers=5))
        maverick = MiniGPT(GPTConfig.preset("llama4_maverick", n_layers=8))
    assert [type(layer.mlp).__name__ for layer in deepseek.layers] == [
        "SwiGLU", "SwiGLU", "SwiGLU", "DeepSeekMoE", "DeepSeekMoE"]
    assert all(isinstance(layer.self_attn, CachedLatentAttention) for layer in deepseek.layers)
    assert [isinstance(layer.mlp, Llama4MoE) for layer in maverick.layers] == [False, True] * 4
    nope = [layer.self_attn.rope_theta is None for layer in maverick.layers]
    assert nope == [False, False, False, True] * 2
    assert [layer.self_attn.chunk for layer in maverick.layers] == [8192, 8192, 8192, None] * 2
    assert [layer.self_attn.attn_scale for layer in maverick.layers] == [0, 0, 0, 0.1] * 2
    scout = GPTConfig.preset("llama4_scout")
    assert scout.qk_norm and all(scout.is_moe_layer(i) for i in range(48))


@pytest.mark.generate
@pytest.mark.parametrize("name", ["tiny_deepseek", "tiny_llama4"])
def test_cached_decoding_equals_full_forward_across_chunks(name):
    """Logits of a prompt fed at once or in pieces (crossing the chunks of 16) agree; the
    caches hold latents for MLA and at most a chunk of keys for the chunked layers."""
    torch.manual_seed(0)
    model = MiniGPT(GPTConfig.preset(name)).eval()
    idx = torch.randint(0, 65, (2, 50))
    with torch.no_grad():
        full, _ = model(idx)
        cache = model.new_cache()
        pieces = [model(idx[:, a:b], cache=cache)[0]
                  for a, b in [(0, 10), (10, 17), (17, 18), (18, 33), (33, 50)]]
    assert_close(torch.cat(pieces, dim=1), full, atol=1e-5, rtol=1e-4)
    if name == "tiny_deepseek":
        assert all(isinstance(c, LatentKVCache) and c.latent.shape == (2, 50, 16) for c in cache)
    else:
        assert all(isinstance(c, KVCache) for c in cache)
        kept = [c.k.shape[2] for c in cache]
        assert kept == [50 % 16, 50 % 16, 50 % 16, 50]  # chunked layers keep their chunk only


@pytest.mark.generate
@pytest.mark.parametrize("name", ["tiny_deepseek", "tiny_llama4"])
def test_greedy_generation_with_and_without_cache(name):
    torch.manual_seed(1)
    model = MiniGPT(GPTConfig.preset(name)).eval()
    prompt = torch.randint(0, 65, (2, 5))
    cached = generate(model, prompt, 24, temperature=0)  # 29 tokens: past a chunk of 16
    assert torch.equal(cached, generate(model, prompt, 24, temperature=0, use_cache=False))


@pytest.fixture(scope="module")
def shakespeare():
    return load_dataset("char", load_text()[:50_000])


@pytest.mark.parametrize("name", ["tiny_deepseek", "tiny_llama4"])
def test_tiny_presets_train_with_the_week7_trainer(shakespeare, name):
    torch.manual_seed(0)
    model = MiniGPT(GPTConfig.preset(name, vocab_size=shakespeare.vocab_size))
    cfg = TrainConfig(batch_size=8, block_size=48, max_iters=60, warmup_iters=5, lr=3e-3,
                      eval_interval=60, eval_iters=2, device="cpu")
    trainer = Trainer(model, shakespeare, cfg)
    trainer.fit(progress=False)
    first, last = trainer.history[0], trainer.history[-1]
    assert last["step"] == 60 and last["val"] < first["val"] - 0.5
    biases = [m.gate.e_score_correction_bias for m in model.modules()
              if isinstance(m, DeepSeekMoE)]
    if name == "tiny_deepseek":  # balanced by the bias rule: 60 steps of +-1e-3 each
        assert biases and all(b.abs().max() > 0 for b in biases)
        assert all(b.abs().max() <= 60 * 1e-3 + 1e-6 for b in biases)
        assert trainer._aux_loss() == 0.0  # no Switch-style loss on top
    else:
        assert not biases
