"""Week 8 reference: exact parameter counts and the Chinchilla optimum."""

import pytest
import torch

from solutions import GPTConfig, MiniGPT, chinchilla_loss, compute_optimal, count_parameters
from solutions.model import PRESETS

# NOTES.md: transformers' models instantiated on the meta device
PUBLISHED = {"gpt2": 124_439_808, "gpt2_xl": 1_557_611_200, "llama2_7b": 6_738_415_616,
             "llama2_70b": 68_976_648_192, "mistral_7b": 7_241_732_096,
             "mixtral_8x7b": 46_702_792_704}


@pytest.mark.count_parameters
@pytest.mark.parametrize("name", list(PRESETS))
def test_count_equals_the_built_models_numel(name):
    config = GPTConfig.preset(name)
    with torch.device("meta"):
        model = MiniGPT(config)
    assert count_parameters(config) == sum(p.numel() for p in model.parameters())


@pytest.mark.count_parameters
@pytest.mark.parametrize("name, size", PUBLISHED.items())
def test_published_sizes(name, size):
    assert count_parameters(GPTConfig.preset(name)) == size


@pytest.mark.count_parameters
def test_mixtral_active_parameters():
    assert count_parameters(GPTConfig.preset("mixtral_8x7b"), active=True) == 12_879_925_248
    dense = GPTConfig.preset("llama2_7b")
    assert count_parameters(dense, active=True) == count_parameters(dense)


@pytest.mark.chinchilla_loss
def test_chinchilla_loss_fit():
    assert chinchilla_loss(1e9, 2e10) == pytest.approx(
        1.69 + 406.4 / 1e9**0.34 + 410.7 / 2e10**0.28)
    assert chinchilla_loss(1e12, 1e14) < chinchilla_loss(1e9, 1e11)  # more is better


@pytest.mark.compute_optimal
@pytest.mark.parametrize("C", [1e18, 1e21, 5.76e23, 1e25])
def test_compute_optimal_is_the_minimum_on_the_budget(C):
    N, D = compute_optimal(C)
    assert 6 * N * D == pytest.approx(C)
    best = chinchilla_loss(N, D)
    for factor in (0.5, 0.9, 1.1, 2.0):
        assert chinchilla_loss(N * factor, C / (6 * N * factor)) > best
