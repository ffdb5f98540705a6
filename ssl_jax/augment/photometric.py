"""Photometric augmentations of one float32 image [H, W, C] in [0, 1]: colour jitter, grayscale,
Gaussian blur, solarize, and the RGB <-> HSV conversions behind the hue shift.

Every random op takes a PRNG key and static knobs, so it is jittable and vmappable: a coin flip
picks the augmented or the original image with `jnp.where` (under vmap `lax.cond` lowers to the
same select). Each op also has a `*_from_uniforms` form that the pipeline in `image.py` feeds from
one shared draw. The deterministic `adjust_*` helpers follow torchvision's float-tensor semantics.
"""

import jax
import jax.numpy as jnp

# ITU-R BT.601 luma weights, as PIL's "L" mode uses.
LUMA_WEIGHTS = (0.299, 0.587, 0.114)

# XLA:CPU compiles a vmapped threefry over a multiple of 16 values several times faster than over,
# say, 10 (measured here: ~0.5 s against 1.5-4 s per call), so draws are padded to a multiple of
# this; the unused tail costs nothing measurable.
_DRAW_ALIGN = 16

JITTER_DRAWS = 9  # apply coin, 4 order keys, 4 factors
BLUR_DRAWS = 2  # apply coin, sigma
COIN_DRAWS = 1


