"""Pretext labels and inputs made on the accelerator: relative-position patch pairs (Doersch et al. 2015),
colour dropping / projection against the chromatic-aberration shortcut, inpainting masks (Pathak et al.
2016), CIE Lab conversion and ab quantization with class rebalancing (Zhang et al. 2016).

Random ops take a key per example (`fold_in(rng, example_id)` in the batch helpers), so a pair or a
mask depends on the step and the example's global index only, never on the device it lands on.
The ab grid and the rebalancing weights are host-side NumPy (computed once per run).
"""

from __future__ import annotations

import functools
import math
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from ssl_jax.augment.photometric import draw_uniforms

# ---------------------------------------------------------------- context prediction

# The 8 neighbours of the centre cell of a 3x3 grid, in reading order; label i is NEIGHBOUR_OFFSETS[i]
# as (row, column) steps from the centre.
NEIGHBOUR_OFFSETS = ((-1, -1), (-1, 0), (-1, 1), (0, -1), (0, 1), (1, -1), (1, 0), (1, 1))
_PAIR_DRAWS = 7  # label, grid origin (2), centre jitter (2), neighbour jitter (2)


def patch_grid_extent(patch_size: int, gap: int, jitter: int) -> int:
    """The side a 3x3 grid of patches needs: 3 patches, 2 gaps and the jitter on both outer edges."""
    return 3 * patch_size + 2 * gap + 2 * jitter


def check_patch_grid(height: int, width: int, patch_size: int, gap: int, jitter: int) -> None:
    """The grid must fit the image, and the gap must survive the jitter, or adjacent patches could touch
    and the network could match edges across them (Doersch et al.'s edge-continuity shortcut)."""
    if patch_size < 1 or gap < 0 or jitter < 0:
        raise ValueError(
            f"need patch_size >= 1, gap >= 0, jitter >= 0; got {patch_size}, {gap}, {jitter}"
        )
    if gap <= 2 * jitter:
        raise ValueError(
            f"gap ({gap}) must exceed 2 x jitter ({2 * jitter}) so that jittered neighbours never touch."
        )
    extent = patch_grid_extent(patch_size, gap, jitter)
    if extent > min(height, width):
        raise ValueError(
            f"a 3x3 grid of {patch_size}px patches with gap {gap} and jitter {jitter} spans {extent}px, "
            f"more than the {height}x{width} image; use smaller patches or a smaller gap."
        )


def patch_pair_positions(
    key: jax.Array, height: int, width: int, *, patch_size: int, gap: int, jitter: int
) -> tuple[jax.Array, jax.Array, jax.Array]:
    """Top-left corners of a centre patch and one of its 8 neighbours, and the neighbour's label.

    A 3x3 grid of patch_size patches separated by `gap` pixels is placed uniformly at random in the
    image; each of the two patches is then shifted by its own integer jitter in [-jitter, jitter] on
    both axes (Doersch et al. 2015, Sec. 3: a gap of half a patch and a jitter of up to 7 of 96 pixels).
    Returns (centre [2] int32 (row, col), neighbour [2] int32, label int32 scalar in [0, 8)).
    """
    check_patch_grid(height, width, patch_size, gap, jitter)
    u = draw_uniforms(key, _PAIR_DRAWS)
    label = jnp.minimum(jnp.floor(u[0] * 8), 7).astype(jnp.int32)
    extent = patch_grid_extent(patch_size, gap, jitter)
    room = jnp.array([height - extent + 1, width - extent + 1], jnp.float32)
    origin = jnp.floor(u[1:3] * room).astype(jnp.int32) + jitter  # grid top-left, before jitter
    span = 2 * jitter + 1
    centre_jitter = jnp.floor(u[3:5] * span).astype(jnp.int32) - jitter
    neighbour_jitter = jnp.floor(u[5:7] * span).astype(jnp.int32) - jitter
    stride = patch_size + gap
    offset = jnp.asarray(NEIGHBOUR_OFFSETS, jnp.int32)[label]
    centre = origin + stride + centre_jitter
    neighbour = origin + (1 + offset) * stride + neighbour_jitter
    return centre, neighbour, label


def crop_patch(image: jax.Array, top_left: jax.Array, patch_size: int) -> jax.Array:
    """image [H, W, C] -> [patch_size, patch_size, C] at the traced corner (row, col)."""
    channels = image.shape[-1]
    return jax.lax.dynamic_slice(
        image, (top_left[0], top_left[1], 0), (patch_size, patch_size, channels)
    )


