"""SimCLR + lambda * VICReg on Fashion-MNIST: two objectives composed as functions (ssl_jax.methods.composite).

  ssl-jax pretrain --config configs/simclr_vicreg_fashion_mnist.py --workdir runs/simclr_vicreg \
      --config.data.data_dir=/usr/share/datasets/fashion-mnist --config.composite.vicreg_weight=0.05

A demonstration of composition rather than a published recipe: there is no reference number. Variants:
`smoke` (tests), `small_cnn` (CPU-sized encoder).
"""

from __future__ import annotations

import importlib.util
import os

import ml_collections


def get_config(variant: str = "") -> ml_collections.ConfigDict:
    path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "simclr_fashion_mnist.py")
    spec = importlib.util.spec_from_file_location("simclr_fashion_mnist", path)
    base = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(base)
    config = base.get_config(variant)
    config.method = "simclr_vicreg"
    # VICReg's default coefficients make its value ~20x NT-Xent's; 0.05 keeps the two comparable.
    config.composite = ml_collections.ConfigDict({"temperature": 0.2, "vicreg_weight": 0.05})
    return config
