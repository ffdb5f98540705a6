"""Tests for ssl_jax.augment: each op against NumPy / colorsys / PIL references, the pipeline's
determinism and per-example seeding, the ops' probabilities, ViewSpec presets and configs, and the
eval transform.

Shapes are tiny (16x16 images, a handful per batch) so the file stays CPU-fast.
"""

import colorsys
import dataclasses
import functools

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from ssl_jax import augment
from ssl_jax.augment import (
    CIFAR10_MEAN,
    FASHION_MNIST_MEAN,
    FASHION_MNIST_STD,
    IMAGENET_MEAN,
    ViewSpec,
)
from ssl_jax.augment.photometric import JITTER_DRAWS, color_jitter_from_uniforms

LUMA = np.array([0.299, 0.587, 0.114])

# One jitted entry point shared by the tests, so a (spec, shape) pair compiles once per session.
augment_batch_jit = jax.jit(augment.augment_batch, static_argnames="spec")


def _uint8_images(n, h=16, w=16, c=3, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (n, h, w, c), dtype=np.uint8)


def _float_images(n, h=16, w=16, c=3, seed=0):
    return np.random.default_rng(seed).uniform(0.0, 1.0, (n, h, w, c)).astype(np.float32)


def _keys(n, seed=0):
    return jax.random.split(jax.random.key(seed), n)


def _strong_spec():
    """Every op on and likely, unnormalized, so outputs are comparable with [0, 1]."""
    return ViewSpec(
        crop_size=12,
        brightness=0.8,
        contrast=0.8,
        saturation=0.8,
        hue=0.4,
        jitter_prob=0.9,
        grayscale_prob=0.5,
        blur_prob=0.5,
        blur_kernel_size=3,
        solarize_prob=0.5,
    )


# The full pipeline on 6 RGB 16x16 images, the only (spec, shape) it is ever called with: the tests
# that use it share one compile, and it raises if anything makes it trace a second time.
augment_strong_rgb = jax.jit(
    chex.assert_max_traces(augment.augment_batch, n=1), static_argnames="spec"
)


# --- the pipeline ---------------------------------------------------------------------------------


@pytest.mark.parametrize("channels", [1, 3])
def test_augment_batch_shape_dtype_and_range(channels):
    fn = augment_strong_rgb if channels == 3 else augment_batch_jit
    images = _uint8_images(6, c=channels)
    out = fn(jax.random.key(1), images, jnp.arange(6), spec=_strong_spec())
    assert out.shape == (6, 12, 12, channels) and out.dtype == jnp.float32
    assert float(out.min()) >= 0.0 and float(out.max()) <= 1.0
    assert float(out.std()) > 0.05


def test_same_rng_same_views_and_new_rng_new_views():
    images, ids = _uint8_images(6), jnp.arange(6)
    a = augment_strong_rgb(jax.random.key(0), images, ids, spec=_strong_spec())
    b = augment_strong_rgb(jax.random.key(0), images, ids, spec=_strong_spec())
    c = augment_strong_rgb(jax.random.key(1), images, ids, spec=_strong_spec())
    np.testing.assert_array_equal(a, b)
    assert not np.allclose(a, c)


def test_different_example_ids_give_different_crops():
    spec = ViewSpec(crop_size=16, flip_prob=0.0)  # crop only
    images = np.repeat(_uint8_images(1), 6, axis=0)
    out = np.asarray(augment_batch_jit(jax.random.key(0), images, jnp.arange(6), spec=spec))
    for i in range(6):
        for j in range(i + 1, 6):
            assert not np.allclose(out[i], out[j]), (i, j)


def test_views_depend_only_on_rng_and_example_id():
    """Permuting the batch permutes the views, and an example keeps its view in another batch
    (another device's share): what makes 1-device and 8-device runs identical."""
    spec = _strong_spec()
    images, ids = _uint8_images(9), jnp.arange(100, 109)
    rng = jax.random.key(3)
    full = np.asarray(augment_strong_rgb(rng, images[:6], ids[:6], spec=spec))
    perm = np.array([4, 2, 0, 5, 1, 3])
    permuted = augment_strong_rgb(rng, images[perm], ids[perm], spec=spec)
    np.testing.assert_allclose(permuted, full[perm], rtol=0, atol=1e-6)
    other = augment_strong_rgb(rng, images[3:], ids[3:], spec=spec)
    np.testing.assert_allclose(other[:3], full[3:], rtol=0, atol=1e-6)


