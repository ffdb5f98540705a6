"""Losses of the classic pretext tasks: relative patch position, context-encoder inpainting and
colorization as per-pixel classification.

Each returns one float32 value per example and leaves the reduction to the caller. None spans devices:
the labels are made from each example alone, so the per-device mean averaged over devices is the
global-batch loss.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from ssl_jax.losses._checks import as_float32, check_rank, check_same_shape

NUM_NEIGHBOURS = 8  # the 8 patches around the centre of a 3x3 grid (Doersch et al. 2015, Fig. 2)


def _check_labels(labels: jax.Array, name: str) -> jax.Array:
    labels = jnp.asarray(labels)
    if not jnp.issubdtype(labels.dtype, jnp.integer):
        raise TypeError(
            f"{name} must be an integer array of class indices, got dtype {labels.dtype}."
        )
    return labels


def relative_position_loss(logits: jax.Array, labels: jax.Array) -> jax.Array:
    """Context prediction (Doersch et al. 2015, Sec. 3): 8-way cross-entropy of where the second patch
    sits relative to the first.

    logits: [batch, 8] scores of the 8 neighbour positions. labels: int [batch] in [0, 8).
    Returns: [batch] float32, -log softmax(logits)[label].
    """
    check_rank(logits, 2, "logits", "[batch, 8]")
    if logits.shape[-1] != NUM_NEIGHBOURS:
        raise ValueError(f"logits must score {NUM_NEIGHBOURS} positions, got shape {logits.shape}.")
    labels = _check_labels(labels, "labels")
    if labels.shape != logits.shape[:1]:
        raise ValueError(f"labels must have shape {logits.shape[:1]}, got {labels.shape}.")
    log_probs = jax.nn.log_softmax(as_float32(logits, "logits"), axis=-1)
    return -jnp.take_along_axis(log_probs, labels[:, None], axis=-1)[:, 0]


def inpainting_loss(prediction: jax.Array, target: jax.Array, mask: jax.Array) -> jax.Array:
    """The context encoder's reconstruction loss (Pathak et al. 2016, eq. 1): squared error on the
    dropped-out region only, normalized by its area.

    prediction, target: [batch, H, W, C] images (any normalization, the same for both).
    mask: [batch, H, W] (or [batch, H, W, 1]); nonzero where the input was dropped out.
    Returns: [batch] float32, sum over masked pixels and channels of (prediction - target)^2 divided
    by (masked pixels x C); 0 for an example with an empty mask. The paper's adversarial term is not
    part of this loss.
    """
    check_rank(prediction, 4, "prediction", "[batch, H, W, C]")
    check_same_shape(prediction, target, "prediction and target")
    mask = jnp.asarray(mask)
    if mask.ndim == 4 and mask.shape[-1] == 1:
        mask = mask[..., 0]
    if mask.shape != prediction.shape[:3]:
        raise ValueError(f"mask must have shape {prediction.shape[:3]}, got {mask.shape}.")
    diff = as_float32(prediction, "prediction") - as_float32(target, "target")
    weight = (mask != 0).astype(jnp.float32)
    squared = jnp.sum(diff * diff, axis=-1) * weight  # [batch, H, W]
    area = jnp.sum(weight, axis=(1, 2)) * prediction.shape[-1]
    # An empty mask has nothing to reconstruct: 0, not 0/0.
    return jnp.sum(squared, axis=(1, 2)) / jnp.maximum(area, 1.0)


def colorization_loss(
    logits: jax.Array, targets: jax.Array, class_weights: jax.Array | None = None
) -> jax.Array:
    """Colorization as classification (Zhang et al. 2016, eq. 2): per-pixel cross-entropy over
    quantized ab bins, each pixel weighted by the rebalancing weight of its most likely true bin.

    logits: [batch, H, W, Q] scores of the Q ab bins at every output pixel.
    targets: [batch, H, W, Q] distributions over bins (the paper's soft encoding), or int [batch, H, W]
      bin indices (hard encoding).
    class_weights: [Q] rebalancing weights v (eq. 3-4); None for uniform weights.
    Returns: [batch] float32, mean over pixels of -v(q*) sum_q Z_q log softmax(logits)_q with
    q* = argmax_q Z_q. (The paper sums over pixels; the mean keeps the scale independent of resolution.)
    """
    check_rank(logits, 4, "logits", "[batch, H, W, Q]")
    num_bins = logits.shape[-1]
    log_probs = jax.nn.log_softmax(as_float32(logits, "logits"), axis=-1)
    targets = jnp.asarray(targets)
    if jnp.issubdtype(targets.dtype, jnp.integer):
        if targets.shape != logits.shape[:3]:
            raise ValueError(
                f"int targets must have shape {logits.shape[:3]}, got {targets.shape}."
            )
        nearest = targets
        cross_entropy = -jnp.take_along_axis(log_probs, targets[..., None], axis=-1)[..., 0]
    else:
        check_same_shape(logits, targets, "logits and soft targets")
        targets = as_float32(targets, "targets")
        nearest = jnp.argmax(targets, axis=-1)
        cross_entropy = -jnp.sum(targets * log_probs, axis=-1)
    if class_weights is not None:
        class_weights = as_float32(class_weights, "class_weights")
        if class_weights.shape != (num_bins,):
            raise ValueError(
                f"class_weights must have shape ({num_bins},), got {class_weights.shape}."
            )
        cross_entropy = cross_entropy * class_weights[nearest]
    return jnp.mean(cross_entropy, axis=(1, 2))
