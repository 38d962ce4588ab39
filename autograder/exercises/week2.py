"""Week 2 grader: the byte-level BPE tokenizer (train, encode, decode).

The learner's class is built in the worker and its methods are called in order ("methods"
calls). The merges are read back with the step ``("__getattribute__", ["merges"], {})``,
which returns the attribute itself. Hidden texts are a few KB (random words drawn from a
random vocabulary in several scripts, plus random Unicode), so a straightforward
implementation that recounts every pair after each merge finishes well inside the limit.

Expected values come from the reference (``solutions.tokenizer``). Known mistakes are
recognised by simulating them here on the same inputs: other tie rules, stale pair counts,
right-to-left merging, training or encoding without the pre-split, encoding in order of
frequency, special tokens split by the pre-split. Encoding and decoding are judged against
the learner's *own* merges, so one mistake in ``train`` is not charged again in every case.
"""

from __future__ import annotations

import re
from collections import Counter
from itertools import pairwise

import torch

from autograder.compare import Mismatch, describe, unwrap
from autograder.grading import Case
from solutions.tokenizer import GPT2_SPLIT_PATTERN, BPETokenizer, merge_pair

SYMBOL = "BPETokenizer"
PATTERN = GPT2_SPLIT_PATTERN
EOT, SEP = "<|endoftext|>", "<|sep|>"
GET_MERGES = ("__getattribute__", ["merges"], {})
MERGES = ("merges",)

# ---------------------------------------------------------------- hidden texts

_SCRIPTS = [
    "éèêàçñüöß",
    "αβγδεζηθικλμνξοπρστυφχψω",
    "абвгдежзийклмнопрстуфхцчшщыэюя",
    "日本語中文字漢天地人山川水火木金土",
    "한국어글자말",
    "مرحباعلمكتب",
    "🙂🚀🌍👍🎉🐍💡",
]
_LATIN = "abcdefghijklmnopqrstuvwxyz"
_SEPARATORS = [" "] * 12 + [", ", ". ", "\n", "! ", "'s ", "'ll ", "  ", " 42 ", "\n\n", " - ",
                            "\n    ", "\n    ", "\n        "]
# (first, last) code points for random Unicode: ASCII, Latin-1, Greek, Cyrillic, Arabic,
# Devanagari, CJK, Hangul, emoji
_RANGES = [(0x20, 0x7E), (0xA1, 0xFF), (0x391, 0x3C9), (0x410, 0x44F), (0x621, 0x64A),
           (0x905, 0x939), (0x4E00, 0x9FA5), (0xAC00, 0xD7A3), (0x1F300, 0x1F64F),
           (0x1F680, 0x1F6C5)]
_EXTRAS = ["\n", "\t", "  ", " ", "\u200d", "e\u0301", "👩\u200d💻", "🇫🇷", "👍🏽", "\r\n", "_"]


def _randint(gen: torch.Generator, lo: int, hi: int) -> int:
    """An integer in [lo, hi]."""
    return int(torch.randint(lo, hi + 1, (1,), generator=gen))


def _word(gen, alphabet: str, lo: int, hi: int) -> str:
    return "".join(alphabet[_randint(gen, 0, len(alphabet) - 1)]
                   for _ in range(_randint(gen, lo, hi)))


def _vocabulary(gen, n_latin: int = 30, n_other: int = 12) -> list[str]:
    words = [_word(gen, _LATIN, 2, 8) for _ in range(n_latin)]
    for _ in range(n_other):
        words.append(_word(gen, _SCRIPTS[_randint(gen, 0, len(_SCRIPTS) - 1)], 1, 4))
    return words


def _text(gen, vocabulary: list[str], n_words: int) -> str:
    """Words drawn with Zipf-like frequencies, joined by spaces and some punctuation."""
    weights = torch.tensor([1.0 / (i + 1) for i in range(len(vocabulary))])
    order = torch.randperm(len(vocabulary), generator=gen).tolist()
    picks = torch.multinomial(weights, n_words, replacement=True, generator=gen).tolist()
    seps = torch.randint(0, len(_SEPARATORS), (n_words,), generator=gen).tolist()
    return "".join(vocabulary[order[p]] + _SEPARATORS[s] for p, s in zip(picks, seps,
                                                                        strict=True))


