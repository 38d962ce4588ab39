"""Week 10 reference: sequence_logprobs, sft_loss, dpo_loss, LoRALinear and add_lora."""

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.testing import assert_close

from solutions.finetune import LoRALinear, add_lora, dpo_loss, sequence_logprobs, sft_loss
from solutions.model import GPTConfig, MiniGPT


def batch(B=3, T=8, V=11, seed=0):
    gen = torch.Generator().manual_seed(seed)
    logits = torch.randn(B, T, V, generator=gen, dtype=torch.float64) * 2
    labels = torch.randint(V, (B, T), generator=gen)
    mask = torch.zeros(B, T, dtype=torch.bool)
    for b, (start, n) in enumerate([(2, 3), (1, 6), (4, 1)][:B]):
        mask[b, start:start + n] = True
    return logits, labels, mask


# ---------------------------------------------------------------- the two SFT quantities


@pytest.mark.sequence_logprobs
def test_sequence_logprobs_is_a_sum_of_token_logprobs_by_hand():
    logits, labels, mask = batch()
    got = sequence_logprobs(logits, labels, mask)
    for b in range(3):
        want = sum(math.log(logits[b, t].softmax(-1)[labels[b, t]].item())
                   for t in range(8) if mask[b, t])
        assert got[b].item() == pytest.approx(want, rel=1e-12)


@pytest.mark.sequence_logprobs
def test_sequence_logprobs_ignores_what_the_mask_hides_and_empty_rows_score_zero():
    logits, labels, mask = batch()
    mask[2] = False
    changed_logits, changed_labels = logits.clone(), labels.clone()
    changed_logits[~mask] = 100 * torch.randn(int((~mask).sum()), 11, dtype=torch.float64)
    changed_labels[~mask] = 0
    got = sequence_logprobs(changed_logits, changed_labels, mask)
    assert_close(got, sequence_logprobs(logits, labels, mask))
    assert got[2].item() == 0.0


@pytest.mark.sequence_logprobs
def test_sequence_logprobs_upcasts_half_precision_and_is_stable():
    logits, labels, mask = batch()
    assert sequence_logprobs(logits.bfloat16(), labels, mask).dtype == torch.float32
    assert sequence_logprobs(logits.float(), labels, mask).dtype == torch.float32
    assert torch.isfinite(sequence_logprobs(logits * 500, labels, mask)).all()


@pytest.mark.sft_loss
def test_sft_loss_equals_cross_entropy_with_the_prompt_ignored():
    logits, labels, mask = batch()
    want = F.cross_entropy(logits.flatten(0, 1), labels.masked_fill(~mask, -100).flatten())
    assert_close(sft_loss(logits, labels, mask), want)
    # the same quantity: minus the summed response log-probs over the number of tokens
    assert_close(sft_loss(logits, labels, mask),
                 -sequence_logprobs(logits, labels, mask).sum() / mask.sum())


@pytest.mark.sft_loss
def test_sft_loss_weighs_tokens_not_sequences():
    logits, labels, mask = batch()
    per_sequence = (-sequence_logprobs(logits, labels, mask) / mask.sum(-1)).mean()
    assert not torch.isclose(sft_loss(logits, labels, mask), per_sequence)
    # duplicating a row changes the per-token mean only through that row's tokens
    doubled = sft_loss(torch.cat([logits, logits[:1]]), torch.cat([labels, labels[:1]]),
                       torch.cat([mask, mask[:1]]))
    nll = -sequence_logprobs(logits, labels, mask)
    assert_close(doubled, (nll.sum() + nll[0]) / (mask.sum() + mask[0].sum()))


@pytest.mark.sft_loss
def test_sft_loss_gradient_is_zero_on_masked_positions():
    logits, labels, mask = batch()
    logits.requires_grad_(True)
    sft_loss(logits, labels, mask).backward()
    assert (logits.grad[~mask] == 0).all() and (logits.grad[mask] != 0).any(-1).all()


# ---------------------------------------------------------------- DPO


