"""Random-access image sources that return numpy: arrays, IDX files, image folders, .npz, tfds.

Every source has `len(source)`, `source.get(indices)` -> {"image": uint8 [n, H, W, C], "label": int32 [n]}
("label" only when the data has labels), and the attributes `name`, `image_shape` (H, W, C) and
`num_classes` (None without labels). `get_source(data_cfg, split)` picks one by `data_cfg.name`.
"""

from __future__ import annotations

import functools
import gzip
import io
import math
import os
import struct
from collections.abc import Callable, Sequence
from typing import Any, Protocol, runtime_checkable

import numpy as np
from PIL import Image

FASHION_MNIST_CLASSES = (
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
)
EMBEDDED_PATH = os.path.join(os.path.dirname(__file__), "embedded", "fashion_mnist_subset.npz")
_EMBEDDED_HINT = (
    "--config.data.name=embedded_fashion_mnist trains on the subset shipped with ssl_jax."
)


class DatasetNotFoundError(FileNotFoundError):
    """The data a source needs is not on disk; the message says how to get it."""


@runtime_checkable
class Source(Protocol):
    """What the loaders need from a dataset."""

    name: str
    image_shape: tuple[int, int, int]
    num_classes: int | None

    def __len__(self) -> int: ...

    def get(self, indices: np.ndarray) -> dict[str, np.ndarray]: ...


def _check_indices(indices: np.ndarray, size: int) -> np.ndarray:
    indices = np.asarray(indices)
    if indices.ndim != 1 or not np.issubdtype(indices.dtype, np.integer):
        raise IndexError(
            f"indices must be a 1-D integer array; got {indices.dtype} {indices.shape}"
        )
    # Negative indices would silently wrap in numpy; a loader bug should not read the wrong rows.
    if indices.size and (indices.min() < 0 or indices.max() >= size):
        raise IndexError(f"indices must lie in [0, {size}); got [{indices.min()}, {indices.max()}]")
    return indices


class ArraySource:
    """In-memory images (uint8 [n, H, W] or [n, H, W, C], C in {1, 3}) and optional integer labels."""

    def __init__(
        self,
        images: np.ndarray,
        labels: np.ndarray | None = None,
        num_classes: int | None = None,
        name: str = "array",
        class_names: Sequence[str] | None = None,
    ):
        images = np.asarray(images)
        expected = "uint8 images of shape [n, H, W] or [n, H, W, C] with C in (1, 3)"
        if images.dtype != np.uint8:
            raise ValueError(
                f"{name}: expected {expected}; got dtype {images.dtype}. "
                "Scale floats in [0, 1] by 255, then np.clip(x, 0, 255).astype(np.uint8)."
            )
        if images.ndim == 3:
            images = images[..., None]
        if images.ndim != 4 or images.shape[-1] not in (1, 3):
            raise ValueError(f"{name}: expected {expected}; got shape {images.shape}")
        self.images = images
        self.name = name
        self.image_shape = tuple(int(d) for d in images.shape[1:])
        self.class_names = tuple(class_names) if class_names is not None else None
        if num_classes is None and self.class_names is not None:
            num_classes = len(self.class_names)
        self.labels = None if labels is None else self._check_labels(labels, num_classes)
        if self.labels is not None and num_classes is None:
            # Inferred from the data: a subset missing the top class would undercount.
            num_classes = int(self.labels.max()) + 1 if len(self.labels) else 0
        self.num_classes = num_classes if self.labels is not None else None

    def _check_labels(self, labels: np.ndarray, num_classes: int | None) -> np.ndarray:
        labels = np.asarray(labels)
        n = len(self.images)
        if labels.shape != (n,) or not np.issubdtype(labels.dtype, np.integer):
            raise ValueError(
                f"{self.name}: expected integer labels of shape ({n},); "
                f"got {labels.dtype} {labels.shape}"
            )
        if n and (labels.min() < 0 or (num_classes is not None and labels.max() >= num_classes)):
            raise ValueError(
                f"{self.name}: labels must lie in [0, {num_classes}); "
                f"got [{labels.min()}, {labels.max()}]"
            )
        return labels.astype(np.int32)

    def __len__(self) -> int:
        return len(self.images)

    def get(self, indices: np.ndarray) -> dict[str, np.ndarray]:
        indices = _check_indices(indices, len(self))
        out = {"image": self.images[indices]}
        if self.labels is not None:
            out["label"] = self.labels[indices]
        return out


