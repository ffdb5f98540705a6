"""BYOL on ImageNet: the paper's recipe (Grill et al. 2020, Sec. 3.3 and Appendix B/C), ResNet-50 at 224px.

Batch 4096, LARS with lr = 0.2 x batch / 256 (3.2), weight decay 1.5e-6, biases and BN parameters
excluded from both decay and LARS adaptation, trust coefficient 1e-3, 10 warm-up epochs then cosine,
1000 epochs; tau from 0.996 to 1 (cosine over the run); projector and predictor 4096-256 (Linear-BN-ReLU-
Linear); BYOL's asymmetric augmentation pair (Table 6): crops with scale (0.08, 1), flip, colour jitter
0.4/0.4/0.2/0.1 with p 0.8, grayscale p 0.2, blur p 1.0 / 0.1 (kernel 23), solarization p 0 / 0.2.
The paper reports 74.3% linear-evaluation top-1 for this ResNet-50 (1x) run (Table 1a).

Data: tfds `imagenet2012` prepared under DATA_DIR (it needs the manual download; see the tfds catalog):

  ssl-jax pretrain --config configs/byol_imagenet.py --workdir runs/byol_in1k \
      --config.data.data_dir=DATA_DIR

Variant `:ep300`: the same recipe cut to 300 epochs (a shorter budget; expect a lower number).
Variant `:smoke`: the ImageNet pipeline (blur, solarize, small images) on a few tiny steps.
"""

from __future__ import annotations

import ml_collections

from ssl_jax import augment, default_config


def get_config(variant: str = "") -> ml_collections.ConfigDict:
    config = default_config.get_config()
    config.method = "byol"
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
        {"hidden_dim": 4096, "output_dim": 256, "num_layers": 2, "use_bn": True, "last_bn": False}
    )
    config.model.predictor = ml_collections.ConfigDict(
        {"hidden_dim": 4096, "output_dim": 256, "num_layers": 2, "use_bn": True, "last_bn": False}
    )
    config.byol = ml_collections.ConfigDict({"tau_base": 0.996})
    config.augment = {"preset": "byol", "image_size": 224, "channels": 3}

    config.batch_size = 4096
    config.num_epochs = 1000.0
    config.optim.name = "lars"
    config.optim.learning_rate = 0.2
    config.optim.lr_scaling = "linear"
    config.optim.weight_decay = 1.5e-6
    config.optim.trust_coefficient = 1e-3
    config.optim.warmup_epochs = 10.0
    config.log_every_steps = 100
    config.eval_every_steps = 0
    config.checkpoint_every_steps = 1000
    config.eval.batch_size = 1024

    if variant == "ep300":
        config.num_epochs = 300.0
    elif variant == "smoke":
        config.data.image_size = 48
        config.augment.image_size = 48
        config.model.encoder = "small_cnn"
        config.model.encoder_kwargs = {"widths": (8, 16), "strides": (2, 2)}
        config.model.projector.hidden_dim = 32
        config.model.projector.output_dim = 16
        config.model.predictor.hidden_dim = 32
        config.model.predictor.output_dim = 16
        config.batch_size = 16
        config.num_steps = 3
        config.log_every_steps = 1
        config.checkpoint_every_steps = 2
        config.eval.batch_size = 16
        config.eval.protocols = ("knn",)
        config.eval.max_train_examples = 2000
    elif variant:
        raise ValueError(f"Unknown variant {variant!r}; valid: ep300, smoke.")
    return config
