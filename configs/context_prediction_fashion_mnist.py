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

Expected result: see benchmarks/results/pretext.md (the CPU run of this config, with its command
and machine).
Variant `:smoke`: three tiny steps, for tests.
"""

from __future__ import annotations

import ml_collections

from ssl_jax import config_util

datasets = config_util.import_sibling(__file__, "_datasets")
families = config_util.import_sibling(__file__, "_families")


def get_config(variant: str = "") -> ml_collections.ConfigDict:
    config = datasets.fashion_mnist(
        "context_prediction", batch_size=256, num_epochs=10.0, eval_every_epochs=0
    )
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
    config.optim.update(families.sgd(0.1, 5e-4, warmup_epochs=0.5))
    config.eval.max_train_examples = 10000
    smoke = datasets.smoke({"context_prediction.hidden_dim": 16})
    return datasets.select(config, variant, smoke=smoke)
