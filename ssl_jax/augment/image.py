"""SimCLR/BYOL image augmentation, run per example on the accelerator inside the jitted train step.

The host ships uint8 batches [B, H, W, C]; `augment_batch` turns one into a normalized float32 view,
seeding example i with `fold_in(rng, example_ids[i])`, so an example's view depends only on the step
rng and its global index, never on the device or batch position it lands on. This module owns the
geometric ops (crop, flip), `ViewSpec` (the static, hashable description of one view's pipeline),
the pipeline itself, and `preprocess_eval`, the deterministic eval transform.
"""

import dataclasses
import inspect
import itertools
import math
from collections.abc import Mapping
from typing import Any

import jax
import jax.numpy as jnp

from ssl_jax.augment.photometric import (
    BLUR_DRAWS,
    COIN_DRAWS,
    JITTER_DRAWS,
    color_jitter_from_uniforms,
    draw_uniforms,
    gaussian_blur_from_uniforms,
    grayscale_from_uniforms,
    solarize_from_uniforms,
)

FASHION_MNIST_MEAN = (0.2860,)
FASHION_MNIST_STD = (0.3530,)
CIFAR10_MEAN = (0.4914, 0.4822, 0.4465)
CIFAR10_STD = (0.2470, 0.2435, 0.2616)
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

# RandomResizedCrop draws this many candidate boxes before falling back to the central crop.
_CROP_TRIES = 10
CROP_DRAWS = 2 * _CROP_TRIES + 2  # area and log-ratio per try, then top and left


