"""Week 5 against transformers: repeat_kv, the sliding-window mask, and Attention vs
LlamaAttention (MHA, GQA, MQA) and MistralAttention with a sliding window (eager, float32)."""

import pytest
import torch
from torch.testing import assert_close

from solutions.efficient_attention import Attention, repeat_kv, sliding_window_mask

transformers = pytest.importorskip("transformers")
masking_utils = pytest.importorskip("transformers.masking_utils")
modeling_llama = pytest.importorskip("transformers.models.llama.modeling_llama")
modeling_mistral = pytest.importorskip("transformers.models.mistral.modeling_mistral")

pytestmark = pytest.mark.equivalence
TOL = {"atol": 1e-5, "rtol": 1e-5}
DIM = 64


def _config(cls, n_heads, n_kv_heads, theta=10000.0, **kwargs):
    return cls(
        hidden_size=DIM,
        intermediate_size=96,
        num_hidden_layers=1,
        num_attention_heads=n_heads,
        num_key_value_heads=n_kv_heads,
        vocab_size=50,
        max_position_embeddings=256,
        rope_parameters={"rope_type": "default", "rope_theta": theta},
        attn_implementation="eager",
        **kwargs,
    )


def _run_hf(attn, rotary, mask_fn, config, x):
    """Call an HF attention layer the way its model does: rotary (cos, sin) + additive mask."""
    position_ids = torch.arange(x.size(1))[None]
    mask = mask_fn(
        config=config,
        inputs_embeds=x,
        attention_mask=None,
        past_key_values=None,
        position_ids=position_ids,
    )
    out, _ = attn(x, position_embeddings=rotary(x, position_ids), attention_mask=mask)
    return out


@pytest.mark.repeat_kv
def test_repeat_kv_matches_transformers():
    x = torch.randn(2, 3, 5, 4)
    for n_rep in (1, 2, 4):
        assert torch.equal(repeat_kv(x, n_rep), modeling_llama.repeat_kv(x, n_rep))


@pytest.mark.sliding_window_mask
@pytest.mark.parametrize("seq_len,window", [(5, 3), (9, 1), (9, 4), (12, 12), (6, 20)])
def test_sliding_window_mask_matches_transformers_mistral(seq_len, window):
    """transformers' rule: kv_idx > q_idx - window and kv_idx <= q_idx, i.e. 0 <= i - j < w.
    (Mistral's original reference code let one more key in: i - w <= j.)"""
    hf = masking_utils.sdpa_mask(
        batch_size=1,
        q_length=seq_len,
        kv_length=seq_len,
        mask_function=masking_utils.sliding_window_causal_mask_function(window),
        allow_is_causal_skip=False,
    )
    assert torch.equal(sliding_window_mask(seq_len, window), hf[0, 0])


@pytest.mark.sliding_window_mask
def test_mistral_model_builds_the_same_sliding_window_mask():
    """The additive float mask MistralModel makes (eager): 0 where ours is True, a very
    negative number (finfo.min, not -inf) elsewhere."""
    config = _config(transformers.MistralConfig, 4, 2, sliding_window=3)
    x = torch.randn(1, 8, DIM)
    mask = masking_utils.create_sliding_window_causal_mask(
        config=config,
        inputs_embeds=x,
        attention_mask=None,
        past_key_values=None,
        position_ids=torch.arange(8)[None],
    )
    assert torch.equal(mask[0, 0] == 0, sliding_window_mask(8, 3))
    assert mask.min() == torch.finfo(torch.float32).min


@pytest.mark.attention
@pytest.mark.parametrize(
    "n_heads,n_kv_heads,theta,seq_len",
    [(4, 4, 10000.0, 11), (4, 2, 10000.0, 11), (8, 1, 10000.0, 11), (4, 2, 1e6, 40)],
    ids=["mha", "gqa", "mqa", "gqa-theta1e6"],
)
def test_attention_matches_llama_attention(n_heads, n_kv_heads, theta, seq_len):
    config = _config(transformers.LlamaConfig, n_heads, n_kv_heads, theta)
    torch.manual_seed(0)
    hf = modeling_llama.LlamaAttention(config, layer_idx=0).eval()
    rotary = modeling_llama.LlamaRotaryEmbedding(config)
    ours = Attention(DIM, n_heads, n_kv_heads, rope_theta=theta)
    ours.load_state_dict(hf.state_dict())  # q_proj / k_proj / v_proj / o_proj by key
    x = torch.randn(2, seq_len, DIM)
    expected = _run_hf(hf, rotary, masking_utils.create_causal_mask, config, x)
    assert_close(ours(x), expected, **TOL)


@pytest.mark.attention
@pytest.mark.parametrize(
    "n_kv_heads,window,seq_len",
    [(2, 4, 16), (2, 3, 10), (1, 1, 7), (4, 5, 23), (2, 8, 8), (2, 30, 12)],
)
def test_attention_matches_mistral_attention_with_a_sliding_window(n_kv_heads, window, seq_len):
    config = _config(transformers.MistralConfig, 4, n_kv_heads, sliding_window=window)
    torch.manual_seed(0)
    hf = modeling_mistral.MistralAttention(config, layer_idx=0).eval()
    rotary = modeling_mistral.MistralRotaryEmbedding(config)
    ours = Attention(DIM, 4, n_kv_heads, window=window)
    ours.load_state_dict(hf.state_dict())
    x = torch.randn(2, seq_len, DIM)
    expected = _run_hf(hf, rotary, masking_utils.create_sliding_window_causal_mask, config, x)
    assert_close(ours(x), expected, **TOL)


@pytest.mark.attention
def test_attention_matches_inside_a_mistral_model():
    """The whole model path (mask and positions made by MistralModel), T > window: capture the
    first layer's attention input and output with a hook and replay it through ours."""
    config = _config(transformers.MistralConfig, 4, 2, sliding_window=5)
    torch.manual_seed(0)
    model = transformers.MistralModel(config).eval()
    seen = {}

    def hook(module, args, kwargs, output):
        seen["x"], seen["y"] = kwargs["hidden_states"], output[0]

    model.layers[0].self_attn.register_forward_hook(hook, with_kwargs=True)
    with torch.no_grad():
        model(input_ids=torch.randint(0, 50, (2, 21)))
    ours = Attention(DIM, 4, 2, window=5)
    ours.load_state_dict(model.layers[0].self_attn.state_dict())
    with torch.no_grad():
        assert_close(ours(seen["x"]), seen["y"], **TOL)
