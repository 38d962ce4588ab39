"""Week 7 benchmark: training speed (ms per step, tokens/s, MFU) of the course's MiniGPT, and
optionally nanoGPT's model at the same shapes; and a time-boxed run to a validation loss.

    python benchmarks/train_speed.py                          # both shapes, ours only
    python benchmarks/train_speed.py --shapes cpu --steps 20  # the small shape only
    python benchmarks/train_speed.py --nanogpt /tmp/nanogpt   # + nanoGPT rows (its model.py)
    python benchmarks/train_speed.py --device cuda --compile  # on a GPU, bf16 + torch.compile
    python benchmarks/train_speed.py --train-seconds 60       # shakespeare-char for 60 s
    python benchmarks/train_speed.py --ops                    # two operations, alone
    python benchmarks/train_speed.py --profile                # per part and per operator
    python benchmarks/train_speed.py --ladder --shapes cpu    # each speed switch off in turn

Shapes: nanoGPT's shakespeare-char (6 layers, 6 heads, width 384, block 256, batch 64) and its
CPU example (4 layers, 4 heads, width 128, block 64, batch 12), vocabulary 65, dropout 0 for
every model (nanoGPT's shakespeare-char config uses 0.2; the course model has no dropout, and
a dropout mask costs time, so the comparison would not be like for like).

Implementations: "ours GPT-2" is MiniGPT configured as nanoGPT's model (LayerNorm without
bias, exact GELU MLP, learned positions, tied embeddings, no biases); "ours Llama" is the
shakespeare_char preset's family (RMSNorm, SwiGLU, RoPE, untied); both with the model's fast
paths (``fast``: fused attention, RMSNorm and RoPE) unless ``--no-fast``. nanoGPT's model is
imported from the model.py you point at, never copied. Every implementation takes the same
step: forward and loss, backward, gradient clipping at 1.0, AdamW with weight decay on the
matrices, zero_grad; on CUDA under bf16 autocast with TF32 on. The AdamW is each code's own:
ours is ``solutions.train``'s ``make_optimizer`` (fused on CUDA and on the CPU), nanoGPT's is
its ``configure_optimizers`` (fused on CUDA only). So that the models can be compared apart
from the optimizer, nanoGPT's model runs a second time with our AdamW ("nanoGPT, our AdamW";
the "same AdamW" column).
The timed steps reuse one random batch (no data loading), come after warm-up steps, and
alternate between the implementations, so that a busy neighbour on a shared machine slows
all of them alike; the table shows medians, and "time/GPT-2" the median over rounds of each
row's step time divided by ours GPT-2's in the same round.

``--profile`` runs the forward and backward passes (no optimizer) of the GPT-2-style and the
Llama-style model at each shape, alternating: each part alone (embeddings, a norm, an
attention layer, the same layer without RoPE, an MLP, the final norm with the LM head and the
loss), timed on the inputs it receives in a real forward pass, and the whole pass; then the
time of each operator PyTorch dispatches in a whole pass (a ``TorchDispatchMode`` times each
one as it runs), the median over as many passes.

``--ladder`` runs the trainer's own step (``Trainer.train_step``: real batches of tiny
Shakespeare, AdamW, clipping) of the Llama-style model with every speed switch of
``SWITCHES`` that works on the device on, then with each one off in turn, all of them
alternating step by step; a switch that does nothing on the device (TF32 on a CPU), or
cannot run (``torch.compile`` on a CPU without a C++ compiler), gets a row that says so
instead of a time. ``benchmarks/gpu_proof.py`` runs its GPU ladder from the same list.

MFU = (6 N + 12 L H Q T) x tokens/s / peak, nanoGPT's estimate (after PaLM, Chowdhery et al.
2022, appendix B), with N the weights of the matmuls (every nn.Linear, the LM head included,
embedding lookups excluded), L layers, H heads, Q head size, T block. The peak: on CUDA the
device's dense bf16 peak (H100 SXM 989 TFLOP/s, H100 PCIe 756, A100 312; ``--peak`` to set
another); on a CPU ``--peak`` (e.g. cores x clock x FP32 FLOP per cycle), else the float32
throughput of a 2048 x 2048 matmul measured here first (noisy on a shared machine).
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import io
import os
import platform
import shutil
import statistics
import sys
import time
from pathlib import Path
from typing import NamedTuple

import torch
from torch import nn

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from solutions.model import GPTConfig, MiniGPT  # noqa: E402
from solutions.train import TrainConfig, make_optimizer  # noqa: E402

VOCAB = 65
SHAPES = {  # name: (layers, heads, width, block, batch)
    "shakespeare_char": (6, 6, 384, 256, 64),
    "cpu": (4, 4, 128, 64, 12),
}


class Switch(NamedTuple):
    """A speed switch of the trainer: the ``TrainConfig`` field, its value on and off, and
    whether it does anything on a CPU."""

    field: str
    on: object
    off: object
    cpu: bool


# the trainer's speed switches (the speed page's table); the ladders of this script and of
# benchmarks/gpu_proof.py turn them off one at a time
SWITCHES = {"bf16 autocast": Switch("dtype", "bfloat16", "float32", cpu=True),
            "TF32": Switch("tf32", True, False, cpu=False),  # CUDA matmuls only
            "fused AdamW": Switch("fused_adamw", True, False, cpu=True),
            "torch.compile": Switch("compile", True, False, cpu=True),
            "fast paths": Switch("fast", True, False, cpu=True)}
GPU_PEAKS = {"H100 PCIe": 756e12, "H100": 989e12, "H200": 989e12, "A100": 312e12}
clock = time.perf_counter  # --clock cpu: time.process_time, the CPU time of this process


def set_clock(name: str) -> None:
    global clock
    clock = time.process_time if name == "cpu" else time.perf_counter


def ours(shape: tuple, style: str, fast: bool) -> nn.Module:
    layers, heads, width, block, _ = shape
    common = dict(vocab_size=VOCAB, dim=width, n_layers=layers, n_heads=heads,
                  max_seq_len=block)
    if style == "gpt2":  # nanoGPT's choices: LayerNorm, GELU, learned positions, tied, no bias
        cfg = GPTConfig(**common, norm="layernorm", mlp="gelu", gelu_approximate="none",
                        pos="learned", tie_embeddings=True, bias=False)
    else:
        cfg = GPTConfig(**common)  # RMSNorm, SwiGLU, RoPE, untied
    model = MiniGPT(cfg)
    for module in model.modules():
        if hasattr(module, "fast"):
            module.fast = fast
    return model


def nanogpt(path: Path, shape: tuple) -> nn.Module:
    layers, heads, width, block, _ = shape
    file = path / "model.py" if path.is_dir() else path
    spec = importlib.util.spec_from_file_location("nanogpt_model", file)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    cfg = module.GPTConfig(block_size=block, vocab_size=VOCAB, n_layer=layers, n_head=heads,
                           n_embd=width, dropout=0.0, bias=False)
    with contextlib.redirect_stdout(io.StringIO()):  # it prints its parameter count
        return module.GPT(cfg)


def flops_per_token(model: nn.Module, shape: tuple) -> float:
    layers, heads, width, block, _ = shape
    linear = {id(m.weight): m.weight.numel() for m in model.modules()
              if isinstance(m, nn.Linear)}  # by id: a tied weight counts once
    return 6 * sum(linear.values()) + 12 * layers * heads * (width // heads) * block


def our_adamw(model: nn.Module, device: torch.device) -> torch.optim.Optimizer:
    return make_optimizer(model, TrainConfig(lr=1e-3, beta2=0.99, weight_decay=0.1), device)


def nanogpt_adamw(model: nn.Module, device: torch.device) -> torch.optim.Optimizer:
    with contextlib.redirect_stdout(io.StringIO()):  # it prints its parameter groups
        return model.configure_optimizers(0.1, 1e-3, (0.9, 0.99), device.type)


def make_step(model: nn.Module, adamw, shape: tuple, device: torch.device, compile: bool):
    """A closure running one full training step on a fixed random batch."""
    _, _, _, block, batch = shape
    model.to(device).train()
    params = [p for p in model.parameters() if p.requires_grad]
    cuda = device.type == "cuda"
    opt = adamw(model, device)
    forward = torch.compile(model) if compile else model
    autocast = torch.autocast("cuda", torch.bfloat16) if cuda else contextlib.nullcontext()
    g = torch.Generator().manual_seed(0)
    x, y = torch.randint(VOCAB, (2, batch, block), generator=g).to(device)  # (B, T) each

    def step() -> None:
        with autocast:
            _, loss = forward(x, y)
        loss.backward()
        nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)
        if cuda:
            torch.cuda.synchronize()

    return step


def matmul_flops() -> float:
    """float32 FLOP/s of a 2048 x 2048 matmul here, the best of 10 runs (the least disturbed
    by other work on the machine)."""
    n = 2048
    a, b = torch.randn(n, n), torch.randn(n, n)
    best = float("inf")
    for _ in range(10):
        start = time.perf_counter()
        a @ b
        best = min(best, time.perf_counter() - start)
    return 2 * n**3 / best


def peak_flops(device: torch.device, given: float | None) -> tuple[float, str]:
    if device.type == "cuda":
        name = torch.cuda.get_device_name(device)
        if given:
            return given, f"{name}: given with --peak"
        for key, peak in GPU_PEAKS.items():
            if key in name:
                return peak, f"{name}: dense bf16 peak"
        raise SystemExit(f"unknown GPU {name!r}: pass --peak FLOP/s")
    measured = matmul_flops()
    how = (f"a float32 2048x2048 matmul ran at {measured / 1e12:.3f} TFLOP/s here, "
           f"{torch.get_num_threads()} threads")
    return (given, f"given with --peak; {how}") if given else (measured, f"measured: {how}")


def speed_rows(shape_names: list[str], device: torch.device, compile: bool, fast: bool,
               steps: int, warmup: int, peak: float, nanogpt_path: Path | None = None,
               ) -> list[dict]:
    """One row per shape and implementation: parameters, median and best step time,
    tokens/s, MFU and the paired ratios against ours GPT-2 and nanoGPT (see the module
    docstring)."""
    rows = []
    for shape_name in shape_names:
        shape = SHAPES[shape_name]
        torch.manual_seed(0)
        models = {"ours GPT-2": (ours(shape, "gpt2", fast), our_adamw),
                  "ours Llama": (ours(shape, "llama", fast), our_adamw)}
        if nanogpt_path:
            models["nanoGPT"] = (nanogpt(nanogpt_path, shape), nanogpt_adamw)
            models["nanoGPT, our AdamW"] = (nanogpt(nanogpt_path, shape), our_adamw)
        step_fns = {name: make_step(m, adamw, shape, device, compile)
                    for name, (m, adamw) in models.items()}
        for step in step_fns.values():
            for _ in range(warmup):
                step()
        times: dict[str, list[float]] = {name: [] for name in step_fns}
        for _ in range(steps):  # alternate, so that load changes hit every model alike
            for name, step in step_fns.items():
                start = clock()
                step()
                times[name].append(clock() - start)
        tokens = shape[3] * shape[4]
        for name, (model, _) in models.items():
            seconds = statistics.median(times[name])
            rows.append({
                "shape": shape_name, "implementation": name,
                "params_M": sum(p.numel() for p in model.parameters()) / 1e6,
                "ms_per_step": 1000 * seconds, "best_ms": 1000 * min(times[name]),
                "tokens_per_s": tokens / seconds,
                "mfu": flops_per_token(model, shape) * tokens / seconds / peak,
                "time_gpt2": paired_ratio(times, name, "ours GPT-2"),
                "vs_nanogpt": paired_ratio(times, "nanoGPT", name),
                "same_adamw": paired_ratio(times, "nanoGPT, our AdamW", name)})
        del models, step_fns
    return rows


def benchmark(args: argparse.Namespace, device: torch.device) -> None:
    peak, how = peak_flops(device, args.peak)
    print(f"torch {torch.__version__}, {platform.processor() or platform.machine()}, "
          f"{torch.get_num_threads()} threads, device {device}"
          + (f" ({torch.cuda.get_device_name(device)})" if device.type == "cuda" else ""))
    print(f"peak {peak / 1e12:.3f} TFLOP/s ({how}); compile={args.compile}, fast={args.fast}, "
          f"{args.warmup} warm-up steps, median of {args.steps}, {args.clock} clock\n")
    header = (f"{'shape':<17} {'implementation':<19} {'params':>7} {'ms/step':>9} "
              f"{'best ms':>9} {'tokens/s':>10} {'MFU':>7} {'time/GPT-2':>10} "
              f"{'vs nanoGPT':>10} {'same AdamW':>10}")
    print(header)
    print("-" * len(header))
    for r in speed_rows(args.shapes, device, args.compile, args.fast, args.steps, args.warmup,
                        peak, args.nanogpt):
        print(f"{r['shape']:<17} {r['implementation']:<19} {r['params_M']:>6.2f}M "
              f"{r['ms_per_step']:>9.1f} {r['best_ms']:>9.1f} {r['tokens_per_s']:>10,.0f} "
              f"{100 * r['mfu']:>6.1f}% {r['time_gpt2']:>10} {r['vs_nanogpt']:>10} "
              f"{r['same_adamw']:>10}")
    print("\nms/step, tokens/s and MFU: medians; best ms: the fastest step; time/GPT-2: the median"
          "\nover rounds of this row's step time divided by ours GPT-2's (above 1: this row is"
          "\nslower); vs nanoGPT: the median over rounds of nanoGPT's step time divided by this"
          "\nrow's (above 1: this row is faster); same AdamW: the same against nanoGPT's model"
          "\nwith our AdamW")


def paired_ratio(times: dict[str, list[float]], base: str, name: str) -> str:
    """Median over rounds of ``base``'s step time / ``name``'s: the two ran back to back in
    each round, under the same load."""
    if base not in times:
        return "-"
    pairs = [a / b for a, b in zip(times[base], times[name], strict=True)]
    return f"{statistics.median(pairs):.2f}x"


def paired_ms(a, b, rounds: int) -> tuple[float, float, float]:
    """Median ms of ``a`` and of ``b``, run alternately, and the median of their ratio."""
    for _ in range(3):
        a(), b()
    ta, tb = [], []
    for _ in range(rounds):
        for fn, times in ((a, ta), (b, tb)):
            start = clock()
            fn()
            times.append(clock() - start)
    ratio = statistics.median(x / y for x, y in zip(ta, tb, strict=True))
    return 1000 * statistics.median(ta), 1000 * statistics.median(tb), ratio


def op_pairs(rows: int, width: int, heads: int, block: int) -> dict[str, tuple]:
    """(A, B) closures, forward + backward: GPT-2's GELU and the exact one; our three q, k, v
    projections and nanoGPT's one; SwiGLU's gate and up projections apart and as one matmul
    on their weights concatenated at each call; the course's RMSNorm and its fast path; RoPE
    as ``apply_rope`` on the heads of a projection and as ``rotate_pairs`` (pairs side by
    side, as the fast path's projection emits them)."""
    import torch.nn.functional as F

    from solutions.model import FastRMSNorm, rotate_pairs
    from solutions.positions import apply_rope, rope_angles

    x = torch.randn(rows, 4 * width, requires_grad=True)  # (B*T, hidden): the MLP activation
    grad = torch.randn(rows, 4 * width)
    h = torch.randn(rows, width, requires_grad=True)  # (B*T, dim): attention's input
    apart = [torch.randn(width, width, requires_grad=True) for _ in range(3)]
    joint = torch.randn(3 * width, width, requires_grad=True)
    hidden = GPTConfig(dim=width, n_heads=heads).hidden_dim  # SwiGLU's width by LLaMA's rule
    gate, up = (torch.randn(hidden, width, requires_grad=True) for _ in range(2))
    course, fast = FastRMSNorm(width), FastRMSNorm(width)
    fast.fast = True
    T, D = block, width // heads
    q = torch.randn(rows // T, T, heads, D).transpose(1, 2).requires_grad_()  # (B, H, T, D)
    q_grad = torch.randn(q.shape)
    positions = torch.arange(T)

    def rope_fast() -> None:
        angles = rope_angles(positions, D)  # what rotate computes at each call
        rotate_pairs(q, angles).backward(q_grad)

    return {
        f"GELU: tanh (GPT-2) vs erf, ({rows}, {4 * width})": (
            lambda: F.gelu(x, approximate="tanh").backward(grad),
            lambda: F.gelu(x).backward(grad)),
        f"q, k, v: 3 matmuls vs 1, ({rows}, {width})": (
            lambda: sum(F.linear(h, w).sum() for w in apart).backward(),
            lambda: F.linear(h, joint).sum().backward()),
        f"gate, up: 2 matmuls vs 1 on cat, ({rows}, {width})": (
            lambda: (F.silu(F.linear(h, gate)) * F.linear(h, up)).sum().backward(),
            lambda: (lambda g, u: F.silu(g) * u)(
                *F.linear(h, torch.cat((gate, up))).chunk(2, dim=-1)).sum().backward()),
        f"RMSNorm: course vs fast, ({rows}, {width})": (
            lambda: course(h).backward(h.detach()), lambda: fast(h).backward(h.detach())),
        f"RoPE: apply_rope vs rotate_pairs, {tuple(q.shape)}": (
            lambda: apply_rope(q, positions).backward(q_grad), rope_fast),
    }


def ops(args: argparse.Namespace) -> None:
    """Timed alone at each shape's activation sizes (at most 2048 rows of the batch): GPT-2's
    tanh GELU against the exact one (``gelu_approximate``: the GPT-2 presets use tanh, ours
    configured as nanoGPT the exact one, as nanoGPT does), q, k, v as three matmuls (our
    ``q_proj``, ``k_proj``, ``v_proj``, transformers' state-dict names) against nanoGPT's one,
    and the pieces of the Llama-style model's fast path (see ``op_pairs``)."""
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, {args.clock} clock; "
          f"forward + backward, medians of {args.steps} alternating runs\n")
    header = f"{'shape':<17} {'A vs B':<46} {'A ms':>8} {'B ms':>10} {'ratio':>6}"
    print(header)
    print("-" * len(header))
    for shape_name in args.shapes:
        _, heads, width, block, batch = SHAPES[shape_name]
        for name, (a, b) in op_pairs(min(batch * block, 2048), width, heads, block).items():
            a_ms, b_ms, ratio = paired_ms(a, b, args.steps)
            print(f"{shape_name:<17} {name:<46} {a_ms:>8.2f} {b_ms:>10.2f} {ratio:>5.2f}x")
    print("\nratio: the median over rounds of A's time / B's (above 1: A is slower)")


def module_closures(model: nn.Module, shape: tuple) -> dict[str, tuple[int, object]]:
    """``{part: (how many, closure)}``: each closure runs that part of ``model`` alone, forward
    and backward, on the inputs it receives inside a real forward pass (captured by hooks)."""
    import torch.nn.functional as F

    _, _, _, block, batch = shape
    g = torch.Generator().manual_seed(0)
    idx, targets = torch.randint(VOCAB, (2, batch, block), generator=g)  # (B, T) each
    inputs: dict[str, torch.Tensor] = {}
    layer = model.layers[0]
    parts = {"norm": layer.input_layernorm, "attention": layer.self_attn, "mlp": layer.mlp,
             "head": model.norm}
    hooks = [m.register_forward_pre_hook(lambda m, a, name=name: inputs.setdefault(
        name, a[0].detach())) for name, m in parts.items()]
    with torch.no_grad():
        model(idx)
    for hook in hooks:
        hook.remove()

    def run(fn, x: torch.Tensor):
        def closure() -> None:
            leaf = x.clone().requires_grad_()
            out = fn(leaf)
            out.backward(torch.ones_like(out) / out.numel())
        return closure

    def embeddings() -> None:
        x = model.embed_tokens(idx)
        if hasattr(model, "embed_positions"):
            x = x + model.embed_positions(torch.arange(block))
        x.sum().backward()

    def head(x: torch.Tensor) -> torch.Tensor:
        logits = model.lm_head(model.norm(x))
        return F.cross_entropy(logits.flatten(0, 1), targets.flatten())

    L = len(model.layers)
    closures = {
        "embeddings": (1, embeddings),
        "norm": (2 * L, run(layer.input_layernorm, inputs["norm"])),
        "attention": (L, run(layer.self_attn, inputs["attention"])),
        "mlp": (L, run(layer.mlp, inputs["mlp"])),
        "final norm, LM head, loss": (1, run(head, inputs["head"])),
    }
    if getattr(layer.self_attn, "rope_theta", None) is not None:  # the same layer without RoPE
        theta = layer.self_attn.rope_theta

        def no_rope(x: torch.Tensor) -> torch.Tensor:
            layer.self_attn.rope_theta = None
            try:
                return layer.self_attn(x)
            finally:
                layer.self_attn.rope_theta = theta

        closures["attention without RoPE"] = (L, run(no_rope, inputs["attention"]))
    return closures


def op_times(step) -> dict[str, float]:
    """Milliseconds per operator (``aten.mm``, ...) over one call of ``step``, forward and
    backward, on ``clock``: every operator PyTorch dispatches, timed as it runs (each one's
    own time; a composite operator shows as the operators it is made of)."""
    from collections import Counter

    from torch.utils._python_dispatch import TorchDispatchMode

    class OpTimer(TorchDispatchMode):
        def __init__(self) -> None:
            super().__init__()
            self.ms: Counter[str] = Counter()

        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            start = clock()
            out = func(*args, **(kwargs or {}))
            self.ms[str(func.overloadpacket)] += 1000 * (clock() - start)
            return out

    with OpTimer() as timer:
        step()
    return dict(timer.ms)


def profile_models(args: argparse.Namespace) -> None:
    """Where the time of a forward + backward goes, per part of the model and per operator,
    for the GPT-2-style and the Llama-style model side by side."""
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, {args.clock} clock; "
          f"forward + backward (no optimizer), medians of {args.steps} rounds alternating the "
          "two models\n")
    whole = "whole forward + backward"
    for shape_name in args.shapes:
        shape = SHAPES[shape_name]
        layers, heads, width, block, batch = shape
        torch.manual_seed(0)
        models = {"GPT-2": ours(shape, "gpt2", args.fast),
                  "Llama": ours(shape, "llama", args.fast)}
        closures = {name: module_closures(m, shape) for name, m in models.items()}
        x, y = torch.randint(VOCAB, (2, batch, block), generator=torch.Generator().manual_seed(0))
        times: dict[tuple[str, str], list[float]] = {}
        passes: dict[str, list[dict[str, float]]] = {name: [] for name in models}
        for round_ in range(args.warmup + args.steps):
            timed = round_ >= args.warmup
            for name, model in models.items():
                for part, (_, fn) in closures[name].items():
                    fn()  # untimed: the first call after the whole passes pays for memory
                    start = clock()
                    fn()
                    if timed:
                        times.setdefault((name, part), []).append(clock() - start)
                model.zero_grad(set_to_none=True)
                start = clock()
                model(x, y)[1].backward()
                if timed:
                    times.setdefault((name, whole), []).append(clock() - start)
                    model.zero_grad(set_to_none=True)  # once more, each operator timed
                    passes[name].append(op_times(lambda m=model, x=x, y=y: m(x, y)[1].backward()))
                model.zero_grad(set_to_none=True)
        print(f"{shape_name}: {layers} layers, {heads} heads, width {width}, block {block}, "
              f"batch {batch}")
        header = (f"{'part':<27} {'count':>5} {'GPT-2 ms':>9} {'Llama ms':>9} "
                  f"{'GPT-2 x n':>10} {'Llama x n':>10} {'ratio':>6}")
        print(header)
        print("-" * len(header))
        totals = dict.fromkeys(models, 0.0)
        for part in [*closures["Llama"], whole]:
            row = {}
            for name in models:
                if (name, part) in times:
                    count = 1 if part == whole else closures[name][part][0]
                    ms = 1000 * statistics.median(times[name, part])
                    row[name] = (count, ms)
                    if part not in (whole, "attention without RoPE"):
                        totals[name] += count * ms
            count = row["Llama"][0]
            cells = [f"{row[n][1]:.1f}" if n in row else "-" for n in models]
            sums = [f"{row[n][0] * row[n][1]:.1f}" if n in row else "-" for n in models]
            ratio = (f"{row['Llama'][1] / row['GPT-2'][1]:.2f}x" if len(row) == 2 else "-")
            print(f"{part:<27} {count:>5} {cells[0]:>9} {cells[1]:>9} {sums[0]:>10} "
                  f"{sums[1]:>10} {ratio:>6}")
        print(f"{'sum of the parts':<27} {'':>5} {'':>9} {'':>9} {totals['GPT-2']:>10.1f} "
              f"{totals['Llama']:>10.1f} {totals['Llama'] / totals['GPT-2']:>5.2f}x")
        ops = {name: {op: statistics.median(p.get(op, 0.0) for p in runs)
                      for op in set().union(*runs)} for name, runs in passes.items()}
        top = sorted(set(ops["GPT-2"]) | set(ops["Llama"]),
                     key=lambda op: -max(ops["GPT-2"].get(op, 0), ops["Llama"].get(op, 0)))
        shown = top[:args.top_ops]
        print(f"\n{'operator (in the whole pass)':<42} {'GPT-2 ms':>9} {'Llama ms':>9}")
        print("-" * 62)
        for op in [*shown, "all other operators", "total"]:
            if op == "all other operators":
                cells = [sum(v for o, v in ops[n].items() if o not in shown) for n in models]
            elif op == "total":
                cells = [sum(ops[n].values()) for n in models]
            else:
                cells = [ops[n].get(op, 0.0) for n in models]
            short = op.replace("_scaled_dot_product_flash_attention_for_cpu", "flash_attention")
            print(f"{short:<42} {cells[0]:>9.1f} {cells[1]:>9.1f}")
        print()
    print("count: how many of that part a forward pass runs (norm: two per layer; the final one "
          "is\nin the LM-head row); x n: the median time of one, times the count; ratio: Llama "
          "/ GPT-2,\nfor one; operators: the median over the rounds of each one's time in the "
          "whole pass")


