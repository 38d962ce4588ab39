"""Week 6 reference: MoE (top-k routing, sparse dispatch) and load_balancing_loss."""

import pytest
import torch
import torch.nn.functional as F
from torch.testing import assert_close

from solutions.feedforward import SwiGLU
from solutions.moe import MoE, dense_moe_forward, load_balancing_loss, route


@pytest.mark.moe
def test_moe_structure_and_shapes():
    moe = MoE(dim=16, hidden_dim=24, n_experts=4, top_k=2)
    assert isinstance(moe.experts, torch.nn.ModuleList) and len(moe.experts) == 4
    assert all(isinstance(e, SwiGLU) for e in moe.experts)
    shapes = {name: tuple(t.shape) for name, t in moe.state_dict().items()}
    assert shapes["gate.weight"] == (4, 16) and moe.gate.bias is None
    assert shapes["experts.3.gate_proj.weight"] == (24, 16)
    assert shapes["experts.3.down_proj.weight"] == (16, 24)
    assert len(shapes) == 1 + 4 * 3
    y, router_logits = moe(torch.randn(3, 5, 16))
    assert y.shape == (3, 5, 16) and router_logits.shape == (15, 4)


@pytest.mark.moe
def test_routing_softmax_topk_renormalise():
    logits = torch.tensor([[2.0, 1.0, 0.0, -1.0], [0.0, 3.0, 0.0, 3.5]])
    weights, experts = route(logits, 2)
    assert experts.tolist() == [[0, 1], [3, 1]]
    p = logits.softmax(-1)
    assert_close(weights[0], p[0, :2] / p[0, :2].sum())
    assert_close(weights.sum(-1), torch.ones(2))
    assert route(logits.to(torch.bfloat16), 2)[0].dtype == torch.float32


@pytest.mark.moe
@pytest.mark.parametrize("n_experts,top_k", [(4, 1), (4, 2), (8, 2), (5, 3), (4, 4)])
def test_sparse_moe_equals_dense_moe(n_experts, top_k):
    torch.manual_seed(0)
    moe = MoE(16, 32, n_experts, top_k).double()
    x = torch.randn(3, 7, 16, dtype=torch.float64)
    y, logits = moe(x)
    y_dense, logits_dense = dense_moe_forward(moe, x)
    assert torch.equal(logits, logits_dense)
    assert_close(y, y_dense, atol=1e-12, rtol=1e-10)


@pytest.mark.moe
def test_moe_equals_hand_written_per_token_loop():
    torch.manual_seed(0)
    moe = MoE(8, 16, 4, 2)
    x = torch.randn(2, 3, 8)
    y, _ = moe(x)
    for n, token in enumerate(x.reshape(-1, 8)):
        p = F.softmax(moe.gate(token).float(), dim=-1)
        top = p.topk(2)
        w = top.values / top.values.sum()
        expected = sum(w[s] * moe.experts[int(e)](token) for s, e in enumerate(top.indices))
        assert_close(y.reshape(-1, 8)[n], expected, atol=1e-6, rtol=1e-5)


@pytest.mark.moe
def test_top1_gives_the_chosen_expert_output_and_all_experts_gives_softmax_mixture():
    torch.manual_seed(0)
    x = torch.randn(1, 6, 8, dtype=torch.float64)
    moe = MoE(8, 16, 3, top_k=1).double()
    y, logits = moe(x)
    for n, e in enumerate(logits.argmax(-1).tolist()):
        assert_close(y[0, n], moe.experts[e](x[0, n]))
    moe.top_k = 3
    y, logits = moe(x)
    outs = torch.stack([expert(x[0]) for expert in moe.experts], dim=1)  # (T, E, dim)
    assert_close(y[0], (logits.softmax(-1)[..., None] * outs).sum(1))


@pytest.mark.moe
def test_each_expert_runs_only_on_its_routed_tokens():
    torch.manual_seed(0)
    moe = MoE(8, 16, n_experts=6, top_k=2)
    rows = {}
    for e, expert in enumerate(moe.experts):
        expert.register_forward_hook(lambda m, inp, out, e=e: rows.__setitem__(e, inp[0].shape[0]))
    x = torch.randn(4, 10, 8)
    _, logits = moe(x)
    chosen = logits.softmax(-1).topk(2).indices
    assert {e: rows.get(e, 0) for e in range(6)} == {e: int((chosen == e).sum()) for e in range(6)}
    assert sum(rows.values()) == 40 * 2


@pytest.mark.moe
def test_moe_keeps_dtype_and_trains_router_and_experts():
    torch.manual_seed(0)
    moe = MoE(8, 16, 4, 2)
    x = torch.randn(2, 5, 8)
    y, logits = moe(x)
    assert y.dtype == x.dtype
    (y.square().sum() + load_balancing_loss(logits, 4, 2)).backward()
    assert moe.gate.weight.grad is not None and moe.gate.weight.grad.abs().sum() > 0
    used = logits.softmax(-1).topk(2).indices.unique().tolist()
    for e in used:
        assert moe.experts[e].down_proj.weight.grad.abs().sum() > 0
    y16, _ = moe.to(torch.bfloat16)(x.to(torch.bfloat16))
    assert y16.dtype == torch.bfloat16


def _balanced_logits(n_experts, top_k, copies=3):
    """Token t strongly prefers experts t, t+1, ..., t+k-1 (mod E): every expert gets picked
    equally often, and the mean router probability is 1/E for every expert."""
    logits = torch.full((n_experts * copies, n_experts), -30.0)
    for t in range(n_experts * copies):
        for s in range(top_k):
            logits[t, (t + s) % n_experts] = 0.0
    return logits


@pytest.mark.load_balancing_loss
@pytest.mark.parametrize("n_experts,top_k", [(8, 2), (4, 1), (6, 3)])
def test_load_balancing_loss_uniform_routing_gives_top_k(n_experts, top_k):
    loss = load_balancing_loss(_balanced_logits(n_experts, top_k), n_experts, top_k)
    assert loss.dtype == torch.float32 and loss.dim() == 0
    assert loss.item() == pytest.approx(top_k, rel=1e-5)
    # equal logits: the ties go to the first k experts, but P_e = 1/E still gives top_k
    flat = load_balancing_loss(torch.zeros(10, n_experts), n_experts, top_k)
    assert flat.item() == pytest.approx(top_k, rel=1e-6)


@pytest.mark.load_balancing_loss
def test_load_balancing_loss_penalises_collapse():
    collapsed = torch.full((12, 8), -30.0)
    collapsed[:, :2] = 0.0  # every token to experts 0 and 1
    assert load_balancing_loss(collapsed, 8, 2).item() == pytest.approx(8.0, rel=1e-5)  # E
    g = torch.Generator().manual_seed(0)
    random = load_balancing_loss(torch.randn(500, 8, generator=g), 8, 2).item()
    assert 2.0 <= random < 8.0


@pytest.mark.load_balancing_loss
def test_load_balancing_loss_formula():
    g = torch.Generator().manual_seed(1)
    logits = torch.randn(40, 5, generator=g, dtype=torch.float64, requires_grad=True)
    probs = logits.softmax(-1)
    chosen = probs.topk(2).indices
    f = torch.stack([(chosen == e).any(-1).double().mean() for e in range(5)])
    expected = 5 * (f * probs.mean(0)).sum()
    loss = load_balancing_loss(logits, 5, 2)
    assert_close(loss.double(), expected, atol=1e-6, rtol=1e-6)
    loss.backward()  # differentiable through the mean probabilities
    assert logits.grad is not None and logits.grad.abs().sum() > 0
