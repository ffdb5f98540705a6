"""Skip-gram training rows over a directory of .txt files, for word2vec (Mikolov et al. 2013a, b).

- Tokenization: lower-cased words, `[a-z]+('[a-z]+)?` ("don't", "elizabeth's" stay one word; digits
  and punctuation are dropped). Each file is one document; windows never cross files.
- Splits: each file's word stream is cut into a contiguous train part (the first 1 - test_fraction)
  and test part (the rest), so no passage is in both.
- Vocabulary: words occurring at least `min_count` times in the train split (optionally the
  `max_vocab` most frequent), ids by decreasing count (ties alphabetical); id = frequency rank.
  Out-of-vocabulary words are removed from the stream before windows are taken, as word2vec does.
- Rows: one per in-vocabulary position of the split: {"center": int32, "context": int32 [2 * window]},
  the ids at offsets -window..-1, 1..window (-1 past the ends of the document). A row is a pure
  function of its index, so the deterministic, resumable training pipeline drives it like any source.
- Subsampling of frequent words (keep probability sqrt(t / f) + t / f, Mikolov et al. 2013b as in
  their released code, `keep_probabilities`) and word2vec's dynamic window (a window size drawn
  uniformly in 1..window per center) are NOT applied here: the method draws them on the device per
  example, keyed by the example id, so every epoch sees a fresh subsample and the host ships fixed
  rows. A discarded word masks its pairs instead of being cut out of the stream, so the window does not
  reach further past it (a small departure from the C code, documented in ssl_jax.methods.word2vec).

The data directory is configuration (config.data.data_dir); nothing here knows where a corpus lives.
"""

from __future__ import annotations

import collections
import functools
import os
import re
from collections.abc import Sequence
from typing import Any

import numpy as np

from ssl_jax.data.common import DatasetNotFoundError, config_field
from ssl_jax.data.registry import register

TOKEN_PATTERN = re.compile(r"[a-z]+(?:'[a-z]+)?")
SPLITS = ("train", "test")


def tokenize(text: str) -> list[str]:
    """Lower-cased words of `text` (see the module docstring for the rule)."""
    return TOKEN_PATTERN.findall(text.lower().replace("\u2019", "'"))


def split_stream(tokens: Sequence[str], split: str, test_fraction: float) -> Sequence[str]:
    """The contiguous `split` part of one document's words: train first, test last."""
    if split not in SPLITS:
        raise ValueError(f"skip-gram split must be one of {SPLITS}, got {split!r}")
    cut = int(round(len(tokens) * (1.0 - test_fraction)))
    return tokens[:cut] if split == "train" else tokens[cut:]


@functools.lru_cache(maxsize=4)
def read_documents(data_dir: str) -> tuple[tuple[str, tuple[str, ...]], ...]:
    """((file name, words), ...) for every .txt file in `data_dir`, in sorted order."""
    if not data_dir or not os.path.isdir(data_dir):
        raise DatasetNotFoundError(
            f"skip-gram text directory {data_dir!r} does not exist; set --config.data.data_dir to a "
            "directory of UTF-8 .txt files (one document per file)."
        )
    names = sorted(f for f in os.listdir(data_dir) if f.endswith(".txt"))
    if not names:
        raise DatasetNotFoundError(f"no .txt files in {data_dir!r}")
    documents = []
    for name in names:
        with open(os.path.join(data_dir, name), encoding="utf-8", errors="replace") as f:
            documents.append((name, tuple(tokenize(f.read()))))
    return tuple(documents)


class Vocabulary:
    """Words and their train-split counts, ids by decreasing count (id = frequency rank)."""

    def __init__(self, words: Sequence[str], counts: Sequence[int]):
        self.words = tuple(words)
        self.counts = np.asarray(counts, np.int64)
        if len(self.words) != len(self.counts):
            raise ValueError("one count per word")
        self.index = {w: i for i, w in enumerate(self.words)}

    @classmethod
    def build(
        cls, streams: Sequence[Sequence[str]], *, min_count: int, max_size: int = 0
    ) -> Vocabulary:
        counter = collections.Counter(w for stream in streams for w in stream)
        kept = sorted(
            ((w, c) for w, c in counter.items() if c >= min_count), key=lambda wc: (-wc[1], wc[0])
        )
        if max_size > 0:
            kept = kept[:max_size]
        if not kept:
            raise ValueError(f"no word occurs {min_count} times or more; lower data.min_count")
        return cls([w for w, _ in kept], [c for _, c in kept])

    def __len__(self) -> int:
        return len(self.words)

    def __contains__(self, word: str) -> bool:
        return word in self.index

    def ids(self, words: Sequence[str]) -> np.ndarray:
        """int32 ids, -1 for words outside the vocabulary."""
        return np.asarray([self.index.get(w, -1) for w in words], np.int32)