def cxx_compiler() -> str | None:
    """The C++ compiler ``torch.compile`` would build CPU kernels with (``$CXX``, else the
    first of g++, c++, clang++ on the PATH), or None."""
    names = [os.environ["CXX"]] if os.environ.get("CXX") else ["g++", "c++", "clang++"]
    return next((found for name in names if (found := shutil.which(name))), None)


def ladder_rows(shape_name: str, device: torch.device, steps: int, warmup: int,
                can_compile: bool = True) -> list[dict]:
    """The trainer's step of the Llama-style model at ``shape_name`` with every switch of
    ``SWITCHES`` that applies on ``device`` on ("everything on"), then each one off, stepped
    in alternation. One row per configuration: ``configuration``, ``switches`` (its
    ``TrainConfig`` fields), and either ``ms_per_step``
    (median), ``tokens_per_s`` and ``vs_on`` (the median over rounds of this step time / the
    everything-on one of the same round), or ``note`` (why it has no time). ``can_compile``:
    False where ``torch.compile`` cannot run (a CPU without a C++ compiler)."""
    from solutions.data import load_dataset
    from solutions.train import Trainer

    shape = SHAPES[shape_name]
    _, _, _, block, batch = shape
    notes = {name: "does nothing on a CPU (CUDA matmuls only)" for name, s in SWITCHES.items()
             if device.type == "cpu" and not s.cpu}
    if not can_compile:
        notes["torch.compile"] = ("not measured: no C++ compiler here (inductor, compile's "
                                  "CPU backend, writes C++)")
    on = {s.field: s.on if name not in notes else s.off for name, s in SWITCHES.items()}
    configs = {"everything on": on}
    configs.update({f"without {name}": {**on, s.field: s.off}
                    for name, s in SWITCHES.items() if name not in notes})
    data = load_dataset("char")
    trainers = {}
    for name, switches in configs.items():
        torch.manual_seed(0)
        cfg = TrainConfig(batch_size=batch, block_size=block, max_iters=10**6,
                          device=str(device), **switches)
        trainers[name] = Trainer(ours(shape, "llama", fast=True), data, cfg)
    for trainer in trainers.values():
        for _ in range(warmup):  # the first step compiles, where compile is on
            trainer.train_step()
    times: dict[str, list[float]] = {name: [] for name in trainers}
    for _ in range(steps):  # alternate, so that load changes hit every configuration alike
        for name, trainer in trainers.items():
            start = clock()
            trainer.train_step()  # reads the loss back: waits for a GPU
            times[name].append(clock() - start)
    rows = []
    for name in ["everything on", *(f"without {n}" for n in SWITCHES)]:
        switch = name.removeprefix("without ")
        if switch in notes:
            rows.append({"configuration": name, "switches": None, "note": notes[switch]})
            continue
        seconds = statistics.median(times[name])
        rows.append({"configuration": name, "switches": configs[name],
                     "ms_per_step": 1000 * seconds,
                     "tokens_per_s": batch * block / seconds,
                     "vs_on": statistics.median(a / b for a, b in zip(
                         times[name], times["everything on"], strict=True))})
    return rows


