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

Expected result: not recorded yet (no accelerator run of this config so far). A healthy run keeps
`teacher_entropy` well between 0 (one prototype wins) and log K = 8.3 (uniform output) and
`teacher_student_kl` above 0; kNN top-1 should rise well above the step-0 baseline.
Variants: `:resnet18` (ResNet-18, CIFAR stem, solo-learn's DINO optimizer: LARS lr 0.3 x batch / 256,
weight decay 1e-6, trust coefficient 0.02, teacher momentum 0.9995), `:smoke` (a tiny ViT, 2 + 2 crops,
K = 64, three steps, for tests).
"""

from __future__ import annotations

import ml_collections

from ssl_jax import default_config


def get_config(variant: str = "") -> ml_collections.ConfigDict:
    config = default_config.get_config()
    config.method = "dino"
    config.data.name = "fashion_mnist"
    config.data.data_dir = "/usr/share/datasets/fashion-mnist"
    del config.model["projector"]  # SimCLR's fields, unused here
    del config["simclr"]

    config.model.encoder = "vit_tiny"
    config.model.encoder_kwargs = {"patch_size": 4, "hidden_dim": 192, "depth": 6, "num_heads": 3}
    config.model.dtype = "bfloat16"
    config.model.head = ml_collections.ConfigDict(
        {
            "hidden_dim": 2048,
            "bottleneck_dim": 256,
            "output_dim": 4096,
            "num_layers": 3,
            "use_bn": False,
            "norm_last_layer": True,
        }
    )
    config.dino = ml_collections.ConfigDict(
        {
            "student_temp": 0.1,
            "teacher_temp": 0.07,
            "warmup_teacher_temp": 0.04,
            "warmup_teacher_temp_epochs": 10.0,
            "teacher_momentum": 0.996,
            "center_momentum": 0.9,
            "freeze_last_layer_epochs": 1.0,
        }
    )
    # Multi-crop counts and sizes, then ssl_jax.augment.dino_view_specs's keywords.
    config.augment = ml_collections.ConfigDict(
        {
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
    )

    config.batch_size = 256
    config.num_epochs = 100.0
    config.optim = ml_collections.ConfigDict(
        {
            "name": "adamw",
            "learning_rate": 0.0005,
            "lr_scaling": "linear",
            "weight_decay": 0.04,
            "warmup_epochs": 10.0,
            "end_lr": 1e-6,
            "grad_clip_norm": 3.0,
        }
    )
    config.log_every_steps = 50
    config.eval_every_steps = 2340  # every 10 epochs
    config.checkpoint_every_steps = 2340

    if variant == "resnet18":
        config.model.encoder = "resnet18"
        config.model.encoder_kwargs = {"stem": "cifar"}
        config.dino.teacher_momentum = 0.9995
        config.optim = ml_collections.ConfigDict(
            {
                "name": "lars",
                "learning_rate": 0.3,
                "lr_scaling": "linear",
                "weight_decay": 1e-6,
                "trust_coefficient": 0.02,
                "momentum": 0.9,
                "warmup_epochs": 10.0,
                "end_lr": 0.0,
            }
        )
    elif variant == "small_cnn":
        # The CPU-sized encoder every method's `small_cnn` variant shares (benchmarks/reproduce.py),
        # with the ResNet variant's optimizer (BN backbone) and 2 global + 2 local crops.
        config.model.encoder = "small_cnn"
        config.model.encoder_kwargs = {"widths": (32, 64, 128), "strides": (2, 2, 2)}
        config.model.dtype = "float32"
        config.model.head.hidden_dim = 512
        config.model.head.bottleneck_dim = 128
        config.model.head.output_dim = 1024
        config.augment.num_local = 2
        config.dino.teacher_momentum = 0.99
        config.optim = ml_collections.ConfigDict(
            {
                "name": "lars",
                "learning_rate": 0.3,
                "lr_scaling": "linear",
                "weight_decay": 1e-6,
                "trust_coefficient": 0.02,
                "momentum": 0.9,
                "warmup_epochs": 1.0,
                "end_lr": 0.0,
            }
        )
    elif variant == "smoke":
        config.model.encoder_kwargs = {
            "patch_size": 7,
            "hidden_dim": 32,
            "depth": 1,
            "num_heads": 2,
        }
        config.model.dtype = "float32"
        config.model.head.hidden_dim = 64
        config.model.head.bottleneck_dim = 32
        config.model.head.output_dim = 64
        config.augment.num_local = 2
        config.augment.local_size = 14  # 2x2 patches of 7
        # One pipeline for both global crops (solarizing either with p 0.1): each distinct pipeline
        # costs seconds of CPU compilation, and the tests compile this step several times.
        config.augment.global_blur_prob = (0.0,)
        config.augment.global_solarize_prob = (0.1,)
        config.batch_size = 16
        config.num_steps = 3
        config.log_every_steps = 1
        config.eval_every_steps = 0
        config.checkpoint_every_steps = 2
        config.eval.protocols = ("knn",)
        config.eval.max_train_examples = 2000
    elif variant:
        raise ValueError(f"Unknown variant {variant!r}; valid: resnet18, small_cnn, smoke.")
    return config
