# %% [markdown]
# # Week 3: RMSNorm and SwiGLU
#
# GPT-2 normalizes with LayerNorm and uses a GELU feed-forward block. LLaMA, Mistral and
# Mixtral replaced both: **RMSNorm** keeps only the rescaling half of LayerNorm, and
# **SwiGLU** gates the feed-forward block with a second projection. In this notebook you
# build both, check them, and then *measure* whether RMSNorm is really faster than LayerNorm.
#
# Read the [week 3 lesson](../../../site/weeks/week3/lesson.md) first (it is also on the
# course site, Week 3 → Lesson). The exact conventions the graders enforce are listed in each
# exercise; they follow the Hugging Face `transformers` Llama implementation, so your modules
# can later load real Llama weights by name.
#
# **How this notebook works.** Write your code where it says `# YOUR CODE HERE` (delete the
# `raise NotImplementedError()`), then run the check cell below it. The visible checks catch
# the common mistakes; hidden tests with other shapes, dtypes and gradients grade the
# submission. You can run the same grader yourself: save the notebook and run its last cell,
# **Grade this notebook**; or from a terminal:
#
# ```bash
# .venv/bin/autograder grade course/release/week3/rmsnorm_swiglu.ipynb   # from the course folder
# autograder grade rmsnorm_swiglu.ipynb   # from this folder, after `source .venv/bin/activate`
# ```

# %% role="locked"
import time

import matplotlib.pyplot as plt
import torch
import torch.nn.functional as F
from torch import Tensor, nn

torch.manual_seed(0)
print(f"torch {torch.__version__}")

# %% [markdown]
# ## Exercise 1: RMSNorm
#
# For a vector $x \in \mathbb{R}^d$ (the last dimension of the input),
#
# $$\mathrm{RMSNorm}(x) = \frac{x}{\sqrt{\frac{1}{d}\sum_{i=1}^{d} x_i^2 + \epsilon}} \odot w$$
#
# with a learned weight $w$ that starts as ones. Unlike LayerNorm there is no mean
# subtraction and no bias.
#
# The conventions (as in `transformers`' `LlamaRMSNorm`):
#
# - `RMSNorm(dim, eps=1e-6)` has one parameter, `weight`, of shape `(dim,)`, initialised to ones;
# - the input can have any number of leading dimensions: `(..., dim)`;
# - compute the normalization in **float32** (`x.float()`), cast the result back to the
#   input's dtype, and only then multiply by `weight`. In float16, squaring a value above 256
#   overflows: computing in float32 avoids it;
# - `eps` goes **inside** the square root.
#
# Hint: `torch.rsqrt` computes $1/\sqrt{\cdot}$; `mean(dim=-1, keepdim=True)` keeps the shape
# broadcastable.
#
# **Not allowed:** `F.rms_norm`, `torch.rms_norm`, `nn.RMSNorm` (under any name, also
# `torch.ops.aten.rms_norm`) and the `...RMSNorm` classes of `transformers`; the demo below
# times `F.rms_norm` in a cell the grader does not run. The default `eps=1e-6` is graded, on
# inputs small enough for it to matter.

# %% role="answer" exercise="rmsnorm"

# %% [markdown]
# Run the checks. A failed check tells you what to look at.

# %% role="test" exercise="rmsnorm"
norm = RMSNorm(8)
params = dict(norm.named_parameters())
assert set(params) == {"weight"}, f"RMSNorm needs exactly one parameter, `weight`; got {set(params)}"
assert torch.equal(params["weight"].detach(), torch.ones(8)), "`weight` should start as ones"

x = torch.randn(2, 3, 8)
y = norm(x)
assert y.shape == x.shape, f"output shape {tuple(y.shape)} should equal input shape {tuple(x.shape)}"
rms = y.pow(2).mean(-1).sqrt()
assert torch.allclose(rms, torch.ones_like(rms), atol=1e-4), (
    "with weight = 1 every output vector should have RMS 1; did you divide by the RMS?")
