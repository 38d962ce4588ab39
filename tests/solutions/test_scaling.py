"""Week 8 reference: exact parameter counts and the Chinchilla optimum."""

import contextlib
import io
from pathlib import Path

import pytest
import torch

from solutions import GPTConfig, chinchilla_loss, compute_optimal, count_parameters
from solutions.model import PRESETS
from solutions.scaling import parameter_breakdown, training_flops
from tests.meta_models import preset_model

# NOTES.md: transformers' models instantiated on the meta device
PUBLISHED = {"gpt2": 124_439_808, "gpt2_medium": 354_823_168, "gpt2_large": 774_030_080,
             "gpt2_xl": 1_557_611_200, "llama2_7b": 6_738_415_616,
             "llama2_13b": 13_015_864_320, "llama2_70b": 68_976_648_192,
             "mistral_7b": 7_241_732_096, "mixtral_8x7b": 46_702_792_704}


@pytest.mark.count_parameters
@pytest.mark.parametrize("name", list(PRESETS))
def test_count_equals_the_built_models_numel(name):
    model = preset_model(name)  # on the meta device
    assert count_parameters(GPTConfig.preset(name)) == sum(p.numel() for p in model.parameters())


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


@pytest.mark.count_parameters
@pytest.mark.parametrize("name", list(PRESETS))
@pytest.mark.parametrize("active", [False, True])
def test_breakdown_adds_up_to_the_count(name, active):
    config = GPTConfig.preset(name)
    parts = parameter_breakdown(config, active=active)
    assert set(parts) == {"embeddings", "attention", "mlp", "norms", "head"}
    assert sum(parts.values()) == count_parameters(config, active=active)
    model = preset_model(name)
    # the MLP share is what the model's mlp modules hold (all experts when not active)
    if not active:
        mlp = sum(p.numel() for layer in model.layers for p in layer.mlp.parameters())
        assert parts["mlp"] == mlp
        attention = sum(p.numel() for layer in model.layers for p in layer.self_attn.parameters())
        assert parts["attention"] == attention


@pytest.mark.count_parameters
def test_training_flops():
    assert training_flops(1e9, 2e10) == pytest.approx(6 * 1e9 * 2e10)
    # the attention term is 12 * layers * dim * context per token, on top of 6N
    extra = training_flops(1e9, 1e3, n_layers=2, dim=8, context=16) - training_flops(1e9, 1e3)
    assert extra == pytest.approx(12 * 2 * 8 * 16 * 1e3)


@pytest.mark.chinchilla_loss
def test_chinchilla_loss_other_fit_and_tensors():
    assert chinchilla_loss(1e9, 1e10, E=0.0, A=1.0, B=0.0, alpha=1.0) == pytest.approx(1e-9)
    N = torch.tensor([1e8, 1e9], dtype=torch.float64)
    D = torch.tensor([1e10, 1e11], dtype=torch.float64)
    expected = torch.tensor([chinchilla_loss(1e8, 1e10), chinchilla_loss(1e9, 1e11)],
                            dtype=torch.float64)
    torch.testing.assert_close(chinchilla_loss(N, D), expected)


@pytest.mark.compute_optimal
def test_compute_optimal_with_equal_exponents_keeps_a_fixed_ratio():
    # with alpha = beta the optimum has a fixed D/N = (B / A)^(1 / beta): a rule of thumb
    ratios = [D / N for N, D in (compute_optimal(C, A=1.0, B=20.0**0.5, alpha=0.5, beta=0.5)
                                 for C in (1e19, 1e23))]
    assert ratios == pytest.approx([20.0, 20.0])
    # the published fit's ratio grows with the budget (alpha > beta)
    small, large = (D / N for N, D in (compute_optimal(C) for C in (1e19, 1e23)))
    assert large > small


@pytest.mark.count_parameters
def test_the_notebooks_presets_are_the_reference_presets():
    """Week 8's notebook writes the published configurations out by hand: they must not drift
    from solutions.model.PRESETS."""
    text = (Path(__file__).parents[2] / "course" / "notebooks" / "week8_scale.py").read_text()
    cell = text.split('# %% role="locked" code="solutions.model:GPTConfig"')[1].split("# %%")[0]
    namespace = {"GPTConfig": GPTConfig}
    with contextlib.redirect_stdout(io.StringIO()):
        exec(cell, namespace)
    written = namespace["PRESETS"]
    assert len(written) >= 6
    for name, fields in written.items():
        assert GPTConfig(**fields) == GPTConfig.preset(name), name
