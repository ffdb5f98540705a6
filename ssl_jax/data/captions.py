"""Image-text pairs for CLIP: captions made from class names, and captioned tfds datasets by name.

Rows are {"image": uint8 [n, H, W, C], "text": int32 [n, text_len], "label": int32 [n] (when known)}.
A caption's tokens are `bos + tokenizer.encode(caption) + eos`, cut to `text_len` (the eos kept last)
and padded with `pad_id` (0) at the end, so a text tower can read the eos position as the number of
non-pad tokens minus one.

- `CaptionedSource` wraps any labelled image source: example i's caption is its class name put into one
  of several templates ("a photo of a {}.", ...), the template drawn once per example from `seed`, so a
  row is the same whenever it is read (the loader does not tell a source the epoch).
- `TfdsCaptionSource` reads a prepared tfds dataset with an image and caption text feature (COCO
  captions by default: "captions/text", several captions per image, one drawn per example from `seed`).
  `caption_rows` is its record -> row conversion, usable on any sequence of records.

`SOURCES` names: "captioned" (the image source named by `data.image_source`, with `data`'s other fields)
and "tfds_captions" (`data.tfds_name`, `data.image_key`, `data.caption_key`, `data.label_key`).
Tokenizer: `data.tokenizer` "byte" (default) or "bpe" (loaded from `data.tokenizer_path` if that file
exists, else trained on the training captions, to `data.vocab_size`, and saved there).
"""

from __future__ import annotations

import copy
import os
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from ssl_jax.data import tokenizer as tokenizers
from ssl_jax.data.common import check_indices, config_field, stack_images
from ssl_jax.data.registry import Source, get_source, register
from ssl_jax.data.sources import TfdsSource

# Captions for a class name; every one reads naturally for an object, a garment or an animal.
TEMPLATES = (
    "a photo of a {}.",
    "a black and white photo of a {}.",
    "a low resolution photo of a {}.",
    "a cropped photo of the {}.",
    "a centered photo of one {}.",
    "a product picture of a {}.",
    "a small grayscale image of a {}.",
)


def tokenize(texts: Sequence[str], tokenizer: Any, text_len: int) -> np.ndarray:
    """int32 [len(texts), text_len]: bos, the text's tokens, eos, then pad_id; a text too long is cut
    so that its eos is still the last token (the text tower reads its output there)."""
    if text_len < 3:
        raise ValueError(f"text_len must hold bos, one token and eos (>= 3), got {text_len}.")
    out = np.full((len(texts), text_len), tokenizer.pad_id, np.int32)
    for row, text in enumerate(texts):
        body = tokenizer.encode(text)[: text_len - 2]
        ids = [tokenizer.bos_id, *body, tokenizer.eos_id]
        out[row, : len(ids)] = ids
    return out


def class_captions(class_names: Sequence[str], templates: Sequence[str]) -> list[list[str]]:
    """[class][template] caption strings; class names are lower-cased ("T-shirt/top" -> "t-shirt/top")."""
    if not templates or any("{}" not in t for t in templates):
        raise ValueError(
            f"every template needs a '{{}}' for the class name; got {list(templates)}."
        )
    return [[t.format(name.lower()) for t in templates] for name in class_names]


def class_prompt_tokens(
    class_names: Sequence[str], templates: Sequence[str], tokenizer: Any, text_len: int
) -> np.ndarray:
    """int32 [num_classes, num_templates, text_len]: every class in every template (zero-shot's prompts)."""
    captions = class_captions(class_names, templates)
    flat = tokenize([c for row in captions for c in row], tokenizer, text_len)
    return flat.reshape(len(class_names), len(templates), text_len)


def make_tokenizer(data_cfg: Any, texts: Callable[[], Sequence[str]] | None = None) -> Any:
    """The tokenizer `data_cfg` names ("byte" or "bpe"); `texts()` gives BPE's training captions when
    no saved tokenizer is at data_cfg.tokenizer_path."""
    kind = config_field(data_cfg, "tokenizer", "byte")
    path = config_field(data_cfg, "tokenizer_path", "") or None
    if kind == "bpe" and texts is None and not (path and os.path.isfile(path)):
        raise ValueError("data.tokenizer='bpe' needs a saved tokenizer at data.tokenizer_path.")
    return tokenizers.get_tokenizer(
        kind,
        texts=texts() if kind == "bpe" and texts is not None else None,
        vocab_size=int(config_field(data_cfg, "vocab_size", 1024)),
        path=path,
    )


