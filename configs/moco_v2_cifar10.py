"""MoCo v2+ on CIFAR-10: solo-learn's recipe (scripts/pretrain/cifar/mocov2plus.yaml), ResNet-18 with the
CIFAR stem, 1000 epochs.

solo-learn (da Costa et al. 2022, JMLR; README model zoo) reports 92.94% top-1 (its online linear
classifier) for this recipe: projector 2048-256 (no BN), temperature 0.2, a queue of 32768 keys per view,
the symmetric loss (each view's query against the other view's key, one queue per view), momentum rising
from 0.99 to 0.999 on a cosine, SGD (lr 0.3 x batch / 256, momentum 0.9, weight decay 1e-4), 10 warm-up
epochs then cosine, batch 256, synchronized BN on one GPU; crops of 32 with scale (0.08, 1), colour
jitter 0.4/0.4/0.4/0.1 with p 0.8, grayscale p 0.2, blur p 0.5, no solarization.
Differences: our SGD exempts biases and norm parameters from weight decay (solo-learn decays them here),
our blur is a fixed 3x3 kernel at 32px, and the number above comes from solo-learn's online classifier,
not our offline linear probe. BN: both encoders synchronized (`model.sync_batch_norm`, `moco.key_bn =
"sync"`), so the statistics span the whole batch of 256 as in solo-learn's one-GPU run, on any number
of devices (shuffle-BN is not needed then: no device holds a private subset).

Data: tfds `cifar10` prepared under DATA_DIR (`pip install 'ssl_jax[tf]'; tfds build cifar10 --data_dir DATA_DIR`):

  ssl-jax pretrain --config configs/moco_v2_cifar10.py --workdir runs/moco_v2_cifar10 \
      --config.data.data_dir=DATA_DIR

Expected result: about 93% linear top-1 after 1000 epochs (solo-learn's number above; kNN a little
lower); not yet reproduced here (a 1-GPU run takes hours).
Variant `:smoke`: the same pipeline on 3 tiny steps (tests point it at a small local RGB dataset).
"""

from __future__ import annotations

import ml_collections

from ssl_jax import config_util

datasets = config_util.import_sibling(__file__, "_datasets")
families = config_util.import_sibling(__file__, "_families")


def get_config(variant: str = "") -> ml_collections.ConfigDict:
    config = datasets.cifar10("moco_v2")
    # solo-learn's: a 32768-key queue, momentum 0.99 -> 0.999, symmetric loss, synchronized BN.
    moco = dict(
        momentum=0.99, final_momentum=0.999, queue_size=32768, key_bn="sync", symmetric=True
    )
    families.moco_v2(
        config,
        output_dim=256,
        moco=moco,
        augment={"crop_scale": (0.08, 1.0), "blur_prob": 0.5, "solarize_prob": 0.0},
        optim=families.sgd(0.3, 1e-4),
    )
    smoke = datasets.smoke({"moco.queue_size": 64}, linear_epochs=2, projector=(32, 16))
    return datasets.select(config, variant, smoke=smoke)
