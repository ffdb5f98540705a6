"""What the data sources share: the not-found error and its hints, config field reads, index checks,
image decoding and stacking, and opening a prepared tfds dataset.

Every source module imports from here and from `ssl_jax.data.registry`; nothing here imports a source
module, so the imports of ssl_jax.data run one way (common <- registry <- the sources <- __init__).
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from typing import Any

import numpy as np
from PIL import Image

EMBEDDED_HINT = (
    "--config.data.name=embedded_fashion_mnist trains on the subset shipped with ssl_jax."
)

#: PIL modes read as one-channel images.
GRAYSCALE_MODES = ("1", "L", "LA", "I", "I;16", "F")


class DatasetNotFoundError(FileNotFoundError):
    """The data a source needs is not on disk; the message says how to get it."""


def config_field(cfg: Any, key: str, default: Any = None) -> Any:
    """cfg's field `key` (a ConfigDict, a dict or any object with attributes); `default` when the
    field is missing or None."""
    value = cfg.get(key, default) if hasattr(cfg, "get") else getattr(cfg, key, default)
    return default if value is None else value


def check_indices(indices: np.ndarray, size: int) -> np.ndarray:
    """`indices` as a 1-D integer array, each in [0, size); an IndexError otherwise."""
    indices = np.asarray(indices)
    if indices.ndim != 1 or not np.issubdtype(indices.dtype, np.integer):
        raise IndexError(
            f"indices must be a 1-D integer array; got {indices.dtype} {indices.shape}"
        )
    # Negative indices would silently wrap in numpy; a loader bug should not read the wrong rows.
    if indices.size and (indices.min() < 0 or indices.max() >= size):
        raise IndexError(f"indices must lie in [0, {size}); got [{indices.min()}, {indices.max()}]")
    return indices


def to_hw(image_size: int | Sequence[int] | None) -> tuple[int, int] | None:
    """An image_size setting (a side, (height, width), or None: keep) as (height, width) or None."""
    if image_size is None:
        return None
    if isinstance(image_size, int):
        return (image_size, image_size)
    height, width = image_size
    return (int(height), int(width))


def decode_image(image: Any, mode: str, size: tuple[int, int] | None) -> np.ndarray:
    """A PIL image, encoded bytes or an array -> uint8 [H, W, C] in `mode`, resized to (H, W)."""
    if isinstance(image, bytes):
        image = Image.open(io.BytesIO(image))
    elif isinstance(image, np.ndarray):
        if size is None and image.dtype == np.uint8:
            return image if image.ndim == 3 else image[..., None]
        image = Image.fromarray(
            image.squeeze(-1) if image.ndim == 3 and image.shape[-1] == 1 else image
        )
    image = image.convert(mode)
    if size is not None and image.size != (size[1], size[0]):
        image = image.resize((size[1], size[0]), Image.Resampling.BILINEAR)
    array = np.asarray(image, dtype=np.uint8)
    return array if array.ndim == 3 else array[..., None]


def stack_images(
    images: list[np.ndarray], expected: tuple[int, int, int], where: str
) -> np.ndarray:
    """Decoded images of one shape `expected` as uint8 [n, H, W, C]; `where` names the source in the
    error a differently shaped image raises."""
    if not images:
        return np.zeros((0, *expected), np.uint8)
    for image in images:
        if image.shape != expected:
            raise ValueError(
                f"{where}: an image has shape {image.shape}, expected {expected} (the first image's "
                "shape); pass image_size= (--config.data.image_size) to resize every image"
            )
    return np.stack(images)


def tfds_hint(name: str, data_dir: str | None, problem: str) -> str:
    """How to prepare the tfds dataset `name` in ArrayRecord format, after saying what is wrong."""
    where = data_dir or "~/tensorflow_datasets"
    return (
        f"tfds dataset {name!r} {problem} in {where}. Prepare it in ArrayRecord format once (building "
        f"needs TensorFlow; training does not): pip install 'ssl_jax[tf]' && tfds build {name} "
        f"--data_dir {where} --file_format=array_record; or point --config.data.data_dir at a "
        f"directory that holds it. {EMBEDDED_HINT}"
    )


def open_tfds(name: str, split: str, data_dir: str | None) -> tuple[Any, Any]:
    """(random-access records, features) of `split` of the prepared tfds dataset `name`; TensorFlow
    not needed. This is `tfds.data_source(name, split=split, data_dir=data_dir, download=False)` done
    in its steps, so a dataset that is unknown, not prepared, or prepared as TFRecord (no random
    access) raises a DatasetNotFoundError saying how to prepare it."""
    # Imported here, the one place ssl_jax opens tfds: importing tensorflow_datasets adds ~0.6 s to
    # `import ssl_jax.data` (0.2 s without it), paid otherwise by every run on local or embedded data.
    import tensorflow_datasets as tfds

    try:
        builder = tfds.builder(name, data_dir=data_dir)
    except tfds.core.DatasetNotFoundError as e:
        raise DatasetNotFoundError(tfds_hint(name, data_dir, "is neither known nor found")) from e
    if not builder.is_prepared():
        raise DatasetNotFoundError(tfds_hint(name, data_dir, "is not prepared"))
    try:
        records = builder.as_data_source(split=split)
    except NotImplementedError as e:  # prepared as TFRecord, which has no random access
        raise DatasetNotFoundError(tfds_hint(name, data_dir, "is not in ArrayRecord format")) from e
    return records, builder.info.features


def local_batch_size(batch_size: int, process_index: int, process_count: int) -> int:
    """This process's share of a global batch split evenly over `process_count` processes; an error
    for a batch that does not split or an index out of range."""
    if batch_size <= 0 or process_count <= 0 or batch_size % process_count:
        raise ValueError(
            f"the global batch size ({batch_size}) must be a positive multiple of the process "
            f"count ({process_count})"
        )
    if not 0 <= process_index < process_count:
        raise ValueError(f"process_index must lie in [0, {process_count}); got {process_index}")
    return batch_size // process_count


class RowsSource:
    """The given rows of `source`, in order, as a source of its own (a label subset to fine-tune on,
    a random subset to fit a probe on). Reads `get` and, for photographs, `example` through to
    `source`; every other attribute (num_classes, image_shape, image_size, mode, ...) is the
    source's. `base` is the source it reads."""

    def __init__(self, source: Any, rows: np.ndarray, name: str | None = None):
        self.base = source
        self._rows = np.asarray(rows, np.int64)
        self.name = name or f"{source.name}[{len(self._rows)} of {len(source)}]"
        labels = getattr(source, "labels", None)
        self.labels = None if labels is None else np.asarray(labels)[self._rows]

    @classmethod
    def random(cls, source: Any, n: int, *, seed: int) -> RowsSource:
        """A fixed random n of the rows, in source order (not the first n: some sources are
        sorted by class)."""
        rows = np.sort(np.random.default_rng(seed).choice(len(source), n, replace=False))
        return cls(source, rows)

    def __len__(self) -> int:
        return len(self._rows)

    def get(self, indices: np.ndarray) -> dict[str, np.ndarray]:
        return self.base.get(self._rows[np.asarray(indices)])

    def example(self, index: int) -> Any:
        """Row `index` of a photo source, still encoded (for the photo pipelines)."""
        return self.base.example(int(self._rows[index]))

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_") or name == "base":  # unpickling: nothing set yet
            raise AttributeError(name)
        return getattr(self.base, name)
