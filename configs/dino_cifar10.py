"""DINO on CIFAR-10: solo-learn's recipe (scripts/pretrain/cifar/dino.yaml, ResNet-18, LARS, 1000 epochs).

solo-learn (da Costa et al. 2022, JMLR) reports 89.52% top-1 (online linear classifier) on CIFAR-10 for this
recipe: ResNet-18 (CIFAR stem), DINO head 2048-256 with K = 4096 prototypes, no BN in the head, weight-
normalized last layer frozen for the first epoch; teacher momentum 0.9995 -> 1 (cosine), teacher temperature
0.07 (its warm-up from 0.04 lasts 0 epochs), student 0.1, centre momentum 0.9; two 32-px crops with scale
(0.08, 1) and no local crops; colour jitter 0.4/0.4/0.2/0.1 with p 0.8, grayscale p 0.2, no blur,
solarization p 0.2 on the second crop only; LARS lr 0.3 x batch / 256 (eta 0.02, biases and norms excluded;
solo-learn's LARS also clips its adaptive lr, which optax's does not), weight decay 1e-6, 10 warm-up epochs
then cosine, batch 256, no gradient clipping.

Data: tfds `cifar10` prepared under DATA_DIR (`pip install 'ssl_jax[tf]'; tfds build cifar10 --data_dir DATA_DIR`):

  ssl-jax pretrain --config configs/dino_cifar10.py --workdir runs/dino_cifar10 \
      --config.data.data_dir=DATA_DIR

Expected: about 89.5% linear top-1 after 1000 epochs (solo-learn's number; not yet reproduced here).
Variant `:smoke`: the same pipeline on a few tiny steps (tests point it at a small local RGB dataset).
"""

from __future__ import annotations

import ml_collections

from ssl_jax import augment, default_config


def get_config(variant: str = "") -> ml_collections.ConfigDict:
    config = default_config.get_config()
    config.method = "dino"
    config.data.name = "tfds"
    config.data.tfds_name = "cifar10"
    config.data.image_size = 32
    config.data.channels = 3
    config.data.num_classes = 10
    config.data.mean = augment.CIFAR10_MEAN
    config.data.std = augment.CIFAR10_STD
    del config.model["projector"]  # SimCLR's fields, unused here
    del config["simclr"]

    config.model.encoder = "resnet18"
    config.model.encoder_kwargs = {"stem": "cifar"}
    config.model.dtype = "bfloat16"
    config.model.head = ml_collections.ConfigDict(
        {
            "hidden_dim": 2048,
            "bottleneck_dim": 256,
            "output_dim": 4096,
            "num_layers": 3,
            "use_bn": False,
            "norm_last_layer": True,
        }
    )
    config.dino = ml_collections.ConfigDict(
        {
            "student_temp": 0.1,
            "teacher_temp": 0.07,
            "warmup_teacher_temp": 0.04,
            "warmup_teacher_temp_epochs": 0.0,
            "teacher_momentum": 0.9995,
            "center_momentum": 0.9,
            "freeze_last_layer_epochs": 1.0,
        }
    )
    config.augment = ml_collections.ConfigDict(
        {
            "num_global": 2,
            "num_local": 0,
            "global_size": 32,
            "local_size": 32,  # unused without local crops
            "global_scale": (0.08, 1.0),
            "global_blur_prob": (0.0, 0.0),
            "global_solarize_prob": (0.0, 0.2),
            "local_blur_prob": 0.0,
        }
    )

    config.batch_size = 256
    config.num_epochs = 1000.0
    config.optim = ml_collections.ConfigDict(
        {
            "name": "lars",
            "learning_rate": 0.3,
            "lr_scaling": "linear",
            "weight_decay": 1e-6,
            "trust_coefficient": 0.02,
            "momentum": 0.9,
            "warmup_epochs": 10.0,
            "end_lr": 0.0,
        }
    )
    config.log_every_steps = 50
    config.eval_every_steps = 195 * 50
    config.checkpoint_every_steps = 195 * 10

    if variant == "smoke":
        config.model.encoder = "small_cnn"
        config.model.encoder_kwargs = {"widths": (8, 16), "strides": (2, 2)}
        config.model.dtype = "float32"
        config.model.head.hidden_dim = 64
        config.model.head.bottleneck_dim = 32
        config.model.head.output_dim = 64
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