def patch_pairs(
    rng: jax.Array,
    images: jax.Array,
    example_ids: jax.Array,
    *,
    patch_size: int,
    gap: int,
    jitter: int,
) -> tuple[jax.Array, jax.Array, jax.Array]:
    """One (centre, neighbour, label) per example of images [B, H, W, C], keyed by example id.

    Returns (centres [B, P, P, C], neighbours [B, P, P, C], labels int32 [B]).
    """
    _, height, width, _ = images.shape

    def one(key, image):
        centre, neighbour, label = patch_pair_positions(
            key, height, width, patch_size=patch_size, gap=gap, jitter=jitter
        )
        return (
            crop_patch(image, centre, patch_size),
            crop_patch(image, neighbour, patch_size),
            label,
        )

    keys = jax.vmap(jax.random.fold_in, in_axes=(None, 0))(rng, example_ids)
    return jax.vmap(one)(keys, images)


# ---------------------------------------------------------------- chromatic-aberration guards

# The green-magenta axis in RGB: chromatic aberration shifts green against magenta towards the image's
# edges, which tells a network where a patch lies in the frame (Doersch et al. 2015, Sec. 3.1).
_GREEN_MAGENTA = (1.0 / math.sqrt(6.0), -2.0 / math.sqrt(6.0), 1.0 / math.sqrt(6.0))


def project_out_green_magenta(image: jax.Array) -> jax.Array:
    """Colour projection: removes each pixel's component along the green-magenta axis a = (1, -2, 1)/sqrt(6),
    x - (x . a) a, moving green and magenta towards gray. image: [..., 3]."""
    if image.shape[-1] != 3:
        raise ValueError(f"colour projection needs RGB [..., 3], got shape {image.shape}.")
    ar, ag, ab = _GREEN_MAGENTA
    r, g, b = image[..., 0:1], image[..., 1:2], image[..., 2:3]
    dot = ar * r + ag * g + ab * b  # written out: see photometric.rgb_to_grayscale
    return jnp.concatenate([r - dot * ar, g - dot * ag, b - dot * ab], axis=-1)


def drop_color_channels(key: jax.Array, image: jax.Array, *, noise_std: float = 0.01) -> jax.Array:
    """Colour dropping: keeps one random channel of a normalized RGB image [H, W, 3] and replaces the
    other two with Gaussian noise of standard deviation `noise_std` (Doersch et al. 2015, Sec. 3.1: about
    1/100 of the channel's standard deviation, which is 1 after normalization)."""
    if image.shape[-1] != 3:
        raise ValueError(f"colour dropping needs RGB [..., 3], got shape {image.shape}.")
    keep_key, noise_key = jax.random.split(key)
    kept = jax.random.randint(keep_key, (), 0, 3)
    noise = noise_std * jax.random.normal(noise_key, image.shape, jnp.float32)
    keep = jnp.arange(3) == kept
    return jnp.where(keep, image, noise.astype(image.dtype))


# ---------------------------------------------------------------- inpainting masks


def center_mask(height: int, width: int, *, fraction: float = 0.5) -> jax.Array:
    """bool [H, W], True on the central square-ish region whose sides are `fraction` of the image's
    (Pathak et al. 2016: the central 64x64 of 128x128, a quarter of the area)."""
    if not 0.0 < fraction < 1.0:
        raise ValueError(f"fraction must be in (0, 1), got {fraction}.")
    mh, mw = max(1, round(fraction * height)), max(1, round(fraction * width))
    top, left = (height - mh) // 2, (width - mw) // 2
    rows = (jnp.arange(height) >= top) & (jnp.arange(height) < top + mh)
    cols = (jnp.arange(width) >= left) & (jnp.arange(width) < left + mw)
    return rows[:, None] & cols[None, :]


def random_block_mask(
    key: jax.Array, height: int, width: int, *, num_blocks: int, block_size: int
) -> jax.Array:
    """bool [H, W], the union of `num_blocks` square blocks of side `block_size` at uniformly random
    positions inside the image (Pathak et al. 2016's "random block" masks; possibly overlapping)."""
    if not 1 <= block_size <= min(height, width) or num_blocks < 1:
        raise ValueError(
            f"need num_blocks >= 1 and 1 <= block_size <= {min(height, width)}; got {num_blocks}, "
            f"{block_size}."
        )
    u = draw_uniforms(key, 2 * num_blocks).reshape(num_blocks, 2)
    room = jnp.array([height - block_size + 1, width - block_size + 1], jnp.float32)
    corners = jnp.floor(u * room).astype(jnp.int32)  # [num_blocks, (row, col)]
    rows = jnp.arange(height)[None, :]
    cols = jnp.arange(width)[None, :]
    in_rows = (rows >= corners[:, :1]) & (rows < corners[:, :1] + block_size)  # [blocks, H]
    in_cols = (cols >= corners[:, 1:]) & (cols < corners[:, 1:] + block_size)  # [blocks, W]
    return jnp.any(in_rows[:, :, None] & in_cols[:, None, :], axis=0)


# ---------------------------------------------------------------- CIE Lab

