"""Contrastive Predictive Coding networks (van den Oord et al. 2018): encoders g_enc, the autoregressive
context g_ar and the bilinear step-ahead predictors W_k.

Both encoders return z as [batch, S, T, dim]: S parallel sequences of T steps each, so one GRU over T
serves both inputs.
- `SignalEncoder`: a strided 1-D convolution stack over a raw signal [batch, L] (CPC's audio encoder,
  smaller): S = 1, T = L / prod(strides).
- `PatchGridEncoder`: CPC's image setting. The image is split into a grid of overlapping patches (28x28
  padded to 32x32 -> a 7x7 grid of 8x8 patches with stride 4, 50% overlap, as CPC v1 does 256 -> 7x7 of
  64 px), each encoded by one small CNN. The autoregressive direction is top to bottom: every column of
  the grid is a sequence over its rows (S = columns, T = rows), so c at (row r, column j) summarises the
  patches at rows <= r of column j. CPC v1 used a PixelCNN-like context over the rows above; a GRU per
  column is the simpler, documented substitute (its receptive field is the column, not the whole upper
  half of the image).
No BatchNorm anywhere: batch statistics would leak information between the positive and the negatives
(CPC v2, Henaff et al. 2019, replaces BN with layer normalization for that reason); LayerNorm is used.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp


class SignalEncoder(nn.Module):
    """Strided 1-D convolutions + ReLU + LayerNorm, then a linear map to `z_dim`.

    [batch, L] (or [batch, L, channels]) float -> z [batch, 1, L // prod(strides), z_dim]. Padding is
    causal-free "SAME"-style per layer; each step's receptive field is local (kernels), so z_t sees only
    a window of the signal around t.
    """

    widths: Sequence[int] = (64, 64, 64, 64)
    kernels: Sequence[int] = (8, 4, 4, 4)
    strides: Sequence[int] = (4, 2, 2, 2)
    z_dim: int = 64
    dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        if not len(self.widths) == len(self.kernels) == len(self.strides):
            raise ValueError(
                "SignalEncoder needs one kernel and one stride per width; got "
                f"widths={tuple(self.widths)}, kernels={tuple(self.kernels)}, "
                f"strides={tuple(self.strides)}."
            )
        x = jnp.asarray(x, self.dtype)
        if x.ndim == 2:
            x = x[..., None]
        for i, (width, kernel, stride) in enumerate(
            zip(self.widths, self.kernels, self.strides, strict=True)
        ):
            # Left/right padding so that L divisible by the stride gives exactly L / stride steps.
            pad = kernel - stride
            x = nn.Conv(
                width,
                (kernel,),
                strides=(stride,),
                padding=((pad // 2, pad - pad // 2),),
                dtype=self.dtype,
                param_dtype=jnp.float32,
                name=f"conv{i}",
            )(x)
            x = nn.relu(nn.LayerNorm(dtype=self.dtype, param_dtype=jnp.float32, name=f"ln{i}")(x))
        z = nn.Dense(self.z_dim, dtype=self.dtype, param_dtype=jnp.float32, name="proj")(x)
        return z[:, None]  # one sequence per signal


def extract_patches(images: jax.Array, patch_size: int, stride: int, pad: int) -> jax.Array:
    """[batch, H, W, C] -> [batch, rows, cols, patch_size, patch_size, C] overlapping patches of the
    image zero-padded by `pad` on every side (rows = (H + 2 pad - patch_size) // stride + 1)."""
    x = jnp.pad(images, ((0, 0), (pad, pad), (pad, pad), (0, 0)))
    height, width = x.shape[1:3]
    rows = (height - patch_size) // stride + 1
    cols = (width - patch_size) // stride + 1
    if rows < 1 or cols < 1:
        raise ValueError(
            f"Images of {images.shape[1:3]} padded by {pad} hold no {patch_size}x{patch_size} patch."
        )
    # Gather indices: patch (r, c) covers rows r*stride + [0, patch_size), cols c*stride + [0, ...).
    row_idx = (jnp.arange(rows) * stride)[:, None] + jnp.arange(patch_size)[None, :]  # [rows, p]
    col_idx = (jnp.arange(cols) * stride)[:, None] + jnp.arange(patch_size)[None, :]  # [cols, p]
    x = x[:, row_idx]  # [b, rows, p, W, C]
    x = x[:, :, :, col_idx]  # [b, rows, p, cols, p, C]
    return jnp.transpose(x, (0, 1, 3, 2, 4, 5))


class PatchGridEncoder(nn.Module):
    """Overlapping patches -> a small CNN per patch (shared weights) -> z [batch, cols, rows, z_dim].

    Input: normalized float images [batch, H, W, C]. Per patch: 3x3 convolutions (the strides halve the
    resolution), LayerNorm + ReLU after each, global mean pooling, a linear map to `z_dim`. The output is
    laid out column-major ([batch, S = cols, T = rows, dim]) so the context runs down each column.
    """

    patch_size: int = 8
    stride: int = 4
    pad: int = 2
    widths: Sequence[int] = (32, 64, 64)
    strides: Sequence[int] = (1, 2, 1)
    z_dim: int = 64
    dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, images: jax.Array) -> jax.Array:
        patches = extract_patches(
            jnp.asarray(images, self.dtype), self.patch_size, self.stride, self.pad
        )
        b, rows, cols = patches.shape[:3]
        x = patches.reshape(b * rows * cols, *patches.shape[3:])
        for i, (width, stride) in enumerate(zip(self.widths, self.strides, strict=True)):
            x = nn.Conv(
                width,
                (3, 3),
                strides=(stride, stride),
                padding=((1, 1), (1, 1)),
                dtype=self.dtype,
                param_dtype=jnp.float32,
                name=f"conv{i}",
            )(x)
            x = nn.relu(nn.LayerNorm(dtype=self.dtype, param_dtype=jnp.float32, name=f"ln{i}")(x))
        x = jnp.mean(x, axis=(1, 2))
        z = nn.Dense(self.z_dim, dtype=self.dtype, param_dtype=jnp.float32, name="proj")(x)
        return jnp.transpose(z.reshape(b, rows, cols, self.z_dim), (0, 2, 1, 3))


class GRUContext(nn.Module):
    """g_ar: a GRU over the T axis of z [batch, S, T, dim] -> c [batch, S, T, context_dim].

    Causal by construction: c_t = GRU(c_{t-1}, z_t) depends on z_1..z_t only.
    """

    context_dim: int = 64
    dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, z: jax.Array) -> jax.Array:
        b, s, t, d = z.shape
        cell = nn.GRUCell(self.context_dim, dtype=self.dtype, param_dtype=jnp.float32)
        x = z.reshape(b * s, t, d)
        # A zero initial state shaped like the input: under shard_map `zeros_like` takes the input's
        # per-device (varying) type, which the scan carry must have; a fresh jnp.zeros would not.
        initial = jnp.zeros_like(x[:, 0, :1], dtype=jnp.float32) * jnp.zeros((self.context_dim,))
        c = nn.RNN(cell, name="gru")(x, initial_carry=initial)
        return c.reshape(b, s, t, self.context_dim)


