"""SimCLR, ResNet-18 (CIFAR stem), on the full Fashion-MNIST (60,000 train / 10,000 test, 28x28x1).

Data: the four IDX files, e.g. from Debian's `dataset-fashion-mnist` (/usr/share/datasets/fashion-mnist).

  ssl-jax pretrain --config configs/simclr_fashion_mnist.py --workdir runs/simclr_fmnist \
      --config.data.data_dir=/usr/share/datasets/fashion-mnist

Expected result: see benchmarks/results/fashion_mnist.md (the `:small_cnn` variant for 1 epoch on a
2-core CPU, with the command and the machine) and benchmarks/results/lecture_table.md (the same
variant for 200 steps, then low-label fine-tuning); no run of the ResNet-18 recipe is recorded yet.
Variants: `:smoke` (a few steps of a small encoder, for tests), `:small_cnn` (the CPU-sized encoder).
"""

from __future__ import annotations

import ml_collections

from ssl_jax import config_util

datasets = config_util.import_sibling(__file__, "_datasets")
families = config_util.import_sibling(__file__, "_families")


def get_config(variant: str = "") -> ml_collections.ConfigDict:
    config = datasets.fashion_mnist("simclr")
    optim = families.lars(0.3, 1e-6, trust_coefficient=None)
    families.simclr(config, projector=(2048, 128), temperature=0.2, optim=optim)
    return datasets.select(
        config,
        variant,
        small_cnn=datasets.small_cnn(projector=(256, 64)),
        smoke=datasets.smoke(protocols=None, linear_epochs=2, projector=(32, 16)),
    )