# sRGB (IEC 61966-2-1) linear RGB -> CIE XYZ, and the D65 reference white (2-degree observer).
_RGB_TO_XYZ = np.array(
    [
        [0.4124564, 0.3575761, 0.1804375],
        [0.2126729, 0.7151522, 0.0721750],
        [0.0193339, 0.1191920, 0.9503041],
    ]
)
_XYZ_TO_RGB = np.linalg.inv(_RGB_TO_XYZ)
D65_WHITE = (0.95047, 1.0, 1.08883)
_DELTA = 6.0 / 29.0  # CIE's f(t) switches from a cube root to a line at t = delta^3


def _mix3(m: np.ndarray, x: jax.Array) -> list[jax.Array]:
    """m @ x over the last axis of size 3, written out (XLA:CPU runs a size-3 minor reduction slowly)."""
    c = [x[..., i] for i in range(3)]
    return [float(m[r, 0]) * c[0] + float(m[r, 1]) * c[1] + float(m[r, 2]) * c[2] for r in range(3)]


def rgb_to_lab(rgb: jax.Array) -> jax.Array:
    """sRGB [..., 3] in [0, 1] -> CIE L*a*b* [..., 3] (D65): L in [0, 100], a and b roughly in [-110, 110].

    sRGB gamma is undone (linear below 0.04045), the linear RGB is mapped to XYZ, scaled by the white
    point and passed through CIE's f. float32 math.
    """
    rgb = jnp.clip(jnp.asarray(rgb, jnp.float32), 0.0, 1.0)
    linear = jnp.where(rgb > 0.04045, ((rgb + 0.055) / 1.055) ** 2.4, rgb / 12.92)
    x, y, z = (v / w for v, w in zip(_mix3(_RGB_TO_XYZ, linear), D65_WHITE, strict=True))

    def f(t):
        # The cube root's branch is evaluated on a clamped input so no NaN is produced for t <= 0.
        return jnp.where(
            t > _DELTA**3, jnp.cbrt(jnp.maximum(t, _DELTA**3)), t / (3 * _DELTA**2) + 4.0 / 29.0
        )

    fx, fy, fz = f(x), f(y), f(z)
    return jnp.stack([116.0 * fy - 16.0, 500.0 * (fx - fy), 200.0 * (fy - fz)], axis=-1)


def lab_to_rgb(lab: jax.Array) -> jax.Array:
    """CIE L*a*b* [..., 3] (D65) -> sRGB [..., 3], clipped to [0, 1] (out-of-gamut colours clip)."""
    lab = jnp.asarray(lab, jnp.float32)
    fy = (lab[..., 0] + 16.0) / 116.0
    fx = fy + lab[..., 1] / 500.0
    fz = fy - lab[..., 2] / 200.0

    def f_inv(f):
        return jnp.where(f > _DELTA, f**3, 3 * _DELTA**2 * (f - 4.0 / 29.0))

    xyz = jnp.stack([f_inv(v) * w for v, w in zip((fx, fy, fz), D65_WHITE, strict=True)], axis=-1)
    linear = jnp.clip(jnp.stack(_mix3(_XYZ_TO_RGB, xyz), axis=-1), 0.0, 1.0)
    srgb = jnp.where(
        linear > 0.0031308,
        1.055 * jnp.maximum(linear, 0.0031308) ** (1 / 2.4) - 0.055,
        12.92 * linear,
    )
    return jnp.clip(srgb, 0.0, 1.0)


# ---------------------------------------------------------------- ab quantization and rebalancing


class AbGrid(NamedTuple):
    """The in-gamut ab bins of a square grid (Zhang et al. 2016, Sec. 2.1: grid size 10 gives 313).

    centers: float32 [Q, 2] bin centres (a, b). grid_size: the cell side.
    table: int32 [n, n], the nearest in-gamut bin of grid cell (round(a / g) + offset, round(b / g) + offset),
      so hard quantization is a lookup. offset: index of cell 0 in the table.
    """

    centers: np.ndarray
    grid_size: float
    table: np.ndarray
    offset: int

    @property
    def num_bins(self) -> int:
        return len(self.centers)