def draw_uniforms(key: jax.Array, n: int) -> jax.Array:
    """n float32 uniforms in [0, 1) from one threefry call: all of an op's randomness at once."""
    padded = -(-n // _DRAW_ALIGN) * _DRAW_ALIGN
    return jax.random.uniform(key, (padded,))[:n]


def rgb_to_grayscale(image: jax.Array) -> jax.Array:
    """Luma of an RGB image [..., 3] -> [..., 1]; a 1-channel image is returned unchanged."""
    if image.shape[-1] == 1:
        return image
    # Written out rather than as a sum over the channel axis: XLA:CPU runs a size-3 minor-axis
    # reduction ~30x slower than this fused elementwise expression.
    wr, wg, wb = LUMA_WEIGHTS
    return wr * image[..., 0:1] + wg * image[..., 1:2] + wb * image[..., 2:3]


def rgb_to_hsv(image: jax.Array) -> jax.Array:
    """RGB [..., 3] in [0, 1] -> HSV [..., 3] in [0, 1], following `colorsys.rgb_to_hsv`."""
    r, g, b = image[..., 0], image[..., 1], image[..., 2]
    maxc = jnp.maximum(jnp.maximum(r, g), b)
    minc = jnp.minimum(jnp.minimum(r, g), b)
    delta = maxc - minc
    gray = delta == 0
    # Gray pixels have no hue and no saturation; dividing by 1 instead of 0 keeps NaNs out.
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
    # colorsys.hsv_to_rgb's table, sectors 0..5: r = v q p p t v, g = t v v q p p, b = p p t v v q.
    # Nested wheres run ~3x faster than jnp.select on XLA:CPU.
    r = jnp.where(sector == 0, v, jnp.where(sector == 1, q, jnp.where(sector <= 3, p, t)))
    r = jnp.where(sector == 5, v, r)
    g = jnp.where(sector == 0, t, jnp.where(sector <= 2, v, jnp.where(sector == 3, q, p)))
    b = jnp.where(sector <= 1, p, jnp.where(sector == 2, t, jnp.where(sector <= 4, v, q)))
    return jnp.clip(jnp.stack([r, g, b], axis=-1), 0.0, 1.0)


def _blend(image: jax.Array, other: jax.Array, factor: jax.Array) -> jax.Array:
    """torchvision's `_blend`: factor * image + (1 - factor) * other, clipped to [0, 1]."""
    return jnp.clip(factor * image + (1.0 - factor) * other, 0.0, 1.0)


def adjust_brightness(image: jax.Array, factor: jax.Array | float) -> jax.Array:
    """Scales intensities by `factor` (blend with black); factor 1 is the identity."""
    return _blend(image, jnp.zeros_like(image), factor)


def _mean_luma(image: jax.Array) -> jax.Array:
    """Mean grayscale value of [H, W, C] as [1, 1, 1]."""
    # The luma of the channel means: XLA:CPU reduces a [H, W, 1] luma image far more slowly.
    return rgb_to_grayscale(jnp.mean(image, axis=(-3, -2), keepdims=True))


def adjust_contrast(image: jax.Array, factor: jax.Array | float) -> jax.Array:
    """Blends with the image's mean grayscale value; factor 1 is the identity."""
    return _blend(image, _mean_luma(image), factor)


def adjust_saturation(image: jax.Array, factor: jax.Array | float) -> jax.Array:
    """Blends with the image's grayscale version; factor 1 is the identity, 0 gives grayscale."""
    return _blend(image, rgb_to_grayscale(image), factor)


def adjust_hue(image: jax.Array, shift: jax.Array | float) -> jax.Array:
    """Rotates the hue by `shift` (a fraction of the colour circle, in [-0.5, 0.5]) in HSV space."""
    hsv = rgb_to_hsv(image)
    hue = jnp.mod(hsv[..., 0] + shift, 1.0)
    return hsv_to_rgb(hsv.at[..., 0].set(hue))


def _jitter_in_order(
    image: jax.Array, ops: list[str], rank: jax.Array, factors: jax.Array
) -> jax.Array:
    """Applies op i of `ops` with factors[i] as the rank[i]-th step (rank: a permutation of 0..n-1).

    A vmapped per-example `lax.switch` would run every op at every step (n^2 ops, among them n
    RGB<->HSV round trips). Brightness, contrast and saturation are all blends, differing only in
    the partner (black, the mean luma, the luma image), so each step is one blend whose partner is
    picked per example; the hue shift runs once, between the blends ranked before it and those
    after it. A step that is not live blends with factor 1, which is exactly the identity.
    """
    n = len(ops)
    index = {name: i for i, name in enumerate(ops)}
    has_hue = "hue" in index
    hue_rank = rank[index["hue"]] if has_hue else n
    # With a hue shift, blends before it take steps 0..n-2 at most and those after it 1..n-1.
    phases = [(range(n - 1), True), (range(1, n), False)] if has_hue else [(range(n), True)]
    x = image
    for steps, before_hue in phases:
        for step in steps:
            runs = rank == step  # one-hot over ops
            live = step < hue_rank if before_hue else step > hue_rank
            factor = jnp.where(live, jnp.sum(jnp.where(runs, factors, 0.0)), 1.0)
            partner = jnp.zeros((), x.dtype)  # brightness blends with black
            if "contrast" in index:
                partner = jnp.where(runs[index["contrast"]], _mean_luma(x), partner)
            if "saturation" in index:
                partner = jnp.where(runs[index["saturation"]], rgb_to_grayscale(x), partner)
            x = _blend(x, partner, factor)
        if before_hue and has_hue:
            x = adjust_hue(x, factors[index["hue"]])
    return x


def color_jitter_from_uniforms(
    u: jax.Array,
    image: jax.Array,
    *,
    brightness: float,
    contrast: float,
    saturation: float,
    hue: float,
    p: float = 0.8,
) -> jax.Array:
    """`color_jitter` driven by JITTER_DRAWS uniforms `u` instead of a key: u[0] is the coin, the n
    active ops run in ascending order of u[1:1+n], and u[5:5+n] place their factors in range.
    """
    if min(brightness, contrast, saturation, hue) < 0 or hue > 0.5:
        raise ValueError("jitter strengths must be >= 0 and hue <= 0.5")
    colour = image.shape[-1] == 3
    # (name, low, high, active) in torchvision's op order.
    ranges = [
        ("brightness", max(0.0, 1.0 - brightness), 1.0 + brightness, brightness > 0),
        ("contrast", max(0.0, 1.0 - contrast), 1.0 + contrast, contrast > 0),
        ("saturation", max(0.0, 1.0 - saturation), 1.0 + saturation, colour and saturation > 0),
        ("hue", -hue, hue, colour and hue > 0),
    ]
    active = [(name, lo, hi) for name, lo, hi, on in ranges if on]
    if not active or p <= 0:
        return image
    n = len(active)
    # The ranks of iid uniforms are a uniformly random permutation; ties (float32 makes them
    # possible) break by op index, so `rank` is always a permutation.
    keys = u[1 : 1 + n]
    before = (keys[None, :] < keys[:, None]) | (
        (keys[None, :] == keys[:, None]) & (jnp.arange(n)[None, :] < jnp.arange(n)[:, None])
    )
    rank = jnp.sum(before, axis=1)
    lo = jnp.asarray([a[1] for a in active], jnp.float32)
    hi = jnp.asarray([a[2] for a in active], jnp.float32)
    factors = lo + (hi - lo) * u[5 : 5 + n]
    jittered = _jitter_in_order(image, [a[0] for a in active], rank, factors)
    return jnp.where(u[0] < p, jittered, image)


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

    Brightness, contrast and saturation factors are uniform in [max(0, 1 - x), 1 + x], the hue shift
    uniform in [-hue, hue]; the active ops run in a random order per example. Saturation and hue are
    identities for 1-channel images. Ops with strength 0 are left out at trace time.
    """
    return color_jitter_from_uniforms(
        draw_uniforms(key, JITTER_DRAWS),
        image,
        brightness=brightness,
        contrast=contrast,
        saturation=saturation,
        hue=hue,
        p=p,
    )


def grayscale_from_uniforms(u: jax.Array, image: jax.Array, *, p: float = 0.2) -> jax.Array:
    """`random_grayscale` driven by one uniform `u[0]`."""
    if image.shape[-1] == 1:
        return image
    gray = jnp.broadcast_to(rgb_to_grayscale(image), image.shape)
    return jnp.where(u[0] < p, gray, image)


def random_grayscale(key: jax.Array, image: jax.Array, *, p: float = 0.2) -> jax.Array:
    """With probability p, sets every channel to the luma (keeps C channels; identity for C=1)."""
    return grayscale_from_uniforms(draw_uniforms(key, COIN_DRAWS), image, p=p)


def _blur_matrix(size: int, radius: int, std: jax.Array) -> jax.Array:
    """[size, size] matrix of a 1-D Gaussian blur with reflect padding, so that blurred = M @ x.

    Entry (i, j) sums the taps g(d), |d| <= radius, whose source i + d reflects onto j: the direct
    band g(j - i), plus the mirror images g(i + j) (sources reflected off index 0, j > 0) and
    g(2 (size - 1) - i - j) (off index size - 1, j < size - 1). With radius < size, each source
    reflects at most once, so these three bands are all there is.
    """
    i = jnp.arange(size, dtype=jnp.float32)[:, None]
    j = jnp.arange(size, dtype=jnp.float32)[None, :]

    def tap(d):
        return jnp.where(jnp.abs(d) <= radius, jnp.exp(-0.5 * jnp.square(d / std)), 0.0)

    direct = tap(j - i)
    low = jnp.where(j > 0, tap(i + j), 0.0)
    high = jnp.where(j < size - 1, tap(2.0 * (size - 1) - i - j), 0.0)
    norm = jnp.sum(tap(jnp.arange(-radius, radius + 1, dtype=jnp.float32)))
    return (direct + low + high) / norm


def gaussian_blur_from_uniforms(
    u: jax.Array,
    image: jax.Array,
    *,
    p: float,
    sigma: tuple[float, float] = (0.1, 2.0),
    kernel_size: int,
) -> jax.Array:
    """`gaussian_blur` driven by BLUR_DRAWS uniforms `u` instead of a key."""
    height, width, _ = image.shape
    radius = kernel_size // 2
    if kernel_size < 1 or kernel_size % 2 == 0:
        raise ValueError(f"kernel_size must be a positive odd int, got {kernel_size}")
    if radius >= min(height, width):
        raise ValueError(f"kernel_size {kernel_size} too large for a {height}x{width} image")
    if kernel_size == 1 or p <= 0:
        return image
    std = sigma[0] + (sigma[1] - sigma[0]) * u[1]
    # Two small matmuls rather than k shifted slices: XLA:GPU fused the unrolled slices into one
    # kernel that took minutes to compile at k = 23. HIGHEST keeps TF32 out of the blur.
    rows, cols = _blur_matrix(height, radius, std), _blur_matrix(width, radius, std)
    highest = jax.lax.Precision.HIGHEST
    blurred = jnp.einsum("ij,jwc->iwc", rows, image, precision=highest)
    blurred = jnp.einsum("vw,iwc->ivc", cols, blurred, precision=highest)
    return jnp.where(u[0] < p, blurred, image)


def gaussian_blur(
    key: jax.Array,
    image: jax.Array,
    *,
    p: float,
    sigma: tuple[float, float] = (0.1, 2.0),
    kernel_size: int,
) -> jax.Array:
    """With probability p, a separable Gaussian blur with sigma ~ U(sigma), reflect padding.

    `kernel_size` is static and odd (SimCLR uses ~10% of the image side) and its radius must be
    smaller than the image; each axis is blurred by one matmul with a banded [n, n] matrix.
    """
    u = draw_uniforms(key, BLUR_DRAWS)
    return gaussian_blur_from_uniforms(u, image, p=p, sigma=sigma, kernel_size=kernel_size)


def solarize_from_uniforms(
    u: jax.Array, image: jax.Array, *, p: float, threshold: float = 0.5
) -> jax.Array:
    """`solarize` driven by one uniform `u[0]`."""
    solarized = jnp.where(image >= threshold, 1.0 - image, image)
    return jnp.where(u[0] < p, solarized, image)


def solarize(key: jax.Array, image: jax.Array, *, p: float, threshold: float = 0.5) -> jax.Array:
    """With probability p, inverts the pixels at or above `threshold` (x -> 1 - x), as in BYOL."""
    u = draw_uniforms(key, COIN_DRAWS)
    return solarize_from_uniforms(u, image, p=p, threshold=threshold)
