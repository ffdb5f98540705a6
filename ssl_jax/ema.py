"""Functional exponential moving averages and their schedules (BYOL, MoCo and DINO targets).

A target network is a pytree updated as `target <- decay * target + (1 - decay) * online` after each
optimizer step; nothing is mutated and no gradient flows into the target (the update is outside the loss).
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp

PyTree = Any


def ema_update(target: PyTree, online: PyTree, decay: jax.Array | float) -> PyTree:
    """decay * target + (1 - decay) * online, leaf by leaf, in each leaf's dtype.

    `decay` is a scalar (python float or traced array): 1 keeps the target, 0 copies the online tree.
    """
    decay = jnp.asarray(decay, jnp.float32)

    def update(t, o):
        mixed = decay * t.astype(jnp.float32) + (1.0 - decay) * o.astype(jnp.float32)
        return mixed.astype(t.dtype)

    return jax.tree.map(update, target, online)


def cosine_increase(
    step: jax.Array | int, total_steps: int, base: float, final: float = 1.0
) -> jax.Array:
    """BYOL's target decay (Grill et al. 2020, Sec. 3.2):
    tau_k = final - (final - base) * (cos(pi * k / K) + 1) / 2, so tau_0 = base and tau_K = final.
    Steps past K stay at `final`."""
    if total_steps <= 0:
        raise ValueError(f"total_steps must be positive, got {total_steps}.")
    progress = jnp.clip(jnp.asarray(step, jnp.float32) / total_steps, 0.0, 1.0)
    return final - (final - base) * (jnp.cos(jnp.pi * progress) + 1.0) / 2.0


def linear_warmup(step: jax.Array | int, warmup_steps: int, start: float, end: float) -> jax.Array:
    """start -> end linearly over `warmup_steps`, then `end` (DINO's teacher temperature warm-up)."""
    if warmup_steps <= 0:
        return jnp.asarray(end, jnp.float32)
    progress = jnp.clip(jnp.asarray(step, jnp.float32) / warmup_steps, 0.0, 1.0)
    return start + (end - start) * progress