def _unicode(gen, n: int) -> str:
    """Random characters from several scripts, emoji (with ZWJ sequences), whitespace."""
    out = []
    for _ in range(n):
        if _randint(gen, 0, 5) == 0:
            out.append(_EXTRAS[_randint(gen, 0, len(_EXTRAS) - 1)])
        else:
            lo, hi = _RANGES[_randint(gen, 0, len(_RANGES) - 1)]
            out.append(chr(_randint(gen, lo, hi)))
    return "".join(out)


def _runs(gen, n_words: int) -> str:
    """Runs of one repeated letter ("aaaa", "bbb") and short mixed words: overlapping pairs."""
    words = []
    for _ in range(n_words):
        if _randint(gen, 0, 3):
            words.append("ab"[_randint(gen, 0, 1)] * _randint(gen, 2, 9))
        else:
            words.append(_word(gen, "abc", 2, 5))
    return " ".join(words)


# ---------------------------------------------------------------- reference and mistakes


def _trained(text: str, vocab_size: int, pattern=None, specials=None) -> BPETokenizer:
    tok = BPETokenizer(pattern, specials)
    tok.train(text, vocab_size)
    return tok


def _with_merges(merges: dict, pattern=None, specials=None) -> BPETokenizer:
    """A reference tokenizer that encodes with the given (possibly the learner's) merges."""
    tok = BPETokenizer(pattern, specials)
    tok.merges = dict(merges)
    tok.vocab = _vocab_of(merges)
    return tok


def _vocab_of(merges: dict) -> dict[int, bytes]:
    vocab = {i: bytes([i]) for i in range(256)}
    for (a, b), new_id in sorted(merges.items(), key=lambda kv: kv[1]):
        if a in vocab and b in vocab:
            vocab[new_id] = vocab[a] + vocab[b]
    return vocab


def _pieces(text: str, pattern, specials) -> list[str]:
    tok = BPETokenizer(pattern, specials)
    return [c for piece, special in tok._segments(text) if not special
            for c in tok._chunks(piece)]


def _merge_rtl(ids: list[int], pair, new_id: int) -> list[int]:
    return merge_pair(ids[::-1], pair[::-1], new_id)[::-1]


def _stats(words, freqs, overlap: bool = True) -> dict:
    stats: dict = {}
    for word, freq in zip(words, freqs, strict=True):
        i = 0
        while i + 1 < len(word):
            pair = (word[i], word[i + 1])
            stats[pair] = stats.get(pair, 0) + freq
            # without overlaps, "aaa" counts (a, a) once
            i += 2 if (not overlap and i + 2 < len(word) and word[i + 2] == word[i + 1]
                       and word[i] == word[i + 1]) else 1
    return stats


def _pick(stats: dict, tie: str):
    if tie == "smallest":
        return min(stats, key=lambda p: (-stats[p], p))
    if tie == "largest":
        return max(stats, key=lambda p: (stats[p], p))
    return max(stats, key=stats.get)  # "first": the pair seen first in the text


def _train_variant(text, vocab_size, pattern=None, specials=None, tie="smallest",
                   stale=False, rtl=False, overlap=True) -> list[tuple[int, int]]:
    """The merges (in order) that a tokenizer with one known mistake learns from ``text``."""
    counts = Counter(_pieces(text, pattern, specials))
    words = [list(c.encode("utf-8")) for c in counts]
    freqs = list(counts.values())
    merge = _merge_rtl if rtl else merge_pair
    merges = []
    stats = _stats(words, freqs, overlap)
    for new_id in range(256, vocab_size):
        if not stale and merges:
            stats = _stats(words, freqs, overlap)
        stats = {p: c for p, c in stats.items() if c > 0}
        if not stats:
            break
        pair = _pick(stats, tie)
        if stale:
            del stats[pair]
        merges.append(pair)
        words = [merge(w, pair, new_id) for w in words]
    return merges


