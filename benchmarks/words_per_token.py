"""Week 2 measurement: words per token of the course's BPE as its vocabulary grows.

    python benchmarks/words_per_token.py                          # 1024 ... 50257
    python benchmarks/words_per_token.py --vocab-sizes 1024 8192  # some sizes

A rule of thumb (OpenAI's help pages) says a token of a large English vocabulary is about
three quarters of a word. This script checks how close the course's reference tokenizer
(``solutions.tokenizer.BPETokenizer`` with GPT-2's pre-split) comes on the shipped text: it
trains on the first 90 % of tiny Shakespeare (course/data/tinyshakespeare.txt) at each
vocabulary size and encodes the held-out last 10 %. Training stops early when every chunk of
the training text has become one token, so the learned vocabulary can be smaller than asked.

It also prints the ceiling that no vocabulary can pass: merges never cross a pre-split chunk,
so each chunk of the held-out text is at least one token, and words / chunks bounds words /
token from above. Words are whitespace-separated (``str.split``).
"""

from __future__ import annotations

import argparse
import re
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from solutions.tokenizer import GPT2_SPLIT_PATTERN, BPETokenizer  # noqa: E402

CORPUS = ROOT / "course" / "data" / "tinyshakespeare.txt"


def split_corpus(text: str) -> tuple[str, str]:
    """The first 90 % and the last 10 % of ``text``, cut at a line break."""
    cut = int(len(text) * 0.9)
    cut = text.rindex("\n", 0, cut) + 1
    return text[:cut], text[cut:]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--vocab-sizes", type=int, nargs="+",
                        default=[1024, 4096, 8192, 16384, 32768, 50257])
    args = parser.parse_args()

    train, held_out = split_corpus(CORPUS.read_text(encoding="utf-8"))
    n_words, n_bytes = len(held_out.split()), len(held_out.encode("utf-8"))
    train_words = len(train.split())
    chunks = re.findall(GPT2_SPLIT_PATTERN, held_out)
    blank = sum(chunk.isspace() for chunk in chunks)
    print(f"held-out text: {n_bytes:,} bytes, {n_words:,} words, {len(chunks):,} pre-split "
          f"chunks ({blank:,} of them whitespace, mostly line breaks)")
    print(f"ceiling for any vocabulary: {n_words / len(chunks):.2f} words per token "
          "(one token per chunk)")
    print()
    head = ("asked", "learned", "train s", "held-out tokens", "bytes/token", "words/token",
            "words/token (training text)")
    print("| " + " | ".join(head) + " |")
    print("|" + "|".join(["---:"] * len(head)) + "|")
    for vocab_size in args.vocab_sizes:
        tok = BPETokenizer(GPT2_SPLIT_PATTERN)
        start = time.perf_counter()
        tok.train(train, vocab_size)
        seconds = time.perf_counter() - start
        ids = tok.encode(held_out)
        assert tok.decode(ids) == held_out, "the tokenizer does not round-trip"
        seen = len(tok.encode(train))
        row = (f"{vocab_size:,}", f"{len(tok.vocab):,}", f"{seconds:.1f}", f"{len(ids):,}",
               f"{n_bytes / len(ids):.2f}", f"{n_words / len(ids):.2f}",
               f"{train_words / seen:.2f}")
        print("| " + " | ".join(row) + " |", flush=True)


if __name__ == "__main__":
    main()
