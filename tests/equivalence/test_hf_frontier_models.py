"""Week 9 against transformers: MiniGPT.from_hf on small random DeepSeek-V3 and Llama 4 models
(eager attention and experts, float32, random routing biases) gives the same logits; greedy
generation matches transformers' and does not depend on the cache, also across Llama 4's
attention chunks; and the presets count exactly what transformers builds for the published
text configurations (its DeepseekV3Config and Llama4TextConfig defaults are those of
DeepSeek-V3 and Llama 4 Scout)."""

import dataclasses

import pytest
import torch
from torch.testing import assert_close

from solutions.model import GPTConfig, MiniGPT, generate
from solutions.scaling import count_parameters
from tests.equivalence.hf import random_hf_model
from tests.meta_models import on_meta, preset_model

transformers = pytest.importorskip("transformers")

pytestmark = [pytest.mark.equivalence, pytest.mark.minigpt]
TOL = {"atol": 1e-4, "rtol": 1e-4}
VOCAB = 97

CONFIGS = {
    "deepseek_v3": lambda: transformers.DeepseekV3Config(
        vocab_size=VOCAB, hidden_size=64, intermediate_size=96, moe_intermediate_size=24,
        num_hidden_layers=3, num_attention_heads=4, num_key_value_heads=4, q_lora_rank=32,
        kv_lora_rank=16,
        qk_nope_head_dim=16, qk_rope_head_dim=8, v_head_dim=16, n_routed_experts=8,
        n_shared_experts=1, num_experts_per_tok=2, n_group=4, topk_group=2,
        routed_scaling_factor=2.5, first_k_dense_replace=1, max_position_embeddings=128,
        rope_parameters={"rope_type": "default", "rope_theta": 500.0},
        attn_implementation="eager", experts_implementation="eager"),
    "deepseek_v2_lite_style": lambda: transformers.DeepseekV3Config(  # one q_proj
        vocab_size=VOCAB, hidden_size=64, intermediate_size=96, moe_intermediate_size=24,
        num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=4, q_lora_rank=None,
        kv_lora_rank=16,
        qk_nope_head_dim=16, qk_rope_head_dim=8, v_head_dim=8, n_routed_experts=4,
        n_shared_experts=2, num_experts_per_tok=2, n_group=1, topk_group=1,
        norm_topk_prob=False, first_k_dense_replace=0, max_position_embeddings=128,
        attn_implementation="eager", experts_implementation="eager"),
    "llama4_scout_style": lambda: transformers.Llama4TextConfig(  # MoE everywhere, QK-norm
        vocab_size=VOCAB, hidden_size=64, intermediate_size=32, intermediate_size_mlp=96,
        num_hidden_layers=4, num_attention_heads=4, num_key_value_heads=2, head_dim=16,
        num_local_experts=4, num_experts_per_tok=1, attention_chunk_size=8, floor_scale=4,
        max_position_embeddings=128, rope_parameters={"rope_type": "default",
                                                      "rope_theta": 500.0},
        attn_implementation="eager"),
    "llama4_maverick_style": lambda: transformers.Llama4TextConfig(  # MoE every 2nd layer
        vocab_size=VOCAB, hidden_size=64, intermediate_size=32, intermediate_size_mlp=96,
        num_hidden_layers=4, num_attention_heads=4, num_key_value_heads=2, head_dim=16,
        num_local_experts=8, num_experts_per_tok=1, interleave_moe_layer_step=2,
        use_qk_norm=False, attention_chunk_size=8, floor_scale=4,
        max_position_embeddings=128, attn_implementation="eager"),
}
MODELS = {"deepseek_v3": "DeepseekV3ForCausalLM", "deepseek_v2_lite_style": "DeepseekV3ForCausalLM",
          "llama4_scout_style": "Llama4ForCausalLM", "llama4_maverick_style": "Llama4ForCausalLM"}


def _hf_model(name):
    return random_hf_model(getattr(transformers, MODELS[name]), CONFIGS[name]())


