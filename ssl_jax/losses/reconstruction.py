"""Reconstruction losses: a network regresses the pixels of input parts it did not see.

MAE (He et al. 2022, "Masked Autoencoders Are Scalable Vision Learners") scores the decoder's pixel
predictions only on the patches the encoder never saw; nothing here spans devices.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from ssl_jax.losses._checks import as_float32, check_rank, check_same_shape


def normalize_patches(patches: jax.Array, *, eps: float = 1e-6) -> jax.Array:
    """Each patch's pixels standardized by that patch's own mean and variance (MAE's `norm_pix_loss`).

    patches: [..., patch_dim] float. Returns float32 of the same shape: (x - mean) / sqrt(var + eps) over
    the last axis. The variance is the unbiased one (divisor patch_dim - 1), as `torch.Tensor.var` in
    the paper's code computes it; eps keeps a flat patch (zero variance) finite.
    """
    x = as_float32(patches, "patches")
    if x.shape[-1] < 2:
        raise ValueError(f"Per-patch normalization needs patches of >= 2 values, got {x.shape}.")
    mean = jnp.mean(x, axis=-1, keepdims=True)
    var = jnp.sum((x - mean) ** 2, axis=-1, keepdims=True) / (x.shape[-1] - 1)
    return (x - mean) * jax.lax.rsqrt(var + eps)


def mae_loss(
    predictions: jax.Array,
    patches: jax.Array,
    mask: jax.Array,
    *,
    norm_pix_loss: bool = True,
    eps: float = 1e-6,
) -> jax.Array:
    """MAE's reconstruction loss (He et al. 2022, Sec. 3 "Reconstruction target"): the mean squared
    error between predicted and true pixels, computed on the masked patches only.

    predictions: [batch, num_patches, patch_dim] the decoder's pixel predictions for every patch.
    patches: [batch, num_patches, patch_dim] the input's patches (row-major over the grid, pixels in
      (row, column, channel) order within a patch), the regression target; no gradient flows into it.
    mask: [batch, num_patches] 1 where the patch was removed from the encoder's input (the loss counts
      it), 0 where it was visible. Any dtype; read as a {0, 1} weight.
    norm_pix_loss: regress onto per-patch normalized pixels (`normalize_patches`), the paper's
      variant that improves representations (Table 1d / Sec. 3).
    Returns: [batch] float32, each example's mean over its masked patches of the per-pixel mean squared
    error (0 for an example with no masked patch). With the same number of masked patches in every
    example (MAE's masking) the batch mean equals the paper's `(loss * mask).sum() / mask.sum()`.
    """
    check_rank(predictions, 3, "predictions", "[batch, num_patches, patch_dim]")
    check_same_shape(predictions, patches, "predictions and patches")
    if mask.shape != predictions.shape[:2]:
        raise ValueError(
            f"mask must be [batch, num_patches] {predictions.shape[:2]}, got {mask.shape}."
        )
    pred = as_float32(predictions, "predictions")  # fp32 loss math whatever the activations were
    target = (
        normalize_patches(patches, eps=eps) if norm_pix_loss else as_float32(patches, "patches")
    )
    target = jax.lax.stop_gradient(target)  # the pixels are data, not a variable of this loss
    weight = jnp.asarray(mask).astype(jnp.float32)
    per_patch = jnp.mean((pred - target) ** 2, axis=-1)  # [batch, num_patches]
    masked = jnp.sum(weight, axis=-1)
    return jnp.sum(per_patch * weight, axis=-1) / jnp.maximum(masked, 1.0)
