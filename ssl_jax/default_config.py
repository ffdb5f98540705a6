"""The default run of `ssl-jax pretrain`: SimCLR with the small CNN on the Fashion-MNIST subset shipped
inside the package, sized to finish on 2 CPU cores in a few minutes with no network and no download.

Also the base that the configs/ files start from: every field a run reads exists here.
`shared_config()` holds the fields every run has whatever its method and data (seed, run length,
logging, checkpoints, evaluation, the online probe); `get_config()` adds the image method's parts (data,
model, SimCLR, augmentation, optimizer). Text configs start from `shared_config()`
(ssl_jax.methods.text_common.base_config) and add their own, so nothing image-only needs deleting.
"""

from __future__ import annotations

import ml_collections

from ssl_jax.augment import FASHION_MNIST_MEAN, FASHION_MNIST_STD


def shared_config() -> ml_collections.ConfigDict:
    """The fields of every run, whatever its method and data."""
    config = ml_collections.ConfigDict()
    config.seed = 0
    config.batch_size = 256
    config.num_epochs = 10.0
    config.num_steps = 0  # > 0 overrides num_epochs

    # A NaN/Inf loss or gradient: "stop" (name the step; the last checkpoint is the last good state)
    # or "skip" (drop that step's update and go on).
    config.nonfinite_policy = "stop"
    config.log_every_steps = 20
    config.eval_every_steps = 70  # kNN accuracy during training (0: only at the end)
    config.checkpoint_every_steps = 70
    config.keep_checkpoints = 2

    config.eval = ml_collections.ConfigDict()
    config.eval.protocols = ("knn", "linear")
    config.eval.batch_size = 512
    config.eval.max_train_examples = 0  # > 0: fit kNN / probe on a fixed random N
    config.eval.knn_k = 20
    config.eval.knn_temperature = 0.07
    config.eval.linear_epochs = 30
    config.eval.linear_batch_size = 256
    config.eval.linear_learning_rate = 1e-2
    config.eval.linear_l2_grid = (
        0.0,
        1e-4,
        1e-3,
        1e-2,
        1e-1,
        1.0,
    )  # chosen on a held-out train part
    config.eval.knn_chunk_size = 1024  # query rows scored at once ...
    config.eval.knn_bank_chunk_size = 65536  # ... against this many training rows: memory ~ product
    # Fine-tuning protocols ("finetune", "finetune_10pct", "finetune_1pct", "finetune_scratch";
    # ssl_jax.transfer.finetune, for image and text methods alike): the encoder and a new linear head
    # trained on all / 10% / 1% of the training labels (class-balanced subsets fixed by seed), or on all
    # of them from a random initialization, scored on the test split.
    config.eval.finetune_epochs = 10.0
    config.eval.finetune_steps = 0  # > 0 overrides finetune_epochs
    config.eval.finetune_batch_size = 256
    config.eval.finetune_optimizer = "adamw"  # or "sgd" (momentum finetune_momentum)
    config.eval.finetune_learning_rate = 1e-3
    config.eval.finetune_weight_decay = 0.05
    config.eval.finetune_momentum = 0.9
    config.eval.finetune_warmup_epochs = 1.0
    config.eval.finetune_warmup_steps = 0  # > 0 overrides finetune_warmup_epochs
    config.eval.finetune_layer_decay = 1.0  # < 1: layer-wise learning-rate decay (BEiT)
    config.eval.finetune_label_smoothing = 0.0
    config.eval.finetune_augment = True  # random resized crop (scale below) + flip, no colour
    config.eval.finetune_crop_scale = (0.5, 1.0)
    config.eval.finetune_seeds = (0,)  # one label subset and run per seed; top1 is their mean
    config.eval.finetune_random_init = False  # True: fine-tune from scratch (the baseline)
    # "validation" (or another split's name): also scored, reported as validation_top1
    config.eval.finetune_validation_split = ""

    # A linear classifier trained during pre-training on stop_gradient(backbone features) with the
    # labels, logged as online_probe_loss / online_probe_acc (ssl_jax.methods.online_probe).
    config.online_probe = ml_collections.ConfigDict({"enabled": False})
    return config


def get_config() -> ml_collections.ConfigDict:
    config = shared_config()
    config.method = "simclr"

    config.data = ml_collections.ConfigDict()
    config.data.name = "embedded_fashion_mnist"
    config.data.data_dir = ""  # for name in {"fashion_mnist", "image_folder", "tfds"}
    config.data.path = ""  # for name == "npz"
    config.data.tfds_name = ""  # for name == "tfds"
    # Image folders and tfds: "yes" reads photographs (the host crops each training view from the
    # original photo; evaluation resizes the short side and centre-crops), "no" whole images resized
    # to image_size, "auto" photographs unless the tfds images have a fixed size (CIFAR, MNIST).
    config.data.host_crop = "auto"
    config.data.image_size = 28
    config.data.channels = 1
    config.data.num_classes = 10
    config.data.mean = FASHION_MNIST_MEAN
    config.data.std = FASHION_MNIST_STD

    config.model = ml_collections.ConfigDict()
    config.model.encoder = "small_cnn"
    config.model.encoder_kwargs = {"widths": (32, 64, 128), "strides": (2, 2, 2)}
    # Activation dtype. float32 here because this default runs on CPUs, where bf16 is emulated and
    # twice as slow; the accelerator configs use bfloat16. Parameters and loss math are always float32.
    config.model.dtype = "float32"
    config.model.sync_batch_norm = True
    config.model.projector = ml_collections.ConfigDict(
        {"hidden_dim": 256, "output_dim": 64, "num_layers": 2, "use_bn": True, "last_bn": False}
    )

    config.simclr = ml_collections.ConfigDict({"temperature": 0.2})

    # A ViewSpec preset plus field overrides (ssl_jax.augment.ViewSpec.from_config).
    config.augment = ml_collections.ConfigDict(
        {"preset": "simclr", "image_size": 28, "channels": 1}
    )

    # SGD with momentum, lr 0.12 x batch / 256, weight decay 5e-4, cosine decay from the first step: at
    # batch 256 on this small CNN it learns more than SimCLR's large-batch LARS recipe (lr 0.3 x B / 256,
    # weight decay 1e-6, warm-up): this default run 78.35% kNN / 82.65% linear against 77.65% / 79.20%,
    # and 3 epochs of the full Fashion-MNIST 84.4% / 85.8% against 81.7-83.0% kNN (benchmarks/results/
    # fashion_mnist_small_cnn.md). The ResNet / ViT configs set their papers' optimizers.
    config.optim = ml_collections.ConfigDict()
    config.optim.name = "sgd"
    config.optim.learning_rate = 0.12  # base; scaled by lr_scaling
    config.optim.lr_scaling = "linear"  # lr = base * batch / 256
    config.optim.weight_decay = 5e-4
    config.optim.momentum = 0.9
    config.optim.warmup_epochs = 0.0
    config.optim.end_lr = 0.0

    return config
