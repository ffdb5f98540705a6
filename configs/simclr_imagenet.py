"""SimCLR on ImageNet: the paper's recipe (Chen et al. 2020, Appendix B.9), ResNet-50 at 224x224.

Batch 4096, LARS with lr = 0.3 x batch / 256 (4.8), weight decay 1e-6 (biases and BN excluded), 10 warm-up
epochs then cosine, temperature 0.1, projector 2048-128, colour jitter strength 1.0 (0.8/0.8/0.8/0.2, p 0.8),
grayscale p 0.2, Gaussian blur p 0.5 (kernel 10% of the side), crops with scale (0.08, 1), 1000 epochs.
The paper reports 69.3% linear-evaluation top-1 for this ResNet-50 (1x) run (Table 6).

Data: tfds `imagenet2012` prepared under DATA_DIR (it needs the manual download; see the tfds catalog):

  ssl-jax pretrain --config configs/simclr_imagenet.py --workdir runs/simclr_in1k \
      --config.data.data_dir=DATA_DIR

Expected result: 69.3% linear top-1 after 1000 epochs (the paper's number above; not yet
reproduced here).
Variant `:ep100`: the same recipe for 100 epochs (the paper's shorter ablation budget).
Variant `:smoke`: the ImageNet pipeline (blur, ImageNet stem) on a few tiny steps and small images.
"""

from __future__ import annotations

import ml_collections

from ssl_jax import config_util

datasets = config_util.import_sibling(__file__, "_datasets")
families = config_util.import_sibling(__file__, "_families")


def get_config(variant: str = "") -> ml_collections.ConfigDict:
    config = datasets.imagenet("simclr", batch_size=4096, num_epochs=1000.0)
    views = {**families.JITTER_08, "blur_prob": 0.5}
    optim = families.lars(0.3, 1e-6, trust_coefficient=None)
    encoder = families.RESNET50
    families.simclr(
        config, encoder=encoder, projector=(2048, 128), temperature=0.1, augment=views, optim=optim
    )
    # The ImageNet pipeline (blur, 3 channels, ImageNet statistics) on a small CNN: the ResNet stems
    # are unit-tested in tests/test_models.py, and a ResNet step is slow to compile and run on CPUs.
    smoke = datasets.smoke(
        dtype=None,
        image_size=48,
        protocols=None,
        linear_epochs=2,
        batch_size=8,
        num_steps=2,
        projector=(32, 16),
    )
    return datasets.select(config, variant, ep100=datasets.changes(num_epochs=100.0), smoke=smoke)
