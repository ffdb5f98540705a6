"""CLIP on COCO Captions (tfds `coco_captions`: ~118k images with five captions each), ViT-B/32 at 224px.

The CLIP paper's ViT-B/32 recipe (Radford et al. 2021, Sec. 2.4-2.5 and Tables 19-20), kept where it
transfers: image tower ViT-B/32 (768 wide, 12 blocks) -> linear projection; text tower a causal
Transformer of 12 blocks x 512 wide, 8 heads, 77-token context, read out at eos -> linear projection;
512-d joint space; logit scale exp(t) from 1/0.07 capped at 100; AdamW (lr 5e-4, betas 0.9/0.98,
eps 1e-6, weight decay 0.2 on matrices), warm-up then cosine; random resized crop as the only
augmentation. What differs, and why:
- batch 4096, not the paper's 32,768: COCO's 118k training images would make an epoch of the paper's
  batch 3.6 steps. `:paper_batch` sets 32,768 for users with a web-scale captioned dataset (set
  data.tfds_name and data.caption_key to it).
- tokenizer: byte-level BPE trained on the training captions (8,192 ids, cached at
  data.tokenizer_path), not CLIP's 49,152-id BPE trained on its own corpus.
- 32 epochs over COCO instead of 32 epochs over 400M pairs: COCO is ~3,400x smaller, so expect far lower
  zero-shot accuracy than the paper's (63.2% ImageNet top-1 for ViT-B/32).
Evaluation: zero-shot classification of CIFAR-10's test split (tfds `cifar10`, its label names, the
caption templates of data.templates). COCO has no class labels, so kNN / linear probe are not run;
point eval.zero_shot_data at any labelled tfds dataset.

Data: tfds `coco_captions` and `cifar10` prepared in ArrayRecord format under DATA_DIR:

  tfds build coco_captions cifar10 --data_dir DATA_DIR --file_format=array_record
  ssl-jax pretrain --config configs/clip_coco.py --workdir runs/clip_coco \
      --config.data.data_dir=DATA_DIR --config.data.tokenizer_path=runs/clip_coco_bpe.json
  ssl-jax evaluate --workdir runs/clip_coco --protocol zero_shot

Expected result: none recorded for this config (no GPU or COCO here); the measured CLIP result is
the Fashion-MNIST one in benchmarks/results/clip_fashion_mnist.md.
Variants: `:paper_batch`, `:smoke` (tiny towers and images: the same pipeline for tests).
"""

from __future__ import annotations

import ml_collections

from ssl_jax import config_util
from ssl_jax.data import captions

datasets = config_util.import_sibling(__file__, "_datasets")
families = config_util.import_sibling(__file__, "_families")


def get_config(variant: str = "") -> ml_collections.ConfigDict:
    # The ImageNet base's images (224 px, its statistics, accelerator schedule), COCO's captioned data.
    config = datasets.imagenet("clip", batch_size=4096, num_epochs=32.0, checkpoint_every_steps=500)
    config.log_every_steps = 50
    config.data.name = "tfds_captions"
    config.data.tfds_name = "coco_captions"
    config.data.train_split = "train+restval"  # Karpathy's train + restval: 113k images
    config.data.test_split = "val"
    config.data.image_key = "image"
    config.data.caption_key = "captions/text"  # five captions per image; one drawn per example
    config.data.label_key = ""
    config.data.caption_seed = 0
    config.data.num_classes = 0
    config.data.tokenizer = "bpe"
    config.data.tokenizer_path = ""  # set it: the BPE is trained once and reused from there
    config.data.vocab_size = 8192
    config.data.tokenizer_train_examples = 100_000
    config.data.text_len = 77
    # The prompt templates of zero-shot evaluation (class names of eval.zero_shot_data).
    config.data.templates = captions.TEMPLATES
    families.set_encoder(config, ("vit_base", {"patch_size": 32}))
    families.clip(config, width=512, depth=12, num_heads=8, embed_dim=512, warmup_epochs=2.0)
    # The in-training kNN monitor needs labels, which COCO lacks: zero-shot on CIFAR-10 only.
    config.eval.protocols = ("zero_shot",)
    config.eval.zero_shot_data = ml_collections.ConfigDict(
        {
            "name": "tfds",
            "tfds_name": "cifar10",
            "data_dir": "",  # "" = data.data_dir
            "image_size": 32,  # native; the eval transform resizes to data.image_size
        }
    )
    config.eval.zero_shot_class_names = ()  # () = the dataset's label names
    smoke = {
        "model.encoder_kwargs": {"patch_size": 16},
        **families.text_tower(16, 1, 2),
        "data.text_len": 32,
        "data.vocab_size": 300,
        "clip.embed_dim": 16,
    }
    smoke = datasets.smoke(
        smoke,
        encoder="vit_tiny",
        image_size=48,
        protocols=None,
        max_train_examples=None,
        batch_size=8,
        num_steps=2,
    )
    return datasets.select(
        config, variant, paper_batch=datasets.changes(batch_size=32768), smoke=smoke
    )
