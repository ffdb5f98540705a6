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

Expected result: see benchmarks/results/pretext.md (the CPU run of this config, with its command
and machine).
Variant `:smoke`: a grid of 20 (76 bins), 40 crops per photograph, three tiny steps, for tests.
"""

from __future__ import annotations

import ml_collections

from ssl_jax import config_util

datasets = config_util.import_sibling(__file__, "_datasets")
families = config_util.import_sibling(__file__, "_families")


def get_config(variant: str = "") -> ml_collections.ConfigDict:
    config = datasets.base("colorization", batch_size=64, num_epochs=20.0)
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
    config.model.encoder_kwargs = {"widths": (32, 64, 128), "strides": (2, 2, 1)}
    families.colorization(config, output_size=16, head_width=64, prior_examples=8000)
    config.optim.update(name="adamw", learning_rate=1e-3, lr_scaling="none", weight_decay=1e-4)
    config.optim.warmup_epochs = 1.0
    smoke = {"data.per_image": 40, "data.test_per_image": 10, **families.colorization_smoke()}
    smoke = datasets.smoke(smoke, max_train_examples=None)
    return datasets.select(config, variant, smoke=smoke)