class NpzSource(ArraySource):
    """A .npz with `images` (+ optional `labels`), or `{split}_images` / `{split}_labels` if split."""

    def __init__(
        self,
        path: str,
        split: str | None = None,
        *,
        name: str | None = None,
        class_names: Sequence[str] | None = None,
    ):
        if not os.path.isfile(path):
            raise DatasetNotFoundError(
                f"npz file {path!r} does not exist. Write one with "
                "np.savez(path, images=uint8 [n, H, W(, C)], labels=int [n]) and set "
                f"--config.data.path. {_EMBEDDED_HINT}"
            )
        prefix = f"{split}_" if split else ""
        with np.load(path) as data:
            if prefix + "images" not in data:
                raise ValueError(f"{path}: no array {prefix}images; it holds {sorted(data.files)}")
            images = data[prefix + "images"]
            labels = data[prefix + "labels"] if prefix + "labels" in data else None
        name = name or os.path.splitext(os.path.basename(path))[0]
        super().__init__(images, labels, name=name, class_names=class_names)


def load_idx(path: str) -> np.ndarray:
    """Reads an IDX file (gzipped or raw), the format of MNIST and Fashion-MNIST, into native numpy."""
    with open(path, "rb") as f:
        gzipped = f.read(2) == b"\x1f\x8b"  # the gzip magic, so a renamed file still reads
    with (gzip.open if gzipped else open)(path, "rb") as f:
        data = f.read()
    # Header: two zero bytes, a dtype code, the number of dims, then each dim as big-endian uint32.
    dtypes = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}
    if len(data) < 4 or data[:2] != b"\0\0" or data[2] not in dtypes:
        raise ValueError(f"{path}: not an IDX file (magic bytes {data[:4].hex()})")
    ndim = data[3]
    offset = 4 + 4 * ndim
    dims = struct.unpack(f">{ndim}I", data[4:offset])
    dtype = np.dtype(dtypes[data[2]])
    if len(data) - offset != math.prod(dims) * dtype.itemsize:
        raise ValueError(
            f"{path}: header says {dims} x {dtype.itemsize} bytes, "
            f"the file holds {len(data) - offset} bytes after the header"
        )
    return np.frombuffer(data, dtype, offset=offset).reshape(dims).astype(dtype.newbyteorder("="))


_FASHION_FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}


def _fashion_mnist_hint(directory: str | None, missing: str = "IDX files") -> str:
    names = ", ".join(f"{stem}.gz" for pair in _FASHION_FILES.values() for stem in pair)
    return (
        f"Fashion-MNIST {missing} not found in {directory!r}. Install the four files with "
        "`apt-get install dataset-fashion-mnist` (they land in /usr/share/datasets/fashion-mnist) "
        f"or download {names} from https://github.com/zalandoresearch/fashion-mnist (data/fashion), "
        f"then set --config.data.data_dir=DIR. {_EMBEDDED_HINT}"
    )


def _find_idx(directory: str, stem: str) -> str:
    for suffix in (".gz", ""):
        path = os.path.join(directory, stem + suffix)
        if os.path.exists(path):
            return path
    raise DatasetNotFoundError(_fashion_mnist_hint(directory, f"file {stem}(.gz)"))


def fashion_mnist(directory: str, split: str) -> ArraySource:
    """The full Fashion-MNIST split ("train": 60,000, "test": 10,000) from its four IDX files."""
    if split not in _FASHION_FILES:
        raise ValueError(
            f"fashion_mnist split must be one of {sorted(_FASHION_FILES)}; got {split!r}"
        )
    if not directory or not os.path.isdir(directory):
        raise DatasetNotFoundError(_fashion_mnist_hint(directory))
    paths = [_find_idx(directory, stem) for stem in _FASHION_FILES[split]]
    images, labels = (load_idx(p) for p in paths)
    return ArraySource(images, labels, name="fashion_mnist", class_names=FASHION_MNIST_CLASSES)


