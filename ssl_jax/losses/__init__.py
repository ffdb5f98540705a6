"""Self-supervised losses: pure functions of arrays (no Flax, no config, no I/O), one module per family.

Losses that decompose over examples return per-example values [batch] and let the caller reduce; those
defined by global-batch statistics (Barlow Twins, VICReg) return one scalar, the same on every device. Each
takes `axis_name` where it spans devices (gathered negatives, psum-ed statistics).

  contrastive.py   nt_xent (SimCLR), info_nce, moco_loss (MoCo v2/v3), clip_loss (CLIP),
                   cpc_loss (CPC), sgns_loss (word2vec)
  regression.py    byol_loss, simsiam_loss
  redundancy.py    barlow_twins_loss, vicreg_loss
  distillation.py  dino_loss, update_center
  language.py      masked_lm_loss (BERT), causal_lm_loss (GPT), seq2seq_loss (BART), token_cross_entropy
  predictive.py    feature_regression_loss, feature_std (future prediction in feature space)
  reconstruction.py mae_loss, normalize_patches (MAE)
  pretext.py       relative_position_loss, inpainting_loss, colorization_loss (classic pretext tasks)
"""

from ssl_jax.losses.contrastive import (
    capped_logit_scale,
    clip_loss,
    cpc_loss,
    info_nce,
    moco_loss,
    nt_xent,
    sgns_loss,
)
from ssl_jax.losses.distillation import dino_loss, dino_statistics, update_center
from ssl_jax.losses.language import (
    causal_lm_loss,
    masked_lm_loss,
    seq2seq_loss,
    token_cross_entropy,
)
from ssl_jax.losses.predictive import feature_regression_loss, feature_std
from ssl_jax.losses.pretext import colorization_loss, inpainting_loss, relative_position_loss
from ssl_jax.losses.reconstruction import mae_loss, normalize_patches
from ssl_jax.losses.redundancy import barlow_twins_loss, vicreg_loss
from ssl_jax.losses.regression import byol_loss, simsiam_loss

__all__ = [
    "causal_lm_loss",
    "masked_lm_loss",
    "seq2seq_loss",
    "token_cross_entropy",
    "barlow_twins_loss",
    "byol_loss",
    "capped_logit_scale",
    "clip_loss",
    "cpc_loss",
    "dino_loss",
    "dino_statistics",
    "feature_regression_loss",
    "feature_std",
    "info_nce",
    "mae_loss",
    "moco_loss",
    "normalize_patches",
    "nt_xent",
    "sgns_loss",
    "simsiam_loss",
    "update_center",
    "vicreg_loss",
    "colorization_loss",
    "inpainting_loss",
    "relative_position_loss",
]