def _encode_variant(merges: dict, text: str, pattern, specials, how: str) -> list[int]:
    """What a tokenizer with one known encoding mistake returns, with the given merges."""
    if how == "no_presplit":
        return _with_merges(merges, None, specials).encode(text)
    if how == "presplit":  # the GPT-2 pattern although none was given
        return _with_merges(merges, PATTERN, specials).encode(text)
    if how == "specials_split":
        return _with_merges(merges, pattern, None).encode(text)
    if how == "shortest_first":  # special tokens tried shortest first
        tok = _with_merges(merges, pattern, specials)
        tok._special = re.compile("(" + "|".join(map(re.escape, sorted(specials, key=len)))
                                  + ")")
        return tok.encode(text)
    tok = BPETokenizer(pattern, specials)
    out: list[int] = []
    for piece, special in tok._segments(text):
        if special:
            out.append(tok.special_tokens[piece])
            continue
        for chunk in tok._chunks(piece):
            ids = list(chunk.encode("utf-8"))
            while len(ids) >= 2:
                pairs = [p for p in pairwise(ids) if p in merges]
                if not pairs:
                    break
                if how == "frequency":  # the most frequent pair of this text, not merge order
                    pair = max(Counter(pairs).items(), key=lambda kv: kv[1])[0]
                    ids = merge_pair(ids, pair, merges[pair])
                else:  # "rtl": merge order, but occurrences replaced right to left
                    pair = min(pairs, key=merges.get)
                    ids = _merge_rtl(ids, pair, merges[pair])
            out.extend(ids)
    return out


# ---------------------------------------------------------------- messages

TIE_SMALLEST = ("ties are broken differently: among pairs with the same highest count take the "
                "smallest pair (a, b), compared as tuples of ids, i.e. min over (-count, pair)")
TIE_LARGEST = TIE_SMALLEST + "; you take the largest"
TIE_FIRST = TIE_SMALLEST + "; you take the pair seen first in the text"
STALE = ("your pair counts are stale: count the pairs again after every merge (a merge removes "
         "the pairs it joined and creates new pairs with the new token)")
RTL = ("merge occurrences from left to right without overlaps: in 'aaa' the pair (a, a) "
       "becomes [aa, a], not [a, aa]")
NO_OVERLAP = ("count a pair at every position, overlaps included: 'aaa' holds the pair (a, a) "
              "twice")
TRAIN_NO_PRESPLIT = ("with a pattern, train on the pre-split chunks: split the text with the "
                     "pattern first and never count a pair across two chunks")
ENCODE_ORDER = ("encode must apply the merges in the order they were learned (the pair with "
                "the smallest merge id first, wherever it is), not the most frequent pair of "
                "the text being encoded")
ENCODE_NO_PRESPLIT = ("encode must pre-split the text with the pattern too, and merge only "
                      "inside each chunk, as in training")
TRAIN_PRESPLIT = ("BPETokenizer() has no pattern by default (pattern=None): the whole text is "
                  "one sequence, so merges may cross spaces and punctuation; yours pre-split it")
ENCODE_PRESPLIT = ("without a pattern (pattern=None, the default) encode must not pre-split: "
                   "the whole text is one sequence")
LONGEST_FIRST = ("special tokens are matched longest first: where a longer special token starts "
                 "with a shorter one, the longer one wins (sort them by length, longest first, "
                 "before building the pattern)")
NOT_RESET = ("train must start from scratch: a second train(text2, ...) learns text2's merges "
             "only (reset merges and vocab at the start of train)")
STALE_ENCODE = ("encode used the merges of an earlier train: clear any cache of encoded chunks "
                "when train runs")
IGNORE_ERRORS = ("decode dropped the bytes that are not valid UTF-8 (errors='ignore'): decode "
                 "with errors='replace', so each becomes U+FFFD as in GPT-2")
SPECIAL = ("special tokens must be found before the pre-split and encoded as their own id; "
           "yours were split into ordinary tokens")
JOIN_BYTES = ("your decode produced U+FFFD replacement characters: join the bytes of all "
              "tokens first and decode UTF-8 once, since one character can be split across "
              "two tokens")
CODE_POINTS = ("encode the UTF-8 bytes of the text (text.encode('utf-8')), not its code points "
               "(ord): the base vocabulary is the 256 byte values")


