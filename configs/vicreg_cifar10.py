"""VICReg on CIFAR-10: solo-learn's recipe (scripts/pretrain/cifar/vicreg.yaml), ResNet-18 with the CIFAR
stem, LARS, 1000 epochs.

solo-learn (da Costa et al. 2022, JMLR) reports 92.07% top-1 on CIFAR-10 (its online linear classifier)
for this recipe: ResNet-18, expander 2048-2048-2048 (BN + ReLU after the first two layers), coefficients
25 / 25 / 1 (invariance / variance / covariance; solo-learn sums the two variance terms, as here), LARS
(eta 0.02, biases and norms excluded) with lr 0.3 for batch 256 (scaled linearly), weight decay 1e-4, 10
warm-up epochs then cosine; one augmentation for both views: crops of 32 with scale (0.2, 1), colour
jitter 0.4/0.4/0.2/0.1 with p 0.8, grayscale p 0.2, no blur, solarization p 0.1.
Not reproduced: solo-learn's LARS clips the adapted learning rate (`clip_lr`); optax's LARS does not.

Data: tfds `cifar10` prepared under DATA_DIR (`pip install 'ssl_jax[tf]'; tfds build cifar10 --data_dir DATA_DIR`):

  ssl-jax pretrain --config configs/vicreg_cifar10.py --workdir runs/vicreg_cifar10 \
      --config.data.data_dir=DATA_DIR

Expected result: about 92% linear top-1 after 1000 epochs (solo-learn's number above; not yet
reproduced here).
Variant `:smoke`: the same pipeline on a few tiny steps (tests point it at a small local RGB dataset).
"""

from __future__ import annotations

import ml_collections

from ssl_jax import config_util

datasets = config_util.import_sibling(__file__, "_datasets")
families = config_util.import_sibling(__file__, "_families")


def get_config(variant: str = "") -> ml_collections.ConfigDict:
    config = families.vicreg(datasets.cifar10("vicreg"))
    return datasets.select(config, variant, smoke=datasets.smoke(projector=(32, 32)))