def logps(B=5, seed=1):
    gen = torch.Generator().manual_seed(seed)
    return [-(5 + 30 * torch.rand(B, generator=gen, dtype=torch.float64)) for _ in range(4)]


@pytest.mark.dpo_loss
@pytest.mark.parametrize("beta, ls", [(0.1, 0.0), (0.5, 0.2), (3.0, 0.4)])
def test_dpo_at_the_reference_is_log_two_with_zero_rewards(beta, ls):
    pc, pr, _, _ = logps()
    losses, chosen, rejected = dpo_loss(pc, pr, pc.clone(), pr.clone(), beta, ls)
    assert_close(losses, torch.full_like(losses, math.log(2)))
    assert not chosen.any() and not rejected.any()


@pytest.mark.dpo_loss
def test_dpo_hand_computed_values():
    one = lambda v: torch.tensor([v], dtype=torch.float64)  # noqa: E731
    # h = (-1 - -3) - (-2 - -2) = 2; beta * h = 1
    losses, chosen, rejected = dpo_loss(one(-1.0), one(-3.0), one(-2.0), one(-2.0), 0.5)
    assert losses.item() == pytest.approx(math.log(1 + math.exp(-1)))
    assert chosen.item() == pytest.approx(0.5) and rejected.item() == pytest.approx(-0.5)
    smoothed, _, _ = dpo_loss(one(-1.0), one(-3.0), one(-2.0), one(-2.0), 0.5, 0.25)
    assert smoothed.item() == pytest.approx(0.75 * math.log(1 + math.exp(-1))
                                            + 0.25 * math.log(1 + math.exp(1)))


@pytest.mark.dpo_loss
def test_dpo_defaults_are_beta_0_1_and_no_smoothing():
    args = logps()
    for got, want in zip(dpo_loss(*args), dpo_loss(*args, beta=0.1, label_smoothing=0.0),
                         strict=True):
        assert torch.equal(got, want)


@pytest.mark.dpo_loss
def test_dpo_swapping_chosen_and_rejected_swaps_the_smoothing():
    pc, pr, rc, rr = logps()
    assert_close(dpo_loss(pc, pr, rc, rr, 0.3, 0.2)[0], dpo_loss(pr, pc, rr, rc, 0.3, 0.8)[0])


@pytest.mark.dpo_loss
def test_dpo_gradient_raises_chosen_and_lowers_rejected_but_never_the_reference():
    pc, pr, rc, rr = (t.requires_grad_(True) for t in logps())
    losses, chosen, rejected = dpo_loss(pc, pr, rc, rr, 0.5)
    losses.sum().backward()
    assert (pc.grad < 0).all() and (pr.grad > 0).all()  # descent raises pc, lowers pr
    assert not chosen.requires_grad and not rejected.requires_grad  # detached, as TRL


@pytest.mark.dpo_loss
def test_dpo_stays_finite_at_extreme_log_ratios():
    pc, pr, rc, rr = (t.float() for t in logps())
    losses, _, _ = dpo_loss(pc * 40, pr, rc, rr * 40, beta=1.0)
    assert torch.isfinite(losses).all()


# ---------------------------------------------------------------- LoRA


@pytest.mark.lora_linear
@pytest.mark.parametrize("bias", [True, False])
def test_lora_equals_its_base_at_step_zero_and_only_adapters_train(bias):
    base = nn.Linear(24, 10, bias=bias)
    x = torch.randn(4, 3, 24)
    want = base(x).detach()
    layer = LoRALinear(base, r=4, alpha=8)
    assert torch.equal(layer(x).detach(), want)
    trainable = {n for n, p in layer.named_parameters() if p.requires_grad}
    assert trainable == {"lora_A.weight", "lora_B.weight"} and layer.scaling == 2.0
    layer(x).square().sum().backward()
    assert base.weight.grad is None and layer.lora_B.weight.grad.abs().sum() > 0
    assert not layer.lora_A.weight.grad.any(), "with B = 0, A gets no gradient at step 0"


