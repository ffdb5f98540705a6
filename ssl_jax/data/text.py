"""Text sources: documents tokenized and packed into fixed-length rows of token ids, with a label.

`TextSource` has the interface of the image sources (`len`, `get(indices)`, `name`, `num_classes`) and
returns {"tokens": int32 [n, seq_len], "label": int32 [n]}. Each document is tokenized whole and cut into
consecutive rows of `seq_len` tokens; only its last row is padded (with `pad_id`, at the end), so a row
never mixes two documents and padding is always trailing.

Two ways in, chosen by `config.data.name`:

- "text_files": a directory of UTF-8 `.txt` files, one class per file, named by the file (for
  ../shared/data/austen: the novel is the label). The splits are held out by contiguous blocks: each file
  is cut at paragraph breaks into `num_blocks` (20) blocks of about equal length, and within every run of
  ten blocks the ninth is validation and the tenth test (10% each, from two places in each book). A
  passage therefore never straddles two splits, and neighbouring rows never leak across them.
- "tfds_text": a tfds text dataset by name (`data.tfds_name`), one document per record, its text under
  `data.text_key` and its label under `data.label_key`; splits by `data.{train,validation,test}_split`.
  The whole split is read into memory and tokenized once per process: sized for classification and
  small LM datasets, not for web-scale corpora.

Tokenizer (`data.tokenizer`): "byte", or "bpe" trained on the train split only, to `data.vocab_size`.
The trained BPE is cached as JSON at `data.tokenizer_path` if set, else at
`$SSL_JAX_CACHE_DIR/tokenizers/` (default `~/.cache/ssl_jax/tokenizers/`) under a name that hashes the
training text and the vocabulary size, so pre-training and a later `ssl-jax evaluate` share one
tokenizer and a changed corpus never reuses a stale one.
"""

from __future__ import annotations

import functools
import hashlib
import os
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from ssl_jax.data import tokenizer as tokenizers
from ssl_jax.data.common import DatasetNotFoundError, check_indices, config_field, open_tfds
from ssl_jax.data.registry import register

SPLITS = ("train", "validation", "test")
# Within every run of ten blocks of a file: block 8 is validation, block 9 test, the rest train.
_BLOCK_SPLIT = {8: "validation", 9: "test"}


