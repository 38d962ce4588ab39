"""Week 7 trainer: one class that a notebook drives step by step and a command line runs.

    python -m solutions.train --preset shakespeare_char --data char --out-dir out/shakespeare
    python -m solutions.train --preset tiny --max-iters 200 --device cpu      # seconds on a CPU
    torchrun --standalone --nproc-per-node 2 -m solutions.train ...          # DDP

AdamW (weight decay on matrices only), linear warm-up then cosine decay, gradient
accumulation, gradient clipping, periodic evaluation, and checkpoints that resume exactly. On
CUDA: bf16 autocast, TF32 matmuls, fused AdamW (on the CPU too), ``torch.compile`` and the
model's fast paths (fused attention, RMSNorm, RoPE; on the CPU too), each switchable. Under
``torchrun`` every process draws the same global batch from the same generator and trains on
its slice, so DDP on N processes equals one process on the whole batch.
"""

from __future__ import annotations

import argparse
import ast
import contextlib
import json
import math
import os
import time
from dataclasses import asdict, dataclass, fields
from pathlib import Path

import torch
import torch.distributed as dist
from torch import Tensor, nn
from torch.nn.parallel import DistributedDataParallel
from tqdm.auto import tqdm

from solutions.data import Dataset, get_batch, load_dataset, load_text
from solutions.deepseek_moe import DeepSeekMoE, deepseek_route, expert_load, update_routing_bias
from solutions.model import PRESETS, GPTConfig, MiniGPT, generate
from solutions.moe import load_balancing_loss


@dataclass
class TrainConfig:
    """Everything about a training run except the model. ``batch_size`` is the global
    micro-batch: under DDP each of N processes takes ``batch_size / N`` of its rows."""

    batch_size: int = 12
    block_size: int = 64
    grad_accum: int = 1
    max_iters: int = 2000
    lr: float = 1e-3
    min_lr: float = 1e-4
    warmup_iters: int = 100
    lr_decay_iters: int | None = None  # None: max_iters
    weight_decay: float = 0.1
    beta1: float = 0.9
    beta2: float = 0.95
    grad_clip: float = 1.0  # 0: no clipping
    eval_interval: int = 250
    eval_iters: int = 20
    aux_loss_coef: float = 0.01  # x load_balancing_loss over model.router_logits (MoE)
    bias_update_rate: float = 1e-3  # DeepSeekMoE layers: balanced by their bias, not a loss
    seed: int = 1337
    device: str = "auto"  # "auto": cuda if available, else cpu
    dtype: str = "auto"  # "auto" | "float32" | "bfloat16" (autocast); auto = bf16 on CUDA
    compile: bool = False  # torch.compile
    tf32: bool = True  # CUDA matmul/cudnn TF32
    fused_adamw: bool = True  # one AdamW kernel for all parameters (CUDA and CPU)
    fast: bool = True  # .fast = True on every module that has that attribute (fused kernels)
    out_dir: str | None = None  # checkpoints (ckpt.pt) when set
    time_limit: float | None = None  # seconds of training steps (checked every 10 steps)


# nanoGPT's shakespeare-char recipe (its dropout 0.2 aside: our model has no dropout)
TRAIN_PRESETS = {
    "shakespeare_char": dict(batch_size=64, block_size=256, max_iters=5000, lr=1e-3,
                             min_lr=1e-4, warmup_iters=100, beta2=0.99, eval_iters=200),
}


def lr_at(step: int, cfg: TrainConfig) -> float:
    """Linear warm-up to ``lr`` over ``warmup_iters`` steps, then a cosine down to ``min_lr`` at
    ``lr_decay_iters`` (default ``max_iters``), then ``min_lr``."""
    decay_iters = cfg.lr_decay_iters or cfg.max_iters
    if step < cfg.warmup_iters:
        return cfg.lr * (step + 1) / cfg.warmup_iters  # never 0: the first step moves
    if step >= decay_iters:
        return cfg.min_lr
    progress = (step - cfg.warmup_iters) / max(1, decay_iters - cfg.warmup_iters)  # 0 -> 1
    return cfg.min_lr + (cfg.lr - cfg.min_lr) * 0.5 * (1 + math.cos(math.pi * progress))


