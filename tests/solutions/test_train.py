"""Week 7 trainer and data: the learning-rate schedule, gradient accumulation, learning,
exact resume from a checkpoint, BPE data, the command line, the MoE auxiliary loss, and
(with CUDA) every speed switch at once."""

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from torch.testing import assert_close

from solutions.data import CharTokenizer, get_batch, load_dataset, load_text
from solutions.model import GPTConfig, MiniGPT
from solutions.train import TrainConfig, Trainer, lr_at

pytestmark = pytest.mark.minigpt

ROOT = Path(__file__).resolve().parents[2]
TEXT = load_text()[:50_000]  # a slice keeps BPE training and char encoding fast


@pytest.fixture(scope="module")
def chars():
    return load_dataset("char", TEXT)


def _trainer(data, preset="tiny", seed=0, **overrides) -> Trainer:
    torch.manual_seed(seed)
    model = MiniGPT(GPTConfig.preset(preset, vocab_size=data.vocab_size))
    cfg = dict(batch_size=8, block_size=32, max_iters=50, warmup_iters=5, lr=3e-3,
               eval_interval=25, eval_iters=2, device="cpu")
    return Trainer(model, data, TrainConfig(**{**cfg, **overrides}))


def test_lr_schedule_shape():
    cfg = TrainConfig(lr=1e-3, min_lr=1e-4, warmup_iters=10, max_iters=100)
    lrs = [lr_at(s, cfg) for s in range(120)]
    warm = lrs[:10]
    steps = [b - a for a, b in zip(warm, warm[1:], strict=False)]
    assert all(math.isclose(d, steps[0]) for d in steps) and steps[0] > 0  # linear warm-up
    assert lrs[0] > 0 and math.isclose(max(lrs), 1e-3) and math.isclose(lrs[10], 1e-3)
    decay = lrs[10:101]
    assert all(b <= a for a, b in zip(decay, decay[1:], strict=False))  # then only down
    assert math.isclose(lrs[55], (1e-3 + 1e-4) / 2)  # cosine: halfway in value at halfway
    assert math.isclose(lrs[100], 1e-4) and all(math.isclose(x, 1e-4) for x in lrs[100:])
    assert lr_at(50, TrainConfig(lr=1e-3, min_lr=0, warmup_iters=0, max_iters=100,
                                 lr_decay_iters=50)) == 0  # lr_decay_iters ends the decay


def test_char_tokenizer_and_batches(chars):
    tok = CharTokenizer.from_text(TEXT)
    assert tok.vocab_size == len(set(TEXT)) and tok.chars == sorted(tok.chars)
    assert tok.decode(tok.encode(TEXT[:500])) == TEXT[:500]
    assert tok.decode(torch.tensor(tok.encode("Romeo"))) == "Romeo"
    assert len(chars.train) + len(chars.val) == len(TEXT)
    assert tok.decode(chars.val[:50]) == TEXT[int(len(TEXT) * 0.9):][:50]  # val is the end
    g1, g2 = torch.Generator().manual_seed(3), torch.Generator().manual_seed(3)
    x, y = get_batch(chars.train, 4, 16, g1)
    assert x.shape == y.shape == (4, 16) and x.dtype == torch.long
    assert torch.equal(x[:, 1:], y[:, :-1])  # targets are the inputs shifted by one
    assert torch.equal(x, get_batch(chars.train, 4, 16, g2)[0])  # the generator decides


def test_bpe_dataset_round_trip():
    data = load_dataset("bpe", TEXT[:20_000], vocab_size=300)
    assert data.vocab_size == 300 and int(data.train.max()) < 300
    assert len(data.train) < 0.9 * 20_000  # merges compress the text
    assert data.tokenizer.decode(data.train.tolist()) == TEXT[:18_000]
    assert data.tokenizer.decode(data.val.tolist()) == TEXT[18_000:20_000]


def test_grad_accumulation_equals_one_big_batch(chars):
    # two micro-batches of 8 draw the same rows as one batch of 16 from the same generator
    def one_step(batch_size, grad_accum):
        trainer = _trainer(chars, batch_size=batch_size, grad_accum=grad_accum, warmup_iters=0,
                           lr=10.0, grad_clip=0)
        # plain SGD: its update is linear in the gradient (AdamW's first step is only its sign,
        # which would hide a missing division by grad_accum)
        trainer.optimizer = torch.optim.SGD(trainer.raw_model.parameters(), lr=10.0)
        return trainer.train_step(), list(trainer.raw_model.parameters())

    loss_small, small = one_step(8, 2)
    loss_big, big = one_step(16, 1)
    assert loss_small == pytest.approx(loss_big, abs=1e-6)
    for p, q in zip(small, big, strict=True):
        assert_close(p, q, atol=1e-6, rtol=0)
    _, alone = one_step(8, 1)  # while one micro-batch alone gives other weights
    assert not torch.allclose(alone[-1], big[-1], atol=1e-4, rtol=0)