def ladder(args: argparse.Namespace, device: torch.device) -> None:
    """``--ladder``: :func:`ladder_rows` at each shape, printed."""
    compiler = cxx_compiler()
    print(f"torch {torch.__version__}, {platform.processor() or platform.machine()}, "
          f"{torch.get_num_threads()} threads, device {device}, {args.clock} clock; C++ "
          f"compiler for torch.compile: {compiler or 'none'}")
    print("the trainer's step (Trainer.train_step: a real batch, forward, backward, clipping, "
          "AdamW)\nof the Llama-style model, every switch on, then each off in turn, "
          f"alternating step by step;\nmedians of {args.steps} rounds after {args.warmup} "
          "warm-up steps each\n")
    header = f"{'shape':<17} {'configuration':<24} {'ms/step':>9} {'tokens/s':>10} {'vs on':>7}"
    print(header)
    print("-" * len(header))
    for shape_name in args.shapes:
        for r in ladder_rows(shape_name, device, args.steps, args.warmup,
                             can_compile=device.type != "cpu" or compiler is not None):
            if "note" in r:
                print(f"{shape_name:<17} {r['configuration']:<24} {r['note']}")
            else:
                print(f"{shape_name:<17} {r['configuration']:<24} {r['ms_per_step']:>9.1f} "
                      f"{r['tokens_per_s']:>10,.0f} {r['vs_on']:>6.2f}x")
    print("\nms/step and tokens/s: medians; vs on: the median over rounds of this step time "
          "divided\nby the everything-on step's of the same round (above 1: turning the switch "
          "off costs time)")


