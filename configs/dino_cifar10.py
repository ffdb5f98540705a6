"""DINO on CIFAR-10: solo-learn's recipe (scripts/pretrain/cifar/dino.yaml, ResNet-18, LARS, 1000 epochs).

solo-learn (da Costa et al. 2022, JMLR) reports 89.52% top-1 (online linear classifier) on CIFAR-10 for this
recipe: ResNet-18 (CIFAR stem), DINO head 2048-256 with K = 4096 prototypes, no BN in the head, weight-
normalized last layer frozen for the first epoch; teacher momentum 0.9995 -> 1 (cosine), teacher temperature
0.07 (its warm-up from 0.04 lasts 0 epochs), student 0.1, centre momentum 0.9; two 32-px crops with scale
(0.08, 1) and no local crops; colour jitter 0.4/0.4/0.2/0.1 with p 0.8, grayscale p 0.2, no blur,
solarization p 0.2 on the second crop only; LARS lr 0.3 x batch / 256 (eta 0.02, biases and norms excluded;
solo-learn's LARS also clips its adaptive lr, which optax's does not), weight decay 1e-6, 10 warm-up epochs
then cosine, batch 256, no gradient clipping.

Data: tfds `cifar10` prepared under DATA_DIR (`pip install 'ssl_jax[tf]'; tfds build cifar10 --data_dir DATA_DIR`):

  ssl-jax pretrain --config configs/dino_cifar10.py --workdir runs/dino_cifar10 \
      --config.data.data_dir=DATA_DIR

Expected result: about 89.5% linear top-1 after 1000 epochs (solo-learn's number; not yet reproduced
here).
Variant `:smoke`: the same pipeline on a few tiny steps (tests point it at a small local RGB dataset).
"""

from __future__ import annotations

import ml_collections

from ssl_jax import config_util

datasets = config_util.import_sibling(__file__, "_datasets")
families = config_util.import_sibling(__file__, "_families")


def get_config(variant: str = "") -> ml_collections.ConfigDict:
    config = datasets.cifar10("dino")
    crops = {
        "num_global": 2,
        "num_local": 0,
        "global_size": 32,
        "local_size": 32,  # unused without local crops
        "global_scale": (0.08, 1.0),
        "global_blur_prob": (0.0, 0.0),
        "global_solarize_prob": (0.0, 0.2),
        "local_blur_prob": 0.0,
    }
    families.dino(
        config,
        encoder=families.RESNET18,
        prototypes=4096,
        norm_last_layer=True,
        dino={"warmup_teacher_temp_epochs": 0.0, "teacher_momentum": 0.9995},
        crops=crops,
        optim=families.dino_lars(),
    )
    smoke = datasets.smoke(families.head_sizes(64, 32, 64))
    return datasets.select(config, variant, smoke=smoke)
