"""Barlow Twins on ImageNet: the paper's recipe (Zbontar et al. 2021), ResNet-50 at 224x224.

Batch 2048, 1000 epochs; projector 8192-8192-8192 (BN + ReLU after the first two layers), lambda 0.0051;
LARS (trust coefficient 0.001, biases and BN parameters excluded from adaptation and weight decay) with
lr 0.2 x batch / 256 (1.6), weight decay 1.5e-6, 10 warm-up epochs then cosine down to 1/1000 of the peak;
ResNet-50 with zero-initialized residual BN; BYOL's asymmetric augmentation pair (blur p 1.0 / 0.1,
solarization p 0 / 0.2). The paper reports 73.2% top-1 (91.0% top-5) linear evaluation on ImageNet for
this ResNet-50 (Table 1).

One difference of form: the paper gives the biases and BN parameters their own learning rate (0.0048 vs
0.2); ssl_jax's optimizer has one learning rate, so this config multiplies the loss by 0.024 (= 0.0048 /
0.2) instead, as the first release of the authors' code did (`--scale-loss 0.024`): LARS's trust ratio
makes the weights' steps independent of the loss scale, so only the bias/BN steps shrink. It also makes
the weight decay stronger relative to the weights' gradient than in the paper's form.

Data: tfds `imagenet2012` prepared under DATA_DIR (it needs the manual download; see the tfds catalog):

  ssl-jax pretrain --config configs/barlow_twins_imagenet.py --workdir runs/barlow_in1k \
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
    config = datasets.imagenet("barlow_twins", batch_size=2048, num_epochs=1000.0)
    # end_lr: 1/1000 of the peak (absolute: rescale it with the batch).
    optim = families.lars(0.2, 1.5e-6, trust_coefficient=0.001, end_lr=0.2 * 2048 / 256 / 1000)
    encoder = families.RESNET50_ZERO_INIT
    families.barlow_twins(
        config, encoder=encoder, width=8192, scale_loss=0.024, blur_prob=None, optim=optim
    )
    smoke = datasets.smoke(image_size=48, projector=(32, 32))
    return datasets.select(config, variant, smoke=smoke)
