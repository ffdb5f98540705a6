"""VICReg, ResNet-18 (CIFAR stem), on the full Fashion-MNIST (60,000 train / 10,000 test, 28x28x1).

The CIFAR-10 recipe (configs/vicreg_cifar10.py, solo-learn's) on 28x28 grayscale images for 100 epochs:
expander 2048-2048-2048 (BN + ReLU after the first two layers), coefficients 25 / 25 / 1 (invariance /
variance / covariance), LARS (lr 0.3 x batch / 256, weight decay 1e-4, trust coefficient 0.02, biases
and norms excluded), 10 warm-up epochs then cosine; the same augmentation for both views: crops with
scale (0.2, 1), colour jitter 0.4/0.4/0.2/0.1 with p 0.8, grayscale p 0.2, solarization p 0.1, no blur.

Data: the four IDX files, e.g. from Debian's `dataset-fashion-mnist` (/usr/share/datasets/fashion-mnist).

  ssl-jax pretrain --config configs/vicreg_fashion_mnist.py --workdir runs/vicreg_fmnist \
      --config.data.data_dir=/usr/share/datasets/fashion-mnist

Expected result: see benchmarks/results/fashion_mnist.md and benchmarks/results/lecture_table.md
(the `:small_cnn` variant on a 2-core CPU, with the command and the machine); no run of the
ResNet-18 recipe is recorded yet. A healthy run shows `variance` falling towards 0 (every
dimension's std near 1), `embedding_std` staying near 1/sqrt(2048) ~ 0.022 (0 means collapse) and
kNN top-1 rising well above the step-0 baseline.
Variants: `:smoke` (a few steps of a small encoder, for tests), `:small_cnn` (the CPU-sized
encoder).
"""

from __future__ import annotations

import ml_collections

from ssl_jax import config_util

datasets = config_util.import_sibling(__file__, "_datasets")
families = config_util.import_sibling(__file__, "_families")


def get_config(variant: str = "") -> ml_collections.ConfigDict:
    config = families.vicreg(datasets.fashion_mnist("vicreg"))
    return datasets.select(
        config,
        variant,
        small_cnn=datasets.small_cnn(projector=(512, 512)),
        smoke=datasets.smoke(projector=(32, 32)),
    )
