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

from ssl_jax import config_util

datasets = config_util.import_sibling(__file__, "_datasets")
families = config_util.import_sibling(__file__, "_families")


def get_config(variant: str = "") -> ml_collections.ConfigDict:
    config = datasets.fashion_mnist("mae", batch_size=256)
    vit = {"patch_size": 4, "hidden_dim": 192, "depth": 6, "num_heads": 3}
    encoder = ("vit_tiny", {**vit, "position_embedding": "sincos"})
    families.mae(config, encoder=encoder, decoder=(128, 2, 4), warmup_epochs=10.0)
    cpu = {
        "model.encoder_kwargs": {"patch_size": 4, "position_embedding": "sincos"},
        "model.dtype": "float32",
        **families.decoder_sizes(64, 1, 2),
        "optim.learning_rate": 1e-3,  # a short run: a higher rate than the long recipe's
        "optim.warmup_epochs": 0.2,
        "num_epochs": 2.0,
        "log_every_steps": 20,
        "eval_every_steps": 0,
        "checkpoint_every_steps": 468,
    }
    tiny_vit = {"patch_size": 7, "hidden_dim": 32, "depth": 1, "num_heads": 2}
    smoke = {
        "model.encoder_kwargs": {**tiny_vit, "position_embedding": "sincos"},
        **families.decoder_sizes(32, 1, 2),
    }
    smoke = datasets.smoke(smoke, encoder=None, linear_epochs=2)
    return datasets.select(config, variant, cpu=datasets.changes(cpu), smoke=smoke)
