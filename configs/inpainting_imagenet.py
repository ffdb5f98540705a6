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

from ssl_jax import config_util

datasets = config_util.import_sibling(__file__, "_datasets")
families = config_util.import_sibling(__file__, "_families")


def get_config(variant: str = "") -> ml_collections.ConfigDict:
    config = datasets.imagenet(
        "inpainting",
        batch_size=256,
        num_epochs=100.0,
        image_size=128,
        checkpoint_every_steps=2000,
    )
    families.set_encoder(config, ("resnet18", {"stem": "imagenet"}))
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
    config.optim.update(name="adamw", learning_rate=2e-4, lr_scaling="none", b1=0.5)
    config.optim.update(weight_decay=0.0, warmup_epochs=1.0)
    smoke = {"inpainting.decoder_widths": (8,), "inpainting.block_size": 8}
    return datasets.select(config, variant, smoke=datasets.smoke(smoke, image_size=32))
