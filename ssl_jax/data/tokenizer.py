"""Tokenizers for the text methods: byte-level BPE trained offline, and plain bytes as the fallback.

Why byte-level BPE (GPT-2's scheme, Radford et al. 2019) rather than SentencePiece: its base alphabet is
the 256 bytes, so every string encodes losslessly with no unknown token (a character never seen in
training falls back to its UTF-8 bytes), and it trains in pure Python on word counts with no extra
dependency. Both tokenizers share one interface and the same special ids:

  pad 0, bos 1, eos 2, mask 3, sep 4   (`NUM_SPECIAL` = 5; every id below it is special)
  bytes 0..255 -> ids 5..260           (ByteTokenizer stops here: vocab_size 261)
  merges -> ids 261, 262, ...          (BPETokenizer: one id per learned merge, in rank order)

Training (`train_bpe`) splits text into pre-tokens (a word with its leading space, a number, a run of
punctuation, whitespace), counts them, and repeatedly merges the most frequent adjacent pair of symbols,
weighting each distinct word by its count; ties go to the lowest pair of ids, so training is
deterministic. Tokenizers are saved as JSON (never pickle) and loaded with `load_tokenizer`.
"""

from __future__ import annotations

import collections
import functools
import heapq
import json
import os
import re
from collections.abc import Iterable, Sequence
from typing import Protocol

PAD_ID, BOS_ID, EOS_ID, MASK_ID, SEP_ID = 0, 1, 2, 3, 4
SPECIAL_TOKENS = ("<pad>", "<bos>", "<eos>", "<mask>", "<sep>")
NUM_SPECIAL = len(SPECIAL_TOKENS)
BYTE_OFFSET = NUM_SPECIAL  # byte b has id b + BYTE_OFFSET
NUM_BYTES = 256

# A pre-token: an optional space and a run of letters, of digits, or of other symbols ("_" counts as a
# symbol); or a run of whitespace (all but its last character when a word follows, GPT-2's rule, so
# the word keeps its leading space). Every character of any string falls in exactly one alternative.
PRETOKEN_PATTERN = r" ?[^\W\d_]+| ?\d+| ?(?:[^\s\w]|_)+|\s+(?!\S)|\s+"
_PRETOKEN_RE = re.compile(PRETOKEN_PATTERN)


class Tokenizer(Protocol):
    """What the data pipeline and the text methods need from a tokenizer."""

    vocab_size: int
    pad_id: int
    bos_id: int
    eos_id: int
    mask_id: int
    sep_id: int
    num_special: int

    def encode(self, text: str) -> list[int]: ...

    def decode(self, ids: Iterable[int]) -> str: ...

    def save(self, path: str) -> None: ...


class _SpecialIds:
    pad_id = PAD_ID
    bos_id = BOS_ID
    eos_id = EOS_ID
    mask_id = MASK_ID
    sep_id = SEP_ID
    num_special = NUM_SPECIAL


class ByteTokenizer(_SpecialIds):
    """UTF-8 bytes as tokens: lossless for any text, vocab_size 261, nothing to train."""

    kind = "byte"
    vocab_size = NUM_SPECIAL + NUM_BYTES

    def encode(self, text: str) -> list[int]:
        return [b + BYTE_OFFSET for b in text.encode("utf-8")]

    def decode(self, ids: Iterable[int]) -> str:
        """Special ids are dropped; a byte sequence that is not valid UTF-8 decodes to U+FFFD."""
        data = bytes(i - BYTE_OFFSET for i in ids if BYTE_OFFSET <= i < self.vocab_size)
        return data.decode("utf-8", errors="replace")

    def save(self, path: str) -> None:
        _write_json(path, {"kind": self.kind, "special_tokens": list(SPECIAL_TOKENS)})


