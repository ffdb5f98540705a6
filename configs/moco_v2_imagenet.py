"""MoCo v2 on ImageNet: the paper's recipe (Chen, Fan, Girshick & He 2020), ResNet-50 at 224x224.

Batch 256, SGD (lr 0.03 x batch / 256, momentum 0.9, weight decay 1e-4, biases and norms excluded), no
warm-up, cosine decay over 200 epochs; a queue of K = 65536 keys, momentum 0.999, temperature 0.2; MLP
head 2048-2048-128 (no BN); "aug+": crops with scale (0.2, 1), colour jitter 0.4/0.4/0.4/0.1 with p 0.8,
grayscale p 0.2, Gaussian blur (sigma in [0.1, 2]) p 0.5, flips. BN as the paper trained: shuffle-BN in
the key encoder and per-device BN in the query encoder (see ssl_jax/methods/moco.py). The paper reports
67.5% linear-evaluation top-1 for this 200-epoch ResNet-50 (Table 1; 71.1% after 800 epochs, Table 2).
MoCo's weight decay also covers biases and BN parameters, ours does not; the paper's 8 GPUs hold 32
images each, so per-device statistics match it on 8 devices.

Data: tfds `imagenet2012` prepared under DATA_DIR (it needs the manual download; see the tfds catalog):

  ssl-jax pretrain --config configs/moco_v2_imagenet.py --workdir runs/moco_v2_in1k \
      --config.data.data_dir=DATA_DIR

Variant `:ep800`: the same recipe for 800 epochs (71.1%).
Variant `:smoke`: the ImageNet pipeline (blur, ImageNet stem) on 3 tiny steps and small images.
"""

from __future__ import annotations

import ml_collections

from ssl_jax import augment, default_config


def get_config(variant: str = "") -> ml_collections.ConfigDict:
    config = default_config.get_config()
    config.method = "moco_v2"
    del config["simclr"]
    config.data.name = "tfds"
    config.data.tfds_name = "imagenet2012"
    config.data.image_size = 224
    config.data.channels = 3
    config.data.num_classes = 1000
    config.data.mean = augment.IMAGENET_MEAN
    config.data.std = augment.IMAGENET_STD

    config.model.encoder = "resnet50"
    config.model.encoder_kwargs = {"stem": "imagenet"}
    config.model.dtype = "bfloat16"
    config.model.sync_batch_norm = False  # query encoder: per-device BN, as MoCo
    config.model.projector = ml_collections.ConfigDict(
        {"hidden_dim": 2048, "output_dim": 128, "num_layers": 2, "use_bn": False}
    )
    config.moco = ml_collections.ConfigDict(
        {
            "temperature": 0.2,
            "momentum": 0.999,
            "final_momentum": None,  # constant
            "queue_size": 65536,
            "key_bn": "shuffle",
            "symmetric": False,
        }
    )
    config.augment = {
        "preset": "simclr",
        "image_size": 224,
        "channels": 3,
        "crop_scale": (0.2, 1.0),
        "brightness": 0.4,
        "contrast": 0.4,
        "saturation": 0.4,
        "hue": 0.1,
        "blur_prob": 0.5,
        "blur_sigma": (0.1, 2.0),
    }

    config.batch_size = 256
    config.num_epochs = 200.0
    config.optim = ml_collections.ConfigDict(
        {
            "name": "sgd",
            "learning_rate": 0.03,
            "lr_scaling": "linear",
            "weight_decay": 1e-4,
            "momentum": 0.9,
            "warmup_epochs": 0.0,
            "end_lr": 0.0,
        }
    )
    config.log_every_steps = 100
    config.eval_every_steps = 0
    config.checkpoint_every_steps = 5000
    config.eval.batch_size = 1024

    if variant == "ep800":
        config.num_epochs = 800.0
    elif variant == "smoke":
        config.data.image_size = 48
        config.augment.image_size = 48
        config.model.encoder = "resnet18"
        config.model.projector.hidden_dim = 32
        config.model.projector.output_dim = 16
        config.moco.queue_size = 64
        config.batch_size = 16
        config.num_steps = 3
        config.log_every_steps = 1
        config.checkpoint_every_steps = 2
        config.eval.batch_size = 16
        config.eval.protocols = ("knn",)
        config.eval.max_train_examples = 2000
        config.eval.linear_epochs = 2
    elif variant:
        raise ValueError(f"Unknown variant {variant!r}; valid: ep800, smoke.")
    return config
