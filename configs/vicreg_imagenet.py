"""VICReg on ImageNet: the paper's recipe (Bardes et al. 2022), ResNet-50 at 224x224.

Batch 2048, 1000 epochs; expander 8192-8192-8192 (BN + ReLU after the first two layers); coefficients
lambda = mu = 25, nu = 1 (invariance / variance / covariance); LARS (trust coefficient 0.001, biases and
BN parameters excluded from adaptation and weight decay) with lr 0.2 x batch / 256 (1.6), weight decay
1e-6, 10 warm-up epochs then cosine down to 1/1000 of the peak; ResNet-50 with zero-initialized residual
BN; BYOL's asymmetric augmentation pair (blur p 1.0 / 0.1, solarization p 0 / 0.2). The paper reports
73.2% top-1 (91.1% top-5) linear evaluation on ImageNet for this ResNet-50 (Table 1).

The loss follows the paper's Algorithm 1 (variance terms of the two branches summed); the authors'
repository averages them instead, i.e. mu = 12.5 here (`--config.vicreg.std_coeff=12.5`).

Data: tfds `imagenet2012` prepared under DATA_DIR (it needs the manual download; see the tfds catalog):

  ssl-jax pretrain --config configs/vicreg_imagenet.py --workdir runs/vicreg_in1k \
      --config.data.data_dir=DATA_DIR

Expected: about 73% linear top-1 after 1000 epochs (the paper's number above; not yet reproduced here).
Variant `:smoke`: the ImageNet pipeline (blur, both views) with a small CNN on a few tiny steps at 48px.
"""

from __future__ import annotations

import ml_collections

from ssl_jax import augment, default_config


def get_config(variant: str = "") -> ml_collections.ConfigDict:
    config = default_config.get_config()
    config.method = "vicreg"
    config.data.name = "tfds"
    config.data.tfds_name = "imagenet2012"
    config.data.image_size = 224
    config.data.channels = 3
    config.data.num_classes = 1000
    config.data.mean = augment.IMAGENET_MEAN
    config.data.std = augment.IMAGENET_STD

    config.model.encoder = "resnet50"
    config.model.encoder_kwargs = {"stem": "imagenet", "zero_init_residual": True}
    config.model.dtype = "bfloat16"
    # The paper's "expander".
    config.model.projector = ml_collections.ConfigDict(
        {"hidden_dim": 8192, "output_dim": 8192, "num_layers": 3, "use_bn": True, "last_bn": False}
    )
    config.vicreg = ml_collections.ConfigDict(
        {"sim_coeff": 25.0, "std_coeff": 25.0, "cov_coeff": 1.0}
    )
    config.augment = {"preset": "byol", "image_size": 224, "channels": 3}

    config.batch_size = 2048
    config.num_epochs = 1000.0
    config.optim.name = "lars"
    config.optim.learning_rate = 0.2
    config.optim.lr_scaling = "linear"
    config.optim.weight_decay = 1e-6
    config.optim.trust_coefficient = 0.001
    config.optim.warmup_epochs = 10.0
    config.optim.end_lr = (
        0.2 * 2048 / 256 / 1000
    )  # 1/1000 of the peak (absolute: rescale with the batch)
    config.log_every_steps = 100
    config.eval_every_steps = 0
    config.checkpoint_every_steps = 1000
    config.eval.batch_size = 1024

    if variant == "smoke":
        config.data.image_size = 48
        config.augment.image_size = 48
        config.model.encoder = "small_cnn"
        config.model.encoder_kwargs = {"widths": (8, 16), "strides": (2, 2)}
        config.model.dtype = "float32"
        config.model.projector.hidden_dim = 32
        config.model.projector.output_dim = 32
        config.batch_size = 16
        config.num_steps = 3
        config.log_every_steps = 1
        config.checkpoint_every_steps = 2
        config.eval.batch_size = 16
        config.eval.protocols = ("knn",)
        config.eval.max_train_examples = 2000
    elif variant:
        raise ValueError(f"Unknown variant {variant!r}; valid: smoke.")
    return config