class BPETokenizer(_SpecialIds):
    """Byte-level BPE: `merges[r] = (a, b)` joins symbols a and b into id `NUM_SPECIAL + 256 + r`."""

    kind = "bpe"

    def __init__(self, merges: Sequence[tuple[int, int]]):
        self.merges = [(int(a), int(b)) for a, b in merges]
        first = BYTE_OFFSET + NUM_BYTES
        self.vocab_size = first + len(self.merges)
        self._rank = {pair: r for r, pair in enumerate(self.merges)}
        pieces = [b""] * NUM_SPECIAL + [bytes([b]) for b in range(NUM_BYTES)]
        for r, (a, b) in enumerate(self.merges):
            if (
                not (0 <= a < first + r and 0 <= b < first + r)
                or a < NUM_SPECIAL
                or b < NUM_SPECIAL
            ):
                raise ValueError(f"merge {r} joins ids ({a}, {b}), which are not earlier symbols.")
            pieces.append(pieces[a] + pieces[b])
        self._pieces = pieces
        self._encode_word = functools.lru_cache(maxsize=1 << 16)(self._bpe)

    def _bpe(self, word: str) -> tuple[int, ...]:
        """The ids of one pre-token: its bytes, merged lowest rank first until no merge applies."""
        symbols = [b + BYTE_OFFSET for b in word.encode("utf-8")]
        while len(symbols) > 1:
            ranks = [self._rank.get(p, -1) for p in zip(symbols, symbols[1:], strict=False)]
            best = min((r for r in ranks if r >= 0), default=-1)
            if best < 0:
                break
            merged, i = [], 0
            pair, new_id = self.merges[best], BYTE_OFFSET + NUM_BYTES + best
            while i < len(symbols):
                if i + 1 < len(symbols) and (symbols[i], symbols[i + 1]) == pair:
                    merged.append(new_id)
                    i += 2
                else:
                    merged.append(symbols[i])
                    i += 1
            symbols = merged
        return tuple(symbols)

    def encode(self, text: str) -> list[int]:
        ids: list[int] = []
        for word in _PRETOKEN_RE.findall(text):
            ids.extend(self._encode_word(word))
        return ids

    def decode(self, ids: Iterable[int]) -> str:
        """Special ids are dropped; a byte sequence that is not valid UTF-8 decodes to U+FFFD."""
        data = b"".join(self._pieces[i] for i in ids if NUM_SPECIAL <= i < self.vocab_size)
        return data.decode("utf-8", errors="replace")

    def token_bytes(self, token_id: int) -> bytes:
        """The bytes a (non-special) id stands for."""
        return self._pieces[token_id]

    def save(self, path: str) -> None:
        _write_json(
            path,
            {
                "kind": self.kind,
                "special_tokens": list(SPECIAL_TOKENS),
                "pretoken_pattern": PRETOKEN_PATTERN,
                "merges": [list(m) for m in self.merges],
            },
        )


def _write_json(path: str, payload: dict) -> None:
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    tmp = f"{path}.tmp{os.getpid()}"
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(payload, f)
    os.replace(tmp, path)  # atomic: a concurrent reader sees the old file or the whole new one


def load_tokenizer(path: str) -> ByteTokenizer | BPETokenizer:
    """A tokenizer saved with `.save(path)`."""
    with open(path, encoding="utf-8") as f:
        payload = json.load(f)
    if list(payload.get("special_tokens", [])) != list(SPECIAL_TOKENS):
        raise ValueError(f"{path}: special tokens {payload.get('special_tokens')} are not ours.")
    kind = payload.get("kind")
    if kind == "byte":
        return ByteTokenizer()
    if kind == "bpe":
        if payload.get("pretoken_pattern", PRETOKEN_PATTERN) != PRETOKEN_PATTERN:
            raise ValueError(f"{path}: written with another pre-tokenization pattern.")
        return BPETokenizer([tuple(m) for m in payload["merges"]])
    raise ValueError(f"{path}: unknown tokenizer kind {kind!r}.")


def word_counts(texts: Iterable[str]) -> collections.Counter:
    """Pre-token frequencies of `texts` (what BPE trains on)."""
    counts: collections.Counter = collections.Counter()
    for text in texts:
        counts.update(_PRETOKEN_RE.findall(text))
    return counts