def _show(vocab: dict[int, bytes], token: int) -> str:
    return repr(vocab[token]) if token in vocab else f"id {token}"


def _steps(result: dict, n: int) -> list:
    steps = result.get("steps")
    if not isinstance(steps, list) or len(steps) != n:
        raise Mismatch("the worker did not return one result per method call")
    return [unwrap(step) for step in steps]


def _ids(value, what: str) -> list[int]:
    if not isinstance(value, list) or not all(type(i) is int for i in value):
        raise Mismatch(f"{what} should return a list of ints, got {describe(value)}")
    return value


def _text_result(value, what: str = "decode") -> str:
    if not isinstance(value, str):
        raise Mismatch(f"{what} should return a str, got {describe(value)}")
    return value


def _short(seq, limit: int = 12) -> str:
    seq = list(seq)
    return str(seq) if len(seq) <= limit else str(seq[:limit])[:-1] + ", ...]"


def _parse_merges(value) -> dict[tuple[int, int], int]:
    """The learner's ``merges`` as it came back (a dict with keys turned into str)."""
    if not isinstance(value, dict):
        raise Mismatch("`merges` should be a dict {(a, b): new_id} in the order the merges were "
                       f"learned; got {describe(value)}")
    merges = {}
    for key, new_id in value.items():
        m = re.fullmatch(r"\((\d+), (\d+)\)", key)
        if not m or type(new_id) is not int:
            raise Mismatch("`merges` should map pairs of ints (a, b) to int ids; found "
                           f"{key[:40]!r}: {describe(new_id)}")
        merges[(int(m[1]), int(m[2]))] = new_id
    return merges


def _first_difference(got: list, expected: list) -> int:
    return next((i for i, (g, e) in enumerate(zip(got, expected, strict=False)) if g != e),
                min(len(got), len(expected)))


def _check_merges(got: dict, ref: BPETokenizer, vocab_size: int, variants: dict) -> None:
    """``got`` (the learner's merges) against the reference's, naming a known mistake."""
    expected = list(ref.merges)
    pairs, ids = list(got), list(got.values())
    n, full = len(expected), vocab_size - 256
    if ids and ids != list(range(ids[0], ids[0] + len(ids))):
        raise Mismatch("`merges` must list the merges in the order they were learned, with "
                       "consecutive ids 256, 257, ...")
    if ids and ids[0] != 256:
        raise Mismatch(f"the first merge gets id 256 (ids 0-255 are the bytes), the next 257, "
                       f"and so on; yours start at {ids[0]}")
    if len(pairs) != n:
        if n == full and abs(len(pairs) - n) == 1:
            raise Mismatch(f"vocab_size includes the 256 byte tokens: train(text, {vocab_size}) "
                           f"makes vocab_size - 256 = {full} merges; you made {len(pairs)}")
        if len(pairs) > n:
            raise Mismatch(f"you made {len(pairs)} merges, expected {n}: stop when no adjacent "
                           "pair is left (every chunk is one token)")
    if pairs == expected:
        return
    for message, wrong in variants.items():
        if pairs == wrong:
            raise Mismatch(message)
    k = _first_difference(pairs, expected)
    if any(max(p) >= 256 for p in expected[:k + 20]) and all(max(p) < 256 for p in pairs):
        raise Mismatch(STALE)
    if k >= len(pairs):
        raise Mismatch(f"you made {len(pairs)} merges, expected {n}; the ones you made agree")
    vocab = ref.vocab
    a, b = pairs[k]
    c, d = expected[k]
    agree = f"; the first {k} merges agree" if k else ""
    raise Mismatch(f"merge #{k} (id {256 + k}) differs: yours joins {_show(vocab, a)} + "
                   f"{_show(vocab, b)}, expected {_show(vocab, c)} + {_show(vocab, d)}{agree}")


