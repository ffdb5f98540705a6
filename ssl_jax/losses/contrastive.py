"""Contrastive losses whose negatives are the whole global batch.

Every function takes `axis_name`: under `jax.shard_map` each device holds its local rows, scores them against
the rows of every device (`all_gather(..., tiled=True)`), and finds its positives at
`local_index + axis_index * local_batch`. JAX differentiates through the gather (its transpose is a
reduce-scatter), so the gradient equals that of one device holding the global batch; tests prove it.
`moco_loss` is the exception: its negatives are a queue replicated on every device, so it is local.
`clip_loss` contrasts two modalities (images against texts, and texts against images).
"""

from __future__ import annotations

import functools
import math

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


def capped_logit_scale(log_scale: jax.Array, *, max_scale: float = 100.0) -> jax.Array:
    """CLIP's learnable logit scale exp(t), capped at `max_scale` (Radford et al. 2021, Sec. 2.5:
    "clipped to prevent scaling the logits by more than 100"). log_scale: scalar t = log(1 / tau).

    Returns exp(min(t, log max_scale)) as float32. The gradient is that of clamping t into range after
    every step (OpenCLIP's `logit_scale.clamp_(0, log 100)`): at or above the cap, a gradient that would
    raise t further is dropped and one that would lower it passes, so t never sticks at the cap. A plain
    `minimum` would zero both and leave t stuck there for good once it crossed.
    """
    if max_scale <= 0:
        raise ValueError(f"max_scale must be positive, got {max_scale}.")
    t = as_float32(log_scale, "log_scale")
    if t.ndim:
        raise ValueError(f"log_scale must be a scalar, got shape {t.shape}.")
    return jnp.exp(_cap_from_above(t, math.log(max_scale)))


@functools.partial(jax.custom_vjp, nondiff_argnums=(1,))
def _cap_from_above(t: jax.Array, cap: float) -> jax.Array:
    return jnp.minimum(t, cap)


def _cap_fwd(t, cap):
    return jnp.minimum(t, cap), t


def _cap_bwd(cap, t, g):
    # Descent moves t by -g: pass the gradient inside the range, or when it points back into it (g > 0).
    return (jnp.where((t < cap) | (g > 0), g, 0.0),)


_cap_from_above.defvjp(_cap_fwd, _cap_bwd)


def clip_loss(
    image_emb: jax.Array,
    text_emb: jax.Array,
    *,
    logit_scale: jax.Array | float,
    axis_name: str | None = None,
) -> jax.Array:
    """CLIP's symmetric contrastive loss (Radford et al. 2021, Fig. 3) over the global batch.

    image_emb, text_emb: [batch, dim] embeddings of paired images and texts (this device's rows when
    `axis_name` is given); row i's text is its image's only positive. Both are l2-normalized, so
    logits[i, j] = logit_scale * cos(image_i, text_j) over the N x N global batch (N = batch * devices;
    each device scores its rows against the other modality gathered from every device, positives at
    `local_index + axis_index * local_batch`). logit_scale: scalar exp(t) (see `capped_logit_scale`);
    its gradient is returned too, which is how CLIP learns its temperature.

        l_i = ( CE(logits[i, :], i) + CE(logits[:, i], i) ) / 2

    Returns: [batch] float32, per example the mean of its image->text and text->image cross-entropies, so
    that `mean(clip_loss(...))` over the global batch is CLIP's (loss_i + loss_t) / 2.
    """
    check_rank(image_emb, 2, "image_emb", "[batch, dim]")
    check_same_shape(image_emb, text_emb, "image_emb and text_emb")
    scale = as_float32(logit_scale, "logit_scale")
    if scale.ndim:
        raise ValueError(f"logit_scale must be a scalar, got shape {scale.shape}.")
    images = l2_normalize(as_float32(image_emb, "image_emb"))  # fp32 whatever the activations were
    texts = l2_normalize(as_float32(text_emb, "text_emb"))
    n = images.shape[0]

    all_texts = parallel.all_gather(texts, axis_name)  # [N, d]
    all_images = parallel.all_gather(images, axis_name)
    image_to_text = scale * images @ all_texts.T  # [n, N]: this device's rows of the logit matrix
    text_to_image = scale * texts @ all_images.T  # [n, N]: this device's columns, transposed
    positives = jnp.arange(n) + parallel.axis_index(axis_name) * n
    # log_softmax subtracts the row max: stable at CLIP's largest scale (100).
    loss_i = -jnp.take_along_axis(jax.nn.log_softmax(image_to_text), positives[:, None], axis=-1)
    loss_t = -jnp.take_along_axis(jax.nn.log_softmax(text_to_image), positives[:, None], axis=-1)
    return 0.5 * (loss_i[:, 0] + loss_t[:, 0])