class CPCNetwork(nn.Module):
    """g_enc -> g_ar -> {W_k}: returns (z [b, S, T, dz], c [b, S, T, dc], predictions [b, S, T, K, dz]),
    predictions[..., t, j, :] = W_k c_t for the j-th step ahead (one bias-free linear map per step).

    Parameters live under "encoder", "context" and "predictor": the first two are the representation
    that transfers (`features`); the predictors are discarded after pre-training. `encoder` must have a
    `z_dim` attribute (both encoders above do).
    """

    encoder: nn.Module
    context_dim: int = 64
    num_predictions: int = 3
    dtype: Any = jnp.float32

    def setup(self):
        self.context = GRUContext(self.context_dim, dtype=self.dtype)
        self.predictor = nn.DenseGeneral(
            (self.num_predictions, self.encoder.z_dim),
            use_bias=False,
            dtype=self.dtype,
            param_dtype=jnp.float32,
        )

    def __call__(self, x: jax.Array) -> tuple[jax.Array, jax.Array, jax.Array]:
        z = self.encoder(x)
        c = self.context(z)
        return z, c, self.predictor(c)

    def features(self, x: jax.Array, kind: str = "context") -> jax.Array:
        """Mean-pooled representation [b, D] float32 over every step of every sequence: "encoder"
        (z, dim z_dim), "context" (c, dim context_dim) or "both" (their concatenation)."""
        if kind not in FEATURE_KINDS:
            raise ValueError(f"CPC features must be one of {FEATURE_KINDS}, got {kind!r}.")
        z = self.encoder(x)
        pooled = []
        if kind in ("encoder", "both"):
            pooled.append(z.mean(axis=(1, 2)))
        if kind in ("context", "both"):
            pooled.append(self.context(z).mean(axis=(1, 2)))
        return jnp.concatenate(pooled, axis=-1).astype(jnp.float32)


class CPCFeatures(CPCNetwork):
    """The transferable part of a CPCNetwork as an encoder: x -> `features(x, kind)` [b, D], with the
    same "encoder" and "context" parameters (the predictors are never built), so a CPC checkpoint is
    fine-tuned like any other encoder. `train` is accepted and unused (no BatchNorm or dropout)."""

    kind: str = "context"

    def __call__(self, x: jax.Array, train: bool = False) -> jax.Array:
        del train
        return self.features(x, self.kind)


FEATURE_KINDS = ("encoder", "context", "both")
