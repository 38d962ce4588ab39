"""Week 2 submissions for the grader's own tests: known-wrong ones and correct variants.

Most wrong submissions are one realistic edit of a plain, correct tokenizer (``NAIVE``: it
recounts every pair after each merge, as most learners will write it). The test suite grades
each one and asserts it loses points and, where the grader knows the mistake, that its
message names it.
"""

HEADER = """
import re
from collections import Counter
"""

NAIVE = HEADER + '''

def get_pairs(ids, counts=None):
    counts = {} if counts is None else counts
    for pair in zip(ids, ids[1:]):
        counts[pair] = counts.get(pair, 0) + 1
    return counts


def merge(ids, pair, idx):
    out, i = [], 0
    while i < len(ids):
        if i < len(ids) - 1 and ids[i] == pair[0] and ids[i + 1] == pair[1]:
            out.append(idx)
            i += 2
        else:
            out.append(ids[i])
            i += 1
    return out


class BPETokenizer:
    def __init__(self, pattern=None, special_tokens=None):
        self.pattern = pattern
        self.special_tokens = dict(special_tokens or {})
        self.merges = {}
        self.vocab = {i: bytes([i]) for i in range(256)}

    def split(self, text):
        if self.special_tokens:
            alternatives = "|".join(re.escape(s) for s in sorted(self.special_tokens, key=len, reverse=True))
            parts = re.split("(" + alternatives + ")", text)
        else:
            parts = [text]
        out = []
        for part in parts:
            if part in self.special_tokens:
                out.append(part)
            elif self.pattern:
                out.extend(re.findall(self.pattern, part))
            elif part:
                out.append(part)
        return out

    def train(self, text, vocab_size):
        chunks = [list(c.encode("utf-8")) for c in self.split(text) if c not in self.special_tokens]
        self.merges = {}
        self.vocab = {i: bytes([i]) for i in range(256)}
        for i in range(vocab_size - 256):
            counts = {}
            for ids in chunks:
                get_pairs(ids, counts)
            if not counts:
                break
            pair = min(counts, key=lambda p: (-counts[p], p))
            idx = 256 + i
            chunks = [merge(ids, pair, idx) for ids in chunks]
            self.merges[pair] = idx
            self.vocab[idx] = self.vocab[pair[0]] + self.vocab[pair[1]]

    def encode_chunk(self, ids):
        while len(ids) >= 2:
            pairs = get_pairs(ids)
            pair = min(pairs, key=lambda p: self.merges.get(p, float("inf")))
            if pair not in self.merges:
                break
            ids = merge(ids, pair, self.merges[pair])
        return ids

    def encode(self, text):
        out = []
        for chunk in self.split(text):
            if chunk in self.special_tokens:
                out.append(self.special_tokens[chunk])
            else:
                out.extend(self.encode_chunk(list(chunk.encode("utf-8"))))
        return out

    def decode(self, ids):
        inverse = {i: s.encode("utf-8") for s, i in self.special_tokens.items()}
        data = b"".join(self.vocab[i] if i in self.vocab else inverse[i] for i in ids)
        return data.decode("utf-8", errors="replace")
'''


def edit(*replacements: tuple[str, str]) -> str:
    """``NAIVE`` with each ``old`` replaced by ``new`` (each must occur in it)."""
    code = NAIVE
    for old, new in replacements:
        assert old in code, old
        code = code.replace(old, new)
    return code


PICK = "pair = min(counts, key=lambda p: (-counts[p], p))"
TRAIN_LOOP = """        for i in range(vocab_size - 256):
            counts = {}
            for ids in chunks:
                get_pairs(ids, counts)
            if not counts:
                break
"""

