"""MAE on ImageNet: the paper's ViT-B/16 recipe (He et al. 2022, App. A.1; the official repository's
PRETRAIN.md), bfloat16 activations.

ViT-B/16 encoder with fixed 2-D sin-cos positions; decoder of 8 blocks, width 512, 16 heads; 75% of the
196 patches masked per image (49 kept); loss on per-patch normalized pixels (norm_pix_loss); augmentation
random resized crop 224 (scale 0.2-1) + horizontal flip only; AdamW, betas (0.9, 0.95), weight decay 0.05,
lr 1.5e-4 x batch / 256 (batch 4096: 2.4e-3), 40 warm-up epochs then cosine to 0, 1600 epochs.

Reported results for this recipe (the released ViT-B checkpoint): 83.6% top-1 after end-to-end
fine-tuning (100 epochs, layer decay 0.65, mixup/cutmix; the repository's README) and 68.0% linear probe
(class token; FINETUNE.md, "paper (TF/TPU)"). The fine-tuning recipe is not reproduced by the generic
"finetune" protocol (no mixup, cutmix or random erasing), so expect it lower there.

Data: tfds `imagenet2012` prepared under DATA_DIR (it needs the manual download; see the tfds catalog):

  ssl-jax pretrain --config configs/mae_imagenet.py --workdir runs/mae_in1k \
      --config.data.data_dir=DATA_DIR

Variant `:ep800`: the paper's 800-epoch ablation schedule (Table 1 / Fig. 7).
Variant `:smoke`: the same pipeline on a tiny ViT and 48-px images, three steps.
"""

from __future__ import annotations

import ml_collections

from ssl_jax import augment, default_config


def get_config(variant: str = "") -> ml_collections.ConfigDict:
    config = default_config.get_config()
    config.method = "mae"
    config.data.name = "tfds"
    config.data.tfds_name = "imagenet2012"
    config.data.image_size = 224
    config.data.channels = 3
    config.data.num_classes = 1000
    config.data.mean = augment.IMAGENET_MEAN
    config.data.std = augment.IMAGENET_STD
    del config.model["projector"]  # SimCLR's fields, unused here
    del config["simclr"]

    config.model.encoder = "vit_base"
    config.model.encoder_kwargs = {"patch_size": 16, "position_embedding": "sincos"}
    config.model.dtype = "bfloat16"
    config.model.decoder = ml_collections.ConfigDict(
        {"hidden_dim": 512, "depth": 8, "num_heads": 16, "mlp_ratio": 4.0}
    )
    config.mae = ml_collections.ConfigDict({"mask_ratio": 0.75, "norm_pix_loss": True})
    # One view: random resized crop (scale 0.2-1) and flip, nothing photometric (ViewSpec fields).
    config.augment = ml_collections.ConfigDict(
        {
            "preset": None,
            "crop_size": 224,
            "crop_scale": (0.2, 1.0),
            "flip_prob": 0.5,
            "jitter_prob": 0.0,
        }
    )

    config.batch_size = 4096
    config.num_epochs = 1600.0
    config.optim = ml_collections.ConfigDict(
        {
            "name": "adamw",
            "learning_rate": 1.5e-4,
            "lr_scaling": "linear",
            "weight_decay": 0.05,
            "b1": 0.9,
            "b2": 0.95,
            "eps": 1e-8,
            "warmup_epochs": 40.0,
            "end_lr": 0.0,
        }
    )
    config.log_every_steps = 100
    config.eval_every_steps = 0
    config.checkpoint_every_steps = 1000
    config.eval.batch_size = 1024
    config.eval.protocols = ("linear",)

    if variant == "ep800":
        config.num_epochs = 800.0
    elif variant == "smoke":
        config.data.image_size = 48
        config.augment.crop_size = 48
        config.model.encoder = "vit_tiny"
        config.model.encoder_kwargs = {
            "patch_size": 8,
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
        config.checkpoint_every_steps = 2
        config.eval.batch_size = 16
        config.eval.protocols = ("knn",)
        config.eval.max_train_examples = 2000
    elif variant:
        raise ValueError(f"Unknown variant {variant!r}; valid: ep800, smoke.")
    return config
