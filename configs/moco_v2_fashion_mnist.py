"""MoCo v2, ResNet-18 (CIFAR stem), on the full Fashion-MNIST (60,000 train / 10,000 test, 28x28x1).

MoCo v2 (Chen, Fan, Girshick & He 2020) sized for 28x28 images as MoCo's own CIFAR-10 demo: a queue of
4096 keys, momentum 0.99, temperature 0.2, MLP head 2048-128 (no BN), SGD (lr 0.03 x batch / 256 = 0.06,
momentum 0.9, weight decay 5e-4, biases and norms excluded), no warm-up, cosine decay, 100 epochs.
Augmentation: MoCo v2's "aug+" (crops with scale (0.2, 1), colour jitter 0.4/0.4/0.4/0.1 with p 0.8,
grayscale p 0.2, flips) without blur on 28x28 images. BatchNorm as the paper: shuffle-BN in the key
encoder, per-device BN in the query encoder (see ssl_jax/methods/moco.py; with one device both are
plain per-batch BN).

Data: the four IDX files, e.g. from Debian's `dataset-fashion-mnist` (/usr/share/datasets/fashion-mnist).

  ssl-jax pretrain --config configs/moco_v2_fashion_mnist.py --workdir runs/moco_v2_fmnist \
      --config.data.data_dir=/usr/share/datasets/fashion-mnist

Expected result: see benchmarks/results/fashion_mnist.md and benchmarks/results/lecture_table.md
(the `:small_cnn` variant on a 2-core CPU, with the command and the machine); no run of the
ResNet-18 recipe is recorded yet. A healthy run shows the loss falling from about log(4097) ~ 8.3,
`positive_cosine` rising towards 1 and `embedding_std` staying near 1/sqrt(128) ~ 0.09.
Variants: `:smoke` (3 steps of a tiny encoder, for tests: expect a finite loss near 4.2 = log(65)
and a kNN top-1 printed, well above chance 0.1), `:small_cnn` (the CPU-sized encoder).
"""

from __future__ import annotations

import ml_collections

from ssl_jax import config_util

datasets = config_util.import_sibling(__file__, "_datasets")
families = config_util.import_sibling(__file__, "_families")


def get_config(variant: str = "") -> ml_collections.ConfigDict:
    config = datasets.fashion_mnist("moco_v2")
    # The MoCo CIFAR-10 demo's sizes: a 4096-key queue, constant momentum 0.99, shuffle-BN.
    moco = dict(
        momentum=0.99, final_momentum=None, queue_size=4096, key_bn="shuffle", symmetric=False
    )
    families.moco_v2(
        config,
        output_dim=128,
        moco=moco,
        augment={"crop_scale": (0.2, 1.0), "blur_prob": 0.0},
        optim=families.sgd(0.03, 5e-4, warmup_epochs=0.0),
    )
    smoke = datasets.smoke({"moco.queue_size": 64}, linear_epochs=2, projector=(32, 16))
    return datasets.select(
        config, variant, small_cnn=datasets.small_cnn(projector=(256, 64)), smoke=smoke
    )
