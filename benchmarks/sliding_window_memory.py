"""Peak memory and time of sliding-window attention: the banded path against masked full attention.

Each measurement runs in a fresh Python process, so that the peak resident memory (VmHWM, reset
through /proc/self/clear_refs just before the call, or the process's ru_maxrss where /proc is
missing) belongs to one attention call alone. glibc is told to serve every block above 64 KiB
with mmap, so freed tensors really leave the process and the peaks are not blurred.

    python benchmarks/sliding_window_memory.py            # T = 1024 .. 8192, w = 256
    python benchmarks/sliding_window_memory.py --max-len 2048

The banded path (``solutions.efficient_attention.sliding_window_attention``) keeps
(B, H, T/w, w, 2w) scores, which grow as T * w; masked full attention keeps (B, H, T, T) scores
and weights, which grow as T^2. At T = 8192, w = 256 the banded path needs at most an eighth of
the full path's peak (the script exits with status 1 if not).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

CHILD = textwrap.dedent(
    """
    import json, os, resource, sys, time
    import torch
    from solutions.attention import scaled_dot_product_attention
    from solutions.efficient_attention import sliding_window_attention, sliding_window_mask

    path, T, w, B, H, D = sys.argv[1], *map(int, sys.argv[2:])
    torch.set_num_threads(1)
    torch.manual_seed(0)
    q, k, v = (torch.randn(B, H, T, D) for _ in range(3))
    if path == "banded":
        run = lambda: sliding_window_attention(q, k, v, w)
    else:
        run = lambda: scaled_dot_product_attention(q, k, v, sliding_window_mask(T, w))
    small = lambda: (sliding_window_attention(q[..., :2 * w, :], k[..., :2 * w, :],
                                              v[..., :2 * w, :], w))
    with torch.no_grad():
        small()  # warm up the kernels outside the measured call

    def status(key):
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(key):
                    return int(line.split()[1]) * 1024
        return None

    proc = os.path.exists("/proc/self/clear_refs")
    if proc:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")  # VmHWM := VmRSS
        before = status("VmRSS:")
    else:  # ru_maxrss is in KiB on Linux, bytes on macOS
        unit = 1 if sys.platform == "darwin" else 1024
        before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * unit
    start = time.perf_counter()
    with torch.no_grad():
        out = run()
    seconds = time.perf_counter() - start
    if proc:
        peak = status("VmHWM:") - before
    else:
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * unit - before
    print(json.dumps({"peak": peak, "seconds": seconds, "out": out.numel() * out.element_size()}))
    """
)


def measure(path: str, T: int, w: int, B: int, H: int, D: int) -> dict:
    env = {**os.environ, "MALLOC_MMAP_THRESHOLD_": "65536",
           "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    proc = subprocess.run([sys.executable, "-c", CHILD, path, str(T), str(w), str(B), str(H),
                           str(D)], capture_output=True, text=True, env=env, cwd=ROOT)
    if proc.returncode != 0:
        raise RuntimeError(proc.stderr[-2000:])
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--window", type=int, default=256)
    parser.add_argument("--max-len", type=int, default=8192)
    parser.add_argument("--heads", type=int, default=1)
    parser.add_argument("--head-dim", type=int, default=64)
    args = parser.parse_args()
    w, B, H, D = args.window, 1, args.heads, args.head_dim
    lengths = []
    T = 1024
    while T <= args.max_len:
        lengths.append(T)
        T *= 2

    mib = 2**20
    print(f"sliding window w = {w}, (B, H, D) = ({B}, {H}, {D}), float32, peak resident memory "
          "of one call in a fresh process")
    header = (f"{'T':>6} | {'full peak':>10} {'full time':>10} | {'banded peak':>11} "
              f"{'banded time':>11} | {'full/banded':>11} | {'T^2 scores':>10} {'T*2w':>8}")
    print(header)
    print("-" * len(header))
    ratio = None
    for T in lengths:
        full = measure("full", T, w, B, H, D)
        band = measure("banded", T, w, B, H, D)
        ratio = full["peak"] / max(band["peak"], 1)
        print(f"{T:>6} | {full['peak'] / mib:>7.1f} MiB {1000 * full['seconds']:>7.1f} ms | "
              f"{band['peak'] / mib:>8.1f} MiB {1000 * band['seconds']:>8.1f} ms | "
              f"{ratio:>10.1f}x | {B * H * T * T * 4 / mib:>6.1f} MiB "
              f"{B * H * T * 2 * w * 4 / mib:>4.1f} MiB")
    if ratio is not None and lengths[-1] >= 8192:
        ok = ratio >= 8
        print(f"\nat T = {lengths[-1]}: the banded path uses 1/{ratio:.1f} of the masked full "
              f"path's peak memory ({'at most' if ok else 'MORE than'} an eighth)")
        return 0 if ok else 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
