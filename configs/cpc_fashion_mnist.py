"""CPC (van den Oord et al. 2018) on image patch grids: full Fashion-MNIST (60,000 train / 10,000 test).

Each 28x28 image is padded to 32x32 and cut into a 7x7 grid of overlapping 8x8 patches (stride 4); a small
CNN encodes every patch, a GRU runs down each column of the grid, and W_k c predicts the rows 2..4 below
(the next row overlaps the context's pixels, so it is skipped). Negatives: the same grid position in the
other columns and images of the global batch. Features for kNN / linear: mean-pooled patch encodings.

  ssl-jax pretrain --config configs/cpc_fashion_mnist.py --workdir runs/cpc_fmnist \
      --config.data.data_dir=/usr/share/datasets/fashion-mnist

Measured result: benchmarks/results/cpc.md (with the command and the machine that produced it).
Variants: `:cpu` (a smaller patch CNN for half an epoch, the CPU budget of the recorded result),
`:smoke` (a few steps of a tiny network on the embedded subset's shapes, for tests).
"""

from __future__ import annotations

import ml_collections

from ssl_jax import default_config


def get_config(variant: str = "") -> ml_collections.ConfigDict:
    config = default_config.get_config()
    config.method = "cpc"
    config.data.name = "fashion_mnist"
    config.data.data_dir = "/usr/share/datasets/fashion-mnist"

    config.cpc = ml_collections.ConfigDict(
        {
            "mode": "image_patches",
            "patch_size": 8,
            "patch_stride": 4,
            "patch_pad": 2,  # 28 + 2 * 2 = 32 -> (32 - 8) / 4 + 1 = 7 patches per side
            "widths": (32, 64, 64),
            "strides": (1, 2, 1),
            "kernels": (),  # sequence mode only
            "z_dim": 64,
            "context_dim": 64,
            "num_predictions": 3,  # k = 2, 3, 4 rows below
            "first_step": 2,
            "features": "encoder",
        }
    )
    # No projector, no augmentation: CPC's only head is W_k.
    config.model.dtype = "float32"

    config.batch_size = 128
    config.num_epochs = 10.0
    config.optim = ml_collections.ConfigDict(
        {
            "name": "adamw",
            "learning_rate": 2e-3,
            "lr_scaling": "none",
            "weight_decay": 0.0,
            "warmup_steps": 100,
            "end_lr": 0.0,
        }
    )
    config.log_every_steps = 50
    config.eval_every_steps = 0
    config.checkpoint_every_steps = 1000
    config.eval.max_train_examples = 10_000

    if variant == "cpu":  # the budget of benchmarks/results/cpc.md: a 4x cheaper patch CNN
        config.cpc.widths = (16, 32, 32)
        config.cpc.z_dim = 32
        config.cpc.context_dim = 32
        config.num_epochs = 0.5
    elif variant == "smoke":
        config.data.name = "embedded_fashion_mnist"
        config.cpc.widths = (8, 8)
        config.cpc.strides = (2, 1)
        config.cpc.z_dim = 16
        config.cpc.context_dim = 16
        config.cpc.num_predictions = 2
        config.batch_size = 16
        config.num_steps = 3
        config.log_every_steps = 1
        config.checkpoint_every_steps = 2
        config.eval.linear_epochs = 2
        config.eval.max_train_examples = 500
    elif variant:
        raise ValueError(f"Unknown variant {variant!r}; valid: cpu, smoke.")
    return config
