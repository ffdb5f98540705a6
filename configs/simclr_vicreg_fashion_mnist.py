"""SimCLR + lambda * VICReg on Fashion-MNIST: two objectives composed as functions (ssl_jax.methods.composite).

  ssl-jax pretrain --config configs/simclr_vicreg_fashion_mnist.py --workdir runs/simclr_vicreg \
      --config.data.data_dir=/usr/share/datasets/fashion-mnist --config.composite.vicreg_weight=0.05

Expected result: see benchmarks/results/lecture_table.md (the `:small_cnn` variant); a demonstration
of composition rather than a published recipe, so there is no reference number.
Variants: `smoke` (tests), `small_cnn` (CPU-sized encoder).
"""

from __future__ import annotations

import ml_collections

from ssl_jax import config_util


def get_config(variant: str = "") -> ml_collections.ConfigDict:
    config = config_util.import_sibling(__file__, "simclr_fashion_mnist").get_config(variant)
    config.method = "simclr_vicreg"
    # VICReg's default coefficients make its value ~20x NT-Xent's; 0.05 keeps the two comparable.
    config.composite = ml_collections.ConfigDict({"temperature": 0.2, "vicreg_weight": 0.05})
    return config
