"""MoCo v2, ResNet-18 (CIFAR stem), on the full Fashion-MNIST (60,000 train / 10,000 test, 28x28x1).

MoCo v2 (Chen, Fan, Girshick & He 2020) sized for 28x28 images as MoCo's own CIFAR-10 demo: a queue of
4096 keys, momentum 0.99, temperature 0.2, MLP head 2048-128 (no BN), SGD (lr 0.03 x batch / 256 = 0.06,
momentum 0.9, weight decay 5e-4, biases and norms excluded), no warm-up, cosine decay, 100 epochs.
Augmentation: MoCo v2's "aug+" (crops with scale (0.2, 1), colour jitter 0.4/0.4/0.4/0.1 with p 0.8,
grayscale p 0.2, flips) without blur on 28x28 images. BatchNorm as the paper: shuffle-BN in the key
encoder, per-device BN in the query encoder (see ssl_jax/methods/moco.py; with one device both are
plain per-batch BN).

Data: the four IDX files, e.g. from Debian's `dataset-fashion-mnist` (/usr/share/datasets/fashion-mnist).

  ssl-jax pretrain --config configs/moco_v2_fashion_mnist.py --workdir runs/moco_v2_fmnist \
      --config.data.data_dir=/usr/share/datasets/fashion-mnist

Expected result: not recorded yet (no accelerator run of this config so far); a healthy run shows the
loss falling from about log(4097) ~ 8.3, `positive_cosine` rising towards 1 and `embedding_std` staying
near 1/sqrt(128) ~ 0.09. Results will go to benchmarks/results/ with the command and the machine.
Variants: `:smoke` (3 steps of a tiny encoder, for tests: expect a finite loss near 4.2 = log(65) and a
kNN top-1 printed, well above chance 0.1), `:small_cnn` (the CPU-sized encoder).
"""

from __future__ import annotations

import ml_collections

from ssl_jax import default_config


def get_config(variant: str = "") -> ml_collections.ConfigDict:
    config = default_config.get_config()
    config.method = "moco_v2"
    del config["simclr"]
    config.data.name = "fashion_mnist"
    config.data.data_dir = "/usr/share/datasets/fashion-mnist"

    config.model.encoder = "resnet18"
    config.model.encoder_kwargs = {"stem": "cifar"}
    config.model.dtype = "bfloat16"
    # Query-encoder BN per device, as MoCo; the key encoder's BN is set by moco.key_bn.
    config.model.sync_batch_norm = False
    config.model.projector = ml_collections.ConfigDict(
        {"hidden_dim": 2048, "output_dim": 128, "num_layers": 2, "use_bn": False}
    )
    config.moco = ml_collections.ConfigDict(
        {
            "temperature": 0.2,
            "momentum": 0.99,
            "final_momentum": None,  # constant momentum
            "queue_size": 4096,
            "key_bn": "shuffle",
            "symmetric": False,
        }
    )
    config.augment = {
        "preset": "simclr",
        "image_size": 28,
        "channels": 1,
        "crop_scale": (0.2, 1.0),
        "brightness": 0.4,
        "contrast": 0.4,
        "saturation": 0.4,
        "hue": 0.1,
        "blur_prob": 0.0,
    }

    config.batch_size = 512
    config.num_epochs = 100.0
    config.optim = ml_collections.ConfigDict(
        {
            "name": "sgd",
            "learning_rate": 0.03,
            "lr_scaling": "linear",
            "weight_decay": 5e-4,
            "momentum": 0.9,
            "warmup_epochs": 0.0,
            "end_lr": 0.0,
        }
    )
    config.log_every_steps = 50
    config.eval_every_steps = 1170  # every 10 epochs
    config.checkpoint_every_steps = 1170

    if variant == "small_cnn":
        config.model.encoder = "small_cnn"
        config.model.encoder_kwargs = {"widths": (32, 64, 128), "strides": (2, 2, 2)}
        config.model.dtype = "float32"
        config.model.projector.hidden_dim = 256
        config.model.projector.output_dim = 64
    elif variant == "smoke":
        config.model.encoder = "small_cnn"
        config.model.encoder_kwargs = {"widths": (8, 16), "strides": (2, 2)}
        config.model.dtype = "float32"
        config.model.projector.hidden_dim = 32
        config.model.projector.output_dim = 16
        config.moco.queue_size = 64
        config.batch_size = 16
        config.num_steps = 3
        config.log_every_steps = 1
        config.eval_every_steps = 0
        config.checkpoint_every_steps = 2
        config.eval.protocols = ("knn",)
        config.eval.max_train_examples = 2000
        config.eval.linear_epochs = 2
    elif variant:
        raise ValueError(f"Unknown variant {variant!r}; valid: small_cnn, smoke.")
    return config
