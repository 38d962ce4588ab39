# %% [markdown]
# # Week 7: A mini-GPT of your own
#
# Six weeks of parts come together here. You assemble them into one decoder-only model,
# `MiniGPT`, whose configuration picks the architecture: GPT-2 (LayerNorm, GELU, learned
# positions, tied embeddings), Llama 2 (RMSNorm, SwiGLU, RoPE, grouped-query attention),
# Mistral (plus a sliding window) and Mixtral (plus a mixture of experts) are all presets of
# the same class. Then you write `generate` (greedy decoding, temperature, top-k, top-p and
# the KV cache) and train your model on Shakespeare: on a GPU when there is one, on a laptop
# CPU otherwise, in a couple of minutes.
#
# Read the [week 7 lesson](../../../site/weeks/week7/lesson.md) first (also on the course
# site, Week 7 → Lesson). The state-dict names follow Hugging Face `transformers`' Llama, so
# the model loads published weights (`MiniGPT.from_hf`, given below).
#
# **How this notebook works.** Write your code where it says `# YOUR CODE HERE` (delete the
# `raise NotImplementedError()`), then run the check cell below it. The visible checks catch
# the common mistakes; hidden tests grade the submission, with the reference parts of earlier
# weeks in place of yours (those were graded in their own weeks). To grade yourself, save the
# notebook and run its last cell, **Grade this notebook**; from a terminal:
#
# ```bash
# .venv/bin/autograder grade course/release/week7/minigpt.ipynb   # from the course folder
# autograder grade minigpt.ipynb   # from this folder, after `source .venv/bin/activate`
# ```

# %% role="locked"
import math
import os
import time
from dataclasses import dataclass  # noqa: F401 (the given code below uses these)

import matplotlib.pyplot as plt
import torch
import torch.nn.functional as F
from IPython.display import display
from torch import Tensor, nn  # noqa: F401

from autograder.parts import load_parts
from solutions.data import load_dataset
from solutions.model import PRESETS  # noqa: F401 (the named configurations, shown below)
from solutions.train import TrainConfig, Trainer

torch.manual_seed(0)
print(f"torch {torch.__version__}")

# %% [markdown]
# ## Your parts from earlier weeks
#
# The next cell finds your notebooks of weeks 1, 3, 4, 5 and 6 next to this folder
# (`../week3/rmsnorm_swiglu.ipynb` and so on), runs their code, checks each part on a tiny
# input against the reference, and makes the parts available here under their usual names.
# A part that is missing, unfinished or wrong is replaced by the reference one, and the table
# says so: fix it in its own notebook and run the cell again to use yours. Your instructor
# may require your own parts (`ALLOW_REFERENCE_PARTS = False`, or a set of the parts that may
# fall back).

# %% role="locked"
ALLOW_REFERENCE_PARTS = True  # instructors: False (or a set of names) requires the learner's own parts
parts = load_parts(allow_reference=ALLOW_REFERENCE_PARTS)
globals().update(parts)

# %% [markdown]
# ## One configuration, four families
#
# `GPTConfig` holds every choice that differs between the published models. `n_kv_heads=None`
# means one key/value head per query head (MHA); `hidden_dim=None` is derived (`4 * dim` for
# a plain MLP, LLaMA's `8/3 * dim` rounded up to a multiple of 256 for SwiGLU);
# `window=None` is full causal attention; `n_experts=0` is a dense MLP. Two fields carry the
# experiments of weeks 3 and 4: `mlp` is the gated `"swiglu"` or a plain MLP with `"gelu"`,
# `"relu"` or `"silu"`, and `pos` is `"rope"`, `"learned"`, `"alibi"` or `"none"` (no position
# signal at all: only the causal mask tells order). `PRESETS` names the
# configurations of the lessons (GPT-2 small and XL, Llama 2 7B and 70B, Mistral 7B, Mixtral
# 8x7B) and a few small ones that train on a CPU.

# %% role="locked" code="solutions.positions:ROPE_THETA"

# %% role="locked" code="solutions.model:GPTConfig"

# %% [markdown]
# What each preset changes, read from the configurations themselves:

# %% role="locked"
FAMILIES = {"GPT-2 small": "gpt2", "Llama 2 7B": "llama2_7b", "Mistral 7B": "mistral_7b",
            "Mixtral 8x7B": "mixtral_8x7b"}
