"""Contrastive losses whose negatives are the whole global batch.

Every function takes `axis_name`: under `jax.shard_map` each device holds its local rows, scores them against
the rows of every device (`all_gather(..., tiled=True)`), and finds its positives at
`local_index + axis_index * local_batch`. JAX differentiates through the gather (its transpose is a
reduce-scatter), so the gradient equals that of one device holding the global batch; tests prove it.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from ssl_jax import parallel
from ssl_jax.losses._checks import as_float32, check_rank, check_same_shape, l2_normalize


def nt_xent(
    z1: jax.Array,
    z2: jax.Array,
    *,
    temperature: float = 0.1,
    axis_name: str | None = None,
) -> jax.Array:
    """SimCLR's normalized-temperature cross-entropy (Chen et al. 2020, eq. 1).

    z1, z2: [batch, dim] projections of two views of the same examples (this device's rows when
    `axis_name` is given). Each of the 2N views is an anchor whose positive is its other view and whose
    negatives are the other 2N - 2 views of the global batch.
    Returns: [batch] float32, per example the mean of its two anchors' losses, so that
    `mean(nt_xent(...))` over the global batch is the paper's L = 1/(2N) sum_k [l(2k-1, 2k) + l(2k, 2k-1)].
    """
    check_rank(z1, 2, "z1", "[batch, dim]")
    check_same_shape(z1, z2, "z1 and z2")
    if temperature <= 0:
        raise ValueError(f"temperature must be positive, got {temperature}.")
    z1 = l2_normalize(as_float32(z1, "z1"))  # cosine similarity; fp32 whatever the activations were
    z2 = l2_normalize(as_float32(z2, "z2"))
    n = z1.shape[0]

    anchors = jnp.concatenate(
        [z1, z2], axis=0
    )  # [2n, d]: local view-1 rows, then local view-2 rows
    k1 = parallel.all_gather(z1, axis_name)  # [N, d], N = n * devices
    k2 = parallel.all_gather(z2, axis_name)
    keys = jnp.concatenate([k1, k2], axis=0)  # [2N, d]: all view-1 rows, then all view-2 rows
    big_n = k1.shape[0]

    logits = anchors @ keys.T / temperature  # [2n, 2N]
    rows = (
        jnp.arange(n) + parallel.axis_index(axis_name) * n
    )  # this device's rows in the global batch
    self_cols = jnp.concatenate([rows, rows + big_n])
    pos_cols = jnp.concatenate([rows + big_n, rows])
    # An anchor is not its own negative: drop the self-similarity from the denominator.
    is_self = jnp.arange(2 * big_n)[None, :] == self_cols[:, None]
    logits = jnp.where(is_self, -jnp.inf, logits)
    log_prob = jax.nn.log_softmax(
        logits, axis=-1
    )  # subtracts the row max: stable at small temperature
    per_anchor = -jnp.take_along_axis(log_prob, pos_cols[:, None], axis=-1)[:, 0]
    return 0.5 * (per_anchor[:n] + per_anchor[n:])
