"""Class subsets of a labelled source, relabelled 0..k-1: one labelled task carved out of another.

The R-CNN recipe (Girshick et al. 2014) pre-trains a classifier on one labelled task and fine-tunes it
on another. With one dataset the two tasks are disjoint class subsets, e.g. Fashion-MNIST classes 0-4
(T-shirt .. Coat) upstream and 5-9 (Sandal .. Ankle boot) downstream:

  --config.data.name=class_subset --config.data.base=fashion_mnist --config.data.classes='(5,6,7,8,9)'
  --config.data.num_classes=5
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from ssl_jax.data.common import check_indices, config_field
from ssl_jax.data.registry import Source, get_source, register

_LABEL_CHUNK = 4096  # rows per read when a source keeps no label array


def _all_labels(source: Source) -> np.ndarray:
    labels = getattr(source, "labels", None)  # ArraySource, ImageFolderSource: no image decoding
    if labels is not None:
        return np.asarray(labels)
    n = len(source)
    chunks = [
        source.get(np.arange(i, min(i + _LABEL_CHUNK, n)))["label"]
        for i in range(0, n, _LABEL_CHUNK)
    ]
    return np.concatenate(chunks) if chunks else np.zeros(0, np.int32)


class ClassSubsetSource:
    """The rows of `source` whose label is in `classes`, with label classes[j] renamed j."""

    def __init__(self, source: Source, classes: Sequence[int]):
        classes = tuple(int(c) for c in classes)
        if not classes or len(set(classes)) != len(classes):
            raise ValueError(f"classes must be distinct class ids; got {classes}")
        if source.num_classes is None:
            raise ValueError(f"{source.name!r} has no labels to select classes from")
        bad = [c for c in classes if not 0 <= c < source.num_classes]
        if bad:
            raise ValueError(
                f"classes {bad} are not in [0, {source.num_classes}) of {source.name!r}"
            )
        labels = _all_labels(source)
        self._source = source
        self._rows = np.flatnonzero(np.isin(labels, classes))
        self._relabel = np.full(source.num_classes, -1, np.int32)
        self._relabel[list(classes)] = np.arange(len(classes), dtype=np.int32)
        self.classes = classes
        self.labels = self._relabel[labels[self._rows]]
        self.name = f"{source.name}[classes {','.join(map(str, classes))}]"
        self.image_shape = source.image_shape
        self.num_classes = len(classes)
        names = getattr(source, "class_names", None)
        self.class_names = tuple(names[c] for c in classes) if names else None

    def __len__(self) -> int:
        return len(self._rows)

    def get(self, indices: np.ndarray) -> dict[str, np.ndarray]:
        indices = check_indices(indices, len(self))
        out = self._source.get(self._rows[indices])
        out["label"] = self._relabel[out["label"]]
        return out


@register("class_subset")
def class_subset_from_cfg(cfg: Any, split: str) -> ClassSubsetSource:
    """data.name="class_subset": the classes data.classes of the source named data.base."""
    base_name = config_field(cfg, "base")
    classes = config_field(cfg, "classes")
    if not base_name or not classes:
        raise ValueError(
            "data.name='class_subset' needs --config.data.base (e.g. fashion_mnist) and "
            "--config.data.classes (e.g. '(5,6,7,8,9)')"
        )
    fields = cfg.to_dict() if hasattr(cfg, "to_dict") else dict(cfg)
    source = ClassSubsetSource(get_source({**fields, "name": base_name}, split), classes)
    declared = config_field(cfg, "num_classes")
    if declared is not None and int(declared) != source.num_classes:
        raise ValueError(
            f"data.num_classes is {declared} but data.classes selects {source.num_classes}; set "
            f"--config.data.num_classes={source.num_classes}"
        )
    return source
