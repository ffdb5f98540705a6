"""Composing objectives as functions: SimCLR + lambda * VICReg, with no new training loop.

This is the pattern for any combination: subclass `TwoViewMethod` (or any method), write `objective` as
arithmetic on loss functions from `ssl_jax.losses`, and register the class under a name. Every loss keeps
its own cross-device semantics through `axis_name` (gathered negatives for NT-Xent, global-batch
statistics for VICReg), so the sum is exact on any number of devices.
"""

from __future__ import annotations

from ssl_jax.losses import nt_xent, vicreg_loss
from ssl_jax.methods.bases import TwoViewMethod


class SimCLRPlusVICReg(TwoViewMethod):
    """loss = NT-Xent(z1, z2) + config.composite.vicreg_weight * VICReg(z1, z2); both terms are logged."""

    def objective(self, z1, z2, *, axis_name):
        cfg = self.config.composite
        contrastive = nt_xent(z1, z2, temperature=cfg.temperature, axis_name=axis_name).mean()
        regularizer = vicreg_loss(z1, z2, axis_name=axis_name)
        loss = contrastive + cfg.vicreg_weight * regularizer
        return loss, {"nt_xent": contrastive, "vicreg": regularizer}