def _init_distributed(device: str) -> tuple[int, int, int]:
    """(rank, world size, local rank); joins the process group when started by torchrun."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    if world_size > 1 and not dist.is_initialized():
        dist.init_process_group("nccl" if device.startswith("cuda") else "gloo")
    return int(os.environ.get("RANK", "0")), world_size, int(os.environ.get("LOCAL_RANK", "0"))


def make_optimizer(model: nn.Module, cfg: TrainConfig, device: torch.device) -> torch.optim.AdamW:
    """AdamW that decays the matrices (and embeddings), not the norm weights and biases; fused
    (one kernel updates every parameter) where PyTorch has that kernel: CUDA, and since 2.4 the
    CPU."""
    params = [p for p in model.parameters() if p.requires_grad]
    groups = [{"params": [p for p in params if p.dim() >= 2], "weight_decay": cfg.weight_decay},
              {"params": [p for p in params if p.dim() < 2], "weight_decay": 0.0}]
    fused = cfg.fused_adamw and device.type in ("cuda", "cpu")
    return torch.optim.AdamW(groups, lr=cfg.lr, betas=(cfg.beta1, cfg.beta2),
                             **({"fused": True} if fused else {}))


class Trainer:
    """Trains ``model`` (``forward(idx, targets) -> (logits, loss)``) on ``data``.

    Attributes: ``step`` (optimizer steps done), ``losses`` (each step's training loss),
    ``history`` (one dict per evaluation: step, train, val, lr, tokens_per_s), ``model`` (what
    is called: compiled and/or DDP-wrapped) and ``raw_model`` (the module itself).

    Checkpoint keys (``save``/``load``): model, optimizer, step, losses, history, train_time,
    generator (batch RNG), rng and cuda_rng (global RNG states), config (this TrainConfig as a
    dict), model_config (the model's GPTConfig as a dict).
    """

    def __init__(self, model: nn.Module, data: Dataset, cfg: TrainConfig) -> None:
        self.cfg, self.data = cfg, data
        device = cfg.device if cfg.device != "auto" else (
            "cuda" if torch.cuda.is_available() else "cpu")
        self.rank, self.world_size, local_rank = _init_distributed(device)
        if self.world_size > 1 and device.startswith("cuda"):  # one GPU per process
            device = f"cuda:{local_rank}"
            torch.cuda.set_device(device)
        self.device = torch.device(device)
        cuda = self.device.type == "cuda"
        assert cfg.batch_size % self.world_size == 0, "batch_size must split evenly over ranks"
        if cuda:  # TF32: float32 matmuls on tensor cores with a 10-bit mantissa
            torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = cfg.tf32
        dtype = cfg.dtype if cfg.dtype != "auto" else ("bfloat16" if cuda else "float32")
        assert dtype in ("float32", "bfloat16"), f"dtype {cfg.dtype!r}"
        self.autocast = (torch.autocast(self.device.type, dtype=torch.bfloat16)
                         if dtype == "bfloat16" else contextlib.nullcontext())
        for module in model.modules():
            if hasattr(module, "fast"):
                module.fast = cfg.fast
        self.raw_model = model.to(self.device)
        self.optimizer = make_optimizer(model, cfg, self.device)
        self.model = torch.compile(model) if cfg.compile else model
        if self.world_size > 1:  # MoE experts a rank's tokens skip get no gradient there
            moe = bool(getattr(getattr(model, "config", None), "n_experts", 0))
            self.model = DistributedDataParallel(self.model, device_ids=[local_rank] if cuda
                                                 else None, find_unused_parameters=moe)
        self.generator = torch.Generator().manual_seed(cfg.seed)  # training batches only
        self.step, self.train_time = 0, 0.0
        self._losses: list[float] = []
        self._pending: list[Tensor] = []  # losses still on the device: reading them waits
        self.history: list[dict] = []

    def _batch(self, split: str, generator: torch.Generator) -> tuple[Tensor, Tensor]:
        """This rank's slice of a global batch; every rank draws the same global batch."""
        data = self.data.train if split == "train" else self.data.val
        x, y = get_batch(data, self.cfg.batch_size, self.cfg.block_size, generator, self.device)
        share = self.cfg.batch_size // self.world_size
        rows = slice(self.rank * share, (self.rank + 1) * share)
        return x[rows], y[rows]  # (B / world_size, T)

    def _mean_over_ranks(self, value: Tensor) -> Tensor:
        if self.world_size > 1:
            dist.all_reduce(value)  # a sum (gloo has no average); NCCL does not block the host
            value = value / self.world_size
        return value

    @property
    def losses(self) -> list[float]:
        """Each step's training loss. Reading it waits for the GPU, so ``fit`` reads it only
        every few steps and lets the host queue the next steps' kernels in between."""
        if self._pending:
            self._losses += torch.stack(self._pending).tolist()
            self._pending = []
        return self._losses

    def _aux_loss(self) -> Tensor | float:
        """MoE load balancing over all layers' router logits (as transformers' Mixtral)."""
        router_logits = getattr(self.raw_model, "router_logits", [])
        if not router_logits or self.cfg.aux_loss_coef == 0 or self._deepseek_layers:
            return 0.0
        c = self.raw_model.config
        return self.cfg.aux_loss_coef * load_balancing_loss(
            torch.cat(router_logits), c.n_experts, c.top_k)

    @property
    def _deepseek_layers(self) -> list[DeepSeekMoE]:
        return [m for m in self.raw_model.modules() if isinstance(m, DeepSeekMoE)]

    def _count_expert_loads(self, loads: list[Tensor]) -> list[Tensor]:
        """Add this forward's picks per expert of every DeepSeekMoE layer to ``loads``."""
        layers = self._deepseek_layers
        if not layers:
            return loads
        picked = []
        for moe, logits in zip(layers, self.raw_model.router_logits, strict=True):
            _, chosen = deepseek_route(logits.detach(), moe.gate.e_score_correction_bias,
                                       moe.top_k, moe.n_group, moe.topk_group)
            picked.append(expert_load(chosen, logits.size(-1)))
        return [a + b for a, b in zip(loads, picked, strict=True)] if loads else picked

    def _balance_experts(self, loads: list[Tensor]) -> None:
        """DeepSeek-V3's auxiliary-loss-free rule: after the step, nudge each expert's
        selection bias toward balance (loads averaged over ranks: all keep the same bias)."""
        for moe, load in zip(self._deepseek_layers, loads, strict=True):
            load = self._mean_over_ranks(load.float())
            update_routing_bias(moe, load, self.cfg.bias_update_rate)

    def train_step(self) -> float:
        """One optimizer step over ``grad_accum`` micro-batches; returns the mean loss (the
        cross-entropy plus the MoE auxiliary loss, averaged over ranks)."""
        self._step()
        return self.losses[-1]

    def _step(self) -> None:
        cfg = self.cfg
        for group in self.optimizer.param_groups:
            group["lr"] = lr_at(self.step, cfg)
        total = torch.zeros((), device=self.device)
        loads: list[Tensor] = []
        for micro in range(cfg.grad_accum):
            x, y = self._batch("train", self.generator)
            last = micro == cfg.grad_accum - 1  # DDP averages gradients over ranks only then
            no_sync = self.model.no_sync() if self.world_size > 1 and not last \
                else contextlib.nullcontext()
            with no_sync:
                with self.autocast:
                    _, loss = self.model(x, y)
                    loss = loss + self._aux_loss()
                (loss / cfg.grad_accum).backward()  # gradients add up over the micro-batches
            loads = self._count_expert_loads(loads)
            total += loss.detach()
        if cfg.grad_clip:
            nn.utils.clip_grad_norm_(self.raw_model.parameters(), cfg.grad_clip)
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        self._balance_experts(loads)
        self.step += 1
        self._pending.append(self._mean_over_ranks(total / cfg.grad_accum))

    @torch.no_grad()
    def evaluate(self) -> dict[str, float]:
        """Mean loss over ``eval_iters`` batches of each split; the same batches every call
        (a private generator), so successive evaluations differ only by the model."""
        self.model.eval()
        out = {}
        for split in ("train", "val"):
            generator = torch.Generator().manual_seed(self.cfg.seed + 1)
            losses = torch.zeros(self.cfg.eval_iters, device=self.device)
            for i in range(self.cfg.eval_iters):
                x, y = self._batch(split, generator)
                with self.autocast:
                    losses[i] = self.model(x, y)[1]
            out[split] = self._mean_over_ranks(losses.mean()).item()
        self.model.train()
        return out

    def fit(self, max_iters: int | None = None, callback=None, progress: bool = True) -> list[dict]:
        """Train to ``max_iters`` steps (default ``cfg.max_iters``) or ``cfg.time_limit``;
        evaluate at the start, every ``eval_interval`` steps and at the end, appending to
        ``history``, saving ``out_dir/ckpt.pt`` and calling ``callback(trainer, record)``."""
        cfg = self.cfg
        max_iters = cfg.max_iters if max_iters is None else max_iters
        tokens_per_step = cfg.batch_size * cfg.block_size * cfg.grad_accum
        bar = tqdm(total=max_iters, initial=self.step, disable=not progress or self.rank != 0,
                   desc="training", unit="step")
        if not self.history or self.history[-1]["step"] != self.step:
            self._record(bar, callback, tokens_per_s=0.0)
        sync_every = 10  # steps between reads of the loss (each read waits for the GPU)
        window_steps, window_time = 0, 0.0  # tokens/s since the last evaluation
        bar_steps, bar_time = 0, 0.0  # tokens/s since the last progress-bar update
        out_of_time = self._out_of_time()
        last = time.perf_counter()
        while self.step < max_iters and not out_of_time:
            self._step()
            evaluate = self.step % cfg.eval_interval == 0 or self.step == max_iters
            synced = evaluate or self.step % sync_every == 0
            if synced:
                loss = self.losses[-1]  # waits for the GPU, so that the clock below is true
            now = time.perf_counter()
            seconds, last = now - last, now
            self.train_time += seconds
            window_steps, window_time = window_steps + 1, window_time + seconds
            bar_steps, bar_time = bar_steps + 1, bar_time + seconds
            bar.update()
            if synced:
                bar.set_postfix(loss=f"{loss:.4f}", refresh=False,
                                tok_s=f"{tokens_per_step * bar_steps / bar_time:,.0f}")
                bar_steps, bar_time = 0, 0.0
                out_of_time = self._out_of_time()
            if evaluate or out_of_time:
                self._record(bar, callback, tokens_per_step * window_steps / window_time)
                window_steps, window_time = 0, 0.0
                last = time.perf_counter()  # evaluation time is not training time
        bar.close()
        return self.history

    def _out_of_time(self) -> bool:
        if self.cfg.time_limit is None:
            return False
        out = self.train_time >= self.cfg.time_limit
        if self.world_size > 1:  # rank 0's clock decides, so that all ranks stop together
            flag = torch.tensor(float(out), device=self.device)
            dist.broadcast(flag, 0)
            out = bool(flag.item())
        return out

    def _record(self, bar, callback, tokens_per_s: float) -> None:
        record = {"step": self.step, **self.evaluate(), "lr": lr_at(self.step, self.cfg),
                  "tokens_per_s": tokens_per_s}
        self.history.append(record)
        if not bar.disable:
            bar.write(f"step {self.step}: train {record['train']:.4f}, val {record['val']:.4f}, "
                      f"{tokens_per_s:,.0f} tokens/s")
        if self.cfg.out_dir:
            self.save(Path(self.cfg.out_dir) / "ckpt.pt")
        if callback is not None:
            callback(self, record)

    def sample(self, prompt: str = "\n", max_new_tokens: int = 200, temperature: float = 0.8,
               top_k: int | None = None, top_p: float | None = None, generate_fn=None) -> str:
        """The prompt and ``max_new_tokens`` sampled tokens, decoded with the data's tokenizer."""
        idx = torch.tensor([self.data.tokenizer.encode(prompt)], device=self.device)  # (1, T)
        kwargs = {}
        config = getattr(self.raw_model, "config", None)
        if generate_fn is None:
            generate_fn = generate
            # learned positions end at max_seq_len: past it, rerun a sliding context instead
            if config is not None and config.pos == "learned" \
                    and idx.size(1) + max_new_tokens > config.max_seq_len:
                kwargs["use_cache"] = False
        self.raw_model.eval()
        out = generate_fn(self.raw_model, idx, max_new_tokens, temperature=temperature,
                          top_k=top_k, top_p=top_p, **kwargs)
        self.raw_model.train()
        return self.data.tokenizer.decode(out[0].tolist())

    def save(self, path: str | Path) -> None:
        """Write a checkpoint (keys in the class docstring); only rank 0 writes."""
        if self.rank != 0:
            return
        config = getattr(self.raw_model, "config", None)
        ckpt = {"model": self.raw_model.state_dict(), "optimizer": self.optimizer.state_dict(),
                "step": self.step, "losses": self.losses, "history": self.history,
                "train_time": self.train_time, "generator": self.generator.get_state(),
                "rng": torch.get_rng_state(),
                "cuda_rng": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None,
                "config": asdict(self.cfg),
                "model_config": asdict(config) if config is not None else None}
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        torch.save(ckpt, path.with_suffix(".tmp"))
        os.replace(path.with_suffix(".tmp"), path)  # never leave a half-written checkpoint

    def load(self, path: str | Path) -> None:
        """Restore a checkpoint: training then continues exactly as if it had never stopped."""
        ckpt = torch.load(path, map_location="cpu")  # RNG states must stay on the CPU
        self.raw_model.load_state_dict(ckpt["model"])
        self.optimizer.load_state_dict(ckpt["optimizer"])  # moves its state to the params
        self.step, self.train_time = ckpt["step"], ckpt["train_time"]
        self._losses, self._pending = list(ckpt["losses"]), []
        self.history = list(ckpt["history"])
        self.generator.set_state(ckpt["generator"])
        torch.set_rng_state(ckpt["rng"])
        if ckpt["cuda_rng"] is not None and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(ckpt["cuda_rng"])


def _parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description="Train a MiniGPT on tiny Shakespeare.")
    p.add_argument("--preset", default="shakespeare_char", choices=sorted(PRESETS),
                   help="GPTConfig preset; shakespeare_char also sets nanoGPT's training recipe")
    p.add_argument("--data", default="char", choices=("char", "bpe"))
    p.add_argument("--vocab-size", type=int, default=512, help="BPE vocabulary size")
    p.add_argument("--text", default=None, help="training text (default: tiny Shakespeare)")
    p.add_argument("--text-chars", type=int, default=None, help="use the first N characters")
    p.add_argument("--resume", action="store_true", help="continue from OUT_DIR/ckpt.pt")
    p.add_argument("--set", nargs="*", default=[], metavar="FIELD=VALUE",
                   help="GPTConfig overrides, e.g. --set dim=128 n_layers=4 norm=layernorm")
    p.add_argument("--no-progress", action="store_true")
    types = {"int": int, "float": float, "str": str}
    for f in fields(TrainConfig):  # one flag per TrainConfig field: --max-iters, --compile, ...
        flag = "--" + f.name.replace("_", "-")
        if f.type == "bool":
            p.add_argument(flag, action=argparse.BooleanOptionalAction, default=None)
        else:
            p.add_argument(flag, type=types[f.type.split(" |")[0]], default=None)
    return p.parse_args(argv)


def _literal(value: str):
    try:
        return ast.literal_eval(value)
    except (ValueError, SyntaxError):
        return value  # a bare word such as layernorm


def main(argv: list[str] | None = None) -> None:
    args = _parse_args(argv)
    given = {f.name: getattr(args, f.name) for f in fields(TrainConfig)
             if getattr(args, f.name) is not None}
    cfg = TrainConfig(**{**TRAIN_PRESETS.get(args.preset, {}), **given})
    text = load_text(args.text)[:args.text_chars]  # [:None] is the whole text
    data = load_dataset(args.data, text, vocab_size=args.vocab_size)
    ckpt_path = Path(cfg.out_dir or ".") / "ckpt.pt"
    if args.resume:
        model_cfg = GPTConfig(**torch.load(ckpt_path, map_location="cpu")["model_config"])
    else:
        overrides = dict(item.split("=", 1) for item in args.set)
        model_cfg = GPTConfig.preset(args.preset, **{
            "vocab_size": data.vocab_size, "max_seq_len": cfg.block_size,
            **{k: _literal(v) for k, v in overrides.items()}})
    torch.manual_seed(cfg.seed)  # the same initial weights in every process and every run
    trainer = Trainer(MiniGPT(model_cfg), data, cfg)
    if args.resume:
        trainer.load(ckpt_path)
    trainer.fit(progress=not args.no_progress)
    if trainer.rank == 0:
        last = trainer.history[-1]
        print(f"step {trainer.step}: train {last['train']:.4f}, val {last['val']:.4f}, "
              f"{trainer.train_time:.1f} s of training")
        if cfg.out_dir:
            (Path(cfg.out_dir) / "losses.json").write_text(json.dumps(
                {"losses": trainer.losses, "history": trainer.history}, indent=1))
    if dist.is_initialized():
        dist.destroy_process_group()


if __name__ == "__main__":
    main()
