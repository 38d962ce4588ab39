"""Week 2 reference: the byte-level BPE tokenizer's invariants, rules and speed."""

import random
import re
import time
from collections import Counter
from itertools import pairwise
from pathlib import Path

import pytest

from solutions.tokenizer import GPT2_SPLIT_PATTERN, BPETokenizer, merge_pair

pytestmark = pytest.mark.bpe
CORPUS = Path(__file__).resolve().parents[2] / "course" / "data" / "tinyshakespeare.txt"
SAMPLES = [
    "", "a", "hello world", "naïve café, déjà vu", "Ελληνικά και русский текст",
    "日本語のテキストと中文", "한국어 문장", "مرحبا بالعالم", "नमस्ते दुनिया",
    "emoji 🙂🚀 family 👩‍👩‍👧 flag 🇫🇷 skin 👍🏽", "e\u0301 combining", "tabs\tand\r\nnewlines\n\n",
    "snake_case_name = 42_000", "   leading and trailing   ", "it's we'll they've I'd",
]


def random_unicode(rng: random.Random, n: int) -> str:
    ranges = [(0x20, 0x7E), (0xA1, 0x24F), (0x370, 0x52F), (0x600, 0x6FF), (0x900, 0x97F),
              (0x3040, 0x30FF), (0x4E00, 0x9FFF), (0xAC00, 0xD7A3), (0x1F300, 0x1FAFF)]
    out = []
    for _ in range(n):
        lo, hi = rng.choice(ranges)
        out.append(chr(rng.randint(lo, hi)))
    return "".join(out)


def naive_train(text: str, vocab_size: int, pattern=None) -> dict:
    """The rules written as plainly as possible: recount everything after each merge."""
    chunks = re.findall(pattern, text) if pattern else [text]
    seqs = [list(c.encode("utf-8")) for c in chunks if c]
    merges = {}
    for new_id in range(256, vocab_size):
        counts = Counter(p for s in seqs for p in pairwise(s))
        if not counts:
            break
        pair = min(counts, key=lambda p: (-counts[p], p))
        merges[pair] = new_id
        seqs = [merge_pair(s, pair, new_id) for s in seqs]
    return merges


def test_untrained_tokenizer_is_bytes():
    tok = BPETokenizer()
    for s in SAMPLES:
        assert tok.encode(s) == list(s.encode("utf-8"))
        assert tok.decode(list(s.encode("utf-8"))) == s


def test_pattern_covers_every_character():
    rng = random.Random(0)
    split = re.compile(GPT2_SPLIT_PATTERN)
    for s in SAMPLES + [random_unicode(rng, 300) for _ in range(20)]:
        assert "".join(split.findall(s)) == s


def test_merge_pair_left_to_right_without_overlap():
    assert merge_pair([97, 97, 97], (97, 97), 256) == [256, 97]
    assert merge_pair([97, 97, 97, 97], (97, 97), 256) == [256, 256]
    assert merge_pair([1, 2, 3, 1, 2], (1, 2), 9) == [9, 3, 9]


def test_overlapping_pairs_are_counted_at_every_position():
    tok = BPETokenizer()
    tok.train("aaab", 257)  # (a, a) occurs twice in "aaa", (a, b) once
    assert tok.merges == {(97, 97): 256}
    tok.train("aaa bcbcbc", 257)  # (a, a): 2 against (b, c): 3
    assert tok.merges == {(98, 99): 256}
    assert tok.encode("aaaaa") == [97] * 5
    tok.train("aaaaa", 258)  # [aa, aa, a]: (aa, aa) and (aa, a) tie, the smaller wins
    assert tok.merges == {(97, 97): 256, (256, 97): 257}
    assert tok.encode("aaaaa") == [256, 257]


def test_ties_go_to_the_smallest_pair():
    tok = BPETokenizer()
    tok.train("zyab", 257)  # every pair occurs once: (97, 98) is the smallest
    assert list(tok.merges) == [(97, 98)]


@pytest.mark.parametrize("pattern", [None, GPT2_SPLIT_PATTERN])
def test_incremental_training_matches_naive_recount(pattern):
    rng = random.Random(1)
    words = ["the", "then", "there", "aaaa", "ab", "ba", "über", "日本", "🙂", "x_y", "42"]
    for _ in range(5):
        text = " ".join(rng.choice(words) for _ in range(300)) + random_unicode(rng, 50)
        tok = BPETokenizer(pattern)
        tok.train(text, 256 + 60)
        assert tok.merges == naive_train(text, 256 + 60, pattern)
        assert list(tok.merges.values()) == list(range(256, 256 + len(tok.merges)))
        ids = tok.encode(text)
        assert tok.decode(ids) == text