@pytest.mark.parametrize("name", list(CONFIGS))
def test_logits_match_transformers(name):
    hf = _hf_model(name)
    ours = MiniGPT.from_hf(hf).eval()
    idx = torch.randint(0, VOCAB, (2, 21), generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        expected = hf(input_ids=idx).logits
        logits, _ = ours(idx)
        hf_loss = hf(input_ids=idx, labels=idx).loss
        _, loss = ours(idx[:, :-1], idx[:, 1:])
    assert_close(logits, expected, **TOL)
    assert_close(loss, hf_loss, **TOL)


def test_the_routing_bias_and_the_pattern_of_layers_are_loaded():
    hf = _hf_model("deepseek_v3")
    ours = MiniGPT.from_hf(hf)
    bias = hf.model.layers[2].mlp.gate.e_score_correction_bias
    assert bias.abs().sum() > 0 and torch.equal(ours.layers[2].mlp.gate.e_score_correction_bias,
                                                bias)
    assert type(ours.layers[0].mlp).__name__ == "SwiGLU"  # first_k_dense_replace = 1
    assert type(ours.layers[1].mlp).__name__ == "DeepSeekMoE"
    ours = MiniGPT.from_hf(_hf_model("llama4_maverick_style"))
    cfg = ours.config
    assert (cfg.moe_every, cfg.nope_every, cfg.chunk, cfg.qk_norm) == (2, 4, 8, False)
    assert [type(layer.mlp).__name__ for layer in ours.layers] == [
        "SwiGLU", "Llama4MoE", "SwiGLU", "Llama4MoE"]
    assert [layer.self_attn.rope_theta is None for layer in ours.layers] == [
        False, False, False, True]  # the fourth layer is NoPE
    assert [layer.self_attn.chunk for layer in ours.layers] == [8, 8, 8, None]


@pytest.mark.generate
@pytest.mark.parametrize("name", list(CONFIGS))
def test_greedy_generation_matches_transformers_and_the_cache(name):
    """20 new tokens after a 5-token prompt: Llama 4's chunks of 8 are crossed three times."""
    hf = _hf_model(name)
    ours = MiniGPT.from_hf(hf).eval()
    prompt = torch.randint(0, VOCAB, (1, 5), generator=torch.Generator().manual_seed(3))
    hf.generation_config.eos_token_id = None  # no early stop (nor a banned EOS token)
    with torch.no_grad():
        expected = hf.generate(prompt, max_new_tokens=20, do_sample=False, pad_token_id=0)
    cached = generate(ours, prompt, 20, temperature=0)
    uncached = generate(ours, prompt, 20, temperature=0, use_cache=False)
    assert torch.equal(cached, uncached)
    assert torch.equal(cached, expected)


PUBLISHED = {  # preset -> transformers' config class, model class and the published values
    "deepseek_v3": ("DeepseekV3Config", "DeepseekV3ForCausalLM", {}),
    "llama4_scout": ("Llama4TextConfig", "Llama4ForCausalLM", {}),
    "llama4_maverick": ("Llama4TextConfig", "Llama4ForCausalLM", dict(
        num_local_experts=128, interleave_moe_layer_step=2, use_qk_norm=False)),
}


@pytest.mark.count_parameters
@pytest.mark.parametrize("preset", list(PUBLISHED))
def test_presets_count_what_transformers_builds(preset):
    """transformers' model of the published configuration, built on the meta device: our
    preset is what from_hf reads from it (but for the context length, shorter in
    transformers' defaults), and counts the same parameters, in total and active (the routed
    experts a token does not use left out), analytically and built."""
    config_cls, model_cls, overrides = PUBLISHED[preset]
    hf_config = getattr(transformers, config_cls)(**overrides)
    with torch.device("meta"):
        hf = getattr(transformers, model_cls)(hf_config)
    with on_meta():  # every module and shape of ours, without the (empty) random weights
        from_hf = MiniGPT.from_hf(hf).config
    ours = preset_model(preset)
    config = GPTConfig.preset(preset)
    assert dataclasses.replace(from_hf, max_seq_len=config.max_seq_len) == config
    total = sum(p.numel() for p in hf.parameters())
    unused = sum(p.numel() // p.shape[0] * (p.shape[0] - hf_config.num_experts_per_tok)
                 for name, p in hf.named_parameters()
                 if ".experts.gate_up_proj" in name or ".experts.down_proj" in name)
    assert count_parameters(config) == total
    assert count_parameters(config, active=True) == total - unused
    assert sum(p.numel() for p in ours.parameters()) == total
