"""Flax encoders and heads, and the registry that maps config names to encoders.

Every encoder is called as `encoder.apply(variables, images, train=...)` and returns `[batch, feature_dim]`
float32 features; configs pick one by name with `get_encoder(config.encoder, **config.encoder_kwargs)`.
"""

from __future__ import annotations

from collections.abc import Callable

import flax.linen as nn

from ssl_jax.models.heads import LinearHead, MLPHead
from ssl_jax.models.resnet import (
    BasicBlock,
    BottleneckBlock,
    ResNet,
    ResNet18,
    ResNet34,
    ResNet50,
)
from ssl_jax.models.small import SmallConvNet
from ssl_jax.models.transformer import CausalDecoder, EncoderDecoder, TransformerEncoder
from ssl_jax.models.vit import ViT, ViTBase, ViTSmall, ViTTiny

ENCODERS: dict[str, Callable[..., nn.Module]] = {
    "resnet18": ResNet18,
    "resnet34": ResNet34,
    "resnet50": ResNet50,
    "small_cnn": SmallConvNet,
    "vit_tiny": ViTTiny,
    "vit_small": ViTSmall,
    "vit_base": ViTBase,
}


def get_encoder(name: str, **kwargs) -> nn.Module:
    """The encoder registered as `name`, built with `kwargs` (dtype, bn_axis_name, stem, ...)."""
    try:
        factory = ENCODERS[name]
    except KeyError:
        raise ValueError(
            f"Unknown encoder {name!r}; valid names: {', '.join(sorted(ENCODERS))}."
        ) from None
    return factory(**kwargs)


def encoder_feature_dim(name: str, **kwargs) -> int:
    """Width of the features `get_encoder(name, **kwargs)` returns, without building any parameters."""
    return get_encoder(name, **kwargs).feature_dim


__all__ = [
    "CausalDecoder",
    "EncoderDecoder",
    "TransformerEncoder",
    "ENCODERS",
    "BasicBlock",
    "BottleneckBlock",
    "LinearHead",
    "MLPHead",
    "ResNet",
    "ResNet18",
    "ResNet34",
    "ResNet50",
    "SmallConvNet",
    "ViT",
    "encoder_feature_dim",
    "get_encoder",
]