def test_encode_applies_merges_in_learned_order():
    """A chunk is merged by the smallest merge id present, repeatedly, whatever the counts."""
    tok = BPETokenizer()
    tok.merges = {(98, 99): 256, (97, 98): 257}
    assert tok.encode("abc") == [97, 256]
    assert tok.encode("ababc") == [257, 97, 256]  # (a, b) occurs twice but was learned later
    tok.merges = {(97, 98): 256, (98, 99): 257}
    assert tok.encode("abc") == [256, 99]
    assert tok.encode("abcbc") == [256, 99, 257]


def test_encoding_the_training_text_reproduces_training():
    text = CORPUS.read_text(encoding="utf-8")[:20_000]
    tok = BPETokenizer(GPT2_SPLIT_PATTERN)
    tok.train(text, 256 + 100)
    counts = Counter(tok.encode(text))
    # every merge was learned because its pair occurred: its token is used in the text
    assert all(counts[i] > 0 for i in list(tok.merges.values())[-20:])


def test_round_trip_random_unicode_after_training():
    rng = random.Random(2)
    tok = BPETokenizer(GPT2_SPLIT_PATTERN)
    tok.train(" ".join(random_unicode(rng, 8) for _ in range(400)), 256 + 200)
    for s in SAMPLES + [random_unicode(rng, 200) for _ in range(30)]:
        ids = tok.encode(s)
        assert tok.decode(ids) == s
        assert all(0 <= i < 256 + 200 for i in ids)


def test_decode_joins_bytes_and_replaces_invalid():
    tok = BPETokenizer()
    tok.train("😀😀😀 😃😃", 258)  # merges inside the 4-byte emoji: tokens are partial chars
    assert all(len(tok.vocab[i]) < 4 for i in tok.merges.values())
    assert tok.decode(tok.encode("😀😃")) == "😀😃"
    assert tok.decode([0xE2, 0x82, 65]) == "\ufffdA"


def test_special_tokens_are_never_split():
    specials = {"<|endoftext|>": 300, "<|sep|>": 301}
    tok = BPETokenizer(GPT2_SPLIT_PATTERN, specials)
    tok.train("hello world <|endoftext|> hello there<|sep|>", 300)
    a, b = "hello world", " and there"
    both = a + "<|endoftext|>" + b + "<|sep|>"
    assert tok.encode(both) == tok.encode(a) + [300] + tok.encode(b) + [301]
    assert tok.decode(tok.encode(both)) == both
    assert all(i < 300 for i in tok.merges.values())
    assert not any(b"<|" in tok.vocab[i] and b"|>" in tok.vocab[i] for i in tok.merges.values())


def test_degenerate_inputs():
    tok = BPETokenizer()
    tok.train("", 300)
    assert tok.merges == {} and tok.encode("") == [] and tok.decode([]) == ""
    tok.train("abab", 300)  # stops when one token is left
    assert tok.merges == {(97, 98): 256, (256, 256): 257} and tok.encode("abab") == [257]
    tok.train("some text", 256)
    assert tok.merges == {}
    with pytest.raises(ValueError):
        tok.train("x", 100)


def test_trains_1024_tokens_on_tiny_shakespeare_in_seconds():
    """A sanity bound on a shared 2-core machine, not a benchmark claim."""
    text = CORPUS.read_text(encoding="utf-8")
    tok = BPETokenizer(GPT2_SPLIT_PATTERN)
    start = time.perf_counter()
    tok.train(text, 1024)
    seconds = time.perf_counter() - start
    assert len(tok.merges) == 768 and seconds < 20, seconds
    ids = tok.encode(text[:100_000])
    assert tok.decode(ids) == text[:100_000]
    assert 2.0 < len(text[:100_000].encode()) / len(ids) < 4.0


def test_notebook_gives_the_same_pattern():
    """The week 2 notebook defines the pattern in a locked cell: it must be this one."""
    notebook = Path(__file__).resolve().parents[2] / "course" / "notebooks" / "week2_bpe.py"
    assert f'r"""{GPT2_SPLIT_PATTERN}"""' in notebook.read_text(encoding="utf-8")
