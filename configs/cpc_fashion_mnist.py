"""CPC (van den Oord et al. 2018) on image patch grids: full Fashion-MNIST (60,000 train / 10,000 test).

Each 28x28 image is padded to 32x32 and cut into a 7x7 grid of overlapping 8x8 patches (stride 4); a small
CNN encodes every patch, a GRU runs down each column of the grid, and W_k c predicts the rows 2..4 below
(the next row overlaps the context's pixels, so it is skipped). Negatives: the same grid position in the
other columns and images of the global batch. Features for kNN / linear: mean-pooled patch encodings.

  ssl-jax pretrain --config configs/cpc_fashion_mnist.py --workdir runs/cpc_fmnist \
      --config.data.data_dir=/usr/share/datasets/fashion-mnist

Expected result: see benchmarks/results/cpc.md (the `:cpu` variant, with the command and the
machine that produced it).
Variants: `:cpu` (a smaller patch CNN for half an epoch, the CPU budget of the recorded result),
`:smoke` (a few steps of a tiny network on the embedded subset's shapes, for tests).
"""

from __future__ import annotations

import ml_collections

from ssl_jax import config_util

datasets = config_util.import_sibling(__file__, "_datasets")
families = config_util.import_sibling(__file__, "_families")


def get_config(variant: str = "") -> ml_collections.ConfigDict:
    config = datasets.fashion_mnist("cpc", batch_size=128, num_epochs=10.0, eval_every_epochs=0)
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
    config.optim = families.cpc_adamw(warmup_steps=100)
    config.eval.max_train_examples = 10_000
    # `:cpu`, the budget of benchmarks/results/cpc.md: a 4x cheaper patch CNN.
    cpu = {"cpc.widths": (16, 32, 32), "cpc.z_dim": 32, "cpc.context_dim": 32, "num_epochs": 0.5}
    smoke = {
        "data.name": "embedded_fashion_mnist",
        **families.cpc_smoke(widths=(8, 8), strides=(2, 1), dim=16),
    }
    smoke = datasets.smoke(
        smoke, encoder=None, protocols=None, max_train_examples=500, linear_epochs=2
    )
    return datasets.select(config, variant, cpu=datasets.changes(cpu), smoke=smoke)