FIELDS = ["dim", "n_layers", "n_heads", "n_kv_heads", "hidden_dim", "max_seq_len", "norm",
          "mlp", "pos", "window", "n_experts", "top_k", "tie_embeddings", "bias", "rope_theta"]
configs = {name: GPTConfig.preset(preset) for name, preset in FAMILIES.items()}
print(f"{'field':<15}" + "".join(f"{name:>15}" for name in configs))
for field in FIELDS:
    print(f"{field:<15}" + "".join(f"{str(getattr(c, field)):>15}" for c in configs.values()))

# %% [markdown]
# ## The given pieces: norms, GPT-2's MLP, attention, the KV cache
#
# `make_norm` picks your `RMSNorm` or PyTorch's `LayerNorm`; `GeluMLP` is the plain
# feed-forward block, GPT-2's with GELU, or with ReLU or SiLU (`activation`). `KVCache` is
# week 5's. `CachedAttention` extends your week-5 `Attention` with what a whole model needs:
# biases (GPT-2), no rotary embedding (`rope_theta=None`: learned positions, ALiBi or none;
# it overrides your `rotate`) and, with `alibi=True`, your week-4 `alibi_bias` added to the
# scores; your `forward`, with its KV cache, does the rest. These classes use your parts by
# name (`RMSNorm`, `apply_rope`, `alibi_bias`, `repeat_kv`, `sliding_window_mask`, ...).
#
# Both also carry a **fast path**, off unless the trainer's `fast` switch turns it on: the
# same results up to float rounding, from fewer and larger operations. `FastRMSNorm` is your
# `RMSNorm` with PyTorch's fused `F.rms_norm` on a GPU and, on a CPU, its backward pass
# written out by hand (`RMSNormFunction`). `CachedAttention` calls PyTorch's fused
# attention, and computes RoPE as one complex multiplication per tensor (`rotate_pairs`),
# which needs each rotated pair side by side in memory: it reorders the rows of `q_proj` and
# `k_proj` to put them there (`pairs_side_by_side`), which changes no score, since queries
# and keys are reordered alike (week 4's interleaved form is this layout). The speed page
# of week 7 measures what each saves.

# %% role="locked" code="solutions.efficient_attention:KVCache"

# %% role="locked" code="solutions.model:pairs_side_by_side,rotate_pairs,CachedAttention,RMSNormFunction,FastRMSNorm,make_norm,GeluMLP"

# %% [markdown]
# ## Exercise 1: `Block` and `MiniGPT`
#
# **`Block(cfg)`**, one pre-norm transformer layer with the submodules
#
# - `input_layernorm` and `post_attention_layernorm`: `make_norm(cfg)`;
# - `self_attn`: `CachedAttention(cfg.dim, cfg.n_heads, cfg.n_kv_heads, cfg.window,
#   rope_theta, bias=cfg.bias, alibi=cfg.pos == "alibi")` with `rope_theta = cfg.rope_theta`
#   for `pos="rope"` and `None` for every other `pos` (learned, ALiBi, none);
# - `mlp`: `MoE(dim, hidden_dim, n_experts, top_k)` when `cfg.n_experts`, else
#   `SwiGLU(dim, hidden_dim)` for `mlp="swiglu"`, else the plain
#   `GeluMLP(dim, hidden_dim, cfg.bias, cfg.gelu_approximate, cfg.mlp)` (GELU, GPT-2's tanh
#   one or the exact one, or ReLU, or SiLU: only SwiGLU is gated);
#
# and `forward(x, cache=None) -> (x, router_logits)`:
# $h = x + \mathrm{attn}(\mathrm{norm}_1(x))$, then $h + \mathrm{mlp}(\mathrm{norm}_2(h))$,
# with the MoE's router logits (`None` for a dense MLP). The norm is applied to the input of
# each sub-layer, never to the residual stream itself (pre-norm, as GPT-2 and Llama).
#
# **`MiniGPT(config)`** with
#
# - `embed_tokens`: `nn.Embedding(vocab_size, dim)`; `embed_positions`:
#   `nn.Embedding(max_seq_len, dim)` only for `pos="learned"`, added to the token embeddings;
#   that table has `max_seq_len` rows, so with learned positions a longer input (or a cache
#   that would pass `max_seq_len`) raises a clear error (a `ValueError` saying so), never cut,
#   wrapped or clamped; with `"rope"`, `"alibi"` and `"none"` the model runs on any length
#   (the experiments of week 4 evaluate at 8x the training length);
# - `layers`: an `nn.ModuleList` of `n_layers` blocks; `norm`: the final `make_norm(config)`;
# - `lm_head`: `nn.Linear(dim, vocab_size, bias=False)`; with `tie_embeddings` its weight
#   **is** the embedding's (`self.lm_head.weight = self.embed_tokens.weight`: one Parameter,
#   so one update trains both);
# - `forward(idx, targets=None, cache=None) -> (logits, loss)`: `idx` `(B, T)` ids, logits
#   `(B, T, vocab_size)`; `loss` is the mean cross-entropy of `logits` against `targets`
#   (already shifted: `targets[:, t]` is the token after `idx[:, t]`; `-100` is ignored), or
#   `None` without targets;
# - `new_cache()`: a list of one `KVCache(config.window)` per layer; with `cache=...` the
#   tokens continue the cached ones (learned positions start at `cache[0].pos`);
# - `router_logits`: after each forward, the list of the MoE layers' router logits (empty for
#   a dense model), reset at every forward, for the load-balancing loss.
#
# Initialise as GPT-2 does, in the static method `_init_weights` that `__init__` applies to
# every submodule (`self.apply`): normal with std 0.02 for linear and embedding weights, zero
# biases (the norms keep their ones).
#
# Every part of weeks 1 to 6 may come from a library now (`F.scaled_dot_product_attention`,
# `nn.RMSNorm`, ...); the assembly may not: `nn.TransformerEncoderLayer` and the models and
# decoder layers of `transformers` (`LlamaForCausalLM`, `...DecoderLayer`) are refused.

