"""BYOL, ResNet-18 (CIFAR stem), on the full Fashion-MNIST (60,000 train / 10,000 test, 28x28x1).

The CIFAR-10 recipe (configs/byol_cifar10.py, solo-learn's) on 28x28 grayscale images for 100 epochs:
projector and predictor 4096-256, tau from 0.99 to 1, LARS (lr 1.0 x batch / 256, weight decay 1e-5,
trust coefficient 0.02, biases and norms excluded), 10 warm-up epochs then cosine; BYOL's asymmetric
augmentation pair without blur (as on CIFAR), solarization on the second view only.

Data: the four IDX files, e.g. from Debian's `dataset-fashion-mnist` (/usr/share/datasets/fashion-mnist).

  ssl-jax pretrain --config configs/byol_fashion_mnist.py --workdir runs/byol_fmnist \
      --config.data.data_dir=/usr/share/datasets/fashion-mnist

Expected result: not recorded yet (no accelerator run of this config so far); a healthy run shows the
`embedding_std` metric staying near 1/sqrt(256) ~ 0.06 (0 means collapse) and kNN top-1 rising well
above the step-0 baseline. Results will go to benchmarks/results/ with the command and the machine.
Variants: `:smoke` (a few steps of a small encoder, for tests), `:small_cnn` (the CPU-sized encoder).
"""

from __future__ import annotations

import ml_collections

from ssl_jax import default_config


def get_config(variant: str = "") -> ml_collections.ConfigDict:
    config = default_config.get_config()
    config.method = "byol"
    config.data.name = "fashion_mnist"
    config.data.data_dir = "/usr/share/datasets/fashion-mnist"

    config.model.encoder = "resnet18"
    config.model.encoder_kwargs = {"stem": "cifar"}
    config.model.dtype = "bfloat16"
    config.model.projector = ml_collections.ConfigDict(
        {"hidden_dim": 4096, "output_dim": 256, "num_layers": 2, "use_bn": True, "last_bn": False}
    )
    config.model.predictor = ml_collections.ConfigDict(
        {"hidden_dim": 4096, "output_dim": 256, "num_layers": 2, "use_bn": True, "last_bn": False}
    )
    config.byol = ml_collections.ConfigDict({"tau_base": 0.99})
    # BYOL's pair (view 0 / view 1); no blur on 28x28 images, as solo-learn on CIFAR.
    config.augment = {"preset": "byol", "image_size": 28, "channels": 1, "blur_prob": 0.0}

    config.batch_size = 512
    config.num_epochs = 100.0
    config.optim.name = "lars"
    config.optim.learning_rate = 1.0
    config.optim.lr_scaling = "linear"
    config.optim.weight_decay = 1e-5
    config.optim.trust_coefficient = 0.02
    config.optim.warmup_epochs = 10.0
    config.log_every_steps = 50
    config.eval_every_steps = 1170  # every 10 epochs
    config.checkpoint_every_steps = 1170

    if variant == "small_cnn":
        config.model.encoder = "small_cnn"
        config.model.encoder_kwargs = {"widths": (32, 64, 128), "strides": (2, 2, 2)}
        config.model.dtype = "float32"
        config.model.projector.hidden_dim = 256
        config.model.projector.output_dim = 64
        config.model.predictor.hidden_dim = 256
        config.model.predictor.output_dim = 64
    elif variant == "smoke":
        config.model.encoder = "small_cnn"
        config.model.encoder_kwargs = {"widths": (8, 16), "strides": (2, 2)}
        config.model.dtype = "float32"
        config.model.projector.hidden_dim = 32
        config.model.projector.output_dim = 16
        config.model.predictor.hidden_dim = 32
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
