"""Supervised ImageNet pre-training of a ResNet-50, the R-CNN recipe's first stage (Girshick et al. 2014
pre-trained on ILSVRC 2012 classification, then fine-tuned on detection), with today's standard recipe
(torchvision's ResNet-50 reference: SGD + Nesterov momentum 0.9, lr 0.1 x batch / 256, weight decay 1e-4,
90 epochs, label smoothing 0.1, random resized crop 224 + flip; here a cosine schedule after 5 warm-up
epochs instead of step decay).

Data: tfds `imagenet2012` prepared in ArrayRecord format (`tfds build imagenet2012 --file_format=array_record`
after placing the ILSVRC 2012 tars in the manual directory).

  ssl-jax pretrain --config configs/supervised_imagenet.py --workdir runs/supervised_imagenet \
      --config.data.data_dir=~/tensorflow_datasets

Then transfer: fine-tune or probe the exported backbone on another labelled task (`ssl-jax evaluate
--workdir runs/supervised_imagenet --protocol linear --config.data.tfds_name=...`). No run of this
config is recorded (it needs an accelerator and ImageNet); torchvision reports 76.1% top-1 for this
recipe with step decay. `--config.supervised.transfer_layer=3` transfers conv1 .. layer3 (1024 channels).
Variants: `:smoke` (the ImageNet pipeline on the small CNN at 64 px, three steps).
"""

from __future__ import annotations

import ml_collections

from ssl_jax import default_config
from ssl_jax.augment import IMAGENET_MEAN, IMAGENET_STD


def get_config(variant: str = "") -> ml_collections.ConfigDict:
    config = default_config.get_config()
    config.method = "supervised"
    del config.model["projector"]
    del config["simclr"]
    config.data.name = "tfds"
    config.data.tfds_name = "imagenet2012"
    config.data.train_split = "train"
    config.data.test_split = "validation"
    config.data.image_size = 224
    config.data.channels = 3
    config.data.num_classes = 1000
    config.data.mean = IMAGENET_MEAN
    config.data.std = IMAGENET_STD

    config.model.encoder = "resnet50"
    config.model.encoder_kwargs = {"stem": "imagenet"}
    config.model.dtype = "bfloat16"
    config.supervised = ml_collections.ConfigDict({"transfer_layer": 0, "label_smoothing": 0.1})
    config.augment = ml_collections.ConfigDict(
        {
            "preset": None,
            "crop_size": 224,
            "crop_scale": (0.08, 1.0),
            "flip_prob": 0.5,
            "jitter_prob": 0.0,
        }
    )

    config.batch_size = 1024
    config.num_epochs = 90.0
    config.optim = ml_collections.ConfigDict(
        {
            "name": "sgd",
            "learning_rate": 0.1,
            "lr_scaling": "linear",
            "momentum": 0.9,
            "nesterov": True,
            "weight_decay": 1e-4,
            "warmup_epochs": 5.0,
            "end_lr": 0.0,
        }
    )
    config.log_every_steps = 100
    config.eval_every_steps = 0
    config.checkpoint_every_steps = 2500
    config.eval.protocols = ("linear",)

    if variant == "smoke":
        config.data.image_size = 64
        config.augment.crop_size = 64
        config.model.encoder = "small_cnn"
        config.model.encoder_kwargs = {"widths": (8, 16), "strides": (2, 2)}
        config.model.dtype = "float32"
        config.batch_size = 16
        config.num_steps = 3
        config.log_every_steps = 1
        config.checkpoint_every_steps = 2
    elif variant:
        raise ValueError(f"Unknown variant {variant!r}; valid: smoke.")
    return config