def crop_box_from_uniforms(
    u: jax.Array,
    height: int,
    width: int,
    *,
    scale: tuple[float, float] = (0.08, 1.0),
    ratio: tuple[float, float] = (3 / 4, 4 / 3),
) -> tuple[jax.Array, jax.Array, jax.Array, jax.Array]:
    """`sample_crop_box` driven by CROP_DRAWS uniforms `u` instead of a key."""
    area = height * width
    target_area = area * (scale[0] + (scale[1] - scale[0]) * u[:_CROP_TRIES])
    log_lo, log_hi = math.log(ratio[0]), math.log(ratio[1])
    aspect = jnp.exp(log_lo + (log_hi - log_lo) * u[_CROP_TRIES : 2 * _CROP_TRIES])
    ws = jnp.round(jnp.sqrt(target_area * aspect)).astype(jnp.int32)
    hs = jnp.round(jnp.sqrt(target_area / aspect)).astype(jnp.int32)
    valid = (ws > 0) & (ws <= width) & (hs > 0) & (hs <= height)

    # The fallback depends only on static shapes, so it is computed in Python.
    in_ratio = width / height
    if in_ratio < min(ratio):
        fb_w, fb_h = width, int(round(width / min(ratio)))
    elif in_ratio > max(ratio):
        fb_w, fb_h = int(round(height * max(ratio))), height
    else:
        fb_w, fb_h = width, height

    first = jnp.argmax(valid)  # argmax returns the first True
    any_valid = valid[first]
    h = jnp.where(any_valid, hs[first], fb_h)
    w = jnp.where(any_valid, ws[first], fb_w)
    # randint(0, height - h + 1) as the floor of a scaled uniform (u < 1, so it stays in range).
    top_rand = jnp.floor(u[2 * _CROP_TRIES] * (height - h + 1)).astype(jnp.int32)
    left_rand = jnp.floor(u[2 * _CROP_TRIES + 1] * (width - w + 1)).astype(jnp.int32)
    top = jnp.where(any_valid, jnp.minimum(top_rand, height - h), (height - fb_h) // 2)
    left = jnp.where(any_valid, jnp.minimum(left_rand, width - w), (width - fb_w) // 2)
    return top, left, h, w


def sample_crop_box(
    key: jax.Array,
    height: int,
    width: int,
    *,
    scale: tuple[float, float] = (0.08, 1.0),
    ratio: tuple[float, float] = (3 / 4, 4 / 3),
) -> tuple[jax.Array, jax.Array, jax.Array, jax.Array]:
    """torchvision's `RandomResizedCrop.get_params`: returns int32 scalars (top, left, h, w).

    The area fraction is uniform in `scale`, the aspect ratio log-uniform in `ratio`; the 10 tries
    are drawn at once and the first valid box wins; when none is valid the central crop, clamped to
    `ratio`, is used, exactly as torchvision does.
    """
    u = draw_uniforms(key, CROP_DRAWS)
    return crop_box_from_uniforms(u, height, width, scale=scale, ratio=ratio)


def random_resized_crop_from_uniforms(
    u: jax.Array,
    image: jax.Array,
    *,
    out_size: tuple[int, int],
    scale: tuple[float, float] = (0.08, 1.0),
    ratio: tuple[float, float] = (3 / 4, 4 / 3),
) -> jax.Array:
    """`random_resized_crop` driven by CROP_DRAWS uniforms `u` instead of a key."""
    height, width, channels = image.shape
    top, left, h, w = crop_box_from_uniforms(u, height, width, scale=scale, ratio=ratio)
    out_h, out_w = out_size
    # scale_and_translate maps input coordinate x to output coordinate x * s + t (pixel edges at
    # integers), so the box [top, top + h) lands on [0, out_h) with s = out_h / h and t = -top * s.
    s = jnp.stack([out_h / h, out_w / w]).astype(jnp.float32)
    t = -jnp.stack([top, left]).astype(jnp.float32) * s
    resized = jax.image.scale_and_translate(
        image, (out_h, out_w, channels), (0, 1), s, t, method="linear", antialias=True
    )
    # The normalized filter weights can overshoot [0, 1] by a rounding error.
    return jnp.clip(resized, 0.0, 1.0)


def random_resized_crop(
    key: jax.Array,
    image: jax.Array,
    *,
    out_size: tuple[int, int],
    scale: tuple[float, float] = (0.08, 1.0),
    ratio: tuple[float, float] = (3 / 4, 4 / 3),
) -> jax.Array:
    """torchvision's RandomResizedCrop on one image [H, W, C] -> [out_h, out_w, C].

    Crop and antialiased bilinear resize are one `scale_and_translate` resampling, so the box can
    be traced. Unlike crop-then-resize, the filter may read a pixel or two beyond the box's edge
    (inside the image), which is immaterial for augmentation.
    """
    u = draw_uniforms(key, CROP_DRAWS)
    return random_resized_crop_from_uniforms(u, image, out_size=out_size, scale=scale, ratio=ratio)


def flip_from_uniforms(u: jax.Array, image: jax.Array, *, p: float = 0.5) -> jax.Array:
    """`horizontal_flip` driven by one uniform `u[0]`."""
    return jnp.where(u[0] < p, image[:, ::-1], image)


def horizontal_flip(key: jax.Array, image: jax.Array, *, p: float = 0.5) -> jax.Array:
    """With probability p, mirrors the image [H, W, C] left to right."""
    return flip_from_uniforms(draw_uniforms(key, COIN_DRAWS), image, p=p)


def blur_kernel_size(image_size: int) -> int:
    """SimCLR's kernel: 10% of the side, made odd (radius = side // 20), e.g. 23 for 224."""
    return 2 * ((image_size // 10) // 2) + 1


def _default_stats(image_size: int, channels: int) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Mean/std by image kind: Fashion-MNIST for 1 channel, CIFAR-10 up to 32px, else ImageNet."""
    if channels == 1:
        return FASHION_MNIST_MEAN, FASHION_MNIST_STD
    if image_size <= 32:
        return CIFAR10_MEAN, CIFAR10_STD
    return IMAGENET_MEAN, IMAGENET_STD


@dataclasses.dataclass(frozen=True)
class ViewSpec:
    """One view's pipeline: crop, flip, colour jitter, grayscale, blur, solarize, normalize.

    Frozen and hashable, so it can be a static argument of `jax.jit`. Ops with probability 0 are
    left out of the traced program. `blur_kernel_size=None` means ~10% of `crop_size`.
    `host_cropped=True` skips the random resized crop: the images are that view already, cropped
    on the host from the photograph (`ssl_jax.data.photos`) with this spec's crop_size,
    crop_scale and crop_ratio; the other ops draw the same uniforms as with the crop on.
    """

    crop_size: int
    crop_scale: tuple[float, float] = (0.08, 1.0)
    crop_ratio: tuple[float, float] = (3 / 4, 4 / 3)
    flip_prob: float = 0.5
    brightness: float = 0.0
    contrast: float = 0.0
    saturation: float = 0.0
    hue: float = 0.0
    jitter_prob: float = 0.8
    grayscale_prob: float = 0.0
    blur_prob: float = 0.0
    blur_sigma: tuple[float, float] = (0.1, 2.0)
    blur_kernel_size: int | None = None
    solarize_prob: float = 0.0
    solarize_threshold: float = 0.5
    mean: tuple[float, ...] = (0.0,)
    std: tuple[float, ...] = (1.0,)
    host_cropped: bool = False

    def __post_init__(self):
        # Configs hand over lists; tuples keep the spec hashable.
        for name in ("crop_scale", "crop_ratio", "blur_sigma", "mean", "std"):
            object.__setattr__(self, name, tuple(float(v) for v in getattr(self, name)))
        for name in ("flip_prob", "jitter_prob", "grayscale_prob", "blur_prob", "solarize_prob"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"{name} must be in [0, 1], got {getattr(self, name)}")
        if len(self.mean) != len(self.std):
            raise ValueError(f"mean {self.mean} and std {self.std} differ in length")

    @property
    def kernel_size(self) -> int:
        """The blur kernel size actually used."""
        if self.blur_kernel_size is None:
            return blur_kernel_size(self.crop_size)
        return self.blur_kernel_size

    @classmethod
    def simclr(
        cls,
        image_size: int,
        channels: int = 3,
        *,
        strength: float | None = None,
        mean: tuple[float, ...] | None = None,
        std: tuple[float, ...] | None = None,
    ) -> "ViewSpec":
        """SimCLR (Chen et al. 2020, App. A): jitter strength s = 0.5 below 96px (CIFAR) else 1.0,
        brightness = contrast = saturation = 0.8 s, hue = 0.2 s, p = 0.8; grayscale p = 0.2;
        blur p = 0.5 only from 96px up (SimCLR skips it on CIFAR); no solarize.
        """
        s = strength if strength is not None else (0.5 if image_size < 96 else 1.0)
        default_mean, default_std = _default_stats(image_size, channels)
        return cls(
            crop_size=image_size,
            brightness=0.8 * s,
            contrast=0.8 * s,
            saturation=0.8 * s,
            hue=0.2 * s,
            jitter_prob=0.8,
            grayscale_prob=0.2,
            blur_prob=0.5 if image_size >= 96 else 0.0,
            mean=mean or default_mean,
            std=std or default_std,
        )

    @classmethod
    def byol(
        cls,
        image_size: int,
        channels: int = 3,
        view: int = 0,
        *,
        mean: tuple[float, ...] | None = None,
        std: tuple[float, ...] | None = None,
    ) -> "ViewSpec":
        """BYOL's asymmetric pair (Grill et al. 2020, Table 6): view 0 always blurs and never
        solarizes, view 1 blurs with p = 0.1 and solarizes with p = 0.2; both jitter brightness,
        contrast, saturation, hue = 0.4, 0.4, 0.2, 0.1 with p = 0.8 and gray with p = 0.2.
        """
        if view not in (0, 1):
            raise ValueError(f"BYOL has views 0 and 1, got {view}")
        default_mean, default_std = _default_stats(image_size, channels)
        return cls(
            crop_size=image_size,
            brightness=0.4,
            contrast=0.4,
            saturation=0.2,
            hue=0.1,
            jitter_prob=0.8,
            grayscale_prob=0.2,
            blur_prob=(1.0, 0.1)[view],
            solarize_prob=(0.0, 0.2)[view],
            mean=mean or default_mean,
            std=std or default_std,
        )

    @classmethod
    def from_config(cls, cfg: Mapping[str, Any]) -> "ViewSpec":
        """Builds a spec from a ConfigDict or dict. `preset` names a preset ("simclr", "byol", or
        None for the bare defaults); keys naming the preset's arguments (image_size, channels,
        view, ...) are passed to it, and every other key overrides the field of that name.
        """
        fields = dict(cfg.to_dict() if hasattr(cfg, "to_dict") else cfg)
        preset = fields.pop("preset", None)
        if preset is None:
            return cls(**fields)
        if preset not in ("simclr", "byol"):
            raise ValueError(f"unknown ViewSpec preset {preset!r}; expected 'simclr' or 'byol'")
        factory = getattr(cls, preset)
        args = {k: fields.pop(k) for k in inspect.signature(factory).parameters if k in fields}
        unknown = set(fields) - {f.name for f in dataclasses.fields(cls)}
        if unknown:
            raise ValueError(f"unknown ViewSpec fields {sorted(unknown)}")
        return dataclasses.replace(factory(**args), **fields)


# How many uniforms each op takes from an example's single draw, in order. The slots are fixed, so
# switching one op off does not change another's randomness.
_PIPELINE_DRAWS = {
    "crop": CROP_DRAWS,
    "flip": COIN_DRAWS,
    "jitter": JITTER_DRAWS,
    "gray": COIN_DRAWS,
    "blur": BLUR_DRAWS,
    "solarize": COIN_DRAWS,
}
_PIPELINE_SLOTS = {
    name: slice(end - n, end)
    for (name, n), end in zip(
        _PIPELINE_DRAWS.items(), itertools.accumulate(_PIPELINE_DRAWS.values()), strict=True
    )
}


def augment_image(key: jax.Array, image: jax.Array, spec: ViewSpec) -> jax.Array:
    """Applies `spec`'s random ops to one float image [H, W, C] in [0, 1] -> [s, s, C] in [0, 1].

    All of the example's randomness comes from one `draw_uniforms(key, ...)`, so the pipeline's
    streams differ from calling the keyed ops one by one, but the distributions are the same.
    """
    u_all = draw_uniforms(key, sum(_PIPELINE_DRAWS.values()))
    u = {name: u_all[slot] for name, slot in _PIPELINE_SLOTS.items()}
    if spec.host_cropped:
        if image.shape[:2] != (spec.crop_size, spec.crop_size):
            raise ValueError(
                f"a host-cropped view must be {spec.crop_size}x{spec.crop_size}; got "
                f"{image.shape[0]}x{image.shape[1]}"
            )
        x = image
    else:
        x = random_resized_crop_from_uniforms(
            u["crop"],
            image,
            out_size=(spec.crop_size, spec.crop_size),
            scale=spec.crop_scale,
            ratio=spec.crop_ratio,
        )
    if spec.flip_prob > 0:
        x = flip_from_uniforms(u["flip"], x, p=spec.flip_prob)
    if spec.jitter_prob > 0:
        x = color_jitter_from_uniforms(
            u["jitter"],
            x,
            brightness=spec.brightness,
            contrast=spec.contrast,
            saturation=spec.saturation,
            hue=spec.hue,
            p=spec.jitter_prob,
        )
    if spec.grayscale_prob > 0:
        x = grayscale_from_uniforms(u["gray"], x, p=spec.grayscale_prob)
    if spec.blur_prob > 0:
        x = gaussian_blur_from_uniforms(
            u["blur"], x, p=spec.blur_prob, sigma=spec.blur_sigma, kernel_size=spec.kernel_size
        )
    if spec.solarize_prob > 0:
        x = solarize_from_uniforms(
            u["solarize"], x, p=spec.solarize_prob, threshold=spec.solarize_threshold
        )
    return x


def normalize(images: jax.Array, mean: tuple[float, ...], std: tuple[float, ...]) -> jax.Array:
    """(images - mean) / std over the last (channel) axis; mean/std have length 1 or C."""
    channels = images.shape[-1]
    if len(mean) not in (1, channels) or len(std) not in (1, channels):
        raise ValueError(f"mean/std of length {len(mean)}/{len(std)} for {channels} channels")
    return (images - jnp.asarray(mean, jnp.float32)) / jnp.asarray(std, jnp.float32)


def _to_unit_float(images: jax.Array) -> jax.Array:
    if images.dtype != jnp.uint8 or images.ndim != 4:
        raise TypeError(f"expected uint8 images [B, H, W, C], got {images.dtype} {images.shape}")
    return images.astype(jnp.float32) / 255.0


def augment_batch(
    rng: jax.Array, images_uint8: jax.Array, example_ids: jax.Array, spec: ViewSpec
) -> jax.Array:
    """One augmented, normalized view of a uint8 batch [B, H, W, C] -> float32 [B, s, s, C].

    Example i uses the key fold_in(rng, example_ids[i]), so its view depends only on rng and its
    global index. Make two views with two rngs, e.g. fold_in(rng, 0) and fold_in(rng, 1).
    """
    images = _to_unit_float(images_uint8)
    if example_ids.shape != images.shape[:1] or not jnp.issubdtype(example_ids.dtype, jnp.integer):
        raise ValueError(f"example_ids must be int [{images.shape[0]}], got {example_ids.shape}")
    keys = jax.vmap(jax.random.fold_in, in_axes=(None, 0))(rng, example_ids)
    views = jax.vmap(lambda k, x: augment_image(k, x, spec))(keys, images)
    return normalize(views, spec.mean, spec.std)


def preprocess_eval(
    images_uint8: jax.Array,
    *,
    image_size: int,
    mean: tuple[float, ...],
    std: tuple[float, ...],
    crop_fraction: float = 0.875,
) -> jax.Array:
    """Deterministic eval transform of a uint8 batch [B, H, W, C] -> float32 [B, S, S, C].

    Images at least S on both sides are resized so the shorter side is round(S / crop_fraction) and
    centre-cropped to S (torchvision's Resize(256) + CenterCrop(224) for ImageNet); smaller images
    are resized straight to S x S; images already S x S are only normalized.
    """
    images = _to_unit_float(images_uint8)
    batch, height, width, channels = images.shape
    if (height, width) == (image_size, image_size):
        return normalize(images, mean, std)
    if min(height, width) < image_size:
        resized = jax.image.resize(images, (batch, image_size, image_size, channels), "bilinear")
        return normalize(resized, mean, std)
    # torchvision Resize(int): shorter side -> short, longer side truncated proportionally.
    short = int(round(image_size / crop_fraction))
    if height <= width:
        new_h, new_w = short, int(short * width / height)
    else:
        new_h, new_w = int(short * height / width), short
    if (new_h, new_w) != (height, width):
        images = jax.image.resize(images, (batch, new_h, new_w, channels), "bilinear")
    top = int(round((new_h - image_size) / 2.0))
    left = int(round((new_w - image_size) / 2.0))
    cropped = images[:, top : top + image_size, left : left + image_size]
    return normalize(cropped, mean, std)
