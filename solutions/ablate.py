"""Controlled experiments on the week-7 trainer: which MLP (week 3), which positions (week 4).

    python -m solutions.ablate activations [--quick] [--seeds N] [--steps N] [--out DIR]
    python -m solutions.ablate positions [--quick] [--seeds N] [--steps N] [--out DIR]

Each prints a Markdown table and writes ``DIR/<experiment>.json`` (every number, and the
command that made it), ``.png`` and ``.svg`` (default ``DIR``: ``out/ablate``).

- ``activations``: MiniGPTs that differ only in their MLP, ReLU, GELU and SiLU (plain, 4x
  wide) and SwiGLU (gated, at the width with the same parameters within 1 %:
  ``swiglu_hidden_dim``), trained on tiny Shakespeare; validation-loss curves.
- ``positions``: RoPE, ALiBi, no positions (NoPE) and learned positions, trained on windows of
  64 characters, then evaluated on 64, 128, 256 and 512: mean loss and loss per position.
  Learned positions have no row past 64 and refuse longer inputs (recorded, not evaluated).

What is held fixed, so that the variant is the only difference: the seed (for seed ``s``
every variant starts from ``torch.manual_seed(s)`` and draws its batches from a generator
seeded with ``s``, so all see the same batches in the same order, recorded as a digest per
run), the step count, the learning-rate schedule, the evaluation batches (the trainer's own,
fixed) and the evaluation windows. Differences between variants are compared with the
spread between seeds: the table gives the mean and standard deviation over seeds.

Python API (the week-3 and week-4 notebooks call it with no arguments):
    ``run_activations(quick=None, seeds=None, steps=None, progress=None, threads=1) -> dict``
    ``run_positions(quick=None, seeds=None, steps=None, progress=None, threads=1) -> dict``
    (``quick=None``: ``quick_from_environment()``; ``threads``: CPU threads while training,
    restored afterwards, ``None`` to leave torch's setting alone),
    ``markdown_table(results) -> str``, ``plot_results(results) -> Figure`` (the figure
    follows matplotlib's current style), ``save_results(results, out_dir) -> [paths]``,
    ``load_results("activations" | "positions") -> dict`` (the committed full runs,
    ``site/assets/ablations/<experiment>.json``).
The results dict: ``experiment``, ``command``, ``settings``, ``variants`` (per variant:
``parameters``, ``config``, ``final_val`` {mean, std, min, max}, ``curve`` {steps, mean,
std}, ``initial_val``, ``runs`` (per seed: ``seed``, ``batch_digest``, ``history``, ...);
for positions also ``lengths`` {"64": {mean, std, min, max} or {"refused": message}} and
``per_position`` {"64": [mean loss at each position], ...}).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import statistics
import sys
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor

from solutions.data import Dataset, load_dataset
from solutions.feedforward import swiglu_hidden_dim
from solutions.model import GPTConfig, MiniGPT
from solutions.scaling import count_parameters
from solutions.train import TrainConfig, Trainer

# the full runs the lessons quote, made by the commands in their "command" field
RESULTS_DIR = Path(__file__).resolve().parents[1] / "site" / "assets" / "ablations"
ACTIVATIONS = ("relu", "gelu", "silu", "swiglu")
POSITIONS = ("rope", "alibi", "none", "learned")
TRAIN_LENGTH = 64  # the positions experiment trains on windows of this many characters
EVAL_LENGTHS = (64, 128, 256, 512)


@dataclass(frozen=True)
class Setup:
    """The size of one experiment: the model, the run, the seeds and the evaluation."""

    dim: int
    n_layers: int
    n_heads: int
    batch_size: int
    steps: int
    seeds: int
    eval_iters: int  # batches per evaluation of the trainer (the curves)
    eval_windows: int  # windows per length in the positions evaluation
    lr: float = 3e-3
    min_lr: float = 3e-4


# the default fits a laptop CPU in a few minutes per experiment; --quick, CI in seconds
FULL = Setup(dim=64, n_layers=2, n_heads=4, batch_size=16, steps=400, seeds=3, eval_iters=10,
             eval_windows=32)
QUICK = Setup(dim=32, n_layers=1, n_heads=2, batch_size=8, steps=24, seeds=2, eval_iters=2,
              eval_windows=4)


def quick_from_environment(environ: Mapping[str, str] | None = None) -> bool:
    """Whether to run the tiny version (a few seconds; its numbers mean nothing): when the
    course's tests set ``COURSE_QUICK=1``, or while nbgrader grades or validates a notebook
    (``NBGRADER_EXECUTION`` is ``autograde`` or ``validate``). ``environ``: ``os.environ``."""
    env = os.environ if environ is None else environ
    return (env.get("COURSE_QUICK") == "1"
            or env.get("NBGRADER_EXECUTION") in ("autograde", "validate"))


@contextmanager
def cpu_threads(n: int | None) -> Iterator[int]:
    """Run the block on ``n`` CPU threads, then restore torch's count (``None``: leave it).
    Yields the count in force. A model this small trains fastest on one thread: more mostly
    wait on each other."""
    before = torch.get_num_threads()
    if n is not None:
        torch.set_num_threads(n)
    try:
        yield torch.get_num_threads()
    finally:
        torch.set_num_threads(before)


def model_config(setup: Setup, vocab_size: int, **change) -> GPTConfig:
    """The experiments' MiniGPT: Llama-style (RMSNorm, no biases, MHA), RoPE and SwiGLU
    unless ``change`` says otherwise; plain MLPs 4x wide, SwiGLU at their parameter count."""
    cfg = dict(vocab_size=vocab_size, dim=setup.dim, n_layers=setup.n_layers,
               n_heads=setup.n_heads, max_seq_len=TRAIN_LENGTH, gelu_approximate="none",
               **change)
    if cfg.get("mlp", "swiglu") == "swiglu":
        cfg["hidden_dim"] = swiglu_hidden_dim(setup.dim, 4 * setup.dim)
    return GPTConfig(**cfg)


def train_config(setup: Setup, seed: int, device: str = "cpu") -> TrainConfig:
    """The same schedule for every variant: warm-up over 10 % of the steps, cosine decay."""
    return TrainConfig(batch_size=setup.batch_size, block_size=TRAIN_LENGTH,
                       max_iters=setup.steps, lr=setup.lr, min_lr=setup.min_lr,
                       warmup_iters=max(1, setup.steps // 10),
                       eval_interval=max(1, setup.steps // 8), eval_iters=setup.eval_iters,
                       seed=seed, device=device, fast=True)


class RecordingTrainer(Trainer):
    """The week-7 trainer, keeping a digest of every training batch it draws (the control
    that all variants of a seed saw the same data in the same order)."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self._digest = hashlib.sha256()

    def _batch(self, split: str, generator: torch.Generator) -> tuple[Tensor, Tensor]:
        x, y = super()._batch(split, generator)
        if generator is self.generator:  # training batches (evaluation has its own generator)
            self._digest.update(x.cpu().numpy().tobytes())
        return x, y

    @property
    def batch_digest(self) -> str:
        return self._digest.hexdigest()[:16]


