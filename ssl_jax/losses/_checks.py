"""Input checks shared by the loss modules (dtype and shape validation with clear messages)."""

from __future__ import annotations

import jax
import jax.numpy as jnp


def as_float32(x: jax.Array, name: str) -> jax.Array:
    """Casts a floating input to float32 for the loss math; rejects integer inputs (optax does the same)."""
    x = jnp.asarray(x)
    if not jnp.issubdtype(x.dtype, jnp.floating):
        raise TypeError(
            f"{name} must be a floating array (embeddings or logits), got dtype {x.dtype}."
        )
    return x.astype(jnp.float32)


def check_same_shape(a: jax.Array, b: jax.Array, names: str) -> None:
    if a.shape != b.shape:
        raise ValueError(f"{names} must have the same shape, got {a.shape} and {b.shape}.")


def check_rank(x: jax.Array, rank: int, name: str, layout: str) -> None:
    if x.ndim != rank:
        raise ValueError(f"{name} must be {layout} (rank {rank}), got shape {x.shape}.")


def l2_normalize(x: jax.Array, axis: int = -1, eps: float = 1e-12) -> jax.Array:
    """x / max(||x||, eps); the eps keeps a zero vector finite (and its gradient defined)."""
    norm_sq = jnp.sum(x * x, axis=axis, keepdims=True)
    return x * jax.lax.rsqrt(jnp.maximum(norm_sq, eps * eps))
