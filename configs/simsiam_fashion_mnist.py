"""SimSiam, ResNet-18 (CIFAR stem), on the full Fashion-MNIST (60,000 train / 10,000 test, 28x28x1).

The CIFAR-10 recipe (configs/simsiam_cifar10.py, solo-learn's) on 28x28 grayscale images for 100 epochs:
projector 2048-2048-2048 (3 layers, BN on the output), predictor 2048-512-2048, SGD with momentum 0.9,
lr 0.5 x batch / 256, weight decay 1e-5, 10 warm-up epochs then cosine; crops with scale (0.08, 1), flip,
colour jitter 0.4/0.4/0.4/0.1 with p 0.8, grayscale p 0.2 (no-ops on one channel), no blur at 28px.

Data: the four IDX files, e.g. from Debian's `dataset-fashion-mnist` (/usr/share/datasets/fashion-mnist).

  ssl-jax pretrain --config configs/simsiam_fashion_mnist.py --workdir runs/simsiam_fmnist \
      --config.data.data_dir=/usr/share/datasets/fashion-mnist

Expected result: not recorded yet (no accelerator run of this config so far); a healthy run keeps the
`embedding_std` metric near 1/sqrt(2048) ~ 0.022 (0 means collapse, Chen & He 2021 Fig. 2) and kNN
top-1 well above the step-0 baseline. Results will go to benchmarks/results/ with the command and machine.
Variants: `:smoke` (a few steps of a small encoder, for tests), `:small_cnn` (the CPU-sized encoder).
"""

from __future__ import annotations

import ml_collections

from ssl_jax import default_config


def get_config(variant: str = "") -> ml_collections.ConfigDict:
    config = default_config.get_config()
    config.method = "simsiam"
    config.data.name = "fashion_mnist"
    config.data.data_dir = "/usr/share/datasets/fashion-mnist"

    config.model.encoder = "resnet18"
    config.model.encoder_kwargs = {"stem": "cifar"}
    config.model.dtype = "bfloat16"
    config.model.projector = ml_collections.ConfigDict(
        {"hidden_dim": 2048, "output_dim": 2048, "num_layers": 3, "use_bn": True, "last_bn": True}
    )
    config.model.predictor = ml_collections.ConfigDict(
        {"hidden_dim": 512, "output_dim": 2048, "num_layers": 2, "use_bn": True, "last_bn": False}
    )
    config.augment = {
        "preset": "simclr",
        "image_size": 28,
        "channels": 1,
        "brightness": 0.4,
        "contrast": 0.4,
        "saturation": 0.4,
        "hue": 0.1,
        "blur_prob": 0.0,
    }

    config.batch_size = 512
    config.num_epochs = 100.0
    config.optim.name = "sgd"
    config.optim.learning_rate = 0.5
    config.optim.lr_scaling = "linear"
    config.optim.weight_decay = 1e-5
    config.optim.momentum = 0.9
    config.optim.warmup_epochs = 10.0
    config.log_every_steps = 50
    config.eval_every_steps = 1170  # every 10 epochs
    config.checkpoint_every_steps = 1170

    if variant == "small_cnn":
        config.model.encoder = "small_cnn"
        config.model.encoder_kwargs = {"widths": (32, 64, 128), "strides": (2, 2, 2)}
        config.model.dtype = "float32"
        config.model.projector.hidden_dim = 256
        config.model.projector.output_dim = 256
        config.model.predictor.hidden_dim = 64
        config.model.predictor.output_dim = 256
    elif variant == "smoke":
        config.model.encoder = "small_cnn"
        config.model.encoder_kwargs = {"widths": (8, 16), "strides": (2, 2)}
        config.model.dtype = "float32"
        config.model.projector.hidden_dim = 32
        config.model.projector.output_dim = 16
        config.model.predictor.hidden_dim = 8
        config.model.predictor.output_dim = 16
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
