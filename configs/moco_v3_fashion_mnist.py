"""MoCo v3, ResNet-18 (CIFAR stem), on the full Fashion-MNIST (60,000 train / 10,000 test, 28x28x1).

MoCo v3 (Chen, Xie & He 2021) with solo-learn's small-image settings (scripts/pretrain/cifar/mocov3.yaml)
for 100 epochs: projector 3 layers 4096-4096-256 ending in BN (no affine), predictor 2 layers 4096-256,
all BN synchronized; temperature 0.2, loss 2t [InfoNCE(q1, k2) + InfoNCE(q2, k1)] over the global
batch; momentum rising from 0.99 to 1 on a cosine; LARS (lr 0.3 x batch / 256, weight decay 1e-6, trust
coefficient 0.02, biases and norms excluded), 10 warm-up epochs then cosine; BYOL's asymmetric
augmentation pair (crops with scale (0.08, 1)) without blur on 28x28 images.

Data: the four IDX files, e.g. from Debian's `dataset-fashion-mnist` (/usr/share/datasets/fashion-mnist).

  ssl-jax pretrain --config configs/moco_v3_fashion_mnist.py --workdir runs/moco_v3_fmnist \
      --config.data.data_dir=/usr/share/datasets/fashion-mnist

Expected result: not recorded yet (no accelerator run of this config so far); a healthy run shows the
loss falling from about 2 * 0.2 * 2 * log(512) ~ 5 and `embedding_std` staying near 1/sqrt(256) ~ 0.06.
Results will go to benchmarks/results/ with the command and the machine.
Variants: `:smoke` (3 steps of a tiny encoder, for tests: expect a finite loss and a kNN top-1
printed, well above chance 0.1), `:small_cnn` (the CPU-sized encoder), `:vit` (ViT-Tiny with 4x4
patches, AdamW as the paper trains ViTs: lr 1.5e-4 x batch / 256, weight decay 0.1).
"""

from __future__ import annotations

import ml_collections

from ssl_jax import default_config


def get_config(variant: str = "") -> ml_collections.ConfigDict:
    config = default_config.get_config()
    config.method = "moco_v3"
    del config["simclr"]
    config.data.name = "fashion_mnist"
    config.data.data_dir = "/usr/share/datasets/fashion-mnist"

    config.model.encoder = "resnet18"
    config.model.encoder_kwargs = {"stem": "cifar"}
    config.model.dtype = "bfloat16"
    config.model.sync_batch_norm = True
    config.model.projector = ml_collections.ConfigDict(
        {"hidden_dim": 4096, "output_dim": 256, "num_layers": 3, "use_bn": True, "last_bn": True}
    )
    config.model.predictor = ml_collections.ConfigDict(
        {"hidden_dim": 4096, "output_dim": 256, "num_layers": 2, "use_bn": True, "last_bn": False}
    )
    config.moco = ml_collections.ConfigDict(
        {"temperature": 0.2, "momentum": 0.99, "final_momentum": 1.0}
    )
    # MoCo v3 uses BYOL's pair (view 0 / view 1); no blur on 28x28 images, as solo-learn on CIFAR.
    config.augment = {"preset": "byol", "image_size": 28, "channels": 1, "blur_prob": 0.0}

    config.batch_size = 512
    config.num_epochs = 100.0
    config.optim.name = "lars"
    config.optim.learning_rate = 0.3
    config.optim.lr_scaling = "linear"
    config.optim.weight_decay = 1e-6
    config.optim.trust_coefficient = 0.02
    config.optim.warmup_epochs = 10.0
    config.log_every_steps = 50
    config.eval_every_steps = 1170  # every 10 epochs
    config.checkpoint_every_steps = 1170

    if variant == "small_cnn":
        config.model.encoder = "small_cnn"
        config.model.encoder_kwargs = {"widths": (32, 64, 128), "strides": (2, 2, 2)}
        config.model.dtype = "float32"
        for head in (config.model.projector, config.model.predictor):
            head.hidden_dim = 256
            head.output_dim = 64
    elif variant == "vit":
        config.model.encoder = "vit_tiny"
        config.model.encoder_kwargs = {"patch_size": 4, "position_embedding": "sincos"}
        config.optim = ml_collections.ConfigDict(
            {
                "name": "adamw",
                "learning_rate": 1.5e-4,
                "lr_scaling": "linear",
                "weight_decay": 0.1,
                "b1": 0.9,
                "b2": 0.999,
                "warmup_epochs": 10.0,
                "end_lr": 0.0,
            }
        )
    elif variant == "smoke":
        config.model.encoder = "small_cnn"
        config.model.encoder_kwargs = {"widths": (8, 16), "strides": (2, 2)}
        config.model.dtype = "float32"
        for head in (config.model.projector, config.model.predictor):
            head.hidden_dim = 32
            head.output_dim = 16
        config.batch_size = 16
        config.num_steps = 3
        config.log_every_steps = 1
        config.eval_every_steps = 0
        config.checkpoint_every_steps = 2
        config.eval.protocols = ("knn",)
        config.eval.max_train_examples = 2000
        config.eval.linear_epochs = 2
    elif variant:
        raise ValueError(f"Unknown variant {variant!r}; valid: small_cnn, smoke, vit.")
    return config
