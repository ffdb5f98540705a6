"""MoCo v3, ResNet-18 (CIFAR stem), on the full Fashion-MNIST (60,000 train / 10,000 test, 28x28x1).

MoCo v3 (Chen, Xie & He 2021) with solo-learn's small-image settings (scripts/pretrain/cifar/mocov3.yaml)
for 100 epochs: projector 3 layers 4096-4096-256 ending in BN (no affine), predictor 2 layers 4096-256,
all BN synchronized; temperature 0.2, loss 2t [InfoNCE(q1, k2) + InfoNCE(q2, k1)] over the global
batch; momentum rising from 0.99 to 1 on a cosine; LARS (lr 0.3 x batch / 256, weight decay 1e-6, trust
coefficient 0.02, biases and norms excluded), 10 warm-up epochs then cosine; BYOL's asymmetric
augmentation pair (crops with scale (0.08, 1)) without blur on 28x28 images.

Data: the four IDX files, e.g. from Debian's `dataset-fashion-mnist` (/usr/share/datasets/fashion-mnist).

  ssl-jax pretrain --config configs/moco_v3_fashion_mnist.py --workdir runs/moco_v3_fmnist \
      --config.data.data_dir=/usr/share/datasets/fashion-mnist

Expected result: see benchmarks/results/lecture_table.md (the `:small_cnn` variant on a 2-core CPU,
with the command and the machine); no run of the ResNet-18 recipe is recorded yet. A healthy run
shows the loss falling from about 2 * 0.2 * 2 * log(512) ~ 5 and `embedding_std` staying near
1/sqrt(256) ~ 0.06.
Variants: `:smoke` (3 steps of a tiny encoder, for tests: expect a finite loss and a kNN top-1
printed, well above chance 0.1), `:small_cnn` (the CPU-sized encoder), `:vit` (ViT-Tiny with 4x4
patches, AdamW as the paper trains ViTs: lr 1.5e-4 x batch / 256, weight decay 0.1).
"""

from __future__ import annotations

import ml_collections

from ssl_jax import config_util

datasets = config_util.import_sibling(__file__, "_datasets")
families = config_util.import_sibling(__file__, "_families")


def get_config(variant: str = "") -> ml_collections.ConfigDict:
    config = datasets.fashion_mnist("moco_v3")
    optim = families.lars(0.3, 1e-6)
    families.moco_v3(config, encoder=families.RESNET18, augment={"blur_prob": 0.0}, optim=optim)
    vit = {
        "model.encoder": "vit_tiny",
        "model.encoder_kwargs": {"patch_size": 4, "position_embedding": "sincos"},
        "optim": families.moco_v3_adamw(warmup_epochs=10.0),
    }
    return datasets.select(
        config,
        variant,
        small_cnn=datasets.small_cnn(projector=(256, 64), predictor=(256, 64)),
        smoke=datasets.smoke(linear_epochs=2, projector=(32, 16), predictor=(32, 16)),
        vit=datasets.changes(vit),
    )