class CaptionedSource:
    """A labelled image source whose rows also carry a caption built from the class name.

    class_names: defaults to `source.class_names`. templates: str.format patterns with one "{}".
    seed: picks each example's template (`np.random.default_rng(seed)` over the source's length).
    """

    def __init__(
        self,
        source: Source,
        *,
        tokenizer: Any,
        text_len: int,
        templates: Sequence[str] = TEMPLATES,
        class_names: Sequence[str] | None = None,
        seed: int = 0,
    ):
        class_names = class_names or getattr(source, "class_names", None)
        if not class_names:
            raise ValueError(
                f"{source.name!r} has no class names to caption; set --config.data.class_names."
            )
        if source.num_classes is not None and len(class_names) != source.num_classes:
            raise ValueError(
                f"{len(class_names)} class names for the {source.num_classes} classes of "
                f"{source.name!r}."
            )
        self.source = source
        self.name = f"captioned_{source.name}"
        self.image_shape = source.image_shape
        self.num_classes = len(class_names)
        self.class_names = tuple(class_names)
        self.templates = tuple(templates)
        self.tokenizer = tokenizer
        self.vocab_size = tokenizer.vocab_size
        self.text_len = int(text_len)
        self.prompt_tokens = class_prompt_tokens(
            self.class_names, self.templates, tokenizer, self.text_len
        )
        rng = np.random.default_rng(seed)
        self.template_of = rng.integers(0, len(self.templates), len(source)).astype(np.int32)

    def __len__(self) -> int:
        return len(self.source)

    def caption(self, index: int, label: int) -> str:
        """The caption of example `index` (whose class is `label`), as text."""
        return self.templates[self.template_of[index]].format(self.class_names[label].lower())

    def get(self, indices: np.ndarray) -> dict[str, np.ndarray]:
        indices = check_indices(indices, len(self))
        rows = self.source.get(indices)
        if "label" not in rows:
            raise ValueError(f"{self.source.name!r} has no labels to caption.")
        rows["text"] = self.prompt_tokens[rows["label"], self.template_of[indices]]
        return rows


def _lookup(record: dict[str, Any], key: str) -> Any:
    """record["a"]["b"] for key "a/b" (how tfds flattens a Sequence of dicts such as COCO's captions)."""
    value = record
    for part in key.split("/"):
        value = value[part]
    return value


def _as_texts(value: Any) -> list[str]:
    """One caption or several (bytes, str, or a sequence / array of them) -> a list of str."""
    if isinstance(value, (bytes, str, np.bytes_, np.str_)):
        value = [value]
    return [v.decode("utf-8") if isinstance(v, bytes) else str(v) for v in list(value)]


def caption_rows(
    records: Sequence[dict[str, Any]],
    indices: np.ndarray,
    *,
    caption_key: str,
    tokenizer: Any,
    text_len: int,
    seed: int = 0,
    label_key: str | None = None,
) -> dict[str, np.ndarray]:
    """The "text" (and "label") of `records`, the rows `indices` of a dataset: one caption per record,
    drawn by `np.random.default_rng([seed, index])` when it has several (the same one on every read)."""
    texts = []
    for record, index in zip(records, np.asarray(indices), strict=True):
        options = _as_texts(_lookup(record, caption_key))
        if not options:
            raise ValueError(f"record {int(index)} has no caption under {caption_key!r}.")
        choice = np.random.default_rng([seed, int(index)]).integers(len(options))
        texts.append(options[int(choice)])
    out = {"text": tokenize(texts, tokenizer, text_len)}
    if label_key:
        out["label"] = np.asarray([_lookup(r, label_key) for r in records], np.int32)
    return out


