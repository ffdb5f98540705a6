"""MAE's light decoder (He et al. 2022, Sec. 3 "MAE decoder"): visible tokens + mask tokens -> pixels.

The encoder's output tokens (class token first, then the kept patches in the order they were kept) are
projected to the decoder's width; one shared, learned mask token stands in for every removed patch; the
full set is put back in grid order (`restore`), given fixed 2-D sin-cos positions, passed through a few
pre-norm Transformer blocks (the ViT's own `TransformerBlock`) and a linear layer predicting each patch's
pixels. The class token rides along (as in the paper's code) and is dropped from the output.
"""

from __future__ import annotations

import functools
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from ssl_jax.models.vit import TransformerBlock, dense_init, sincos_2d


class MAEDecoder(nn.Module):
    """`__call__(tokens [B, 1 + n_keep, D_enc], restore [B, N], train) -> [B, N, patch_dim]` float32.

    grid: (rows, columns) of the patch grid, N = rows * columns. patch_dim: pixels per patch
      (patch_size^2 * channels). restore: int [B, N], for each grid position the index of its token in
      [kept patches..., mask tokens...] (the inverse of the shuffle that chose the kept patches).
    The paper's ImageNet decoder is 8 blocks of width 512 with 16 heads; a smaller one barely changes
    fine-tuning accuracy (Table 1a/b), which is why it can be light.
    """

    grid: tuple[int, int]
    patch_dim: int
    hidden_dim: int = 512
    depth: int = 8
    num_heads: int = 16
    mlp_ratio: float = 4.0
    layer_norm_eps: float = 1e-6
    attention_implementation: str | None = None
    dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, tokens: jax.Array, restore: jax.Array, train: bool) -> jax.Array:
        batch = tokens.shape[0]
        rows, cols = self.grid
        num_patches = rows * cols
        if restore.shape != (batch, num_patches):
            raise ValueError(f"restore must be [{batch}, {num_patches}], got {restore.shape}.")
        dense = functools.partial(
            nn.Dense, dtype=self.dtype, param_dtype=jnp.float32, kernel_init=dense_init
        )
        x = dense(self.hidden_dim, name="embed")(tokens).astype(jnp.float32)
        cls, visible = x[:, :1], x[:, 1:]
        mask_token = self.param("mask_token", nn.initializers.normal(0.02), (1, 1, self.hidden_dim))
        num_masked = num_patches - visible.shape[1]
        mask_tokens = jnp.broadcast_to(mask_token, (batch, num_masked, self.hidden_dim))
        x = jnp.concatenate([visible, mask_tokens], axis=1)
        x = jnp.take_along_axis(x, restore[:, :, None], axis=1)  # back to grid order
        pos = jnp.asarray(sincos_2d(rows, cols, self.hidden_dim)).reshape(1, num_patches, -1)
        x = jnp.concatenate([cls, x + pos], axis=1)  # the class token's position is zero
        for i in range(self.depth):
            x = TransformerBlock(
                self.num_heads,
                mlp_ratio=self.mlp_ratio,
                layer_norm_eps=self.layer_norm_eps,
                dtype=self.dtype,
                attention_implementation=self.attention_implementation,
                name=f"block{i}",
            )(x, train)
        x = nn.LayerNorm(epsilon=self.layer_norm_eps, dtype=self.dtype, name="norm")(x)
        pixels = dense(self.patch_dim, name="pred")(x)
        return pixels[:, 1:].astype(jnp.float32)
