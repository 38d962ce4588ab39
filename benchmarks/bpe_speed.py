"""Week 2 benchmark: the reference BPE tokenizer beside the `tokenizers` library.

    python benchmarks/bpe_speed.py                       # vocab sizes 512 1024 2048 4096
    python benchmarks/bpe_speed.py --vocab-sizes 1024    # one size
    python benchmarks/bpe_speed.py --repeats 3           # best of 3 timings

Both tokenizers are byte-level BPE trained on the first 90 % of the shipped tiny-Shakespeare
text (course/data/tinyshakespeare.txt) with the same vocabulary size (256 byte tokens plus
vocab_size - 256 merges, no special tokens) and a GPT-2 pre-split: the reference uses
``GPT2_SPLIT_PATTERN`` with Python's ``re``; `tokenizers` uses its ``ByteLevel``
pre-tokenizer, which applies GPT-2's regex. The table reports the training time, the time to
encode the whole text, and the compression on the held-out last 10 %: UTF-8 bytes per token
and whitespace-separated words per token (the figure behind the "a token is about 3/4 of a
word" rule of thumb). Timings are wall-clock on this machine; `tokenizers` is Rust and may
use several threads (RAYON_NUM_THREADS), the reference is one Python thread.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from solutions.tokenizer import GPT2_SPLIT_PATTERN, BPETokenizer  # noqa: E402

CORPUS = ROOT / "course" / "data" / "tinyshakespeare.txt"


def best_of(repeats: int, fn):
    """(smallest wall-clock seconds, the last result) over ``repeats`` calls of ``fn``."""
    best, result = float("inf"), None
    for _ in range(repeats):
        start = time.perf_counter()
        result = fn()
        best = min(best, time.perf_counter() - start)
    return best, result


def reference(train: str, vocab_size: int):
    def fit():
        tok = BPETokenizer(GPT2_SPLIT_PATTERN)
        tok.train(train, vocab_size)
        return tok

    return fit, lambda tok, text: tok.encode(text), lambda tok, ids: tok.decode(ids)


def hf(train: str, vocab_size: int):
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    def fit():
        tok = Tokenizer(models.BPE())
        tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
        tok.decoder = decoders.ByteLevel()
        trainer = trainers.BpeTrainer(
            vocab_size=vocab_size, min_frequency=0, show_progress=False, special_tokens=[],
            initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        )
        tok.train_from_iterator([train], trainer)
        return tok

    return fit, lambda tok, text: tok.encode(text).ids, lambda tok, ids: tok.decode(ids)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--vocab-sizes", type=int, nargs="+", default=[512, 1024, 2048, 4096])
    parser.add_argument("--repeats", type=int, default=1)
    args = parser.parse_args()

    text = CORPUS.read_text(encoding="utf-8")
    cut = int(len(text) * 0.9)
    cut = text.rindex("\n", 0, cut) + 1  # at a line break
    train, held_out = text[:cut], text[cut:]
    n_bytes, n_words = len(held_out.encode("utf-8")), len(held_out.split())

    import tokenizers

    print(f"corpus: {CORPUS.relative_to(ROOT)}, {len(text.encode()):,} bytes; training on the "
          f"first {len(train.encode()):,}, compression measured on the last {n_bytes:,} "
          f"({n_words:,} words)")
    print(f"python {platform.python_version()}, tokenizers {tokenizers.__version__}, "
          f"{os.cpu_count()} CPUs, best of {args.repeats}")
    print()
    head = ("tokenizer", "vocab", "train s", "encode s", "bytes/token", "words/token",
            "tokens/word")
    print("| " + " | ".join(head) + " |")
    print("|" + "|".join(["---"] + ["---:"] * (len(head) - 1)) + "|")
    for vocab_size in args.vocab_sizes:
        for name, make in (("reference (Python)", reference), ("tokenizers (Rust)", hf)):
            fit, encode, decode = make(train, vocab_size)
            train_s, tok = best_of(args.repeats, fit)
            encode_s, _ = best_of(args.repeats, lambda tok=tok, encode=encode: encode(tok, text))
            ids = encode(tok, held_out)
            assert decode(tok, ids) == held_out, f"{name} does not round-trip"
            row = (name, f"{vocab_size:,}", f"{train_s:.2f}", f"{encode_s:.2f}",
                   f"{n_bytes / len(ids):.2f}", f"{n_words / len(ids):.2f}",
                   f"{len(ids) / n_words:.2f}")
            print("| " + " | ".join(row) + " |")


if __name__ == "__main__":
    main()
