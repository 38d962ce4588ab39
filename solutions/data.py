"""Week 7 data: tiny-Shakespeare as character ids or week-2 BPE ids, and random training batches.

The text is split by position, as nanoGPT's shakespeare-char does: the first 90 % trains, the
last 10 % validates (a later part of the play, never seen in training). A batch is
``batch_size`` windows of ``block_size`` tokens starting at random offsets; the targets are the
same windows shifted by one token, so every position of every window is a next-token example.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor

from solutions.tokenizer import GPT2_SPLIT_PATTERN, BPETokenizer

DEFAULT_TEXT = Path(__file__).resolve().parents[1] / "course" / "data" / "tinyshakespeare.txt"


class CharTokenizer:
    """One token per character: the distinct characters of a text, sorted, get ids 0..V-1."""

    def __init__(self, chars: list[str]) -> None:
        self.chars = list(chars)
        self.stoi = {c: i for i, c in enumerate(self.chars)}

    @classmethod
    def from_text(cls, text: str) -> CharTokenizer:
        return cls(sorted(set(text)))

    @property
    def vocab_size(self) -> int:
        return len(self.chars)

    def encode(self, s: str) -> list[int]:
        return [self.stoi[c] for c in s]  # a character outside the vocabulary is a KeyError

    def decode(self, ids) -> str:
        """``ids``: a list of ints or a 1-D tensor."""
        if isinstance(ids, Tensor):
            ids = ids.tolist()
        return "".join(self.chars[i] for i in ids)


def load_text(path: str | Path | None = None) -> str:
    """The training text; the shipped tiny-Shakespeare by default (nothing is downloaded)."""
    return Path(path or DEFAULT_TEXT).read_text(encoding="utf-8")


@dataclass
class Dataset:
    """Token ids ready for :func:`get_batch`.

    ``train``/``val``: 1-D int64 tensors; ``tokenizer``: has ``encode(str) -> list[int]`` and
    ``decode(ids) -> str`` (a :class:`CharTokenizer` or a week-2 ``BPETokenizer``).
    """

    train: Tensor
    val: Tensor
    tokenizer: object
    vocab_size: int


def load_dataset(kind: str = "char", text: str | None = None, vocab_size: int = 512,
                 val_fraction: float = 0.1) -> Dataset:
    """Tokenize ``text`` (default: :func:`load_text`) and split it into train and val.

    ``kind="char"``: one id per character (``vocab_size`` is ignored; 65 for Shakespeare).
    ``kind="bpe"``: the week-2 byte-level BPE with GPT-2's pre-split, trained on the training
    part only, so the validation text is tokenized with merges it did not shape.
    """
    text = load_text() if text is None else text
    cut = int(len(text) * (1 - val_fraction))  # split the text, then tokenize each part
    if kind == "char":
        tokenizer = CharTokenizer.from_text(text)
        size = tokenizer.vocab_size
    elif kind == "bpe":
        tokenizer = BPETokenizer(GPT2_SPLIT_PATTERN)
        tokenizer.train(text[:cut], vocab_size)
        size = vocab_size
    else:
        raise ValueError(f"kind must be 'char' or 'bpe', got {kind!r}")
    train = torch.tensor(tokenizer.encode(text[:cut]), dtype=torch.long)
    val = torch.tensor(tokenizer.encode(text[cut:]), dtype=torch.long)
    return Dataset(train, val, tokenizer, size)


def get_batch(data: Tensor, batch_size: int, block_size: int,
              generator: torch.Generator | None = None,
              device: str | torch.device = "cpu") -> tuple[Tensor, Tensor]:
    """``batch_size`` random windows of ``data`` and their next tokens.

    The offsets come from ``generator`` (a CPU ``torch.Generator``; the global RNG when None),
    so a trainer that saves the generator's state can replay the same batches after a resume.

    Shapes:
        ``data``: ``(N,)`` -> ``x, y``: ``(batch_size, block_size)``, ``y[:, t] = x[:, t + 1]``
        in the text.
    """
    ix = torch.randint(len(data) - block_size, (batch_size,), generator=generator)  # (B,)
    x = torch.stack([data[i:i + block_size] for i in ix.tolist()])  # (B, T)
    y = torch.stack([data[i + 1:i + 1 + block_size] for i in ix.tolist()])  # (B, T)
    if torch.device(device).type == "cuda":  # pinned memory lets the copy overlap the GPU work
        return (x.pin_memory().to(device, non_blocking=True),
                y.pin_memory().to(device, non_blocking=True))
    return x.to(device), y.to(device)