def _train(cfg: GPTConfig, data: Dataset, setup: Setup, seed: int, device: str,
           progress: bool) -> tuple[RecordingTrainer, dict]:
    torch.manual_seed(seed)  # the same initial draw for every variant of this seed
    trainer = RecordingTrainer(MiniGPT(cfg), data, train_config(setup, seed, device))
    start = time.perf_counter()
    history = trainer.fit(progress=progress)
    run = {"seed": seed, "batch_digest": trainer.batch_digest,
           "initial_val": history[0]["val"], "initial_train": history[0]["train"],
           "final_val": history[-1]["val"], "final_train": history[-1]["train"],
           "history": [{k: round(r[k], 5) for k in ("step", "train", "val", "lr")}
                       for r in history],
           "seconds": round(time.perf_counter() - start, 1)}
    return trainer, run


def eval_windows(data: Tensor, length: int, n: int) -> Tensor:
    """``n`` windows of ``length + 1`` tokens, evenly spaced over ``data`` (the validation
    text): the same windows for every variant and seed. Returns ``(n, length + 1)``."""
    starts = torch.linspace(0, len(data) - length - 2, n).long()
    return torch.stack([data[s:s + length + 1] for s in starts.tolist()])


@torch.no_grad()
def per_position_loss(model: MiniGPT, windows: Tensor, batch_size: int = 8) -> Tensor:
    """The cross-entropy at each position of ``windows`` ``(n, T + 1)``, averaged over the
    windows: ``(T,)``. Raises what the model raises (learned positions past their table)."""
    model.eval()
    device = next(model.parameters()).device
    total = torch.zeros(windows.size(1) - 1)
    for chunk in windows.split(batch_size):
        chunk = chunk.to(device)
        logits, _ = model(chunk[:, :-1])  # (b, T, V)
        loss = F.cross_entropy(logits.float().transpose(1, 2), chunk[:, 1:], reduction="none")
        total += loss.sum(0).cpu()  # (T,)
    model.train()
    return total / windows.size(0)