# (exercise, code, a phrase the feedback must contain, or None)
WRONG = {
    # the red team's: a second train() keeps the first one's merges and vocabulary
    "bpe_train_does_not_reset": ("bpe", edit(("""        self.merges = {}
        self.vocab = {i: bytes([i]) for i in range(256)}
        for i in range(vocab_size - 256):""", """        for i in range(vocab_size - 256):""")),
        "train must start from scratch"),
    "bpe_ties_to_largest_pair": ("bpe", edit(
        (PICK, "pair = max(counts, key=lambda p: (counts[p], p))")), "you take the largest"),
    "bpe_ties_to_first_seen_pair": ("bpe", edit(
        (PICK, "pair = max(counts, key=counts.get)")), "seen first in the text"),
    "bpe_stale_counts": ("bpe", edit((TRAIN_LOOP, """        counts = {}
        for ids in chunks:
            get_pairs(ids, counts)
        for i in range(vocab_size - 256):
            if not counts:
                break
"""), (PICK, "pair = min(counts, key=lambda p: (-counts[p], p))\n            del counts[pair]")),
        "stale"),
    "bpe_merges_right_to_left_in_place": ("bpe", edit(("""def merge(ids, pair, idx):
    out, i = [], 0""", """def merge(ids, pair, idx):
    ids = list(ids)
    for j in reversed(range(len(ids) - 1)):
        if j + 1 < len(ids) and ids[j] == pair[0] and ids[j + 1] == pair[1]:
            ids[j:j + 2] = [idx]
    return ids
    out, i = [], 0""")), "left to right"),
    "bpe_merge_forgets_to_skip": ("bpe", edit(("""            out.append(idx)
            i += 2""", """            out.append(idx)
            i += 1""")), "changes the text"),
    "bpe_encode_by_frequency": ("bpe", edit(("""            pairs = get_pairs(ids)
            pair = min(pairs, key=lambda p: self.merges.get(p, float("inf")))
            if pair not in self.merges:
                break""", """            pairs = {p: c for p, c in get_pairs(ids).items() if p in self.merges}
            if not pairs:
                break
            pair = max(pairs, key=pairs.get)""")), "order they were learned"),
    "bpe_encode_ignores_pattern": ("bpe", edit(("""    def encode(self, text):
        out = []""", """    def encode(self, text):
        return self.encode_chunk(list(text.encode("utf-8")))
        out = []""")), "pre-split the text"),
    "bpe_train_ignores_pattern": ("bpe", edit((
        'chunks = [list(c.encode("utf-8")) for c in self.split(text) if c not in self.special_tokens]',
        'chunks = [list(text.encode("utf-8"))]')), "never count a pair across two chunks"),
    "bpe_ids_start_at_257": ("bpe", edit(("idx = 256 + i", "idx = 257 + i")), "id 256"),
    "bpe_one_merge_too_many": ("bpe", edit(("range(vocab_size - 256)", "range(vocab_size - 255)")),
                               "vocab_size - 256"),
    "bpe_decode_per_token": ("bpe", edit((
        'data = b"".join(self.vocab[i] if i in self.vocab else inverse[i] for i in ids)\n'
        '        return data.decode("utf-8", errors="replace")',
        'return "".join((self.vocab[i] if i in self.vocab else inverse[i]).decode("utf-8") '
        'for i in ids)')), "UnicodeDecodeError"),
    "bpe_decode_per_token_replace": ("bpe", edit((
        'data = b"".join(self.vocab[i] if i in self.vocab else inverse[i] for i in ids)\n'
        '        return data.decode("utf-8", errors="replace")',
        'return "".join((self.vocab[i] if i in self.vocab else inverse[i]).decode("utf-8", '
        '"replace") for i in ids)')), "join the bytes of all tokens first"),
    "bpe_special_tokens_split_by_pattern": ("bpe", edit(("""        if self.special_tokens:
            alternatives""", """        if False:
            alternatives""")), "special tokens must be found before the pre-split"),
    "bpe_code_points_not_bytes": ("bpe", edit(
        ('out.extend(self.encode_chunk(list(chunk.encode("utf-8"))))',
         "out.extend(self.encode_chunk([ord(ch) for ch in chunk]))")), "not its code points"),
    "bpe_no_early_stop": ("bpe", edit(("""            if not counts:
                break
            pair = min""", """            pair = min""")), "ValueError"),
    "bpe_decode_strict": ("bpe", edit(('data.decode("utf-8", errors="replace")',
                                       'data.decode("utf-8")')), "UnicodeDecodeError"),
}

