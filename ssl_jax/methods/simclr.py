"""SimCLR (Chen et al. 2020): two augmented views of each image through one encoder + projector, scored
by the NT-Xent objective with the whole global batch as negatives.

The two views, the one forward pass over both (BN statistics over all 2N views, as in SimCLR) and the
export of the backbone are `bases.TwoViewMethod`'s; this file is the objective. A researcher composes
objectives the same way (see `ssl_jax.methods.composite` and the README).
"""

from __future__ import annotations

from ssl_jax.losses import nt_xent
from ssl_jax.methods.bases import TwoViewMethod


class SimCLR(TwoViewMethod):
    """config.simclr.temperature; NT-Xent with negatives gathered over every device;
    config.model.{encoder, projector}; config.augment (one ViewSpec for both views)."""

    def objective(self, z1, z2, *, axis_name):
        per_example = nt_xent(
            z1, z2, temperature=self.config.simclr.temperature, axis_name=axis_name
        )
        return per_example.mean(), {}
