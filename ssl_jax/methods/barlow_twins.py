"""Barlow Twins (Zbontar et al. 2021): two views through one encoder + projector, and a loss that drives
the cross-correlation of their embeddings over the global batch towards the identity.

`TwinEmbeddingMethod` is what Barlow Twins and VICReg add to `TwoViewMethod` (simclr.py): each view its
own augmentation (BYOL's asymmetric pair under the "byol" preset, which both papers use) and its own
forward pass, so each view's BN statistics are its own, as both papers' code calls the network once per
view (SimCLR normalizes the 2N views together). A subclass writes only `objective(z1, z2, *, axis_name)`,
a loss over the global batch (ssl_jax.losses.redundancy). There is no target network and no method state.
"""

from __future__ import annotations

import jax

from ssl_jax import augment
from ssl_jax.losses.redundancy import barlow_twins_terms
from ssl_jax.methods import common
from ssl_jax.methods.base import LossAux
from ssl_jax.methods.simclr import TwoViewMethod


class TwinEmbeddingMethod(TwoViewMethod):
    """`TwoViewMethod` with per-view augmentation and per-view forward passes.

    config.model.{encoder, projector}; config.augment (a ViewSpec preset: "byol" gives the asymmetric
    pair, views 0 and 1; any other preset is used for both views; other keys override both views).
    """

    def view_specs(self) -> tuple[augment.ViewSpec, augment.ViewSpec]:
        return common.view_pair(self.config)

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
        loss, terms = self.objective(z1, z2, axis_name=axis_name)
        metrics = {**terms, "embedding_std": common.embedding_std(z1, axis_name)}
        return loss, LossAux(batch_stats, metrics)


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

    def objective(self, z1, z2, *, axis_name):
        terms = barlow_twins_terms(z1, z2, lambda_offdiag=self.lambda_offdiag, axis_name=axis_name)
        loss = self.scale_loss * terms["loss"]
        return loss, {"on_diag": terms["on_diag"], "off_diag": terms["off_diag"]}
