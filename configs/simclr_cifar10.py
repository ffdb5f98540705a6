"""SimCLR on CIFAR-10: solo-learn's recipe (ResNet-18 with the CIFAR stem, LARS, 1000 epochs).

solo-learn (da Costa et al. 2022, JMLR) reports 90.74% top-1 (online linear classifier) for this recipe:
ResNet-18, projector 2048-256, temperature 0.2, LARS (eta 0.02, biases and norms excluded), lr 0.4 for batch
256 (scaled linearly), weight decay 1e-5, 10 warm-up epochs then cosine; crops of 32 with scale (0.08, 1),
colour jitter 0.8/0.8/0.8/0.2 with p 0.8, grayscale p 0.2, no blur, no solarization.

Data: tfds `cifar10` prepared under DATA_DIR (`pip install 'ssl_jax[tf]'; tfds build cifar10 --data_dir DATA_DIR`):

  ssl-jax pretrain --config configs/simclr_cifar10.py --workdir runs/simclr_cifar10 \
      --config.data.data_dir=DATA_DIR

Expected: about 90% kNN/linear top-1 after 1000 epochs; a 1-GPU run takes hours (see benchmarks/).
Variant `:smoke`: the same pipeline on a few tiny steps (tests point it at a small local RGB dataset).
"""

from __future__ import annotations

import ml_collections

from ssl_jax import augment, default_config


def get_config(variant: str = "") -> ml_collections.ConfigDict:
    config = default_config.get_config()
    config.data.name = "tfds"
    config.data.tfds_name = "cifar10"
    config.data.image_size = 32
    config.data.channels = 3
    config.data.num_classes = 10
    config.data.mean = augment.CIFAR10_MEAN
    config.data.std = augment.CIFAR10_STD

    config.model.encoder = "resnet18"
    config.model.encoder_kwargs = {"stem": "cifar"}
    config.model.dtype = "bfloat16"
    config.model.projector.hidden_dim = 2048
    config.model.projector.output_dim = 256
    config.simclr.temperature = 0.2
    config.augment = {
        "preset": "simclr",
        "image_size": 32,
        "channels": 3,
        "blur_prob": 0.0,
        "solarize_prob": 0.0,
        "brightness": 0.8,
        "contrast": 0.8,
        "saturation": 0.8,
        "hue": 0.2,
    }

    config.batch_size = 256
    config.num_epochs = 1000.0
    config.optim.name = "lars"
    config.optim.learning_rate = 0.4
    config.optim.lr_scaling = "linear"
    config.optim.weight_decay = 1e-5
    config.optim.trust_coefficient = 0.02
    config.optim.warmup_epochs = 10.0
    config.log_every_steps = 50
    config.eval_every_steps = 195 * 50
    config.checkpoint_every_steps = 195 * 10

    if variant == "smoke":
        config.model.encoder = "small_cnn"
        config.model.encoder_kwargs = {"widths": (8, 16), "strides": (2, 2)}
        config.model.projector.hidden_dim = 32
        config.model.projector.output_dim = 16
        config.batch_size = 16
        config.num_steps = 3
        config.log_every_steps = 1
        config.eval_every_steps = 0
        config.checkpoint_every_steps = 2
        config.eval.linear_epochs = 2
        config.eval.max_train_examples = 2000
    elif variant:
        raise ValueError(f"Unknown variant {variant!r}; valid: smoke.")
    return config
