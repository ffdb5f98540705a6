"""Barlow Twins, ResNet-18 (CIFAR stem), on the full Fashion-MNIST (60,000 train / 10,000 test, 28x28x1).

The CIFAR-10 recipe (configs/barlow_twins_cifar10.py, solo-learn's) on 28x28 grayscale images for 100
epochs: projector 2048-2048-2048 (BN + ReLU after the first two layers), lambda 0.0051, loss scaled by
0.1, LARS (lr 0.3 x batch / 256, weight decay 1e-4, trust coefficient 0.02, biases and norms excluded),
10 warm-up epochs then cosine; BYOL's asymmetric augmentation pair without blur (as on CIFAR),
solarization on the second view only.

Data: the four IDX files, e.g. from Debian's `dataset-fashion-mnist` (/usr/share/datasets/fashion-mnist).

  ssl-jax pretrain --config configs/barlow_twins_fashion_mnist.py --workdir runs/barlow_fmnist \
      --config.data.data_dir=/usr/share/datasets/fashion-mnist

Expected result: not recorded yet (no accelerator run of this config so far); a healthy run shows
`on_diag` falling towards 0, `embedding_std` staying near 1/sqrt(2048) ~ 0.022 (0 means collapse) and kNN
top-1 rising well above the step-0 baseline. Results will go to benchmarks/results/ with the command and
the machine. Variants: `:smoke` (a few steps of a small encoder, for tests), `:small_cnn` (the CPU-sized
encoder).
"""

from __future__ import annotations

import ml_collections

from ssl_jax import default_config


def get_config(variant: str = "") -> ml_collections.ConfigDict:
    config = default_config.get_config()
    config.method = "barlow_twins"
    config.data.name = "fashion_mnist"
    config.data.data_dir = "/usr/share/datasets/fashion-mnist"

    config.model.encoder = "resnet18"
    config.model.encoder_kwargs = {"stem": "cifar"}
    config.model.dtype = "bfloat16"
    config.model.projector = ml_collections.ConfigDict(
        {"hidden_dim": 2048, "output_dim": 2048, "num_layers": 3, "use_bn": True, "last_bn": False}
    )
    config.barlow_twins = ml_collections.ConfigDict({"lambda_offdiag": 0.0051, "scale_loss": 0.1})
    # BYOL's pair (view 0 / view 1); no blur on 28x28 images, as solo-learn on CIFAR.
    config.augment = {"preset": "byol", "image_size": 28, "channels": 1, "blur_prob": 0.0}

    config.batch_size = 512
    config.num_epochs = 100.0
    config.optim.name = "lars"
    config.optim.learning_rate = 0.3
    config.optim.lr_scaling = "linear"
    config.optim.weight_decay = 1e-4
    config.optim.trust_coefficient = 0.02
    config.optim.warmup_epochs = 10.0
    config.log_every_steps = 50
    config.eval_every_steps = 1170  # every 10 epochs
    config.checkpoint_every_steps = 1170

    if variant == "small_cnn":
        config.model.encoder = "small_cnn"
        config.model.encoder_kwargs = {"widths": (32, 64, 128), "strides": (2, 2, 2)}
        config.model.dtype = "float32"
        config.model.projector.hidden_dim = 512
        config.model.projector.output_dim = 512
    elif variant == "smoke":
        config.model.encoder = "small_cnn"
        config.model.encoder_kwargs = {"widths": (8, 16), "strides": (2, 2)}
        config.model.dtype = "float32"
        config.model.projector.hidden_dim = 32
        config.model.projector.output_dim = 32
        config.batch_size = 16
        config.num_steps = 3
        config.log_every_steps = 1
        config.eval_every_steps = 0
        config.checkpoint_every_steps = 2
        config.eval.protocols = ("knn",)
        config.eval.max_train_examples = 2000
    elif variant:
        raise ValueError(f"Unknown variant {variant!r}; valid: small_cnn, smoke.")
    return config
