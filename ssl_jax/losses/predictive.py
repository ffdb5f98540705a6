"""Predictive losses in feature space: regress a representation of the future from the present.

Vondrick, Pirsiavash & Torralba 2016, "Anticipating Visual Representations from Unlabeled Video": a
network g is trained to predict phi(x_{t+Delta}), the representation of a future frame, from the
current frame, by minimising sum_i ||g(x_t^i) - phi(x_{t+Delta}^i)||_2^2 (their eq. 1, the single-future
case). The target representation phi is a fixed, pre-trained encoder: were phi trained by the same loss,
the constant phi(x) = c with g = c would reach the minimum 0 and carry no information (collapse).
`feature_std` measures that collapse.

Nothing here stops gradients: whether phi receives gradient is the caller's choice (a frozen phi in
`ssl_jax.methods.future_prediction`, or a trainable one to demonstrate the collapse), so the loss stays
the plain regression of the paper.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from ssl_jax.losses._checks import as_float32, check_rank, check_same_shape


def feature_regression_loss(predictions: jax.Array, targets: jax.Array) -> jax.Array:
    """Squared Euclidean distance between predicted and target features (Vondrick et al. 2016, eq. 1).

    predictions: [batch, dim] g(x_t), the predicted representation of the future frame.
    targets: [batch, dim] phi(x_{t+Delta}), the representation of the frame that came (no
      stop_gradient here: see the module docstring).
    Returns: [batch] float32 ||predictions - targets||^2 summed over the feature dimension.
    """
    check_rank(predictions, 2, "predictions", "[batch, dim]")
    check_same_shape(predictions, targets, "predictions and targets")
    diff = as_float32(predictions, "predictions") - as_float32(targets, "targets")
    return jnp.sum(diff * diff, axis=-1)


def feature_std(features: jax.Array, *, axis_name: str | None = None) -> jax.Array:
    """Collapse indicator: the standard deviation over the (global) batch of each feature, averaged over
    features. 0 exactly when every example has the same representation.

    features: [batch, dim] this device's rows. axis_name: the data axis when called per device under
      shard_map; the statistics are then over the global batch (sums psum-ed), so the value does not
      depend on how the batch is split. Returns: scalar float32 (population std, ddof = 0).
    """
    check_rank(features, 2, "features", "[batch, dim]")
    x = as_float32(features, "features")

    def total(v: jax.Array) -> jax.Array:
        return v if axis_name is None else jax.lax.psum(v, axis_name)

    count = total(jnp.float32(x.shape[0]))
    mean = total(jnp.sum(x, axis=0)) / count
    # Two passes (mean, then squared deviations) rather than E[x^2] - E[x]^2, which cancels badly for
    # features with a large mean and a small spread: exactly the nearly collapsed case being measured.
    var = total(jnp.sum(jnp.square(x - mean), axis=0)) / count
    return jnp.mean(jnp.sqrt(var))
