"""Barlow Twins (Zbontar et al. 2021): two views through one encoder + projector, and a loss that drives
the cross-correlation of their embeddings over the global batch towards the identity.

`TwinEmbeddingMethod` holds what Barlow Twins and VICReg share: one network (backbone -> 3-layer MLP with
BN + ReLU), two augmented views (BYOL's asymmetric pair under the "byol" preset), one forward pass per view
(BN statistics per view, as both papers' code calls the network once per view), synchronized BN, and the
collapse indicator. A subclass supplies only the loss of the two embeddings, computed over the global batch
(ssl_jax.losses.redundancy). There is no target network and no method state.
"""

from __future__ import annotations

import abc

import jax
import jax.numpy as jnp

from ssl_jax import augment
from ssl_jax.losses.redundancy import barlow_twins_terms
from ssl_jax.methods import common
from ssl_jax.methods.base import LossAux, Method, PyTree, Variables


class TwinEmbeddingMethod(Method):
    """Encoder + projector applied to two views; the loss is a function of the two embeddings' statistics.

    config.model.{encoder, projector}; config.augment (a ViewSpec preset: "byol" gives the asymmetric
    pair, views 0 and 1; any other preset is used for both views; other keys override both views).
    """

    @abc.abstractmethod
    def loss_terms(
        self, z1: jax.Array, z2: jax.Array, *, axis_name: str | None
    ) -> tuple[jax.Array, dict[str, jax.Array]]:
        """(loss, terms to log) of the two views' embeddings [b, dim] (this device's rows); the loss is
        over the global batch and identical on every device."""

    def _network(self, axis_name: str | None) -> common.EncoderWithHead:
        return common.EncoderWithHead(
            encoder=common.build_encoder(self.config, axis_name=axis_name),
            head=common.build_mlp(self.config, self.config.model.projector, axis_name=axis_name),
        )

    def view_specs(self) -> tuple[augment.ViewSpec, augment.ViewSpec]:
        if self.config.augment.get("preset") == "byol":
            return common.view_spec(self.config, view=0), common.view_spec(self.config, view=1)
        spec = common.view_spec(self.config)
        return spec, spec

    def init(self, rng: jax.Array, image_shape: tuple[int, ...]) -> Variables:
        size = self.view_specs()[0].crop_size
        dummy = jnp.zeros((2, size, size, image_shape[-1]), jnp.float32)
        variables = self._network(None).init(rng, dummy, train=True)
        return Variables(variables["params"], variables["batch_stats"], extra={})

    def loss_fn(self, params, batch_stats, extra, batch, *, rng, step, axis_name):
        del extra, step
        images, ids = batch["image"], batch["example_ids"]
        network = self._network(axis_name)
        embeddings = []
        # One training-mode pass per view, threading the BN running statistics through both (as two
        # calls of a PyTorch module would): each view's BN statistics are its own, as in both papers.
        for i, spec in enumerate(self.view_specs(), start=1):
            x = augment.augment_batch(jax.random.fold_in(rng, i), images, ids, spec)
            (_, z), updates = network.apply(
                {"params": params, "batch_stats": batch_stats},
                x,
                train=True,
                mutable=["batch_stats"],
            )
            batch_stats = updates["batch_stats"]
            embeddings.append(z)
        z1, z2 = embeddings
        loss, terms = self.loss_terms(z1, z2, axis_name=axis_name)
        metrics = {**terms, "embedding_std": common.embedding_std(z1, axis_name)}
        return loss, LossAux(batch_stats, metrics)

    def encoder_variables(self, params: PyTree, batch_stats: PyTree) -> dict[str, PyTree]:
        return {"params": params["encoder"], "batch_stats": batch_stats["encoder"]}

    def encode(self, encoder_variables: dict[str, PyTree], images: jax.Array) -> jax.Array:
        x = common.eval_images(self.config, images)
        encoder = common.build_encoder(self.config, axis_name=None)
        return encoder.apply(encoder_variables, x, train=False).astype(jnp.float32)


class BarlowTwins(TwinEmbeddingMethod):
    """config.barlow_twins.{lambda_offdiag, scale_loss}; see `TwinEmbeddingMethod` for the rest.

    scale_loss multiplies the whole loss (solo-learn's `scale_loss`, the first release of the authors'
    code's `--scale-loss`): under LARS it leaves the trust-ratio-adapted weights' steps unchanged and
    scales the steps of the biases and BN parameters, which is how the authors' separate, smaller
    learning rate for those (0.0048 vs 0.2) is expressed with one learning rate (it also makes the
    weight decay stronger relative to the weights' gradient). 1.0 is the paper's loss.
    """

    def __init__(self, config, *, num_steps=None, steps_per_epoch=None):
        super().__init__(config, num_steps=num_steps, steps_per_epoch=steps_per_epoch)
        cfg = config.get("barlow_twins") or {}
        self.lambda_offdiag = float(cfg.get("lambda_offdiag", 5e-3))
        self.scale_loss = float(cfg.get("scale_loss", 1.0))
        if self.scale_loss <= 0:
            raise ValueError(
                f"config.barlow_twins.scale_loss must be positive, got {self.scale_loss}."
            )

    def loss_terms(self, z1, z2, *, axis_name):
        terms = barlow_twins_terms(z1, z2, lambda_offdiag=self.lambda_offdiag, axis_name=axis_name)
        loss = self.scale_loss * terms["loss"]
        return loss, {"on_diag": terms["on_diag"], "off_diag": terms["off_diag"]}