def test_augment_batch_traces_once_for_a_fixed_shape():
    # New data, rngs and ids, and an equal spec built anew (same hash): no retrace, whichever test
    # traced `augment_strong_rgb` first.
    for seed in range(3):
        rng = jax.random.fold_in(jax.random.key(0), seed)
        ids = jnp.arange(6) + 6 * seed
        augment_strong_rgb(rng, _uint8_images(6, seed=seed), ids, spec=_strong_spec())
    with pytest.raises(AssertionError):  # the counter does fire on a second trace
        augment_strong_rgb(jax.random.key(0), _uint8_images(5), jnp.arange(5), spec=_strong_spec())


def test_augment_batch_normalizes_per_channel():
    """With an identity crop and no other op, the view is exactly (x / 255 - mean) / std."""
    mean, std = (0.4, 0.5, 0.6), (0.2, 0.25, 0.3)
    spec = ViewSpec(
        crop_size=16,
        crop_scale=(1.0, 1.0),
        crop_ratio=(1.0, 1.0),
        flip_prob=0.0,
        mean=mean,
        std=std,
    )
    images = _uint8_images(6)
    out = augment_batch_jit(jax.random.key(0), images, jnp.arange(6), spec=spec)
    expected = (images / 255.0 - np.array(mean)) / np.array(std)
    np.testing.assert_allclose(out, expected, atol=1e-5)


def test_augment_batch_rejects_bad_inputs():
    spec = ViewSpec.simclr(16, 3)
    with pytest.raises(TypeError, match="uint8"):
        augment.augment_batch(jax.random.key(0), _float_images(2), jnp.arange(2), spec)
    with pytest.raises(ValueError, match="example_ids"):
        augment.augment_batch(jax.random.key(0), _uint8_images(2), jnp.arange(3), spec)


def test_pipeline_coins_have_their_rates_and_are_independent():
    """Flip and grayscale at p = 0.3 each, and independent: catches two ops reading one uniform."""
    spec = ViewSpec(
        crop_size=4, crop_scale=(1.0, 1.0), crop_ratio=(1.0, 1.0), flip_prob=0.3, grayscale_prob=0.3
    )
    n = 4000
    image = _uint8_images(1, 4, 4, 3)
    batch = np.repeat(image, n, axis=0)
    out = np.asarray(augment_batch_jit(jax.random.key(5), batch, jnp.arange(n), spec=spec))
    x = image[0].astype(np.float64) / 255.0
    gray = np.all(np.abs(out - out[..., :1]) < 1e-6, axis=(1, 2, 3))
    # What each view would be unflipped: the image, or its luma where grayscale fired.
    base = np.where(gray[:, None, None, None], (x @ LUMA)[..., None], x)
    flipped = np.all(np.abs(out - base[:, :, ::-1]) < 1e-5, axis=(1, 2, 3))
    unflipped = np.all(np.abs(out - base) < 1e-5, axis=(1, 2, 3))
    assert np.all(flipped ^ unflipped)
    tol = 4 * np.sqrt(0.3 * 0.7 / n)
    assert abs(gray.mean() - 0.3) < tol and abs(flipped.mean() - 0.3) < tol
    assert abs((gray & flipped).mean() - 0.09) < 4 * np.sqrt(0.09 * 0.91 / n)


# --- geometric ops -------------------------------------------------------------------------------


def test_full_crop_is_identity():
    images = _float_images(4)
    crop = jax.jit(
        jax.vmap(
            functools.partial(
                augment.random_resized_crop, out_size=(16, 16), scale=(1.0, 1.0), ratio=(1.0, 1.0)
            )
        )
    )
    np.testing.assert_allclose(crop(_keys(4), images), images, atol=1e-6)


