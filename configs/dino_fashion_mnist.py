"""DINO with a small ViT (patch 4) on the full Fashion-MNIST (60,000 train / 10,000 test, 28x28x1).

DINO's ViT recipe (configs/dino_imagenet.py) scaled to 28-px images: 2 global crops of 28 px (scale 0.4-1)
and 6 local crops of 12 px (scale 0.05-0.4); a ViT of width 192, depth 6, 3 heads on 4x4 patches (49
tokens, the registry's vit_tiny widened); head 2048-256 to K = 4096 prototypes (solo-learn's CIFAR size);
teacher momentum 0.996 -> 1, teacher temperature 0.04 -> 0.07 over 10 epochs, student 0.1, centre momentum
0.9, last layer frozen for the first epoch; AdamW, lr 0.0005 x batch / 256, 10 warm-up epochs then cosine
to 1e-6, weight decay 0.04 (fixed: the optimizer factory has no weight-decay schedule; DINO raises it to
0.4 on a cosine), global-norm clipping at 3 (DINO clips each tensor's norm at 3). No blur on 28-px
crops (solo-learn drops it on CIFAR too); solarization on the second global crop only.

Data: the four IDX files, e.g. from Debian's `dataset-fashion-mnist` (/usr/share/datasets/fashion-mnist).

  ssl-jax pretrain --config configs/dino_fashion_mnist.py --workdir runs/dino_fmnist \
      --config.data.data_dir=/usr/share/datasets/fashion-mnist

Expected result: see benchmarks/results/fashion_mnist.md and benchmarks/results/lecture_table.md
(the `:small_cnn` variant on a 2-core CPU, with the command and the machine); no run of the ViT
recipe is recorded yet. A healthy run keeps `teacher_entropy` well between 0 (one prototype wins)
and log K = 8.3 (uniform output) and `teacher_student_kl` above 0; kNN top-1 should rise well above
the step-0 baseline.
Variants: `:resnet18` (ResNet-18, CIFAR stem, solo-learn's DINO optimizer: LARS lr 0.3 x batch /
256, weight decay 1e-6, trust coefficient 0.02, teacher momentum 0.9995), `:smoke` (a tiny ViT, 2 +
2 crops, K = 64, three steps, for tests).
"""

from __future__ import annotations

import ml_collections

from ssl_jax import config_util

datasets = config_util.import_sibling(__file__, "_datasets")
families = config_util.import_sibling(__file__, "_families")


def get_config(variant: str = "") -> ml_collections.ConfigDict:
    config = datasets.fashion_mnist("dino", batch_size=256)
    vit = ("vit_tiny", {"patch_size": 4, "hidden_dim": 192, "depth": 6, "num_heads": 3})
    # Multi-crop counts and sizes, then ssl_jax.augment.dino_view_specs's keywords.
    crops = {
        "num_global": 2,
        "num_local": 6,
        "global_size": 28,
        "local_size": 12,
        "global_scale": (0.4, 1.0),
        "local_scale": (0.05, 0.4),
        "global_blur_prob": (0.0, 0.0),
        "global_solarize_prob": (0.0, 0.2),
        "local_blur_prob": 0.0,
    }
    families.dino(
        config,
        encoder=vit,
        prototypes=4096,
        norm_last_layer=True,
        dino={"warmup_teacher_temp_epochs": 10.0, "teacher_momentum": 0.996},
        crops=crops,
        optim=families.dino_adamw(),
    )
    resnet18 = {
        "model.encoder": "resnet18",
        "model.encoder_kwargs": {"stem": "cifar"},
        "dino.teacher_momentum": 0.9995,
        "optim": families.dino_lars(),
    }
    # The CPU-sized encoder every method's `small_cnn` variant shares (benchmarks/reproduce.py),
    # with the ResNet variant's optimizer (BN backbone) and 2 global + 2 local crops.
    small_cnn = {
        **families.head_sizes(512, 128, 1024),
        "augment.num_local": 2,
        "dino.teacher_momentum": 0.99,
        "optim": families.dino_lars(warmup_epochs=1.0),
    }
    smoke = {
        "model.encoder_kwargs": {"patch_size": 7, "hidden_dim": 32, "depth": 1, "num_heads": 2},
        **families.head_sizes(64, 32, 64),
        "augment.num_local": 2,
        "augment.local_size": 14,  # 2x2 patches of 7
        # One pipeline for both global crops (solarizing either with p 0.1): each distinct pipeline
        # costs seconds of CPU compilation, and the tests compile this step several times.
        "augment.global_blur_prob": (0.0,),
        "augment.global_solarize_prob": (0.1,),
    }
    return datasets.select(
        config,
        variant,
        resnet18=datasets.changes(resnet18),
        small_cnn=datasets.small_cnn(small_cnn),
        smoke=datasets.smoke(smoke, encoder=None),
    )
