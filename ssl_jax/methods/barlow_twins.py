"""Barlow Twins (Zbontar et al. 2021): two views through one encoder + projector, and a loss that drives
the cross-correlation of their embeddings over the global batch towards the identity.

The network, the per-view augmentation and the per-view forward passes (each view's BN statistics its
own, as in the paper's code) are `bases.TwinEmbeddingMethod`'s; this file is the objective
(ssl_jax.losses.redundancy.barlow_twins_terms). There is no target network and no method state.
"""

from __future__ import annotations

from ssl_jax.losses.redundancy import barlow_twins_terms
from ssl_jax.methods.bases import TwinEmbeddingMethod


class BarlowTwins(TwinEmbeddingMethod):
    """config.barlow_twins.{lambda_offdiag, scale_loss}; config.model.{encoder, projector};
    config.augment (preset "byol": the papers' asymmetric pair of views).

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