def test_host_cropped_view_skips_only_the_crop():
    """A host-cropped spec takes the images as the view; flip, jitter, grayscale, blur and
    solarize draw what they draw with the crop on (here a full-image crop, an identity)."""
    images = _uint8_images(6, h=12, w=12)
    full = dataclasses.replace(_strong_spec(), crop_scale=(1.0, 1.0), crop_ratio=(1.0, 1.0))
    on_host = dataclasses.replace(full, host_cropped=True)
    rng, ids = jax.random.key(1), jnp.arange(6)
    expected = augment_batch_jit(rng, images, ids, spec=full)
    np.testing.assert_allclose(
        augment_batch_jit(rng, images, ids, spec=on_host), expected, atol=1e-5
    )
    with pytest.raises(ValueError, match="host-cropped view must be 12x12"):
        augment.augment_batch(rng, _uint8_images(6), ids, on_host)


def test_crop_output_shape_and_range():
    crop = jax.jit(jax.vmap(functools.partial(augment.random_resized_crop, out_size=(12, 10))))
    out = crop(_keys(8), _float_images(8, 16, 16))
    assert out.shape == (8, 12, 10, 3) and out.dtype == jnp.float32
    assert float(out.min()) >= 0.0 and float(out.max()) <= 1.0


def test_impossible_crop_falls_back_to_central_crop():
    """An area 4x the image's never fits, so torchvision takes the central crop clamped to ratio."""
    image = _float_images(1, 16, 20)[0]
    crop = functools.partial(
        augment.random_resized_crop, out_size=(16, 16), scale=(4.0, 4.0), ratio=(1.0, 1.0)
    )
    out = jax.jit(crop)(jax.random.key(0), image)
    np.testing.assert_allclose(out, image[:, 2:18], atol=1e-6)


def test_crop_without_resize_is_the_sampled_slice():
    """Scale 1/4 and ratio 1 on 16x16 make an 8x8 box; at out_size 8 the crop is that very slice."""
    images = _float_images(6)
    keys = _keys(6, seed=2)
    kw = dict(scale=(0.25, 0.25), ratio=(1.0, 1.0))

    @jax.jit
    @jax.vmap
    def crop_and_box(key, image):
        crop = augment.random_resized_crop(key, image, out_size=(8, 8), **kw)
        return crop, augment.sample_crop_box(key, 16, 16, **kw)

    out, (tops, lefts, hs, ws) = jax.tree.map(np.asarray, crop_and_box(keys, images))
    assert np.all(hs == 8) and np.all(ws == 8)
    assert len(set(zip(tops.tolist(), lefts.tolist(), strict=True))) > 1
    for i in range(6):
        expected = images[i, tops[i] : tops[i] + 8, lefts[i] : lefts[i] + 8]
        np.testing.assert_allclose(out[i], expected, atol=1e-5)


@pytest.mark.parametrize(("ratio", "hw"), [((4.0, 4.0), (8, 32)), ((0.25, 0.25), (32, 8))])
def test_crop_box_aspect_is_width_over_height(ratio, hw):
    box = jax.jit(
        functools.partial(augment.sample_crop_box, scale=(0.25, 0.25), ratio=ratio),
        static_argnums=(1, 2),
    )
    top, left, h, w = box(jax.random.key(0), 32, 32)
    assert (int(h), int(w)) == hw
    assert 0 <= int(top) <= 32 - int(h) and 0 <= int(left) <= 32 - int(w)


def test_crop_boxes_follow_torchvision_ranges():
    n, height, width = 2000, 24, 32
    boxes = jax.jit(jax.vmap(lambda k: augment.sample_crop_box(k, height, width)))(_keys(n, 3))
    top, left, h, w = (np.asarray(b) for b in boxes)
    assert np.all((h >= 1) & (w >= 1) & (top >= 0) & (left >= 0))
    assert np.all((top + h <= height) & (left + w <= width))
    # Rounding h and w to integers moves the area and aspect by at most a pixel's worth.
    area = h * w / (height * width)
    assert area.min() >= 0.08 - 0.05 and area.max() <= 1.0
    aspect = w / h
    assert aspect.min() >= 0.75 * 0.85 and aspect.max() <= 4 / 3 * 1.15
    # Both offsets range over their whole span, not only the centre.
    assert top.min() == 0 and np.any(top + h == height)
    assert left.min() == 0 and np.any(left + w == width)
    assert 0.3 < area.mean() < 0.6  # U(0.08, 1) has mean 0.54; large boxes with skewed ratios fail