def train_bpe(texts: Iterable[str], vocab_size: int, *, min_frequency: int = 2) -> BPETokenizer:
    """Learns byte-level BPE merges on `texts` until `vocab_size` ids (or no pair occurs
    `min_frequency` times). Each distinct pre-token is merged once, weighted by its count, with the
    pair counts updated incrementally, so 4 MB of English trains an 8k vocabulary in seconds."""
    first = BYTE_OFFSET + NUM_BYTES
    if vocab_size < first:
        raise ValueError(
            f"vocab_size must be at least {first} (specials + bytes), got {vocab_size}."
        )
    counts = word_counts(texts)
    words = [[b + BYTE_OFFSET for b in w.encode("utf-8")] for w in counts]
    freqs = list(counts.values())
    pair_counts: collections.Counter = collections.Counter()
    where: dict[tuple[int, int], set[int]] = collections.defaultdict(set)
    for w, (symbols, f) in enumerate(zip(words, freqs, strict=True)):
        for pair in zip(symbols, symbols[1:], strict=False):
            pair_counts[pair] += f
            where[pair].add(w)
    # Max-heap by count with lazy deletion: an entry is current only if its count still matches.
    heap = [(-c, pair) for pair, c in pair_counts.items()]
    heapq.heapify(heap)
    merges: list[tuple[int, int]] = []
    while len(merges) < vocab_size - first and heap:
        neg, pair = heapq.heappop(heap)
        if pair_counts.get(pair, 0) != -neg:
            continue  # stale
        if -neg < min_frequency:
            break
        new_id = first + len(merges)
        merges.append(pair)
        changed: set[tuple[int, int]] = set()
        for w in where.pop(pair, ()):
            symbols, f = words[w], freqs[w]
            merged, i = [], 0
            while i < len(symbols):
                if i + 1 < len(symbols) and (symbols[i], symbols[i + 1]) == pair:
                    merged.append(new_id)
                    i += 2
                else:
                    merged.append(symbols[i])
                    i += 1
            if len(merged) == len(symbols):
                continue  # the pair was merged away here by an earlier, overlapping merge
            for p in zip(symbols, symbols[1:], strict=False):
                pair_counts[p] -= f
                changed.add(p)
            for p in zip(merged, merged[1:], strict=False):
                pair_counts[p] += f
                where[p].add(w)
                changed.add(p)
            words[w] = merged
        pair_counts.pop(pair, None)
        for p in changed:
            c = pair_counts.get(p, 0)
            if c > 0:
                heapq.heappush(heap, (-c, p))
            else:
                pair_counts.pop(p, None)
    return BPETokenizer(merges)


TOKENIZER_KINDS = ("bpe", "byte")


def get_tokenizer(
    kind: str,
    *,
    texts: Iterable[str] | None = None,
    vocab_size: int = 8192,
    path: str | None = None,
) -> ByteTokenizer | BPETokenizer:
    """ "byte": the byte tokenizer. "bpe": loaded from `path` when that file exists, else trained on
    `texts` to `vocab_size` (and saved to `path` when given)."""
    if kind == "byte":
        return ByteTokenizer()
    if kind != "bpe":
        raise ValueError(f"Unknown tokenizer {kind!r}; valid: {', '.join(TOKENIZER_KINDS)}.")
    if path and os.path.isfile(path):
        tokenizer = load_tokenizer(path)
        if not isinstance(tokenizer, BPETokenizer) or tokenizer.vocab_size > vocab_size:
            raise ValueError(
                f"{path} holds a {tokenizer.kind} tokenizer of {tokenizer.vocab_size} ids, not a "
                f"BPE of at most {vocab_size}; delete it or point data.tokenizer_path elsewhere."
            )
        return tokenizer
    if texts is None:
        raise ValueError("A BPE tokenizer needs texts to train on (or a saved one at `path`).")
    tokenizer = train_bpe(texts, vocab_size)
    if path:
        tokenizer.save(path)
    return tokenizer