# %% role="answer" exercise="minigpt"

# %% [markdown]
# Loading published weights: `from_hf` maps the names and layouts of a `transformers`
# GPT-2, Llama, Mistral or Mixtral checkpoint onto yours (GPT-2 stores its linear weights
# transposed and its q, k, v fused; Mixtral fuses its experts). The course's tests check that
# the logits then agree with `transformers`' own.

# %% role="locked" code="solutions.model:_gpt2_state_dict,_unfuse_experts,from_hf"
MiniGPT.from_hf = staticmethod(from_hf)

# %% role="test" exercise="minigpt"
gpt2 = MiniGPT(GPTConfig.preset("tiny_gpt2"))
keys = set(gpt2.state_dict())
for key in ("embed_tokens.weight", "embed_positions.weight", "layers.0.input_layernorm.weight",
            "layers.0.self_attn.q_proj.bias", "layers.1.post_attention_layernorm.bias",
            "layers.1.mlp.up_proj.weight", "norm.weight", "norm.bias", "lm_head.weight"):
    assert key in keys, f"the state dict should have `{key}`"
assert gpt2.lm_head.weight is gpt2.embed_tokens.weight, (
    "with tie_embeddings, lm_head.weight must be the same Parameter as embed_tokens.weight")
exact = MiniGPT(GPTConfig.preset("tiny_gpt2", gelu_approximate="none"))
assert all(layer.mlp.approximate == "none" for layer in exact.layers), (
    "pass cfg.gelu_approximate to GeluMLP: nanoGPT-style models use the exact GELU")
llama = MiniGPT(GPTConfig.preset("tiny")).eval()
assert "embed_positions.weight" not in llama.state_dict(), "RoPE models have no position table"
assert "layers.0.mlp.gate_proj.weight" in llama.state_dict(), "tiny is Llama-style: SwiGLU"
assert llama.lm_head.weight is not llama.embed_tokens.weight, "tiny does not tie embeddings"

idx = torch.randint(0, 65, (2, 20))
logits, loss = llama(idx)
assert logits.shape == (2, 20, 65) and loss is None, "without targets: (logits, None)"
logits, loss = llama(idx[:, :-1], idx[:, 1:])
assert abs(loss.item() - math.log(65)) < 0.1, (
    f"at initialisation the prediction is nearly uniform, so the loss should be close to "
    f"log(65) = {math.log(65):.2f}; got {loss.item():.2f}")
targets = idx[:, 1:].clone()
targets[:, :6] = -100
_, partial = llama(idx[:, :-1], targets)
expected = F.cross_entropy(logits[:, 6:].reshape(-1, 65), idx[:, 7:].reshape(-1))
assert torch.allclose(partial, expected, atol=1e-5), "targets of -100 must be left out"