def test_flip_is_an_exact_mirror():
    image = _float_images(1)[0]
    np.testing.assert_array_equal(
        augment.horizontal_flip(jax.random.key(0), image, p=1.0), image[:, ::-1]
    )
    np.testing.assert_array_equal(augment.horizontal_flip(jax.random.key(0), image, p=0.0), image)


# --- photometric ops -----------------------------------------------------------------------------


def test_grayscale_has_equal_channels_and_keeps_luma():
    image = _float_images(1)[0]
    out = np.asarray(augment.random_grayscale(jax.random.key(0), image, p=1.0))
    expected = image.astype(np.float64) @ LUMA
    for c in range(3):
        np.testing.assert_allclose(out[..., c], expected, atol=1e-6)
    np.testing.assert_array_equal(augment.random_grayscale(jax.random.key(0), image, p=0.0), image)
    gray_image = _float_images(1, c=1)[0]
    np.testing.assert_array_equal(
        augment.random_grayscale(jax.random.key(0), gray_image, p=1.0), gray_image
    )


@pytest.mark.parametrize("threshold", [0.5, 0.3])
def test_solarize_inverts_exactly_the_pixels_above_threshold(threshold):
    image = _float_images(1)[0]
    out = augment.solarize(jax.random.key(0), image, p=1.0, threshold=threshold)
    np.testing.assert_array_equal(out, np.where(image >= threshold, 1.0 - image, image))
    np.testing.assert_array_equal(augment.solarize(jax.random.key(0), image, p=0.0), image)


def _edge_pixels():
    """Gray, black, white, primaries, ties between the max channels: the branches of rgb->hsv."""
    return np.array(
        [
            [0, 0, 0],
            [1, 1, 1],
            [0.5, 0.5, 0.5],
            [1, 0, 0],
            [0, 1, 0],
            [0, 0, 1],
            [1, 1, 0],
            [0, 1, 1],
            [1, 0, 1],
            [0.2, 0.8, 0.8],
            [0.8, 0.8, 0.2],
            [0.8, 0.2, 0.8],
            [0.3, 0.1, 0.2],
        ],
        np.float32,
    )


def test_rgb_hsv_conversions_match_colorsys():
    rng = np.random.default_rng(0)
    rgb = np.concatenate([_edge_pixels(), rng.uniform(size=(500, 3)).astype(np.float32)])
    to_hsv, to_rgb = jax.jit(augment.rgb_to_hsv), jax.jit(augment.hsv_to_rgb)
    hsv = np.asarray(to_hsv(rgb))
    expected = np.array([colorsys.rgb_to_hsv(*p) for p in rgb.astype(np.float64)])
    hue_gap = np.abs(hsv[:, 0] - expected[:, 0])  # hue is circular: 0.9999999 is close to 0
    np.testing.assert_allclose(np.minimum(hue_gap, 1.0 - hue_gap), 0.0, atol=1e-5)
    np.testing.assert_allclose(hsv[:, 1:], expected[:, 1:], atol=1e-6)

    hsv_in = rng.uniform(size=(500, 3)).astype(np.float32)
    expected_rgb = np.array([colorsys.hsv_to_rgb(*p) for p in hsv_in.astype(np.float64)])
    np.testing.assert_allclose(to_rgb(hsv_in), expected_rgb, atol=1e-5)
    np.testing.assert_allclose(to_rgb(to_hsv(rgb)), rgb, atol=1e-5)


def _hue_reference(image, shift):
    flat = image.reshape(-1, 3).astype(np.float64)
    out = []
    for p in flat:
        h, s, v = colorsys.rgb_to_hsv(*p)
        out.append(colorsys.hsv_to_rgb((h + shift) % 1.0, s, v))
    return np.array(out).reshape(image.shape)


def test_hue_shift_matches_colorsys_and_zero_is_identity():
    image = _float_images(1, 8, 8)[0]
    adjust_hue = jax.jit(augment.adjust_hue)
    np.testing.assert_allclose(adjust_hue(image, 0.0), image, atol=1e-6)
    for shift in (0.3, -0.2, 0.5):
        np.testing.assert_allclose(
            adjust_hue(image, shift), _hue_reference(image, shift), atol=1e-5
        )


