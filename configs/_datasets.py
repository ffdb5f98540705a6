"""The bases that configs/ files start from, one per dataset, and the variants they share.

`fashion_mnist(method)`, `cifar10(method)` and `imagenet(method)` are ssl_jax.default_config with that
dataset's fields and the schedule its configs share (how often to log, run kNN and checkpoint; batch and
epochs where most of its configs agree). `small_cnn` and `smoke` are the `:small_cnn` (the CPU-sized
encoder) and `:smoke` (a few tiny steps, for the tests) variants, `changes` any other variant written as
the fields it sets, and `select` applies the variant a `FILE.py:variant` spec names.

Not a config itself (no get_config): a config imports it with
`config_util.import_sibling(__file__, "_datasets")`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import ml_collections

from ssl_jax import augment, default_config

FASHION_MNIST_DIR = "/usr/share/datasets/fashion-mnist"  # Debian's `dataset-fashion-mnist`
FASHION_MNIST_TRAIN = 60_000
CIFAR10_STEPS_PER_EPOCH = 195  # 50,000 / batch 256
TINY_CNN = {"widths": (8, 16), "strides": (2, 2)}
CPU_CNN = {"widths": (32, 64, 128), "strides": (2, 2, 2)}  # default_config's

Variant = Callable[[ml_collections.ConfigDict], Any]


def base(
    method: str,
    *,
    batch_size: int,
    num_epochs: float,
    log_every_steps: int = 50,
    eval_every_steps: int = 0,
    checkpoint_every_steps: int = 1000,
) -> ml_collections.ConfigDict:
    """default_config (its data: the embedded Fashion-MNIST subset) running `method` on this schedule
    (eval_every_steps 0: kNN only at the end)."""
    config = default_config.get_config()
    config.method = method
    config.update(batch_size=batch_size, num_epochs=num_epochs, log_every_steps=log_every_steps)
    config.update(eval_every_steps=eval_every_steps, checkpoint_every_steps=checkpoint_every_steps)
    return config


def fashion_mnist(
    method: str, *, batch_size: int = 512, num_epochs: float = 100.0, eval_every_epochs: int = 10
) -> ml_collections.ConfigDict:
    """The full Fashion-MNIST from its IDX files (28x28x1, default_config's statistics); kNN and a
    checkpoint every `eval_every_epochs` epochs (0: kNN only at the end, a checkpoint every 1000 steps)."""
    steps = eval_every_epochs * (FASHION_MNIST_TRAIN // batch_size)
    config = base(method, batch_size=batch_size, num_epochs=num_epochs, eval_every_steps=steps)
    config.checkpoint_every_steps = steps or 1000
    config.data.name = "fashion_mnist"
    config.data.data_dir = FASHION_MNIST_DIR
    return config


def cifar10(method: str) -> ml_collections.ConfigDict:
    """tfds `cifar10` (32x32x3), solo-learn's schedule: batch 256, 1000 epochs, kNN every 50 epochs and a
    checkpoint every 10."""
    config = base(
        method,
        batch_size=256,
        num_epochs=1000.0,
        eval_every_steps=CIFAR10_STEPS_PER_EPOCH * 50,
        checkpoint_every_steps=CIFAR10_STEPS_PER_EPOCH * 10,
    )
    return _tfds(config, "cifar10", 32, 10, augment.CIFAR10_MEAN, augment.CIFAR10_STD)


def imagenet(
    method: str,
    *,
    batch_size: int,
    num_epochs: float,
    image_size: int = 224,
    checkpoint_every_steps: int = 1000,
) -> ml_collections.ConfigDict:
    """tfds `imagenet2012` (it needs the manual download), accelerator-sized: kNN only at the end, a
    1024-example evaluation batch."""
    config = base(
        method,
        batch_size=batch_size,
        num_epochs=num_epochs,
        log_every_steps=100,
        checkpoint_every_steps=checkpoint_every_steps,
    )
    config.eval.batch_size = 1024
    # The papers' crop: each view's box on the original photograph (ssl_jax.data.photos).
    return _tfds(
        config,
        "imagenet2012",
        image_size,
        1000,
        augment.IMAGENET_MEAN,
        augment.IMAGENET_STD,
        host_crop="yes",
    )


def _tfds(config, name, image_size, num_classes, mean, std, **fields) -> ml_collections.ConfigDict:
    config.data.update(name="tfds", tfds_name=name, image_size=image_size, channels=3)
    config.data.update(num_classes=num_classes, mean=mean, std=std, **fields)
    return config


def small_cnn(fields: Mapping[str, Any] | None = None, **heads: tuple[int, int]) -> Variant:
    """The `:small_cnn` variant: default_config's CPU-sized CNN in float32, each named head
    (`projector=(hidden, output)`) resized, and any other `fields` (flattened keys) set."""

    def apply(config: ml_collections.ConfigDict) -> None:
        # Assigned, not update()d: update() would merge the new kwargs into the old encoder's.
        config.model.encoder, config.model.encoder_kwargs = "small_cnn", CPU_CNN
        config.model.dtype = "float32"
        _resize(config, heads)
        config.update_from_flattened_dict(fields or {})

    return apply


def smoke(
    fields: Mapping[str, Any] | None = None,
    *,
    encoder: str | None = "small_cnn",
    dtype: str | None = "float32",
    image_size: int | None = None,
    protocols: tuple[str, ...] | None = ("knn",),
    max_train_examples: int | None = 2000,
    linear_epochs: int | None = None,
    batch_size: int = 16,
    num_steps: int = 3,
    **heads: tuple[int, int],
) -> Variant:
    """The `:smoke` variant: the same pipeline for `num_steps` steps of `batch_size` with a tiny CNN
    (encoder=None: the config's own encoder), each named head resized, kNN on a subset, and any
    other `fields` (flattened keys) set.
    `image_size`: smaller images (data and the augmentation's crop) and a small evaluation batch.
    A None leaves that field as the config has it."""

    def apply(config: ml_collections.ConfigDict) -> None:
        config.update(batch_size=batch_size, num_steps=num_steps, log_every_steps=1)
        config.update(eval_every_steps=0, checkpoint_every_steps=2)
        if encoder is not None:
            config.model.encoder, config.model.encoder_kwargs = encoder, TINY_CNN
        if dtype is not None:
            config.model.dtype = dtype
        _resize(config, heads)
        if image_size is not None:
            _shrink_images(config, image_size)
        _set_unless_none(config.eval, protocols=protocols, linear_epochs=linear_epochs)
        _set_unless_none(config.eval, max_train_examples=max_train_examples)
        config.update_from_flattened_dict(fields or {})

    return apply


def changes(flat: Mapping[str, Any] | None = None, **top_level: Any) -> Variant:
    """A variant that sets fields: `changes({"data.motion": "rotate"}, num_epochs=300.0)`."""

    def apply(config: ml_collections.ConfigDict) -> None:
        config.update_from_flattened_dict({**(flat or {}), **top_level})

    return apply


def select(config: ml_collections.ConfigDict, variant: str, **variants: Variant):
    """`config` changed by the named variant ("" -> unchanged); an unknown name is an error naming the
    valid ones. Returns `config`."""
    if variant:
        if variant not in variants:
            raise ValueError(f"Unknown variant {variant!r}; valid: {', '.join(variants)}.")
        variants[variant](config)
    return config


def _resize(config: ml_collections.ConfigDict, heads: Mapping[str, tuple[int, int]]) -> None:
    for name, (hidden_dim, output_dim) in heads.items():
        config.model[name].update(hidden_dim=hidden_dim, output_dim=output_dim)


def _shrink_images(config: ml_collections.ConfigDict, image_size: int) -> None:
    # The augmentation's crop follows the images where it was their size (a crop key of the
    # ViewSpec presets, the plain crop, or DINO's global crops).
    for key in ("image_size", "crop_size", "global_size"):
        if config.augment.get(key) == config.data.image_size:
            config.augment[key] = image_size
    config.data.image_size = image_size
    config.eval.batch_size = 16


def _set_unless_none(node: ml_collections.ConfigDict, **fields: Any) -> None:
    node.update({k: v for k, v in fields.items() if v is not None})
