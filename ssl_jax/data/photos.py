"""Host decode-and-crop of variable-size photographs: random-resized-crop views and the eval crop.

A training view's box is drawn on the photograph's own size by `crop_box`, the law of
`ssl_jax.augment.crop_box_from_uniforms` (torchvision's RandomResizedCrop: area fraction uniform in
`scale`, aspect ratio log-uniform in `ratio`, ten tries, then the central crop clamped to `ratio`)
written in NumPy over the same CROP_DRAWS uniforms. The photo is decoded once for all its views, a
JPEG at the smallest DCT scale (1/8, 1/4, 1/2, 1) that still leaves every view's box at least its
output size, and each box is resized to its view size. YCbCr and grayscale JPEGs (nearly every
photograph) are decoded by simplejpeg (libjpeg-turbo, the library inside Pillow's wheels: the same
pixels) and resized by OpenCV (bilinear, area averaging when shrinking), about twice Pillow's rate;
every other file goes through Pillow (draft mode, antialiased bilinear). Views leave as uint8
[s, s, C]; flip, colour jitter, grayscale, blur and solarization stay on the accelerator.

The eval transform (`decode_eval`) resizes the short side to round(size / crop_fraction) and takes
the central size x size square (Resize(256) + CenterCrop(224) on ImageNet), never a squash.

Bad input never passes silently: a file that cannot be read (zero bytes, truncated, not an image)
raises `PhotoError` naming it; CMYK, palette, 1-bit and 16-bit images are converted, an alpha
channel is composited over white, a grayscale photo in an RGB dataset is replicated to 3 channels,
and a photo smaller than its crop is upsampled.

`FolderPhotos` (root/<class>/<image>) and `TfdsPhotos` (a prepared ArrayRecord tfds dataset read
with its images still encoded) are the random-access inputs of `ssl_jax.data.pipeline`, which
crops their training views. They are also `Source`s: `get` returns each photo's eval view at
`image_size`, so evaluation, fine-tuning and methods without host crops read them as whole images.
`get_source` returns them for image folders and variable-size tfds datasets (config.data.host_crop).
"""

from __future__ import annotations

import dataclasses
import io
import math
from collections.abc import Callable, Sequence
from typing import Any

import cv2
import numpy as np
import simplejpeg
from PIL import Image

from ssl_jax.augment.image import CROP_DRAWS
from ssl_jax.data.common import DatasetNotFoundError, check_indices, tfds_hint

# One OpenCV thread per process: the parallelism is the pipeline's worker processes, and OpenCV's
# own pool only adds contention for the same cores (measured: no faster, more CPU per view).
cv2.setNumThreads(1)

_CROP_TRIES = (CROP_DRAWS - 2) // 2  # the layout of augment.crop_box_from_uniforms' uniforms
_SIXTEEN_BIT_MODES = ("I;16", "I;16B", "I;16L", "I;16N", "I")
_ALPHA_MODES = ("RGBA", "LA", "PA", "RGBa", "La")
_RESAMPLE = Image.Resampling.BILINEAR  # PIL's resize filters antialias when they shrink


class PhotoError(ValueError):
    """A photograph that cannot be read; the message names the file."""


@dataclasses.dataclass(frozen=True)
class CropView:
    """One random-resized-crop view: output side `size`, area fraction `scale`, aspect `ratio`."""

    size: int
    scale: tuple[float, float] = (0.08, 1.0)
    ratio: tuple[float, float] = (3 / 4, 4 / 3)

    def __post_init__(self):
        object.__setattr__(self, "scale", tuple(float(v) for v in self.scale))
        object.__setattr__(self, "ratio", tuple(float(v) for v in self.ratio))
        if self.size < 1 or not 0 < self.scale[0] <= self.scale[1] or not 0 < self.ratio[0]:
            raise ValueError(f"bad CropView {self}: need size >= 1, 0 < scale[0] <= scale[1]")


def simclr_views(size: int = 224) -> tuple[CropView, ...]:
    """SimCLR / BYOL: two views, each its own box with scale (0.08, 1)."""
    return (CropView(size), CropView(size))


