"""Language-model losses: token cross-entropy for masked LM (BERT), next-token LM (GPT, ELMo) and
sequence-to-sequence reconstruction (BART).

All take logits [B, L, V] (any float dtype; the math is float32), integer targets [B, L], and return one
value per example [B]: the mean negative log-likelihood over that example's counted positions (0 for an
example with none), so padding never contributes and the caller chooses the reduction.
`token_cross_entropy` gives the per-token values [B, L] for token-weighted reductions (perplexity).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from ssl_jax.losses._checks import as_float32, check_rank


def _check_targets(logits: jax.Array, targets: jax.Array, name: str = "targets") -> jax.Array:
    targets = jnp.asarray(targets)
    if not jnp.issubdtype(targets.dtype, jnp.integer):
        raise TypeError(f"{name} must be integer token ids, got dtype {targets.dtype}.")
    if targets.shape != logits.shape[:-1]:
        raise ValueError(
            f"{name} {targets.shape} must match the logits' leading dimensions {logits.shape[:-1]}."
        )
    return targets


def token_cross_entropy(
    logits: jax.Array, targets: jax.Array, *, label_smoothing: float = 0.0
) -> jax.Array:
    """-log softmax(logits)[target] per position: logits [..., V], targets int [...] -> float32 [...].

    label_smoothing eps: the target distribution is (1 - eps) one-hot + eps uniform over V
    (Szegedy et al. 2016), as BART and fairseq's translation models train."""
    logits = as_float32(logits, "logits")
    targets = _check_targets(logits, targets)
    log_probs = jax.nn.log_softmax(logits, axis=-1)  # subtracts the max: stable in float32
    nll = -jnp.take_along_axis(log_probs, targets[..., None].astype(jnp.int32), axis=-1)[..., 0]
    if label_smoothing:
        nll = (1.0 - label_smoothing) * nll - label_smoothing * jnp.mean(log_probs, axis=-1)
    return nll


def _weighted_mean(values: jax.Array, weights: jax.Array) -> jax.Array:
    """Per-row mean of values [B, L] over weights [B, L]; 0 where a row has no weight."""
    total = jnp.sum(weights, axis=-1)
    return jnp.sum(values * weights, axis=-1) / jnp.maximum(total, 1.0)


def masked_lm_loss(logits: jax.Array, targets: jax.Array, masked: jax.Array) -> jax.Array:
    """BERT's masked-LM loss (Devlin et al. 2019, Sec. 3.1, Task #1): the cross-entropy of the
    original tokens at the positions chosen for prediction, and nowhere else.

    logits: [B, L, V] for the corrupted input; targets: int [B, L], the uncorrupted tokens;
    masked: bool [B, L], the positions chosen for prediction (80/10/10 corrupted or not; never padding).
    Returns: float32 [B], each example's mean over its chosen positions.
    """
    logits = as_float32(logits, "logits")
    check_rank(logits, 3, "logits", "[batch, length, vocab]")
    masked = jnp.asarray(masked)
    if masked.shape != jnp.shape(targets):
        raise ValueError(
            f"masked {masked.shape} must have the targets' shape {jnp.shape(targets)}."
        )
    nll = token_cross_entropy(logits, targets)
    return _weighted_mean(nll, masked.astype(jnp.float32))


def causal_lm_loss(logits: jax.Array, tokens: jax.Array, *, ignore_id: int = 0) -> jax.Array:
    """Next-token loss (Radford et al. 2018, eq. 1): position t's logits predict token t + 1.

    logits: [B, L, V] from a causal model run on tokens [B, L]; the last position predicts nothing and
    targets equal to `ignore_id` (padding) are not counted. Returns: float32 [B], each example's mean
    over its L - 1 shifted targets that are not ignored.
    """
    logits = as_float32(logits, "logits")
    check_rank(logits, 3, "logits", "[batch, length, vocab]")
    tokens = _check_targets(logits, tokens, "tokens")
    targets = tokens[:, 1:]
    nll = token_cross_entropy(logits[:, :-1], targets)
    return _weighted_mean(nll, (targets != ignore_id).astype(jnp.float32))


def seq2seq_loss(
    logits: jax.Array,
    targets: jax.Array,
    *,
    ignore_id: int = 0,
    label_smoothing: float = 0.0,
) -> jax.Array:
    """Sequence-to-sequence cross-entropy (BART, Lewis et al. 2020: the decoder reconstructs the
    original document): logits [B, T, V] of a decoder fed the targets shifted right; targets int [B, T]
    aligned with the logits (no shift here). Positions whose target is `ignore_id` are not counted.
    Returns: float32 [B], each example's mean over its counted positions."""
    logits = as_float32(logits, "logits")
    check_rank(logits, 3, "logits", "[batch, length, vocab]")
    targets = _check_targets(logits, targets)
    nll = token_cross_entropy(logits, targets, label_smoothing=label_smoothing)
    return _weighted_mean(nll, (targets != ignore_id).astype(jnp.float32))
