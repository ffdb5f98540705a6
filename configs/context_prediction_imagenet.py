"""Context prediction (Doersch et al. 2015) on ImageNet with a ResNet-50 backbone.

From the paper: a 3x3 grid of square patches with a gap of half a patch and up to 7 pixels of jitter
per patch (edge-continuity guards), colour dropping per patch (two of the three channels replaced by
Gaussian noise of 1/100 of a channel's standard deviation; the chromatic-aberration guard;
`context_prediction.color = "project"` removes the green-magenta component instead), late fusion of
the two patches' features (fc6 per patch, fc7 on the pair, 8-way fc8; widths 4096), batch statistics
normalized. Ours: the geometry is scaled to images resized and centre-cropped to 256px (patches of 60
with a gap of 30 and a jitter of 4, where the paper cut 96px patches, gap 48, jitter 7, from images of
150k-450k pixels), a ResNet-50 trunk instead of the paper's AlexNet-style net, and SGD with momentum,
lr 0.1 x batch / 256, cosine over 100 epochs. The paper's random patch downsampling (another guard
against low-level shortcuts) is not implemented. Evaluation: kNN and a linear probe on the pooled
features of 256px images.

Data: tfds `imagenet2012` prepared under DATA_DIR (it needs the manual download; see the tfds catalog):

  ssl-jax pretrain --config configs/context_prediction_imagenet.py --workdir runs/ctx_in1k \
      --config.data.data_dir=DATA_DIR

Expected result: no run of this recipe is recorded; the paper reports transfer (VOC detection), not
ImageNet linear accuracy. The CPU runs of the Fashion-MNIST config are in benchmarks/results/pretext.md.
Variant `:smoke`: the RGB pipeline (colour dropping) on 48px images with 10px patches, three tiny steps.
"""

from __future__ import annotations

import ml_collections

from ssl_jax import config_util

datasets = config_util.import_sibling(__file__, "_datasets")
families = config_util.import_sibling(__file__, "_families")


def get_config(variant: str = "") -> ml_collections.ConfigDict:
    config = datasets.imagenet(
        "context_prediction",
        batch_size=256,
        num_epochs=100.0,
        image_size=256,
        checkpoint_every_steps=2000,
    )
    families.set_encoder(config, families.RESNET50)
    config.context_prediction = ml_collections.ConfigDict(
        {
            "image_size": 0,
            "patch_size": 60,
            "gap": 30,
            "jitter": 4,
            "color": "drop",
            "noise_std": 0.01,
            "hidden_dim": 4096,
        }
    )
    config.optim.update(families.sgd(0.1, 1e-4, warmup_epochs=1.0))
    smoke = {
        "context_prediction.patch_size": 10,
        "context_prediction.gap": 5,
        "context_prediction.jitter": 2,
        "context_prediction.hidden_dim": 16,
    }
    return datasets.select(config, variant, smoke=datasets.smoke(smoke, image_size=48))