def cpc_loss(
    predictions: jax.Array,
    targets: jax.Array,
    *,
    first_step: int = 1,
    axis_name: str | None = None,
) -> jax.Array:
    """CPC's InfoNCE over k-step-ahead predictions (van den Oord et al. 2018, eqs. 3-4).

    predictions: [batch, T, K, dim], predictions[b, t, j] = W_k c_t, the bilinear prediction from the
      context at step t of the encoding z_{t+k} with k = first_step + j. targets: [batch, T, dim], the
      encodings z_t. Rows are sequences (this device's rows when `axis_name` is given).
    The score is the bilinear f_k = exp(z_{t+k}^T W_k c_t), unnormalized and without temperature. The
    positive of (b, t, k) is z_{t+k} of sequence b; its negatives are z_{t+k} of the other N - 1
    sequences of the global batch (the same step, gathered across devices, positives at
    `local_index + axis_index * local_batch`), so each (t, k) is an N-way classification. Pairs with
    t + k >= T have no target and are left out.
    Returns: [batch] float32, per sequence sum_k mean_t l_{t,k}: the paper's L = sum_k L_k, each L_k an
    expectation over the steps t that have a target k steps ahead.
    """
    check_rank(predictions, 4, "predictions", "[batch, T, K, dim]")
    check_rank(targets, 3, "targets", "[batch, T, dim]")
    n, steps, num_k, dim = predictions.shape
    if targets.shape != (n, steps, dim):
        raise ValueError(
            f"targets must be [batch, T, dim] = {(n, steps, dim)} to match predictions "
            f"{predictions.shape}, got {targets.shape}."
        )
    if first_step < 1 or first_step + num_k - 1 >= steps:
        raise ValueError(
            f"Steps ahead k = {first_step}..{first_step + num_k - 1} must lie in [1, T - 1] = "
            f"[1, {steps - 1}]: first_step >= 1 and first_step + K - 1 < T."
        )
    pred = as_float32(predictions, "predictions")  # fp32 scores whatever the activations were
    z = as_float32(targets, "targets")
    all_z = parallel.all_gather(z, axis_name)  # [N, T, d], N = n * devices
    positives = jnp.arange(n) + parallel.axis_index(axis_name) * n  # this device's rows in [0, N)
    total = jnp.zeros((n,), jnp.float32)
    for j in range(num_k):  # K is small and static: one [n, T - k, N] score block per step ahead
        k = first_step + j
        logits = jnp.einsum("ntd,mtd->ntm", pred[:, : steps - k, j], all_z[:, k:])
        log_prob = jax.nn.log_softmax(logits, axis=-1)  # subtracts the row max: no overflow
        target = jnp.broadcast_to(positives[:, None, None], (n, steps - k, 1))
        per_step = -jnp.take_along_axis(log_prob, target, axis=-1)[..., 0]  # [n, T - k]
        total = total + per_step.mean(axis=1)
    return total


def sgns_loss(
    center_emb: jax.Array,
    context_emb: jax.Array,
    negative_emb: jax.Array,
) -> jax.Array:
    """word2vec's skip-gram negative-sampling objective (Mikolov et al. 2013b, eq. 4), negated:

        l = -log sigma(v'_o . v_c) - sum_{i<m} log sigma(-v'_{n_i} . v_c)

    center_emb: [batch, dim] input ("v") vectors of the center words; context_emb: [batch, dim] output
    ("v'") vectors of their observed context words; negative_emb: [batch, m, dim] output vectors of m
    noise words drawn per pair (from unigram^0.75 by the caller). No in-batch negatives, so the loss is
    local to each row and needs no communication. log sigma is `jax.nn.log_sigmoid`, exact for large
    scores of either sign. Returns: [batch] float32.
    """
    check_rank(center_emb, 2, "center_emb", "[batch, dim]")
    check_same_shape(center_emb, context_emb, "center_emb and context_emb")
    check_rank(negative_emb, 3, "negative_emb", "[batch, m, dim]")
    if negative_emb.shape[::2] != center_emb.shape:
        raise ValueError(
            f"negative_emb must be [batch, m, dim] with [batch, dim] = {center_emb.shape}, "
            f"got {negative_emb.shape}."
        )
    v = as_float32(center_emb, "center_emb")
    positive = jnp.sum(v * as_float32(context_emb, "context_emb"), axis=-1)  # [b]
    negative = jnp.einsum("bd,bmd->bm", v, as_float32(negative_emb, "negative_emb"))  # [b, m]
    return -jax.nn.log_sigmoid(positive) - jnp.sum(jax.nn.log_sigmoid(-negative), axis=-1)