def multicrop_views(
    global_size: int = 224,
    local_size: int = 96,
    *,
    num_global: int = 2,
    num_local: int = 6,
    global_scale: tuple[float, float] = (0.4, 1.0),
    local_scale: tuple[float, float] = (0.05, 0.4),
) -> tuple[CropView, ...]:
    """DINO's multi-crop (Caron et al. 2021): `num_global` global then `num_local` local views; the
    default scales are those of `ssl_jax.augment.multicrop`."""
    return (CropView(global_size, global_scale),) * num_global + (
        CropView(local_size, local_scale),
    ) * num_local


def crop_box(
    u: np.ndarray,
    height: int,
    width: int,
    *,
    scale: tuple[float, float] = (0.08, 1.0),
    ratio: tuple[float, float] = (3 / 4, 4 / 3),
) -> tuple[int, int, int, int]:
    """(top, left, h, w) from CROP_DRAWS uniforms: `augment.crop_box_from_uniforms` in NumPy."""
    u = np.asarray(u, np.float64)
    target_area = height * width * (scale[0] + (scale[1] - scale[0]) * u[:_CROP_TRIES])
    log_lo, log_hi = math.log(ratio[0]), math.log(ratio[1])
    aspect = np.exp(log_lo + (log_hi - log_lo) * u[_CROP_TRIES : 2 * _CROP_TRIES])
    ws = np.round(np.sqrt(target_area * aspect)).astype(np.int64)
    hs = np.round(np.sqrt(target_area / aspect)).astype(np.int64)
    valid = np.flatnonzero((ws > 0) & (ws <= width) & (hs > 0) & (hs <= height))
    if valid.size:
        h, w = int(hs[valid[0]]), int(ws[valid[0]])
        top = min(int(u[2 * _CROP_TRIES] * (height - h + 1)), height - h)
        left = min(int(u[2 * _CROP_TRIES + 1] * (width - w + 1)), width - w)
        return top, left, h, w
    in_ratio = width / height
    if in_ratio < min(ratio):
        w, h = width, int(round(width / min(ratio)))
    elif in_ratio > max(ratio):
        w, h = int(round(height * max(ratio))), height
    else:
        w, h = width, height
    return (height - h) // 2, (width - w) // 2, h, w


def _fail(where: str, error: BaseException) -> PhotoError:
    return PhotoError(
        f"cannot decode the image {where} ({type(error).__name__}: {error}); replace or remove "
        "that file"
    )


def open_photo(data: bytes | str, where: str) -> Image.Image:
    """The photo at path `data` (or its encoded bytes), opened: its header read, pixels not yet."""
    try:
        return Image.open(io.BytesIO(data) if isinstance(data, bytes) else data)
    except (OSError, ValueError, SyntaxError) as e:
        if isinstance(e, OSError) and e.errno is not None:
            raise  # the file system's error (missing, unreadable), not the file's content
        raise _fail(where, e) from e


def _converted(image: Image.Image, mode: str, where: str) -> Image.Image:
    """`image` in `mode` ("RGB" or "L"), its pixels loaded; PhotoError for a broken file."""
    try:
        image.load()
        if image.mode in _SIXTEEN_BIT_MODES:  # PIL's convert would clip 16-bit values at 255
            high = np.asarray(image).astype(np.int64) * 255 // 65535
            image = Image.fromarray(np.clip(high, 0, 255).astype(np.uint8), "L")
        elif image.mode == "F":
            raise PhotoError(f"{where} holds floating-point pixels (mode F); save it as 8-bit")
        if image.mode == "P" and "transparency" in image.info:
            image = image.convert("RGBA")
        if image.mode in _ALPHA_MODES:  # transparent pixels carry no colour: composite on white
            rgba = image.convert("RGBA")
            image = Image.alpha_composite(Image.new("RGBA", rgba.size, "white"), rgba)
        return image if image.mode == mode else image.convert(mode)  # convert() would copy
    except PhotoError:
        raise
    except (OSError, ValueError, SyntaxError) as e:  # truncated data, a bad header, ...
        raise _fail(where, e) from e


def _draft(image: Image.Image, mode: str, need: tuple[float, float]) -> tuple[float, float]:
    """Asks a JPEG for its smallest DCT scale at least `need` (width, height) pixels; returns the
    (x, y) factors from original to decoded coordinates (1, 1 for other formats)."""
    width, height = image.size
    if image.format == "JPEG":
        # draft() keeps the full image at least `need`: every box keeps at least its view size.
        image.draft(
            mode if image.mode in ("RGB", "YCbCr", "L") else None, tuple(map(math.ceil, need))
        )
    return image.size[0] / width, image.size[1] / height