def _blend_reference(name, image, factor):
    x = image.astype(np.float64)
    luma = x @ LUMA if x.shape[-1] == 3 else x[..., 0]
    partner = {"brightness": 0.0, "contrast": luma.mean(), "saturation": luma[..., None]}[name]
    return np.clip(factor * x + (1 - factor) * partner, 0.0, 1.0)


@pytest.mark.parametrize("name", ["brightness", "contrast", "saturation"])
def test_blend_ops_match_numpy_and_factor_one_is_identity(name):
    fn = jax.jit(getattr(augment, f"adjust_{name}"))
    image = _float_images(1)[0]
    np.testing.assert_array_equal(fn(image, 1.0), image)
    for factor in (0.0, 0.4, 1.7):
        np.testing.assert_allclose(
            fn(image, factor), _blend_reference(name, image, factor), atol=1e-6
        )


def _jitter_reference(image, u, strengths):
    """torchvision's ColorJitter with the order and factors that `u` encodes, in NumPy."""
    names = ["brightness", "contrast", "saturation", "hue"]
    if image.shape[-1] == 1:
        names = names[:2]
    n = len(names)
    order = np.argsort(u[1 : 1 + n])
    x = image.astype(np.float64)
    for i in order:
        s = strengths[names[i]]
        lo, hi = (-s, s) if names[i] == "hue" else (max(0.0, 1.0 - s), 1.0 + s)
        factor = lo + (hi - lo) * u[5 + i]
        if names[i] == "hue":
            x = _hue_reference(x, factor)
        else:
            x = _blend_reference(names[i], x, factor)
    return x


@pytest.mark.parametrize("channels", [3, 1])
def test_color_jitter_applies_the_sampled_ops_in_the_sampled_order(channels):
    # Strong factors clip, so the order matters and a wrong order shows.
    strengths = dict(brightness=0.9, contrast=0.9, saturation=0.9, hue=0.4)
    jitter = jax.jit(functools.partial(color_jitter_from_uniforms, p=1.0, **strengths))
    image = _float_images(1, 8, 8, channels, seed=4)[0]
    rng = np.random.default_rng(1)
    for _ in range(6):
        u = rng.uniform(size=JITTER_DRAWS).astype(np.float32)
        out = np.asarray(jitter(u, image))
        np.testing.assert_allclose(out, _jitter_reference(image, u, strengths), atol=1e-5)
    # Same factors, reversed order: a different image (bright x1.85 and contrast x0.28 clip).
    u = np.array([0.1, 0.1, 0.2, 0.3, 0.4, 0.95, 0.1, 0.9, 0.8], np.float32)
    u_reversed = u.copy()
    u_reversed[1:5] = 1.0 - u[1:5]
    assert not np.allclose(jitter(u, image), jitter(u_reversed, image), atol=1e-3)


def test_color_jitter_brightness_factor_range():
    """Brightness 0.5 alone on a dark image (no clipping): out = f * in with f in [0.5, 1.5]."""
    image = _float_images(1, 4, 4)[0] * 0.5
    jitter = jax.jit(
        jax.vmap(
            functools.partial(
                augment.color_jitter, brightness=0.5, contrast=0.0, saturation=0.0, hue=0.0, p=1.0
            ),
            in_axes=(0, None),
        )
    )
    out = np.asarray(jitter(_keys(500), image))
    factors = out / image
    np.testing.assert_allclose(factors, factors[:, :1, :1, :1] * np.ones_like(factors), rtol=1e-5)
    f = factors[:, 0, 0, 0]
    assert f.min() >= 0.5 - 1e-6 and f.max() <= 1.5 + 1e-6
    assert f.min() < 0.55 and f.max() > 1.45 and abs(f.mean() - 1.0) < 0.05


def _blur_reference(image, sigma, kernel_size):
    r = kernel_size // 2
    taps = np.exp(-0.5 * (np.arange(-r, r + 1) / sigma) ** 2)
    taps /= taps.sum()
    padded = np.pad(image.astype(np.float64), ((r, r), (r, r), (0, 0)), mode="reflect")
    h, w, _ = image.shape
    rows = sum(taps[i] * padded[i : i + h] for i in range(kernel_size))
    return sum(taps[i] * rows[:, i : i + w] for i in range(kernel_size))


