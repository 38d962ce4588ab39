"""Week 7 benchmark: how much the KV cache speeds up ``generate``.

    python benchmarks/generate_speed.py                       # 64 .. 512 new tokens
    python benchmarks/generate_speed.py --lengths 128 1024 --repeats 3

A randomly initialised MiniGPT (4 layers, 4 heads, width 128: nanoGPT's CPU shape, Llama
style, ``max_seq_len`` 1024 so that nothing is cropped) continues a 16-token prompt greedily
(``temperature=0``), with and without the cache. Without it, every new token reruns the
whole sequence so far, so the work per token grows with the length and the total
quadratically; with it, each step runs one token against the cached keys and values. Greedy
decoding makes the two produce the same tokens, which the script checks. The table shows the
best of ``--repeats`` wall-clock runs, as new tokens per second.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from solutions.model import GPTConfig, MiniGPT, generate  # noqa: E402


def best_time(model: MiniGPT, prompt: torch.Tensor, new: int, use_cache: bool,
              repeats: int) -> tuple[float, torch.Tensor]:
    best, out = float("inf"), None
    for _ in range(repeats):
        start = time.perf_counter()
        out = generate(model, prompt, new, temperature=0, use_cache=use_cache)
        best = min(best, time.perf_counter() - start)
    return best, out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--lengths", type=int, nargs="+", default=[64, 128, 256, 512])
    p.add_argument("--repeats", type=int, default=2)
    p.add_argument("--prompt", type=int, default=16, help="prompt length in tokens")
    p.add_argument("--device", default="cpu")
    p.add_argument("--threads", type=int, help="torch.set_num_threads (default: torch's)")
    args = p.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    torch.manual_seed(0)
    cfg = GPTConfig(vocab_size=65, dim=128, n_layers=4, n_heads=4,
                    max_seq_len=max(1024, args.prompt + max(args.lengths)))
    model = MiniGPT(cfg).to(args.device).eval()
    prompt = torch.randint(65, (1, args.prompt), device=args.device)  # (1, T)
    generate(model, prompt, 8, temperature=0)  # warm up the kernels

    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, {args.device}; "
          f"MiniGPT 4 layers x width 128, prompt {args.prompt} tokens, greedy, "
          f"best of {args.repeats}\n")
    header = (f"{'new tokens':>10} | {'no cache tok/s':>14} | {'cache tok/s':>11} | "
              f"{'speed-up':>8} | same tokens")
    print(header)
    print("-" * len(header))
    for new in args.lengths:
        plain, out_plain = best_time(model, prompt, new, False, args.repeats)
        cached, out_cached = best_time(model, prompt, new, True, args.repeats)
        same = torch.equal(out_plain, out_cached)
        print(f"{new:>10} | {new / plain:>14,.0f} | {new / cached:>11,.0f} | "
              f"{plain / cached:>7.1f}x | {'yes' if same else 'NO'}")


if __name__ == "__main__":
    main()
