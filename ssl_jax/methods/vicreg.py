"""VICReg (Bardes et al. 2022): two views through one encoder + expander, trained to be invariant (MSE)
while each embedding dimension keeps a standard deviation of at least 1 (variance hinge) and the
dimensions stay decorrelated (covariance penalty), the last two over the global batch.

The network, the per-view augmentation and the per-view forward passes are `bases.TwinEmbeddingMethod`'s
(as for Barlow Twins); the projector is what the paper calls the expander (config.model.projector).
"""

from __future__ import annotations

from ssl_jax.losses.redundancy import vicreg_terms
from ssl_jax.methods.bases import TwinEmbeddingMethod


class VICReg(TwinEmbeddingMethod):
    """config.vicreg.{sim_coeff, std_coeff, cov_coeff} (lambda, mu, nu of eq. 6); config.model.projector
    is the expander; config.augment (preset "byol": the papers' asymmetric pair of views)."""

    def __init__(self, config, *, num_steps=None, steps_per_epoch=None):
        super().__init__(config, num_steps=num_steps, steps_per_epoch=steps_per_epoch)
        cfg = config.get("vicreg") or {}
        self.coeffs = {
            "sim_coeff": float(cfg.get("sim_coeff", 25.0)),
            "std_coeff": float(cfg.get("std_coeff", 25.0)),
            "cov_coeff": float(cfg.get("cov_coeff", 1.0)),
        }
        for name, value in self.coeffs.items():
            if value < 0:
                raise ValueError(f"config.vicreg.{name} must be non-negative, got {value}.")

    def objective(self, z1, z2, *, axis_name):
        terms = vicreg_terms(z1, z2, axis_name=axis_name, **self.coeffs)
        loss = terms.pop("loss")
        return loss, terms
