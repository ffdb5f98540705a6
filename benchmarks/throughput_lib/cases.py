"""The benchmark cases: each a config, the host inputs it takes, what a row counts and its FLOPs.

A case's training FLOPs per counted item compose the formulas of `flops` with the shapes its config
builds. What a method trains and what it only runs forward is read off the method's own variables
(`method.init`, traced without computing anything): a predictor where its parameters hold one, an EMA
target where its extra state holds one, so no case branches on a method's name.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable

import jax
import numpy as np

from ssl_jax import augment, config_util, default_config, models
from ssl_jax.method_inputs import build_method
from ssl_jax.methods import common

from . import flops

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


@dataclasses.dataclass(frozen=True)
class Case:
    """One benchmark: a config, how many examples a step takes, what a row counts, its FLOPs.

    config_fn(batch) -> ConfigDict; inputs(rng, batch, config) -> host arrays without example_ids;
    items_per_example: images (2 for SimCLR's two views, 1 for MAE) or tokens (the sequence length);
    flops_per_item(config) -> training FLOPs per counted item, or None where not counted.
    """

    name: str
    model: str
    input: str
    unit: str  # "images" or "tokens"
    examples: int  # examples per step at --batch-scale 1
    config_fn: Callable
    inputs: Callable
    items_per_example: Callable
    flops_per_item: Callable | None = None
    note: str = ""


def _simclr_config(encoder: str, stem: str, image_size: int, blur: float):
    def make(batch: int):
        config = default_config.get_config()
        config.method = "simclr"
        config.data.image_size = image_size
        config.data.channels = 3
        config.data.mean = augment.IMAGENET_MEAN
        config.data.std = augment.IMAGENET_STD
        config.model.encoder = encoder
        config.model.encoder_kwargs = {"stem": stem}
        config.model.dtype = "bfloat16"
        config.model.projector.hidden_dim, config.model.projector.output_dim = 2048, 128
        config.augment = {
            "preset": "simclr",
            "image_size": image_size,
            "channels": 3,
            "blur_prob": blur,
        }
        # SimCLR's large-batch recipe (Chen et al. 2020, Sec. B.1), which the GPU baseline ran; the
        # default config's CPU recipe is SGD.
        config.optim.update(
            name="lars",
            learning_rate=0.3,
            lr_scaling="linear",
            weight_decay=1e-6,
            momentum=0.9,
            warmup_epochs=2.0,
            end_lr=0.0,
        )
        config.batch_size = batch
        return config

    return make


def _from_file(spec: str, **fields):
    """A config file's config with the batch size (and `fields`, dotted names) set."""

    def make(batch: int):
        config = config_util.load_config(os.path.join(ROOT, "configs", spec))
        config.batch_size = batch
        config_util.apply_overrides(config, [f"{k}={v}" for k, v in fields.items()])
        return config

    return make


def _images(size: int, channels: int = 3):
    def make(rng, batch, config):
        del config
        shape = (batch, size, size, channels)
        return {"image": rng.integers(0, 256, size=shape, dtype=np.uint8)}

    return make


def _tokens(rng, batch, config):
    """Random ids of the config's vocabulary above the special ids, full length (no padding)."""
    vocab, seq_len = int(config.data.vocab_size), int(config.data.seq_len)
    return {"tokens": rng.integers(8, vocab, size=(batch, seq_len), dtype=np.int32)}


def _seq_len(config) -> int:
    return int(config.data.seq_len)


def _mae_flops(config) -> int:
    encoder, dec = common.build_encoder(config, axis_name=None), config.model.decoder
    return flops.mae_train_flops_per_image(
        image_size=config.augment.crop_size,
        patch_size=encoder.patch_size,
        width=encoder.hidden_dim,
        depth=encoder.depth,
        decoder_width=dec.hidden_dim,
        decoder_depth=dec.depth,
        mask_ratio=config.mae.mask_ratio,
    )


def _lm_flops(config) -> int:
    model = config.model
    return flops.lm_train_flops_per_token(
        seq_len=int(config.data.seq_len),
        width=int(model.hidden_dim),
        layers=int(model.num_layers),
        vocab_size=int(config.data.vocab_size),
        mlp_dim=int(model.mlp_dim),
    )


def backbone_forward_flops(config, image_size: int) -> int:
    """Forward FLOPs of config.model.encoder on one image_size x image_size image (ResNets and ViTs;
    NotImplementedError for encoders without a formula)."""
    encoder = common.build_encoder(config, axis_name=None)
    channels = int(config.data.channels)
    if isinstance(encoder, models.ViT):
        return flops.vit_forward_flops(
            image_size=image_size,
            patch_size=encoder.patch_size,
            width=encoder.hidden_dim,
            depth=encoder.depth,
            channels=channels,
            mlp_dim=int(encoder.hidden_dim * encoder.mlp_ratio),
        )
    if isinstance(encoder, models.ResNet):
        return flops.resnet_forward_flops(
            stage_sizes=tuple(encoder.stage_sizes),
            bottleneck=encoder.block_cls.expansion == 4,
            stem=encoder.stem,
            image_size=image_size,
            channels=channels,
            width_multiplier=encoder.width_multiplier,
        )
    raise NotImplementedError(f"no FLOP formula for encoder {config.model.encoder!r}")


def _mlp_head_dims(head, in_dim: int) -> list[int]:
    """An `MLPHead`'s widths: num_layers Dense layers, hidden_dim wide but the last."""
    return (
        [in_dim] + [int(head.hidden_dim)] * (head.get("num_layers", 2) - 1) + [int(head.output_dim)]
    )


def _siamese_parts(config) -> tuple[bool, bool]:
    """(has a predictor, keeps an EMA target): read off the method's variables, traced only."""
    method = build_method(config, num_steps=1, steps_per_epoch=1)
    size = common.view_spec(config).crop_size
    shape = (size, size, int(config.data.channels))
    variables = jax.eval_shape(lambda: method.init(jax.random.key(0), shape))
    return "predictor" in variables.params, "target_params" in variables.extra


def _siamese_flops(config) -> int:
    """Per view: the online network (backbone, projector, and the predictor where there is one) is
    trained; an EMA target of backbone + projector, where the method keeps one, only runs forward."""
    model = config.model
    size = common.view_spec(config).crop_size
    feature_dim = common.build_encoder(config, axis_name=None).feature_dim
    online = backbone_forward_flops(config, size) + flops.mlp_flops(
        _mlp_head_dims(model.projector, feature_dim)
    )
    has_predictor, has_target = _siamese_parts(config)
    target = online if has_target else 0
    if has_predictor:
        online += flops.mlp_flops(_mlp_head_dims(model.predictor, int(model.projector.output_dim)))
    return 3 * online + target


def _dino_flops(config) -> int:
    """Per crop: the student on every crop (trained), the teacher on the global crops."""
    aug, head = config.augment, config.model.head
    feature_dim = common.build_encoder(config, axis_name=None).feature_dim
    dims = [feature_dim] + [int(head.hidden_dim)] * (head.get("num_layers", 3) - 1)
    head_flops = flops.mlp_flops(dims + [int(head.bottleneck_dim), int(head.output_dim)])
    f_global = backbone_forward_flops(config, int(aug.global_size)) + head_flops
    f_local = backbone_forward_flops(config, int(aug.local_size)) + head_flops
    n_global, n_local = int(aug.num_global), int(aug.num_local)
    student = n_global * f_global + n_local * f_local
    return (3 * student + n_global * f_global) // (n_global + n_local)


def _crops(config) -> int:
    return int(config.augment.num_global) + int(config.augment.num_local)


# As in the issues: SimCLR's "batch 1024 images" is 512 examples x 2 views; images/s counts views.
CASES = {
    "simclr_r18_cifar": Case(
        "simclr_r18_cifar",
        "resnet18 (cifar stem)",
        "32x32x3 uint8",
        "images",
        512,
        _simclr_config("resnet18", "cifar", 32, 0.0),
        _images(32),
        lambda config: 2,
        _siamese_flops,
        note="two SimCLR views augmented on device, synchronized BN, NT-Xent, LARS",
    ),
    "simclr_r18_fmnist": Case(
        "simclr_r18_fmnist",
        "resnet18 (cifar stem)",
        "28x28x1 uint8",
        "images",
        512,
        _from_file("simclr_fashion_mnist.py"),
        _images(28, channels=1),
        lambda config: 2,
        _siamese_flops,
        note="configs/simclr_fashion_mnist.py's recipe (grayscale views, bf16, LARS); the case that "
        "`--data-dir` also feeds from the real Fashion-MNIST files through the training loader",
    ),
    "simclr_r50_224": Case(
        "simclr_r50_224",
        "resnet50 (imagenet stem)",
        "224x224x3 uint8",
        "images",
        128,
        _simclr_config("resnet50", "imagenet", 224, 0.5),
        _images(224),
        lambda config: 2,
        _siamese_flops,
        note="two SimCLR views augmented on device (blur p 0.5), synchronized BN, NT-Xent, LARS",
    ),
    "byol_r50_224": Case(
        "byol_r50_224",
        "resnet50 (imagenet stem)",
        "224x224x3 uint8",
        "images",
        128,
        _from_file("byol_imagenet.py"),
        _images(224),
        lambda config: 2,
        _siamese_flops,
        note="configs/byol_imagenet.py: the asymmetric view pair on device, online network + "
        "4096-256 projector and predictor, EMA target forward, synchronized BN, LARS",
    ),
    "moco_v3_vit_s16": Case(
        "moco_v3_vit_s16",
        "MoCo v3 ViT-S/16",
        "224x224x3 uint8",
        "images",
        256,
        _from_file("moco_v3_imagenet.py"),
        _images(224),
        lambda config: 2,
        _siamese_flops,
        note="configs/moco_v3_imagenet.py: two views on device, ViT-S/16 + 3-layer projector + "
        "predictor, momentum network forward, InfoNCE over the gathered keys, AdamW",
    ),
    "dino_vit_s16": Case(
        "dino_vit_s16",
        "DINO ViT-S/16",
        "224x224x3 uint8",
        "images",
        128,
        _from_file("dino_imagenet.py"),
        _images(224),
        _crops,
        _dino_flops,
        note="configs/dino_imagenet.py: 2 global (224) + 8 local (96) crops on device, images/s counts "
        "every crop; student on all, teacher on the global ones, 65,536 prototypes, AdamW",
    ),
    "mae_vit_b16": Case(
        "mae_vit_b16",
        "MAE ViT-B/16 + 8x512 decoder",
        "224x224x3 uint8",
        "images",
        256,
        _from_file("mae_imagenet.py"),
        _images(224),
        lambda config: 1,
        _mae_flops,
        note="crop + flip and 75% masking on device, bf16, norm-pix MSE, AdamW",
    ),
    "bert_base_512": Case(
        "bert_base_512",
        "BERT-base 12x768",
        "512 tokens",
        "tokens",
        32,
        _from_file("bert_austen.py:base"),
        _tokens,
        _seq_len,
        _lm_flops,
        note="80/10/10 masking on device, bf16, tied MLM head over every position, AdamW",
    ),
    "gpt2_small_1024": Case(
        "gpt2_small_1024",
        "GPT-2 small 12x768",
        "1024 tokens",
        "tokens",
        16,
        _from_file("gpt_austen.py:base"),
        _tokens,
        _seq_len,
        _lm_flops,
        note="causal LM, bf16, tied head, AdamW",
    ),
}
