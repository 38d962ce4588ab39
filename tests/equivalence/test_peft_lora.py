"""Week 10 against PEFT: LoRALinear and add_lora vs ``get_peft_model`` with a ``LoraConfig``.

PEFT is an optional extra (``pip install -e '.[peft]'``), kept out of ``test`` because the
graders name it as forbidden and a grading worker would then import it for every LoRA job.
Without it these tests skip.
"""

import copy

import pytest
import torch
from torch import nn
from torch.testing import assert_close

from solutions.finetune import LoRALinear, add_lora

peft = pytest.importorskip("peft")

pytestmark = [pytest.mark.equivalence, pytest.mark.lora_linear, pytest.mark.add_lora]
R, ALPHA = 4, 8


class Attention(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.q_proj = nn.Linear(16, 16)
        self.k_proj = nn.Linear(16, 8, bias=False)
        self.v_proj = nn.Linear(16, 8, bias=False)
        self.o_proj = nn.Linear(16, 16, bias=False)

    def forward(self, x):
        kv = torch.cat([self.k_proj(x), self.v_proj(x)], dim=-1)
        return x + self.o_proj(self.q_proj(x) * kv.tanh())


class Toy(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.embed_tokens = nn.Embedding(11, 16)
        self.layers = nn.ModuleList([Attention(), Attention()])
        self.lm_head = nn.Linear(16, 11, bias=False)

    def forward(self, idx):
        x = self.embed_tokens(idx)
        for layer in self.layers:
            x = layer(x)
        return self.lm_head(x)


def pair(targets=("q_proj", "v_proj")):
    """The same model twice: ours with add_lora, PEFT's with get_peft_model, same seed."""
    torch.manual_seed(0)
    ours = Toy().double()
    theirs = copy.deepcopy(ours)
    config = peft.LoraConfig(r=R, lora_alpha=ALPHA, target_modules=list(targets),
                             lora_dropout=0.0)
    torch.manual_seed(1)
    count = add_lora(ours, R, ALPHA, targets)
    torch.manual_seed(1)
    theirs = peft.get_peft_model(theirs, config)
    return ours, theirs, count


def peft_layer(model, name: str):
    return model.base_model.model.get_submodule(name)


WRAPPED = ["layers.0.q_proj", "layers.0.v_proj", "layers.1.q_proj", "layers.1.v_proj"]


@pytest.mark.parametrize("targets", [("q_proj", "v_proj"), ("q_proj", "k_proj", "o_proj")])
def test_trainable_count_matches_peft(targets):
    ours, theirs, count = pair(targets)
    trainable, _ = theirs.get_nb_trainable_parameters()
    assert count == trainable == sum(p.numel() for p in ours.parameters() if p.requires_grad)


def test_initialisation_matches_peft_draw_for_draw():
    """Same seed, same draws: lora_A equals PEFT's (Kaiming-uniform, a=sqrt(5)), lora_B is 0."""
    ours, theirs, _ = pair()
    for name in WRAPPED:
        mine, ref = ours.get_submodule(name), peft_layer(theirs, name)
        assert isinstance(mine, LoRALinear)
        assert torch.equal(mine.lora_A.weight, ref.lora_A["default"].weight)
        assert not mine.lora_B.weight.any() and not ref.lora_B["default"].weight.any()
        assert mine.scaling == ref.scaling["default"] == ALPHA / R


def test_forward_and_merge_match_peft_with_trained_adapters():
    ours, theirs, _ = pair()
    gen = torch.Generator().manual_seed(2)
    with torch.no_grad():
        for name in WRAPPED:
            mine, ref = ours.get_submodule(name), peft_layer(theirs, name)
            for ours_p, theirs_p in ((mine.lora_A.weight, ref.lora_A["default"].weight),
                                     (mine.lora_B.weight, ref.lora_B["default"].weight)):
                ours_p.copy_(torch.randn(ours_p.shape, generator=gen, dtype=torch.float64))
                theirs_p.copy_(ours_p)
    idx = torch.randint(0, 11, (2, 7), generator=gen)
    assert_close(ours(idx), theirs(idx), rtol=1e-12, atol=1e-12)
    merged = theirs.merge_and_unload()
    for name in WRAPPED:
        mine = ours.get_submodule(name).merge()
        assert_close(mine.weight, merged.get_submodule(name).weight, rtol=1e-12, atol=1e-12)
