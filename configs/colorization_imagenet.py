"""Colorization (Zhang et al. 2016) on ImageNet with a ResNet-50 backbone.

From the paper: the network sees the L channel of 224px images and predicts at a quarter of the
resolution (56x56) a distribution over the in-gamut ab bins of a grid of 10 (soft-encoded targets over
5 neighbours with sigma 5), class rebalancing with lambda = 0.5 and sigma = 5 from the training set's
ab histogram (estimated here from 20,000 random training images), the annealed mean with T = 0.38 to
decode colours; Adam with beta2 = 0.99, weight decay 1e-3, lr 3e-5. We count 261 bins (the cells an
sRGB colour falls in) where the paper's 313 come from the gamut's hull. Ours: a ResNet-50 trunk (the
paper used a VGG-style net with dilated convolutions) whose 7x7 map feeds a fully convolutional head
upsampling to 56x56, batch 256 and 30 epochs with cosine decay. Evaluation: kNN and a linear probe on
the pooled features of the L channel.

Data: tfds `imagenet2012` prepared under DATA_DIR (it needs the manual download; see the tfds catalog):

  ssl-jax pretrain --config configs/colorization_imagenet.py --workdir runs/color_in1k \
      --config.data.data_dir=DATA_DIR

Any RGB dataset works: --config.data.name=image_folder --config.data.data_dir=DIR, or another tfds name.
Expected result: no run of this recipe is recorded. The offline CPU run on scikit-image's photographs
(configs/colorization_skimage.py) is in benchmarks/results/pretext.md.
Variant `:smoke`: 32px images, a grid of 20, tiny networks, three steps.
"""

from __future__ import annotations

import ml_collections

from ssl_jax import augment, default_config


def get_config(variant: str = "") -> ml_collections.ConfigDict:
    config = default_config.get_config()
    config.method = "colorization"
    config.data.name = "tfds"
    config.data.tfds_name = "imagenet2012"
    config.data.image_size = 224
    config.data.channels = 3
    config.data.num_classes = 1000
    config.data.mean = augment.IMAGENET_MEAN  # unused: colorization normalizes L itself
    config.data.std = augment.IMAGENET_STD

    config.model.encoder = "resnet50"
    config.model.encoder_kwargs = {"stem": "imagenet"}
    config.model.dtype = "bfloat16"
    config.colorization = ml_collections.ConfigDict(
        {
            "grid_size": 10.0,
            "output_size": 56,
            "head_width": 256,
            "soft_neighbours": 5,
            "soft_sigma": 5.0,
            "rebalance": True,
            "rebalance_mix": 0.5,
            "rebalance_sigma": 5.0,
            "prior_examples": 20000,
            "flip": True,
            "temperature": 0.38,
        }
    )

    config.batch_size = 256
    config.num_epochs = 30.0
    config.optim.name = "adamw"
    config.optim.learning_rate = 3e-5
    config.optim.lr_scaling = "none"
    config.optim.b2 = 0.99
    config.optim.weight_decay = 1e-3
    config.optim.warmup_epochs = 1.0
    config.log_every_steps = 100
    config.eval_every_steps = 0
    config.checkpoint_every_steps = 2000
    config.eval.batch_size = 1024

    if variant == "smoke":
        config.data.image_size = 32
        config.model.encoder = "small_cnn"
        config.model.encoder_kwargs = {"widths": (8, 16), "strides": (2, 2)}
        config.model.dtype = "float32"
        config.colorization.update(
            {"grid_size": 20.0, "output_size": 8, "head_width": 8, "prior_examples": 64}
        )
        config.batch_size = 16
        config.num_steps = 3
        config.log_every_steps = 1
        config.checkpoint_every_steps = 2
        config.eval.batch_size = 16
        config.eval.protocols = ("knn",)
        config.eval.knn_k = 5
    elif variant:
        raise ValueError(f"Unknown variant {variant!r}; valid: smoke.")
    return config