ratio = y / x
assert torch.allclose(ratio, ratio[..., :1].expand_as(ratio), rtol=1e-4), (
    "RMSNorm only rescales each vector, so y / x is the same along the last dimension; "
    "did you subtract the mean (that is LayerNorm)?")

# a hand-computed example: x = (3, 4) has mean square 12.5
small = RMSNorm(2, eps=0.0)(torch.tensor([[3.0, 4.0]]))
assert torch.allclose(small, torch.tensor([[3.0, 4.0]]) / 12.5**0.5), f"got {small}"
big_eps = RMSNorm(2, eps=12.5)(torch.tensor([[3.0, 4.0]]))
assert torch.allclose(big_eps, torch.tensor([[3.0, 4.0]]) / 25**0.5), (
    "eps belongs inside the square root, and the eps argument must be used")

half = RMSNorm(8).to(torch.float16)(torch.full((1, 8), 300.0, dtype=torch.float16))
assert half.dtype == torch.float16, "the output must keep the input's dtype"
assert torch.isfinite(half).all(), "float16 overflowed: compute the mean of squares in float32"
print("RMSNorm: visible checks passed")

# %% [markdown]
# ## Exercise 2: SwiGLU
#
# The feed-forward block of LLaMA-style models has three projections, none with a bias:
#
# $$\mathrm{SwiGLU}(x) = W_\text{down}\,\big(\mathrm{SiLU}(W_\text{gate}\,x) \odot W_\text{up}\,x\big),
# \qquad \mathrm{SiLU}(z) = z\,\sigma(z)$$
#
# - `SwiGLU(dim, hidden_dim)` with submodules `gate_proj` and `up_proj`
#   (`nn.Linear(dim, hidden_dim, bias=False)`) and `down_proj`
#   (`nn.Linear(hidden_dim, dim, bias=False)`);
# - input `(..., dim)`, output `(..., dim)`.
#
# `F.silu` is allowed (it is just $z\,\sigma(z)$); the ready-made blocks of `transformers`
# (`LlamaMLP` and the other `...MLP` classes) are not.

# %% role="answer" exercise="swiglu"

# %% role="test" exercise="swiglu"
mlp = SwiGLU(16, 40)
shapes = {name: tuple(p.shape) for name, p in mlp.named_parameters()}
expected = {"gate_proj.weight": (40, 16), "up_proj.weight": (40, 16), "down_proj.weight": (16, 40)}
assert shapes == expected, f"parameters should be {expected} (no biases); got {shapes}"

x = torch.randn(2, 5, 16)
y = mlp(x)
assert y.shape == x.shape, f"output shape {tuple(y.shape)} should equal input shape {tuple(x.shape)}"
with torch.no_grad():
    by_hand = mlp.down_proj(F.silu(mlp.gate_proj(x)) * mlp.up_proj(x))
assert torch.allclose(y, by_hand, atol=1e-6), (
    "output differs from down_proj(silu(gate_proj(x)) * up_proj(x)); check which projection "
    "goes through SiLU and that it is SiLU, not GELU or a plain sigmoid")
y.sum().backward()
assert all(p.grad is not None for p in mlp.parameters()), "every projection should get a gradient"
print("SwiGLU: visible checks passed")

# %% [markdown]
# ## The activations side by side
#
# SwiGLU's gate uses SiLU. The plot compares it with ReLU and GELU: SiLU and GELU are smooth
# and let a little negative signal through, where ReLU cuts it to zero.

# %% role="locked"
z = torch.linspace(-4, 4, 200)
fig, ax = plt.subplots(figsize=(6, 3.5))
for name, fn in [("ReLU", F.relu), ("GELU", F.gelu), ("SiLU", F.silu)]:
    ax.plot(z, fn(z), label=name)
ax.axhline(0, color="grey", lw=0.5)
ax.set_xlabel("z")
ax.set_ylabel("activation(z)")
ax.legend()
ax.set_title("ReLU, GELU and SiLU")
plt.show()

