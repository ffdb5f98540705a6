"""Colorization (Zhang et al. 2016) on ImageNet with a ResNet-50 backbone.

From the paper: the network sees the L channel of 224px images and predicts at a quarter of the
resolution (56x56) a distribution over the in-gamut ab bins of a grid of 10 (soft-encoded targets over
5 neighbours with sigma 5), class rebalancing with lambda = 0.5 and sigma = 5 from the training set's
ab histogram (estimated here from 20,000 random training images), the annealed mean with T = 0.38 to
decode colours; Adam with beta2 = 0.99, weight decay 1e-3, lr 3e-5. We count 261 bins (the cells an
sRGB colour falls in) where the paper's 313 come from the gamut's hull. Ours: a ResNet-50 trunk (the
paper used a VGG-style net with dilated convolutions) whose 7x7 map feeds a fully convolutional head
upsampling to 56x56, batch 256 and 30 epochs with cosine decay. Evaluation: kNN and a linear probe on
the pooled features of the L channel.

Data: tfds `imagenet2012` prepared under DATA_DIR (it needs the manual download; see the tfds catalog):

  ssl-jax pretrain --config configs/colorization_imagenet.py --workdir runs/color_in1k \
      --config.data.data_dir=DATA_DIR

Any RGB dataset works: --config.data.name=image_folder --config.data.data_dir=DIR, or another tfds name.
Expected result: no run of this recipe is recorded. The offline CPU run on scikit-image's photographs
(configs/colorization_skimage.py) is in benchmarks/results/pretext.md.
Variant `:smoke`: 32px images, a grid of 20, tiny networks, three steps.
"""

from __future__ import annotations

import ml_collections

from ssl_jax import config_util

datasets = config_util.import_sibling(__file__, "_datasets")
families = config_util.import_sibling(__file__, "_families")


def get_config(variant: str = "") -> ml_collections.ConfigDict:
    config = datasets.imagenet("colorization", batch_size=256, num_epochs=30.0)
    # data.mean / data.std are unused: colorization normalizes L itself.
    config.checkpoint_every_steps = 2000
    families.set_encoder(config, families.RESNET50)
    families.colorization(config, output_size=56, head_width=256, prior_examples=20000)
    config.optim.update(name="adamw", learning_rate=3e-5, lr_scaling="none", b2=0.99)
    config.optim.update(weight_decay=1e-3, warmup_epochs=1.0)
    smoke = datasets.smoke(
        families.colorization_smoke(), image_size=32, protocols=("knn",), max_train_examples=None
    )
    return datasets.select(config, variant, smoke=smoke)
