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

from ssl_jax import config_util, default_config

datasets = config_util.import_sibling(__file__, "_datasets")
families = config_util.import_sibling(__file__, "_families")


def get_config(variant: str = "") -> ml_collections.ConfigDict:
    config = datasets.fashion_mnist("simclr")
    optim = families.lars(0.3, 1e-6, trust_coefficient=None)
    families.simclr(config, projector=(2048, 128), temperature=0.2, optim=optim)
    return datasets.select(
        config,
        variant,
        small_cnn=small_cnn,
        smoke=datasets.smoke(protocols=None, linear_epochs=2, projector=(32, 16)),
    )


def small_cnn(config: ml_collections.ConfigDict) -> None:
    """The CPU-sized recipe: the small CNN with a 256-64 projector, default_config's SGD (lr 0.12 x
    batch / 256, weight decay 5e-4, no warm-up, cosine) instead of the ResNet recipe's LARS, and SimCLR's
    full jitter strength (s = 1: brightness = contrast = 0.8). At 3 epochs, batch 256, LARS (lr 0.3 or
    1.2 x B / 256, 0.3-epoch warm-up) gave 81.7-83.0% kNN, this recipe 84.4% kNN / 85.8% linear
    (benchmarks/results/fashion_mnist_small_cnn.md)."""
    datasets.small_cnn(projector=(256, 64))(config)
    config.optim = default_config.get_config().optim
    config.augment.strength = 1.0
