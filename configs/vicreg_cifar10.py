"""VICReg on CIFAR-10: solo-learn's recipe (scripts/pretrain/cifar/vicreg.yaml), ResNet-18 with the CIFAR
stem, LARS, 1000 epochs.

solo-learn (da Costa et al. 2022, JMLR) reports 92.07% top-1 on CIFAR-10 (its online linear classifier)
for this recipe: ResNet-18, expander 2048-2048-2048 (BN + ReLU after the first two layers), coefficients
25 / 25 / 1 (invariance / variance / covariance; solo-learn sums the two variance terms, as here), LARS
(eta 0.02, biases and norms excluded) with lr 0.3 for batch 256 (scaled linearly), weight decay 1e-4, 10
warm-up epochs then cosine; one augmentation for both views: crops of 32 with scale (0.2, 1), colour
jitter 0.4/0.4/0.2/0.1 with p 0.8, grayscale p 0.2, no blur, solarization p 0.1.
Not reproduced: solo-learn's LARS clips the adapted learning rate (`clip_lr`); optax's LARS does not.

Data: tfds `cifar10` prepared under DATA_DIR (`pip install 'ssl_jax[tf]'; tfds build cifar10 --data_dir DATA_DIR`):

  ssl-jax pretrain --config configs/vicreg_cifar10.py --workdir runs/vicreg_cifar10 \
      --config.data.data_dir=DATA_DIR

Expected: about 92% linear top-1 after 1000 epochs (solo-learn's number above; not yet reproduced here).
Variant `:smoke`: the same pipeline on a few tiny steps (tests point it at a small local RGB dataset).
"""

from __future__ import annotations

import ml_collections

from ssl_jax import augment, default_config


def get_config(variant: str = "") -> ml_collections.ConfigDict:
    config = default_config.get_config()
    config.method = "vicreg"
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
    # The paper's "expander".
    config.model.projector = ml_collections.ConfigDict(
        {"hidden_dim": 2048, "output_dim": 2048, "num_layers": 3, "use_bn": True, "last_bn": False}
    )
    config.vicreg = ml_collections.ConfigDict(
        {"sim_coeff": 25.0, "std_coeff": 25.0, "cov_coeff": 1.0}
    )
    # solo-learn's vicreg.yaml: one symmetric pipeline (the "byol" preset with both views overridden).
    config.augment = {
        "preset": "byol",
        "image_size": 32,
        "channels": 3,
        "crop_scale": (0.2, 1.0),
        "blur_prob": 0.0,
        "solarize_prob": 0.1,
    }

    config.batch_size = 256
    config.num_epochs = 1000.0
    config.optim.name = "lars"
    config.optim.learning_rate = 0.3
    config.optim.lr_scaling = "linear"
    config.optim.weight_decay = 1e-4
    config.optim.trust_coefficient = 0.02
    config.optim.warmup_epochs = 10.0
    config.log_every_steps = 50
    config.eval_every_steps = 195 * 50
    config.checkpoint_every_steps = 195 * 10

    if variant == "smoke":
        config.model.encoder = "small_cnn"
        config.model.encoder_kwargs = {"widths": (8, 16), "strides": (2, 2)}
        config.model.dtype = "float32"
        config.model.projector.hidden_dim = 32
        config.model.projector.output_dim = 32
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