def test_gaussian_blur():
    blur = jax.jit(augment.gaussian_blur, static_argnames=("p", "sigma", "kernel_size"))
    key = jax.random.key(0)
    constant = np.full((16, 16, 3), 0.37, np.float32)
    np.testing.assert_allclose(blur(key, constant, p=1.0, kernel_size=5), constant, atol=1e-6)

    noise = _float_images(1)[0]
    blurred = np.asarray(blur(key, noise, p=1.0, sigma=(1.0, 1.0), kernel_size=5))
    assert blurred.var() < 0.5 * noise.var()
    np.testing.assert_allclose(blurred, _blur_reference(noise, 1.0, 5), atol=1e-6)

    # The widest kernel allowed, radius = side - 1, reflects off both edges of an 8x8 image.
    small = noise[:8, :8]
    wide = blur(key, small, p=1.0, sigma=(3.0, 3.0), kernel_size=15)
    np.testing.assert_allclose(wide, _blur_reference(small, 3.0, 15), atol=1e-6)

    np.testing.assert_array_equal(blur(key, noise, p=0.0, kernel_size=5), noise)
    np.testing.assert_array_equal(blur(key, noise, p=1.0, kernel_size=1), noise)
    with pytest.raises(ValueError, match="odd"):
        augment.gaussian_blur(key, noise, p=1.0, kernel_size=4)
    with pytest.raises(ValueError, match="too large"):
        augment.gaussian_blur(key, small, p=1.0, kernel_size=17)


_RATE_OPS = {
    "flip": lambda k, x: augment.horizontal_flip(k, x, p=0.3),
    "grayscale": lambda k, x: augment.random_grayscale(k, x, p=0.3),
    "solarize": lambda k, x: augment.solarize(k, x, p=0.3),
    "blur": lambda k, x: augment.gaussian_blur(k, x, p=0.3, kernel_size=3),
    "jitter": lambda k, x: augment.color_jitter(
        k, x, brightness=0.4, contrast=0.4, saturation=0.4, hue=0.1, p=0.3
    ),
}


@pytest.mark.parametrize("name", sorted(_RATE_OPS))
def test_application_rate_matches_p(name):
    n = 4000
    image = _float_images(1, 4, 4, seed=7)[0] * 0.4 + 0.55  # asymmetric, coloured, above 0.5
    out = jax.jit(jax.vmap(_RATE_OPS[name], in_axes=(0, None)))(_keys(n, seed=11), image)
    assert out.shape == (n, *image.shape) and out.dtype == jnp.float32
    assert float(out.min()) >= 0.0 and float(out.max()) <= 1.0
    applied = np.any(np.abs(np.asarray(out) - image) > 1e-6, axis=(1, 2, 3))
    assert abs(applied.mean() - 0.3) < 4 * np.sqrt(0.3 * 0.7 / n)


# --- ViewSpec ------------------------------------------------------------------------------------


def test_simclr_presets():
    cifar = ViewSpec.simclr(32, 3)
    assert (cifar.brightness, cifar.contrast, cifar.saturation) == pytest.approx((0.4, 0.4, 0.4))
    assert cifar.hue == pytest.approx(0.1) and cifar.jitter_prob == 0.8
    assert cifar.grayscale_prob == 0.2 and cifar.blur_prob == 0.0 and cifar.solarize_prob == 0.0
    assert cifar.mean == CIFAR10_MEAN and cifar.crop_scale == (0.08, 1.0)

    imagenet = ViewSpec.simclr(224, 3)
    assert imagenet.brightness == pytest.approx(0.8) and imagenet.hue == pytest.approx(0.2)
    assert imagenet.blur_prob == 0.5 and imagenet.kernel_size == 23
    assert imagenet.mean == IMAGENET_MEAN

    fmnist = ViewSpec.simclr(28, 1)
    assert fmnist.mean == FASHION_MNIST_MEAN and fmnist.std == FASHION_MNIST_STD


