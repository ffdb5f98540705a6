"""CLIP's text tower: a causal Transformer over caption tokens read out at the eos token.

Radford et al. 2021, Sec. 2.4: a GPT-style Transformer with masked (causal) self-attention; "the
activations of the highest layer of the transformer at the [EOS] token are treated as the feature
representation of the text", after the final LayerNorm. Captions carry trailing padding only
(`ssl_jax.data.captions.tokenize`), so the eos is the last non-pad token, and under the causal mask its
output never sees the padding. The stack is `ssl_jax.models.transformer.CausalDecoder` (its LM head is
never called, so it has no parameters here).
"""

from __future__ import annotations

from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from ssl_jax.models.transformer import CausalDecoder, key_lengths


def eos_features(hidden: jax.Array, tokens: jax.Array, pad_id: int) -> jax.Array:
    """hidden [B, L, D] at each row's last non-pad position -> [B, D] (position 0 for an empty row)."""
    last = jnp.maximum(key_lengths(tokens, pad_id) - 1, 0)
    return jnp.take_along_axis(hidden, last[:, None, None], axis=1)[:, 0]


class TextTransformer(nn.Module):
    """`__call__(tokens int [B, L], train) -> [B, width]` float32 eos features."""

    vocab_size: int
    max_len: int
    width: int = 512
    depth: int = 12
    num_heads: int = 8
    mlp_ratio: float = 4.0
    pad_id: int = 0
    dtype: Any = jnp.float32
    attention_implementation: str | None = None

    @property
    def feature_dim(self) -> int:
        return self.width

    @nn.compact
    def __call__(self, tokens: jax.Array, train: bool = False) -> jax.Array:
        if not jnp.issubdtype(tokens.dtype, jnp.integer):
            raise TypeError(f"tokens must be integer ids, got {tokens.dtype}.")
        hidden = CausalDecoder(
            vocab_size=self.vocab_size,
            hidden_dim=self.width,
            num_layers=self.depth,
            num_heads=self.num_heads,
            mlp_dim=int(self.width * self.mlp_ratio),
            max_len=self.max_len,
            dropout_rate=0.0,  # CLIP trains without dropout
            pad_id=self.pad_id,
            dtype=self.dtype,
            attention_implementation=self.attention_implementation,
            name="transformer",
        )(tokens, train)
        return eos_features(hidden, tokens, self.pad_id)
