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

Expected result: 68.0% linear-probe top-1 (the repository's number above; 83.6% fine-tuned needs
its fine-tuning recipe); not yet reproduced here.
Variant `:ep800`: the paper's 800-epoch ablation schedule (Table 1 / Fig. 7).
Variant `:smoke`: the same pipeline on a tiny ViT and 48-px images, three steps.
"""

from __future__ import annotations

import ml_collections

from ssl_jax import config_util

datasets = config_util.import_sibling(__file__, "_datasets")
families = config_util.import_sibling(__file__, "_families")


def get_config(variant: str = "") -> ml_collections.ConfigDict:
    config = datasets.imagenet("mae", batch_size=4096, num_epochs=1600.0)
    encoder = ("vit_base", {"patch_size": 16, "position_embedding": "sincos"})
    families.mae(config, encoder=encoder, decoder=(512, 8, 16), warmup_epochs=40.0, eps=1e-8)
    config.eval.protocols = ("linear",)
    tiny_vit = {"patch_size": 8, "hidden_dim": 32, "depth": 1, "num_heads": 2}
    smoke = {
        "model.encoder_kwargs": {**tiny_vit, "position_embedding": "sincos"},
        **families.decoder_sizes(32, 1, 2),
    }
    smoke = datasets.smoke(smoke, encoder="vit_tiny", image_size=48)
    return datasets.select(config, variant, ep800=datasets.changes(num_epochs=800.0), smoke=smoke)
