"""A small convolutional encoder for CPU demos and tests on 28x28 / 32x32 images.

Same contract as the ResNets (`__call__(x, train) -> [batch, features]` in float32, NHWC input, float32
parameters, BatchNorm synchronised over `bn_axis_name`), but it compiles in about a second and trains
meaningfully on Fashion-MNIST in a few hundred CPU steps.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from ssl_jax.models.resnet import conv_kernel_init


class SmallConvNet(nn.Module):
    """conv3x3-BN-ReLU layers, one per entry of `widths`, then global average pooling.

    strides: one per layer. The default halves the resolution three times (28x28 -> 4x4, 32x32 -> 4x4)
    before the widest layer, which keeps a training step on two CPU cores near a second at batch 512.
    """

    widths: Sequence[int] = (32, 64, 128, 256)
    strides: Sequence[int] = (2, 2, 2, 1)
    dtype: Any = jnp.float32
    bn_axis_name: str | None = None
    bn_momentum: float = 0.9

    @property
    def feature_dim(self) -> int:
        return self.widths[-1]

    @nn.compact
    def __call__(self, x: jax.Array, train: bool) -> jax.Array:
        if len(self.widths) != len(self.strides):
            raise ValueError(
                f"SmallConvNet needs one stride per width; got widths={tuple(self.widths)} and "
                f"strides={tuple(self.strides)}."
            )
        x = jnp.asarray(x, self.dtype)
        for i, (width, stride) in enumerate(zip(self.widths, self.strides, strict=True)):
            x = nn.Conv(
                width,
                (3, 3),
                strides=(stride, stride),
                padding=((1, 1), (1, 1)),
                use_bias=False,  # the BatchNorm's bias replaces it
                kernel_init=conv_kernel_init,
                dtype=self.dtype,
                param_dtype=jnp.float32,
                name=f"conv{i}",
            )(x)
            x = nn.BatchNorm(
                use_running_average=not train,
                momentum=self.bn_momentum,
                epsilon=1e-5,
                axis_name=self.bn_axis_name,
                dtype=self.dtype,
                param_dtype=jnp.float32,
                name=f"bn{i}",
            )(x)
            x = nn.relu(x)
        return jnp.mean(x, axis=(1, 2), dtype=jnp.float32)