@functools.lru_cache(maxsize=2)
def embedded_fashion_mnist(split: str) -> NpzSource:
    """The balanced Fashion-MNIST subset shipped in the package (see data/embedded/README.md)."""
    if split not in ("train", "test"):
        raise ValueError(f"embedded_fashion_mnist split must be 'train' or 'test'; got {split!r}")
    return NpzSource(
        EMBEDDED_PATH, split, name="embedded_fashion_mnist", class_names=FASHION_MNIST_CLASSES
    )


_IMAGE_EXTENSIONS = tuple(".png .jpg .jpeg .bmp .gif .webp .ppm .pgm .tif .tiff".split())
_GRAYSCALE_MODES = ("1", "L", "LA", "I", "I;16", "F")


def _to_hw(image_size: int | Sequence[int] | None) -> tuple[int, int] | None:
    if image_size is None:
        return None
    if isinstance(image_size, int):
        return (image_size, image_size)
    height, width = image_size
    return (int(height), int(width))


def _decode(image: Any, mode: str, size: tuple[int, int] | None) -> np.ndarray:
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


def _stack(images: list[np.ndarray], expected: tuple[int, int, int], where: str) -> np.ndarray:
    if not images:
        return np.zeros((0, *expected), np.uint8)
    for image in images:
        if image.shape != expected:
            raise ValueError(
                f"{where}: an image has shape {image.shape}, expected {expected} (the first image's "
                "shape); pass image_size= (--config.data.image_size) to resize every image"
            )
    return np.stack(images)


class ImageFolderSource:
    """`root/<class_name>/**/<image>`: classes are the sorted subfolder names, decoded with PIL on get."""

    def __init__(
        self,
        root: str,
        image_size: int | Sequence[int] | None = None,
        *,
        grayscale: bool | None = None,
        name: str | None = None,
    ):
        if not os.path.isdir(root):
            raise DatasetNotFoundError(
                f"image folder {root!r} does not exist; expected {root}/<class_name>/<image files>. "
                f"Set --config.data.data_dir. {_EMBEDDED_HINT}"
            )
        self.name = name or os.path.basename(os.path.normpath(root))
        self.class_names = tuple(sorted(e.name for e in os.scandir(root) if e.is_dir()))
        self.num_classes = len(self.class_names)
        self.paths: list[str] = []
        labels = []
        for label, class_name in enumerate(self.class_names):
            found = sorted(
                os.path.join(dirpath, f)
                for dirpath, _, files in os.walk(os.path.join(root, class_name), followlinks=True)
                for f in files
                if f.lower().endswith(_IMAGE_EXTENSIONS)
            )
            self.paths += found
            labels += [label] * len(found)
        if not self.paths:
            raise DatasetNotFoundError(
                f"no images ({', '.join(_IMAGE_EXTENSIONS)}) in class subfolders of {root!r}; "
                f"expected {root}/<class_name>/<image files>"
            )
        self.labels = np.asarray(labels, np.int32)
        with Image.open(self.paths[0]) as first:
            if grayscale is None:
                grayscale = first.mode in _GRAYSCALE_MODES
            width, height = first.size
        self._mode = "L" if grayscale else "RGB"
        self._size = _to_hw(image_size)
        self.image_shape = (*(self._size or (height, width)), 1 if grayscale else 3)

    def __len__(self) -> int:
        return len(self.paths)

    def _load(self, path: str) -> np.ndarray:
        try:
            with Image.open(path) as image:
                array = _decode(image, self._mode, self._size)
        except (OSError, ValueError, SyntaxError) as e:  # PIL's errors for truncated/unknown data
            if isinstance(e, OSError) and e.errno is not None:
                raise  # the file system's error (missing, unreadable), not the file's content
            raise ValueError(
                f"{self.name}: cannot decode the image {path} ({type(e).__name__}: {e}); "
                "replace or remove that file"
            ) from e
        if array.shape != self.image_shape:
            raise ValueError(
                f"{self.name}: the image {path} has shape {array.shape}, expected "
                f"{self.image_shape} (the first image's shape); pass image_size= "
                "(--config.data.image_size) to resize every image"
            )
        return array

    def get(self, indices: np.ndarray) -> dict[str, np.ndarray]:
        indices = _check_indices(indices, len(self))
        images = [self._load(self.paths[i]) for i in indices]
        return {
            "image": _stack(images, self.image_shape, self.name),
            "label": self.labels[indices],
        }


