"""Draw every figure of the lessons from the course's own reference code.

    python site/figures/make.py                 # all figures into site/assets/figures/
    python site/figures/make.py --quick --out /tmp/figs   # small sizes (the tests run this)
    python site/figures/make.py --only week4    # the figures whose name starts with this

Each figure is a function below, registered with ``@figure("weekN/name")``; it computes what
it shows with ``solutions/`` (masks, rotations, routing, parameter counts, short training
runs of the week-7 trainer) and draws it with matplotlib. Every figure is written twice, as
``weekN/name.svg`` for the light theme and ``weekN/name-dark.svg`` for the dark one, and a
lesson shows the pair with Material's ``#only-light`` / ``#only-dark`` image suffixes:

    ![What the figure shows.](../../assets/figures/week1/causal_mask.svg#only-light)
    ![What the figure shows.](../../assets/figures/week1/causal_mask-dark.svg#only-dark)

``--quick`` shrinks the training runs and text sizes so that the test suite can check that
every figure a lesson names is still drawn (tests/site/test_figures.py).
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import functools
import math
import sys
import textwrap
import time
from collections.abc import Callable
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from train_speed import SHAPES, SWITCHES  # noqa: E402  (the speed page's shapes and switches)

from solutions import (  # noqa: E402
    BPETokenizer,
    GPTConfig,
    MiniGPT,
    RMSNorm,
    alibi_bias,
    apply_rope,
    causal_mask,
    chinchilla_loss,
    compute_optimal,
    count_parameters,
    kv_cache_bytes,
    load_balancing_loss,
    repeat_kv,
    scaled_dot_product_attention,
    sinusoidal_positions,
    sliding_window_mask,
)
from solutions.ablate import load_results, plot_results  # noqa: E402
from solutions.data import load_dataset, load_text  # noqa: E402
from solutions.deepseek_moe import (  # noqa: E402
    DeepSeekMoE,
    deepseek_route,
    expert_load,
    update_routing_bias,
)
from solutions.latent_attention import latent_cache_bytes  # noqa: E402
from solutions.llama4 import attention_temperature, chunked_attention_mask  # noqa: E402
from solutions.model import filter_logits  # noqa: E402
from solutions.scaling import parameter_breakdown, training_flops  # noqa: E402
from solutions.tokenizer import GPT2_SPLIT_PATTERN  # noqa: E402
from solutions.train import TrainConfig, Trainer  # noqa: E402

OUT = ROOT / "site" / "assets" / "figures"
FIGURES: dict[str, Callable[[], plt.Figure]] = {}
QUICK = False  # set by --quick: small sizes, short runs
THEMES = {  # text and line colours that read on Material's light and dark ("slate") pages
    "light": {"fg": "#212121", "grid": "#d0d0d0", "suffix": ""},
    "dark": {"fg": "#e2e4e9", "grid": "#4a4d5a", "suffix": "-dark"},
}
# a qualitative palette readable on both backgrounds
C = ["#3f7fd0", "#e07b28", "#3aa35b", "#c8465a", "#8e6cc8", "#8c7a5b", "#d36cb4", "#7f8c8d"]


def figure(name: str):
    """Register a figure-drawing function under ``weekN/name``."""
    def register(fn: Callable[[], plt.Figure]) -> Callable[[], plt.Figure]:
        FIGURES[name] = fn
        return fn
    return register


@contextlib.contextmanager
def theme(name: str):
    t = THEMES[name]
    rc = {"text.color": t["fg"], "axes.labelcolor": t["fg"], "axes.edgecolor": t["fg"],
          "xtick.color": t["fg"], "ytick.color": t["fg"], "axes.titlecolor": t["fg"],
          "grid.color": t["grid"], "axes.facecolor": "none", "figure.facecolor": "none",
          "savefig.facecolor": "none", "legend.facecolor": "none", "legend.edgecolor": t["grid"],
          "legend.labelcolor": t["fg"], "axes.prop_cycle": matplotlib.cycler(color=C),
          "font.size": 10, "axes.titlesize": 11, "svg.fonttype": "none",
          "svg.hashsalt": "llm-course", "axes.spines.top": False, "axes.spines.right": False}
    with matplotlib.rc_context(rc):
        yield t


def fg() -> str:
    return matplotlib.rcParams["text.color"]


def finish(ax: plt.Axes, **grid) -> plt.Figure:
    """The common end of a one-panel chart: a light grid (``grid``: ``ax.grid``'s options),
    a legend without a frame; returns the axes' figure."""
    ax.grid(**grid)
    ax.legend(frameon=False)
    return ax.figure


# ---------------------------------------------------------------- shared computations


@functools.cache
def shakespeare() -> str:
    text = load_text()
    return text[:60_000] if QUICK else text


@functools.cache
def trained_char_model(n_experts: int = 0, aux_loss_coef: float = 0.01):
    """A small character-level model trained on tiny Shakespeare with the week-7 trainer;
    returns (trainer, samples before training, evaluation history)."""
    data = load_dataset("char")
    torch.manual_seed(1337)
    cfg = GPTConfig.preset("tiny", vocab_size=data.vocab_size, dim=96, n_layers=3,
                           n_heads=4, n_kv_heads=4, max_seq_len=64, n_experts=n_experts,
                           top_k=2)
    steps = 4 if QUICK else 600
    # quick: evaluate at the start and the end only, on one batch
    train = TrainConfig(batch_size=16, block_size=64, max_iters=steps, lr=3e-3, min_lr=3e-4,
                        warmup_iters=max(1, steps // 20),
                        eval_interval=steps if QUICK else max(1, steps // 10),
                        eval_iters=1 if QUICK else 10, fast=False, device="cpu",
                        aux_loss_coef=aux_loss_coef)
    trainer = Trainer(MiniGPT(cfg), data, train)
    torch.manual_seed(0)
    before = trainer.sample("\n", sample_length(), temperature=0.8, top_k=20)
    history = trainer.fit(progress=False)
    return trainer, before, history


def sample_length() -> int:
    """Characters sampled from the trained model for the figures (one forward pass each)."""
    return 24 if QUICK else 120


@functools.cache
def bpe(vocab_size: int) -> BPETokenizer:
    tok = BPETokenizer(GPT2_SPLIT_PATTERN)
    tok.train(shakespeare(), vocab_size)
    return tok


def save(fig: plt.Figure, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, format="svg", bbox_inches="tight", metadata={"Date": None})
    plt.close(fig)


# ---------------------------------------------------------------- week 1


@figure("week1/causal_mask")
def causal_mask_and_trained_head() -> plt.Figure:
    """The causal mask next to the attention weights of a trained head on the same text."""
    trainer, _, _ = trained_char_model()
    model, data = trainer.raw_model.eval(), trainer.data
    text = "ROMEO:\nBut soft, wh"
    idx = torch.tensor([data.tokenizer.encode(text)])
    T = idx.size(1)
    inputs = {}
    layer = model.layers[1]
    hook = layer.self_attn.register_forward_pre_hook(lambda m, a: inputs.update(x=a[0]))
    with torch.no_grad():
        model(idx)
    hook.remove()
    attn, x = layer.self_attn, inputs["x"]
    H, D = attn.n_heads, attn.head_dim
    with torch.no_grad():
        q = attn.q_proj(x).view(1, T, H, D).transpose(1, 2)  # (1, H, T, D)
        k = attn.k_proj(x).view(1, T, attn.n_kv_heads, D).transpose(1, 2)
        pos = torch.arange(T)
        q, k = apply_rope(q, pos, attn.rope_theta), apply_rope(k, pos, attn.rope_theta)
        k = repeat_kv(k, H // attn.n_kv_heads)
        # attention applied to the identity matrix returns the attention weights themselves
        eye = torch.eye(T).expand(1, H, T, T)
        weights = scaled_dot_product_attention(q, k, eye, causal_mask(T))[0]  # (H, T, T)
    head = int(weights.amax(-1).mean(-1).argmax())  # the most focused head
    labels = [repr(c)[1:-1] if c != " " else "␣" for c in text]

    fig, axes = plt.subplots(1, 2, figsize=(10, 4.6))
    mask = causal_mask(T).float()
    axes[0].imshow(mask.numpy(), cmap="Blues", vmin=-0.3, vmax=1.3)
    axes[0].set_title("causal_mask(T): True = may attend")
    axes[1].imshow(weights[head].numpy(), cmap="viridis", vmin=0)
    axes[1].set_title(f"trained model, layer 2, head {head + 1}: softmax weights")
    for ax in axes:
        ax.set_xticks(range(T), labels, fontsize=7, family="monospace")
        ax.set_yticks(range(T), labels, fontsize=7, family="monospace")
        ax.set_xlabel("key j (earlier token)")
        ax.set_ylabel("query i (current token)")
        ax.spines[:].set_visible(False)
    fig.tight_layout()
    return fig


@figure("week1/scaling")
def why_scale() -> plt.Figure:
    """Without 1/sqrt(d_k), the softmax over random q.k saturates as d_k grows."""
    gen = torch.Generator().manual_seed(0)
    dims = [4, 8, 16, 32, 64, 128, 256, 512]
    T, trials = 64, 8 if QUICK else 64
    rows = {"scaled by 1/√d_k": [], "unscaled": []}
    for d in dims:
        q = torch.randn(trials, 1, T, d, generator=gen)
        k = torch.randn(trials, 1, T, d, generator=gen)
        eye = torch.eye(T).expand(trials, 1, T, T)
        for name, scale in (("scaled by 1/√d_k", 1.0), ("unscaled", math.sqrt(d))):
            w = scaled_dot_product_attention(q * scale, k, eye)  # weights, as in week1/causal
            rows[name].append(w.amax(-1).mean().item())
    fig, ax = plt.subplots(figsize=(6.4, 3.6))
    for name, values in rows.items():
        ax.plot(dims, values, "o-", label=name)
    ax.axhline(1 / T, ls=":", color=fg(), lw=1, label=f"uniform over {T} keys")
    ax.set(xscale="log", xlabel="head size d_k", ylabel="largest softmax weight (mean)",
           title="random queries and keys: attention collapses onto one key without scaling")
    ax.set_xticks(dims, [str(d) for d in dims])
    return finish(ax, alpha=0.5)


@figure("week1/next_token")
def next_token_distribution() -> plt.Figure:
    """The trained model's next-character probabilities after a prompt."""
    trainer, _, _ = trained_char_model()
    model, tok = trainer.raw_model.eval(), trainer.data.tokenizer
    prompt = "First Citizen:\nWe are accounted poor citiz"
    with torch.no_grad():
        logits, _ = model(torch.tensor([tok.encode(prompt)]))
    probs = logits[0, -1].softmax(-1)
    top = probs.topk(10)
    chars = [repr(tok.decode([i]))[1:-1].replace(" ", "␣") for i in top.indices.tolist()]
    fig, ax = plt.subplots(figsize=(6.4, 3.4))
    ax.bar(range(10), top.values.numpy(), color=C[0])
    ax.set_xticks(range(10), chars, family="monospace")
    ax.set(ylabel="probability", title=f"next character after “…{prompt[-16:]}”".replace(
        "\n", "⏎"))
    ax.grid(axis="y", alpha=0.5)
    return fig


# ---------------------------------------------------------------- week 2


@figure("week2/bpe_merges")
def bpe_merges() -> plt.Figure:
    """The first merges BPE learns on Shakespeare, each made of two earlier tokens."""
    tok = bpe(512)
    merges = sorted(tok.merges.items(), key=lambda item: item[1])[:24]
    show = lambda i: tok.vocab[i].decode("utf-8", "replace").replace(" ", "␣").replace(
        "\n", "⏎")
    fig, ax = plt.subplots(figsize=(8, 5.4))
    ax.axis("off")
    for n, ((a, b), new) in enumerate(merges):
        col, row = divmod(n, 12)
        y = 1 - row / 12
        x = col * 0.5
        ax.text(x, y, f"{n + 1:>2}.", ha="right", va="center", family="monospace")
        ax.text(x + 0.02, y, f"{show(a)!s:>5} + {show(b)!s:<5} →", va="center",
                family="monospace")
        ax.text(x + 0.27, y, show(new), va="center", family="monospace", weight="bold",
                bbox=dict(boxstyle="round,pad=0.25", fc=C[0], alpha=0.25, ec="none"))
    ax.set_title("the first 24 merges learned on tiny Shakespeare (GPT-2 pre-split)")
    ax.set_xlim(-0.06, 1.0)
    ax.set_ylim(0.0, 1.05)
    return fig


@figure("week2/tokens")
def sentence_by_tokens() -> plt.Figure:
    """One sentence cut into tokens by vocabularies of growing size."""
    sentence = "Wherefore art thou Romeo? Deny thy father and refuse thy name."
    sizes = [256, 512, 2048] if not QUICK else [256, 300, 400]
    fig, ax = plt.subplots(figsize=(10, 0.9 * len(sizes) + 0.6))
    ax.axis("off")
    for r, size in enumerate(sizes):
        tok = BPETokenizer(GPT2_SPLIT_PATTERN) if size == 256 else bpe(size)
        ids = tok.encode(sentence)
        pieces = [tok.vocab[i].decode("utf-8", "replace") for i in ids]
        y = len(sizes) - r
        ax.text(-0.5, y, f"{size:>5} tokens: {len(ids):>2} ids", ha="right", va="center",
                family="monospace")
        x = 0.0
        for n, piece in enumerate(pieces):
            width = 0.62 * len(piece)
            ax.add_patch(plt.Rectangle((x, y - 0.32), width - 0.06, 0.64, color=C[n % 4],
                                       alpha=0.35, lw=0))
            ax.text(x + width / 2 - 0.03, y, piece.replace(" ", "␣"), ha="center",
                    va="center", family="monospace", fontsize=9)
            x += width
    ax.set_xlim(-9, 0.62 * len(sentence) + 0.5)
    ax.set_ylim(0.4, len(sizes) + 0.6)
    ax.set_title("the same sentence in byte tokens and in BPE vocabularies of growing size")
    return fig


@figure("week2/compression")
def compression() -> plt.Figure:
    """Characters and words per token on held-out text, against vocabulary size."""
    text = shakespeare()
    split = int(0.9 * len(text))
    train, held = text[:split], text[split:]
    held = held[:5_000] if QUICK else held[:60_000]
    sizes = [256, 300, 400] if QUICK else [256, 512, 1024, 2048, 4096]
    tok = BPETokenizer(GPT2_SPLIT_PATTERN)
    tok.train(train, sizes[-1])
    words = len(held.split())
    chars_per, words_per = [], []
    for size in sizes:
        sub = BPETokenizer(GPT2_SPLIT_PATTERN)  # the first size - 256 merges of the big one
        sub.merges = {p: i for p, i in tok.merges.items() if i < size}
        sub.vocab = {i: b for i, b in tok.vocab.items() if i < size}
        n = len(sub.encode(held))
        chars_per.append(len(held) / n)
        words_per.append(words / n)
    fig, ax = plt.subplots(figsize=(6.4, 3.6))
    ax.plot(sizes, chars_per, "o-", label="characters per token")
    ax.plot(sizes, words_per, "s-", label="words per token")
    ax.set(xscale="log", xlabel="vocabulary size (course BPE, trained on 90 % of the text)",
           ylabel="per token, on the other 10 %", title="bigger vocabularies, fewer tokens")
    ax.set_xticks(sizes, [str(s) for s in sizes])
    return finish(ax, alpha=0.5)


# ---------------------------------------------------------------- week 3


@figure("week3/norms_2d")
def norms_2d() -> plt.Figure:
    """RMSNorm puts every 2-D point on a circle; LayerNorm (mean removed) on two points."""
    gen = torch.Generator().manual_seed(3)
    x = torch.randn(40, 2, generator=gen) * torch.tensor([1.5, 0.7]) + torch.tensor([1.0, 0.4])
    rms = RMSNorm(2, eps=1e-6)
    with torch.no_grad():
        y_rms = rms(x)
    y_ln = F.layer_norm(x, (2,), eps=1e-6)
    fig, axes = plt.subplots(1, 2, figsize=(9, 4.3), sharex=True, sharey=True)
    for ax, y, title in ((axes[0], y_rms, "RMSNorm: divide by the root mean square"),
                         (axes[1], y_ln, "LayerNorm: subtract the mean, then divide")):
        for a, b in zip(x, y, strict=True):
            ax.plot([a[0].item(), b[0].item()], [a[1].item(), b[1].item()], color=fg(),
                    alpha=0.15, lw=0.8)
        ax.scatter(x[:, 0].numpy(), x[:, 1].numpy(), s=14, color=C[0], label="input x")
        ax.scatter(y[:, 0].numpy(), y[:, 1].numpy(), s=22, color=C[1], label="normalised", zorder=3)
        ax.add_patch(plt.Circle((0, 0), math.sqrt(2), fill=False, ls=":", color=fg(), lw=1))
        ax.set_aspect("equal")
        ax.set_title(title)
        ax.set_xlabel("x₁")
        ax.grid(alpha=0.4)
    axes[0].set_ylabel("x₂")
    axes[0].legend(frameon=False, loc="lower left")
    fig.suptitle("the same 40 points in two dimensions; dotted: radius √d (RMS = 1)")
    fig.tight_layout()
    return fig


@figure("week3/activations")
def activations() -> plt.Figure:
    """ReLU, GELU and SiLU, and their derivatives."""
    x = torch.linspace(-5, 3, 400, requires_grad=True)
    fns = {"ReLU": F.relu, "GELU": F.gelu, "SiLU (swish)": F.silu}
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.6))
    for n, (name, fn) in enumerate(fns.items()):
        y = fn(x)
        (grad,) = torch.autograd.grad(y.sum(), x)
        axes[0].plot(x.detach().numpy(), y.detach().numpy(), label=name, color=C[n])
        axes[1].plot(x.detach().numpy(), grad.numpy(), label=name, color=C[n])
    axes[0].set(title="f(x)", xlabel="x")
    axes[1].set(title="f′(x): SiLU and GELU dip below 0, ReLU's jumps", xlabel="x")
    for ax in axes:
        ax.grid(alpha=0.4)
        ax.axhline(0, color=fg(), lw=0.6)
    axes[1].legend(frameon=False, loc="center right")
    fig.tight_layout()
    return fig


@figure("week3/swiglu_gate")
def swiglu_gate() -> plt.Figure:
    """What one hidden unit of SwiGLU computes: SiLU(gate) times up."""
    g = torch.linspace(-4, 4, 161)
    u = torch.linspace(-4, 4, 161)
    z = F.silu(g)[None, :] * u[:, None]  # (up, gate)
    fig, ax = plt.subplots(figsize=(5.4, 4.3))
    lim = float(z.abs().max())
    im = ax.imshow(z.numpy(), origin="lower", extent=(-4, 4, -4, 4), cmap="RdBu_r", vmin=-lim,
                   vmax=lim)
    ax.contour(g.numpy(), u.numpy(), z.numpy(), levels=[0], colors=[fg()], linewidths=0.8)
    fig.colorbar(im, ax=ax, label="SiLU(gate) · up")
    ax.set(xlabel="gate_proj(x) for one unit", ylabel="up_proj(x) for the same unit",
           title="SwiGLU: the gate decides, the up projection carries the sign")
    return fig


# ---------------------------------------------------------------- week 4


@figure("week3/activation_experiment")
def activation_experiment() -> plt.Figure:
    """The committed full run of ``python -m solutions.ablate activations`` (its JSON under
    site/assets/ablations/), drawn by the runner's own plot in this page's theme."""
    return plot_results(load_results("activations"))


@figure("week4/sinusoidal")
def sinusoidal() -> plt.Figure:
    pe = sinusoidal_positions(64, 64)
    fig, ax = plt.subplots(figsize=(6.4, 3.8))
    im = ax.imshow(pe.T.numpy(), aspect="auto", cmap="RdBu_r", vmin=-1, vmax=1, origin="lower")
    fig.colorbar(im, ax=ax)
    ax.set(xlabel="position", ylabel="dimension",
           title="sinusoidal positions: fast waves in the first dimensions, slow in the last")
    return fig


@figure("week4/rope_rotation")
def rope_rotation() -> plt.Figure:
    """RoPE rotates each pair (x[i], x[i + d/2]) by position times its frequency."""
    head_dim, positions = 8, torch.arange(8)
    fig, axes = plt.subplots(1, 2, figsize=(8.5, 4.2))
    for ax, pair in zip(axes, (0, head_dim // 2 - 1), strict=True):
        x = torch.zeros(len(positions), head_dim)
        x[:, pair] = 1.0  # the pair (pair, pair + d/2) starts at (1, 0) at every position
        y = apply_rope(x, positions)  # (T, head_dim): each row rotated by its position
        for p in positions.tolist():
            a, b = y[p, pair].item(), y[p, pair + head_dim // 2].item()
            ax.annotate("", xy=(a, b), xytext=(0, 0),
                        arrowprops=dict(arrowstyle="->", color=C[p % len(C)], lw=1.5))
            ax.text(1.12 * a, 1.12 * b, str(p), ha="center", va="center", color=C[p % len(C)])
        ax.add_patch(plt.Circle((0, 0), 1, fill=False, ls=":", color=fg(), lw=0.8))
        freq = 10000 ** (-2 * pair / head_dim)
        ax.set(xlim=(-1.3, 1.3), ylim=(-1.3, 1.3), aspect="equal",
               title=f"pair {pair}: θ = {freq:.3g} rad per position",
               xlabel=f"x[{pair}]", ylabel=f"x[{pair + head_dim // 2}]")
    fig.suptitle("apply_rope on the same vector at positions 0–7 (head_dim 8)")
    fig.tight_layout()
    return fig


@figure("week4/rope_decay")
def rope_decay() -> plt.Figure:
    """q·k after RoPE for identical q and k, as the distance between them grows."""
    head_dim, n = 128, 512 if QUICK else 4096
    ones = torch.ones(1, head_dim, dtype=torch.float64)
    q = apply_rope(ones, torch.zeros(1, dtype=torch.long))  # at position 0
    k = apply_rope(ones.expand(n, head_dim), torch.arange(n))  # at positions 0..n-1
    dots = (k @ q.T).squeeze(1) / head_dim
    fig, ax = plt.subplots(figsize=(6.8, 3.6))
    ax.plot(range(n), dots.numpy(), lw=0.8)
    ax.set(xscale="symlog", xlabel="distance between query and key (tokens)",
           ylabel="q·k / d (q = k = ones)",
           title="RoPE: the same query and key agree less the farther apart they are")
    ax.grid(alpha=0.4)
    return fig


@figure("week4/alibi")
def alibi() -> plt.Figure:
    """ALiBi's bias for three of eight heads: a penalty growing with distance."""
    bias = alibi_bias(8, 16)
    heads = [0, 3, 7]
    fig, axes = plt.subplots(1, 3, figsize=(10, 3.4))
    mask = ~causal_mask(16)
    for ax, h in zip(axes, heads, strict=True):
        shown = bias[h].masked_fill(mask, float("nan"))
        im = ax.imshow(shown.numpy(), cmap="magma", vmin=float(bias[0].min()), vmax=0)
        slope = 2 ** (-8 * (h + 1) / 8)
        ax.set(title=f"head {h + 1}: slope {slope:g}", xlabel="key j", ylabel="query i")
        ax.spines[:].set_visible(False)
    fig.colorbar(im, ax=axes, label="added to the score: −m(i − j)")
    fig.suptitle("alibi_bias(8, 16): steep heads look near, gentle heads look far")
    return fig


# ---------------------------------------------------------------- week 5


@figure("week4/positions_experiment")
def positions_experiment() -> plt.Figure:
    """The committed full run of ``python -m solutions.ablate positions``."""
    return plot_results(load_results("positions"))


@figure("week5/receptive_field")
def receptive_field() -> plt.Figure:
    """Which tokens can reach each position after 1, 2 and 4 layers of window-4 attention."""
    T, w = 16, 4
    step = sliding_window_mask(T, w).float()
    fig, axes = plt.subplots(1, 3, figsize=(10, 3.6))
    reach = torch.eye(T)
    layers = {1: None, 2: None, 4: None}
    for layer in range(1, 5):
        reach = ((step @ reach) > 0).float()  # one more layer of mixing
        if layer in layers:
            layers[layer] = reach.clone()
    for ax, (layer, m) in zip(axes, layers.items(), strict=True):
        ax.imshow(m.numpy(), cmap="Blues", vmin=-0.3, vmax=1.3)
        ax.set(title=f"after {layer} layer{'s' * (layer > 1)}: "
                     f"{layer * (w - 1) + 1} tokens", xlabel="input token", ylabel="position")
        ax.spines[:].set_visible(False)
    fig.suptitle(f"sliding_window_mask({T}, window={w}): the reach grows by {w - 1} "
                 "tokens per layer")
    fig.tight_layout()
    return fig


@figure("week5/gqa_groups")
def gqa_groups() -> plt.Figure:
    """Which key/value head each query head reads, for MHA, GQA and MQA (8 query heads)."""
    n_heads = 8
    fig, axes = plt.subplots(3, 1, figsize=(7.5, 4.6))
    for ax, n_kv, name in zip(axes, (8, 2, 1), ("MHA", "GQA", "MQA"), strict=True):
        kv_ids = torch.arange(n_kv, dtype=torch.float32).view(1, n_kv, 1, 1)
        used = repeat_kv(kv_ids, n_heads // n_kv).flatten().long()  # kv head per query head
        for h in range(n_heads):
            ax.add_patch(plt.Rectangle((h, 1), 0.8, 0.6, color=C[0], alpha=0.6))
            ax.text(h + 0.4, 1.3, f"q{h}", ha="center", va="center", fontsize=8)
        width = n_heads / n_kv
        for j in range(n_kv):
            x0 = j * width + (width - 0.8) / 2
            ax.add_patch(plt.Rectangle((x0, 0), 0.8, 0.6, color=C[1 + j % 7], alpha=0.7))
            ax.text(x0 + 0.4, 0.3, f"kv{j}", ha="center", va="center", fontsize=8)
        for h, j in enumerate(used.tolist()):
            x0 = j * width + (width - 0.8) / 2
            ax.plot([h + 0.4, x0 + 0.4], [1.0, 0.6], color=C[1 + j % 7], lw=1)
        ax.text(-0.3, 0.8, f"{name}\n{n_kv} kv head{'s' * (n_kv > 1)}", ha="right",
                va="center")
        ax.set(xlim=(-2.2, n_heads), ylim=(-0.1, 1.7))
        ax.axis("off")
    fig.suptitle("repeat_kv: query head h reads key/value head h // (n_heads / n_kv_heads)")
    fig.tight_layout()
    return fig


@figure("week5/kv_cache")
def kv_cache() -> plt.Figure:
    """KV-cache bytes per sequence against context length, from each preset's config."""
    lengths = torch.linspace(0, 32768, 65).long().tolist()
    fig, ax = plt.subplots(figsize=(6.8, 3.8))
    for n, name in enumerate(("llama2_7b", "llama2_70b", "mistral_7b")):
        c = GPTConfig.preset(name)
        gib = [kv_cache_bytes(c.n_layers, c.n_kv_heads, c.dim // c.n_heads, t,
                              window=c.window) / 2**30 for t in lengths]
        ax.plot(lengths, gib, label=f"{name} ({c.n_kv_heads} kv heads"
                + (f", window {c.window})" if c.window else ")"), color=C[n])
    ax.set(xlabel="tokens in context", ylabel="GiB per sequence (fp16)",
           title="the KV cache grows with context; GQA and a window cap it")
    return finish(ax, alpha=0.4)


# ---------------------------------------------------------------- week 6


@figure("week6/routing")
def routing() -> plt.Figure:
    """Softmax over 8 experts, the top 2 kept, their weights renormalised."""
    gen = torch.Generator().manual_seed(6)
    logits = torch.randn(3, 8, generator=gen) * 1.2
    probs = logits.softmax(-1)
    top = probs.topk(2, dim=-1)
    fig, axes = plt.subplots(1, 3, figsize=(10, 3.2), sharey=True)
    for t, ax in enumerate(axes):
        chosen = set(top.indices[t].tolist())
        colors = [C[1] if e in chosen else C[7] for e in range(8)]
        ax.bar(range(8), probs[t].numpy(), color=colors)
        weights = top.values[t] / top.values[t].sum()
        for e, wgt in zip(top.indices[t].tolist(), weights.tolist(), strict=True):
            ax.text(e, probs[t, e] + 0.02, f"{wgt:.2f}", ha="center", fontsize=9)
        ax.set(title=f"token {t + 1}", xlabel="expert")
        ax.set_xticks(range(8))
        ax.grid(axis="y", alpha=0.4)
    axes[0].set_ylabel("router probability")
    fig.suptitle("top-2 routing: orange experts run, with the weights written above "
                 "(renormalised to sum to 1)")
    fig.tight_layout()
    return fig


@figure("week6/balance")
def balance() -> plt.Figure:
    """Share of routed tokens per expert after training, with and without the balancing loss."""
    fig, axes = plt.subplots(1, 2, figsize=(9.5, 3.6), sharey=True)
    for ax, coef in zip(axes, (0.0, 0.1), strict=True):
        trainer, _, _ = trained_char_model(n_experts=4, aux_loss_coef=coef)
        model, data = trainer.raw_model.eval(), trainer.data
        idx = data.val[:1024].view(16, 64)
        with torch.no_grad():
            model(idx)
        loss = 0.0
        for layer, logits in enumerate(model.router_logits):
            picks = logits.topk(2, dim=-1).indices.flatten()
            share = torch.bincount(picks, minlength=4).float() / picks.numel()
            ax.bar((torch.arange(4) + 0.27 * (layer - 1)).numpy(), share.numpy(), width=0.27,
                   label=f"layer {layer + 1}", color=C[layer])
            loss += load_balancing_loss(logits, 4, 2).item() / len(model.router_logits)
        ax.axhline(0.25, color=fg(), ls=":", lw=1)
        ax.set(title=f"aux_loss_coef {coef}: balancing loss {loss:.2f} (even: 2)",
               xlabel="expert")
        ax.set_xticks(range(4))
        ax.grid(axis="y", alpha=0.4)
    axes[0].set_ylabel("share of top-2 picks")
    axes[0].legend(frameon=False, fontsize=8)
    fig.suptitle("a 4-expert mini-GPT on Shakespeare: dotted line = perfectly even routing")
    fig.tight_layout()
    return fig


@figure("week6/total_vs_active")
def total_vs_active() -> plt.Figure:
    """Total and active parameters of the course's presets, counted exactly."""
    ax = total_active_bars(["mistral_7b", "mixtral_8x7b", "llama2_70b"], (6.4, 3.6),
                           ("total (must fit in memory)", "active per token (compute)"), ".1f")
    ax.set(ylabel="billions of parameters", title="a sparse model pays memory for all experts, "
           "compute for two")
    return finish(ax, axis="y", alpha=0.4)


def total_active_bars(names: list[str], figsize: tuple[float, float], labels: tuple[str, str],
                      total_format: str) -> plt.Axes:
    """Side-by-side bars of the total and the active parameters (billions, each written
    above its bar) of the named presets, counted by ``count_parameters``."""
    total = [count_parameters(GPTConfig.preset(n)) / 1e9 for n in names]
    active = [count_parameters(GPTConfig.preset(n), active=True) / 1e9 for n in names]
    _, ax = plt.subplots(figsize=figsize)
    xs = torch.arange(len(names))
    ax.bar((xs - 0.2).numpy(), total, width=0.4, label=labels[0])
    ax.bar((xs + 0.2).numpy(), active, width=0.4, label=labels[1])
    for x, t, a in zip(xs.tolist(), total, active, strict=True):
        ax.text(x - 0.2, t, f"{t:{total_format}}", ha="center", va="bottom", fontsize=9)
        ax.text(x + 0.2, a, f"{a:.1f}", ha="center", va="bottom", fontsize=9)
    ax.set_xticks(xs.tolist(), names)
    return ax


# ---------------------------------------------------------------- week 7


@figure("week7/loss_curves")
def loss_curves() -> plt.Figure:
    """The week-7 trainer on tiny Shakespeare: loss curves and samples before and after."""
    trainer, before, history = trained_char_model()
    torch.manual_seed(0)
    after = trainer.sample("\n", sample_length(), temperature=0.8, top_k=20)
    fig = plt.figure(figsize=(10, 4.2))
    ax = fig.add_axes((0.07, 0.14, 0.42, 0.74))
    steps = [r["step"] for r in history]
    ax.plot(steps, [r["train"] for r in history], "o-", label="train")
    ax.plot(steps, [r["val"] for r in history], "s-", label="validation")
    ax.axhline(math.log(trainer.data.vocab_size), color=fg(), ls=":", lw=1,
               label="uniform guess")
    ax.set(xlabel="optimizer step", ylabel="cross-entropy (nats per character)",
           title=f"{sum(p.numel() for p in trainer.raw_model.parameters()):,} parameters, "
                 "CPU")
    ax.grid(alpha=0.4)
    ax.legend(frameon=False)
    for y, label, text in ((0.93, "before training", before), (0.47, "after", after)):
        fig.text(0.53, y, label, weight="bold", va="top")
        lines = [row for line in text.strip().splitlines()
                 for row in textwrap.wrap(line, 56) or [""]][:6]
        fig.text(0.53, y - 0.06, "\n".join(lines), va="top", family="monospace", fontsize=8)
    return fig


@figure("week7/sampling")
def sampling() -> plt.Figure:
    """Temperature reshapes the next-token distribution; top-k and top-p cut its tail."""
    trainer, _, _ = trained_char_model()
    model, tok = trainer.raw_model.eval(), trainer.data.tokenizer
    with torch.no_grad():
        logits, _ = model(torch.tensor([tok.encode("KING RICHARD III:\nNow is the win")]))
    logits = logits[:, -1]  # (1, V)
    order = logits[0].argsort(descending=True)[:16]
    chars = [repr(tok.decode([i]))[1:-1].replace(" ", "␣") for i in order.tolist()]
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.6), sharey=True)
    for n, temp in enumerate((0.5, 1.0, 1.5)):
        p = (logits / temp).softmax(-1)[0, order]
        axes[0].plot(range(16), p.numpy(), "o-", label=f"temperature {temp}", color=C[n])
    axes[0].set(title="temperature", ylabel="probability")
    for n, (name, kw) in enumerate((("top-k = 3", {"top_k": 3}), ("top-p = 0.9",
                                                                  {"top_p": 0.9}))):
        p = filter_logits(logits, **kw).softmax(-1)[0, order]
        axes[1].bar((torch.arange(16) + (n - 0.5) * 0.4).numpy(), p.numpy(), width=0.4,
                    label=name, color=C[n + 3])
    axes[1].set(title="filter_logits, then softmax (temperature 1)")
    for ax in axes:
        ax.set_xticks(range(16), chars, family="monospace")
        ax.grid(axis="y", alpha=0.4)
        ax.legend(frameon=False)
    fig.suptitle("the 16 likeliest next characters after “Now is the win”")
    fig.tight_layout()
    return fig


@figure("week7/cache_flops")
def cache_flops() -> plt.Figure:
    """FLOPs to produce one more token with and without the KV cache, counted by PyTorch."""
    from torch.utils.flop_counter import FlopCounterMode

    torch.manual_seed(0)
    model = MiniGPT(GPTConfig.preset("tiny", max_seq_len=512)).eval()
    lengths = [16, 64, 128] if QUICK else [16, 64, 128, 256, 384, 512]
    without, with_cache = [], []
    for T in lengths:
        idx = torch.zeros(1, T, dtype=torch.long)
        with torch.no_grad():
            counter = FlopCounterMode(display=False)
            with counter:
                model(idx)  # no cache: the whole prefix again
            without.append(counter.get_total_flops())
            cache = model.new_cache()
            model(idx[:, :-1], cache=cache)  # the prefix, once
            counter = FlopCounterMode(display=False)
            with counter:
                model(idx[:, -1:], cache=cache)  # one new token
            with_cache.append(counter.get_total_flops())
    fig, ax = plt.subplots(figsize=(6.4, 3.6))
    ax.plot(lengths, [f / 1e6 for f in without], "o-", label="without cache (rerun prefix)")
    ax.plot(lengths, [f / 1e6 for f in with_cache], "s-", label="with KV cache")
    ax.set(xlabel="tokens so far", ylabel="MFLOPs for the next token",
           title="the cache turns each step's work from O(T·N) into O(N + T·d)")
    return finish(ax, alpha=0.4)


SPEED_PAGE = ROOT / "site" / "weeks" / "week7" / "speed.md"


def speed_blocks() -> dict[str, list[str]]:
    """The code blocks of the speed page by the command that printed them (each block's
    first line, ``$ python benchmarks/train_speed.py ...``): the charts below read the
    measured tables from there, so a re-measured page redraws them."""
    blocks, command, lines = {}, None, []
    for line in SPEED_PAGE.read_text(encoding="utf-8").splitlines():
        if line.startswith("```"):
            if command is not None:
                blocks[command] = lines
            command, lines = None, []
        elif line.startswith("$ python") and not lines:
            command = line.removeprefix("$ ").rstrip(" \\")
        elif command is not None:
            lines.append(line)
    return blocks


def speed_block(command_start: str) -> list[str]:
    matches = [lines for cmd, lines in speed_blocks().items() if cmd.startswith(command_start)]
    if len(matches) != 1:
        raise ValueError(f"speed.md has {len(matches)} blocks of {command_start!r}")
    return matches[0]


def step_rows(lines: list[str]) -> list[tuple[str, str, float]]:
    """(shape, implementation, tokens/s) of a train_speed.py table."""
    rows = []
    for line in lines:
        cells = line.split()
        if cells and cells[0] in ("cpu", "shakespeare_char") and "M" in line:
            params = next(i for i, c in enumerate(cells) if c.endswith("M"))
            rows.append((cells[0], " ".join(cells[1:params]),
                         float(cells[params + 3].replace(",", ""))))
    return rows


@figure("week7/tokens_per_s")
def tokens_per_s() -> plt.Figure:
    """Tokens per second of each implementation at both shapes, as measured on the page."""
    runs = {"with nanoGPT, 2 threads\n(Llama before the fast paths)": step_rows(speed_block(
                "python benchmarks/train_speed.py --shapes cpu --steps 100")),
            "with nanoGPT, 2 threads\n(Llama before the fast paths) ": step_rows(speed_block(
                "python benchmarks/train_speed.py --shapes shakespeare_char")),
            "fast paths on, 1 thread,\nCPU time": step_rows(speed_block(
                "python benchmarks/train_speed.py --steps 5 --warmup 1 --threads 1"))}
    fig, axes = plt.subplots(1, 4, figsize=(10.5, 3.6))
    panels = [(title, shape, [r for r in rows if r[0] == shape])
              for title, rows in runs.items() for shape in ("cpu", "shakespeare_char")]
    panels = [p for p in panels if p[2]]
    for ax, (title, shape, rows) in zip(axes, panels, strict=True):
        names = [r[1].replace("nanoGPT, our AdamW", "nanoGPT,\nour AdamW") for r in rows]
        values = [r[2] for r in rows]
        colours = [C[1] if "Llama" in n else C[0] if "ours" in n else C[7] for n in names]
        ax.bar(range(len(values)), values, color=colours)
        for x, v in enumerate(values):
            ax.text(x, v, f"{v:,.0f}", ha="center", va="bottom", fontsize=8)
        ax.set_xticks(range(len(values)), names, rotation=35, ha="right", fontsize=8)
        ax.set_title(f"{title}\n{shape.replace('_', '-')}", fontsize=9)
        ax.set_ylim(0, max(values) * 1.18)
        ax.grid(axis="y", alpha=0.4)
    axes[0].set_ylabel("tokens per second (median step)")
    fig.suptitle("training throughput on the 2-core test machine (blue: GPT-2 style, "
                 "orange: Llama style, grey: nanoGPT)", fontsize=10)
    fig.tight_layout()
    return fig


@figure("week7/step_breakdown")
def step_breakdown() -> plt.Figure:
    """The profile's per-part times of a forward and backward pass, both styles."""
    lines = speed_block("python benchmarks/train_speed.py --profile")
    shapes, shape = {}, None
    for line in lines:
        if line.startswith(("cpu:", "shakespeare_char:")):
            shape = line.split(":")[0]
            shapes[shape] = {}
        cells = line.rsplit(maxsplit=6)  # part, count, one each, x count each, ratio
        if shape and len(cells) == 7 and cells[1].isdigit() and cells[4] != "-":
            shapes[shape][cells[0]] = (float(cells[4]), float(cells[5]))  # GPT-2, Llama x n
    parts = ["embeddings", "norm", "attention", "mlp", "final norm, LM head, loss"]
    fig, axes = plt.subplots(1, len(shapes), figsize=(9.6, 2.8))
    for ax, (name, rows) in zip(axes, shapes.items(), strict=True):
        gpt2_total = sum(rows[p][0] for p in parts)
        for y in (0, 1):  # GPT-2 style, Llama style
            left = 0.0
            for colour, part in zip(C, parts, strict=False):
                width = rows[part][y] / gpt2_total
                ax.barh(y, width, left=left, color=colour, label=part if y == 0 else None)
                left += width
            ax.text(left, y, f" {left:.2f}x", va="center", fontsize=9)
        ax.set_yticks([0, 1], ["GPT-2 style", "Llama style"])
        ax.invert_yaxis()
        ax.set_xlim(0, 1.7)
        ax.set(xlabel="time of the parts / GPT-2 style's total", title=name.replace("_", "-"))
    axes[-1].legend(frameon=False, fontsize=8, loc="center left", bbox_to_anchor=(1.0, 0.5))
    fig.tight_layout()
    return fig


@figure("week7/ladder")
def speed_ladder() -> plt.Figure:
    """The CPU ladder of the speed page: tokens/s with every switch on, then each one off."""
    rows = []  # (configuration, tokens/s or None, the ratio or the note)
    for line in speed_block("python benchmarks/train_speed.py --ladder"):
        if not line.startswith(tuple(SHAPES)):
            continue
        rest = line.split(maxsplit=1)[1]
        name = next(n for n in ("everything on", *(f"without {s}" for s in SWITCHES))
                    if rest.startswith(n + " "))
        cells = rest.removeprefix(name).split()  # ms/step, tokens/s, time vs on; or a note
        if len(cells) == 3 and cells[2].endswith("x"):
            rows.append((name, float(cells[1].replace(",", "")), cells[2]))
        else:
            rows.append((name, None, " ".join(cells)))
    fig, ax = plt.subplots(figsize=(7.6, 0.45 * len(rows) + 1.4))
    top = max(r[1] for r in rows if r[1] is not None)
    for y, (name, rate, label) in enumerate(rows):
        if rate is None:  # a switch with nothing to measure here: say why instead of a bar
            ax.text(0.01 * top, y, label, va="center", fontsize=8, color=fg(), style="italic")
            continue
        ax.barh(y, rate, color=C[0] if name == "everything on" else C[1])
        ax.text(rate, y, f" {rate:,.0f} ({label})", va="center", fontsize=8)
    ax.set_yticks(range(len(rows)), [r[0] for r in rows])
    ax.invert_yaxis()
    ax.set_xlim(0, top * 1.3)
    ax.set(xlabel="tokens per second (median trainer step; in brackets: time vs everything on)",
           title="the speed ladder on the 2-core CPU (not a GPU), CPU shape, one thread")
    ax.grid(axis="x", alpha=0.4)
    ax.set_axisbelow(True)
    fig.tight_layout()
    return fig


# ---------------------------------------------------------------- week 8


@figure("week8/chinchilla")
def chinchilla() -> plt.Figure:
    """Chinchilla's fitted loss over N and D, iso-FLOP lines and the compute-optimal path."""
    N = torch.logspace(7, 12, 200, dtype=torch.float64)
    D = torch.logspace(8, 14, 200, dtype=torch.float64)
    L = chinchilla_loss(N[None, :], D[:, None])
    fig, ax = plt.subplots(figsize=(6.8, 4.6))
    cs = ax.contourf(N.numpy(), D.numpy(), L.numpy(), levels=20, cmap="viridis_r")
    fig.colorbar(cs, ax=ax, label="predicted loss")
    budgets = [1e18, 1e20, 1e22, 1e24, 1e26]
    for C_ in budgets:
        n = N[(C_ / (6 * N) >= D[0]) & (C_ / (6 * N) <= D[-1])]
        ax.plot(n.numpy(), (C_ / (6 * n)).numpy(), color="white", lw=0.7, ls="--")
    opt = [compute_optimal(C_) for C_ in torch.logspace(17, 27, 40).tolist()]
    ax.plot([o[0] for o in opt], [o[1] for o in opt], color=C[1], lw=2.2,
            label="compute-optimal N, D")
    ax.set(xscale="log", yscale="log", xlabel="parameters N", ylabel="training tokens D",
           title="Chinchilla fit (Hoffmann et al., 2022); dashed: 1e18 … 1e26 FLOPs")
    ax.legend(frameon=False, loc="upper left")
    return fig


@figure("week8/breakdown_7b")
def breakdown_7b() -> plt.Figure:
    parts = parameter_breakdown(GPTConfig.preset("llama2_7b"))
    total = sum(parts.values())
    fig, ax = plt.subplots(figsize=(6.4, 3.2))
    names = list(parts)
    values = [parts[n] / 1e9 for n in names]
    ax.barh(names, values, color=C[0])
    for y, v in enumerate(values):
        ax.text(v, y, f" {v:.3f}B ({100 * v * 1e9 / total:.1f} %)", va="center", fontsize=9)
    ax.invert_yaxis()
    ax.set(xlabel="billions of parameters",
           title=f"Llama-2 7B by component: {total:,} parameters")
    ax.set_xlim(0, max(values) * 1.45)
    return fig


@figure("week8/context_flops")
def context_flops() -> plt.Figure:
    """Training FLOPs per token: the weights' 6N against attention's term, over context."""
    c = GPTConfig.preset("llama2_7b")
    n = count_parameters(c)
    contexts = torch.logspace(2, 6, 9 if QUICK else 60).tolist()
    attention = [training_flops(0, 1, c.n_layers, c.dim, int(t)) for t in contexts]
    fig, ax = plt.subplots(figsize=(6.8, 3.6))
    ax.plot(contexts, [6 * n] * len(contexts), label="6N (weights)")
    ax.plot(contexts, attention, label="12·L·d·T (attention, no causal saving)")
    ax.plot(contexts, [a / 2 for a in attention], ls="--", label="causal: half of it")
    ax.set(xscale="log", yscale="log", xlabel="context length T",
           ylabel="training FLOPs per token", title="Llama-2 7B: attention overtakes the "
           "weights beyond a few ten thousand tokens")
    return finish(ax, alpha=0.4, which="both")


# ---------------------------------------------------------------- week 9


@figure("week9/mla_cache")
def mla_cache() -> plt.Figure:
    """KV-cache bytes per token at DeepSeek-V3's sizes: MHA, GQA, MQA and the latent cache."""
    c = GPTConfig.preset("deepseek_v3")
    layers, heads = c.n_layers, c.n_heads
    designs = {f"MHA\n{heads} kv heads": kv_cache_bytes(layers, heads, 128, 1),
               "GQA\n8 kv heads": kv_cache_bytes(layers, 8, 128, 1),
               f"MLA\nlatent {c.kv_lora_rank} + rope {c.qk_rope_head_dim}":
                   latent_cache_bytes(layers, c.kv_lora_rank, c.qk_rope_head_dim, 1),
               "MQA\n1 kv head": kv_cache_bytes(layers, 1, 128, 1)}
    fig, ax = plt.subplots(figsize=(6.8, 3.6))
    kib = [b / 1024 for b in designs.values()]
    colors = [C[0], C[0], C[1], C[0]]
    ax.bar(range(len(kib)), kib, color=colors)
    for x, v in enumerate(kib):
        ax.text(x, v, f"{v:,.0f} KiB", ha="center", va="bottom", fontsize=9)
    ax.set_xticks(range(len(kib)), list(designs))
    ax.set(yscale="log", ylabel="KiB per token (16-bit, all layers)",
           title=f"DeepSeek-V3's {layers} layers: what each token leaves in the cache")
    ax.grid(axis="y", alpha=0.4)
    return fig


@figure("week9/group_routing")
def group_routing() -> plt.Figure:
    """Group-limited top-k: pick the best groups first, then the best experts inside them."""
    gen = torch.Generator().manual_seed(9)
    E, n_group, topk_group, k = 32, 8, 3, 6
    logits = torch.randn(1, E, generator=gen)
    bias = torch.zeros(E)
    _, experts = deepseek_route(logits, bias, k, n_group, topk_group)
    scores = logits.sigmoid()[0]
    size = E // n_group
    best = scores.view(n_group, size).topk(2, dim=-1).values.sum(-1)
    groups = set(best.topk(topk_group).indices.tolist())
    chosen = set(experts[0].tolist())
    fig, ax = plt.subplots(figsize=(9, 3.4))
    for g in range(n_group):
        if g in groups:
            ax.axvspan(g * size - 0.5, (g + 1) * size - 0.5, color=C[2], alpha=0.15, lw=0)
        ax.text((g + 0.5) * size - 0.5, 1.02, f"group {g}\n{best[g].item():.2f}",
                ha="center", va="bottom", fontsize=8)
    colors = [C[1] if e in chosen else C[7] for e in range(E)]
    ax.bar(range(E), scores.numpy(), color=colors)
    ax.set(ylim=(0, 1.2), xlabel="routed expert", ylabel="sigmoid score",
           title=f"{n_group} groups of {size}; the {topk_group} green groups have the best "
                 f"top-2 sums; the {k} orange experts are chosen inside them")
    ax.set_xticks(range(0, E, size))
    return fig


@figure("week9/bias_balancing")
def bias_balancing() -> plt.Figure:
    """The auxiliary-loss-free rule evening out a skewed router, step by step."""
    torch.manual_seed(9)
    E, k, steps = 16, 2, 60 if QUICK else 400
    moe = DeepSeekMoE(dim=32, expert_hidden_dim=8, n_routed_experts=E, n_shared_experts=1,
                      top_k=k)
    with torch.no_grad():  # a router that favours the first experts
        moe.gate.weight += torch.linspace(0.6, -0.6, E)[:, None] / 4
    gen = torch.Generator().manual_seed(0)
    spread = []
    for _ in range(steps):
        x = torch.randn(256, 32, generator=gen) + 0.5
        logits = x @ moe.gate.weight.T  # (N, E)
        _, chosen = deepseek_route(logits, moe.gate.e_score_correction_bias, k)
        load = expert_load(chosen, E)
        spread.append((load.max() / load.float().mean()).item())
        update_routing_bias(moe, load, rate=0.01)
    fig, axes = plt.subplots(1, 2, figsize=(9.5, 3.5))
    axes[0].plot(range(steps), spread)
    axes[0].axhline(1, color=fg(), ls=":", lw=1)
    axes[0].set(xlabel="update step", ylabel="busiest expert / mean load",
                title="update_routing_bias, rate 0.01")
    axes[0].grid(alpha=0.4)
    axes[1].bar(range(E), moe.gate.e_score_correction_bias.numpy(), color=C[0])
    axes[1].set(xlabel="expert", ylabel="selection bias",
                title="the favoured experts end with negative bias")
    axes[1].grid(axis="y", alpha=0.4)
    fig.tight_layout()
    return fig


@figure("week9/llama4_layers")
def llama4_layers() -> plt.Figure:
    """Llama 4's two kinds of attention layer: chunked with RoPE, global without positions."""
    T, chunk = 16, 4
    fig, axes = plt.subplots(1, 3, figsize=(11, 3.6), gridspec_kw={"width_ratios": [1, 1, 1.3]})
    axes[0].imshow(chunked_attention_mask(T, chunk).numpy(), cmap="Blues", vmin=-0.3, vmax=1.3)
    axes[0].set(title=f"3 layers in 4: chunks of {chunk}, RoPE", xlabel="key", ylabel="query")
    axes[1].imshow(causal_mask(T).numpy(), cmap="Blues", vmin=-0.3, vmax=1.3)
    axes[1].set(title="every 4th layer: all, no positions", xlabel="key")
    for ax in axes[:2]:
        ax.spines[:].set_visible(False)
    positions = torch.logspace(0, 7, 400)
    axes[2].plot(positions.numpy(), attention_temperature(positions).numpy())
    axes[2].set(xscale="log", xlabel="position", ylabel="query scale",
                title="NoPE layers: queries scaled up with log position")
    axes[2].grid(alpha=0.4)
    fig.suptitle("Llama 4's layers (Scout: chunks of 8,192 tokens; drawn here with 4)")
    fig.tight_layout()
    return fig


@figure("week9/total_active")
def frontier_total_active() -> plt.Figure:
    ax = total_active_bars(["mixtral_8x7b", "llama4_scout", "llama4_maverick", "deepseek_v3"],
                           (7.2, 3.8), ("total", "active per token"), ".0f")
    ax.set(yscale="log", ylabel="billions of parameters (log)",
           title="text-only counts from count_parameters: memory grows, compute stays")
    return finish(ax, axis="y", alpha=0.4)


# ---------------------------------------------------------------- week 10


@figure("week10/prompt_mask")
def prompt_mask() -> plt.Figure:
    """Two chat exchanges as the week-10 batch holds them: read, predicted, counted."""
    from solutions.instruct import collate, encode_chat, load_base

    _, tok = load_base()
    pairs = [("add:27+58", "85"), ("reverse:kqzt", "tzqk")]
    batch = collate(tok, [encode_chat(tok, p, a) for p, a in pairs])
    pad = tok.special_tokens["<|pad|>"]
    B, T = batch.ids.shape
    fig, axes = plt.subplots(2 * B, 1, figsize=(9.5, 0.62 * 2 * B + 0.6))
    colours = {"prompt": C[7], "response": C[0], "padding": "none"}
    for b in range(B):
        for row, (name, ids) in enumerate((("reads (ids)", batch.ids[b]),
                                           ("predicts (labels)", batch.labels[b]))):
            ax = axes[2 * b + row]
            for t in range(T):
                kind = ("padding" if ids[t] == pad and batch.labels[b, t] == pad else
                        "response" if batch.mask[b, t] else "prompt")
                ax.add_patch(plt.Rectangle((t, 0), 0.94, 0.9, color=colours[kind],
                                           alpha=0.35 if kind != "padding" else 1,
                                           ec=fg() if kind == "padding" else "none", lw=0.4))
                text = tok.decode([int(ids[t])]).replace("<|", "").replace("|>", "")
                ax.text(t + 0.47, 0.45, text, ha="center", va="center", fontsize=7.5,
                        family="monospace")
            ax.set_xlim(0, T)
            ax.set_ylim(0, 0.9)
            ax.set_yticks([])
            ax.set_xticks([])
            ax.spines[:].set_visible(False)
            ax.set_ylabel(name, rotation=0, ha="right", va="center", fontsize=8.5)
    axes[0].set_title("prompt (grey: no loss) · response (blue: counted, mask True) · "
                      "padding (outlined)", fontsize=10)
    fig.tight_layout(h_pad=0.2)
    return fig


LORA_RANKS = [1, 2, 4, 8, 16, 32, 64]


def lora_ranks() -> list[int]:
    """The ranks drawn: quick mode counts three of them (each copies the 7B model), with 8
    among them for the annotation."""
    return [1, 8, 64] if QUICK else LORA_RANKS


@functools.cache
def lora_counts() -> dict[str, list[int]]:
    """Trainable parameters of Llama-2 7B per rank, counted by add_lora on the meta device."""
    from solutions import add_lora

    targets = {"q_proj, v_proj": ("q_proj", "v_proj"),
               "every projection": ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj",
                                    "up_proj", "down_proj")}
    with torch.device("meta"):  # the adapters too: LoRALinear would draw them on the CPU
        base = MiniGPT(GPTConfig.preset("llama2_7b"))
        return {label: [add_lora(copy.deepcopy(base), r, 2 * r, names) for r in lora_ranks()]
                for label, names in targets.items()}


@figure("week10/lora_params")
def lora_params() -> plt.Figure:
    """Trainable parameters of Llama-2 7B under LoRA against full fine-tuning."""
    ranks, counts = lora_ranks(), lora_counts()
    total = count_parameters(GPTConfig.preset("llama2_7b"))
    fig, ax = plt.subplots(figsize=(6.8, 3.8))
    ax.axhline(total, color=fg(), ls="--", lw=1)
    ax.text(ranks[0], total * 1.3, f"full fine-tuning: {total / 1e9:.2f}B "
            f"(AdamW moments {8 * total / 1e9:.0f} GB)", fontsize=9)
    for label, values in counts.items():
        ax.plot(ranks, values, "o-", label=f"LoRA on {label}")
    r8 = counts["q_proj, v_proj"][ranks.index(8)]
    ax.annotate(f"r = 8: {r8:,} ({100 * r8 / total:.2f} %,\nAdamW moments "
                f"{8 * r8 / 2**20:.0f} MiB)", (8, r8), (10, r8 / 12), fontsize=8.5,
                arrowprops={"arrowstyle": "->", "color": fg(), "lw": 0.8})
    ax.set(xscale="log", yscale="log", xlabel="rank r", ylabel="trainable parameters",
           title="Llama-2 7B: what LoRA trains (counted by add_lora)", ylim=(1e5, 3e10))
    ax.set_xticks(ranks, [str(r) for r in ranks])
    ax.grid(alpha=0.4, which="both")
    ax.legend(frameon=False, loc="upper left", bbox_to_anchor=(0, 0.88))
    return fig


@figure("week10/dpo_loss")
def dpo_loss_curves() -> plt.Figure:
    """The DPO loss and its gradient against h, for several beta and with label smoothing."""
    from solutions import dpo_loss

    h = torch.linspace(-30, 30, 601, dtype=torch.float64)
    zero = torch.zeros_like(h)
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.6))
    settings = [(0.1, 0.0), (0.5, 0.0), (2.0, 0.0), (0.5, 0.2)]
    for i, (beta, eps) in enumerate(settings):
        hh = h.clone().requires_grad_(True)
        losses, _, _ = dpo_loss(hh, zero, zero, zero, beta, eps)
        losses.sum().backward()
        style = "--" if eps else "-"
        label = f"β = {beta}" + (f", label smoothing {eps}" if eps else "")
        axes[0].plot(h, losses.detach(), style, color=C[i], label=label)
        axes[1].plot(h, -hh.grad, style, color=C[i], label=label)
    axes[0].axhline(math.log(2), color=fg(), lw=0.6, ls=":")
    axes[0].text(-29, math.log(2) + 0.15, "log 2 at h = 0 (policy = reference)", fontsize=8.5)
    axes[0].set(xlabel="h = policy log-ratio − reference log-ratio (nats)",
                ylabel="loss", title="−log σ(βh): falls as the chosen answer gains", ylim=(0, 4))
    axes[1].set(xlabel="h (nats)", ylabel="−∂loss/∂h",
                title="the push: β·σ(−βh), gone once a pair is ranked right")
    for ax in axes:
        ax.grid(alpha=0.4)
    axes[1].legend(frameon=False, loc="center right")
    fig.tight_layout()
    return fig


# ---------------------------------------------------------------- main


def draw(names: list[str], out: Path) -> list[Path]:
    written = []
    for name in names:
        start = time.perf_counter()
        for theme_name in THEMES:
            with theme(theme_name) as t:
                fig = FIGURES[name]()
                path = out / f"{name}{t['suffix']}.svg"
                save(fig, path)
                written.append(path)
        print(f"{name:<24} {time.perf_counter() - start:5.1f} s")
    return written


def main(argv: list[str] | None = None) -> int:
    global QUICK
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--out", type=Path, default=OUT)
    p.add_argument("--quick", action="store_true", help="small sizes and short runs")
    p.add_argument("--only", default="", help="draw the figures whose name starts with this")
    args = p.parse_args(argv)
    QUICK = args.quick
    torch.set_num_threads(1)  # small models: threads only wait on each other
    names = [n for n in FIGURES if n.startswith(args.only)]
    if not names:
        raise SystemExit(f"no figure starts with {args.only!r}")
    draw(names, args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
