"""Self-supervised losses: pure functions of arrays (no Flax, no config, no I/O), one module per family.

Each returns per-example values and lets the caller reduce; each takes `axis_name` where it spans devices.
"""

from ssl_jax.losses.contrastive import info_nce, moco_loss, nt_xent
from ssl_jax.losses.distillation import dino_loss, dino_statistics, update_center
from ssl_jax.losses.redundancy import barlow_twins_loss, vicreg_loss
from ssl_jax.losses.regression import byol_loss, simsiam_loss

__all__ = ["dino_loss", "dino_statistics", "update_center", "byol_loss", "simsiam_loss", "nt_xent", "info_nce", "moco_loss", "barlow_twins_loss", "vicreg_loss"]