Box = tuple[float, float, float, float]  # (left, top, right, bottom) in original pixels


def _need(width: int, height: int, boxes: Sequence[Box], sizes: Sequence[int]) -> tuple[int, int]:
    """The smallest decoded (width, height) that keeps every box's sides at least its size."""
    need_w = max(width * s / (b[2] - b[0]) for b, s in zip(boxes, sizes, strict=True))
    need_h = max(height * s / (b[3] - b[1]) for b, s in zip(boxes, sizes, strict=True))
    return min(math.ceil(need_w), width), min(math.ceil(need_h), height)


def _jpeg_size(data: bytes) -> tuple[int, int] | None:
    """(height, width) of a JPEG that simplejpeg decodes (YCbCr or grayscale); None for anything
    else (other formats, CMYK, an unreadable header), which PIL reads and names the problem of."""
    if not data.startswith(b"\xff\xd8"):
        return None
    try:
        height, width, colorspace, _ = simplejpeg.decode_jpeg_header(data)
    except ValueError:
        return None
    return (height, width) if colorspace in ("YCbCr", "Gray") else None


def _resize(array: np.ndarray, box: Box, size: int) -> np.ndarray:
    """The box (left, top, right, bottom) of `array`, in its own pixels, resized to size x size,
    uint8 [size, size, C]. Growing: bilinear sampling at the box's exact, fractional position. A
    shrink by at most 2: the same to twice the size, then 2x2 means (area averaging on OpenCV's
    fast integer path). A larger shrink: area averaging of the box rounded to whole pixels (well
    under a pixel of the output). On photographs within about a grey level of PIL's antialiased
    bilinear (tests/test_photos.py), at a fraction of its cost."""
    left, top, right, bottom = box
    longest = max(right - left, bottom - top)
    if longest > 2 * size:
        left, top, right, bottom = (int(round(v)) for v in box)
        crop = array[top : max(bottom, top + 1), left : max(right, left + 1)]
        out = cv2.resize(crop, (size, size), interpolation=cv2.INTER_AREA)
    else:
        n = 2 * size if longest > size else size
        sx, sy = (right - left) / n, (bottom - top) / n
        # Output pixel centre x + 0.5 samples the box at left + (x + 0.5) * sx (pixel centres).
        inverse = np.float32([[sx, 0, left + 0.5 * sx - 0.5], [0, sy, top + 0.5 * sy - 0.5]])
        flags = cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP
        out = cv2.warpAffine(array, inverse, (n, n), flags=flags, borderMode=cv2.BORDER_REPLICATE)
        if n > size:
            out = cv2.resize(out, (size, size), interpolation=cv2.INTER_AREA)
    return out if out.ndim == 3 else out[..., None]


def _decode_boxes(
    data: bytes | str,
    boxes_of: Callable[[int, int], list[Box]],
    sizes: Sequence[int],
    mode: str,
    where: str,
) -> list[np.ndarray]:
    """Decodes the photo once and resizes each of `boxes_of(height, width)` (drawn on the original
    size) to its size, uint8 [size, size, C] each. A JPEG in YCbCr or grayscale goes through
    `_decode_jpeg` (libjpeg-turbo and OpenCV), anything else through `_decode_pil`."""
    if isinstance(data, str):
        with open(data, "rb") as f:  # the file system's errors (missing, unreadable) as they are
            data = f.read()
    size = _jpeg_size(data)
    if size is None:
        return _decode_pil(data, boxes_of, sizes, mode, where)
    return _decode_jpeg(data, size, boxes_of, sizes, mode, where)