# %% [markdown]
# ## Measured: is RMSNorm faster than LayerNorm?
#
# The usual claim is that RMSNorm is cheaper because it skips the mean and the bias. Here we
# measure instead of trusting it, on this machine, comparing like with like:
#
# - **written out**: your `RMSNorm` against a LayerNorm written with the same plain tensor
#   operations, both with a learned weight;
# - **built in**: PyTorch's fused `F.layer_norm` against `F.rms_norm`.
#
# Timings depend on the hardware and the PyTorch build; the point is the method. Forward
# passes only, median of several runs.

# %% role="locked"
class LayerNormByHand(nn.Module):
    """LayerNorm written with the same operations as a hand-written RMSNorm."""

    def __init__(self, dim: int, eps: float = 1e-6) -> None:
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))
        self.bias = nn.Parameter(torch.zeros(dim))

    def forward(self, x: Tensor) -> Tensor:
        x32 = x.float()
        centered = x32 - x32.mean(dim=-1, keepdim=True)
        inv_std = torch.rsqrt(centered.pow(2).mean(dim=-1, keepdim=True) + self.eps)
        return self.weight * (centered * inv_std).to(x.dtype) + self.bias


def median_ms(fn, x: Tensor, repeats: int = 15) -> float:
    with torch.no_grad():
        fn(x)  # warm-up
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            fn(x)
            times.append(time.perf_counter() - start)
    return 1000 * sorted(times)[len(times) // 2]


dim = 1024
x = torch.randn(16, 256, dim)
weight, bias = torch.ones(dim), torch.zeros(dim)
rows = [
    ("written out", "RMSNorm (yours)", median_ms(RMSNorm(dim), x)),
    ("written out", "LayerNorm by hand", median_ms(LayerNormByHand(dim), x)),
    ("built in", "F.rms_norm", median_ms(lambda t: F.rms_norm(t, (dim,), weight, 1e-6), x)),
    ("built in", "F.layer_norm", median_ms(lambda t: F.layer_norm(t, (dim,), weight, bias), x)),
]
print(f"input {tuple(x.shape)}, float32, {torch.get_num_threads()} threads")
print(f"{'kind':<12} {'layer':<18} {'ms':>8}")
for kind, layer, ms in rows:
    print(f"{kind:<12} {layer:<18} {ms:8.2f}")
for kind in ("written out", "built in"):
    rms_ms, ln_ms = (ms for k, _, ms in rows if k == kind)
    print(f"{kind}: RMSNorm takes {rms_ms / ln_ms:.2f}x the time of LayerNorm")

# %% [markdown]
# Written out, RMSNorm skips a reduction and a subtraction over the whole tensor, and it
# usually shows. Built in, both are single fused kernels bound by memory traffic, so the gap
# can shrink or vanish. Whatever your numbers say, that is the honest answer for your machine.

# %% [markdown]
# ## Experiment: which activation trains best?
#
# The lesson claims that gated feed-forward blocks train a little better than plain ones.
# Here you test it. The course's experiment runner (`solutions/ablate.py`, on the week-7
# trainer) trains the same small character-level model on tiny Shakespeare four times, changing
# only the feed-forward block: a plain MLP four times as wide as the model with **ReLU**,
# **GELU** or **SiLU**, and **SwiGLU** at the width that gives it the same number of parameters
# (within 1 %). Every variant gets the same initial seed, the same batches in the same order,
# the same number of steps and the same learning-rate schedule, and the whole comparison is
# repeated with several seeds, because two runs that differ only in their seed also end at
# different losses. The table gives the mean and standard deviation over the seeds, and the
# plot the validation loss during training, with a band of one standard deviation.
#
# On a laptop this cell takes a few minutes; in the course's automated tests it runs a tiny
# version for a few seconds (`COURSE_QUICK=1`), whose numbers mean nothing. The lesson shows
# the full run, made with
#
# ```bash
# python -m solutions.ablate activations
# ```

# %% role="locked"
from solutions.ablate import markdown_table, plot_results, run_activations

# on one thread (the fastest for a model this small); a tiny version of a few seconds, whose
# numbers say nothing about the activations, while nbgrader grades or validates the notebook and
# in the course's tests (COURSE_QUICK=1)
activations = run_activations()
print(markdown_table(activations))
plot_results(activations)
plt.show()

# the results table the exercise below reads: each activation's final losses, one per seed
final_losses = {name: [run["final_val"] for run in variant["runs"]]
                for name, variant in activations["variants"].items()}
print(final_losses)

# %% [markdown]
# ## Exercise 3: read the results
#
# A plot invites a conclusion; the question is which conclusion the numbers support. Write
# `best_activation(final_losses)`, the rule that reads the table above:
#
# - `final_losses` maps each activation to the final validation loss of each of its runs, one
#   per seed: `{"relu": [1.92, 1.95, 1.93], "swiglu": [1.85, 1.86, 1.88], ...}`;
# - return `(name, clear)`: `name` is the activation with the **lowest mean** final loss, and
#   `clear` is `True` only when its lead is larger than the seed noise, in the simplest sense:
#   every activation has **at least two runs**, and the winner's **worst** run is **strictly
#   lower** than every other activation's **best** run (the ranges of runs do not overlap, not
#   even at one point).
#
# **Why a function and not a sentence?** "SwiGLU wins" is easy to write and impossible to
# check: it depends on your run. A rule written as code can be checked on any table, including
# the awkward ones (a single seed, a runner-up with one lucky run, ranges that touch), so the
# grader can tell a sound reading from a lucky one; and you can apply the same rule to the
# lesson's full run. Non-overlapping ranges is a deliberately strict, simple test: with three
# seeds it is not a significance test, but when it passes, no seed could have changed the
# ranking.

# %% role="answer" exercise="best_activation"

# %% role="test" exercise="best_activation"
table = {"relu": [2.00, 2.02], "gelu": [2.10, 2.12], "swiglu": [1.90, 1.93]}
assert best_activation(table) == ("swiglu", True), (
    f"SwiGLU has the lowest mean and its worst run (1.93) beats every other run; got "
    f"{best_activation(table)}")
assert not best_activation({**table, "swiglu": [1.90, 2.01]})[1], (
    "SwiGLU's worst run (2.01) is not below ReLU's best run (2.00): the ranges overlap")
assert best_activation({"relu": [2.0], "swiglu": [1.5]}) == ("swiglu", False), (
    "with one run per activation nothing is known about seed noise: clear must be False")
assert best_activation({"relu": [1.8, 2.4, 2.4], "gelu": [2.0, 2.0, 2.1]})[0] == "gelu", (
    "rank by the mean of the runs, not by the single best run")

name, clear = best_activation(final_losses)
print(f"lowest mean final validation loss: {name}; lead larger than the seed noise: {clear}")

# %% [markdown]
# Compare your verdict with the lesson's full run. A tiny model trained for a few minutes is
# far from the regime of the papers, so neither a clear SwiGLU win nor a tie would be
# surprising; what matters is that the conclusion says no more than the runs support.
#
# ## What you built
#
# - `RMSNorm`: LayerNorm without re-centering, computed in float32 for stability.
# - `SwiGLU`: a gated feed-forward block with three bias-free projections.
# - `best_activation`: a rule that says what a results table does and does not support.
#
# Both reappear in week 5 (inside attention blocks), week 6 (each expert of a mixture is a
# SwiGLU) and week 7, where you assemble them into your own GPT. Next: take the
# [week 3 quiz](../../../site/weeks/week3/quiz.md).


# %% [markdown]
# ## Grade this notebook
#
# Save the notebook first (Ctrl+S): the grader reads the saved file. This cell runs the hidden
# tests your instructor uses, in a separate process started with this kernel's own Python, so
# it works wherever JupyterLab was started.

# %% role="locked"
# NBVAL_SKIP
import os
import subprocess
import sys

if os.environ.get("NBGRADER_EXECUTION") != "autograde":  # nbgrader grades after its own run
    grading = subprocess.run([sys.executable, "-m", "autograder", "grade", "rmsnorm_swiglu.ipynb"],
                             capture_output=True, text=True)
    print(grading.stdout + grading.stderr)