def keep_probabilities(counts: np.ndarray, threshold: float) -> np.ndarray:
    """Subsampling of frequent words (Mikolov et al. 2013b, Sec. 2.3, in the form of their released
    code): word w with relative frequency f(w) is kept with probability min(1, sqrt(t / f) + t / f).
    threshold t <= 0 keeps every word. Returns float64 [V]."""
    counts = np.asarray(counts, np.float64)
    if threshold <= 0:
        return np.ones_like(counts)
    ratio = threshold / (counts / counts.sum())
    return np.minimum(1.0, np.sqrt(ratio) + ratio)


def noise_distribution(counts: np.ndarray, power: float = 0.75) -> np.ndarray:
    """The negative-sampling noise distribution P_n(w) proportional to U(w)^power (Mikolov et al.
    2013b, Sec. 2.2: the unigram distribution raised to 3/4). Returns float64 [V] summing to 1."""
    weights = np.asarray(counts, np.float64) ** power
    return weights / weights.sum()


class SkipGramSource:
    """Rows {"center", "context"} over the `split` part of every document (module docstring).

    Attributes: name, vocab (built from the train split), counts (train counts, int64 [V]), window,
    num_classes (None: no labels), image_shape (None).
    """

    def __init__(
        self,
        data_dir: str,
        split: str,
        *,
        window: int = 5,
        min_count: int = 5,
        max_vocab: int = 0,
        test_fraction: float = 0.1,
    ):
        if window < 1:
            raise ValueError(f"window must be >= 1, got {window}")
        if not 0.0 <= test_fraction < 1.0:
            raise ValueError(f"test_fraction must lie in [0, 1), got {test_fraction}")
        documents = read_documents(data_dir)
        self.vocab = _vocabulary(data_dir, min_count, max_vocab, test_fraction)
        self.counts = self.vocab.counts
        self.window = int(window)
        self.name = f"skipgram[{os.path.basename(os.path.normpath(data_dir))}:{split}]"
        self.num_classes = None
        self.image_shape = None
        streams = []
        for _, words in documents:
            ids = self.vocab.ids(split_stream(words, split, test_fraction))
            streams.append(ids[ids >= 0])  # out-of-vocabulary words leave the stream
        lengths = np.asarray([len(s) for s in streams], np.int64)
        self.ids = np.concatenate(streams).astype(np.int32)
        ends = np.cumsum(lengths)
        doc = np.repeat(np.arange(len(streams)), lengths)
        self._start = (ends - lengths)[doc]  # per position: where its document starts and ends
        self._end = ends[doc]
        self._offsets = np.concatenate([np.arange(-window, 0), np.arange(1, window + 1)])

    def __len__(self) -> int:
        return len(self.ids)

    def get(self, indices: np.ndarray) -> dict[str, np.ndarray]:
        indices = np.asarray(indices)
        if indices.ndim != 1 or not np.issubdtype(indices.dtype, np.integer):
            raise IndexError(
                f"indices must be a 1-D integer array; got {indices.dtype} {indices.shape}"
            )
        if indices.size and (indices.min() < 0 or indices.max() >= len(self)):
            raise IndexError(
                f"indices must lie in [0, {len(self)}); got [{indices.min()}, {indices.max()}]"
            )
        positions = indices[:, None] + self._offsets[None, :]  # [n, 2 * window]
        inside = (positions >= self._start[indices, None]) & (positions < self._end[indices, None])
        context = np.where(inside, self.ids[np.clip(positions, 0, len(self) - 1)], -1)
        return {"center": self.ids[indices], "context": context.astype(np.int32)}


@functools.lru_cache(maxsize=4)
def _vocabulary(data_dir: str, min_count: int, max_vocab: int, test_fraction: float) -> Vocabulary:
    streams = [split_stream(words, "train", test_fraction) for _, words in read_documents(data_dir)]
    return Vocabulary.build(streams, min_count=min_count, max_size=max_vocab)


@register("skipgram_text")
def skipgram_from_cfg(cfg: Any, split: str) -> SkipGramSource:
    """SOURCES entry "skipgram_text": config.data.{data_dir, window, min_count, max_vocab,
    test_fraction}."""

    return SkipGramSource(
        config_field(cfg, "data_dir", ""),
        split,
        window=int(config_field(cfg, "window", 5)),
        min_count=int(config_field(cfg, "min_count", 5)),
        max_vocab=int(config_field(cfg, "max_vocab", 0)),
        test_fraction=float(config_field(cfg, "test_fraction", 0.1)),
    )