def _spread(values: list[float]) -> dict:
    """Mean, standard deviation (over seeds; 0 for one), min and max."""
    return {"mean": round(statistics.fmean(values), 5),
            "std": round(statistics.stdev(values), 5) if len(values) > 1 else 0.0,
            "min": round(min(values), 5), "max": round(max(values), 5)}


def _summarise(variant: dict) -> None:
    """Add the over-seeds summaries of a variant's runs."""
    runs = variant["runs"]
    variant["final_val"] = _spread([r["final_val"] for r in runs])
    variant["initial_val"] = _spread([r["initial_val"] for r in runs])
    curves = [[h["val"] for h in r["history"]] for r in runs]
    variant["curve"] = {
        "steps": [h["step"] for h in runs[0]["history"]],
        "mean": [round(statistics.fmean(c), 5) for c in zip(*curves, strict=True)],
        "std": [round(statistics.stdev(c), 5) if len(c) > 1 else 0.0
                for c in zip(*curves, strict=True)]}


def _settings(setup: Setup, device: str) -> dict:
    return {**asdict(setup), "train_length": TRAIN_LENGTH, "device": device,
            "threads": torch.get_num_threads(),
            "torch": torch.__version__, "data": "tiny Shakespeare, characters (course/data)",
            "seed_values": list(range(setup.seeds))}


def _setup(quick: bool, seeds: int | None, steps: int | None) -> Setup:
    setup = QUICK if quick else FULL
    return replace(setup, seeds=seeds or setup.seeds, steps=steps or setup.steps)


def _command(experiment: str, quick: bool, seeds: int | None, steps: int | None) -> str:
    args = [experiment] + (["--quick"] if quick else []) + (
        [f"--seeds {seeds}"] if seeds else []) + ([f"--steps {steps}"] if steps else [])
    return "python -m solutions.ablate " + " ".join(args)


def run_activations(quick: bool | None = None, seeds: int | None = None,
                    steps: int | None = None, progress: bool | None = None,
                    device: str = "cpu", data: Dataset | None = None,
                    threads: int | None = 1) -> dict:
    """Train ReLU, GELU, SiLU (plain MLPs) and SwiGLU models for every seed; the results dict
    of the module docstring. ``quick``: the tiny version (default: ``quick_from_environment``);
    ``progress``: the trainer's bars (default: off when quick); ``threads``: CPU threads while
    training (``cpu_threads``)."""
    quick = quick_from_environment() if quick is None else quick
    with cpu_threads(threads):
        return _activations(quick, seeds, steps, progress, device, data)


def _activations(quick: bool, seeds: int | None, steps: int | None, progress: bool | None,
                 device: str, data: Dataset | None) -> dict:
    setup = _setup(quick, seeds, steps)
    data = data or load_dataset("char")
    progress = (not quick) if progress is None else progress
    variants = {}
    for mlp in ACTIVATIONS:
        cfg = model_config(setup, data.vocab_size, mlp=mlp)
        variant = {"parameters": count_parameters(cfg), "hidden_dim": cfg.hidden_dim,
                   "config": asdict(cfg), "runs": []}
        for seed in range(setup.seeds):
            _, run = _train(cfg, data, setup, seed, device, progress)
            variant["runs"].append(run)
        _summarise(variant)
        variants[mlp] = variant
    return {"experiment": "activations", "command": _command("activations", quick, seeds, steps),
            "settings": _settings(setup, device), "variants": variants}


def run_positions(quick: bool | None = None, seeds: int | None = None,
                  steps: int | None = None, progress: bool | None = None,
                  device: str = "cpu", data: Dataset | None = None,
                  lengths: tuple[int, ...] = EVAL_LENGTHS, threads: int | None = 1) -> dict:
    """Train RoPE, ALiBi, no-position and learned-position models at 64 characters for every
    seed, then evaluate each at ``lengths``; the results dict of the module docstring.
    ``quick``, ``progress`` and ``threads`` as in ``run_activations``."""
    quick = quick_from_environment() if quick is None else quick
    with cpu_threads(threads):
        return _positions(quick, seeds, steps, progress, device, data, lengths)


