"""SimSiam on CIFAR-10: solo-learn's recipe (ResNet-18 with the CIFAR stem, SGD, 1000 epochs).

solo-learn (da Costa et al. 2022, JMLR; scripts/pretrain/cifar/simsiam.yaml + augmentations/
symmetric_weak.yaml) reports 90.51% top-1 (online linear classifier) on CIFAR-10 for this recipe:
ResNet-18, projector 2048-2048-2048 (3 layers, BN without affine on the output), predictor 2048-512-2048,
SGD with momentum 0.9, lr 0.5 for batch 256 (scaled linearly), weight decay 1e-5, 10 warm-up epochs then
cosine, synchronized BN, 16-bit precision; both views: crops with scale (0.08, 1), flip, colour jitter
0.4/0.4/0.4/0.1 with p 0.8, grayscale p 0.2, Gaussian blur p 0.5 (sigma 0.1-2), no solarization.
Not reproduced here: solo-learn keeps the predictor's lr constant (the SimSiam paper's Table 1 trick;
ssl_jax's optimizer has one schedule for all parameters) and decays every parameter with torch's SGD,
where ssl_jax exempts biases and norms; its PIL blur is not truncated, ours has 9 taps (+-2 sigma max).

Data: tfds `cifar10` prepared under DATA_DIR (`pip install 'ssl_jax[tf]'; tfds build cifar10 --data_dir DATA_DIR`):

  ssl-jax pretrain --config configs/simsiam_cifar10.py --workdir runs/simsiam_cifar10 \
      --config.data.data_dir=DATA_DIR

Expected: about 90% linear top-1 (kNN a few points lower) after 1000 epochs; a 1-GPU run takes hours.
Variant `:smoke`: the same pipeline on a few tiny steps (tests point it at a small local RGB dataset).
"""

from __future__ import annotations

import ml_collections

from ssl_jax import augment, default_config


def get_config(variant: str = "") -> ml_collections.ConfigDict:
    config = default_config.get_config()
    config.method = "simsiam"
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
    config.model.projector = ml_collections.ConfigDict(
        {"hidden_dim": 2048, "output_dim": 2048, "num_layers": 3, "use_bn": True, "last_bn": True}
    )
    config.model.predictor = ml_collections.ConfigDict(
        {"hidden_dim": 512, "output_dim": 2048, "num_layers": 2, "use_bn": True, "last_bn": False}
    )
    config.augment = {
        "preset": "simclr",
        "image_size": 32,
        "channels": 3,
        "brightness": 0.4,
        "contrast": 0.4,
        "saturation": 0.4,
        "hue": 0.1,
        "blur_prob": 0.5,
        "blur_kernel_size": 9,
    }

    config.batch_size = 256
    config.num_epochs = 1000.0
    config.optim.name = "sgd"
    config.optim.learning_rate = 0.5
    config.optim.lr_scaling = "linear"
    config.optim.weight_decay = 1e-5
    config.optim.momentum = 0.9
    config.optim.warmup_epochs = 10.0
    config.log_every_steps = 50
    config.eval_every_steps = 195 * 50
    config.checkpoint_every_steps = 195 * 10

    if variant == "smoke":
        config.model.encoder = "small_cnn"
        config.model.encoder_kwargs = {"widths": (8, 16), "strides": (2, 2)}
        config.model.projector.hidden_dim = 32
        config.model.projector.output_dim = 16
        config.model.predictor.hidden_dim = 8
        config.model.predictor.output_dim = 16
        config.batch_size = 16
        config.num_steps = 3
        config.log_every_steps = 1
        config.eval_every_steps = 0
        config.checkpoint_every_steps = 2
        config.eval.protocols = ("knn",)
        config.eval.max_train_examples = 2000
    elif variant:
        raise ValueError(f"Unknown variant {variant!r}; valid: smoke.")
    return config
