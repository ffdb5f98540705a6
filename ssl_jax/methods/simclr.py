"""SimCLR (Chen et al. 2020): two augmented views, encoder + 2-layer projector, NT-Xent over the global batch."""

from __future__ import annotations

import jax
import jax.numpy as jnp

from ssl_jax import augment
from ssl_jax.losses import nt_xent
from ssl_jax.methods import common
from ssl_jax.methods.base import LossAux, Method, Variables


class SimCLR(Method):
    """config.simclr.temperature; config.model.{encoder, projector}; config.augment (a ViewSpec preset)."""

    def _network(self, axis_name: str | None) -> common.EncoderWithHead:
        return common.EncoderWithHead(
            encoder=common.build_encoder(self.config, axis_name=axis_name),
            head=common.build_mlp(self.config, self.config.model.projector, axis_name=axis_name),
        )

    def _view_spec(self) -> augment.ViewSpec:
        return common.view_spec(self.config)

    def init(self, rng: jax.Array, image_shape: tuple[int, ...]) -> Variables:
        size = self._view_spec().crop_size
        dummy = jnp.zeros((2, size, size, image_shape[-1]), jnp.float32)
        variables = self._network(None).init(rng, dummy, train=True)
        return Variables(variables["params"], variables["batch_stats"], extra={})

    def loss_fn(self, params, batch_stats, extra, batch, *, rng, step, axis_name):
        del extra, step
        spec = self._view_spec()
        images, ids = batch["image"], batch["example_ids"]
        x1 = augment.augment_batch(jax.random.fold_in(rng, 1), images, ids, spec)
        x2 = augment.augment_batch(jax.random.fold_in(rng, 2), images, ids, spec)
        n = x1.shape[0]
        # One forward pass over both views: BN statistics are taken over all 2N views, as in the paper.
        (_, z), updates = self._network(axis_name).apply(
            {"params": params, "batch_stats": batch_stats},
            jnp.concatenate([x1, x2]),
            train=True,
            mutable=["batch_stats"],
        )
        per_example = nt_xent(
            z[:n], z[n:], temperature=self.config.simclr.temperature, axis_name=axis_name
        )
        metrics = {"embedding_std": common.embedding_std(z[:n], axis_name)}
        return per_example.mean(), LossAux(updates["batch_stats"], metrics)

    def encoder_variables(self, params, batch_stats):
        return {"params": params["encoder"], "batch_stats": batch_stats["encoder"]}

    def encode(self, encoder_variables, images):
        x = common.eval_images(self.config, images)
        encoder = common.build_encoder(self.config, axis_name=None)
        return encoder.apply(encoder_variables, x, train=False).astype(jnp.float32)
