"""Heads of the classic pretext tasks, and access to a convolutional backbone's last feature map.

- `RelativePositionHead`: Doersch et al. 2015's late fusion: a shared fc6 per patch, concatenation,
  fc7, and an 8-way fc8.
- `ConvDecoder`: the context encoder's decoder (Pathak et al. 2016): a dense bottleneck from the
  backbone's pooled features to a small map, then stride-2 up-convolutions to the full image.
- `ColorizationHead`: a small fully convolutional net of our own (conv-BN-ReLU at the backbone's
  resolution, bilinear upsampling to the output size, conv-BN-ReLU, a 1x1 conv to the bin logits) on
  the backbone's last feature map, which `backbone_feature_map` reads without changing the backbone.

All return float32 whatever `dtype` computes in; BatchNorm is synchronized over `bn_axis_name`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from ssl_jax.models.resnet import ResNet, conv_kernel_init
from ssl_jax.models.small import SmallConvNet


def _bn(train: bool, axis_name: str | None, dtype: Any, name: str) -> nn.BatchNorm:
    return nn.BatchNorm(
        use_running_average=not train,
        momentum=0.9,
        epsilon=1e-5,
        axis_name=axis_name,
        dtype=dtype,
        param_dtype=jnp.float32,
        name=name,
    )


class RelativePositionHead(nn.Module):
    """(features of patch 1, features of patch 2) [b, D] each -> logits [b, num_positions].

    fc6 is shared by both patches (the siamese part), fc7 sees their concatenation (Doersch et al. 2015,
    Fig. 3); each is Dense-BN-ReLU.
    """

    hidden_dim: int = 512
    num_positions: int = 8
    bn_axis_name: str | None = None
    dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, f1: jax.Array, f2: jax.Array, train: bool) -> jax.Array:
        fc6 = nn.Dense(self.hidden_dim, use_bias=False, dtype=self.dtype, name="fc6")
        bn6 = _bn(train, self.bn_axis_name, self.dtype, "bn6")
        # One call over both patches, so fc6's BN statistics are taken over all 2b patches.
        both = jnp.concatenate([jnp.asarray(f1, self.dtype), jnp.asarray(f2, self.dtype)])
        h = nn.relu(bn6(fc6(both)))
        n = f1.shape[0]
        h = jnp.concatenate([h[:n], h[n:]], axis=-1)
        h = nn.Dense(self.hidden_dim, use_bias=False, dtype=self.dtype, name="fc7")(h)
        h = nn.relu(_bn(train, self.bn_axis_name, self.dtype, "bn7")(h))
        logits = nn.Dense(self.num_positions, dtype=self.dtype, name="fc8")(h)
        return jnp.asarray(logits, jnp.float32)


def _conv(
    cls, features: int, kernel: tuple[int, int], dtype: Any, name: str, **kwargs
) -> nn.Module:
    """A bias-free "SAME" conv (or transposed conv) with fp32 parameters, followed by BN where used."""
    return cls(
        features,
        kernel,
        padding="SAME",
        use_bias=False,
        kernel_init=conv_kernel_init,
        dtype=dtype,
        param_dtype=jnp.float32,
        name=name,
        **kwargs,
    )


class ConvDecoder(nn.Module):
    """Pooled features [b, D] -> an image [b, H, W, channels] (linear output, the normalized pixels).

    A dense layer makes a [s, s, widths[0]] map with s = ceil(max(H, W) / 2^len(widths)); each width
    then doubles the map's side, with BN and ReLU; a 3x3 conv makes the channels, and a final resize
    fixes sizes that are not a multiple of 2^len(widths). Doubling, `upsample`: "transposed"
    (default): the paper's stride-2 4x4 transposed conv; "resize_conv": nearest-neighbour x2, then a
    3x3 conv (Odena et al. 2016: no checkerboard artefacts; faster on XLA's CPU backend, measured in
    benchmarks/results/pretext.md).
    """

    out_shape: tuple[int, int, int]
    widths: Sequence[int] = (64, 32)
    upsample: str = "transposed"
    bn_axis_name: str | None = None
    dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, features: jax.Array, train: bool) -> jax.Array:
        height, width, channels = self.out_shape
        ups = len(self.widths)
        side = -(-max(height, width) // 2**ups)
        x = nn.Dense(
            side * side * self.widths[0], use_bias=False, dtype=self.dtype, name="bottleneck"
        )(jnp.asarray(features, self.dtype))
        x = nn.relu(_bn(train, self.bn_axis_name, self.dtype, "bn_bottleneck")(x))
        x = x.reshape(x.shape[0], side, side, self.widths[0])
        for i, w in enumerate(self.widths):
            if self.upsample == "transposed":
                x = _conv(nn.ConvTranspose, w, (4, 4), self.dtype, f"up{i}", strides=(2, 2))(x)
            elif self.upsample == "resize_conv":
                b, h, w_in, c = x.shape
                x = jnp.broadcast_to(x[:, :, None, :, None], (b, h, 2, w_in, 2, c))
                x = _conv(nn.Conv, w, (3, 3), self.dtype, f"up{i}")(
                    x.reshape(b, 2 * h, 2 * w_in, c)
                )
            else:
                raise ValueError(
                    f"Unknown upsample {self.upsample!r}; valid: resize_conv, transposed."
                )
            x = nn.relu(_bn(train, self.bn_axis_name, self.dtype, f"bn_up{i}")(x))
        x = nn.Conv(channels, (3, 3), padding="SAME", dtype=self.dtype, name="to_pixels")(x)
        x = jnp.asarray(x, jnp.float32)
        if x.shape[1:3] != (height, width):
            x = jax.image.resize(x, (x.shape[0], height, width, channels), "bilinear")
        return x


class ColorizationHead(nn.Module):
    """Backbone feature map [b, h, w, D] -> ab-bin logits [b, out_h, out_w, num_bins]."""

    num_bins: int
    out_size: tuple[int, int]
    width: int = 128
    bn_axis_name: str | None = None
    dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, feature_map: jax.Array, train: bool) -> jax.Array:
        x = jnp.asarray(feature_map, self.dtype)
        for i, size in enumerate((x.shape[1:3], self.out_size)):
            if x.shape[1:3] != tuple(size):
                x = jax.image.resize(x, (x.shape[0], *size, x.shape[-1]), "bilinear")
            x = _conv(nn.Conv, self.width, (3, 3), self.dtype, f"conv{i}")(x)
            x = nn.relu(_bn(train, self.bn_axis_name, self.dtype, f"bn{i}")(x))
        logits = nn.Conv(self.num_bins, (1, 1), dtype=self.dtype, name="logits")(x)
        return jnp.asarray(logits, jnp.float32)


def final_feature_map_name(encoder: nn.Module) -> str:
    """The submodule whose output, after ReLU, is the map the backbone global-average-pools.

    SmallConvNet: its last BatchNorm (the ReLU follows in the body). ResNet: its last residual block
    (already ReLU-ed; a second ReLU is the identity). Other encoders (ViT) have no such map.
    """
    if isinstance(encoder, SmallConvNet):
        return f"bn{len(encoder.widths) - 1}"
    if isinstance(encoder, ResNet):
        return f"layer{len(encoder.stage_sizes)}_{encoder.stage_sizes[-1] - 1}"
    raise ValueError(
        f"{type(encoder).__name__} has no convolutional feature map; per-pixel pretext heads need a "
        "convolutional backbone (model.encoder = small_cnn or resnet*)."
    )


def backbone_feature_map(
    encoder: nn.Module,
    variables: dict[str, Any],
    x: jax.Array,
    *,
    train: bool,
) -> tuple[jax.Array, jax.Array, dict[str, Any]]:
    """Applies `encoder` and returns (pooled features [b, D], last feature map [b, h, w, D], updated
    batch stats ({} when not training)).

    The map is captured with Flax's `capture_intermediates` from the submodule `final_feature_map_name`
    names, so any registered convolutional backbone works unchanged; the pooled features equal the
    spatial mean of the returned map.
    """
    name = final_feature_map_name(encoder)
    mutable = ["intermediates", "batch_stats"] if train else ["intermediates"]
    pooled, state = encoder.apply(
        variables,
        x,
        train=train,
        mutable=mutable,
        capture_intermediates=lambda mdl, method: (
            method == "__call__" and mdl.scope.path == (name,)
        ),
    )
    feature_map = nn.relu(state["intermediates"][name]["__call__"][0])
    return pooled, feature_map, state.get("batch_stats", {})