def _positions(quick: bool, seeds: int | None, steps: int | None, progress: bool | None,
               device: str, data: Dataset | None, lengths: tuple[int, ...]) -> dict:
    setup = _setup(quick, seeds, steps)
    data = data or load_dataset("char")
    progress = (not quick) if progress is None else progress
    windows = {L: eval_windows(data.val, L, setup.eval_windows) for L in lengths}
    variants = {}
    for pos in POSITIONS:
        cfg = model_config(setup, data.vocab_size, pos=pos)
        variant = {"parameters": count_parameters(cfg), "config": asdict(cfg), "runs": []}
        for seed in range(setup.seeds):
            trainer, run = _train(cfg, data, setup, seed, device, progress)
            run["lengths"] = {}
            for L, w in windows.items():
                try:
                    curve = per_position_loss(trainer.raw_model, w)
                except ValueError as exc:  # learned positions past their table
                    run["lengths"][str(L)] = {"refused": str(exc)}
                    continue
                run["lengths"][str(L)] = {"mean": round(float(curve.mean()), 5),
                                          "per_position": [round(v, 4) for v in curve.tolist()]}
            variant["runs"].append(run)
        _summarise(variant)
        variant["lengths"], variant["per_position"] = {}, {}
        for L in map(str, lengths):
            evals = [r["lengths"][L] for r in variant["runs"]]
            if "refused" in evals[0]:
                variant["lengths"][L] = {"refused": evals[0]["refused"]}
                continue
            variant["lengths"][L] = _spread([e["mean"] for e in evals])
            per = zip(*(e["per_position"] for e in evals), strict=True)
            variant["per_position"][L] = [round(statistics.fmean(p), 4) for p in per]
        variants[pos] = variant
    return {"experiment": "positions", "command": _command("positions", quick, seeds, steps),
            "settings": {**_settings(setup, device), "eval_lengths": list(lengths)},
            "variants": variants}


def _pm(s: dict) -> str:
    return f"{s['mean']:.3f} ± {s['std']:.3f}"


def markdown_table(results: dict) -> str:
    """The results as a Markdown table: mean ± standard deviation over the seeds."""
    n = results["settings"]["seeds"]
    steps = results["settings"]["steps"]
    v = results["variants"]
    if results["experiment"] == "activations":
        lines = [f"| MLP | parameters | hidden width | validation loss after {steps} steps "
                 f"(mean ± std, {n} seeds) | min – max | at step 0 |",
                 "|---|---:|---:|---:|---:|---:|"]
        for name, r in v.items():
            f = r["final_val"]
            lines.append(f"| {name} | {r['parameters']:,} | {r['hidden_dim']} | {_pm(f)} | "
                         f"{f['min']:.3f} – {f['max']:.3f} | {r['initial_val']['mean']:.3f} |")
    else:
        lengths = results["settings"]["eval_lengths"]
        lines = ["| positions | parameters | " + " | ".join(
            f"loss at {L} tokens" for L in lengths) + " |", "|---|---:|" + "---:|" * len(lengths)]
        for name, r in v.items():
            cells = [_pm(r["lengths"][str(L)]) if "mean" in r["lengths"][str(L)] else "refused"
                     for L in lengths]
            lines.append(f"| {name} | {r['parameters']:,} | " + " | ".join(cells) + " |")
        lines.append("")
        lines.append(f"Trained on {TRAIN_LENGTH} tokens; mean ± std over {n} seeds of the mean "
                     "validation loss over all positions of each window.")
    return "\n".join(lines)


