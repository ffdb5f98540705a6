"""MAE with a small ViT (patch 4) on the full Fashion-MNIST (60,000 train / 10,000 test, 28x28x1).

MAE's ImageNet recipe (configs/mae_imagenet.py) scaled to 28-px images: a ViT of width 192, depth 6, 3
heads on 4x4 patches (49 patches, 12 kept at mask ratio 0.75) with fixed sin-cos positions; decoder of 2
blocks, width 128, 4 heads; loss on per-patch normalized pixels; random resized crop 28 (scale 0.2-1) and
flip; AdamW, betas (0.9, 0.95), weight decay 0.05, lr 1.5e-4 x batch / 256, 10 warm-up epochs then cosine
to 0, 100 epochs. Evaluation: kNN and linear probe on the class token.

Data: the four IDX files, e.g. from Debian's `dataset-fashion-mnist` (/usr/share/datasets/fashion-mnist).

  ssl-jax pretrain --config configs/mae_fashion_mnist.py --workdir runs/mae_fmnist \
      --config.data.data_dir=/usr/share/datasets/fashion-mnist

Expected result: no accelerator run of this recipe is recorded yet. The CPU-budget run of the `:cpu`
variant and its command are in benchmarks/results/mae_fashion_mnist.md.
Variants: `:cpu` (the registry's vit_tiny, width 64 and depth 2, and a width-64 decoder of 1 block, sized
for a few minutes on 2 CPU cores), `:smoke` (patch 7, a one-block ViT, three steps, for tests).
"""

from __future__ import annotations

import ml_collections

from ssl_jax import default_config


def get_config(variant: str = "") -> ml_collections.ConfigDict:
    config = default_config.get_config()
    config.method = "mae"
    config.data.name = "fashion_mnist"
    config.data.data_dir = "/usr/share/datasets/fashion-mnist"
    del config.model["projector"]  # SimCLR's fields, unused here
    del config["simclr"]

    config.model.encoder = "vit_tiny"
    config.model.encoder_kwargs = {
        "patch_size": 4,
        "hidden_dim": 192,
        "depth": 6,
        "num_heads": 3,
        "position_embedding": "sincos",
    }
    config.model.dtype = "bfloat16"
    config.model.decoder = ml_collections.ConfigDict(
        {"hidden_dim": 128, "depth": 2, "num_heads": 4, "mlp_ratio": 4.0}
    )
    config.mae = ml_collections.ConfigDict({"mask_ratio": 0.75, "norm_pix_loss": True})
    config.augment = ml_collections.ConfigDict(
        {
            "preset": None,
            "crop_size": 28,
            "crop_scale": (0.2, 1.0),
            "flip_prob": 0.5,
            "jitter_prob": 0.0,
        }
    )

    config.batch_size = 256
    config.num_epochs = 100.0
    config.optim = ml_collections.ConfigDict(
        {
            "name": "adamw",
            "learning_rate": 1.5e-4,
            "lr_scaling": "linear",
            "weight_decay": 0.05,
            "b1": 0.9,
            "b2": 0.95,
            "warmup_epochs": 10.0,
            "end_lr": 0.0,
        }
    )
    config.log_every_steps = 50
    config.eval_every_steps = 2340  # every 10 epochs
    config.checkpoint_every_steps = 2340

    if variant == "cpu":
        config.model.encoder_kwargs = {"patch_size": 4, "position_embedding": "sincos"}
        config.model.dtype = "float32"
        config.model.decoder.update({"hidden_dim": 64, "depth": 1, "num_heads": 2})
        config.optim.learning_rate = 1e-3  # a short run: a higher rate than the long recipe's
        config.optim.warmup_epochs = 0.2
        config.num_epochs = 2.0
        config.log_every_steps = 20
        config.eval_every_steps = 0
        config.checkpoint_every_steps = 468
    elif variant == "smoke":
        config.model.encoder_kwargs = {
            "patch_size": 7,
            "hidden_dim": 32,
            "depth": 1,
            "num_heads": 2,
            "position_embedding": "sincos",
        }
        config.model.dtype = "float32"
        config.model.decoder.update({"hidden_dim": 32, "depth": 1, "num_heads": 2})
        config.batch_size = 16
        config.num_steps = 3
        config.log_every_steps = 1
        config.eval_every_steps = 0
        config.checkpoint_every_steps = 2
        config.eval.protocols = ("knn",)
        config.eval.linear_epochs = 2
        config.eval.max_train_examples = 2000
    elif variant:
        raise ValueError(f"Unknown variant {variant!r}; valid: cpu, smoke.")
    return config
