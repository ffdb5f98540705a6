"""Future prediction in feature space (Vondrick et al. 2016) on clips of moving Fashion-MNIST items.

Each clip: one real Fashion-MNIST garment (60,000 train / 10,000 test) bouncing on a 40x40 black
canvas for 6 frames (ssl_jax.data.sequences.MovingItemsSource; `--config.data.motion=rotate` turns it
about the centre instead). phi is the frozen encoder of a SimCLR run (a fully convolutional small CNN
trained on 28x28 images, applied to the 40x40 frames at their own size); f, a 2-layer MLP, regresses
phi(x_{t+1}) from phi(x_t). First pre-train phi, then f:

  ssl-jax pretrain --config configs/simclr_fashion_mnist.py:small_cnn --workdir runs/simclr_fmnist \
      --config.data.data_dir=/usr/share/datasets/fashion-mnist
  ssl-jax pretrain --config configs/future_prediction_fashion_mnist.py --workdir runs/future_fmnist \
      --config.data.data_dir=/usr/share/datasets/fashion-mnist --config.future.phi_workdir=runs/simclr_fmnist

`--config.future.train_phi=True` trains phi too: the degenerate variant, whose logged target_std falls
to ~0 (collapse). Evaluation: "future_regression" (test MSE of f against copying the last frame's
features) and kNN on f's predicted features (item classes). Measured result, command and machine:
benchmarks/results/future_prediction.md. Variants: `:rotate`, `:smoke` (tiny, the embedded subset, a
frozen random phi unless --config.future.phi_workdir is given; seconds on CPU).
"""

from __future__ import annotations

import ml_collections

from ssl_jax import default_config


def get_config(variant: str = "") -> ml_collections.ConfigDict:
    config = default_config.get_config()
    config.method = "future_prediction"
    del config.model["projector"]  # SimCLR's fields, unused here
    del config["simclr"]
    config.data.name = "moving_fashion_mnist"
    config.data.base = "fashion_mnist"  # the image source whose items move
    config.data.data_dir = "/usr/share/datasets/fashion-mnist"
    config.data.num_frames = 6
    config.data.canvas_size = 40
    config.data.motion = "translate"  # or "rotate"
    config.data.max_speed = 3  # pixels per frame along each axis
    config.data.sequence_seed = 0

    config.future = ml_collections.ConfigDict(
        {
            "phi_workdir": "",  # "": config.model.encoder at random initialization, frozen
            "phi_step": 0,  # 0: the latest checkpoint
            "phi_image_size": 0,  # 0: frames at their own size (fine for convolutional phi)
            "train_phi": False,  # True: the degenerate variant (collapses)
            "context": 1,  # k past frames in
            "offset": 1,  # predict phi(x_{t + offset})
            "residual": True,  # f = phi(x_t) + g(.), g starting at 0 (FuturePrediction)
        }
    )
    # phi's architecture when no phi_workdir is given (with one, the workdir's own config decides).
    config.model.encoder = "small_cnn"
    config.model.encoder_kwargs = {"widths": (32, 64, 128), "strides": (2, 2, 2)}
    config.model.predictor = ml_collections.ConfigDict(
        {"hidden_dim": 512, "num_layers": 2, "use_bn": True}
    )
    config.augment = ml_collections.ConfigDict()  # the frames are used as they are

    config.batch_size = 256
    config.num_epochs = 5.0
    config.optim = ml_collections.ConfigDict(
        {
            "name": "adamw",
            "learning_rate": 1e-3,
            "lr_scaling": "none",
            "weight_decay": 1e-4,
            "warmup_epochs": 0.5,
            "end_lr": 0.0,
        }
    )
    config.log_every_steps = 50
    config.eval_every_steps = 0
    config.checkpoint_every_steps = 500
    config.eval.protocols = ("future_regression", "knn")
    config.eval.max_train_examples = 10000

    if variant == "rotate":
        config.data.motion = "rotate"
    elif variant == "smoke":
        config.data.base = "embedded_fashion_mnist"
        config.data.num_frames = 3
        config.data.canvas_size = 32
        config.model.encoder_kwargs = {"widths": (8,), "strides": (2,)}
        config.model.predictor.hidden_dim = 32
        config.batch_size = 16
        config.num_steps = 3
        config.log_every_steps = 1
        config.checkpoint_every_steps = 2
        config.eval.batch_size = 256
        config.eval.max_train_examples = 500
    elif variant:
        raise ValueError(f"Unknown variant {variant!r}; valid: rotate, smoke.")
    return config
