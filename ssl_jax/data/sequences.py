"""Sequence sources: short clips of frames for methods that learn from time (future prediction).

Rows are {"frames": uint8 [n, T, H, W, C], "image": uint8 [n, H, W, C] (the clip's first frame, so an
image method can pre-train an encoder on the same frames), "label": int32 [n] (when the data has one)}.

- `MovingItemsSource`: clips made offline from a real labelled image source: each item (e.g. a
  Fashion-MNIST garment) moves on a larger black canvas, bouncing off its edges (Srivastava et al.
  2015's Moving MNIST, built from any image data), or rotates about the canvas centre. The motion of
  row i is a pure function of (seed, split, i), so a clip is the same in every run and on every host.
- `VideoRecordsSource`: clips from any random-access sequence of video records (dicts holding a frame
  array or a list of encoded frames); `tfds_video` opens a prepared tfds video dataset by name
  (e.g. "moving_mnist", key "image_sequence") through it.
"""

from __future__ import annotations

import io
import zlib
from collections.abc import Sequence
from typing import Any

import numpy as np
from PIL import Image

from ssl_jax.data.common import (
    GRAYSCALE_MODES,
    check_indices,
    config_field,
    decode_image,
    open_tfds,
    to_hw,
)
from ssl_jax.data.registry import Source, get_source, register

MOTIONS = ("translate", "rotate")


def bounce(start: np.ndarray, velocity: np.ndarray, t: np.ndarray, limit: int) -> np.ndarray:
    """Positions in [0, limit] of a point moving at constant `velocity` from `start` and reflecting off
    0 and `limit`: the unfolded position p = start + v t taken modulo the period 2 * limit, folded back.

    start, velocity: [...] integers; t: [T] frame times. Returns int [T, ...]."""
    if limit == 0:
        return np.zeros((len(t), *np.shape(start)), np.int64)
    p = np.mod(np.asarray(start) + np.multiply.outer(t, velocity), 2 * limit)
    return np.where(p > limit, 2 * limit - p, p)


