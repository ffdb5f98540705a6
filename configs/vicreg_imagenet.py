"""VICReg on ImageNet: the paper's recipe (Bardes et al. 2022), ResNet-50 at 224x224.

Batch 2048, 1000 epochs; expander 8192-8192-8192 (BN + ReLU after the first two layers); coefficients
lambda = mu = 25, nu = 1 (invariance / variance / covariance); LARS (trust coefficient 0.001, biases and
BN parameters excluded from adaptation and weight decay) with lr 0.2 x batch / 256 (1.6), weight decay
1e-6, 10 warm-up epochs then cosine down to 1/1000 of the peak; ResNet-50 with zero-initialized residual
BN; BYOL's asymmetric augmentation pair (blur p 1.0 / 0.1, solarization p 0 / 0.2). The paper reports
73.2% top-1 (91.1% top-5) linear evaluation on ImageNet for this ResNet-50 (Table 1).

The loss follows the paper's Algorithm 1 (variance terms of the two branches summed); the authors'
repository averages them instead, i.e. mu = 12.5 here (`--config.vicreg.std_coeff=12.5`).

Data: tfds `imagenet2012` prepared under DATA_DIR (it needs the manual download; see the tfds catalog):

  ssl-jax pretrain --config configs/vicreg_imagenet.py --workdir runs/vicreg_in1k \
      --config.data.data_dir=DATA_DIR

Expected result: about 73% linear top-1 after 1000 epochs (the paper's number above; not yet
reproduced here).
Variant `:smoke`: the ImageNet pipeline (blur, both views) with a small CNN on a few tiny steps at 48px.
"""

from __future__ import annotations

import ml_collections

from ssl_jax import config_util

datasets = config_util.import_sibling(__file__, "_datasets")
families = config_util.import_sibling(__file__, "_families")


def get_config(variant: str = "") -> ml_collections.ConfigDict:
    config = datasets.imagenet("vicreg", batch_size=2048, num_epochs=1000.0)
    # end_lr: 1/1000 of the peak (absolute: rescale it with the batch).
    optim = families.lars(0.2, 1e-6, trust_coefficient=0.001, end_lr=0.2 * 2048 / 256 / 1000)
    encoder = families.RESNET50_ZERO_INIT
    families.vicreg(config, encoder=encoder, width=8192, symmetric_views=False, optim=optim)
    return datasets.select(config, variant, smoke=datasets.smoke(image_size=48, projector=(32, 32)))