def plot_results(results: dict):
    """A matplotlib figure of the results in the current style. Activations: validation loss
    against steps (mean over seeds, band of ± one standard deviation). Positions: mean loss
    against evaluation length, and loss per position at the longest length (smoothed)."""
    import matplotlib.pyplot as plt

    v = results["variants"]
    n = results["settings"]["seeds"]
    if results["experiment"] == "activations":
        fig, ax = plt.subplots(figsize=(7, 3.8))
        for name, r in v.items():
            c = r["curve"]
            lo = [m - s for m, s in zip(c["mean"], c["std"], strict=True)]
            hi = [m + s for m, s in zip(c["mean"], c["std"], strict=True)]
            line, = ax.plot(c["steps"], c["mean"], "o-", ms=3,
                            label=f"{name} ({r['parameters']:,} params)")
            ax.fill_between(c["steps"], lo, hi, color=line.get_color(), alpha=0.2, lw=0)
        last = min(r["curve"]["mean"][-1] - r["curve"]["std"][-1] for r in v.values())
        first = max(r["curve"]["mean"][1] for r in v.values() if len(r["curve"]["mean"]) > 1)
        ax.set_ylim(last - 0.05, first + 0.05)
        ax.set(xlabel="optimizer step", ylabel="validation loss (nats per character)",
               title=f"MLP activations at equal parameters: mean ± std over {n} seeds")
        ax.grid(alpha=0.5)
        ax.legend()
        fig.tight_layout()
        return fig
    lengths = results["settings"]["eval_lengths"]
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 3.8))
    longest = str(max(lengths))
    for name, r in v.items():
        got = [(L, r["lengths"][str(L)]) for L in lengths if "mean" in r["lengths"][str(L)]]
        xs = [L for L, _ in got]
        means = [s["mean"] for _, s in got]
        errs = [s["std"] for _, s in got]
        line = left.errorbar(xs, means, yerr=errs, marker="o", ms=4, capsize=3,
                             label=name + (" (refuses > 64)" if len(got) < len(lengths)
                                           else ""))[0]
        curve = r["per_position"].get(longest) or r["per_position"].get(str(TRAIN_LENGTH))
        k = 8  # moving average over k positions: the curve of one position is noisy
        smooth = [statistics.fmean(curve[max(0, i - k + 1):i + 1]) for i in range(len(curve))]
        right.plot(range(len(curve)), smooth, color=line.get_color(), label=name)
    left.set_xscale("log", base=2)
    left.set_xticks(lengths, [str(L) for L in lengths])
    left.axvline(TRAIN_LENGTH, ls=":", color="grey")
    left.set(xlabel="evaluation length (tokens)", ylabel="mean validation loss",
             title=f"trained at {TRAIN_LENGTH} tokens ({n} seeds)")
    right.axvline(TRAIN_LENGTH, ls=":", color="grey")
    right.set(xlabel="position in the window", ylabel="loss at that position",
              title=f"per position, windows of {longest} (mean of 8)")
    for ax in (left, right):
        ax.grid(alpha=0.5)
    left.legend()
    top = max(max(r["per_position"].get(str(TRAIN_LENGTH), [0])) for r in v.values())
    right.set_ylim(top=min(right.get_ylim()[1], top + 2.0))
    fig.tight_layout()
    return fig


def save_results(results: dict, out_dir: str | Path) -> list[Path]:
    """Write ``<experiment>.json``, ``.png`` and ``.svg`` into ``out_dir``; returns the paths."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    name = results["experiment"]
    paths = [out / f"{name}.json", out / f"{name}.png", out / f"{name}.svg"]
    paths[0].write_text(json.dumps(results, indent=1) + "\n", encoding="utf-8")
    fig = plot_results(results)
    fig.savefig(paths[1], dpi=120)
    fig.savefig(paths[2], metadata={"Date": None})
    plt.close(fig)
    return paths


def load_results(experiment: str, directory: str | Path = RESULTS_DIR) -> dict:
    """The results of a saved run, by default the committed full run the lessons quote."""
    return json.loads((Path(directory) / f"{experiment}.json").read_text(encoding="utf-8"))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("experiment", choices=("activations", "positions"))
    p.add_argument("--quick", action="store_true", help="a tiny model, a few steps (seconds)")
    p.add_argument("--seeds", type=int, default=None, help="seeds per variant")
    p.add_argument("--steps", type=int, default=None, help="optimizer steps per run")
    p.add_argument("--out", type=Path, default=Path("out/ablate"))
    p.add_argument("--device", default="cpu")
    p.add_argument("--threads", type=int, default=1,
                   help="CPU threads (small models: more threads mostly wait on each other)")
    args = p.parse_args(argv)
    run = run_activations if args.experiment == "activations" else run_positions
    start = time.perf_counter()
    results = run(quick=args.quick, seeds=args.seeds, steps=args.steps, progress=False,
                  device=args.device, threads=args.threads)
    results["command"] = "python -m solutions.ablate " + " ".join(
        sys.argv[1:] if argv is None else argv)
    results["settings"]["seconds"] = round(time.perf_counter() - start, 1)
    print(markdown_table(results))
    for path in save_results(results, args.out):
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
