"""Contrastive losses whose negatives are the whole global batch.

Every function takes `axis_name`: under `jax.shard_map` each device holds its local rows, scores them against
the rows of every device (`all_gather(..., tiled=True)`), and finds its positives at
`local_index + axis_index * local_batch`. JAX differentiates through the gather (its transpose is a
reduce-scatter), so the gradient equals that of one device holding the global batch; tests prove it.
`moco_loss` is the exception: its negatives are a queue replicated on every device, so it is local.
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


def info_nce(
    queries: jax.Array,
    keys: jax.Array,
    *,
    negatives: jax.Array | None = None,
    temperature: float,
    axis_name: str | None = None,
) -> jax.Array:
    """InfoNCE with in-batch negatives gathered over the global batch (van den Oord et al. 2018, eq. 4).

    queries, keys: [batch, dim], row i's key is its query's positive (this device's rows when `axis_name`
    is given). negatives: optional [K, dim] extra negatives shared by every row (a queue, the same on
    every device). Queries, keys and negatives are l2-normalized, so the scores are cosine similarities.
    In-batch keys ARE included: row i's negatives are the other N - 1 keys of the global batch (gathered
    across devices, positives at `local_index + axis_index * local_batch` as in `nt_xent`) plus every row of
    `negatives`:

        l_i = -log exp(q_i.k_i / t) / (sum_{j<N} exp(q_i.k_j / t) + sum_{m<K} exp(q_i.n_m / t))

    Gradients reach queries, keys (through the gather) and negatives; a caller whose keys are targets
    (MoCo) stops their gradient itself. MoCo v3 (Chen, Xie & He 2021, Alg. 1) is this loss over a momentum
    encoder's keys, multiplied by 2 * temperature (`CrossEntropyLoss()(logits, labels) * (2 * t)`); that
    scaling belongs to the caller (ssl_jax.methods.moco.MoCoV3), so this function stays the plain InfoNCE.
    Returns: [batch] float32, the cross-entropy of each row.
    """
    check_rank(queries, 2, "queries", "[batch, dim]")
    check_same_shape(queries, keys, "queries and keys")
    if temperature <= 0:
        raise ValueError(f"temperature must be positive, got {temperature}.")
    q = l2_normalize(as_float32(queries, "queries"))  # fp32 whatever the activations were
    k = l2_normalize(as_float32(keys, "keys"))
    n = q.shape[0]

    all_keys = parallel.all_gather(k, axis_name)  # [N, d], N = n * devices
    logits = q @ all_keys.T / temperature  # [n, N]
    if negatives is not None:
        check_rank(negatives, 2, "negatives", "[K, dim]")
        if negatives.shape[1] != q.shape[1]:
            raise ValueError(
                f"negatives must have the queries' dim {q.shape[1]}, got shape {negatives.shape}."
            )
        extra = l2_normalize(as_float32(negatives, "negatives"))
        logits = jnp.concatenate([logits, q @ extra.T / temperature], axis=1)  # [n, N + K]
    positives = jnp.arange(n) + parallel.axis_index(axis_name) * n  # this device's rows in [0, N)
    log_prob = jax.nn.log_softmax(logits, axis=-1)  # subtracts the row max: stable at small t
    return -jnp.take_along_axis(log_prob, positives[:, None], axis=-1)[:, 0]


def moco_loss(
    q: jax.Array,
    k: jax.Array,
    queue: jax.Array,
    *,
    temperature: float,
    axis_name: str | None = None,
) -> jax.Array:
    """MoCo v1/v2's contrastive loss against a queue (He et al. 2020, eq. 1):

        L_q = -log exp(q.k+ / t) / (exp(q.k+ / t) + sum_{i<K} exp(q.k_i / t))

    q: [batch, dim] queries; k: [batch, dim] the momentum encoder's keys of the same rows (row i's key is
    row i's only positive); queue: [K, dim] the negatives, keys of earlier batches. Other rows' keys are
    NOT negatives (MoCo enqueues this batch's keys only after the loss). All three are l2-normalized; k
    and the queue are behind a stop-gradient, since only the query encoder learns by gradient.
    axis_name: accepted so every contrastive loss has the same signature, but unused: the positive is
    the row's own key and the queue is the same on every device, so the loss needs no communication.
    Returns: [batch] float32, the cross-entropy of each row with the positive at logit 0.
    """
    del axis_name
    check_rank(q, 2, "q", "[batch, dim]")
    check_same_shape(q, k, "q and k")
    check_rank(queue, 2, "queue", "[K, dim]")
    if queue.shape[1] != q.shape[1]:
        raise ValueError(f"queue must have the queries' dim {q.shape[1]}, got shape {queue.shape}.")
    if temperature <= 0:
        raise ValueError(f"temperature must be positive, got {temperature}.")
    q = l2_normalize(as_float32(q, "q"))
    # Targets: the keys and the queue come from the momentum encoder and take no gradient.
    k = jax.lax.stop_gradient(l2_normalize(as_float32(k, "k")))
    queue = jax.lax.stop_gradient(l2_normalize(as_float32(queue, "queue")))
    positive = jnp.sum(q * k, axis=-1, keepdims=True)  # [n, 1]
    logits = jnp.concatenate([positive, q @ queue.T], axis=1) / temperature  # [n, 1 + K]
    return -jax.nn.log_softmax(logits, axis=-1)[:, 0]
