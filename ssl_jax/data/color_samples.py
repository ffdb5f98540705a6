"""An offline colour dataset: random crops of the colour photographs bundled with scikit-image.

`skimage_samples(split, ...)` resizes each photograph so its shorter side is `short_side` pixels, holds
out a vertical strip of `test_fraction` of its width on the right for the test split, and cuts
`per_image` random `image_size` crops from the train part (or the test strip), deterministically from
`seed`. No crop of one split overlaps a crop of the other. The label is the photograph a crop came
from (8 classes): a weak proxy task, enough for kNN / linear probes to tell features that carry colour
and texture from random ones, not a benchmark.

scikit-image is an optional dependency: `pip install scikit-image` (or `pip install 'ssl_jax[demo]'`).
"""

from __future__ import annotations

import functools

import numpy as np
from PIL import Image

from ssl_jax.data.common import DatasetNotFoundError, config_field
from ssl_jax.data.registry import register
from ssl_jax.data.sources import ArraySource

# The natural colour photographs shipped inside scikit-image's wheel (no download needed): name ->
# loader attribute of skimage.data. Synthetic images (colorwheel, logo) are left out.
SAMPLE_IMAGES = (
    "astronaut",
    "chelsea",
    "coffee",
    "rocket",
    "hubble_deep_field",
    "immunohistochemistry",
    "retina",
    "stereo_motorcycle",
)


def _load_photo(name: str) -> np.ndarray:
    try:
        # Imported here: scikit-image is an optional dependency (the "demo" extra) that only this
        # source needs, and ssl_jax.data imports this module to register it.
        from skimage import data as skdata
    except ImportError as e:
        raise DatasetNotFoundError(
            "data.name='skimage_samples' needs scikit-image, which bundles the sample photographs: "
            "pip install scikit-image (or pip install 'ssl_jax[demo]')."
        ) from e
    image = getattr(skdata, name)()
    if isinstance(
        image, tuple
    ):  # stereo_motorcycle returns (left, right, disparity): take the left
        image = image[0]
    return np.asarray(image, np.uint8)[..., :3]


def _resize_short_side(image: np.ndarray, short_side: int) -> np.ndarray:
    height, width = image.shape[:2]
    scale = short_side / min(height, width)
    size = (max(short_side, round(width * scale)), max(short_side, round(height * scale)))
    return np.asarray(Image.fromarray(image).resize(size, Image.Resampling.BICUBIC))


@functools.lru_cache(maxsize=4)
def skimage_samples(
    split: str,
    *,
    image_size: int = 32,
    short_side: int = 160,
    per_image: int = 1000,
    test_fraction: float = 0.25,
    seed: int = 0,
) -> ArraySource:
    """uint8 [8 * per_image, image_size, image_size, 3] crops with int32 labels (the photograph)."""
    if split not in ("train", "test"):
        raise ValueError(f"skimage_samples split must be 'train' or 'test'; got {split!r}")
    if not 0.0 < test_fraction < 1.0:
        raise ValueError(f"test_fraction must be in (0, 1), got {test_fraction}.")
    rng = np.random.default_rng([seed, 0 if split == "train" else 1])
    crops, labels = [], []
    for label, name in enumerate(SAMPLE_IMAGES):
        photo = _resize_short_side(_load_photo(name), short_side)
        height, width = photo.shape[:2]
        cut = int(round(width * (1.0 - test_fraction)))
        left, right = (0, cut) if split == "train" else (cut, width)
        if right - left < image_size or height < image_size:
            raise ValueError(
                f"{name}: its {split} part ({height}x{right - left}) is smaller than a {image_size}px "
                "crop; raise short_side or lower image_size."
            )
        tops = rng.integers(0, height - image_size + 1, per_image)
        lefts = rng.integers(left, right - image_size + 1, per_image)
        crops += [
            photo[t : t + image_size, x : x + image_size] for t, x in zip(tops, lefts, strict=True)
        ]
        labels += [label] * per_image
    return ArraySource(
        np.stack(crops),
        np.asarray(labels, np.int32),
        name="skimage_samples",
        class_names=SAMPLE_IMAGES,
    )


@register("skimage_samples")
def skimage_samples_from_cfg(cfg, split: str) -> ArraySource:
    """SOURCES entry: config.data.{image_size, short_side, per_image, test_per_image, seed}."""
    per_image = (
        config_field(cfg, "per_image", 1000)
        if split == "train"
        else config_field(cfg, "test_per_image", 250)
    )
    return skimage_samples(
        split,
        image_size=int(config_field(cfg, "image_size", 32) or 32),
        short_side=int(config_field(cfg, "short_side", 160) or 160),
        per_image=int(per_image),
        seed=int(config_field(cfg, "sample_seed", 0) or 0),
    )
