"""Photometric augmentations on one float32 image [H, W, C] in [0, 1]: colour jitter, grayscale, solarize.

Every random op takes a PRNG key and a static probability, so it is jittable and vmappable: a coin flip
picks between the augmented and the original image with `jnp.where` (under vmap `lax.cond` would lower
to the same select). The deterministic `adjust_*` helpers follow torchvision's float-tensor semantics.
"""

import jax
import jax.numpy as jnp
from jax import lax

# ITU-R BT.601 luma weights, as PIL's "L" mode uses.
LUMA_WEIGHTS = (0.299, 0.587, 0.114)


def rgb_to_grayscale(image: jax.Array) -> jax.Array:
    """Luma of an RGB image [..., 3] -> [..., 1]; a 1-channel image is returned unchanged."""
    if image.shape[-1] == 1:
        return image
    weights = jnp.asarray(LUMA_WEIGHTS, image.dtype)
    return jnp.sum(image * weights, axis=-1, keepdims=True)


def rgb_to_hsv(image: jax.Array) -> jax.Array:
    """RGB [..., 3] in [0, 1] -> HSV [..., 3] in [0, 1], with `colorsys.rgb_to_hsv`'s conventions."""
    r, g, b = image[..., 0], image[..., 1], image[..., 2]
    maxc = jnp.max(image, axis=-1)
    minc = jnp.min(image, axis=-1)
    delta = maxc - minc
    gray = delta == 0
    # Gray pixels have no hue and zero saturation; substitute 1 for the zero divisors so nothing is NaN.
    s = jnp.where(gray, 0.0, delta / jnp.where(gray, 1.0, maxc))
    safe_delta = jnp.where(gray, 1.0, delta)
    rc = (maxc - r) / safe_delta
    gc = (maxc - g) / safe_delta
    bc = (maxc - b) / safe_delta
    h = jnp.where(maxc == r, bc - gc, jnp.where(maxc == g, 2.0 + rc - bc, 4.0 + gc - rc))
    h = jnp.where(gray, 0.0, jnp.mod(h / 6.0, 1.0))
    return jnp.stack([h, s, maxc], axis=-1)


def hsv_to_rgb(image: jax.Array) -> jax.Array:
    """HSV [..., 3] in [0, 1] -> RGB [..., 3] in [0, 1], the inverse of `rgb_to_hsv`."""
    h, s, v = image[..., 0], image[..., 1], image[..., 2]
    h6 = h * 6.0
    sector = jnp.floor(h6)
    f = h6 - sector
    sector = jnp.mod(sector.astype(jnp.int32), 6)
    p = v * (1.0 - s)
    q = v * (1.0 - s * f)
    t = v * (1.0 - s * (1.0 - f))
    # One row per hue sector (0..5), as in colorsys.hsv_to_rgb.
    table = {0: (v, t, p), 1: (q, v, p), 2: (p, v, t), 3: (p, q, v), 4: (t, p, v), 5: (v, p, q)}
    conds = [sector == i for i in range(6)]
    rgb = [jnp.select(conds, [table[i][ch] for i in range(6)]) for ch in range(3)]
    return jnp.clip(jnp.stack(rgb, axis=-1), 0.0, 1.0)


def _blend(image: jax.Array, other: jax.Array, factor: jax.Array) -> jax.Array:
    """torchvision's `_blend`: factor * image + (1 - factor) * other, clipped to [0, 1]."""
    return jnp.clip(factor * image + (1.0 - factor) * other, 0.0, 1.0)


def adjust_brightness(image: jax.Array, factor: jax.Array | float) -> jax.Array:
    """Scales intensities by `factor` (blend with black); factor 1 is the identity."""
    return _blend(image, jnp.zeros_like(image), factor)


def adjust_contrast(image: jax.Array, factor: jax.Array | float) -> jax.Array:
    """Blends with the image's mean grayscale value; factor 1 is the identity."""
    mean = jnp.mean(rgb_to_grayscale(image))
    return _blend(image, mean, factor)


def adjust_saturation(image: jax.Array, factor: jax.Array | float) -> jax.Array:
    """Blends with the image's grayscale version; factor 1 is the identity, 0 gives grayscale."""
    return _blend(image, rgb_to_grayscale(image), factor)


def adjust_hue(image: jax.Array, shift: jax.Array | float) -> jax.Array:
    """Rotates the hue by `shift` (a fraction of the colour circle, in [-0.5, 0.5]) in HSV space."""
    hsv = rgb_to_hsv(image)
    hue = jnp.mod(hsv[..., 0] + shift, 1.0)
    return hsv_to_rgb(hsv.at[..., 0].set(hue))


def color_jitter(
    key: jax.Array,
    image: jax.Array,
    *,
    brightness: float,
    contrast: float,
    saturation: float,
    hue: float,
    p: float = 0.8,
) -> jax.Array:
    """torchvision's `RandomApply([ColorJitter(b, c, s, h)], p)` on one image [H, W, C].

    Factors are uniform in [max(0, 1 - x), 1 + x] for brightness, contrast and saturation and the hue
    shift is uniform in [-hue, hue]; the active ops run in a random order per example. Saturation and
    hue are identities for 1-channel images. Ops with strength 0 are skipped at trace time.
    """
    if min(brightness, contrast, saturation, hue) < 0 or hue > 0.5:
        raise ValueError("jitter strengths must be >= 0 and hue <= 0.5")
    colour = image.shape[-1] == 3
    ranges = [
        (adjust_brightness, max(0.0, 1.0 - brightness), 1.0 + brightness, brightness > 0),
        (adjust_contrast, max(0.0, 1.0 - contrast), 1.0 + contrast, contrast > 0),
        (
            adjust_saturation,
            max(0.0, 1.0 - saturation),
            1.0 + saturation,
            colour and saturation > 0,
        ),
        (adjust_hue, -hue, hue, colour and hue > 0),
    ]
    active = [(fn, lo, hi) for fn, lo, hi, on in ranges if on]
    if not active or p <= 0:
        return image

    k_apply, k_order, k_factor = jax.random.split(key, 3)
    lo = jnp.asarray([a[1] for a in active], jnp.float32)
    hi = jnp.asarray([a[2] for a in active], jnp.float32)
    factors = jax.random.uniform(k_factor, (len(active),), minval=lo, maxval=hi)
    order = jax.random.permutation(k_order, len(active))

    # Each branch reads its own factor, so the same `factors` vector serves every position in the order.
    branches = [lambda x, f, i=i, fn=fn: fn(x, f[i]) for i, (fn, _, _) in enumerate(active)]
    jittered = image
    for step in range(len(active)):
        jittered = lax.switch(order[step], branches, jittered, factors)
    return jnp.where(jax.random.bernoulli(k_apply, p), jittered, image)


def random_grayscale(key: jax.Array, image: jax.Array, *, p: float = 0.2) -> jax.Array:
    """With probability p, replaces every channel by the luma (keeps C channels; identity for C=1)."""
    if image.shape[-1] == 1:
        return image
    gray = jnp.broadcast_to(rgb_to_grayscale(image), image.shape)
    return jnp.where(jax.random.bernoulli(key, p), gray, image)


def solarize(key: jax.Array, image: jax.Array, *, p: float, threshold: float = 0.5) -> jax.Array:
    """With probability p, inverts the pixels at or above `threshold` (x -> 1 - x), as in BYOL."""
    solarized = jnp.where(image >= threshold, 1.0 - image, image)
    return jnp.where(jax.random.bernoulli(key, p), solarized, image)