def _check_encoding(got, text: str, merges: dict, pattern, specials, what: str,
                    known: tuple[str, ...] = ("frequency", "no_presplit", "rtl")) -> None:
    """``got`` (the learner's ids for ``text``) against a correct encoding with the learner's
    own merges: only the encoding is judged here, not the training."""
    got = _ids(got, "encode")
    ref = _with_merges(merges, pattern, specials)
    expected = ref.encode(text)
    if got == expected:
        return
    messages = {"frequency": ENCODE_ORDER, "no_presplit": ENCODE_NO_PRESPLIT, "rtl": RTL,
                "specials_split": SPECIAL, "presplit": ENCODE_PRESPLIT,
                "shortest_first": LONGEST_FIRST}
    if pattern is not None:
        known = tuple(k for k in known if k != "presplit")
    for how in known:
        if got == _encode_variant(merges, text, pattern, specials, how):
            raise Mismatch(messages[how])
    special_ids = set((specials or {}).values())
    if [i for i in got if i in special_ids] != [i for i in expected if i in special_ids]:
        raise Mismatch(SPECIAL)
    vocab = ref.vocab
    if not all(i in vocab or i in special_ids for i in got):
        bad = next(i for i in got if i not in vocab and i not in special_ids)
        raise Mismatch(f"encode returned id {bad}, which is neither a byte, a merge of yours, "
                       "nor a special token")
    special_bytes = {i: s.encode("utf-8") for s, i in (specials or {}).items()}
    if b"".join(vocab.get(i) or special_bytes[i] for i in got) != text.encode("utf-8"):
        raise Mismatch(f"{what}: your encode changes the text: the bytes of your tokens, joined, "
                       "are not the UTF-8 bytes of the input (check the merge step: each pair "
                       "becomes one id and every other id is kept)")
    k = _first_difference(got, expected)
    raise Mismatch(f"{what}: your tokens differ from position {k} on (yours "
                   f"{_short(got[k:k + 6])}, expected {_short(expected[k:k + 6])}), with your "
                   "own merges; " + ENCODE_ORDER.replace("encode must", "remember to"))


def _check_decode(got, ids: list[int], merges: dict, specials, text: str) -> None:
    """``got`` = learner's decode(ids): compared with the text these ids stand for under the
    learner's own merges."""
    got = _text_result(got)
    vocab = _vocab_of(merges)
    special_bytes = {i: s.encode("utf-8") for s, i in (specials or {}).items()}
    if not all(i in vocab or i in special_bytes for i in ids):
        raise Mismatch("decode could not be checked: your merges do not have the ids 256, 257, "
                       "... that train should make")
    expected = b"".join(vocab.get(i) or special_bytes[i] for i in ids).decode("utf-8", "replace")
    if got == expected:
        return
    if "\ufffd" in got and "\ufffd" not in expected:
        raise Mismatch(JOIN_BYTES)
    k = _first_difference(got, expected)
    raise Mismatch(f"decode returned {got[max(0, k - 10):k + 10]!r} around character {k}, "
                   f"expected {expected[max(0, k - 10):k + 10]!r}")


def _bpe_case(name: str, steps: list[tuple], judge, pattern=None, specials=None,
              points: float = 1.0) -> Case:
    """``BPETokenizer(pattern, specials)`` built in the worker, then ``steps`` called on it in
    order, each ``(method, *args)`` (``MERGES`` reads back ``merges``); ``judge`` receives
    the list of what the steps returned."""
    kwargs = {} if pattern is None else {"pattern": pattern}
    if specials is not None:
        kwargs["special_tokens"] = dict(specials)
    steps = [list(GET_MERGES) if s == MERGES else [s[0], list(s[1:]), {}] for s in steps]
    call = {"kind": "methods", "symbol": SYMBOL, "args": [], "kwargs": kwargs, "steps": steps}
    return Case(name, call, lambda result: judge(_steps(result, len(steps))), points)


# ---------------------------------------------------------------- cases


def _untrained_encode_case(gen) -> Case:
    texts = [_unicode(gen, 40), "", "Hello, world!\n", _unicode(gen, 25)]

    def judge(steps: list) -> None:
        for text, got in zip(texts, steps, strict=True):
            got = _ids(got, "encode")
            expected = list(text.encode("utf-8"))
            if got != expected:
                if got == [ord(ch) for ch in text]:
                    raise Mismatch(CODE_POINTS)
                raise Mismatch(f"an untrained tokenizer should encode {text[:20]!r} as its UTF-8 "
                               f"bytes {_short(expected)}, got {_short(got)}")

    return _bpe_case("untrained: encode gives the UTF-8 bytes (emoji, several scripts)",
                     [("encode", t) for t in texts], judge)


