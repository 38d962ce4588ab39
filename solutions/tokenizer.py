"""Week 2 reference: a byte-level BPE tokenizer (train, encode, decode).

The contract, which the week 2 grader enforces:

- ``BPETokenizer(pattern=None, special_tokens=None)``. ``pattern`` is an optional regular
  expression (compiled with Python's ``re``) that pre-splits text into chunks; merges never
  cross a chunk boundary. ``None`` means no pre-split: the whole text is one sequence.
  ``GPT2_SPLIT_PATTERN`` below is GPT-2's pattern written for ``re``. ``special_tokens`` maps
  strings such as ``"<|endoftext|>"`` to their ids (ids the merges do not use: ``vocab_size``
  and up).
- Base vocabulary: the 256 byte values, ids 0..255. Any string is encoded as its UTF-8 bytes
  first, so any Unicode string (emoji, any script) round-trips.
- ``train(text, vocab_size) -> None`` starts from scratch and makes ``vocab_size - 256``
  merges. Each merge takes the adjacent pair of ids that occurs most often (pairs are counted
  at every position, so ``"aaa"`` holds the pair ``(a, a)`` twice) and gives it the next id:
  256, 257, ... **Ties go to the smallest pair** ``(a, b)``, compared as tuples of ids. A
  merge replaces the pair from left to right without overlaps (``"aaa"`` becomes ``aa, a``),
  and pairs are counted again (here: updated incrementally) before the next merge. Training
  stops early when no adjacent pair is left. Special tokens in the training text are cut out
  before counting.
- ``encode(text) -> list[int]``: special tokens are found first (longest first) and become
  their ids; the text between them is pre-split, each chunk becomes its UTF-8 bytes, and
  the learned merges are applied **in the order they were learned**: repeatedly merge the pair
  with the smallest merge id present in the chunk, until none is left.
- ``decode(ids) -> str``: join the bytes of all tokens, then decode UTF-8 once, with
  ``errors="replace"`` (a token may hold part of a character).
- Attributes: ``merges: dict[tuple[int, int], int]`` in merge order, ``vocab: dict[int,
  bytes]`` (ids 0..vocab_size-1), ``special_tokens: dict[str, int]``, ``pattern``.

Training counts pairs once over the distinct chunks (each weighted by how often it occurs)
and then updates only the chunks that hold the merged pair, with a heap of candidate pairs,
so a 1,024-token vocabulary on the 1.1 MB tiny-Shakespeare text takes seconds.
"""

from __future__ import annotations

import heapq
import re
from collections import Counter, defaultdict
from itertools import pairwise

# GPT-2's pre-split (Radford et al. 2019, openai/gpt-2 encoder.py), for Python's ``re``:
# \p{L} becomes [^\W\d_] (letters) and \p{N} becomes \d; "_" joins the punctuation group,
# so every character of any string lands in exactly one chunk.
GPT2_SPLIT_PATTERN = (
    r"""'(?:[sdmt]|ll|ve|re)| ?[^\W\d_]+| ?\d+| ?(?:[^\s\w]|_)+|\s+(?!\S)|\s+"""
)


def merge_pair(ids: list[int], pair: tuple[int, int], new_id: int) -> list[int]:
    """Replace every occurrence of ``pair`` in ``ids`` by ``new_id``, left to right."""
    out = []
    i = 0
    n = len(ids)
    a, b = pair
    while i < n:
        if i + 1 < n and ids[i] == a and ids[i + 1] == b:
            out.append(new_id)
            i += 2
        else:
            out.append(ids[i])
            i += 1
    return out


