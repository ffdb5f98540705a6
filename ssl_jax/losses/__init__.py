"""Self-supervised losses: pure functions of arrays (no Flax, no config, no I/O), one module per family.

Losses that decompose over examples return per-example values [batch] and let the caller reduce; those
defined by global-batch statistics (Barlow Twins, VICReg) return one scalar, the same on every device. Each
takes `axis_name` where it spans devices (gathered negatives, psum-ed statistics).

  contrastive.py   nt_xent (SimCLR), info_nce, moco_loss (MoCo v2/v3)
  regression.py    byol_loss, simsiam_loss
  redundancy.py    barlow_twins_loss, vicreg_loss
  distillation.py  dino_loss, update_center
"""

from ssl_jax.losses.contrastive import info_nce, moco_loss, nt_xent
from ssl_jax.losses.distillation import dino_loss, dino_statistics, update_center
from ssl_jax.losses.redundancy import barlow_twins_loss, vicreg_loss
from ssl_jax.losses.regression import byol_loss, simsiam_loss

__all__ = [
    "barlow_twins_loss",
    "byol_loss",
    "dino_loss",
    "dino_statistics",
    "info_nce",
    "moco_loss",
    "nt_xent",
    "simsiam_loss",
    "update_center",
    "vicreg_loss",
]
