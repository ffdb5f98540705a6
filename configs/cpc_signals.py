"""CPC (van den Oord et al. 2018) on 1-D signals: the synthetic, labelled "synthetic_signals" source
(ssl_jax.data.signals: class-dependent fundamental + harmonic, a random distractor tone and noise).

A strided 1-D convolution stack (downsampling 32x) turns 1,024 samples into 32 steps z_t; a GRU gives
c_t; W_k c_t predicts z_{t+1..t+4} against the other signals of the global batch at the same step.
Features for kNN / linear: mean-pooled contexts c_t (the paper's audio protocol).

  ssl-jax pretrain --config configs/cpc_signals.py --workdir runs/cpc_signals

Measured result (against the same network at random initialization): benchmarks/results/cpc.md.
Variants: `:smoke` (a few steps on short signals, for tests).
"""

from __future__ import annotations

import ml_collections

from ssl_jax import default_config


def get_config(variant: str = "") -> ml_collections.ConfigDict:
    config = default_config.get_config()
    config.method = "cpc"
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
    config.model.dtype = "float32"
    config.augment = ml_collections.ConfigDict()  # CPC uses none

    config.batch_size = 128
    config.num_epochs = 5.0
    config.optim = ml_collections.ConfigDict(
        {
            "name": "adamw",
            "learning_rate": 2e-3,
            "lr_scaling": "none",
            "weight_decay": 0.0,
            "warmup_steps": 50,
            "end_lr": 0.0,
        }
    )
    config.log_every_steps = 50
    config.eval_every_steps = 0
    config.checkpoint_every_steps = 1000

    if variant == "smoke":
        config.data.num_train = 64
        config.data.num_test = 32
        config.data.signal_length = 128
        config.cpc.widths = (8, 8)
        config.cpc.kernels = (4, 4)
        config.cpc.strides = (4, 2)  # 16 steps
        config.cpc.z_dim = 8
        config.cpc.context_dim = 8
        config.cpc.num_predictions = 2
        config.batch_size = 16
        config.num_steps = 3
        config.log_every_steps = 1
        config.checkpoint_every_steps = 2
        config.eval.linear_epochs = 2
    elif variant:
        raise ValueError(f"Unknown variant {variant!r}; valid: smoke.")
    return config