@pytest.mark.lora_linear
def test_lora_a_starts_as_nn_linear_does():
    torch.manual_seed(0)
    layer = LoRALinear(nn.Linear(256, 8), r=32, alpha=32)
    A = layer.lora_A.weight
    bound = 1 / math.sqrt(256)
    assert A.abs().max() <= bound and A.abs().max() > 0.95 * bound
    assert A.std().item() == pytest.approx(bound / math.sqrt(3), rel=0.05)
    assert not layer.lora_B.weight.any()


@pytest.mark.lora_linear
@pytest.mark.parametrize("bias", [True, False])
def test_merged_equals_unmerged(bias):
    layer = LoRALinear(nn.Linear(12, 20, bias=bias).double(), r=3, alpha=7)
    with torch.no_grad():
        layer.lora_B.weight.normal_()
    x = torch.randn(5, 12, dtype=torch.float64)
    before = layer(x)
    merged = layer.merge()
    assert type(merged) is nn.Linear and (merged.bias is None) == (not bias)
    assert_close(merged(x), before, rtol=1e-12, atol=1e-12)
    assert_close(layer(x), before, rtol=0, atol=0)  # merge() leaves the LoRA layer as it was
    assert_close(merged.weight, layer.base.weight + 7 / 3 * layer.lora_B.weight
                 @ layer.lora_A.weight)


@pytest.mark.lora_linear
def test_lora_dropout_acts_on_the_adapter_input_in_train_mode_only():
    torch.manual_seed(0)
    layer = LoRALinear(nn.Linear(16, 8), r=2, alpha=2, dropout=0.5)
    with torch.no_grad():
        layer.lora_B.weight.normal_()
    x = torch.randn(50, 16)
    eval_out = layer.eval()(x)
    assert torch.equal(layer.eval()(x), eval_out)
    train_out = layer.train()(x)
    assert not torch.allclose(train_out, eval_out)
    with torch.no_grad():
        layer.lora_B.weight.zero_()
    assert torch.equal(layer.train()(x), layer.base(x)), "the base path is never dropped"


# ---------------------------------------------------------------- add_lora


@pytest.mark.add_lora
@pytest.mark.parametrize("preset", ["tiny", "tiny_gpt2", "tiny_mixtral"])
def test_add_lora_on_minigpt(preset):
    torch.manual_seed(0)
    cfg = GPTConfig.preset(preset)
    model = MiniGPT(cfg).eval()
    idx = torch.randint(0, cfg.vocab_size, (2, 9))
    before = model(idx)[0].detach()
    count = add_lora(model, r=4, alpha=8)
    kv_dim = cfg.n_kv_heads * cfg.dim // cfg.n_heads
    assert count == cfg.n_layers * 4 * ((cfg.dim + cfg.dim) + (cfg.dim + kv_dim))
    assert count == sum(p.numel() for p in model.parameters() if p.requires_grad)
    wrapped = {n for n, m in model.named_modules() if isinstance(m, LoRALinear)}
    assert wrapped == {f"layers.{i}.self_attn.{p}" for i in range(cfg.n_layers)
                       for p in ("q_proj", "v_proj")}
    assert all(".lora_" in n for n, p in model.named_parameters() if p.requires_grad)
    assert torch.equal(model(idx)[0].detach(), before)


@pytest.mark.add_lora
def test_add_lora_targets_and_the_7b_count():
    """The LoRA paper's setting on Llama 2 7B (r = 8 on q and v): 4,194,304 trainable."""
    with torch.device("meta"):
        model = MiniGPT(GPTConfig.preset("llama2_7b"))
    assert add_lora(model, r=8, alpha=16) == 32 * 2 * 8 * (4096 + 4096) == 4_194_304
    cfg = GPTConfig.preset("tiny")
    model = MiniGPT(cfg)
    everything = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj",
                  "lm_head", "embed_tokens", "norm")
    count = add_lora(model, 2, 2, everything)
    linears = [m.base for m in model.modules() if isinstance(m, LoRALinear)]
    assert len(linears) == 7 * cfg.n_layers + 1  # embed_tokens and norm are not nn.Linear
    assert count == sum(2 * (m.in_features + m.out_features) for m in linears)
