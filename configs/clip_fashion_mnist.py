"""CLIP on the full Fashion-MNIST (60,000 train / 10,000 test, 28x28x1), each image paired with a caption
made from its class name in one of seven templates ("a photo of a sandal.", "a product picture of a
bag.", ...; `ssl_jax.data.captions.TEMPLATES`), byte-level tokens (vocabulary 261, 44 per caption).

Image tower: ResNet-18 (CIFAR stem) -> linear projection; text tower: a causal Transformer (4 x 256,
read out at eos) -> linear projection; 128-d joint space; learnable logit scale from 1/0.07, capped at 100.
AdamW (lr 5e-4, betas 0.9/0.98, eps 1e-6, weight decay 0.2 on matrices only), warm-up then cosine, as the
CLIP paper trains (Radford et al. 2021, Sec. 2.5), at a CPU/GPU-sized batch of 512.

Data: the four IDX files, e.g. from Debian's `dataset-fashion-mnist` (/usr/share/datasets/fashion-mnist).

  ssl-jax pretrain --config configs/clip_fashion_mnist.py --workdir runs/clip_fmnist \
      --config.data.data_dir=/usr/share/datasets/fashion-mnist
  ssl-jax evaluate --workdir runs/clip_fmnist --protocol zero_shot

Evaluated by zero-shot classification (class prompts of every template -> nearest text embedding), kNN
and linear probe on the image backbone.
Expected result: see benchmarks/results/clip_fashion_mnist.md (the `:small_cnn` variant, with the
command and the machine).
Variants: `:small_cnn` (the CPU-sized towers used there), `:smoke` (a few steps of tiny towers, for
tests).
"""

from __future__ import annotations

import ml_collections

from ssl_jax import config_util
from ssl_jax.data import captions

datasets = config_util.import_sibling(__file__, "_datasets")
families = config_util.import_sibling(__file__, "_families")


def get_config(variant: str = "") -> ml_collections.ConfigDict:
    config = datasets.fashion_mnist("clip", num_epochs=30.0)
    # Rows {"image", "text", "label"}: Fashion-MNIST captioned from its class names.
    config.data.name = "captioned"
    config.data.image_source = "fashion_mnist"
    config.data.class_names = ()  # () = the source's own (Fashion-MNIST's ten names)
    config.data.templates = captions.TEMPLATES
    config.data.caption_seed = 0  # which template each example's caption uses
    config.data.tokenizer = "byte"  # or "bpe" (trained on the captions, data.vocab_size)
    config.data.tokenizer_path = ""
    config.data.vocab_size = 512
    config.data.text_len = 44  # the longest caption is 43 tokens with bos and eos
    families.set_encoder(config, families.RESNET18)
    families.clip(config, width=256, depth=4, embed_dim=128, warmup_epochs=1.0)
    config.eval.protocols = ("zero_shot", "knn", "linear")
    # Captions are short and few (70 distinct): a narrow text tower, which would otherwise cost
    # ~50x the small CNN's FLOPs per step.
    small_cnn = {
        **families.text_tower(64, 2, 2),
        "clip.embed_dim": 64,
        "batch_size": 256,
        "num_epochs": 1.0,
        "optim.warmup_epochs": 0.1,
        "log_every_steps": 20,
        "eval_every_steps": 0,
        "checkpoint_every_steps": 117,
    }
    smoke = {**families.text_tower(16, 1, 2), "clip.embed_dim": 16, "optim.warmup_epochs": 0.0}
    return datasets.select(
        config,
        variant,
        small_cnn=datasets.small_cnn(small_cnn),
        smoke=datasets.smoke(smoke, protocols=None, linear_epochs=2),
    )