GPT2_PATTERN = (r"""'(?:[sdmt]|ll|ve|re)| ?[^\W\d_]+| ?\d+| ?(?:[^\s\w]|_)+|\s+(?!\S)|\s+""")

# library shortcuts (keys with "shortcut" must score zero), ignored contract defaults and the
# mirror images of named mistakes
WRONG |= {
    "bpe_tokenizers_library_shortcut": ("bpe", edit(("import re\n", """import re
from tokenizers import Tokenizer, models, trainers
"""), ("""    def train(self, text, vocab_size):""", """    def train_fast(self, text, vocab_size):
        tok = Tokenizer(models.BPE())
        tok.train_from_iterator([text], trainers.BpeTrainer(vocab_size=vocab_size))
        return tok

    def train(self, text, vocab_size):""")), "not allowed"),
    "bpe_gpt2_pattern_by_default": ("bpe", edit((
        "def __init__(self, pattern=None, special_tokens=None):",
        f"def __init__(self, pattern={GPT2_PATTERN!r}, special_tokens=None):")),
        "BPETokenizer() has no pattern by default"),
    "bpe_encode_presplits_without_pattern": ("bpe", edit(("""    def encode(self, text):
        out = []
        for chunk in self.split(text):""", f"""    def encode(self, text):
        out = []
        chunks = self.split(text)
        if not self.pattern:
            chunks = [piece for chunk in chunks for piece in (
                [chunk] if chunk in self.special_tokens else re.findall({GPT2_PATTERN!r}, chunk))]
        for chunk in chunks:""")), "encode must not pre-split"),
    "bpe_decode_drops_invalid_bytes": ("bpe", edit(('data.decode("utf-8", errors="replace")',
                                                    'data.decode("utf-8", errors="ignore")')),
                                       "errors='ignore'"),
}

# A fast trainer (distinct chunks with counts, pairs updated in place) written differently
# from the reference: no heap, a rescan of the count table per merge.
INCREMENTAL = HEADER + '''


class BPETokenizer:
    """Byte-level BPE."""

    def __init__(self, pattern=None, special_tokens=None):
        self.pattern = re.compile(pattern) if pattern else None
        self.special_tokens = special_tokens or {}
        self.merges = {}
        self.vocab = {i: bytes([i]) for i in range(256)}

    def _cut(self, text):
        if not self.special_tokens:
            return [(text, False)]
        rx = "|".join(map(re.escape, sorted(self.special_tokens, key=len, reverse=True)))
        out = []
        pos = 0
        for m in re.finditer(rx, text):
            out.append((text[pos:m.start()], False))
            out.append((m.group(), True))
            pos = m.end()
        out.append((text[pos:], False))
        return out

    def _chunks(self, text):
        if self.pattern is None:
            return [text] if text else []
        return [m.group() for m in self.pattern.finditer(text)]

    @staticmethod
    def _replace(word, a, b, new):
        out = []
        i = 0
        while i < len(word):
            if word[i] == a and i + 1 < len(word) and word[i + 1] == b:
                out.append(new)
                i += 2
            else:
                out.append(word[i])
                i += 1
        return tuple(out)

    def train(self, text, vocab_size):
        words = Counter()
        for piece, special in self._cut(text):
            if not special:
                for chunk in self._chunks(piece):
                    words[tuple(chunk.encode())] += 1
        pairs = Counter()
        for word, n in words.items():
            for p in zip(word, word[1:]):
                pairs[p] += n
        self.merges, self.vocab = {}, {i: bytes([i]) for i in range(256)}
        for new in range(256, vocab_size):
            pairs = +pairs  # drop zero counts
            if not pairs:
                break
            best = max(pairs.items(), key=lambda kv: (kv[1], -kv[0][0], -kv[0][1]))[0]
            self.merges[best] = new
            self.vocab[new] = self.vocab[best[0]] + self.vocab[best[1]]
            for word, n in list(words.items()):
                if best[0] not in word:
                    continue
                merged = self._replace(word, best[0], best[1], new)
                if merged == word:
                    continue
                del words[word]
                words[merged] += n
                for p in zip(word, word[1:]):
                    pairs[p] -= n
                for p in zip(merged, merged[1:]):
                    pairs[p] += n

    def encode(self, text):
        ids = []
        for piece, special in self._cut(text):
            if special:
                ids.append(self.special_tokens[piece])
                continue
            for chunk in self._chunks(piece):
                word = tuple(chunk.encode())
                for pair, new in self.merges.items():  # every merge, in the order learned
                    if len(word) < 2:
                        break
                    word = self._replace(word, pair[0], pair[1], new)
                ids.extend(word)
        return ids

    def decode(self, ids):
        table = dict(self.vocab)
        table.update({i: s.encode() for s, i in self.special_tokens.items()})
        return bytes(b for i in ids for b in table[i]).decode("utf-8", "replace")
'''