def _untrained_decode_case(gen) -> Case:
    texts = [_unicode(gen, 40), "", "naïve café 😀 日本", _unicode(gen, 30)]

    def judge(steps: list) -> None:
        for text, got in zip(texts, steps, strict=True):
            _check_decode(got, list(text.encode("utf-8")), {}, None, text)

    return _bpe_case("untrained: decode joins the bytes of all tokens before decoding UTF-8",
                     [("decode", list(t.encode("utf-8"))) for t in texts], judge)


def _invalid_utf8_case(gen) -> Case:
    data = [0xE2, 0x82, ord("A"), 0xF0, 0x9F, ord(" "), 0xFF]
    expected = bytes(data).decode("utf-8", "replace")

    def judge(steps: list) -> None:
        got = _text_result(steps[0])
        if got == bytes(data).decode("utf-8", "ignore"):
            raise Mismatch(IGNORE_ERRORS)
        if got != expected:
            raise Mismatch(f"decode({data}) should give {expected!r}: bytes that are not valid "
                           "UTF-8 decode with errors='replace' (U+FFFD), as in GPT-2; got "
                           f"{got!r}")

    return _bpe_case("decode of bytes that are not valid UTF-8 uses errors='replace'",
                     [("decode", data)], judge, points=0.5)


# the merges of a training with one known mistake: key -> (message, _train_variant's options)
TRAIN_MISTAKES = {"largest": (TIE_LARGEST, {"tie": "largest"}),
                  "first": (TIE_FIRST, {"tie": "first"}), "stale": (STALE, {"stale": True}),
                  "rtl": (RTL, {"rtl": True}), "overlap": (NO_OVERLAP, {"overlap": False})}


def _train_case(gen, name: str, text: str, vocab_size: int, pattern=None,
                variants_of=("largest", "first", "stale", "rtl", "overlap", "no_presplit"),
                encode: list[str] = (), points: float = 1.0) -> Case:
    ref = _trained(text, vocab_size, pattern)
    variants = {}
    for key in variants_of:
        if key == "no_presplit":  # trained with the other choice of pre-split
            message, options = ((TRAIN_NO_PRESPLIT, {"pattern": None}) if pattern is not None
                                else (TRAIN_PRESPLIT, {"pattern": PATTERN}))
        else:
            message, options = TRAIN_MISTAKES[key]
        variants[message] = _train_variant(text, vocab_size, **{"pattern": pattern, **options})
    variants = {m: v for m, v in variants.items() if v != list(ref.merges)}
    if variants.get(TIE_LARGEST, 0) == variants.get(TIE_FIRST, 1):  # the same wrong merges
        variants = {TIE_SMALLEST: variants.pop(TIE_LARGEST), **variants}
        del variants[TIE_FIRST]

    def judge(steps: list) -> None:
        if steps[0] is not None:
            raise Mismatch(f"train should return None (it changes the tokenizer), got "
                           f"{describe(steps[0])}")
        merges = _parse_merges(steps[1])
        _check_merges(merges, ref, vocab_size, variants)
        for text_, got in zip(encode, steps[2:], strict=True):
            _check_encoding(got, text_, merges, pattern, None, f"encode({text_[:16]!r})",
                            known=("frequency", "no_presplit", "rtl", "presplit"))

    steps = [("train", text, vocab_size), MERGES] + [("encode", t) for t in encode]
    return _bpe_case(name, steps, judge, pattern, points=points)


def _conflicts(merges: dict, limit: int = 6) -> list[str]:
    """Words where merge order and pair frequency disagree: for merges (x, y) learned before
    (y, z), the word x + (y + z) * 3 holds (y, z) more often than (x, y). A newline before
    it keeps a space-prefixed merge from going first."""
    ascii_pairs = [p for p in merges if max(p) < 128 and all(chr(c).isalpha() for c in p)]
    words = []
    for x, y in ascii_pairs:
        later = [(a, z) for a, z in ascii_pairs
                 if a == y and z != x and merges[(a, z)] > merges[(x, y)]]
        if later:
            z = later[0][1]
            words.append("\n" + chr(x) + (chr(y) + chr(z)) * 3)
        if len(words) == limit:
            break
    return words


