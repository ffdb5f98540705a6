"""Colorization (Zhang et al. 2016) offline on real colour photographs: random 32x32 crops of the eight
colour photographs bundled with scikit-image (data.name = "skimage_samples"; `pip install scikit-image`
or `pip install 'ssl_jax[demo]'`), the label being the photograph a crop came from (a weak proxy
task for kNN / linear probes; see ssl_jax/data/color_samples.py).

The small CNN sees the L channel; a fully convolutional head on its 8x8 feature map predicts, at 16x16,
a distribution over the 261 in-gamut ab bins of a grid of 10; soft-encoded targets, class rebalancing
with lambda = 0.5 and sigma = 5 from the training crops' ab histogram (Zhang et al.'s recipe; the
paper counts 313 bins from the gamut's hull, we keep the 261 cells an sRGB colour falls in). Adam(W),
lr 1e-3; 20 epochs. The method works on any RGB tfds or image-folder dataset the same way
(configs/colorization_imagenet.py).

  ssl-jax pretrain --config configs/colorization_skimage.py --workdir runs/color_skimage

Result: the CPU run of this config, with its command and machine, is in benchmarks/results/pretext.md.
Variant `:smoke`: a grid of 20 (76 bins), 40 crops per photograph, three tiny steps, for tests.
"""

from __future__ import annotations

import ml_collections

from ssl_jax import default_config


def get_config(variant: str = "") -> ml_collections.ConfigDict:
    config = default_config.get_config()
    config.method = "colorization"
    config.data.name = "skimage_samples"
    config.data.image_size = 32
    config.data.channels = 3
    config.data.num_classes = 8
    config.data.short_side = 160  # each photograph is resized to this shorter side before cropping
    config.data.per_image = 1000  # train crops per photograph
    config.data.test_per_image = 250
    config.data.sample_seed = 0
    config.data.mean = (0.5, 0.5, 0.5)  # unused: colorization normalizes L itself
    config.data.std = (0.25, 0.25, 0.25)

    config.model.encoder = "small_cnn"
    config.model.encoder_kwargs = {"widths": (32, 64, 128), "strides": (2, 2, 1)}
    config.model.dtype = "float32"
    config.colorization = ml_collections.ConfigDict(
        {
            "grid_size": 10.0,
            "output_size": 16,
            "head_width": 64,
            "soft_neighbours": 5,
            "soft_sigma": 5.0,
            "rebalance": True,
            "rebalance_mix": 0.5,
            "rebalance_sigma": 5.0,
            "prior_examples": 8000,
            "flip": True,
            "temperature": 0.38,
        }
    )

    config.batch_size = 64
    config.num_epochs = 20.0
    config.optim.name = "adamw"
    config.optim.learning_rate = 1e-3
    config.optim.lr_scaling = "none"
    config.optim.weight_decay = 1e-4
    config.optim.warmup_epochs = 1.0
    config.log_every_steps = 50
    config.eval_every_steps = 0
    config.checkpoint_every_steps = 1000

    if variant == "smoke":
        config.data.per_image = 40
        config.data.test_per_image = 10
        config.model.encoder_kwargs = {"widths": (8, 16), "strides": (2, 2)}
        config.colorization.grid_size = 20.0
        config.colorization.output_size = 8
        config.colorization.head_width = 8
        config.colorization.prior_examples = 64
        config.batch_size = 16
        config.num_steps = 3
        config.log_every_steps = 1
        config.checkpoint_every_steps = 2
        config.eval.protocols = ("knn",)
        config.eval.knn_k = 5
    elif variant:
        raise ValueError(f"Unknown variant {variant!r}; valid: smoke.")
    return config
