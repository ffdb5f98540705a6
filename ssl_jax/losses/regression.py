"""Non-contrastive regression losses: an online prediction regresses onto a target that gets no gradient.

BYOL and SimSiam use no negatives, so nothing here spans devices: each example's loss depends only on its
own prediction and target, and the losses take no `axis_name`. Each function scores one view ordering
(prediction of view 1 against the target of view 2); the methods symmetrize over the two orderings
themselves (BYOL sums them, SimSiam averages them; see each docstring) because the paper's two terms come
from different forward passes, not from a property of the loss.

The stop-gradient on the target sits inside the loss on purpose (STYLE.md, rule 6): the training step
only differentiates the online parameters, so it is not strictly needed there, but it documents that no
gradient ever flows into the target, and it keeps the losses correct when composed differently
(SimSiam's target is the online network itself, where the stop-gradient is the whole method).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from ssl_jax.losses._checks import as_float32, check_rank, check_same_shape, l2_normalize


def _cosine(predictions: jax.Array, targets: jax.Array, names: tuple[str, str]) -> jax.Array:
    """Per-row cosine similarity in float32 between predictions and stop_gradient(targets)."""
    check_rank(predictions, 2, names[0], "[batch, dim]")
    check_same_shape(predictions, targets, f"{names[0]} and {names[1]}")
    p = l2_normalize(as_float32(predictions, names[0]))  # fp32 whatever the activations were
    # No gradient flows into the target: it is a regression target, not a variable of this loss.
    z = jax.lax.stop_gradient(l2_normalize(as_float32(targets, names[1])))
    return jnp.sum(p * z, axis=-1)


def byol_loss(online_predictions: jax.Array, target_projections: jax.Array) -> jax.Array:
    """BYOL's regression loss (Grill et al. 2020, eq. 2): || p/||p|| - z'/||z'|| ||^2 = 2 - 2 cos(p, z').

    online_predictions: [batch, dim] q_theta(z_theta) of one view (online network: encoder, projector,
      predictor). target_projections: [batch, dim] z'_xi of the other view (target network: encoder,
      projector); wrapped in `stop_gradient` here.
    Returns: [batch] float32 in [0, 4]. BYOL's objective is the *sum* of the two view orderings,
    L + L~ (eq. 2 and Sec. 3.1), averaged over the batch; `ssl_jax.methods.byol` does that sum.
    """
    cos = _cosine(
        online_predictions, target_projections, ("online_predictions", "target_projections")
    )
    return 2.0 - 2.0 * cos


def simsiam_loss(predictions: jax.Array, projections: jax.Array) -> jax.Array:
    """SimSiam's negative cosine similarity (Chen & He 2021, eq. 1 with the stop-gradient of eq. 3):
    D(p, stopgrad(z)) = -(p / ||p||) . (z / ||z||).

    predictions: [batch, dim] p = h(f(x1)) of one view (encoder, projector, predictor).
    projections: [batch, dim] z = f(x2) of the other view, from the *same* network; wrapped in
      `stop_gradient` here, which is what keeps SimSiam from collapsing (Sec. 4.1).
    Returns: [batch] float32 in [-1, 1]. SimSiam's objective is the *mean* of the two orderings,
    L = D(p1, z2)/2 + D(p2, z1)/2 (eq. 2); `ssl_jax.methods.simsiam` does that average.
    """
    return -_cosine(predictions, projections, ("predictions", "projections"))
