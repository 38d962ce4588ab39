"""Week 6 against transformers' Mixtral: MoE vs MixtralSparseMoeBlock (fused experts, eager),
router logits, and load_balancing_loss vs load_balancing_loss_func."""

import pytest
import torch
from torch.testing import assert_close

from solutions.moe import MoE, load_balancing_loss, route

transformers = pytest.importorskip("transformers")
modeling_mixtral = pytest.importorskip("transformers.models.mixtral.modeling_mixtral")

pytestmark = pytest.mark.equivalence
TOL = {"atol": 1e-5, "rtol": 1e-5}
DIM, HIDDEN = 32, 48


def _config(n_experts=4, top_k=2):
    return transformers.MixtralConfig(
        hidden_size=DIM,
        intermediate_size=HIDDEN,
        num_hidden_layers=1,
        num_attention_heads=4,
        num_key_value_heads=2,
        vocab_size=50,
        max_position_embeddings=64,
        num_local_experts=n_experts,
        num_experts_per_tok=top_k,
        router_jitter_noise=0.0,
        attn_implementation="eager",
        experts_implementation="eager",  # the default grouped_mm fails in float64
    )


def moe_state_dict_from_mixtral(block) -> dict[str, torch.Tensor]:
    """Unfuse Mixtral's experts: gate_up_proj [E, 2I, d] (rows [:I] gate, [I:] up) and
    down_proj [E, d, I] become one SwiGLU per expert; the router `gate` keeps its key."""
    n_experts, two_i, _ = block.experts.gate_up_proj.shape
    i = two_i // 2
    state = {"gate.weight": block.gate.weight}
    for e in range(n_experts):
        state[f"experts.{e}.gate_proj.weight"] = block.experts.gate_up_proj[e, :i]
        state[f"experts.{e}.up_proj.weight"] = block.experts.gate_up_proj[e, i:]
        state[f"experts.{e}.down_proj.weight"] = block.experts.down_proj[e]
    return state


def _block_and_ours(n_experts, top_k, seed=0):
    config = _config(n_experts, top_k)
    block = modeling_mixtral.MixtralSparseMoeBlock(config).eval()
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():  # the fused experts are created with torch.empty: fill them
        for p in block.parameters():
            p.copy_(torch.randn(p.shape, generator=g) * 0.3)
    ours = MoE(DIM, HIDDEN, n_experts, top_k)
    ours.load_state_dict(moe_state_dict_from_mixtral(block))
    return block, ours


@pytest.mark.moe
@pytest.mark.parametrize("n_experts,top_k", [(4, 2), (8, 2), (4, 1), (6, 3)])
def test_moe_matches_mixtral_sparse_moe_block(n_experts, top_k):
    block, ours = _block_and_ours(n_experts, top_k)
    x = torch.randn(3, 7, DIM)
    with torch.no_grad():
        y, router_logits = ours(x)
        expected = block(x)  # 5.x: the block returns only the hidden states
        hf_logits, hf_weights, hf_experts = block.gate(x)
    assert_close(y, expected, **TOL)
    assert router_logits.shape == (3 * 7, n_experts)
    assert_close(router_logits, hf_logits, **TOL)
    weights, experts = route(router_logits, top_k)
    assert torch.equal(experts, hf_experts)
    assert_close(weights, hf_weights, **TOL)


@pytest.mark.moe
@pytest.mark.load_balancing_loss
def test_moe_and_aux_loss_inside_a_mixtral_model():
    """In a 1-layer MixtralForCausalLM, the recorded router logits are ours, and its aux_loss
    (one layer, no attention mask) is our load_balancing_loss of them."""
    config = _config(8, 2)
    config.output_router_logits = True
    torch.manual_seed(0)
    model = transformers.MixtralForCausalLM(config).eval()
    block = model.model.layers[0].mlp
    seen = {}
    block.register_forward_hook(lambda m, args, out: seen.update(x=args[0], y=out))
    with torch.no_grad():
        out = model(input_ids=torch.randint(0, 50, (2, 9)), output_router_logits=True)
        ours = MoE(DIM, HIDDEN, 8, 2)
        ours.load_state_dict(moe_state_dict_from_mixtral(block))
        y, router_logits = ours(seen["x"])
    assert_close(y, seen["y"], **TOL)
    (hf_logits,) = out.router_logits
    assert hf_logits.shape == (2 * 9, 8)
    assert_close(router_logits, hf_logits, **TOL)
    assert_close(load_balancing_loss(router_logits, 8, 2), out.aux_loss, **TOL)


@pytest.mark.load_balancing_loss
@pytest.mark.parametrize("n_tokens,n_experts,top_k", [(50, 8, 2), (13, 4, 1), (64, 6, 3)])
def test_load_balancing_loss_matches_transformers(n_tokens, n_experts, top_k):
    g = torch.Generator().manual_seed(n_tokens)
    for scale in (0.1, 1.0, 5.0):
        logits = torch.randn(n_tokens, n_experts, generator=g) * scale
        expected = modeling_mixtral.load_balancing_loss_func((logits,), n_experts, top_k)
        assert_close(load_balancing_loss(logits, n_experts, top_k), expected, **TOL)
    uniform = modeling_mixtral.load_balancing_loss_func(
        (torch.zeros(10, n_experts),), n_experts, top_k
    )
    assert uniform.item() == pytest.approx(top_k)


@pytest.mark.load_balancing_loss
def test_transformers_loss_needs_a_tuple_of_layers():
    """Pinned trap: transformers returns 0 for a bare tensor (it expects one per layer)."""
    logits = torch.randn(10, 4)
    assert modeling_mixtral.load_balancing_loss_func(logits, 4, 2) == 0
    assert load_balancing_loss(logits, 4, 2) > 0
