"""Context prediction (Doersch et al. 2015) with the small CNN on the full Fashion-MNIST (28x28x1).

A 3x3 grid of 6x6 patches with a 3-pixel gap and +-1 pixel of jitter per patch (the gap exceeds twice
the jitter, so patches never touch: the edge-continuity guard) is cut on device per example; the shared
backbone encodes the centre patch and one of its 8 neighbours, and a late-fusion head (fc6 per patch,
fc7 on the pair, fc8) predicts the neighbour's position. Fashion-MNIST is grayscale, so the
chromatic-aberration shortcut does not exist and the colour guard (`color`) does nothing here.
SGD with momentum, lr 0.1 x batch / 256, cosine; 10 epochs. Evaluation: kNN and a linear probe on the
backbone's pooled features of whole 28x28 images.

Data: the four IDX files, e.g. from Debian's `dataset-fashion-mnist` (/usr/share/datasets/fashion-mnist).

  ssl-jax pretrain --config configs/context_prediction_fashion_mnist.py --workdir runs/ctx_fmnist \
      --config.data.data_dir=/usr/share/datasets/fashion-mnist

Result: the CPU run of this config, with its command and machine, is in benchmarks/results/pretext.md.
Variant `:smoke`: three tiny steps, for tests.
"""

from __future__ import annotations

import ml_collections

from ssl_jax import default_config


def get_config(variant: str = "") -> ml_collections.ConfigDict:
    config = default_config.get_config()
    config.method = "context_prediction"
    config.data.name = "fashion_mnist"
    config.data.data_dir = "/usr/share/datasets/fashion-mnist"

    config.model.encoder = "small_cnn"
    config.model.encoder_kwargs = {"widths": (32, 64, 128), "strides": (2, 2, 2)}
    config.model.dtype = "float32"
    config.context_prediction = ml_collections.ConfigDict(
        {
            "image_size": 0,  # 0: cut the grid from data.image_size images
            "patch_size": 6,
            "gap": 3,
            "jitter": 1,
            "color": "drop",  # RGB only: "drop" | "project" | "none"
            "noise_std": 0.01,
            "hidden_dim": 256,
        }
    )

    config.batch_size = 256
    config.num_epochs = 10.0
    config.optim.name = "sgd"
    config.optim.learning_rate = 0.1
    config.optim.lr_scaling = "linear"
    config.optim.weight_decay = 5e-4
    config.optim.warmup_epochs = 0.5
    config.log_every_steps = 50
    config.eval_every_steps = 0
    config.checkpoint_every_steps = 1000
    config.eval.max_train_examples = 10000

    if variant == "smoke":
        config.model.encoder_kwargs = {"widths": (8, 16), "strides": (2, 2)}
        config.context_prediction.hidden_dim = 16
        config.batch_size = 16
        config.num_steps = 3
        config.log_every_steps = 1
        config.checkpoint_every_steps = 2
        config.eval.protocols = ("knn",)
        config.eval.max_train_examples = 2000
    elif variant:
        raise ValueError(f"Unknown variant {variant!r}; valid: smoke.")
    return config