with torch.no_grad():  # pre-norm blocks, then the final norm, by hand
    x = llama.embed_tokens(idx)
    for layer in llama.layers:
        h = x + layer.self_attn(layer.input_layernorm(x))
        x = h + layer.mlp(layer.post_attention_layernorm(h))
    by_hand = llama.lm_head(llama.norm(x))
    assert torch.allclose(llama(idx)[0], by_hand, atol=1e-5), (
        "logits differ from x + attn(norm(x)), h + mlp(norm(h)) per block, then the final "
        "norm and lm_head")

for name in ("tiny_mistral", "tiny_gpt2"):  # a cached forward in pieces equals the full one
    model = MiniGPT(GPTConfig.preset(name)).eval()
    with torch.no_grad():
        full, _ = model(idx)
        cache = model.new_cache()
        pieces = [model(idx[:, a:b], cache=cache)[0] for a, b in ((0, 12), (12, 13), (13, 20))]
    assert torch.allclose(torch.cat(pieces, 1), full, atol=1e-5), (
        f"{name}: a cached forward in pieces should equal the full forward (positions "
        "continue from cache[0].pos)")

for mlp in ("relu", "silu"):  # plain MLPs: up_proj, the activation, down_proj, no gate
    plain = MiniGPT(GPTConfig.preset("tiny", mlp=mlp)).layers[0].mlp
    assert "gate_proj.weight" not in plain.state_dict(), f"mlp={mlp!r} is not gated"
    h = torch.randn(3, 64)
    act = F.relu if mlp == "relu" else F.silu
    assert torch.allclose(plain(h), plain.down_proj(act(plain.up_proj(h))), atol=1e-6), (
        f"mlp={mlp!r}: pass cfg.mlp to GeluMLP as its activation")
for pos in ("rope", "alibi", "none"):  # no table of positions: longer inputs run
    model = MiniGPT(GPTConfig.preset("tiny", pos=pos, max_seq_len=16)).eval()
    attn = model.layers[0].self_attn
    assert (attn.rope_theta is not None) == (pos == "rope"), "RoPE only for pos='rope'"
    assert getattr(attn, "alibi", False) == (pos == "alibi"), "alibi=True only for pos='alibi'"
    assert model(idx)[0].shape == (2, 20, 65), f"pos={pos!r}: 20 tokens > max_seq_len = 16"
learned, raised = MiniGPT(GPTConfig.preset("tiny_gpt2", max_seq_len=16)), False
try:
    learned(idx)  # 20 tokens, a table of 16 positions
except Exception:
    raised = True
assert raised, "pos='learned' with 20 tokens > max_seq_len = 16 must raise an error"

mixtral = MiniGPT(GPTConfig.preset("tiny_mixtral"))
for _ in range(2):
    mixtral(idx)
    assert len(mixtral.router_logits) == 2 and mixtral.router_logits[0].shape == (40, 4), (
        "router_logits: one (B*T, n_experts) tensor per layer, reset at every forward")
print("MiniGPT: visible checks passed")

# %% [markdown]
# ## The published sizes, counted
#
# Your `MiniGPT`, built on PyTorch's `meta` device (shapes without memory), has exactly the
# parameter counts of the published models. A tied `lm_head` is counted once; Mixtral's
# *active* parameters count only the `top_k` experts each token uses.

# %% role="locked"
print(f"{'model':<14}{'parameters':>18}{'active per token':>18}")
for name, cfg in configs.items():
    with torch.device("meta"):
        model = MiniGPT(cfg)
    total = sum(p.numel() for p in model.parameters())
    idle = (cfg.n_experts - cfg.top_k) * 3 * cfg.dim * cfg.hidden_dim * cfg.n_layers \
        if cfg.n_experts else 0
    print(f"{name:<14}{total:>18,}{total - idle:>18,}")

