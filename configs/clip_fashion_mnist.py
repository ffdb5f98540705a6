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
and linear probe on the image backbone. Measured results: benchmarks/results/clip_fashion_mnist.md
(with the command and the machine). Variants: `:small_cnn` (the CPU-sized towers used there), `:smoke`
(a few steps of tiny towers, for tests).
"""

from __future__ import annotations

import ml_collections

from ssl_jax import default_config
from ssl_jax.data import captions


def get_config(variant: str = "") -> ml_collections.ConfigDict:
    config = default_config.get_config()
    config.method = "clip"
    # Rows {"image", "text", "label"}: Fashion-MNIST captioned from its class names.
    config.data.name = "captioned"
    config.data.image_source = "fashion_mnist"
    config.data.data_dir = "/usr/share/datasets/fashion-mnist"
    config.data.class_names = ()  # () = the source's own (Fashion-MNIST's ten names)
    config.data.templates = captions.TEMPLATES
    config.data.caption_seed = 0  # which template each example's caption uses
    config.data.tokenizer = "byte"  # or "bpe" (trained on the captions, data.vocab_size)
    config.data.tokenizer_path = ""
    config.data.vocab_size = 512
    config.data.text_len = 44  # the longest caption is 43 tokens with bos and eos

    config.model.encoder = "resnet18"
    config.model.encoder_kwargs = {"stem": "cifar"}
    config.model.dtype = "bfloat16"
    # vocab_size 0: the tokenizer's (261 for bytes, data.vocab_size for BPE).
    config.model.text = ml_collections.ConfigDict(
        {"vocab_size": 0, "width": 256, "depth": 4, "num_heads": 4, "mlp_ratio": 4.0}
    )
    config.clip = ml_collections.ConfigDict(
        {"embed_dim": 128, "init_temperature": 0.07, "max_logit_scale": 100.0}
    )
    # CLIP's only augmentation: a random crop of the (resized) image; no flip, no colour.
    config.augment = ml_collections.ConfigDict(
        {"crop_size": 28, "crop_scale": (0.5, 1.0), "flip_prob": 0.0, "jitter_prob": 0.0}
    )

    config.batch_size = 512
    config.num_epochs = 30.0
    config.optim.name = "adamw"
    config.optim.learning_rate = 5e-4
    config.optim.lr_scaling = "none"
    config.optim.b1 = 0.9
    config.optim.b2 = 0.98
    config.optim.eps = 1e-6
    config.optim.weight_decay = 0.2
    config.optim.warmup_epochs = 1.0
    config.log_every_steps = 50
    config.eval_every_steps = 1170  # kNN every 10 epochs
    config.checkpoint_every_steps = 1170
    config.eval.protocols = ("zero_shot", "knn", "linear")

    if variant == "small_cnn":
        config.model.encoder = "small_cnn"
        config.model.encoder_kwargs = {"widths": (32, 64, 128), "strides": (2, 2, 2)}
        config.model.dtype = "float32"
        # Captions are short and few (70 distinct): a narrow text tower, which would otherwise cost
        # ~50x the small CNN's FLOPs per step.
        config.model.text.update({"width": 64, "depth": 2, "num_heads": 2})
        config.clip.embed_dim = 64
        config.batch_size = 256
        config.num_epochs = 1.0
        config.optim.warmup_epochs = 0.1
        config.log_every_steps = 20
        config.eval_every_steps = 0
        config.checkpoint_every_steps = 117
    elif variant == "smoke":
        config.model.encoder = "small_cnn"
        config.model.encoder_kwargs = {"widths": (8, 16), "strides": (2, 2)}
        config.model.dtype = "float32"
        config.model.text.update({"width": 16, "depth": 1, "num_heads": 2})
        config.clip.embed_dim = 16
        config.batch_size = 16
        config.num_steps = 3
        config.optim.warmup_epochs = 0.0
        config.log_every_steps = 1
        config.eval_every_steps = 0
        config.checkpoint_every_steps = 2
        config.eval.linear_epochs = 2
        config.eval.max_train_examples = 2000
    elif variant:
        raise ValueError(f"Unknown variant {variant!r}; valid: small_cnn, smoke.")
    return config
