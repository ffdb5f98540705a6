"""Random-access image sources that return numpy: arrays, IDX files, image folders, .npz, tfds.

Every source has `len(source)`, `source.get(indices)` -> {"image": uint8 [n, H, W, C], "label": int32 [n]}
("label" only when the data has labels), and the attributes `name`, `image_shape` (H, W, C) and
`num_classes` (None without labels). Registered names (`ssl_jax.data.get_source` picks one by
`data_cfg.name`): "embedded_fashion_mnist", "fashion_mnist", "npz", "image_folder", "tfds".

Photographs: `data_cfg.host_crop` ("auto", "yes" or "no") decides whether an image folder or a
tfds dataset is read as `ssl_jax.data.photos` sources, whose training views the host crops from
the original photo (the papers' random resized crop; evaluation a short-side resize and centre
crop to data.image_size), or as whole images resized to data.image_size, cropped on device.
"auto" reads image folders and tfds datasets of variable-size images as photographs and fixed-size
data (CIFAR, MNIST) whole, as in-memory arrays are.
"""

from __future__ import annotations

import functools
import gzip
import math
import os
import struct
from collections.abc import Sequence
from typing import Any

import numpy as np
from PIL import Image

from ssl_jax.data.common import (
    EMBEDDED_HINT,
    GRAYSCALE_MODES,
    DatasetNotFoundError,
    check_indices,
    config_field,
    decode_image,
    open_tfds,
    stack_images,
    to_hw,
)
from ssl_jax.data.photos import FolderPhotos, TfdsPhotos
from ssl_jax.data.registry import Source, register

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
        indices = check_indices(indices, len(self))
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
                f"--config.data.path. {EMBEDDED_HINT}"
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
        f"then set --config.data.data_dir=DIR. {EMBEDDED_HINT}"
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
                f"Set --config.data.data_dir. {EMBEDDED_HINT}"
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
                grayscale = first.mode in GRAYSCALE_MODES
            width, height = first.size
        self._mode = "L" if grayscale else "RGB"
        self._size = to_hw(image_size)
        self.image_shape = (*(self._size or (height, width)), 1 if grayscale else 3)

    def __len__(self) -> int:
        return len(self.paths)

    def _load(self, path: str) -> np.ndarray:
        try:
            with Image.open(path) as image:
                array = decode_image(image, self._mode, self._size)
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
        indices = check_indices(indices, len(self))
        images = [self._load(self.paths[i]) for i in indices]
        return {
            "image": stack_images(images, self.image_shape, self.name),
            "label": self.labels[indices],
        }


class TfdsSource:
    """A prepared tfds dataset read by random access from ArrayRecord files; TensorFlow not needed.

    Opened by `ssl_jax.data.common.open_tfds`, whose errors say how to prepare a missing dataset.
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
        self._records, features = open_tfds(name, split, data_dir)
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
        self.variable_size = None in shape[:2]
        self._mode = "L" if shape[-1] == 1 else "RGB"
        self._size = to_hw(image_size)
        if self._size is None and None in shape[:2]:  # variable-sized images: take the first one's
            shape = self._decode(self._records[0]).shape
        self.image_shape = (*(self._size or shape[:2]), shape[-1])

    def __len__(self) -> int:
        return len(self._records)

    def _decode(self, record: dict[str, Any]) -> np.ndarray:
        return decode_image(record[self._image_key], self._mode, self._size)

    def get(self, indices: np.ndarray) -> dict[str, np.ndarray]:
        indices = check_indices(indices, len(self))
        getitems = getattr(self._records, "__getitems__", None)  # one batched ArrayRecord read
        records = getitems(indices.tolist()) if getitems else [self._records[i] for i in indices]
        images = [self._decode(r) for r in records]
        out = {"image": stack_images(images, self.image_shape, self.name)}
        if self._label_key:
            out["label"] = np.asarray([r[self._label_key] for r in records], np.int32)
        return out


@register("embedded_fashion_mnist")
def _embedded_from_cfg(cfg: Any, split: str) -> Source:
    del cfg  # the subset has no settings
    return embedded_fashion_mnist(split)


@register("fashion_mnist")
def _fashion_mnist_from_cfg(cfg: Any, split: str) -> Source:
    return fashion_mnist(config_field(cfg, "data_dir"), split)


@register("npz")
def _npz_from_cfg(cfg: Any, split: str) -> Source:
    path = config_field(cfg, "path")
    if not path:
        raise DatasetNotFoundError(f"data.name='npz' needs --config.data.path. {EMBEDDED_HINT}")
    # "{split}" in the path means one file per split with plain keys; otherwise keys are per split.
    if "{split}" in path:
        return NpzSource(path.format(split=split))
    return NpzSource(path, split)


HOST_CROP = ("auto", "yes", "no")


def _host_crop(cfg: Any) -> str:
    """config.data.host_crop, checked; "auto" when unset."""
    value = config_field(cfg, "host_crop", "auto")
    if value not in HOST_CROP:
        raise ValueError(f"data.host_crop must be one of {HOST_CROP}; got {value!r}")
    return value


def _photo_size(cfg: Any) -> int:
    size = config_field(cfg, "image_size")
    if not isinstance(size, int):
        raise ValueError(
            "photographs (data.host_crop) need --config.data.image_size=S, the side of the eval "
            f"crop; got {size!r}"
        )
    return size


@register("image_folder")
def _image_folder_from_cfg(cfg: Any, split: str) -> Source:
    data_dir = config_field(cfg, "data_dir")
    if not data_dir:
        raise DatasetNotFoundError(
            "data.name='image_folder' needs --config.data.data_dir=DIR holding "
            f"DIR/{split}/<class_name>/<image files>. {EMBEDDED_HINT}"
        )
    root = os.path.join(data_dir, split)
    if _host_crop(cfg) == "no":
        return ImageFolderSource(root, image_size=config_field(cfg, "image_size"))
    return FolderPhotos.from_source(ImageFolderSource(root), image_size=_photo_size(cfg))


@register("tfds")
def _tfds_from_cfg(cfg: Any, split: str) -> Source:
    name = config_field(cfg, "tfds_name")
    if not name:
        raise ValueError("data.name='tfds' needs --config.data.tfds_name, e.g. 'cifar10'")
    host_crop = _host_crop(cfg)
    args = dict(
        name=name,
        split=config_field(cfg, f"{split}_split", split),  # e.g. train_split="train[:90%]"
        data_dir=config_field(cfg, "data_dir"),
        image_key=config_field(cfg, "image_key", "image"),
        label_key=config_field(cfg, "label_key", "label"),
    )
    if host_crop == "yes":
        return TfdsPhotos(**args, image_size=_photo_size(cfg))
    source = TfdsSource(**args, image_size=config_field(cfg, "image_size"))
    if host_crop == "auto" and source.variable_size:
        return TfdsPhotos(**args, image_size=_photo_size(cfg))
    return source
