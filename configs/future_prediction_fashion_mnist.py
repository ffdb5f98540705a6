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
features) and kNN on f's predicted features (item classes).
Expected result: see benchmarks/results/future_prediction.md (with the command and machine).
Variants: `:rotate`, `:smoke` (tiny, the embedded subset, a frozen random phi unless
--config.future.phi_workdir is given; seconds on CPU).
"""

from __future__ import annotations

import ml_collections

from ssl_jax import config_util

datasets = config_util.import_sibling(__file__, "_datasets")
families = config_util.import_sibling(__file__, "_families")


def get_config(variant: str = "") -> ml_collections.ConfigDict:
    config = datasets.fashion_mnist(
        "future_prediction", batch_size=256, num_epochs=5.0, eval_every_epochs=0
    )
    del config.model["projector"]  # SimCLR's fields, unused here
    del config["simclr"]
    config.data.name = "moving_fashion_mnist"
    config.data.base = "fashion_mnist"  # the image source whose items move (data_dir: its files)
    config.data.num_frames = 6
    config.data.canvas_size = 40
    config.data.motion = "translate"  # or "rotate"
    config.data.max_speed = 3  # pixels per frame along each axis
    config.data.sequence_seed = 0
    families.future_prediction(config, context=1, warmup_epochs=0.5)
    config.checkpoint_every_steps = 500
    config.eval.protocols = ("future_regression", "knn")
    config.eval.max_train_examples = 10000
    smoke = {
        "data.base": "embedded_fashion_mnist",
        "data.num_frames": 3,
        "data.canvas_size": 32,
        "model.encoder_kwargs": {"widths": (8,), "strides": (2,)},
        "model.predictor.hidden_dim": 32,
        "eval.batch_size": 256,
    }
    smoke = datasets.smoke(smoke, encoder=None, protocols=None, max_train_examples=500)
    return datasets.select(
        config, variant, rotate=datasets.changes({"data.motion": "rotate"}), smoke=smoke
    )