def _tfds_hint(name: str, data_dir: str | None, problem: str) -> str:
    where = data_dir or "~/tensorflow_datasets"
    return (
        f"tfds dataset {name!r} {problem} in {where}. Prepare it in ArrayRecord format once (building "
        f"needs TensorFlow; training does not): pip install 'ssl_jax[tf]' && tfds build {name} "
        f"--data_dir {where} --file_format=array_record; or point --config.data.data_dir at a "
        f"directory that holds it. {_EMBEDDED_HINT}"
    )


class TfdsSource:
    """A prepared tfds dataset read by random access from ArrayRecord files; TensorFlow not needed.

    This is `tfds.data_source(name, split=split, data_dir=data_dir, download=False)`, done in its two
    steps so that a dataset that is not prepared gives a message saying how to prepare it.
    """

    def __init__(
        self,
        name: str,
        split: str,
        data_dir: str | None = None,
        image_key: str = "image",
        label_key: str | None = "label",
        *,
        image_size: int | Sequence[int] | None = None,
    ):
        import tensorflow_datasets as tfds  # deferred: importing tfds costs ~0.5 s

        try:
            builder = tfds.builder(name, data_dir=data_dir)
        except tfds.core.DatasetNotFoundError as e:
            raise DatasetNotFoundError(
                _tfds_hint(name, data_dir, "is neither known nor found")
            ) from e
        if not builder.is_prepared():
            raise DatasetNotFoundError(_tfds_hint(name, data_dir, "is not prepared"))
        try:
            self._records = builder.as_data_source(split=split)
        except NotImplementedError as e:  # prepared as TFRecord, which has no random access
            raise DatasetNotFoundError(
                _tfds_hint(name, data_dir, "is not in ArrayRecord format")
            ) from e
        features = builder.info.features
        if image_key not in features:
            raise ValueError(f"tfds {name!r} has no feature {image_key!r}; it has {list(features)}")
        self.name = name
        self._image_key = image_key
        self._label_key = label_key if label_key and label_key in features else None
        label_feature = features[self._label_key] if self._label_key else None
        self.num_classes = getattr(label_feature, "num_classes", None)
        names = getattr(label_feature, "names", None)
        self.class_names = tuple(names) if names else None
        shape = tuple(features[image_key].shape)
        self._mode = "L" if shape[-1] == 1 else "RGB"
        self._size = _to_hw(image_size)
        if self._size is None and None in shape[:2]:  # variable-sized images: take the first one's
            shape = self._decode(self._records[0]).shape
        self.image_shape = (*(self._size or shape[:2]), shape[-1])

    def __len__(self) -> int:
        return len(self._records)

    def _decode(self, record: dict[str, Any]) -> np.ndarray:
        return _decode(record[self._image_key], self._mode, self._size)

    def get(self, indices: np.ndarray) -> dict[str, np.ndarray]:
        indices = _check_indices(indices, len(self))
        getitems = getattr(self._records, "__getitems__", None)  # one batched ArrayRecord read
        records = getitems(indices.tolist()) if getitems else [self._records[i] for i in indices]
        images = [self._decode(r) for r in records]
        out = {"image": _stack(images, self.image_shape, self.name)}
        if self._label_key:
            out["label"] = np.asarray([r[self._label_key] for r in records], np.int32)
        return out


def _cfg(cfg: Any, key: str, default: Any = None) -> Any:
    """Reads a field from a ConfigDict, a dict or any object with attributes."""
    value = cfg.get(key, default) if hasattr(cfg, "get") else getattr(cfg, key, default)
    return default if value is None else value


def _npz_from_cfg(cfg: Any, split: str) -> Source:
    path = _cfg(cfg, "path")
    if not path:
        raise DatasetNotFoundError(f"data.name='npz' needs --config.data.path. {_EMBEDDED_HINT}")
    # "{split}" in the path means one file per split with plain keys; otherwise keys are per split.
    if "{split}" in path:
        return NpzSource(path.format(split=split))
    return NpzSource(path, split)