class MovingItemsSource:
    """Clips of one item of `base` moving ("translate") or turning ("rotate") on a black canvas.

    base: a labelled image source (uint8 [H, W, C] items no larger than the canvas).
    num_frames: T frames per clip. canvas_size: the frames' side S.
    translate: the item starts at a random position with an integer velocity (vy, vx), each component
      drawn from [-max_speed, max_speed] without 0, and bounces off the canvas edges.
    rotate: the item sits at the canvas centre and turns by a fixed angle per frame, drawn uniformly
      from [min_degrees, max_degrees] with a random sign, from a random initial angle (bilinear).
    seed, split: the motion of row i depends on (seed, split, i) only.
    """

    def __init__(
        self,
        base: Source,
        *,
        num_frames: int = 8,
        canvas_size: int = 40,
        motion: str = "translate",
        max_speed: int = 3,
        degrees: tuple[float, float] = (10.0, 30.0),
        seed: int = 0,
        split: str = "train",
        name: str | None = None,
    ):
        if motion not in MOTIONS:
            raise ValueError(f"motion must be one of {MOTIONS}; got {motion!r}")
        if num_frames < 2:
            raise ValueError(f"a clip needs at least 2 frames; got num_frames={num_frames}")
        height, width, channels = base.image_shape
        if canvas_size < max(height, width):
            raise ValueError(
                f"canvas_size {canvas_size} is smaller than the items ({height}x{width}) of "
                f"{base.name!r}"
            )
        if motion == "translate" and max_speed < 1:
            raise ValueError(f"max_speed must be >= 1 pixel per frame; got {max_speed}")
        self.base = base
        self.num_frames = int(num_frames)
        self.canvas_size = int(canvas_size)
        self.motion = motion
        self.max_speed = int(max_speed)
        self.degrees = (float(degrees[0]), float(degrees[1]))
        self.seed = int(seed)
        # A stable number for the split (str hashes vary between processes).
        self._split_key = zlib.crc32(split.encode())
        self.name = name or f"{motion}_{base.name}"
        self.image_shape = (self.canvas_size, self.canvas_size, channels)
        self.num_classes = base.num_classes
        self.class_names = getattr(base, "class_names", None)

    def __len__(self) -> int:
        return len(self.base)

    def _rng(self, index: int) -> np.random.Generator:
        return np.random.default_rng([self.seed, self._split_key, int(index)])

    def _translate(self, item: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        h, w, c = item.shape
        s, t = self.canvas_size, np.arange(self.num_frames)
        limits = (s - h, s - w)
        start = np.array([rng.integers(0, lim + 1) for lim in limits])
        speeds = np.arange(1, self.max_speed + 1)
        velocity = rng.choice(speeds, size=2) * rng.choice([-1, 1], size=2)
        ys = bounce(start[0], velocity[0], t, limits[0])
        xs = bounce(start[1], velocity[1], t, limits[1])
        frames = np.zeros((self.num_frames, s, s, c), np.uint8)
        for k, (y, x) in enumerate(zip(ys, xs, strict=True)):
            frames[k, y : y + h, x : x + w] = item
        return frames

    def _rotate(self, item: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        h, w, c = item.shape
        s = self.canvas_size
        canvas = np.zeros((s, s, c), np.uint8)
        top, left = (s - h) // 2, (s - w) // 2
        canvas[top : top + h, left : left + w] = item
        start = rng.uniform(0.0, 360.0)
        step = rng.uniform(*self.degrees) * rng.choice([-1.0, 1.0])
        picture = Image.fromarray(canvas[..., 0] if c == 1 else canvas)
        frames = []
        for k in range(self.num_frames):
            turned = picture.rotate(start + step * k, resample=Image.Resampling.BILINEAR)
            array = np.asarray(turned, np.uint8)
            frames.append(array[..., None] if c == 1 else array)
        return np.stack(frames)

    def get(self, indices: np.ndarray) -> dict[str, np.ndarray]:
        indices = check_indices(indices, len(self))
        rows = self.base.get(indices)
        make = self._translate if self.motion == "translate" else self._rotate
        frames = (
            np.stack(
                [make(item, self._rng(i)) for item, i in zip(rows["image"], indices, strict=True)]
            )
            if len(indices)
            else np.zeros((0, self.num_frames, *self.image_shape), np.uint8)
        )
        out = {"frames": frames, "image": frames[:, 0]}
        if "label" in rows:
            out["label"] = rows["label"]
        return out


def _frame_list(value: Any) -> list[Any]:
    """A record's video field as a list of frames (array rows, encoded bytes or PIL images)."""
    if isinstance(value, np.ndarray) and value.dtype != object and value.ndim not in (3, 4):
        raise ValueError(f"a video must be [T, H, W] or [T, H, W, C]; got shape {value.shape}")
    return list(value)


def _is_grayscale(frame: Any) -> bool:
    if isinstance(frame, np.ndarray):
        return frame.ndim == 2 or frame.shape[-1] == 1
    if isinstance(frame, bytes):
        with Image.open(io.BytesIO(frame)) as image:
            return image.mode in GRAYSCALE_MODES
    return frame.mode in GRAYSCALE_MODES


def _squeeze_channel(frame: Any) -> Any:
    """[H, W, 1] arrays -> [H, W], the layout PIL reads as a grayscale image."""
    if isinstance(frame, np.ndarray) and frame.ndim == 3 and frame.shape[-1] == 1:
        return frame[..., 0]
    return frame


class VideoRecordsSource:
    """Clips from a random-access sequence of records (dicts), each holding a whole video.

    records: anything with len() and [i] (a tfds ArrayRecord data source, a list of dicts in tests).
    frames_key: the video field: a uint8 array [T, H, W(, C)] or a sequence of frames, each encoded
      bytes (PNG/JPEG), a PIL image or an array. label_key: an integer class field, or None.
    num_frames: T frames per clip, taken every `frame_stride` from frame `clip_start` (None: all).
    image_size: resize every frame to this side (None: keep). grayscale: decode to 1 channel (None:
      decide from the first frame).
    """

    def __init__(
        self,
        records: Any,
        *,
        frames_key: str,
        label_key: str | None = None,
        num_frames: int | None = None,
        frame_stride: int = 1,
        clip_start: int = 0,
        image_size: int | Sequence[int] | None = None,
        grayscale: bool | None = None,
        num_classes: int | None = None,
        class_names: Sequence[str] | None = None,
        name: str = "video",
    ):
        if frame_stride < 1 or clip_start < 0:
            raise ValueError(
                f"need frame_stride >= 1, clip_start >= 0; got {frame_stride}, {clip_start}"
            )
        self._records = records
        self.name = name
        self.frames_key = frames_key
        self.label_key = label_key
        self._size = to_hw(image_size)
        self.frame_stride = int(frame_stride)
        self.clip_start = int(clip_start)
        first = records[0] if len(records) else None
        if first is not None and frames_key not in first:
            raise ValueError(
                f"{name}: records have no field {frames_key!r}; they have {sorted(first)}"
            )
        if label_key is not None and first is not None and label_key not in first:
            raise ValueError(
                f"{name}: records have no field {label_key!r}; they have {sorted(first)}"
            )
        frames = _frame_list(first[frames_key]) if first is not None else []
        if grayscale is None:
            grayscale = _is_grayscale(frames[0]) if frames else True
        self._mode = "L" if grayscale else "RGB"
        available = len(frames[self.clip_start :: self.frame_stride])
        self.num_frames = available if num_frames is None else int(num_frames)
        if first is not None and not 1 <= self.num_frames <= available:
            raise ValueError(
                f"{name}: a clip of {self.num_frames} frames (every {frame_stride} from {clip_start}) "
                f"does not fit in videos of {len(frames)} frames"
            )
        shape = self._clip(first)[0].shape if first is not None else (*(self._size or (0, 0)), 1)
        self.image_shape = tuple(int(d) for d in shape)
        self.num_classes = num_classes
        self.class_names = tuple(class_names) if class_names else None
        if self.num_classes is None and self.class_names is not None:
            self.num_classes = len(self.class_names)

    def __len__(self) -> int:
        return len(self._records)

    def _clip(self, record: dict[str, Any]) -> np.ndarray:
        frames = _frame_list(record[self.frames_key])
        chosen = frames[self.clip_start :: self.frame_stride][: self.num_frames]
        if len(chosen) < self.num_frames:
            raise ValueError(
                f"{self.name}: a video has {len(frames)} frames, too few for a clip of "
                f"{self.num_frames} (every {self.frame_stride} from {self.clip_start})"
            )
        decoded = [decode_image(_squeeze_channel(f), self._mode, self._size) for f in chosen]
        return np.stack(decoded)

    def get(self, indices: np.ndarray) -> dict[str, np.ndarray]:
        indices = check_indices(indices, len(self))
        getitems = getattr(self._records, "__getitems__", None)  # one batched ArrayRecord read
        records = getitems(indices.tolist()) if getitems else [self._records[i] for i in indices]
        clips = [self._clip(r) for r in records]
        expected = (self.num_frames, *self.image_shape)
        for clip in clips:
            if clip.shape != expected:
                raise ValueError(
                    f"{self.name}: a clip has shape {clip.shape}, expected {expected}; set "
                    "--config.data.image_size to resize every frame"
                )
        frames = np.stack(clips) if clips else np.zeros((0, *expected), np.uint8)
        out = {"frames": frames, "image": frames[:, 0]}
        if self.label_key is not None:
            out["label"] = np.asarray([r[self.label_key] for r in records], np.int32)
        return out


def tfds_video(
    name: str,
    split: str,
    *,
    data_dir: str | None = None,
    frames_key: str = "image_sequence",
    label_key: str | None = None,
    **kwargs: Any,
) -> VideoRecordsSource:
    """A prepared tfds video dataset (ArrayRecord format) by name, e.g. "moving_mnist" (20 frames of
    64x64x1 per record under "image_sequence", one "test" split of 10,000: take train/test as
    "test[:90%]" / "test[90%:]"). kwargs: VideoRecordsSource's clip options."""
    records, features = open_tfds(name, split, data_dir)
    if frames_key not in features:
        raise ValueError(f"tfds {name!r} has no feature {frames_key!r}; it has {list(features)}")
    label_key = label_key if label_key and label_key in features else None
    label_feature = features[label_key] if label_key else None
    names = getattr(label_feature, "names", None)
    return VideoRecordsSource(
        records,
        frames_key=frames_key,
        label_key=label_key,
        num_classes=getattr(label_feature, "num_classes", None),
        class_names=names or None,
        name=name,
        **kwargs,
    )


def _as_dict(cfg: Any) -> dict[str, Any]:
    if hasattr(cfg, "to_dict"):
        return cfg.to_dict()
    return dict(cfg) if isinstance(cfg, dict) else dict(vars(cfg))


@register("moving_fashion_mnist")
def moving_items_from_cfg(cfg: Any, split: str) -> MovingItemsSource:
    """data.name="moving_fashion_mnist": clips of the items of the source named data.base (default
    "embedded_fashion_mnist"; "fashion_mnist" with data.data_dir for the full set), with
    data.{num_frames, canvas_size, motion, max_speed, sequence_seed}."""
    base_name = config_field(cfg, "base", "embedded_fashion_mnist")
    base = get_source({**_as_dict(cfg), "name": base_name}, split)
    return MovingItemsSource(
        base,
        num_frames=int(config_field(cfg, "num_frames", 8)),
        canvas_size=int(config_field(cfg, "canvas_size", 40)),
        motion=config_field(cfg, "motion", "translate"),
        max_speed=int(config_field(cfg, "max_speed", 3)),
        seed=int(config_field(cfg, "sequence_seed", 0)),
        split=split,
    )


@register("tfds_video")
def tfds_video_from_cfg(cfg: Any, split: str) -> VideoRecordsSource:
    """data.name="tfds_video": data.tfds_name (e.g. "moving_mnist"), data.frames_key, data.label_key,
    data.{train,test}_split, data.{num_frames, frame_stride, clip_start, frame_size} (frame_size: resize
    every frame to this side; 0 keeps the dataset's)."""
    name = config_field(cfg, "tfds_name")
    if not name:
        raise ValueError(
            "data.name='tfds_video' needs --config.data.tfds_name, e.g. 'moving_mnist'"
        )
    num_frames = config_field(cfg, "num_frames", 0)
    return tfds_video(
        name,
        config_field(cfg, f"{split}_split", split),
        data_dir=config_field(cfg, "data_dir") or None,
        frames_key=config_field(cfg, "frames_key", "image_sequence"),
        label_key=config_field(cfg, "label_key") or None,
        num_frames=int(num_frames) or None,
        frame_stride=int(config_field(cfg, "frame_stride", 1)),
        clip_start=int(config_field(cfg, "clip_start", 0)),
        image_size=config_field(cfg, "frame_size") or None,
    )