def _encode_case(gen, vocabulary) -> Case:
    """Train on one text, encode another whose own pair frequencies differ."""
    text = _text(gen, vocabulary, 400)
    vocab_size = 256 + 90
    ref = _trained(text, vocab_size, PATTERN)
    glued = [vocabulary[_randint(gen, 0, 15)] + vocabulary[_randint(gen, 0, 15)][::-1]
             for _ in range(20)]
    held_out = (_text(gen, vocabulary[::-1], 80) + " ".join(glued) + "".join(_conflicts(
        ref.merges)) + _unicode(gen, 20))

    def judge(steps: list) -> None:
        _check_encoding(steps[2], held_out, _parse_merges(steps[1]), PATTERN, None,
                        "a held-out text")

    return _bpe_case("encode a held-out text: merges applied in the order they were learned",
                     [("train", text, vocab_size), MERGES, ("encode", held_out)], judge,
                     PATTERN, points=2)


def _round_trip_case(gen, vocabulary) -> Case:
    text = _text(gen, vocabulary, 400)
    vocab_size = 256 + 100
    ref = _trained(text, vocab_size, PATTERN)
    samples = [_unicode(gen, 60), _text(gen, vocabulary, 30), _unicode(gen, 30) + " 🙂🙂 " +
               _text(gen, vocabulary, 10)]
    ref_ids = [ref.encode(s) for s in samples]

    def judge(steps: list) -> None:
        merges = _parse_merges(steps[1])
        vocab = _vocab_of(merges)
        for s, got in zip(samples, steps[2:2 + len(samples)], strict=True):
            got = _ids(got, "encode")
            if not all(i in vocab for i in got):
                raise Mismatch(f"encode returned an id ({next(i for i in got if i not in vocab)})"
                               " that is neither a byte nor one of your merges")
            if b"".join(vocab[i] for i in got) != s.encode("utf-8"):
                raise Mismatch(f"decode(encode(s)) != s for s = {s[:30]!r}: the bytes of your "
                               "tokens, joined, are not the UTF-8 bytes of s")
        for s, ids, got in zip(samples, ref_ids, steps[2 + len(samples):], strict=True):
            _check_decode(got, ids, merges, None, s)

    steps = ([("train", text, vocab_size), MERGES] + [("encode", s) for s in samples]
             + [("decode", ids) for ids in ref_ids])
    return _bpe_case("round trip after training: decode(encode(s)) == s on random Unicode",
                     steps, judge, PATTERN, points=2)


def _special_untrained_case(gen) -> Case:
    # the last special starts with the first: longest first, it wins
    specials = {EOT: 256, SEP: 257, EOT + "\n": 258}
    text = (_unicode(gen, 8) + EOT + "hello world" + SEP + SEP + _unicode(gen, 8) + " " + EOT
            + "\n" + _unicode(gen, 4) + EOT)
    expected = BPETokenizer(PATTERN, specials).encode(text)

    def judge(steps: list) -> None:
        _check_encoding(steps[0], text, {}, PATTERN, specials, "special tokens",
                        known=("specials_split", "shortest_first"))
        _check_decode(steps[1], expected, {}, specials, text)

    return _bpe_case(f"special tokens (untrained): {EOT} is one token, never split by the "
                     "pattern", [("encode", text), ("decode", expected)], judge, PATTERN,
                     specials)


