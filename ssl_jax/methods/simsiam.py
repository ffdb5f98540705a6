"""SimSiam (Chen & He 2021): BYOL without the momentum encoder; the stop-gradient alone prevents collapse.

One network, shared by both views: encoder -> projector (3-layer MLP ending in BN, Sec. 3 "Baseline
settings") -> predictor (2-layer bottleneck MLP). Each view's prediction regresses onto the other view's
projection through a stop-gradient; the loss is the negative cosine, averaged over the two orderings
(eq. 2). No target network and no state besides the parameters (`extra` is empty). Each view has its own
forward pass (BN statistics per view, as in the paper's pseudocode); BN is synchronized over the data axis.

The network (`bases.SiameseNetwork`, BYOL's online network) and the backbone's export come from
ssl_jax.methods.bases.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import ml_collections

from ssl_jax import augment
from ssl_jax.losses import simsiam_loss
from ssl_jax.methods import common
from ssl_jax.methods.base import LossAux, Variables
from ssl_jax.methods.bases import (
    BackboneMethod,
    SiameseNetwork,
    check_heads,
    forward_views,
    siamese_network,
)


class SimSiam(BackboneMethod):
    """config.model.{encoder, projector, predictor}; config.augment (a ViewSpec preset, both views)."""

    def __init__(
        self,
        config: ml_collections.ConfigDict,
        *,
        num_steps: int | None = None,
        steps_per_epoch: int | None = None,
    ):
        super().__init__(config, num_steps=num_steps, steps_per_epoch=steps_per_epoch)
        check_heads(config)

    def _network(self, axis_name: str | None) -> SiameseNetwork:
        return siamese_network(self.config, axis_name, with_predictor=True)

    def view_spec(self) -> augment.ViewSpec:
        return common.view_spec(self.config)

    def train_views(self) -> tuple[augment.ViewSpec, augment.ViewSpec]:
        return (self.view_spec(),) * 2

    def init(self, rng: jax.Array, image_shape: tuple[int, ...]) -> Variables:
        size = self.view_spec().crop_size
        dummy = jnp.zeros((2, size, size, image_shape[-1]), jnp.float32)
        variables = self._network(None).init(rng, dummy, train=True)
        return Variables(variables["params"], variables["batch_stats"], extra={})

    def loss_fn(self, params, batch_stats, extra, batch, *, rng, step, axis_name):
        del extra, step
        spec = self.view_spec()
        x1 = common.augment_view(jax.random.fold_in(rng, 1), batch, 0, spec)
        x2 = common.augment_view(jax.random.fold_in(rng, 2), batch, 1, spec)
        ((_, z1, p1), (_, z2, p2)), new_stats = forward_views(
            self._network(axis_name), params, batch_stats, (x1, x2)
        )
        # L = D(p1, stopgrad(z2))/2 + D(p2, stopgrad(z1))/2 (eq. 2); simsiam_loss stops the gradient
        # into its second argument, which is what keeps the shared network from collapsing.
        per_example = 0.5 * (simsiam_loss(p1, z2) + simsiam_loss(p2, z1))
        # The paper's collapse indicator (Fig. 2): std of the l2-normalized projections, ~1/sqrt(d).
        metrics = {"embedding_std": common.embedding_std(z1, axis_name)}
        return per_example.mean(), LossAux(new_stats, metrics)