class TfdsCaptionSource(TfdsSource):
    """A prepared tfds dataset of captioned images (ArrayRecord, read without TensorFlow), e.g.
    "coco_captions" with caption_key "captions/text". label_key: an integer class feature, if any."""

    def __init__(
        self,
        name: str,
        split: str,
        data_dir: str | None = None,
        *,
        caption_key: str = "captions/text",
        image_key: str = "image",
        label_key: str | None = None,
        image_size: int | Sequence[int] | None = None,
        tokenizer: Any = None,
        text_len: int = 77,
        seed: int = 0,
    ):
        super().__init__(name, split, data_dir, image_key, label_key or None, image_size=image_size)
        if tokenizer is None:
            raise ValueError("TfdsCaptionSource needs a tokenizer.")
        self.caption_key = caption_key
        self.tokenizer = tokenizer
        self.vocab_size = tokenizer.vocab_size
        self.text_len = int(text_len)
        self.seed = seed
        _lookup(self._records[0], caption_key)  # fail now, not mid-run, on a wrong key

    def captions(self, limit: int) -> list[str]:
        """Every caption of the first `limit` records (a BPE tokenizer's training text)."""
        n = min(limit, len(self))
        return [t for i in range(n) for t in _as_texts(_lookup(self._records[i], self.caption_key))]

    def get(self, indices: np.ndarray) -> dict[str, np.ndarray]:
        indices = check_indices(indices, len(self))
        getitems = getattr(self._records, "__getitems__", None)
        records = getitems(indices.tolist()) if getitems else [self._records[i] for i in indices]
        out = {"image": self._stack_images(records)}
        out.update(
            caption_rows(
                records,
                indices,
                caption_key=self.caption_key,
                tokenizer=self.tokenizer,
                text_len=self.text_len,
                seed=self.seed,
                label_key=self._label_key,
            )
        )
        return out

    def _stack_images(self, records: Sequence[dict[str, Any]]) -> np.ndarray:
        return stack_images([self._decode(r) for r in records], self.image_shape, self.name)


def _image_source_cfg(cfg: Any) -> Any:
    """`cfg` with name = cfg.image_source: the wrapped source reads the same data fields."""
    inner = config_field(cfg, "image_source")
    if not inner:
        raise ValueError(
            "data.name='captioned' needs --config.data.image_source, a labelled image source "
            "(e.g. fashion_mnist, embedded_fashion_mnist, image_folder, tfds)."
        )
    if inner in ("captioned", "tfds_captions"):
        raise ValueError(f"data.image_source must be an image source, not {inner!r}.")
    fields = copy.deepcopy(cfg.to_dict() if hasattr(cfg, "to_dict") else dict(cfg))
    fields["name"] = inner
    return fields


@register("captioned")
def captioned_from_cfg(cfg: Any, split: str) -> CaptionedSource:
    """SOURCES["captioned"]: data.image_source's split, captioned from data.class_names (default: the
    source's own), data.templates (default TEMPLATES), data.text_len, data.caption_seed."""
    source = get_source(_image_source_cfg(cfg), split)
    class_names = tuple(config_field(cfg, "class_names", ()) or ()) or getattr(
        source, "class_names", None
    )
    templates = tuple(config_field(cfg, "templates", ()) or ()) or TEMPLATES

    def texts():
        return [c for row in class_captions(class_names or (), templates) for c in row]

    return CaptionedSource(
        source,
        tokenizer=make_tokenizer(cfg, texts),
        text_len=int(config_field(cfg, "text_len", 48)),
        templates=templates,
        class_names=class_names,
        seed=int(config_field(cfg, "caption_seed", 0)),
    )


@register("tfds_captions")
def tfds_captions_from_cfg(cfg: Any, split: str) -> TfdsCaptionSource:
    """SOURCES["tfds_captions"]: data.tfds_name (e.g. "coco_captions") with its image, caption and
    optional label keys; data.{split}_split picks the tfds split (e.g. train_split="train+restval")."""
    name = config_field(cfg, "tfds_name")
    if not name:
        raise ValueError(
            "data.name='tfds_captions' needs --config.data.tfds_name, e.g. 'coco_captions'."
        )

    def build(tokenizer, which):
        return TfdsCaptionSource(
            name,
            config_field(cfg, f"{which}_split", which),
            data_dir=config_field(cfg, "data_dir"),
            caption_key=config_field(cfg, "caption_key", "captions/text"),
            image_key=config_field(cfg, "image_key", "image"),
            label_key=config_field(cfg, "label_key", "") or None,
            image_size=config_field(cfg, "image_size"),
            tokenizer=tokenizer,
            text_len=int(config_field(cfg, "text_len", 77)),
            seed=int(config_field(cfg, "caption_seed", 0)),
        )

    texts = None
    if config_field(cfg, "tokenizer", "byte") == "bpe":
        # BPE learns from the training split's captions, whichever split is being opened.
        limit = int(config_field(cfg, "tokenizer_train_examples", 100_000))
        texts = lambda: build(tokenizers.ByteTokenizer(), "train").captions(limit)  # noqa: E731
    return build(make_tokenizer(cfg, texts), split)
