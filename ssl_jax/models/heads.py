"""Heads that sit on encoder features: MLP projectors / predictors and linear classifiers.

Both take `[batch, features]` and return float32, so losses always see float32 whatever the encoder's dtype.
"""

from __future__ import annotations

from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp


class MLPHead(nn.Module):
    """`num_layers` Dense layers with BN + ReLU between them: SimCLR's projector, BYOL/SimSiam predictors.

    Hidden Dense layers have no bias when BN follows (the BN bias replaces it). last_bn adds a BN after
    the final Dense, without scale and bias unless last_bn_affine (SimSiam's projector ends this way).
    zero_init_last: the final Dense starts at zero, so the head outputs 0 until trained (a residual
    branch that starts as the identity of what it is added to).
    """

    hidden_dim: int
    output_dim: int
    num_layers: int = 2
    use_bn: bool = True
    last_bn: bool = False
    last_bn_affine: bool = False
    zero_init_last: bool = False
    bn_axis_name: str | None = None
    bn_momentum: float = 0.9
    dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, x: jax.Array, train: bool) -> jax.Array:
        if self.num_layers < 1:
            raise ValueError(f"MLPHead needs num_layers >= 1, got {self.num_layers}.")
        x = jnp.asarray(x, self.dtype)
        for i in range(self.num_layers - 1):
            x = nn.Dense(
                self.hidden_dim,
                use_bias=not self.use_bn,
                dtype=self.dtype,
                param_dtype=jnp.float32,
                name=f"dense{i}",
            )(x)
            if self.use_bn:
                x = self._bn(train, affine=True, name=f"bn{i}")(x)
            x = nn.relu(x)
        last = self.num_layers - 1
        x = nn.Dense(
            self.output_dim,
            use_bias=not self.last_bn,
            kernel_init=(
                nn.initializers.zeros if self.zero_init_last else nn.linear.default_kernel_init
            ),
            dtype=self.dtype,
            param_dtype=jnp.float32,
            name=f"dense{last}",
        )(x)
        if self.last_bn:
            x = self._bn(train, affine=self.last_bn_affine, name=f"bn{last}")(x)
        return jnp.asarray(x, jnp.float32)

    def _bn(self, train: bool, affine: bool, name: str) -> nn.BatchNorm:
        return nn.BatchNorm(
            use_running_average=not train,
            momentum=self.bn_momentum,
            epsilon=1e-5,
            axis_name=self.bn_axis_name,
            use_scale=affine,
            use_bias=affine,
            dtype=self.dtype,
            param_dtype=jnp.float32,
            name=name,
        )


class LinearHead(nn.Module):
    """A linear classifier on features; zero-initialised as in BYOL's linear evaluation."""

    num_classes: int
    kernel_init: Any = nn.initializers.zeros
    dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        x = nn.Dense(
            self.num_classes,
            kernel_init=self.kernel_init,
            dtype=self.dtype,
            param_dtype=jnp.float32,
            name="dense",
        )(jnp.asarray(x, self.dtype))
        return jnp.asarray(x, jnp.float32)
