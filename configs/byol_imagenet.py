"""BYOL on ImageNet: the paper's recipe (Grill et al. 2020, Sec. 3.3 and Appendix B/C), ResNet-50 at 224px.

Batch 4096, LARS with lr = 0.2 x batch / 256 (3.2), weight decay 1.5e-6, biases and BN parameters
excluded from both decay and LARS adaptation, trust coefficient 1e-3, 10 warm-up epochs then cosine,
1000 epochs; tau from 0.996 to 1 (cosine over the run); projector and predictor 4096-256 (Linear-BN-ReLU-
Linear); BYOL's asymmetric augmentation pair (Table 6): crops with scale (0.08, 1), flip, colour jitter
0.4/0.4/0.2/0.1 with p 0.8, grayscale p 0.2, blur p 1.0 / 0.1 (kernel 23), solarization p 0 / 0.2.
The paper reports 74.3% linear-evaluation top-1 for this ResNet-50 (1x) run (Table 1a).

Data: tfds `imagenet2012` prepared under DATA_DIR (it needs the manual download; see the tfds catalog):

  ssl-jax pretrain --config configs/byol_imagenet.py --workdir runs/byol_in1k \
      --config.data.data_dir=DATA_DIR

Expected result: 74.3% linear top-1 after 1000 epochs (the paper's number above; not yet
reproduced here).
Variant `:ep300`: the same recipe cut to 300 epochs (a shorter budget; expect a lower number).
Variant `:smoke`: the ImageNet pipeline (blur, solarize, small images) on a few tiny steps.
"""

from __future__ import annotations

import ml_collections

from ssl_jax import config_util

datasets = config_util.import_sibling(__file__, "_datasets")
families = config_util.import_sibling(__file__, "_families")


def get_config(variant: str = "") -> ml_collections.ConfigDict:
    config = datasets.imagenet("byol", batch_size=4096, num_epochs=1000.0)
    optim = families.lars(0.2, weight_decay=1.5e-6, trust_coefficient=1e-3)
    families.byol(config, encoder=families.RESNET50, tau_base=0.996, blur_prob=None, optim=optim)
    smoke = datasets.smoke(dtype=None, image_size=48, projector=(32, 16), predictor=(32, 16))
    return datasets.select(config, variant, ep300=datasets.changes(num_epochs=300.0), smoke=smoke)