# Tokens as byte strings throughout; ranks looked up through a dict from bytes pairs.
BYTES_BASED = HEADER + '''

class BPETokenizer:
    def __init__(self, pattern=None, special_tokens=None):
        self.pattern = pattern
        self.special_tokens = special_tokens if special_tokens is not None else {}
        self.merges = {}
        self.vocab = {}
        self._reset()

    def _reset(self):
        self.merges = {}
        self.vocab = {i: bytes([i]) for i in range(256)}
        self.ids = {bytes([i]): i for i in range(256)}

    def _split(self, text):
        pieces = [text]
        for tok in sorted(self.special_tokens, key=len, reverse=True):
            new = []
            for p in pieces:
                if p in self.special_tokens:
                    new.append(p)
                    continue
                parts = p.split(tok)
                for k, part in enumerate(parts):
                    if k:
                        new.append(tok)
                    new.append(part)
            pieces = new
        return pieces

    def _words(self, text):
        if not text:
            return []
        return re.findall(self.pattern, text) if self.pattern else [text]

    def train(self, text, vocab_size):
        self._reset()
        seqs = []
        for piece in self._split(text):
            if piece not in self.special_tokens:
                seqs += [[bytes([b]) for b in w.encode("utf-8")] for w in self._words(piece)]
        while len(self.vocab) < vocab_size:
            counts = Counter()
            for s in seqs:
                counts.update(zip(s, s[1:]))
            if not counts:
                return
            top = max(counts.values())
            a, b = min((self.ids[x], self.ids[y]) for (x, y), c in counts.items() if c == top)
            x, y = self.vocab[a], self.vocab[b]
            new = len(self.vocab)
            self.merges[(a, b)] = new
            self.vocab[new] = x + y
            self.ids[x + y] = new
            for k, s in enumerate(seqs):
                out, i = [], 0
                while i < len(s):
                    if i + 1 < len(s) and s[i] == x and s[i + 1] == y:
                        out.append(x + y)
                        i += 2
                    else:
                        out.append(s[i])
                        i += 1
                seqs[k] = out

    def encode(self, text):
        out = []
        for piece in self._split(text):
            if piece in self.special_tokens:
                out.append(self.special_tokens[piece])
                continue
            for w in self._words(piece):
                ids = list(w.encode("utf-8"))
                while True:
                    ranked = [(self.merges[p], j) for j, p in enumerate(zip(ids, ids[1:]))
                              if p in self.merges]
                    if not ranked:
                        break
                    rank = min(ranked)[0]
                    pair = next(p for p, r in self.merges.items() if r == rank)
                    j, new = 0, []
                    while j < len(ids):
                        if tuple(ids[j:j + 2]) == pair:
                            new.append(rank)
                            j += 2
                        else:
                            new.append(ids[j])
                            j += 1
                    ids = new
                out += ids
        return out

    def decode(self, ids):
        back = {v: k.encode("utf-8") for k, v in self.special_tokens.items()}
        buf = bytearray()
        for i in ids:
            buf += back[i] if i in back else self.vocab[i]
        return buf.decode("utf-8", errors="replace")
'''

CORRECT = {
    "bpe_naive_recount": ("bpe", NAIVE),
    "bpe_incremental_counter": ("bpe", INCREMENTAL),
    "bpe_bytes_tokens": ("bpe", BYTES_BASED),
    "bpe_naive_sorted_tie": ("bpe", edit(
        (PICK, "pair = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[0][0]"))),
}
