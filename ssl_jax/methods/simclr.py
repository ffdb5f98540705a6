"""Two-view methods: augment twice, encode both views with one network, score the pair with an objective.

`TwoViewMethod` is the shared machinery; a subclass only writes `objective(z1, z2, *, axis_name)`, a pure
function of the two views' projections. SimCLR (Chen et al. 2020) is the NT-Xent objective over the global
batch. A researcher composes objectives the same way (see `ssl_jax.methods.composite` and the README).
"""

from __future__ import annotations

import abc

import jax
import jax.numpy as jnp

from ssl_jax import augment
from ssl_jax.losses import nt_xent
from ssl_jax.methods import common
from ssl_jax.methods.base import LossAux, Method, Variables


class TwoViewMethod(Method):
    """Encoder + projector (config.model.{encoder, projector}) on two views made with config.augment."""

    @abc.abstractmethod
    def objective(
        self, z1: jax.Array, z2: jax.Array, *, axis_name: str | None
    ) -> tuple[jax.Array, dict[str, jax.Array]]:
        """This device's loss for projections z1, z2 [b, d] of its rows, and scalar terms to log.

        Runs under shard_map: pass `axis_name` to losses that need the global batch (negatives, statistics).
        """

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

    def views(self, rng: jax.Array, batch: dict[str, jax.Array]) -> tuple[jax.Array, jax.Array]:
        """The two float views [b, s, s, C] of this device's rows: config.augment applied twice to the
        uint8 images, on device. (benchmarks/ablations.py overrides it to feed views made beforehand.)"""
        spec = self._view_spec()
        images, ids = batch["image"], batch["example_ids"]
        x1 = augment.augment_batch(jax.random.fold_in(rng, 1), images, ids, spec)
        x2 = augment.augment_batch(jax.random.fold_in(rng, 2), images, ids, spec)
        return x1, x2

    def loss_fn(self, params, batch_stats, extra, batch, *, rng, step, axis_name):
        del extra, step
        x1, x2 = self.views(rng, batch)
        n = x1.shape[0]
        # One forward pass over both views: BN statistics are taken over all 2N views, as in SimCLR.
        (_, z), updates = self._network(axis_name).apply(
            {"params": params, "batch_stats": batch_stats},
            jnp.concatenate([x1, x2]),
            train=True,
            mutable=["batch_stats"],
        )
        loss, terms = self.objective(z[:n], z[n:], axis_name=axis_name)
        metrics = {"embedding_std": common.embedding_std(z[:n], axis_name), **terms}
        return loss, LossAux(updates["batch_stats"], metrics)

    def encoder_variables(self, params, batch_stats):
        return {"params": params["encoder"], "batch_stats": batch_stats["encoder"]}

    def encode(self, encoder_variables, images):
        x = common.eval_images(self.config, images)
        encoder = common.build_encoder(self.config, axis_name=None)
        return encoder.apply(encoder_variables, x, train=False).astype(jnp.float32)


class SimCLR(TwoViewMethod):
    """config.simclr.temperature; NT-Xent with negatives gathered over every device."""

    def objective(self, z1, z2, *, axis_name):
        per_example = nt_xent(
            z1, z2, temperature=self.config.simclr.temperature, axis_name=axis_name
        )
        return per_example.mean(), {}
