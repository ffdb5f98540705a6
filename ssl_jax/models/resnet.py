"""ResNet encoders (He et al. 2016, torchvision's v1.5 layout) for self-supervised pre-training.

The encoder ends at global average pooling: `__call__(x, train) -> [batch, features]` in float32, with no
classifier, so methods add their own projector and evaluation adds its own linear head. Inputs are NHWC.
Parameters are float32 whatever `dtype` says; `dtype` only sets the activation and computation type.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import Any, ClassVar

import flax.linen as nn
import jax
import jax.numpy as jnp

# torchvision's `kaiming_normal_(mode="fan_out", nonlinearity="relu")`: an untruncated normal.
conv_kernel_init = nn.initializers.variance_scaling(2.0, "fan_out", "normal")


def _save_cross_device_sums(prim, *_, **__) -> bool:
    """Remat policy: keep the results of cross-device sums (synchronized BN's statistics, [C] vectors),
    so the backward pass recomputes activations without running those collectives a second time."""
    return prim.name.startswith("psum")


_RematBatchNorm = nn.remat(nn.BatchNorm, policy=_save_cross_device_sums)


def batch_norm(remat: bool, **kwargs) -> nn.BatchNorm:
    """flax's BatchNorm; with `remat`, under `nn.remat`: its backward pass recomputes the normalization
    from the input instead of keeping the float32 intermediates (x - mean, x^2) the forward made. Those
    are 8 bytes per activation element against the 2 of the bf16 input, so remat shrinks what the step
    writes in the forward and reads back in the backward; the values and gradients are the same."""
    return (_RematBatchNorm if remat else nn.BatchNorm)(**kwargs)


class _Block(nn.Module):
    """Fields shared by both residual blocks; `filters` is the width of the block's inner convs."""

    filters: int
    strides: int = 1
    dtype: Any = jnp.float32
    bn_axis_name: str | None = None
    bn_momentum: float = 0.9
    zero_init_residual: bool = False
    remat_norm: bool = False

    expansion: ClassVar[int] = 1

    def conv(
        self, features: int, kernel: int, strides: int = 1, name: str | None = None
    ) -> nn.Conv:
        # Explicit symmetric padding as torchvision: "SAME" pads (0, 1) for even inputs at stride 2,
        # which would shift every feature map by one pixel relative to PyTorch weights.
        pad = (kernel - 1) // 2
        return nn.Conv(
            features,
            (kernel, kernel),
            strides=(strides, strides),
            padding=((pad, pad), (pad, pad)),
            use_bias=False,
            kernel_init=conv_kernel_init,
            dtype=self.dtype,
            param_dtype=jnp.float32,
            name=name,
        )

    def norm(self, train: bool, last: bool = False, name: str | None = None) -> nn.BatchNorm:
        zero = last and self.zero_init_residual
        return batch_norm(
            self.remat_norm,
            use_running_average=not train,
            momentum=self.bn_momentum,
            epsilon=1e-5,
            axis_name=self.bn_axis_name,
            scale_init=nn.initializers.zeros if zero else nn.initializers.ones,
            dtype=self.dtype,
            param_dtype=jnp.float32,
            name=name,
        )

    def shortcut(self, x: jax.Array, train: bool) -> jax.Array:
        out_features = self.filters * self.expansion
        if x.shape[-1] == out_features and self.strides == 1:
            return x
        x = self.conv(out_features, 1, self.strides, name="downsample_conv")(x)
        return self.norm(train, name="downsample_bn")(x)


class BasicBlock(_Block):
    """Two 3x3 convs (ResNet-18/34)."""

    @nn.compact
    def __call__(self, x: jax.Array, train: bool) -> jax.Array:
        y = self.conv(self.filters, 3, self.strides, name="conv1")(x)
        y = nn.relu(self.norm(train, name="bn1")(y))
        y = self.conv(self.filters, 3, name="conv2")(y)
        y = self.norm(train, last=True, name="bn2")(y)
        return nn.relu(y + self.shortcut(x, train))


class BottleneckBlock(_Block):
    """1x1 -> 3x3 (strided, as torchvision's v1.5) -> 1x1 with 4x expansion (ResNet-50 and deeper)."""

    expansion: ClassVar[int] = 4

    @nn.compact
    def __call__(self, x: jax.Array, train: bool) -> jax.Array:
        y = self.conv(self.filters, 1, name="conv1")(x)
        y = nn.relu(self.norm(train, name="bn1")(y))
        y = self.conv(self.filters, 3, self.strides, name="conv2")(y)
        y = nn.relu(self.norm(train, name="bn2")(y))
        y = self.conv(self.filters * self.expansion, 1, name="conv3")(y)
        y = self.norm(train, last=True, name="bn3")(y)
        return nn.relu(y + self.shortcut(x, train))


class ResNet(nn.Module):
    """A ResNet trunk up to global average pooling.

    stem: "imagenet" (7x7/2 conv + 3x3/2 max-pool, 4x downsampling) or "cifar" (3x3/1 conv, none).
    bn_axis_name: mesh axis over which BatchNorm statistics are averaged (None: per device).
    zero_init_residual: zero the last BN scale of each block so every block starts as the identity.
    width_multiplier: scales every width, stem included (SimCLR's ResNet-50 (2x), (4x)).
    remat_norm: recompute each BatchNorm in the backward pass rather than save its float32
      intermediates (`batch_norm`); same results, less memory traffic, a little more arithmetic.
    """

    stage_sizes: Sequence[int]
    block_cls: type[_Block]
    stem: str = "imagenet"
    dtype: Any = jnp.float32
    bn_axis_name: str | None = None
    bn_momentum: float = 0.9
    zero_init_residual: bool = False
    width_multiplier: int = 1
    remat_norm: bool = False

    @property
    def feature_dim(self) -> int:
        return (
            64 * 2 ** (len(self.stage_sizes) - 1) * self.block_cls.expansion * self.width_multiplier
        )

    @nn.compact
    def __call__(self, x: jax.Array, train: bool) -> jax.Array:
        if self.stem not in ("imagenet", "cifar"):
            raise ValueError(f"Unknown ResNet stem {self.stem!r}; use 'imagenet' or 'cifar'.")
        width = 64 * self.width_multiplier
        # Cast once here so every conv runs in `dtype`; inputs often arrive as float32 or uint8-derived.
        x = jnp.asarray(x, self.dtype)
        if self.stem == "imagenet":
            kernel, strides, pad = 7, 2, 3
        else:
            kernel, strides, pad = 3, 1, 1
        x = nn.Conv(
            width,
            (kernel, kernel),
            strides=(strides, strides),
            padding=((pad, pad), (pad, pad)),
            use_bias=False,
            kernel_init=conv_kernel_init,
            dtype=self.dtype,
            param_dtype=jnp.float32,
            name="conv1",
        )(x)
        x = batch_norm(
            self.remat_norm,
            use_running_average=not train,
            momentum=self.bn_momentum,
            epsilon=1e-5,
            axis_name=self.bn_axis_name,
            dtype=self.dtype,
            param_dtype=jnp.float32,
            name="bn1",
        )(x)
        x = nn.relu(x)
        if self.stem == "imagenet":
            x = nn.max_pool(x, (3, 3), strides=(2, 2), padding=((1, 1), (1, 1)))

        for i, num_blocks in enumerate(self.stage_sizes):
            for j in range(num_blocks):
                x = self.block_cls(
                    filters=width * 2**i,
                    strides=2 if i > 0 and j == 0 else 1,
                    dtype=self.dtype,
                    bn_axis_name=self.bn_axis_name,
                    bn_momentum=self.bn_momentum,
                    zero_init_residual=self.zero_init_residual,
                    remat_norm=self.remat_norm,
                    name=f"layer{i + 1}_{j}",
                )(x, train)
        # Pool in float32 so the features handed to losses are float32 (the convert fuses into the reduce).
        return jnp.mean(x, axis=(1, 2), dtype=jnp.float32)


ResNet18 = functools.partial(ResNet, stage_sizes=(2, 2, 2, 2), block_cls=BasicBlock)
ResNet34 = functools.partial(ResNet, stage_sizes=(3, 4, 6, 3), block_cls=BasicBlock)
ResNet50 = functools.partial(ResNet, stage_sizes=(3, 4, 6, 3), block_cls=BottleneckBlock)