def _image_folder_from_cfg(cfg: Any, split: str) -> Source:
    data_dir = _cfg(cfg, "data_dir")
    if not data_dir:
        raise DatasetNotFoundError(
            "data.name='image_folder' needs --config.data.data_dir=DIR holding "
            f"DIR/{split}/<class_name>/<image files>. {_EMBEDDED_HINT}"
        )
    return ImageFolderSource(os.path.join(data_dir, split), image_size=_cfg(cfg, "image_size"))


def _tfds_from_cfg(cfg: Any, split: str) -> Source:
    name = _cfg(cfg, "tfds_name")
    if not name:
        raise ValueError("data.name='tfds' needs --config.data.tfds_name, e.g. 'cifar10'")
    return TfdsSource(
        name,
        _cfg(cfg, f"{split}_split", split),  # e.g. train_split="train[:90%]"
        data_dir=_cfg(cfg, "data_dir"),
        image_key=_cfg(cfg, "image_key", "image"),
        label_key=_cfg(cfg, "label_key", "label"),
        image_size=_cfg(cfg, "image_size"),
    )


def _captions():
    from ssl_jax.data import captions

    return captions


def _sequences():
    from ssl_jax.data import sequences

    return sequences


def _subsets():
    from ssl_jax.data import subsets

    return subsets


def _signals():
    from ssl_jax.data import signals

    return signals


def _skipgram():
    from ssl_jax.data import skipgram

    return skipgram


def _text_module():
    from ssl_jax.data import text  # deferred: ssl_jax.data.text imports this module

    return text


def _color_samples():
    from ssl_jax.data import color_samples  # deferred: it imports this module (and scikit-image)

    return color_samples


SOURCES: dict[str, Callable[[Any, str], Source]] = {
    "embedded_fashion_mnist": lambda cfg, split: embedded_fashion_mnist(split),
    "fashion_mnist": lambda cfg, split: fashion_mnist(_cfg(cfg, "data_dir"), split),
    "npz": _npz_from_cfg,
    "image_folder": _image_folder_from_cfg,
    "tfds": _tfds_from_cfg,
    "text_files": lambda cfg, split: _text_module().text_files_from_cfg(cfg, split),
    "tfds_text": lambda cfg, split: _text_module().tfds_text_from_cfg(cfg, split),
    # Image-text pairs (ssl_jax.data.captions, which imports this module: looked up on use).
    "captioned": lambda cfg, split: _captions().captioned_from_cfg(cfg, split),
    "tfds_captions": lambda cfg, split: _captions().tfds_captions_from_cfg(cfg, split),
    # Clips of frames (ssl_jax.data.sequences) and class subsets (ssl_jax.data.subsets), which import
    # this module: looked up on use.
    "moving_fashion_mnist": lambda cfg, split: _sequences().moving_items_from_cfg(cfg, split),
    "tfds_video": lambda cfg, split: _sequences().tfds_video_from_cfg(cfg, split),
    "class_subset": lambda cfg, split: _subsets().class_subset_from_cfg(cfg, split),
    # Synthetic 1-D signals (ssl_jax.data.signals) and skip-gram windows over text files
    # (ssl_jax.data.skipgram): looked up on use.
    "synthetic_signals": lambda cfg, split: _signals().synthetic_signals_from_cfg(cfg, split),
    "skipgram_text": lambda cfg, split: _skipgram().skipgram_from_cfg(cfg, split),
    # Random crops of scikit-image's bundled colour photographs (ssl_jax.data.color_samples).
    "skimage_samples": lambda cfg, split: _color_samples().skimage_samples_from_cfg(cfg, split),
}


def example_shape(source: Source, key: str = "image") -> tuple[int, ...]:
    """The shape of one example's `key` field ([H, W, C] for "image", [L] for "tokens")."""
    return tuple(np.asarray(source.get(np.zeros(1, np.int64))[key]).shape[1:])


def get_source(data_cfg: Any, split: str) -> Source:
    """The source named by `data_cfg.name` (a key of SOURCES) for `split` ("train" or "test")."""
    name = _cfg(data_cfg, "name")
    if name not in SOURCES:
        raise ValueError(f"unknown data.name {name!r}; valid names: {', '.join(sorted(SOURCES))}")
    return SOURCES[name](data_cfg, split)