def _special_trained_case(gen, vocabulary) -> Case:
    text = _text(gen, vocabulary, 300)
    vocab_size = 256 + 60
    specials = {EOT: vocab_size, SEP: vocab_size + 1}
    a, b = _text(gen, vocabulary, 12), _text(gen, vocabulary, 12)
    both = a + EOT + b + SEP
    ref_both = _trained(text, vocab_size, PATTERN, specials).encode(both)

    def judge(steps: list) -> None:
        merges = _parse_merges(steps[1])
        _check_encoding(steps[4], both, merges, PATTERN, specials, "text with special tokens",
                        known=("specials_split", "frequency", "no_presplit", "rtl"))
        enc_a, enc_b = _ids(steps[2], "encode"), _ids(steps[3], "encode")
        if steps[4] != enc_a + [vocab_size] + enc_b + [vocab_size + 1]:
            raise Mismatch("encode(a + special + b) should be encode(a) + [special id] + "
                           "encode(b): a special token cuts the text in two")
        _check_decode(steps[5], ref_both, merges, specials, both)

    steps = [("train", text, vocab_size), MERGES, ("encode", a), ("encode", b),
             ("encode", both), ("decode", ref_both)]
    return _bpe_case("special tokens after training: encode(a + special + b) == encode(a) + "
                     "[id] + encode(b)", steps, judge, PATTERN, specials)


def _retrain_case(gen, vocabulary) -> Case:
    """Train on one text, encode, train again on another: the second training starts from
    scratch and encode follows the new merges."""
    first, second = _text(gen, vocabulary, 200), _text(gen, vocabulary[::-1], 200)
    vocab_size = 256 + 40
    ref = _trained(second, vocab_size, PATTERN)
    earlier = _trained(first, vocab_size, PATTERN)
    sample = _text(gen, vocabulary, 20)

    def judge(steps: list) -> None:
        merges = _parse_merges(steps[3])
        if any(p in earlier.merges and p not in ref.merges for p in merges):
            raise Mismatch(NOT_RESET)
        _check_merges(merges, ref, vocab_size, {})
        got = _ids(steps[4], "encode")
        if got != ref.encode(sample) and got == earlier.encode(sample):
            raise Mismatch(STALE_ENCODE)
        _check_encoding(got, sample, merges, PATTERN, None, "encode after a second train")

    steps = [("train", first, vocab_size), ("encode", sample), ("train", second, vocab_size),
             MERGES, ("encode", sample)]
    return _bpe_case("train twice: the second training starts from scratch, encode follows it",
                     steps, judge, PATTERN)


def _early_stop_case(gen) -> Case:
    text = _word(gen, "abc", 4, 7)
    return _train_case(gen, f"degenerate: {text!r} with vocab_size=300 stops when no pair is "
                       "left", text, 300, None, encode=[text], points=0.5,
                       variants_of=("largest", "first", "stale", "rtl"))


def _no_merge_case(gen, text: str, vocab_size: int) -> Case:
    def judge(steps: list) -> None:
        merges = _parse_merges(steps[1])
        if merges:
            raise Mismatch("an empty text, or vocab_size=256, leaves nothing to merge: "
                           f"`merges` should be empty, yours has {len(merges)}")

    what = "an empty text" if not text else "a text"
    return _bpe_case(f"degenerate: train({what}, {vocab_size}) makes no merges",
                     [("train", text, vocab_size), MERGES], judge, points=0.25)


def bpe_cases(gen: torch.Generator) -> list[Case]:
    vocabulary = _vocabulary(gen)
    small = _vocabulary(gen, n_latin=12, n_other=0)
    return [
        _untrained_encode_case(gen),
        _untrained_decode_case(gen),
        _invalid_utf8_case(gen),
        _train_case(gen, "train and encode, no pre-split (the default): most frequent pair "
                    "first, ties to the smallest pair, ids from 256", _text(gen, small, 250),
                    256 + 50, None, encode=[_text(gen, small, 30)], points=2),
        _train_case(gen, "train with the GPT-2-style pattern: merges never cross chunks",
                    _text(gen, vocabulary, 500), 256 + 100, PATTERN, points=2),
        _train_case(gen, "runs of one letter ('aaaa'): overlapping pairs counted at every "
                    "position, merged left to right", _runs(gen, 150), 256 + 12, PATTERN,
                    variants_of=("rtl", "overlap", "largest", "first"),
                    encode=["aaaaaaaaa bbbbbbb aaa"]),
        _encode_case(gen, vocabulary),
        _round_trip_case(gen, vocabulary),
        _special_untrained_case(gen),
        _special_trained_case(gen, vocabulary),
        _retrain_case(gen, vocabulary),
        _early_stop_case(gen),
        _no_merge_case(gen, "", 300),
        _no_merge_case(gen, _unicode(gen, 20), 256),
    ]
