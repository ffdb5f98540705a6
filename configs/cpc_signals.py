"""CPC (van den Oord et al. 2018) on 1-D signals: the synthetic, labelled "synthetic_signals" source
(ssl_jax.data.signals: class-dependent fundamental + harmonic, a random distractor tone and noise).

A strided 1-D convolution stack (downsampling 32x) turns 1,024 samples into 32 steps z_t; a GRU gives
c_t; W_k c_t predicts z_{t+1..t+4} against the other signals of the global batch at the same step.
Features for kNN / linear: mean-pooled contexts c_t (the paper's audio protocol).

  ssl-jax pretrain --config configs/cpc_signals.py --workdir runs/cpc_signals

Expected result: see benchmarks/results/cpc.md (against the same network at random
initialization).
Variants: `:smoke` (a few steps on short signals, for tests).
"""

from __future__ import annotations

import ml_collections

from ssl_jax import config_util

datasets = config_util.import_sibling(__file__, "_datasets")
families = config_util.import_sibling(__file__, "_families")


def get_config(variant: str = "") -> ml_collections.ConfigDict:
    config = datasets.base("cpc", batch_size=128, num_epochs=5.0)
    config.data = ml_collections.ConfigDict(
        {
            "name": "synthetic_signals",
            "num_train": 10_000,
            "num_test": 2_000,
            "signal_length": 1024,
            "num_classes": 10,
            "noise_std": 0.5,
            "f_min": 0.01,
            "f_max": 0.08,
            "jitter": 0.03,
            "signal_seed": 0,
        }
    )
    config.cpc = ml_collections.ConfigDict(
        {
            "mode": "sequence",
            "widths": (64, 64, 64, 64),
            "kernels": (8, 4, 4, 4),
            "strides": (4, 2, 2, 2),  # 32 samples per step
            "z_dim": 64,
            "context_dim": 64,
            "num_predictions": 4,  # k = 1..4 steps ahead
            "first_step": 1,
            "features": "context",
            # image_patches mode only
            "patch_size": 0,
            "patch_stride": 0,
            "patch_pad": 0,
        }
    )
    config.augment = ml_collections.ConfigDict()  # CPC uses none
    config.optim = families.cpc_adamw(warmup_steps=50)
    smoke = {
        "data.num_train": 64,
        "data.num_test": 32,
        "data.signal_length": 128,
        "cpc.kernels": (4, 4),
        **families.cpc_smoke(widths=(8, 8), strides=(4, 2), dim=8),  # 16 steps
    }
    smoke = datasets.smoke(
        smoke, encoder=None, protocols=None, max_train_examples=None, linear_epochs=2
    )
    return datasets.select(config, variant, smoke=smoke)