def time_boxed_run(device: torch.device, seconds: float, max_iters: int = 2500,
                   eval_iters: int = 200, eval_interval: int = 250, compile: bool = False,
                   fast: bool = True, progress: bool = False, preset: str = "shakespeare_char",
                   target: float = 1.47, **train_overrides) -> dict:
    """Shakespeare-char with every CUDA switch for ``seconds`` of training steps.

    nanoGPT's recipe (lr 1e-3 to 1e-4, batch 64, block 256, 6x6x384, warm-up 100, beta2
    0.99) on the Llama-style preset, whose lack of dropout is made up for by a shorter run:
    the second half of the warm-up measures the speed (the first half includes compilation),
    then the cosine is set to end when the time does, at most ``max_iters`` steps (a
    dropout-free model of this size overfits the 1 MB text on long runs). Evaluation time is
    not counted; compilation is (``compile``; bf16, TF32, fused AdamW and the fast paths are
    on by default on CUDA). ``preset`` and ``train_overrides`` (TrainConfig fields) shrink
    the run for a dry run on a CPU.

    Returns the evaluations (each with ``train_time``, the seconds of training before it),
    the step count, the training time, the warm-up's ms per step, the final and best
    validation loss, and ``time_to_target``: the training time at the first evaluation at or
    below ``target`` (None if none was).
    """
    from solutions.data import load_dataset
    from solutions.train import TRAIN_PRESETS, TrainConfig, Trainer

    data = load_dataset("char")
    torch.manual_seed(1337)
    cfg = TrainConfig(**{**TRAIN_PRESETS["shakespeare_char"], "max_iters": max_iters,
                         "eval_interval": eval_interval, "eval_iters": eval_iters,
                         "device": str(device), "compile": compile, "fast": fast,
                         "time_limit": seconds, **train_overrides})
    model = MiniGPT(GPTConfig.preset(preset, vocab_size=data.vocab_size,
                                     max_seq_len=cfg.block_size))
    trainer = Trainer(model, data, cfg)
    eval_times: list[float] = []  # the training time at each evaluation
    on_eval = lambda t, record: eval_times.append(t.train_time)
    half = max(1, cfg.warmup_iters // 2)  # the first half compiles; the second half measures
    trainer.fit(max_iters=half, progress=progress, callback=on_eval)
    compiled = trainer.train_time
    trainer.fit(max_iters=max(half + 1, cfg.warmup_iters), progress=progress, callback=on_eval)
    per_step = (trainer.train_time - compiled) / max(1, trainer.step - half)
    left = max(0.0, seconds - trainer.train_time)
    fits = trainer.step + (int(left / per_step) if per_step else 0)
    cfg.max_iters = cfg.lr_decay_iters = max(trainer.step + 1, min(max_iters, fits))
    history = trainer.fit(progress=progress, callback=on_eval)
    evals = [{**rec, "train_time": t} for rec, t in zip(history, eval_times, strict=True)]
    reached = next((e["train_time"] for e in evals if e["val"] <= target), None)
    return {"evals": evals, "steps": trainer.step, "train_time": trainer.train_time,
            "warmup_ms_per_step": 1000 * per_step, "planned_steps": cfg.max_iters,
            "final_val": evals[-1]["val"], "best_val": min(e["val"] for e in evals),
            "target": target, "time_to_target": reached, "device": str(trainer.device)}


def train_to_loss(args: argparse.Namespace, device: torch.device) -> None:
    """``--train-seconds``: :func:`time_boxed_run`, printed."""
    run = time_boxed_run(device, args.train_seconds, args.max_iters, args.eval_iters,
                         compile=args.compile, fast=args.fast, progress=args.progress)
    print(f"warm-up: {run['warmup_ms_per_step']:.1f} ms/step; cosine to min_lr at step "
          f"{run['planned_steps']}")
    print(f"\n{'step':>6} {'seconds':>8} {'train':>7} {'val':>7} {'tokens/s':>10}")
    for rec in run["evals"]:
        print(f"{rec['step']:>6} {rec['train_time']:>8.1f} {rec['train']:>7.4f} "
              f"{rec['val']:>7.4f} {rec['tokens_per_s']:>10,.0f}")
    print(f"\n{run['steps']} steps in {run['train_time']:.1f} s of training on {device}: "
          f"final val {run['final_val']:.4f}, best val {run['best_val']:.4f} "
          f"(best {'meets' if run['best_val'] <= 1.47 else 'misses'} the 1.47 target; nanoGPT "
          "also reports its best evaluation)")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--shapes", nargs="+", default=list(SHAPES), choices=list(SHAPES))
    p.add_argument("--steps", type=int, default=10, help="timed steps per implementation")
    p.add_argument("--warmup", type=int, default=2, help="untimed steps first")
    p.add_argument("--compile", action="store_true", help="torch.compile every model")
    p.add_argument("--fast", action=argparse.BooleanOptionalAction, default=True,
                   help="our model's fast paths (fast: fused attention, RMSNorm, RoPE)")
    p.add_argument("--nanogpt", type=Path, help="a nanoGPT checkout or its model.py")
    p.add_argument("--peak", type=float, help="peak FLOP/s for MFU (default: see above)")
    p.add_argument("--threads", type=int, help="torch.set_num_threads")
    p.add_argument("--clock", choices=("wall", "cpu"), default="wall",
                   help="cpu: time the CPU this process used, not the wall clock (a busy "
                        "machine's waits drop out; on a GPU use wall)")
    p.add_argument("--train-seconds", type=float,
                   help="instead: train shakespeare-char for this many seconds, report val loss")
    p.add_argument("--max-iters", type=int, default=2500, help="with --train-seconds")
    p.add_argument("--eval-iters", type=int, default=200, help="with --train-seconds")
    p.add_argument("--progress", action="store_true", help="with --train-seconds: tqdm bar")
    p.add_argument("--ops", action="store_true",
                   help="instead: time the operations where ours and nanoGPT differ")
    p.add_argument("--profile", action="store_true",
                   help="instead: per part and per operator, GPT-2 style against Llama style")
    p.add_argument("--top-ops", type=int, default=16, help="with --profile: operators shown")
    p.add_argument("--ladder", action="store_true",
                   help="instead: the trainer's step, every speed switch on, then each off")
    args = p.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    set_clock(args.clock)
    device = torch.device(args.device)
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = True
    if args.ops:
        ops(args)
    elif args.profile:
        profile_models(args)
    elif args.ladder:
        ladder(args, device)
    elif args.train_seconds:
        train_to_loss(args, device)
    else:
        benchmark(args, device)


if __name__ == "__main__":
    main()