class BPETokenizer:
    """Byte-level BPE: 256 byte tokens plus learned merges, with optional pre-split and
    special tokens. See the module docstring for the exact rules."""

    def __init__(self, pattern: str | None = None,
                 special_tokens: dict[str, int] | None = None) -> None:
        self.pattern = pattern
        self.special_tokens: dict[str, int] = dict(special_tokens or {})
        self.merges: dict[tuple[int, int], int] = {}
        self.vocab: dict[int, bytes] = {i: bytes([i]) for i in range(256)}
        self._split = re.compile(pattern) if pattern else None
        specials = sorted(self.special_tokens, key=len, reverse=True)
        self._special = re.compile("(" + "|".join(map(re.escape, specials)) + ")") \
            if specials else None
        self._cache: dict[str, list[int]] = {}  # chunk -> ids, for the current merges
        self._cache_key: tuple[int, int] | None = None

    # ---------------------------------------------------------------- splitting

    def _segments(self, text: str) -> list[tuple[str, bool]]:
        """``text`` cut at special tokens: (piece, is_special) in order."""
        if self._special is None:
            return [(text, False)]
        parts = self._special.split(text)  # odd indices hold the special tokens
        return [(p, i % 2 == 1) for i, p in enumerate(parts) if p]

    def _chunks(self, text: str) -> list[str]:
        """``text`` pre-split by the pattern (the whole text as one chunk without one)."""
        return self._split.findall(text) if self._split else ([text] if text else [])

    # ---------------------------------------------------------------- training

    def train(self, text: str, vocab_size: int) -> None:
        """Learn ``vocab_size - 256`` merges from ``text`` (fewer if no pair is left)."""
        if vocab_size < 256:
            raise ValueError(f"vocab_size must be at least 256 (the byte tokens), got {vocab_size}")
        self.merges = {}
        self.vocab = {i: bytes([i]) for i in range(256)}

        counts = Counter(chunk for piece, special in self._segments(text) if not special
                         for chunk in self._chunks(piece))
        words = [list(chunk.encode("utf-8")) for chunk in counts]
        freqs = list(counts.values())

        pair_counts: dict[tuple[int, int], int] = defaultdict(int)
        where: dict[tuple[int, int], set[int]] = defaultdict(set)  # pair -> words holding it
        for w, (word, freq) in enumerate(zip(words, freqs, strict=True)):
            for pair in pairwise(word):
                pair_counts[pair] += freq
                where[pair].add(w)
        # most frequent first; among equal counts the smallest pair (a, b) first
        heap = [(-count, pair) for pair, count in pair_counts.items()]
        heapq.heapify(heap)

        for new_id in range(256, vocab_size):
            while heap and pair_counts.get(heap[0][1], 0) != -heap[0][0]:
                heapq.heappop(heap)  # an entry whose count has changed since it was pushed
            if not heap:
                break  # every chunk is a single token
            _, pair = heapq.heappop(heap)
            self.merges[pair] = new_id
            self.vocab[new_id] = self.vocab[pair[0]] + self.vocab[pair[1]]

            changed = set()
            for w in where.pop(pair):
                word, freq = words[w], freqs[w]
                for p in pairwise(word):
                    pair_counts[p] -= freq
                    changed.add(p)
                word = words[w] = merge_pair(word, pair, new_id)
                for p in pairwise(word):
                    pair_counts[p] += freq
                    where[p].add(w)
                    changed.add(p)
            for p in changed:
                if pair_counts[p] > 0:
                    heapq.heappush(heap, (-pair_counts[p], p))
                else:
                    del pair_counts[p]
                    where.pop(p, None)

    # ---------------------------------------------------------------- encoding

    def _encode_chunk(self, data: bytes) -> list[int]:
        """The ids of one chunk: its bytes, merged by the earliest-learned pair present."""
        ids = list(data)
        merges = self.merges
        while len(ids) >= 2:
            # the pair learned first among those present
            pair = min(pairwise(ids), key=lambda p: merges.get(p, float("inf")))
            if pair not in merges:
                break
            ids = merge_pair(ids, pair, merges[pair])
        return ids

    def encode(self, text: str) -> list[int]:
        """Token ids of ``text``: special tokens, then pre-split chunks, merged in merge order."""
        if self._cache_key != (id(self.merges), len(self.merges)):  # merges were replaced
            self._cache, self._cache_key = {}, (id(self.merges), len(self.merges))
        ids: list[int] = []
        for piece, special in self._segments(text):
            if special:
                ids.append(self.special_tokens[piece])
                continue
            for chunk in self._chunks(piece):
                cached = self._cache.get(chunk)
                if cached is None:
                    cached = self._encode_chunk(chunk.encode("utf-8"))
                    if len(self._cache) < 200_000:
                        self._cache[chunk] = cached
                ids.extend(cached)
        return ids

    # ---------------------------------------------------------------- decoding

    def decode(self, ids: list[int]) -> str:
        """The text of ``ids``: all their bytes joined, then decoded once as UTF-8."""
        special = {i: s.encode("utf-8") for s, i in self.special_tokens.items()}
        data = b"".join(self.vocab[i] if i in self.vocab else special[i] for i in ids)
        return data.decode("utf-8", errors="replace")
