"""Context-encoder inpainting (Pathak et al. 2016) on ImageNet at 128px.

From the paper: 128x128 images with the central 64x64 region dropped out and filled with the mean
(`inpainting.mask = "random_blocks"` for the random-block variant), an encoder-decoder trained with
the L2 reconstruction loss on the dropped region, Adam with lr 2e-4 and beta1 = 0.5. Left out: the
adversarial term (reconstruction loss only, `adversarial_weight` must stay 0), the paper's weighting
of a thin overlap border, and its random-region masks cut from PASCAL segmentations. Ours: a ResNet-18
encoder whose pooled features are the bottleneck (the paper's channel-wise fully connected layer), a
decoder of five stride-2 up-convolutions from 4x4 to 128x128, batch 256 and 100 epochs with cosine decay.
Evaluation: kNN and a linear probe on the pooled features of unmasked 128px images.

Data: tfds `imagenet2012` prepared under DATA_DIR (it needs the manual download; see the tfds catalog):

  ssl-jax pretrain --config configs/inpainting_imagenet.py --workdir runs/inpaint_in1k \
      --config.data.data_dir=DATA_DIR

Expected result: no run of this recipe is recorded (the paper reports transfer to VOC, not ImageNet
linear accuracy). The CPU runs of the Fashion-MNIST config are in benchmarks/results/pretext.md.
Variant `:smoke`: 32px colour images, tiny networks, three steps.
"""

from __future__ import annotations

import ml_collections

from ssl_jax import augment, default_config


def get_config(variant: str = "") -> ml_collections.ConfigDict:
    config = default_config.get_config()
    config.method = "inpainting"
    config.data.name = "tfds"
    config.data.tfds_name = "imagenet2012"
    config.data.image_size = 128
    config.data.channels = 3
    config.data.num_classes = 1000
    config.data.mean = augment.IMAGENET_MEAN
    config.data.std = augment.IMAGENET_STD

    config.model.encoder = "resnet18"
    config.model.encoder_kwargs = {"stem": "imagenet"}
    config.model.dtype = "bfloat16"
    config.inpainting = ml_collections.ConfigDict(
        {
            "mask": "center",
            "mask_fraction": 0.5,
            "num_blocks": 5,
            "block_size": 32,
            "decoder_widths": (512, 256, 128, 64, 32),
            "upsample": "transposed",  # the paper's stride-2 up-convolutions
            "flip": True,
            "adversarial_weight": 0.0,
        }
    )

    config.batch_size = 256
    config.num_epochs = 100.0
    config.optim.name = "adamw"
    config.optim.learning_rate = 2e-4
    config.optim.lr_scaling = "none"
    config.optim.b1 = 0.5
    config.optim.weight_decay = 0.0
    config.optim.warmup_epochs = 1.0
    config.log_every_steps = 100
    config.eval_every_steps = 0
    config.checkpoint_every_steps = 2000
    config.eval.batch_size = 1024

    if variant == "smoke":
        config.data.image_size = 32
        config.model.encoder = "small_cnn"
        config.model.encoder_kwargs = {"widths": (8, 16), "strides": (2, 2)}
        config.model.dtype = "float32"
        config.inpainting.decoder_widths = (8,)
        config.inpainting.block_size = 8
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
