"""The published presets against transformers: the same parameter count, to the last digit.

Each model is built on PyTorch's meta device (no memory), from a transformers configuration
written out here from the published shapes, not derived from our presets, so a wrong preset
cannot agree with itself."""

import pytest
import torch

from solutions import GPTConfig, count_parameters
from tests.meta_models import preset_model

transformers = pytest.importorskip("transformers")

pytestmark = [pytest.mark.equivalence, pytest.mark.minigpt]


def _gpt2(n_embd, n_layer, n_head):
    return "GPT2LMHeadModel", transformers.GPT2Config(
        n_embd=n_embd, n_layer=n_layer, n_head=n_head, n_positions=1024, vocab_size=50257)


def _llama(family, hidden, intermediate, layers, heads, kv_heads, positions, **extra):
    return f"{family}ForCausalLM", getattr(transformers, f"{family}Config")(
        hidden_size=hidden, intermediate_size=intermediate, num_hidden_layers=layers,
        num_attention_heads=heads, num_key_value_heads=kv_heads, vocab_size=32000,
        max_position_embeddings=positions, tie_word_embeddings=False, **extra)


PUBLISHED = {  # Radford et al. 2019; Touvron et al. 2023; Jiang et al. 2023, 2024
    "gpt2": lambda: _gpt2(768, 12, 12),
    "gpt2_medium": lambda: _gpt2(1024, 24, 16),
    "gpt2_large": lambda: _gpt2(1280, 36, 20),
    "gpt2_xl": lambda: _gpt2(1600, 48, 25),
    "llama2_7b": lambda: _llama("Llama", 4096, 11008, 32, 32, 32, 4096),
    "llama2_13b": lambda: _llama("Llama", 5120, 13824, 40, 40, 40, 4096),
    "llama2_70b": lambda: _llama("Llama", 8192, 28672, 80, 64, 8, 4096),
    "mistral_7b": lambda: _llama("Mistral", 4096, 14336, 32, 32, 8, 32768, sliding_window=4096),
    "mixtral_8x7b": lambda: _llama("Mixtral", 4096, 14336, 32, 32, 8, 32768,
                                   num_local_experts=8, num_experts_per_tok=2),
}


def _hf_numel(name: str) -> int:
    model_name, config = PUBLISHED[name]()
    with torch.device("meta"):
        model = getattr(transformers, model_name)(config)
    return sum(p.numel() for p in model.parameters())


@pytest.mark.parametrize("name", PUBLISHED)
def test_preset_has_the_transformers_models_size(name):
    config = GPTConfig.preset(name)
    ours = sum(p.numel() for p in preset_model(name).parameters())  # on the meta device
    expected = _hf_numel(name)
    assert ours == expected, f"{name}: MiniGPT has {ours:,}, transformers {expected:,}"
    assert count_parameters(config) == expected