def test_loss_decreases_and_history(chars):
    trainer = _trainer(chars)
    seen = []
    history = trainer.fit(callback=lambda t, rec: seen.append(rec["step"]), progress=False)
    assert [r["step"] for r in history] == seen == [0, 25, 50]
    assert trainer.step == 50 and len(trainer.losses) == 50
    assert history[-1]["val"] < history[0]["val"] - 0.5  # from ln(65) = 4.17 to under 3.7
    assert sum(trainer.losses[-10:]) < sum(trainer.losses[:10]) - 5
    assert set(history[-1]) == {"step", "train", "val", "lr", "tokens_per_s"}
    assert history[-1]["tokens_per_s"] > 0 and trainer.raw_model.training
    text = trainer.sample("ROMEO:", max_new_tokens=20)
    assert text.startswith("ROMEO:") and len(text) == 26


def test_evaluate_is_repeatable_and_changes_nothing(chars):
    trainer = _trainer(chars)
    before = [p.clone() for p in trainer.raw_model.parameters()]
    state = trainer.generator.get_state()
    assert trainer.evaluate() == trainer.evaluate()  # the same batches every time
    assert torch.equal(state, trainer.generator.get_state())  # training batches untouched
    assert all(torch.equal(a, b) for a, b in zip(before, trainer.raw_model.parameters(),
                                                       strict=True))


def test_resume_is_exact(chars, tmp_path):
    straight = _trainer(chars)
    expected = [straight.train_step() for _ in range(12)]

    first = _trainer(chars)
    losses = [first.train_step() for _ in range(6)]
    first.save(tmp_path / "ckpt.pt")
    torch.manual_seed(123)  # disturb the global RNG: load must restore it
    second = _trainer(chars, seed=99)  # other initial weights, overwritten by load
    second.load(tmp_path / "ckpt.pt")
    assert second.step == 6 and second.losses == losses
    losses += [second.train_step() for _ in range(6)]
    assert losses == expected  # bitwise on the CPU
    for p, q in zip(straight.raw_model.parameters(), second.raw_model.parameters(), strict=True):
        assert torch.equal(p, q)


def test_weight_decay_only_on_matrices(chars):
    trainer = _trainer(chars, preset="tiny_gpt2")
    decayed, plain = trainer.optimizer.param_groups
    assert decayed["weight_decay"] == 0.1 and plain["weight_decay"] == 0
    assert all(p.dim() >= 2 for p in decayed["params"]) and plain["params"]
    assert all(p.dim() == 1 for p in plain["params"])  # norm weights and biases
    n_params = sum(1 for _ in trainer.raw_model.parameters())  # the tied head counted once
    assert len(decayed["params"]) + len(plain["params"]) == n_params


def test_moe_aux_loss_is_added(chars):
    with_aux = _trainer(chars, preset="tiny_mixtral", aux_loss_coef=0.5)
    without = _trainer(chars, preset="tiny_mixtral", aux_loss_coef=0.0)
    a, b = with_aux.train_step(), without.train_step()
    # near-uniform routing at init: the balancing loss is about top_k = 2, times 0.5
    assert a - b == pytest.approx(0.5 * 2, abs=0.1)
    dense = _trainer(chars, aux_loss_coef=0.5)  # no router: nothing to add
    assert dense.train_step() == pytest.approx(_trainer(chars, aux_loss_coef=0).train_step())


def test_cli_trains_and_resumes(tmp_path):
    out = tmp_path / "run"
    common = [sys.executable, "-m", "solutions.train", "--preset", "tiny", "--device", "cpu",
              "--batch-size", "4", "--block-size", "16", "--eval-interval", "3",
              "--eval-iters", "1", "--text-chars", "20000", "--out-dir", str(out),
              "--no-progress", "--set", "dim=32", "n_layers=1"]
    run = subprocess.run(common + ["--max-iters", "3"], cwd=ROOT, capture_output=True,
                         text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    assert "step 3:" in run.stdout and (out / "ckpt.pt").exists()
    ckpt = torch.load(out / "ckpt.pt")
    assert ckpt["step"] == 3 and ckpt["model_config"]["dim"] == 32
    run = subprocess.run(common + ["--max-iters", "5", "--resume"], cwd=ROOT,
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    record = json.loads((out / "losses.json").read_text())
    assert len(record["losses"]) == 5 and [h["step"] for h in record["history"]] == [0, 3, 5]


def test_fused_adamw_on_cpu_takes_the_same_steps(chars):
    """The CPU gets PyTorch's fused AdamW too (the speed page measures it); switching it off
    takes the per-tensor update, and the two train alike up to float32 rounding."""
    fused, plain = (_trainer(chars, fused_adamw=on, max_iters=5) for on in (True, False))
    assert fused.optimizer.defaults["fused"] and not plain.optimizer.defaults.get("fused")
    for _ in range(5):
        fused.train_step(), plain.train_step()
    assert_close(torch.tensor(fused.losses), torch.tensor(plain.losses), atol=1e-5, rtol=1e-5)
    for a, b in zip(fused.raw_model.parameters(), plain.raw_model.parameters(), strict=True):
        assert_close(a, b, atol=1e-5, rtol=1e-4)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_all_cuda_switches(chars):
    trainer = _trainer(chars, device="cuda", dtype="bfloat16", compile=True, tf32=True,
                       fused_adamw=True, fast=True, max_iters=20)
    history = trainer.fit(progress=False)
    assert trainer.raw_model.lm_head.weight.is_cuda
    assert trainer.optimizer.defaults["fused"]
    assert all(m.fast for m in trainer.raw_model.modules() if hasattr(m, "fast"))
    assert history[-1]["val"] < history[0]["val"]