@functools.lru_cache(maxsize=8)
def ab_grid(grid_size: float = 10.0, rgb_steps: int = 64) -> AbGrid:
    """The bins of a `grid_size` grid that some sRGB colour falls in, found by converting a
    rgb_steps^3 lattice of sRGB colours to Lab on the host. Cached; computed eagerly even under a trace."""
    if grid_size <= 0:
        raise ValueError(f"grid_size must be positive, got {grid_size}.")
    levels = np.linspace(0.0, 1.0, rgb_steps, dtype=np.float32)
    lattice = np.stack(np.meshgrid(levels, levels, levels, indexing="ij"), axis=-1).reshape(-1, 3)
    with jax.ensure_compile_time_eval():
        ab = np.asarray(jax.jit(rgb_to_lab)(lattice))[:, 1:]
    cells = np.unique(np.round(ab / grid_size).astype(np.int64), axis=0)
    centers = (cells * grid_size).astype(np.float32)
    # Every cell a Lab value can round to (|a|, |b| < 130), mapped to its nearest in-gamut centre.
    offset = int(math.ceil(130.0 / grid_size))
    axis = np.arange(-offset, offset + 1) * grid_size
    grid_points = np.stack(np.meshgrid(axis, axis, indexing="ij"), axis=-1)  # [n, n, 2]
    d2 = np.sum((grid_points[:, :, None, :] - centers[None, None]) ** 2, axis=-1)
    table = np.argmin(d2, axis=-1).astype(np.int32)
    return AbGrid(centers, float(grid_size), table, offset)


def quantize_ab(ab: jax.Array, grid: AbGrid) -> jax.Array:
    """Hard quantization: ab [..., 2] -> int32 [...] index of the bin whose grid cell holds it."""
    table = jnp.asarray(grid.table)
    cell = jnp.round(jnp.asarray(ab, jnp.float32) / grid.grid_size).astype(jnp.int32) + grid.offset
    cell = jnp.clip(cell, 0, table.shape[0] - 1)
    return table[cell[..., 0], cell[..., 1]]


def soft_encode_ab(
    ab: jax.Array, grid: AbGrid, *, neighbours: int = 5, sigma: float = 5.0
) -> jax.Array:
    """Zhang et al. 2016's soft encoding: ab [..., 2] -> float32 [..., Q], weights on the `neighbours`
    nearest bin centres proportional to a Gaussian of the distance (sigma in ab units), summing to 1."""
    centers = jnp.asarray(grid.centers)
    ab = jnp.asarray(ab, jnp.float32)
    d2 = (ab[..., None, 0] - centers[:, 0]) ** 2 + (ab[..., None, 1] - centers[:, 1]) ** 2
    # The k-th smallest distance is a threshold; ties beyond k are vanishingly rare for real colours.
    kth = -jax.lax.top_k(-d2, neighbours)[0][..., -1:]
    # Shift by the nearest distance before exponentiating: exp of -d2 / (2 sigma^2) underflows to 0 for
    # colours far from every centre.
    nearest = jnp.min(d2, axis=-1, keepdims=True)
    w = jnp.where(d2 <= kth, jnp.exp(-(d2 - nearest) / (2.0 * sigma**2)), 0.0)
    return w / jnp.sum(w, axis=-1, keepdims=True)


def ab_histogram(images: np.ndarray, grid: AbGrid) -> np.ndarray:
    """Pixel counts per ab bin of uint8 RGB images [n, H, W, 3], computed eagerly on the host side."""
    images = np.asarray(images)
    if images.dtype != np.uint8 or images.ndim != 4 or images.shape[-1] != 3:
        raise ValueError(
            f"expected uint8 RGB images [n, H, W, 3], got {images.dtype} {images.shape}"
        )
    with jax.ensure_compile_time_eval():
        bins = np.asarray(_host_bins(images, grid.table, grid.grid_size, grid.offset)).ravel()
    return np.bincount(bins, minlength=grid.num_bins).astype(np.float64)


@functools.partial(jax.jit, static_argnames=("grid_size", "offset"))
def _host_bins(images, table, grid_size, offset):
    lab = rgb_to_lab(images.astype(jnp.float32) / 255.0)
    return quantize_ab(lab[..., 1:], AbGrid(None, grid_size, table, offset))


def rebalancing_weights(
    counts: np.ndarray, centers: np.ndarray, *, sigma: float = 5.0, mix: float = 0.5
) -> np.ndarray:
    """Zhang et al. 2016, eq. 4: w proportional to ((1 - lambda) p~ + lambda / Q)^-1, normalized so that
    sum_q p~_q w_q = 1, where p~ is the empirical bin distribution smoothed by a Gaussian of width sigma
    over the bin centres. counts, centers: [Q], [Q, 2]. Returns float32 [Q]."""
    counts = np.asarray(counts, np.float64)
    if counts.sum() <= 0:
        raise ValueError("rebalancing needs at least one counted pixel.")
    if not 0.0 <= mix <= 1.0:
        raise ValueError(f"mix (lambda) must be in [0, 1], got {mix}.")
    p = counts / counts.sum()
    centers = np.asarray(centers, np.float64)
    d2 = np.sum((centers[:, None] - centers[None]) ** 2, axis=-1)
    smoothed = np.exp(-d2 / (2.0 * sigma**2)) @ p
    smoothed /= smoothed.sum()
    weights = 1.0 / ((1.0 - mix) * smoothed + mix / len(p))
    weights /= np.sum(smoothed * weights)
    return weights.astype(np.float32)
