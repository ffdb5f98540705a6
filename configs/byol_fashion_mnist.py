"""BYOL, ResNet-18 (CIFAR stem), on the full Fashion-MNIST (60,000 train / 10,000 test, 28x28x1).

The CIFAR-10 recipe (configs/byol_cifar10.py, solo-learn's) on 28x28 grayscale images for 100 epochs:
projector and predictor 4096-256, tau from 0.99 to 1, LARS (lr 1.0 x batch / 256, weight decay 1e-5,
trust coefficient 0.02, biases and norms excluded), 10 warm-up epochs then cosine; BYOL's asymmetric
augmentation pair without blur (as on CIFAR), solarization on the second view only.

Data: the four IDX files, e.g. from Debian's `dataset-fashion-mnist` (/usr/share/datasets/fashion-mnist).

  ssl-jax pretrain --config configs/byol_fashion_mnist.py --workdir runs/byol_fmnist \
      --config.data.data_dir=/usr/share/datasets/fashion-mnist

Expected result: see benchmarks/results/fashion_mnist.md and benchmarks/results/lecture_table.md
(the `:small_cnn` variant on a 2-core CPU, with the command and the machine); no run of the
ResNet-18 recipe is recorded yet. A healthy run shows the `embedding_std` metric staying near
1/sqrt(256) ~ 0.06 (0 means collapse) and kNN top-1 rising well above the step-0 baseline.
Variants: `:smoke` (a few steps of a small encoder, for tests), `:small_cnn` (the CPU-sized
encoder).
"""

from __future__ import annotations

import ml_collections

from ssl_jax import config_util

datasets = config_util.import_sibling(__file__, "_datasets")
families = config_util.import_sibling(__file__, "_families")


def get_config(variant: str = "") -> ml_collections.ConfigDict:
    config = families.byol(datasets.fashion_mnist("byol"))
    return datasets.select(
        config,
        variant,
        small_cnn=datasets.small_cnn(projector=(256, 64), predictor=(256, 64)),
        smoke=datasets.smoke(projector=(32, 16), predictor=(32, 16)),
    )
