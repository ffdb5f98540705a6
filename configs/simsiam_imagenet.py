"""SimSiam on ImageNet: the paper's recipe (Chen & He 2021, Sec. 3 "Baseline settings"), ResNet-50 at 224px.

Batch 512, SGD with momentum 0.9, lr = 0.05 x batch / 256 (0.1), weight decay 1e-4, cosine decay and no
warm-up, 100 epochs; projector 2048-2048-2048 (3 layers, BN on every layer, the output's without affine),
predictor 2048-512-2048 (BN + ReLU on the hidden layer only); MoCo v2's augmentation on both views: crops
with scale (0.2, 1), flip, colour jitter 0.4/0.4/0.4/0.1 with p 0.8, grayscale p 0.2, Gaussian blur p 0.5
(sigma 0.1-2). The paper reports 67.7% linear-evaluation top-1 for this run with the predictor's lr
decayed like every other (Table 1), which is what ssl_jax's single schedule does; its headline 68.1% keeps
the predictor's lr constant, which this optimizer does not offer. The paper's SGD also decays biases and
BN parameters; ssl_jax's exempts them.

Data: tfds `imagenet2012` prepared under DATA_DIR (it needs the manual download; see the tfds catalog):

  ssl-jax pretrain --config configs/simsiam_imagenet.py --workdir runs/simsiam_in1k \
      --config.data.data_dir=DATA_DIR

Expected result: 67.7% linear top-1 after 100 epochs (the paper's Table 1 number above; not yet
reproduced here).
Variant `:smoke`: the ImageNet pipeline (blur, small images) on a few tiny steps.
"""

from __future__ import annotations

import ml_collections

from ssl_jax import config_util

datasets = config_util.import_sibling(__file__, "_datasets")
families = config_util.import_sibling(__file__, "_families")


def get_config(variant: str = "") -> ml_collections.ConfigDict:
    config = datasets.imagenet("simsiam", batch_size=512, num_epochs=100.0)
    views = {"crop_scale": (0.2, 1.0), **families.JITTER_04, "blur_prob": 0.5}
    optim = families.sgd(0.05, 1e-4, warmup_epochs=0.0)
    families.simsiam(config, encoder=families.RESNET50, augment=views, optim=optim)
    smoke = datasets.smoke(dtype=None, image_size=48, projector=(32, 16), predictor=(8, 16))
    return datasets.select(config, variant, smoke=smoke)
