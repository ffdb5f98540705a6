"""SimSiam, ResNet-18 (CIFAR stem), on the full Fashion-MNIST (60,000 train / 10,000 test, 28x28x1).

The CIFAR-10 recipe (configs/simsiam_cifar10.py, solo-learn's) on 28x28 grayscale images for 100 epochs:
projector 2048-2048-2048 (3 layers, BN on the output), predictor 2048-512-2048, SGD with momentum 0.9,
lr 0.5 x batch / 256, weight decay 1e-5, 10 warm-up epochs then cosine; crops with scale (0.08, 1), flip,
colour jitter 0.4/0.4/0.4/0.1 with p 0.8, grayscale p 0.2 (no-ops on one channel), no blur at 28px.

Data: the four IDX files, e.g. from Debian's `dataset-fashion-mnist` (/usr/share/datasets/fashion-mnist).

  ssl-jax pretrain --config configs/simsiam_fashion_mnist.py --workdir runs/simsiam_fmnist \
      --config.data.data_dir=/usr/share/datasets/fashion-mnist

Expected result: see benchmarks/results/fashion_mnist.md and benchmarks/results/lecture_table.md
(the `:small_cnn` variant on a 2-core CPU, with the command and the machine); no run of the
ResNet-18 recipe is recorded yet. A healthy run keeps the `embedding_std` metric near 1/sqrt(2048) ~
0.022 (0 means collapse, Chen & He 2021 Fig. 2) and kNN top-1 well above the step-0 baseline.
Variants: `:smoke` (a few steps of a small encoder, for tests), `:small_cnn` (the CPU-sized
encoder).
"""

from __future__ import annotations

import ml_collections

from ssl_jax import config_util

datasets = config_util.import_sibling(__file__, "_datasets")
families = config_util.import_sibling(__file__, "_families")


def get_config(variant: str = "") -> ml_collections.ConfigDict:
    config = families.simsiam(datasets.fashion_mnist("simsiam"))
    return datasets.select(
        config,
        variant,
        small_cnn=datasets.small_cnn(projector=(256, 256), predictor=(64, 256)),
        smoke=datasets.smoke(projector=(32, 16), predictor=(8, 16)),
    )
