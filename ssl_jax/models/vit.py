"""Vision Transformers (Dosovitskiy et al. 2021) as self-supervised backbones: DINO, MoCo v3, MAE.

timm/DINO's layout: a strided-conv patch embedding, a class token, position embeddings, pre-norm blocks
(LayerNorm -> multi-head self-attention -> residual, LayerNorm -> 4x GELU MLP -> residual) and a final
LayerNorm; the features are the class token's output. Attention goes through `jax.nn.dot_product_attention`,
so the backend's fused kernel is used where JAX selects one (or where `attention_implementation` asks for
it). Parameters are float32 whatever `dtype` says. `dtype` (bfloat16 on accelerators) is the type of the
matmuls, the attention and the normalized activations; the residual stream between blocks stays float32, as
under PyTorch's autocast (12 bfloat16 additions would each round to 8 bits), and so do the features.

Learned position embeddings are stored as a [1, gh, gw, D] grid for the patch grid seen at initialization
and resized (bicubic) when an input has another grid, as DINO does for its 96-px local crops.
"""

from __future__ import annotations

import functools
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

# timm/DINO initialise every Linear with trunc_normal_(std=0.02, a=-2, b=2): the bounds are absolute, so
# at this std the truncation never bites and the draw is a plain N(0, 0.02^2).
dense_init = nn.initializers.normal(stddev=0.02)
# PyTorch's default Conv2d init (kaiming_uniform_(a=sqrt(5))), which DINO keeps for the patch embedding.
patch_init = nn.initializers.variance_scaling(1.0 / 3.0, "fan_in", "uniform")


def interpolate_grid(grid: jax.Array, height: int, width: int) -> jax.Array:
    """Position embeddings [1, gh, gw, D] resized to [1, height, width, D] (bicubic, no antialiasing,
    like torch's F.interpolate in DINO's `interpolate_pos_encoding`)."""
    if grid.shape[1:3] == (height, width):
        return grid
    shape = (grid.shape[0], height, width, grid.shape[-1])
    return jax.image.resize(grid, shape, method="bicubic", antialias=False)


