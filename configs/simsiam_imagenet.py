"""SimSiam on ImageNet: the paper's recipe (Chen & He 2021, Sec. 3 "Baseline settings"), ResNet-50 at 224px.

Batch 512, SGD with momentum 0.9, lr = 0.05 x batch / 256 (0.1), weight decay 1e-4, cosine decay and no
warm-up, 100 epochs; projector 2048-2048-2048 (3 layers, BN on every layer, the output's without affine),
predictor 2048-512-2048 (BN + ReLU on the hidden layer only); MoCo v2's augmentation on both views: crops
with scale (0.2, 1), flip, colour jitter 0.4/0.4/0.4/0.1 with p 0.8, grayscale p 0.2, Gaussian blur p 0.5
(sigma 0.1-2). The paper reports 67.7% linear-evaluation top-1 for this run with the predictor's lr
decayed like every other (Table 1), which is what ssl_jax's single schedule does; its headline 68.1% keeps
the predictor's lr constant, which this optimizer does not offer. The paper's SGD also decays biases and
BN parameters; ssl_jax's exempts them.

Data: tfds `imagenet2012` prepared under DATA_DIR (it needs the manual download; see the tfds catalog):

  ssl-jax pretrain --config configs/simsiam_imagenet.py --workdir runs/simsiam_in1k \
      --config.data.data_dir=DATA_DIR

Variant `:smoke`: the ImageNet pipeline (blur, small images) on a few tiny steps.
"""

from __future__ import annotations

import ml_collections

from ssl_jax import augment, default_config


def get_config(variant: str = "") -> ml_collections.ConfigDict:
    config = default_config.get_config()
    config.method = "simsiam"
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
    config.model.projector = ml_collections.ConfigDict(
        {"hidden_dim": 2048, "output_dim": 2048, "num_layers": 3, "use_bn": True, "last_bn": True}
    )
    config.model.predictor = ml_collections.ConfigDict(
        {"hidden_dim": 512, "output_dim": 2048, "num_layers": 2, "use_bn": True, "last_bn": False}
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
    }

    config.batch_size = 512
    config.num_epochs = 100.0
    config.optim.name = "sgd"
    config.optim.learning_rate = 0.05
    config.optim.lr_scaling = "linear"
    config.optim.weight_decay = 1e-4
    config.optim.momentum = 0.9
    config.optim.warmup_epochs = 0.0
    config.log_every_steps = 100
    config.eval_every_steps = 0
    config.checkpoint_every_steps = 1000
    config.eval.batch_size = 1024

    if variant == "smoke":
        config.data.image_size = 48
        config.augment.image_size = 48
        config.model.encoder = "small_cnn"
        config.model.encoder_kwargs = {"widths": (8, 16), "strides": (2, 2)}
        config.model.projector.hidden_dim = 32
        config.model.projector.output_dim = 16
        config.model.predictor.hidden_dim = 8
        config.model.predictor.output_dim = 16
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
