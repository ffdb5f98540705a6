"""Supervised ImageNet pre-training of a ResNet-50, the R-CNN recipe's first stage (Girshick et al. 2014
pre-trained on ILSVRC 2012 classification, then fine-tuned on detection), with today's standard recipe
(torchvision's ResNet-50 reference: SGD + Nesterov momentum 0.9, lr 0.1 x batch / 256, weight decay 1e-4,
90 epochs, label smoothing 0.1, random resized crop 224 + flip; here a cosine schedule after 5 warm-up
epochs instead of step decay).

Data: tfds `imagenet2012` prepared in ArrayRecord format (`tfds build imagenet2012 --file_format=array_record`
after placing the ILSVRC 2012 tars in the manual directory).

  ssl-jax pretrain --config configs/supervised_imagenet.py --workdir runs/supervised_imagenet \
      --config.data.data_dir=~/tensorflow_datasets

Then transfer: fine-tune or probe the exported backbone on another labelled task (`ssl-jax evaluate
--workdir runs/supervised_imagenet --protocol linear --config.data.tfds_name=...`).
Expected result: no run of this config is recorded (it needs an accelerator and ImageNet);
torchvision reports 76.1% top-1 for this recipe with step decay.
`--config.supervised.transfer_layer=3` transfers conv1 .. layer3 (1024 channels).
Variants: `:smoke` (the ImageNet pipeline on the small CNN at 64 px, three steps).
"""

from __future__ import annotations

import ml_collections

from ssl_jax import config_util

datasets = config_util.import_sibling(__file__, "_datasets")
families = config_util.import_sibling(__file__, "_families")


def get_config(variant: str = "") -> ml_collections.ConfigDict:
    config = datasets.imagenet("supervised", batch_size=1024, num_epochs=90.0)
    del config.model["projector"]
    del config["simclr"]
    config.data.update(train_split="train", test_split="validation")
    families.set_encoder(config, families.RESNET50)
    config.update(checkpoint_every_steps=2500)
    config.eval.update(batch_size=512, protocols=("linear",))
    families.supervised(
        config, label_smoothing=0.1, crop_scale=(0.08, 1.0), weight_decay=1e-4, warmup=5.0
    )
    smoke = datasets.smoke(
        {"data.image_size": 64, "augment.crop_size": 64}, protocols=None, max_train_examples=None
    )
    return datasets.select(config, variant, smoke=smoke)