def sincos_2d(height: int, width: int, dim: int) -> np.ndarray:
    """Fixed 2-D sine-cosine position embeddings [1, height, width, dim] (MAE / MoCo v3): half the
    channels encode the row, half the column, each as sin/cos at dim/4 frequencies."""
    if dim % 4:
        raise ValueError(f"sin-cos position embeddings need a width divisible by 4, got {dim}.")
    omega = 1.0 / 10000.0 ** (np.arange(dim // 4, dtype=np.float64) / (dim // 4))
    rows, cols = np.meshgrid(np.arange(height), np.arange(width), indexing="ij")

    def encode(pos):
        angles = pos.reshape(-1, 1) * omega[None]
        return np.concatenate([np.sin(angles), np.cos(angles)], axis=1)

    emb = np.concatenate([encode(cols), encode(rows)], axis=1)
    return emb.reshape(1, height, width, dim).astype(np.float32)


class SelfAttention(nn.Module):
    """Multi-head self-attention over [B, N, D] with one fused qkv projection (timm's layout)."""

    num_heads: int
    qkv_bias: bool = True
    dtype: Any = jnp.float32
    implementation: str | None = None

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        batch, tokens, dim = x.shape
        if dim % self.num_heads:
            raise ValueError(f"width {dim} is not divisible by num_heads={self.num_heads}.")
        head_dim = dim // self.num_heads
        dense = functools.partial(
            nn.Dense, dtype=self.dtype, param_dtype=jnp.float32, kernel_init=dense_init
        )
        qkv = dense(3 * dim, use_bias=self.qkv_bias, name="qkv")(x)
        qkv = qkv.reshape(batch, tokens, 3, self.num_heads, head_dim)
        q, k, v = qkv[:, :, 0], qkv[:, :, 1], qkv[:, :, 2]  # [B, N, heads, head_dim]
        # softmax(q k^T / sqrt(head_dim)) v; the XLA path takes the logits and softmax in float32.
        out = jax.nn.dot_product_attention(q, k, v, implementation=self.implementation)
        return dense(dim, name="proj")(out.reshape(batch, tokens, dim))


class DropPath(nn.Module):
    """Stochastic depth: drops a residual branch per example with probability `rate` (training only).

    Needs a "dropout" rng when active. The mask is drawn per device, so a run with rate > 0 is not
    bit-identical across device counts (its distribution is)."""

    rate: float

    @nn.compact
    def __call__(self, x: jax.Array, train: bool) -> jax.Array:
        if not train or self.rate == 0.0:
            return x
        keep = 1.0 - self.rate
        mask = jax.random.bernoulli(
            self.make_rng("dropout"), keep, (x.shape[0],) + (1,) * (x.ndim - 1)
        )
        return jnp.where(mask, x / keep, 0.0).astype(x.dtype)


class TransformerBlock(nn.Module):
    """Pre-norm block: x + attn(LN(x)), then x + MLP(LN(x)) with a GELU MLP of width mlp_ratio * D."""

    num_heads: int
    mlp_ratio: float = 4.0
    qkv_bias: bool = True
    drop_path: float = 0.0
    layer_norm_eps: float = 1e-6
    dtype: Any = jnp.float32
    attention_implementation: str | None = None

    @nn.compact
    def __call__(self, x: jax.Array, train: bool) -> jax.Array:
        dim = x.shape[-1]
        norm = functools.partial(
            nn.LayerNorm, epsilon=self.layer_norm_eps, dtype=self.dtype, param_dtype=jnp.float32
        )
        dense = functools.partial(
            nn.Dense, dtype=self.dtype, param_dtype=jnp.float32, kernel_init=dense_init
        )
        y = SelfAttention(
            self.num_heads,
            qkv_bias=self.qkv_bias,
            dtype=self.dtype,
            implementation=self.attention_implementation,
            name="attn",
        )(norm(name="norm1")(x))
        # x is the float32 residual stream; y, the branch output, is in `dtype`.
        x = x + DropPath(self.drop_path, name="drop_path1")(y, train).astype(x.dtype)
        y = dense(int(dim * self.mlp_ratio), name="fc1")(norm(name="norm2")(x))
        y = dense(dim, name="fc2")(nn.gelu(y, approximate=False))  # torch's nn.GELU is exact
        return x + DropPath(self.drop_path, name="drop_path2")(y, train).astype(x.dtype)


class ViT(nn.Module):
    """A ViT trunk: `__call__(x [B, H, W, C], train) -> [B, hidden_dim]` float32 class-token features.

    patch_size: 16 for 224-px images, 4 (or 7) for 28/32-px ones; a side that is not a multiple is cut to
      one (VALID conv, as PyTorch's). position_embedding: "learned" (DINO, interpolated for new grids) or
      "sincos" (fixed 2-D sin-cos, MAE / MoCo v3). drop_path_rate: stochastic depth, rising linearly over
      the blocks to this value (timm). bn_axis_name: accepted for the encoder contract and unused.
      attention_implementation: passed to `jax.nn.dot_product_attention` (None: JAX's choice; "cudnn").
    """

    hidden_dim: int = 384
    depth: int = 12
    num_heads: int = 6
    patch_size: int = 16
    mlp_ratio: float = 4.0
    qkv_bias: bool = True
    drop_path_rate: float = 0.0
    position_embedding: str = "learned"
    layer_norm_eps: float = 1e-6
    attention_implementation: str | None = None
    dtype: Any = jnp.float32
    bn_axis_name: str | None = None  # ViTs have no BatchNorm

    @property
    def feature_dim(self) -> int:
        return self.hidden_dim

    @nn.compact
    def __call__(
        self,
        x: jax.Array,
        train: bool,
        *,
        keep_indices: jax.Array | None = None,
        return_tokens: bool = False,
    ) -> jax.Array:
        """keep_indices: int [B, n] patch indices to keep (row-major over the grid), for MAE's masking;
        return_tokens: return every output token [B, 1 + n, D] (class token first) instead of [B, D]."""
        if self.position_embedding not in ("learned", "sincos"):
            raise ValueError(
                f"Unknown position_embedding {self.position_embedding!r}; use 'learned' or 'sincos'."
            )
        p = self.patch_size
        x = nn.Conv(
            self.hidden_dim,
            (p, p),
            strides=(p, p),
            padding="VALID",
            kernel_init=patch_init,
            dtype=self.dtype,
            param_dtype=jnp.float32,
            name="patch_embed",
        )(jnp.asarray(x, self.dtype))
        batch, gh, gw, dim = x.shape
        if gh == 0 or gw == 0:
            raise ValueError(f"Input smaller than one {p}x{p} patch.")

        if self.position_embedding == "learned":
            # The grid's shape is fixed at initialization; later inputs may have another grid, so the
            # stored parameter is read as is (self.param would insist on the current shape).
            if self.has_variable("params", "pos_embedding"):
                grid = self.get_variable("params", "pos_embedding")
            else:
                grid = self.param("pos_embedding", nn.initializers.normal(0.02), (1, gh, gw, dim))
            cls_pos = self.param("cls_pos_embedding", nn.initializers.normal(0.02), (1, 1, dim))
            pos = interpolate_grid(grid, gh, gw)
        else:
            pos = jnp.asarray(sincos_2d(gh, gw, dim))
            cls_pos = jnp.zeros((1, 1, dim), jnp.float32)
        x = (x.astype(jnp.float32) + pos).reshape(batch, gh * gw, dim)
        if keep_indices is not None:
            x = jnp.take_along_axis(x, keep_indices[:, :, None], axis=1)

        cls = self.param("cls_token", nn.initializers.normal(0.02), (1, 1, dim))
        cls = jnp.broadcast_to(cls + cls_pos, (batch, 1, dim))
        x = jnp.concatenate([cls, x], axis=1)

        rates = np.linspace(0.0, self.drop_path_rate, self.depth)
        for i in range(self.depth):
            x = TransformerBlock(
                self.num_heads,
                mlp_ratio=self.mlp_ratio,
                qkv_bias=self.qkv_bias,
                drop_path=float(rates[i]),
                layer_norm_eps=self.layer_norm_eps,
                dtype=self.dtype,
                attention_implementation=self.attention_implementation,
                name=f"block{i}",
            )(x, train)
        x = nn.LayerNorm(
            epsilon=self.layer_norm_eps, dtype=jnp.float32, param_dtype=jnp.float32, name="norm"
        )(x)
        return x if return_tokens else x[:, 0]


# Tiny is sized for CPU tests and 28/32-px demos (not DeiT-Ti's 192/12/3); S and B are the standard sizes.
ViTTiny = functools.partial(ViT, hidden_dim=64, depth=2, num_heads=2)
ViTSmall = functools.partial(ViT, hidden_dim=384, depth=12, num_heads=6)
ViTBase = functools.partial(ViT, hidden_dim=768, depth=12, num_heads=12)