# %% [markdown]
# ## Exercise 2: sampling and `generate`
#
# At each step the model gives logits $z$ for the next token. **Greedy** decoding takes
# $\arg\max z$. **Sampling** draws from $\mathrm{softmax}(z / T)$: a temperature $T < 1$
# sharpens the distribution, $T > 1$ flattens it (divide the *logits*: dividing the
# probabilities after the softmax changes nothing once they are renormalised). Two filters
# cut the unlikely tail first:
#
# - **top-k** keeps the $k$ largest logits;
# - **top-p** (nucleus sampling, Holtzman et al., 2020) keeps the smallest set of most likely
#   tokens whose probabilities *reach* $p$: sort them in decreasing order and keep a token
#   while the ones before it sum to less than $p$, so the token that crosses $p$ stays.
#
# The order matters, and is transformers': divide by the temperature, then keep the top $k$,
# then the nucleus of what is left (its probabilities renormalised over the $k$ kept tokens).
# A nucleus taken before the temperature, or over the whole vocabulary when `top_k` is given
# too, keeps a different set of tokens.
#
# Write `filter_logits(logits, top_k=None, top_p=None)`, which sets every other logit of
# `(B, V)` logits to `-inf`, and `generate(model, idx, max_new_tokens, temperature=1.0,
# top_k=None, top_p=None, use_cache=True)`, which returns `(B, T + max_new_tokens)`: the
# prompt followed by the new tokens. `temperature=0` means greedy. Draw with
# `torch.multinomial` (from `generator` when one is given).
#
# With `use_cache`, run the prompt once through the model with `cache = model.new_cache()`,
# then feed only the newest token each step: the cache holds the keys and values of all the
# others. Without it, rerun the whole sequence (its last `max_seq_len` tokens) every step.
# Call the model under `torch.no_grad()`.
#
# The defaults are graded: `generate(model, idx, n)` samples at temperature 1 from the whole
# vocabulary (no top-k, no top-p) with the cache. `transformers`' logits warpers
# (`TopKLogitsWarper`, `TopPLogitsWarper`, ...) are not allowed; `torch.topk`, `sort`,
# `cumsum` and `torch.multinomial` are the building blocks.

# %% role="answer" exercise="generate"

# %% role="test" exercise="generate"
logits = torch.log(torch.tensor([[0.5, 0.05, 0.3, 0.15]]))
kept = lambda out: torch.isfinite(out)[0].tolist()  # noqa: E731
assert kept(filter_logits(logits, top_k=2)) == [True, False, True, False], "top_k=2"
assert kept(filter_logits(logits, top_p=0.5)) == [True, False, False, False], "top_p=0.5"
assert kept(filter_logits(logits, top_p=0.6)) == [True, False, True, False], (
    "top_p=0.6 keeps 0.5 and 0.3: the token that crosses the threshold stays")
assert kept(filter_logits(logits)) == [True] * 4, "no filter: keep everything"

torch.manual_seed(0)
model = MiniGPT(GPTConfig.preset("tiny_mistral")).eval()
with torch.no_grad():
    model.lm_head.weight.mul_(20)  # a sharper model: clear winners for greedy decoding
prompt = torch.randint(0, 65, (2, 5))
greedy = generate(model, prompt, 30, temperature=0)
assert greedy.shape == (2, 35), f"expected (B, T + new) = (2, 35), got {tuple(greedy.shape)}"
assert torch.equal(greedy[:, :5], prompt), "the output starts with the prompt"
assert torch.equal(greedy, generate(model, prompt, 30, temperature=0, use_cache=False)), (
    "greedy decoding gives the same tokens with and without the cache")
assert torch.equal(generate(model, prompt, 10, top_k=1), greedy[:, :15]), "top_k=1 is greedy"

small = MiniGPT(GPTConfig.preset("tiny", vocab_size=4)).eval()
with torch.no_grad():
    small.lm_head.weight.mul_(30)
    first = small(torch.zeros(1, 1, dtype=torch.long))[0][0, -1]
rows = torch.zeros(4000, 1, dtype=torch.long)
for temperature in (0.5, 2.0):
    drawn = generate(small, rows, 1, temperature=temperature)[:, 1]
    freq = torch.bincount(drawn, minlength=4) / len(drawn)
    want = (first / temperature).softmax(-1)
    assert (freq - want).abs().max() < 0.05, (
        f"temperature {temperature}: frequencies {freq.tolist()} should follow "
        f"softmax(logits / T) = {want.tolist()}")
print("generate: visible checks passed")

# %% [markdown]
# ## What the cache buys
#
# Without a cache, step $t$ reruns all $t$ tokens: the work grows with the square of the
# length. With it, each step runs one token against the cached keys and values. Same tokens,
# different cost (your own timings; they vary between machines):

# %% role="locked"
model = MiniGPT(GPTConfig.preset("tiny", max_seq_len=256)).eval()
prompt = torch.zeros(1, 1, dtype=torch.long)
print(f"{'new tokens':>10}{'with cache (s)':>16}{'without (s)':>14}{'same tokens':>13}")
for n in (32, 64, 128):
    times, outs = [], []
    for use_cache in (True, False):
        start = time.perf_counter()
        outs.append(generate(model, prompt, n, temperature=0, use_cache=use_cache))
        times.append(time.perf_counter() - start)
    print(f"{n:>10}{times[0]:>16.3f}{times[1]:>14.3f}{str(torch.equal(*outs)):>13}")

