"""SimCLR on ImageNet: the paper's recipe (Chen et al. 2020, Appendix B.9), ResNet-50 at 224x224.

Batch 4096, LARS with lr = 0.3 x batch / 256 (4.8), weight decay 1e-6 (biases and BN excluded), 10 warm-up
epochs then cosine, temperature 0.1, projector 2048-128, colour jitter strength 1.0 (0.8/0.8/0.8/0.2, p 0.8),
grayscale p 0.2, Gaussian blur p 0.5 (kernel 10% of the side), crops with scale (0.08, 1), 1000 epochs.
The paper reports 69.3% linear-evaluation top-1 for this ResNet-50 (1x) run (Table 6).

Data: tfds `imagenet2012` prepared under DATA_DIR (it needs the manual download; see the tfds catalog):

  ssl-jax pretrain --config configs/simclr_imagenet.py --workdir runs/simclr_in1k \
      --config.data.data_dir=DATA_DIR

Variant `:ep100`: the same recipe for 100 epochs (the paper's shorter ablation budget).
Variant `:smoke`: the ImageNet pipeline (blur, ImageNet stem) on a few tiny steps and small images.
"""

from __future__ import annotations

import ml_collections

from ssl_jax import augment, default_config


def get_config(variant: str = "") -> ml_collections.ConfigDict:
    config = default_config.get_config()
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
    config.model.projector.hidden_dim = 2048
    config.model.projector.output_dim = 128
    config.simclr.temperature = 0.1
    config.augment = {
        "preset": "simclr",
        "image_size": 224,
        "channels": 3,
        "brightness": 0.8,
        "contrast": 0.8,
        "saturation": 0.8,
        "hue": 0.2,
        "blur_prob": 0.5,
    }

    config.batch_size = 4096
    config.num_epochs = 1000.0
    config.optim.name = "lars"
    config.optim.learning_rate = 0.3
    config.optim.lr_scaling = "linear"
    config.optim.weight_decay = 1e-6
    config.optim.warmup_epochs = 10.0
    config.log_every_steps = 100
    config.eval_every_steps = 0
    config.checkpoint_every_steps = 1000
    config.eval.batch_size = 1024

    if variant == "ep100":
        config.num_epochs = 100.0
    elif variant == "smoke":
        config.data.image_size = 48
        config.augment.image_size = 48
        # The ImageNet pipeline (blur, 3 channels, ImageNet statistics) on a small CNN: the ResNet stems
        # are unit-tested in tests/test_models.py, and a ResNet step is slow to compile and run on CPUs.
        config.model.encoder = "small_cnn"
        config.model.encoder_kwargs = {"widths": (8, 16), "strides": (2, 2)}
        config.model.projector.hidden_dim = 32
        config.model.projector.output_dim = 16
        config.batch_size = 8
        config.num_steps = 2
        config.log_every_steps = 1
        config.checkpoint_every_steps = 2
        config.eval.batch_size = 16
        config.eval.linear_epochs = 2
        config.eval.max_train_examples = 2000
    elif variant:
        raise ValueError(f"Unknown variant {variant!r}; valid: ep100, smoke.")
    return config
