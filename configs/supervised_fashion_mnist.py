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
fc6 or fc7); 0 transfers the whole backbone.
Expected result: see the "supervised" row of benchmarks/results/lecture_table.md (with the command
and machine).
Variants: `:smoke` (the embedded subset, a tiny encoder, three steps), `:all_classes` (all ten
classes upstream).
"""

from __future__ import annotations

import ml_collections

from ssl_jax import config_util

datasets = config_util.import_sibling(__file__, "_datasets")
families = config_util.import_sibling(__file__, "_families")


def get_config(variant: str = "") -> ml_collections.ConfigDict:
    config = datasets.fashion_mnist(
        "supervised", batch_size=256, num_epochs=10.0, eval_every_epochs=0
    )
    del config.model["projector"]  # SimCLR's fields, unused here
    del config["simclr"]
    config.data.update(
        name="class_subset", base="fashion_mnist", data_dir=datasets.FASHION_MNIST_DIR
    )
    config.data.update(classes=(0, 1, 2, 3, 4), num_classes=5)
    config.checkpoint_every_steps = 500
    families.supervised(
        config, label_smoothing=0.0, crop_scale=(0.5, 1.0), weight_decay=5e-4, warmup=1.0
    )
    all_classes = {"data.name": "fashion_mnist", "data.classes": (), "data.num_classes": 10}
    smoke = datasets.smoke(
        {"data.base": "embedded_fashion_mnist"},
        protocols=None,
        max_train_examples=1000,
        linear_epochs=2,
    )
    return datasets.select(config, variant, all_classes=datasets.changes(all_classes), smoke=smoke)