def _decode_jpeg(data, size, boxes_of, sizes, mode, where) -> list[np.ndarray]:
    """simplejpeg at the largest power-of-two DCT reduction that keeps every box at least its
    size (the reduction PIL's draft mode picks; libjpeg-turbo would otherwise also scale by other
    eighths), then `_resize`: about twice PIL's rate (benchmarks/results/input_pipeline.md)."""
    height, width = size
    boxes = boxes_of(height, width)
    need_w, need_h = _need(width, height, boxes, sizes)
    k = next(k for k in (8, 4, 2, 1) if -(-width // k) >= need_w and -(-height // k) >= need_h)
    try:
        decoded = simplejpeg.decode_jpeg(
            data,
            colorspace="GRAY" if mode == "L" else "RGB",
            min_height=-(-height // k),
            min_width=-(-width // k),
        )
    except ValueError as e:  # truncated or corrupt data
        raise _fail(where, e) from e
    fy, fx = decoded.shape[0] / height, decoded.shape[1] / width
    return [
        _resize(decoded, (b[0] * fx, b[1] * fy, b[2] * fx, b[3] * fy), s)
        for b, s in zip(boxes, sizes, strict=True)
    ]


def _decode_pil(data, boxes_of, sizes, mode, where) -> list[np.ndarray]:
    """PIL (draft mode for a JPEG), `_converted` to `mode`, and PIL's antialiased bilinear resize
    of each box: every format and mode PIL reads."""
    with open_photo(data, where) as image:
        width, height = image.size
        boxes = boxes_of(height, width)
        fx, fy = _draft(image, mode, _need(width, height, boxes, sizes))
        decoded = _converted(image, mode, where)
    out = []
    for (left, top, right, bottom), s in zip(boxes, sizes, strict=True):
        box = (left * fx, top * fy, right * fx, bottom * fy)
        array = np.asarray(decoded.resize((s, s), _RESAMPLE, box=box), np.uint8)
        out.append(array if array.ndim == 3 else array[..., None])
    return out


def decode_views(
    data: bytes | str,
    views: Sequence[CropView],
    rng: np.random.Generator,
    *,
    mode: str = "RGB",
    where: str | None = None,
) -> list[np.ndarray]:
    """One uint8 [size, size, C] crop per view of the photo `data` (a path or encoded bytes).

    Each view takes CROP_DRAWS uniforms from `rng`, in view order, and draws its box with
    `crop_box` on the original image size; the JPEG is decoded once, at the smallest DCT scale
    that leaves every box at least its output size.
    """

    def boxes_of(height: int, width: int) -> list[Box]:
        boxes = []
        for v in views:
            top, left, h, w = crop_box(
                rng.random(CROP_DRAWS), height, width, scale=v.scale, ratio=v.ratio
            )
            boxes.append((left, top, left + w, top + h))
        return boxes

    where = where or (data if isinstance(data, str) else "<bytes>")
    return _decode_boxes(data, boxes_of, [v.size for v in views], mode, where)


def eval_box(height: int, width: int, size: int, crop_fraction: float) -> tuple[float, ...]:
    """(left, top, right, bottom) in original pixels of Resize(round(size / crop_fraction)) then
    CenterCrop(size), as `augment.preprocess_eval` computes it; a photo smaller than the resize
    is upsampled the same way, never squashed."""
    short = int(round(size / crop_fraction))
    if height <= width:
        new_h, new_w = short, max(int(short * width / height), size)
    else:
        new_h, new_w = max(int(short * height / width), size), short
    top = int(round((new_h - size) / 2.0))
    left = int(round((new_w - size) / 2.0))
    sy, sx = height / new_h, width / new_w
    return (left * sx, top * sy, (left + size) * sx, (top + size) * sy)


def decode_eval(
    data: bytes | str,
    size: int = 224,
    *,
    crop_fraction: float = 0.875,
    mode: str = "RGB",
    where: str | None = None,
) -> np.ndarray:
    """The deterministic eval view of a photo: uint8 [size, size, C] (see `eval_box`)."""
    where = where or (data if isinstance(data, str) else "<bytes>")

    def boxes_of(height: int, width: int) -> list[Box]:
        return [eval_box(height, width, size, crop_fraction)]

    return _decode_boxes(data, boxes_of, [size], mode, where)[0]


class Photos:
    """What both photo sources share: the `Source` attributes (name, image_shape, num_classes,
    class_names) and `get`, which returns each photo's eval view (`decode_eval` at image_size),
    so whatever reads whole images (evaluation, fine-tuning, a method without host crops) reads
    a short-side resize and centre crop, never a squash. Subclasses define `example(index)`."""

    name: str
    image_size: int
    mode: str
    num_classes: int | None
    class_names: tuple[str, ...] | None

    @property
    def image_shape(self) -> tuple[int, int, int]:
        return (self.image_size, self.image_size, 1 if self.mode == "L" else 3)

    def example(self, index: int) -> tuple[bytes | str, str, int | None]:
        raise NotImplementedError

    def get(self, indices: np.ndarray) -> dict[str, np.ndarray]:
        images, labels = [], []
        for index in check_indices(indices, len(self)).tolist():
            data, where, label = self.example(index)
            images.append(decode_eval(data, self.image_size, mode=self.mode, where=where))
            labels.append(label)
        out = {"image": np.stack(images) if images else np.zeros((0, *self.image_shape), np.uint8)}
        if self.num_classes is not None:
            out["label"] = np.asarray(labels, np.int32)
        return out


class FolderPhotos(Photos):
    """The photographs of an image folder (root/<class_name>/**/<image>), read as files.

    Built from the `paths` and `labels` of an `ssl_jax.data.ImageFolderSource` (the same files,
    classes, order and colour mode), or from any such lists.
    """

    def __init__(
        self,
        paths: Sequence[str],
        labels: np.ndarray | None,
        *,
        name: str = "photos",
        image_size: int = 224,
        mode: str = "RGB",
        class_names: Sequence[str] | None = None,
    ):
        self.paths = list(paths)
        self.labels = None if labels is None else np.asarray(labels, np.int32)
        self.name, self.image_size, self.mode = name, int(image_size), mode
        self.class_names = None if class_names is None else tuple(class_names)
        if self.labels is None:
            self.num_classes = None
        elif self.class_names is not None:
            self.num_classes = len(self.class_names)
        else:
            self.num_classes = int(self.labels.max()) + 1 if len(self.labels) else 0

    @classmethod
    def from_source(cls, source: Any, image_size: int = 224) -> FolderPhotos:
        return cls(
            source.paths,
            getattr(source, "labels", None),
            name=source.name,
            image_size=image_size,
            mode="L" if source.image_shape[-1] == 1 else "RGB",
            class_names=getattr(source, "class_names", None),
        )

    def __len__(self) -> int:
        return len(self.paths)

    def example(self, index: int) -> tuple[str, str, int | None]:
        """(what `decode_views` reads, the name its errors give, the label or None)."""
        label = None if self.labels is None else int(self.labels[index])
        return self.paths[index], self.paths[index], label


class TfdsPhotos(Photos):
    """A prepared tfds dataset (ArrayRecord) read with its images still encoded, so they are
    decoded by `decode_views` (draft mode) instead of in full. Opened lazily, so each loader
    worker process opens its own files."""

    def __init__(
        self,
        name: str,
        split: str,
        data_dir: str | None = None,
        *,
        image_key: str = "image",
        label_key: str | None = "label",
        image_size: int = 224,
    ):
        self.name, self.split, self.data_dir = name, split, data_dir
        self.image_key, self.label_key = image_key, label_key
        self.image_size = int(image_size)
        self._records = None
        self._length = len(self._open())

    def _open(self):
        if self._records is None:
            import tensorflow_datasets as tfds  # ~0.6 s, paid only by tfds inputs

            try:
                builder = tfds.builder(self.name, data_dir=self.data_dir)
            except tfds.core.DatasetNotFoundError as e:
                raise DatasetNotFoundError(
                    tfds_hint(self.name, self.data_dir, "is neither known nor found")
                ) from e
            if not builder.is_prepared():
                raise DatasetNotFoundError(tfds_hint(self.name, self.data_dir, "is not prepared"))
            features = builder.info.features
            if self.image_key not in features:
                raise ValueError(f"tfds {self.name!r} has no feature {self.image_key!r}")
            if self.label_key not in features:
                self.label_key = None
            label_feature = features[self.label_key] if self.label_key else None
            self.num_classes = getattr(label_feature, "num_classes", None)
            names = getattr(label_feature, "names", None)
            self.class_names = tuple(names) if names else None
            self.mode = "L" if tuple(features[self.image_key].shape)[-1] == 1 else "RGB"
            decoders = {self.image_key: tfds.decode.SkipDecoding()}
            self._records = builder.as_data_source(split=self.split, decoders=decoders)
        return self._records

    def __getstate__(self) -> dict:
        return {**self.__dict__, "_records": None}  # file handles do not cross processes

    def __len__(self) -> int:
        return self._length

    def example(self, index: int) -> tuple[bytes, str, int | None]:
        """(the encoded image, the name its errors give, the label or None)."""
        record = self._open()[index]
        label = None if self.label_key is None else int(record[self.label_key])
        return bytes(record[self.image_key]), f"{self.name}[{self.split}] #{index}", label