def test_byol_presets_are_asymmetric():
    v0, v1 = ViewSpec.byol(224, 3, 0), ViewSpec.byol(224, 3, 1)
    assert (v0.blur_prob, v1.blur_prob) == (1.0, 0.1)
    assert (v0.solarize_prob, v1.solarize_prob) == (0.0, 0.2)
    for v in (v0, v1):
        assert (v.brightness, v.contrast, v.saturation, v.hue) == (0.4, 0.4, 0.2, 0.1)
        assert v.jitter_prob == 0.8 and v.grayscale_prob == 0.2
    with pytest.raises(ValueError):
        ViewSpec.byol(224, 3, 2)


def test_view_spec_from_config_and_hashing():
    ml_collections = pytest.importorskip("ml_collections")  # absent on some accelerator images
    cfg = ml_collections.ConfigDict(
        dict(preset="simclr", image_size=32, channels=3, blur_prob=0.5, mean=[0.5, 0.5, 0.5])
    )
    spec = ViewSpec.from_config(cfg)
    assert spec.blur_prob == 0.5 and spec.mean == (0.5, 0.5, 0.5)
    assert spec.brightness == pytest.approx(0.4)  # the preset's value where not overridden
    assert spec == ViewSpec.from_config(cfg) and hash(spec) == hash(ViewSpec.from_config(cfg))
    assert spec != ViewSpec.simclr(32, 3)

    byol = ViewSpec.from_config(
        {"preset": "byol", "image_size": 96, "view": 1, "solarize_prob": 0.3}
    )
    assert byol.blur_prob == 0.1 and byol.solarize_prob == 0.3 and byol.crop_size == 96
    assert ViewSpec.from_config({"crop_size": 8}) == ViewSpec(crop_size=8)
    with pytest.raises(ValueError, match="unknown ViewSpec fields"):
        ViewSpec.from_config({"preset": "simclr", "image_size": 32, "blurr_prob": 0.5})
    with pytest.raises(ValueError, match="preset"):
        ViewSpec.from_config({"preset": "moco", "image_size": 32})
    with pytest.raises(ValueError, match="flip_prob"):
        ViewSpec(crop_size=8, flip_prob=1.5)


# --- eval transform ------------------------------------------------------------------------------


def _pil_resize(image, height, width):
    """Float bilinear resize, channel by channel, with PIL (antialiased when shrinking)."""
    image_module = pytest.importorskip("PIL.Image")
    channels = [
        np.asarray(image_module.fromarray(image[..., c], mode="F").resize((width, height), 2))
        for c in range(image.shape[-1])
    ]  # 2 is PIL's BILINEAR
    return np.stack(channels, axis=-1)


def test_preprocess_eval():
    def evaluate(images, **kw):
        static = ("image_size", "mean", "std", "crop_fraction")
        return np.asarray(jax.jit(augment.preprocess_eval, static_argnames=static)(images, **kw))

    images = _uint8_images(2, 16, 16)
    unit = images.astype(np.float32) / 255.0
    same = evaluate(images, image_size=16, mean=CIFAR10_MEAN, std=(0.25, 0.25, 0.25))
    np.testing.assert_allclose(same, (unit - np.array(CIFAR10_MEAN)) / 0.25, atol=1e-5)
    plain = dict(mean=(0.0,), std=(1.0,))

    # Larger: no resize needed at crop_fraction 1, so it is a pure centre crop.
    wide = _uint8_images(2, 16, 20)
    cropped = evaluate(wide, image_size=16, crop_fraction=1.0, **plain)
    np.testing.assert_allclose(cropped, wide[:, :, 2:18] / 255.0, atol=1e-6)

    # ImageNet-style: 40x48 -> shorter side round(32 / 0.875) = 37, i.e. 37x44, centre crop 32.
    big = _uint8_images(1, 40, 48, seed=1)
    expected = _pil_resize(big[0] / np.float32(255.0), 37, 44)[2:34, 6:38]
    np.testing.assert_allclose(evaluate(big, image_size=32, **plain)[0], expected, atol=1e-5)

    # Smaller: a straight resize to 32x32.
    small = _uint8_images(1, 12, 12, seed=2)
    expected = _pil_resize(small[0] / np.float32(255.0), 32, 32)
    np.testing.assert_allclose(evaluate(small, image_size=32, **plain)[0], expected, atol=1e-5)
