"""Supervised pre-training (the R-CNN recipe, Girshick et al. 2014) on Fashion-MNIST classes 0-4, for
transfer to classes 5-9.

Upstream task: T-shirt/top, Trouser, Pullover, Dress, Coat (30,000 labelled training images); a
classifier on the small CNN, cross-entropy, random resized crop (scale 0.5-1) and flip. Downstream task:
Sandal, Shirt, Sneaker, Bag, Ankle boot, a disjoint set of classes, by fine-tuning the pre-trained
backbone (or probing its features):

  ssl-jax pretrain --config configs/supervised_fashion_mnist.py --workdir runs/supervised_fmnist \
      --config.data.data_dir=/usr/share/datasets/fashion-mnist
  ssl-jax evaluate --workdir runs/supervised_fmnist --protocol finetune_10pct --protocol linear \
      --config.data.classes='(5,6,7,8,9)'

`--config.supervised.transfer_layer=k` transfers only the first k conv stages (R-CNN's choice of pool5,
fc6 or fc7); 0 transfers the whole backbone. Measured result, command and machine: the "supervised"
row of benchmarks/results/lecture_table.md. Variants: `:smoke` (the embedded subset, a tiny encoder,
three steps), `:all_classes` (all ten classes upstream).
"""

from __future__ import annotations

import ml_collections

from ssl_jax import default_config


def get_config(variant: str = "") -> ml_collections.ConfigDict:
    config = default_config.get_config()
    config.method = "supervised"
    del config.model["projector"]  # SimCLR's fields, unused here
    del config["simclr"]
    config.data.name = "class_subset"
    config.data.base = "fashion_mnist"
    config.data.data_dir = "/usr/share/datasets/fashion-mnist"
    config.data.classes = (0, 1, 2, 3, 4)
    config.data.num_classes = 5

    config.model.encoder = "small_cnn"
    config.model.encoder_kwargs = {"widths": (32, 64, 128), "strides": (2, 2, 2)}
    config.supervised = ml_collections.ConfigDict({"transfer_layer": 0, "label_smoothing": 0.0})
    config.augment = ml_collections.ConfigDict(
        {
            "preset": None,
            "crop_size": 28,
            "crop_scale": (0.5, 1.0),
            "flip_prob": 0.5,
            "jitter_prob": 0.0,
        }
    )

    config.batch_size = 256
    config.num_epochs = 10.0
    config.optim = ml_collections.ConfigDict(
        {
            "name": "sgd",
            "learning_rate": 0.1,
            "lr_scaling": "linear",  # 0.1 x batch / 256
            "momentum": 0.9,
            "nesterov": True,
            "weight_decay": 5e-4,
            "warmup_epochs": 1.0,
            "end_lr": 0.0,
        }
    )
    config.log_every_steps = 50
    config.eval_every_steps = 0
    config.checkpoint_every_steps = 500

    if variant == "all_classes":
        config.data.name = "fashion_mnist"
        config.data.classes = ()
        config.data.num_classes = 10
    elif variant == "smoke":
        config.data.base = "embedded_fashion_mnist"
        config.model.encoder_kwargs = {"widths": (8, 16), "strides": (2, 2)}
        config.batch_size = 16
        config.num_steps = 3
        config.log_every_steps = 1
        config.checkpoint_every_steps = 2
        config.eval.linear_epochs = 2
        config.eval.max_train_examples = 1000
    elif variant:
        raise ValueError(f"Unknown variant {variant!r}; valid: all_classes, smoke.")
    return config
