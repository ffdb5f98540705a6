"""Multi-crop (Caron et al. 2020, SwAV; used by DINO): a few large "global" views and several small "local"
views of every image, each drawn by `augment_batch` with its own key.

Crop c of example i is keyed by fold_in(fold_in(rng, c), example_ids[i]): global crops take c = 0 ..
num_global - 1 and local crops the next num_local indices, so every crop is distinct and, as for the other
views, independent of the device an example lands on. The crops are cut on device from one image batch,
or, for photographs, arrive cut on the host (one batch per crop; the rest of each pipeline runs here,
keyed the same way). `dino_view_specs` builds DINO's asymmetric pipeline.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence

import jax
import jax.numpy as jnp

from ssl_jax.augment.image import ViewSpec, augment_batch

# DINO's crop scales (Caron et al. 2021, Sec. 3.1 / main_dino.py): global crops cover 40-100% of the image,
# local crops 5-40%; 224-px and 96-px outputs on ImageNet.
DINO_GLOBAL_SCALE = (0.4, 1.0)
DINO_LOCAL_SCALE = (0.05, 0.4)


def _crops(rng: jax.Array, images, example_ids, spec: ViewSpec, indices: Sequence[int]) -> list:
    """Views for crop indices `indices` that share one spec: one traced pipeline vmapped over the crops.
    `images`: one batch to crop on device, or a sequence holding crop c's host-cut batch at index c."""
    if not indices:
        return []
    keys = jax.vmap(jax.random.fold_in, in_axes=(None, 0))(rng, jnp.asarray(indices))
    if not isinstance(images, list | tuple):
        return list(jax.vmap(lambda k: augment_batch(k, images, example_ids, spec))(keys))
    cut = jnp.stack([images[c] for c in indices])
    spec = dataclasses.replace(spec, host_cropped=True)
    return list(jax.vmap(lambda k, x: augment_batch(k, x, example_ids, spec))(keys, cut))


def multicrop_views(
    rng: jax.Array,
    images_uint8: jax.Array,
    example_ids: jax.Array,
    *,
    global_spec: ViewSpec | Sequence[ViewSpec],
    local_spec: ViewSpec | None,
    num_global: int = 2,
    num_local: int,
) -> tuple[list[jax.Array], list[jax.Array]]:
    """Global and local views of a uint8 batch [B, H, W, C], or of the host's crops: a sequence of
    num_global + num_local uint8 batches, each already at its spec's crop size (the specs' crop is
    then skipped).

    global_spec: one spec, or one per global crop (cycled when shorter, e.g. DINO's two asymmetric
      pipelines). Returns (num_global arrays [B, G, G, C], num_local arrays [B, L, L, C]), float32 and
      normalized; G and L are the specs' crop sizes.
    """
    if num_global < 1 or num_local < 0:
        raise ValueError(f"Need num_global >= 1 and num_local >= 0, got {num_global}, {num_local}.")
    specs = [global_spec] if isinstance(global_spec, ViewSpec) else list(global_spec)
    if not specs:
        raise ValueError("global_spec must name at least one ViewSpec.")
    if num_local and local_spec is None:
        raise ValueError(f"num_local={num_local} needs a local_spec.")
    by_crop = {}
    # Crops that share a spec are drawn together (one trace of the pipeline, not one per crop).
    for spec in dict.fromkeys(specs):
        indices = [c for c in range(num_global) if specs[c % len(specs)] == spec]
        views = _crops(rng, images_uint8, example_ids, spec, indices)
        by_crop.update(zip(indices, views, strict=True))
    global_views = [by_crop[c] for c in range(num_global)]
    local_indices = list(range(num_global, num_global + num_local))
    local_views = _crops(rng, images_uint8, example_ids, local_spec, local_indices)
    return global_views, local_views


def dino_view_specs(
    global_size: int,
    local_size: int,
    *,
    mean: Sequence[float],
    std: Sequence[float],
    global_scale: Sequence[float] = DINO_GLOBAL_SCALE,
    local_scale: Sequence[float] = DINO_LOCAL_SCALE,
    flip_prob: float = 0.5,
    brightness: float = 0.4,
    contrast: float = 0.4,
    saturation: float = 0.2,
    hue: float = 0.1,
    jitter_prob: float = 0.8,
    grayscale_prob: float = 0.2,
    global_blur_prob: Sequence[float] = (1.0, 0.1),
    global_solarize_prob: Sequence[float] = (0.0, 0.2),
    local_blur_prob: float = 0.5,
    blur_sigma: Sequence[float] = (0.1, 2.0),
) -> tuple[tuple[ViewSpec, ...], ViewSpec]:
    """DINO's `DataAugmentationDINO`: flip, colour jitter (0.4, 0.4, 0.2, 0.1) with p 0.8, grayscale p 0.2;
    global crop 1 always blurs, global crop 2 blurs with p 0.1 and solarizes with p 0.2, local crops blur
    with p 0.5. Returns (one spec per entry of global_blur_prob, the local spec).

    DINO blurs with PIL's GaussianBlur(radius=sigma), which has no fixed window; here the kernel spans
    +-3 sigma_max (13 taps for sigma up to 2), cut to fit small crops.
    """
    if len(global_blur_prob) != len(global_solarize_prob):
        raise ValueError(
            "global_blur_prob and global_solarize_prob need one entry per global spec."
        )
    base = ViewSpec(
        crop_size=global_size,
        crop_scale=tuple(global_scale),
        flip_prob=flip_prob,
        brightness=brightness,
        contrast=contrast,
        saturation=saturation,
        hue=hue,
        jitter_prob=jitter_prob,
        grayscale_prob=grayscale_prob,
        blur_sigma=tuple(blur_sigma),
        mean=tuple(mean),
        std=tuple(std),
    )

    def kernel(size: int) -> int:
        # The blur reflects at the border once, so its radius must stay below the side.
        return min(2 * math.ceil(3 * blur_sigma[1]) + 1, 2 * size - 1)

    globals_ = tuple(
        dataclasses.replace(
            base, blur_prob=blur, solarize_prob=solarize, blur_kernel_size=kernel(global_size)
        )
        for blur, solarize in zip(global_blur_prob, global_solarize_prob, strict=True)
    )
    local = dataclasses.replace(
        base,
        crop_size=local_size,
        crop_scale=tuple(local_scale),
        blur_prob=local_blur_prob,
        blur_kernel_size=kernel(local_size),
    )
    return globals_, local