# %% [markdown]
# ## Training on Shakespeare
#
# The course's `Trainer` (`solutions/train.py`: AdamW, warm-up then cosine learning rate,
# gradient clipping, mixed precision and `torch.compile` on a GPU) trains your `MiniGPT` on
# the tiny-Shakespeare text (Karpathy, 2015), one token per character. On a CPU the model is
# small and the run stops after 45 seconds; on a GPU it is nanoGPT's character-level
# Shakespeare size (6 layers, 384 wide, 256 characters of context). The plot is redrawn at
# every evaluation; the samples before and after training come from your `generate`.

# %% role="locked"
data = load_dataset("char")
if torch.cuda.is_available():
    config = GPTConfig.preset("shakespeare_char", vocab_size=data.vocab_size)
    train_cfg = TrainConfig(batch_size=64, block_size=256, max_iters=2000, lr=1e-3,
                            min_lr=1e-4, warmup_iters=100, beta2=0.99, eval_interval=250,
                            eval_iters=50, compile=True, fast=True)
    print("GPU: the shakespeare_char model, bfloat16 autocast, torch.compile, fast paths")
else:
    config = GPTConfig.preset("tiny", vocab_size=data.vocab_size, dim=96, n_layers=3)
    train_cfg = TrainConfig(batch_size=16, block_size=64, max_iters=500, lr=3e-3, min_lr=3e-4,
                            warmup_iters=30, eval_interval=50, eval_iters=5, fast=False,
                            time_limit=45)
    print("CPU: a small model for 45 seconds at most, float32, all of it your own code")
if os.environ.get("NBGRADER_EXECUTION") == "autograde":  # grading needs no long run
    train_cfg.max_iters = 20

torch.manual_seed(1337)
model = MiniGPT(config)
trainer = Trainer(model, data, train_cfg)
print(f"device {trainer.device}, dtype {train_cfg.dtype}, compile {train_cfg.compile}, "
      f"fast paths {train_cfg.fast}, {sum(p.numel() for p in model.parameters()):,} "
      f"parameters, {torch.get_num_threads()} CPU threads")
before = trainer.sample("\n", 200, generate_fn=generate)
print("--- sample before training ---", before, sep="\n")

# %% role="locked"
fig, ax = plt.subplots(figsize=(7, 3.5))
plot = display(fig, display_id=True)
plt.close(fig)


def show_progress(trainer, record: dict) -> None:
    """Redraw the loss curves after each evaluation (called by ``Trainer.fit``)."""
    steps = [r["step"] for r in trainer.history]
    ax.clear()
    ax.plot(steps, [r["train"] for r in trainer.history], "o-", label="train")
    ax.plot(steps, [r["val"] for r in trainer.history], "o-", label="validation")
    ax.axhline(math.log(data.vocab_size), color="grey", ls=":", label="uniform guess")
    ax.set(xlabel="optimizer step", ylabel="cross-entropy (nats per character)",
           title=f"step {record['step']}: val {record['val']:.3f}")
    ax.legend()
    plot.update(fig)


history = trainer.fit(callback=show_progress)
print(f"{trainer.step} steps in {trainer.train_time:.0f} s; validation loss "
      f"{history[0]['val']:.2f} -> {history[-1]['val']:.2f}")

# %% role="locked"
print("--- sample before training ---", before, sep="\n")
print("--- sample after training (temperature 0.8, top-k 20) ---")
print(trainer.sample("\n", 200, temperature=0.8, top_k=20, generate_fn=generate))

# %% [markdown]
# ## Things to try
#
# - Sample the trained model at temperature 0.3, 1.0 and 1.5, and with `top_p=0.9`: where do
#   the words break down?
# - Train the GPT-2 style (`norm="layernorm", mlp="gelu", pos="learned",
#   tie_embeddings=True`) and the Mixtral style (`n_experts=4`) at the same size and compare
#   the validation loss after the same number of steps.
# - From a terminal, the same training with checkpoints:
#   `python -m solutions.train --preset shakespeare_char --data char --out-dir out/shakespeare`.


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
    grading = subprocess.run([sys.executable, "-m", "autograder", "grade", "minigpt.ipynb"],
                             capture_output=True, text=True)
    print(grading.stdout + grading.stderr)