def pack(
    token_lists: Sequence[Sequence[int]], seq_len: int, pad_id: int
) -> tuple[np.ndarray, np.ndarray]:
    """Cuts each document's tokens into rows of `seq_len`, padding only each document's last row.

    Returns (rows int32 [n, seq_len], document index int32 [n]). Empty documents give no rows.
    """
    if seq_len <= 0:
        raise ValueError(f"seq_len must be positive, got {seq_len}.")
    rows, owners = [], []
    for d, ids in enumerate(token_lists):
        ids = np.asarray(ids, np.int32)
        n = -(-len(ids) // seq_len)
        if n == 0:
            continue
        padded = np.full(n * seq_len, pad_id, np.int32)
        padded[: len(ids)] = ids
        rows.append(padded.reshape(n, seq_len))
        owners.append(np.full(n, d, np.int32))
    if not rows:
        return np.zeros((0, seq_len), np.int32), np.zeros((0,), np.int32)
    return np.concatenate(rows), np.concatenate(owners)


def split_blocks(text: str, num_blocks: int) -> list[str]:
    """`text` cut into `num_blocks` contiguous blocks of about equal length, each cut moved to the
    nearest paragraph break (a blank line) so a block starts at a paragraph. Concatenated they give
    `text` back exactly."""
    cuts = [0]
    for k in range(1, num_blocks):
        target = k * len(text) // num_blocks
        before, after = text.rfind("\n\n", cuts[-1], target), text.find("\n\n", target)
        options = [p + 2 for p in (before, after) if p >= 0 and p + 2 > cuts[-1]]
        cut = min(options, key=lambda p: abs(p - target)) if options else max(target, cuts[-1])
        cuts.append(min(cut, len(text)))
    cuts.append(len(text))
    return [text[a:b] for a, b in zip(cuts, cuts[1:], strict=False)]


def file_split_documents(text: str, num_blocks: int = 20) -> dict[str, list[str]]:
    """One file's documents per split: runs of consecutive blocks of the same split, joined."""
    out: dict[str, list[str]] = {s: [] for s in SPLITS}
    previous = None
    for j, block in enumerate(split_blocks(text, num_blocks)):
        split = _BLOCK_SPLIT.get(j % 10, "train")
        if split == previous:
            out[split][-1] += block
        else:
            out[split].append(block)
        previous = split
    return out


class TextSource:
    """Packed token rows of labelled documents: get(indices) -> {"tokens" int32 [n, seq_len],
    "label" int32 [n]} (no "label" when the documents have none).

    Attributes: name, seq_len, tokenizer, vocab_size, num_classes, class_names, and
    `document_index` (int32 [len]: which document each row came from).
    """

    def __init__(
        self,
        documents: Sequence[str],
        labels: Sequence[int] | None,
        *,
        seq_len: int,
        tokenizer: Any,
        class_names: Sequence[str] | None = None,
        num_classes: int | None = None,
        name: str = "text",
    ):
        if labels is not None and len(labels) != len(documents):
            raise ValueError(f"{name}: {len(documents)} documents but {len(labels)} labels.")
        self.name = name
        self.seq_len = int(seq_len)
        self.tokenizer = tokenizer
        self.vocab_size = int(tokenizer.vocab_size)
        self.class_names = tuple(class_names) if class_names is not None else None
        if num_classes is None and self.class_names is not None:
            num_classes = len(self.class_names)
        if labels is not None and num_classes is None:
            num_classes = int(max(labels, default=-1)) + 1
        self.num_classes = num_classes if labels is not None else None
        self.tokens, self.document_index = pack(
            [tokenizer.encode(d) for d in documents], self.seq_len, tokenizer.pad_id
        )
        self.labels = None
        if labels is not None:
            doc_labels = np.asarray(labels, np.int32)
            if doc_labels.size and (doc_labels.min() < 0 or doc_labels.max() >= self.num_classes):
                raise ValueError(f"{name}: labels must lie in [0, {self.num_classes}).")
            self.labels = doc_labels[self.document_index]
        self.image_shape = None  # not an image source

    def __len__(self) -> int:
        return len(self.tokens)

    def get(self, indices: np.ndarray) -> dict[str, np.ndarray]:
        indices = check_indices(indices, len(self))
        out = {"tokens": self.tokens[indices]}
        if self.labels is not None:
            out["label"] = self.labels[indices]
        return out

    @classmethod
    def from_directory(
        cls,
        data_dir: str,
        split: str,
        *,
        seq_len: int,
        tokenizer: str = "bpe",
        vocab_size: int = 8192,
        tokenizer_path: str | None = None,
        num_blocks: int = 20,
    ) -> TextSource:
        """`split` of the .txt files in `data_dir` (one class per file); see the module docstring."""
        check_split(split)
        files = _text_files(data_dir)
        per_file = [file_split_documents(_read(p), num_blocks) for p in files]
        train_texts = [d for docs in per_file for d in docs["train"]]
        tok = build_tokenizer(tokenizer, train_texts, vocab_size, tokenizer_path)
        documents, labels = [], []
        for label, docs in enumerate(per_file):
            documents += docs[split]
            labels += [label] * len(docs[split])
        names = [os.path.splitext(os.path.basename(p))[0] for p in files]
        return cls(
            documents,
            labels,
            seq_len=seq_len,
            tokenizer=tok,
            class_names=names,
            name=os.path.basename(os.path.normpath(data_dir)),
        )

    @classmethod
    def from_records(
        cls,
        records: Sequence[Mapping[str, Any]],
        *,
        text_key: str,
        label_key: str | None,
        seq_len: int,
        tokenizer: Any,
        class_names: Sequence[str] | None = None,
        num_classes: int | None = None,
        name: str = "records",
    ) -> TextSource:
        """One document per record (e.g. a tfds example): text under `text_key` (str or UTF-8
        bytes), an integer label under `label_key` (None: unlabelled)."""
        documents = record_texts(records, text_key)
        labels = None if label_key is None else [int(r[label_key]) for r in records]
        return cls(
            documents,
            labels,
            seq_len=seq_len,
            tokenizer=tokenizer,
            class_names=class_names,
            num_classes=num_classes,
            name=name,
        )


def check_split(split: str) -> None:
    if split not in SPLITS:
        raise ValueError(f"text split must be one of {SPLITS}; got {split!r}.")


def record_texts(records: Sequence[Mapping[str, Any]], text_key: str) -> list[str]:
    texts = []
    for r in records:
        if text_key not in r:
            raise ValueError(
                f"a record has no {text_key!r} (it has {sorted(r)}); set data.text_key."
            )
        value = r[text_key]
        if isinstance(value, np.ndarray):
            value = value.item()
        texts.append(value.decode("utf-8") if isinstance(value, bytes) else str(value))
    return texts


def _text_files(data_dir: str) -> list[str]:
    if not data_dir or not os.path.isdir(data_dir):
        raise DatasetNotFoundError(
            f"text directory {data_dir!r} does not exist. Point --config.data.data_dir at a directory "
            "of UTF-8 .txt files, one per class (e.g. the six Austen novels in ../shared/data/austen)."
        )
    files = sorted(
        os.path.join(data_dir, f) for f in os.listdir(data_dir) if f.lower().endswith(".txt")
    )
    if not files:
        raise DatasetNotFoundError(f"no .txt files in {data_dir!r}.")
    return files


def _read(path: str) -> str:
    with open(path, encoding="utf-8") as f:
        return f.read()


def cache_dir() -> str:
    """Where trained tokenizers are cached: $SSL_JAX_CACHE_DIR, else ~/.cache/ssl_jax."""
    return os.environ.get("SSL_JAX_CACHE_DIR") or os.path.join(
        os.path.expanduser("~"), ".cache", "ssl_jax"
    )


def build_tokenizer(
    kind: str, train_texts: Sequence[str], vocab_size: int, path: str | None = None
) -> Any:
    """The tokenizer of `kind`; a BPE is trained on `train_texts` once and cached (module docstring)."""
    if kind == "bpe" and not path:
        digest = hashlib.sha256()
        for text in train_texts:
            digest.update(hashlib.sha256(text.encode("utf-8")).digest())
        path = os.path.join(
            cache_dir(), "tokenizers", f"bpe{vocab_size}-{digest.hexdigest()[:16]}.json"
        )
    return tokenizers.get_tokenizer(kind, texts=train_texts, vocab_size=vocab_size, path=path)


# ------------------------------------------------------------------------------------------ tfds


def text_source_from_tfds(
    records_by_split: Mapping[str, Sequence[Mapping[str, Any]]],
    split: str,
    *,
    text_key: str,
    label_key: str | None,
    seq_len: int,
    tokenizer: str,
    vocab_size: int,
    tokenizer_path: str | None,
    label_feature: Any = None,
    name: str,
) -> TextSource:
    """`split` of a tfds text dataset given its records ("train" and `split`): the tokenizer is
    trained on the train records' texts. Separate from the tfds reading so it is testable offline."""
    tok = build_tokenizer(
        tokenizer, record_texts(records_by_split["train"], text_key), vocab_size, tokenizer_path
    )
    names = getattr(label_feature, "names", None)
    return TextSource.from_records(
        records_by_split[split],
        text_key=text_key,
        label_key=label_key,
        seq_len=seq_len,
        tokenizer=tok,
        class_names=tuple(names) if names else None,
        num_classes=getattr(label_feature, "num_classes", None),
        name=name,
    )


# --------------------------------------------------------------------------- config -> sources


@functools.lru_cache(maxsize=8)
def _cached_text_files(data_dir, split, seq_len, tokenizer, vocab_size, tokenizer_path, num_blocks):
    return TextSource.from_directory(
        data_dir,
        split,
        seq_len=seq_len,
        tokenizer=tokenizer,
        vocab_size=vocab_size,
        tokenizer_path=tokenizer_path,
        num_blocks=num_blocks,
    )


@register("text_files")
def text_files_from_cfg(cfg: Any, split: str) -> TextSource:
    """data.name = "text_files": data_dir, seq_len, tokenizer, vocab_size, tokenizer_path."""
    check_split(split)
    return _cached_text_files(
        os.path.abspath(config_field(cfg, "data_dir", "")),
        split,
        int(config_field(cfg, "seq_len", 128)),
        config_field(cfg, "tokenizer", "bpe"),
        int(config_field(cfg, "vocab_size", 8192)),
        config_field(cfg, "tokenizer_path", "") or None,
        int(config_field(cfg, "num_blocks", 20)),
    )


@functools.lru_cache(maxsize=4)
def _cached_tfds_text(
    name, split, data_dir, splits, text_key, label_key, seq_len, tok, vocab, path
):
    split_names = dict(splits)
    train_records, features = open_tfds(name, split_names["train"], data_dir)
    records = {"train": train_records}
    if split != "train":
        records[split], _ = open_tfds(name, split_names[split], data_dir)
    if text_key not in features:
        raise ValueError(f"tfds {name!r} has no feature {text_key!r}; it has {list(features)}.")
    label_key = label_key if label_key and label_key in features else None
    return text_source_from_tfds(
        records,
        split,
        text_key=text_key,
        label_key=label_key,
        seq_len=seq_len,
        tokenizer=tok,
        vocab_size=vocab,
        tokenizer_path=path,
        label_feature=features[label_key] if label_key else None,
        name=name,
    )


@register("tfds_text")
def tfds_text_from_cfg(cfg: Any, split: str) -> TextSource:
    """data.name = "tfds_text": tfds_name, data_dir, text_key ("text"), label_key ("label"),
    {train,validation,test}_split (tfds split strings, e.g. validation_split="train[90%:]")."""
    check_split(split)
    name = config_field(cfg, "tfds_name")
    if not name:
        raise ValueError(
            "data.name='tfds_text' needs --config.data.tfds_name, e.g. 'imdb_reviews'."
        )
    splits = tuple((s, config_field(cfg, f"{s}_split", s)) for s in SPLITS)
    return _cached_tfds_text(
        name,
        split,
        config_field(cfg, "data_dir", "") or None,
        splits,
        config_field(cfg, "text_key", "text"),
        config_field(cfg, "label_key", "label"),
        int(config_field(cfg, "seq_len", 128)),
        config_field(cfg, "tokenizer", "bpe"),
        int(config_field(cfg, "vocab_size", 8192)),
        config_field(cfg, "tokenizer_path", "") or None,
    )
