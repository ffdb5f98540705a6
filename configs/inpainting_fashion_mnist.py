"""Context-encoder inpainting (Pathak et al. 2016) with the small CNN on the full Fashion-MNIST (28x28x1).

The central 14x14 region (half of each side, a quarter of the area, as the paper's 64 of 128) is set to
the dataset mean; the backbone encodes the rest, a decoder (dense bottleneck, two x2 upsamplings by
resize-convolution) reconstructs the image, and the loss is the L2 error on the masked region only.
The paper's adversarial term is left out (reconstruction loss only).
`inpainting.mask = "random_blocks"` trains the random-block variant instead. Adam(W), lr 1e-3 (the paper:
2e-4 for its larger nets), no weight decay; 10 epochs.
Evaluation: kNN and a linear probe on the backbone's pooled features of whole, unmasked images.

Data: the four IDX files, e.g. from Debian's `dataset-fashion-mnist` (/usr/share/datasets/fashion-mnist).

  ssl-jax pretrain --config configs/inpainting_fashion_mnist.py --workdir runs/inpaint_fmnist \
      --config.data.data_dir=/usr/share/datasets/fashion-mnist

Expected result: see benchmarks/results/pretext.md (the CPU run of this config, with its command
and machine).
Variants: `:random_blocks` (3 random 8x8 blocks per image instead of the centre), `:smoke` (three tiny
steps, for tests).
"""

from __future__ import annotations

import ml_collections

from ssl_jax import config_util

datasets = config_util.import_sibling(__file__, "_datasets")
families = config_util.import_sibling(__file__, "_families")


def get_config(variant: str = "") -> ml_collections.ConfigDict:
    config = datasets.fashion_mnist(
        "inpainting", batch_size=256, num_epochs=10.0, eval_every_epochs=0
    )
    config.inpainting = ml_collections.ConfigDict(
        {
            "mask": "center",  # "center" | "random_blocks"
            "mask_fraction": 0.5,  # centre: side of the region / side of the image
            "num_blocks": 3,  # random_blocks
            "block_size": 8,
            # Resize-convolutions rather than the paper's transposed convs, and narrow: on a CPU the
            # decoder is most of the step (benchmarks/results/pretext.md).
            "decoder_widths": (32, 16),
            "upsample": "resize_conv",
            "flip": True,
            "adversarial_weight": 0.0,  # the paper's adversarial term: not implemented, must stay 0
        }
    )
    config.optim.update(name="adamw", learning_rate=1e-3, lr_scaling="none", weight_decay=0.0)
    config.optim.warmup_epochs = 0.5
    config.eval.max_train_examples = 10000
    return datasets.select(
        config,
        variant,
        random_blocks=datasets.changes({"inpainting.mask": "random_blocks"}),
        smoke=datasets.smoke({"inpainting.decoder_widths": (8,)}),
    )
