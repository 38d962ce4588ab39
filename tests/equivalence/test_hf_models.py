"""Week 7 against transformers: MiniGPT.from_hf on small random GPT-2, Llama, Mistral (with a
window shorter than the sequence) and Mixtral models (eager attention and experts, float32)
gives the same logits; and our greedy generation with the KV cache matches HF's."""

import pytest
import torch
from torch.testing import assert_close

from solutions.model import MiniGPT, generate
from tests.equivalence.hf import random_hf_model

transformers = pytest.importorskip("transformers")

pytestmark = [pytest.mark.equivalence, pytest.mark.minigpt]
TOL = {"atol": 1e-4, "rtol": 1e-4}
VOCAB = 97


def _llama_like(cls, **kwargs):
    defaults = dict(
        vocab_size=VOCAB, hidden_size=64, intermediate_size=96, num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=128,
        rms_norm_eps=1e-5, attn_implementation="eager",
    )
    return cls(**{**defaults, **kwargs})


CONFIGS = {
    "gpt2": lambda: transformers.GPT2Config(
        vocab_size=VOCAB, n_embd=64, n_layer=2, n_head=4, n_positions=128,
        attn_implementation="eager"),
    "gpt2_exact_gelu": lambda: transformers.GPT2Config(
        vocab_size=VOCAB, n_embd=64, n_layer=2, n_head=4, n_positions=128,
        activation_function="gelu", attn_implementation="eager"),
    "llama": lambda: _llama_like(
        transformers.LlamaConfig, rope_parameters={"rope_type": "default", "rope_theta": 500.0}),
    "llama_mha_tied": lambda: _llama_like(
        transformers.LlamaConfig, tie_word_embeddings=True, num_key_value_heads=4),
    "mistral": lambda: _llama_like(transformers.MistralConfig, sliding_window=8),
    "mixtral": lambda: _llama_like(
        transformers.MixtralConfig, num_local_experts=4, num_experts_per_tok=2,
        router_jitter_noise=0.0, experts_implementation="eager",
        rope_parameters={"rope_type": "default", "rope_theta": 1e6}),
}
MODELS = {
    "gpt2": "GPT2LMHeadModel", "gpt2_exact_gelu": "GPT2LMHeadModel",
    "llama": "LlamaForCausalLM", "llama_mha_tied": "LlamaForCausalLM",
    "mistral": "MistralForCausalLM", "mixtral": "MixtralForCausalLM",
}


def _hf_model(name):
    return random_hf_model(getattr(transformers, MODELS[name]), CONFIGS[name]())


@pytest.mark.parametrize("name", list(CONFIGS))
def test_logits_match_transformers(name):
    hf = _hf_model(name)
    ours = MiniGPT.from_hf(hf).eval()
    idx = torch.randint(0, VOCAB, (2, 21), generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        expected = hf(input_ids=idx).logits
        logits, loss = ours(idx, idx)
    assert_close(logits, expected, **TOL)
    with torch.no_grad():  # HF shifts the labels itself
        hf_loss = hf(input_ids=idx, labels=idx).loss
        _, loss = ours(idx[:, :-1], idx[:, 1:])
    assert_close(loss, hf_loss, **TOL)


def test_config_is_read_from_the_hf_model():
    cfg = MiniGPT.from_hf(_hf_model("gpt2")).config
    assert (cfg.norm, cfg.mlp, cfg.pos, cfg.tie_embeddings, cfg.bias) == (
        "layernorm", "gelu", "learned", True, True)
    assert cfg.hidden_dim == 256 and cfg.max_seq_len == 128 and cfg.gelu_approximate == "tanh"
    assert MiniGPT.from_hf(_hf_model("gpt2_exact_gelu")).config.gelu_approximate == "none"
    cfg = MiniGPT.from_hf(_hf_model("mistral")).config
    assert (cfg.norm, cfg.mlp, cfg.pos, cfg.window, cfg.n_kv_heads) == (
        "rmsnorm", "swiglu", "rope", 8, 2)
    cfg = MiniGPT.from_hf(_hf_model("mixtral")).config
    assert (cfg.n_experts, cfg.top_k, cfg.rope_theta) == (4, 2, 1e6)


@pytest.mark.generate
@pytest.mark.parametrize("name", ["gpt2", "llama", "mistral"])
def test_greedy_generation_matches_transformers(name):
    hf = _hf_model(name)
    ours = MiniGPT.from_hf(hf).eval()
    prompt = torch.randint(0, VOCAB, (1, 4), generator=torch.Generator().manual_seed(3))
    hf.generation_config.eos_token_id = None  # no early stop (nor a banned EOS token)
    with torch.no_grad():
        expected = hf.generate(prompt, max_new_tokens=20, do_sample=False, pad_token_id=0)
    assert expected.shape == (1, 24)
    assert torch.equal(generate(ours, prompt, 20, temperature=0), expected)
