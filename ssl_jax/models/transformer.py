"""Transformers over token ids: a bidirectional encoder (BERT), a causal decoder (GPT) and an
encoder-decoder (BART), built from one pre-LN block.

Layout (GPT-2 / pre-LN, Xiong et al. 2020): token + learned position embeddings -> dropout -> blocks of
x + Drop(Attn(LN(x))) [+ x + Drop(CrossAttn(LN(x), memory))] + x + Drop(MLP(LN(x))) -> final LN. The
language-model head is the transposed token embedding (tied, as in BERT, GPT-2 and BART) or its own
matrix, plus a bias. Initialisation: N(0, 0.02) for every matrix and embedding (BERT / GPT-2).

Attention goes through `jax.nn.dot_product_attention` with `is_causal` and `key_value_seq_lengths` for
padding, the two mask forms cuDNN's fused kernel takes (`attention_implementation="cudnn"` on GPU); the
XLA path computes the softmax in float32. Padding must therefore be trailing: a row's keys are its first
`length` tokens, length = the number of tokens that are not `pad_id` (TextSource rows and the noising
functions keep padding at the end).

Precision: parameters float32; `dtype` (bfloat16 on accelerators) for the matmuls, the attention and the
normalised activations; the residual stream and the returned hidden states float32 (as ViT's blocks).
Dropout needs a "dropout" rng when `train` and `dropout_rate` > 0.
"""

from __future__ import annotations

import functools
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

embed_init = nn.initializers.normal(stddev=0.02)


def key_lengths(tokens: jax.Array, pad_id: int) -> jax.Array:
    """int32 [B]: the number of non-pad tokens of each row (its length, padding being trailing)."""
    return jnp.sum(tokens != pad_id, axis=-1).astype(jnp.int32)


def mean_pool(hidden: jax.Array, tokens: jax.Array, pad_id: int) -> jax.Array:
    """float32 [B, D]: the mean of hidden [B, L, D] over each row's non-pad positions."""
    valid = (tokens != pad_id).astype(jnp.float32)[..., None]
    total = jnp.sum(hidden.astype(jnp.float32) * valid, axis=1)
    return total / jnp.maximum(jnp.sum(valid, axis=1), 1.0)


class Attention(nn.Module):
    """Multi-head attention of queries x [B, T, D] over `context` [B, S, D] (x itself when None)."""

    num_heads: int
    dtype: Any = jnp.float32
    implementation: str | None = None

    @nn.compact
    def __call__(
        self,
        x: jax.Array,
        context: jax.Array | None = None,
        *,
        kv_lengths: jax.Array | None = None,
        causal: bool = False,
    ) -> jax.Array:
        context = x if context is None else context
        dim = x.shape[-1]
        if dim % self.num_heads:
            raise ValueError(f"width {dim} is not divisible by num_heads={self.num_heads}.")
        head_dim = dim // self.num_heads
        dense = functools.partial(
            nn.DenseGeneral,
            features=(self.num_heads, head_dim),
            dtype=self.dtype,
            param_dtype=jnp.float32,
            kernel_init=embed_init,
        )
        q = dense(name="query")(x)  # [B, T, heads, head_dim]
        k = dense(name="key")(context)
        v = dense(name="value")(context)
        out = jax.nn.dot_product_attention(
            q,
            k,
            v,
            is_causal=causal,
            key_value_seq_lengths=kv_lengths,
            implementation=self.implementation,
        )
        return nn.DenseGeneral(
            dim,
            axis=(-2, -1),
            dtype=self.dtype,
            param_dtype=jnp.float32,
            kernel_init=embed_init,
            name="out",
        )(out)


class Block(nn.Module):
    """One pre-LN block: self-attention (causal or not), optional cross-attention, GELU MLP."""

    num_heads: int
    mlp_dim: int
    dropout_rate: float = 0.0
    causal: bool = False
    cross_attention: bool = False
    layer_norm_eps: float = 1e-5
    dtype: Any = jnp.float32
    attention_implementation: str | None = None

    @nn.compact
    def __call__(
        self,
        x: jax.Array,
        lengths: jax.Array | None,
        train: bool,
        memory: jax.Array | None = None,
        memory_lengths: jax.Array | None = None,
    ) -> jax.Array:
        norm = functools.partial(
            nn.LayerNorm, epsilon=self.layer_norm_eps, dtype=self.dtype, param_dtype=jnp.float32
        )
        drop = nn.Dropout(self.dropout_rate, deterministic=not train)
        attn = functools.partial(
            Attention,
            self.num_heads,
            dtype=self.dtype,
            implementation=self.attention_implementation,
        )
        # The float32 residual stream x gets each branch's output (in `dtype`) added back.
        y = attn(name="self_attn")(norm(name="norm1")(x), kv_lengths=lengths, causal=self.causal)
        x = x + drop(y).astype(x.dtype)
        if self.cross_attention:
            y = attn(name="cross_attn")(
                norm(name="norm_cross")(x), memory, kv_lengths=memory_lengths
            )
            x = x + drop(y).astype(x.dtype)
        dense = functools.partial(
            nn.Dense, dtype=self.dtype, param_dtype=jnp.float32, kernel_init=embed_init
        )
        y = dense(self.mlp_dim, name="fc1")(norm(name="norm2")(x))
        y = dense(x.shape[-1], name="fc2")(nn.gelu(y, approximate=False))
        return x + drop(y).astype(x.dtype)


class Embedding(nn.Module):
    """Token + learned position embeddings [B, L] -> float32 [B, L, D], and the tied LM head."""

    vocab_size: int
    hidden_dim: int
    max_len: int
    dtype: Any = jnp.float32

    def setup(self):
        self.tokens = nn.Embed(
            self.vocab_size, self.hidden_dim, embedding_init=embed_init, param_dtype=jnp.float32
        )
        self.positions = self.param("positions", embed_init, (self.max_len, self.hidden_dim))

    def __call__(self, tokens: jax.Array) -> jax.Array:
        length = tokens.shape[-1]
        if length > self.max_len:
            raise ValueError(f"sequence of {length} tokens is longer than max_len={self.max_len}.")
        return self.tokens(tokens).astype(jnp.float32) + self.positions[:length]

    def attend(self, hidden: jax.Array) -> jax.Array:
        """hidden [..., D] @ token_embedding^T -> [..., vocab] in `dtype`."""
        table = self.tokens.embedding.astype(self.dtype)
        return jnp.einsum("...d,vd->...v", hidden.astype(self.dtype), table)


class LMHead(nn.Module):
    """Logits over the vocabulary: the tied embedding (when given) or an own matrix, plus a bias."""

    vocab_size: int
    dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, hidden: jax.Array, embedding: Embedding | None) -> jax.Array:
        if embedding is not None:
            logits = embedding.attend(hidden)
        else:
            logits = nn.Dense(
                self.vocab_size,
                use_bias=False,
                dtype=self.dtype,
                param_dtype=jnp.float32,
                kernel_init=embed_init,
                name="kernel",
            )(hidden)
        bias = self.param("bias", nn.initializers.zeros, (self.vocab_size,))
        return logits + bias.astype(logits.dtype)


class TransformerEncoder(nn.Module):
    """`__call__(tokens int [B, L], train) -> hidden float32 [B, L, D]`; `logits(hidden)` -> [B, L, V].

    Bidirectional (BERT) unless `causal` (see `CausalDecoder`). Pad tokens (trailing) are never
    attended to. `max_len` is the longest sequence the position table holds.
    """

    vocab_size: int
    hidden_dim: int = 256
    num_layers: int = 4
    num_heads: int = 4
    mlp_dim: int = 1024
    max_len: int = 512
    dropout_rate: float = 0.1
    causal: bool = False
    tie_embeddings: bool = True
    pad_id: int = 0
    layer_norm_eps: float = 1e-5
    dtype: Any = jnp.float32
    attention_implementation: str | None = None

    def setup(self):
        self.embed = Embedding(self.vocab_size, self.hidden_dim, self.max_len, dtype=self.dtype)
        self.embed_dropout = nn.Dropout(self.dropout_rate)
        self.blocks = [
            Block(
                self.num_heads,
                self.mlp_dim,
                dropout_rate=self.dropout_rate,
                causal=self.causal,
                layer_norm_eps=self.layer_norm_eps,
                dtype=self.dtype,
                attention_implementation=self.attention_implementation,
                name=f"block{i}",
            )
            for i in range(self.num_layers)
        ]
        self.norm = nn.LayerNorm(
            epsilon=self.layer_norm_eps, dtype=jnp.float32, param_dtype=jnp.float32
        )
        self.lm_head = LMHead(self.vocab_size, dtype=self.dtype)

    @property
    def feature_dim(self) -> int:
        return self.hidden_dim

    def __call__(self, tokens: jax.Array, train: bool = False) -> jax.Array:
        lengths = key_lengths(tokens, self.pad_id)
        x = self.embed_dropout(self.embed(tokens), deterministic=not train)
        for block in self.blocks:
            x = block(x, lengths, train)
        x = self.norm(x)
        if self.is_initializing():  # so `init` also creates the LM head's parameters
            self.logits(x)
        return x

    def logits(self, hidden: jax.Array) -> jax.Array:
        return self.lm_head(hidden, self.embed if self.tie_embeddings else None)

    def hidden_and_logits(
        self, tokens: jax.Array, train: bool = False
    ) -> tuple[jax.Array, jax.Array]:
        hidden = self(tokens, train)
        return hidden, self.logits(hidden)


class CausalDecoder(TransformerEncoder):
    """A GPT decoder: the same stack with causal self-attention (position t sees tokens <= t)."""

    causal: bool = True


class EncoderDecoder(nn.Module):
    """BART-style: a bidirectional encoder over the source, a causal decoder with cross-attention over
    the encoder's output, one token embedding shared by both and by the (tied) LM head.

    `__call__(source [B, S], target_in [B, T], train) -> logits [B, T, V]`; `encode(source, train) ->
    memory [B, S, D]` and `decode(target_in, memory, source_lengths, train) -> logits` separately.
    Each stack has its own position table and final LayerNorm.
    """

    vocab_size: int
    hidden_dim: int = 256
    num_layers: int = 3  # per stack
    num_decoder_layers: int | None = None  # default: num_layers
    num_heads: int = 4
    mlp_dim: int = 1024
    max_len: int = 512
    dropout_rate: float = 0.1
    tie_embeddings: bool = True
    pad_id: int = 0
    layer_norm_eps: float = 1e-5
    dtype: Any = jnp.float32
    attention_implementation: str | None = None

    def setup(self):
        self.token_embed = nn.Embed(
            self.vocab_size, self.hidden_dim, embedding_init=embed_init, param_dtype=jnp.float32
        )
        self.encoder_positions = self.param(
            "encoder_positions", embed_init, (self.max_len, self.hidden_dim)
        )
        self.decoder_positions = self.param(
            "decoder_positions", embed_init, (self.max_len, self.hidden_dim)
        )
        self.dropout = nn.Dropout(self.dropout_rate)
        block = functools.partial(
            Block,
            self.num_heads,
            self.mlp_dim,
            dropout_rate=self.dropout_rate,
            layer_norm_eps=self.layer_norm_eps,
            dtype=self.dtype,
            attention_implementation=self.attention_implementation,
        )
        self.encoder_blocks = [block(name=f"encoder{i}") for i in range(self.num_layers)]
        num_dec = self.num_decoder_layers or self.num_layers
        self.decoder_blocks = [
            block(causal=True, cross_attention=True, name=f"decoder{i}") for i in range(num_dec)
        ]
        ln = functools.partial(
            nn.LayerNorm, epsilon=self.layer_norm_eps, dtype=jnp.float32, param_dtype=jnp.float32
        )
        self.encoder_norm = ln()
        self.decoder_norm = ln()
        if not self.tie_embeddings:
            self.lm_kernel = nn.Dense(
                self.vocab_size,
                use_bias=False,
                dtype=self.dtype,
                param_dtype=jnp.float32,
                kernel_init=embed_init,
            )
        self.lm_bias = self.param("lm_bias", nn.initializers.zeros, (self.vocab_size,))

    @property
    def feature_dim(self) -> int:
        return self.hidden_dim

    def _embed(self, tokens: jax.Array, positions: jax.Array, train: bool) -> jax.Array:
        if tokens.shape[-1] > self.max_len:
            raise ValueError(
                f"sequence of {tokens.shape[-1]} tokens is longer than {self.max_len}."
            )
        x = self.token_embed(tokens).astype(jnp.float32) + positions[: tokens.shape[-1]]
        return self.dropout(x, deterministic=not train)

    def encode(self, source: jax.Array, train: bool = False) -> jax.Array:
        lengths = key_lengths(source, self.pad_id)
        x = self._embed(source, self.encoder_positions, train)
        for block in self.encoder_blocks:
            x = block(x, lengths, train)
        return self.encoder_norm(x)

    def decode(
        self,
        target_in: jax.Array,
        memory: jax.Array,
        source_lengths: jax.Array,
        train: bool = False,
    ) -> jax.Array:
        lengths = key_lengths(target_in, self.pad_id)
        x = self._embed(target_in, self.decoder_positions, train)
        for block in self.decoder_blocks:
            x = block(x, lengths, train, memory=memory, memory_lengths=source_lengths)
        x = self.decoder_norm(x)
        if self.tie_embeddings:
            table = self.token_embed.embedding.astype(self.dtype)
            logits = jnp.einsum("...d,vd->...v", x.astype(self.dtype), table)
        else:
            logits = self.lm_kernel(x)
        return logits + self.lm_bias.astype(logits.dtype)

    def __call__(self, source: jax.Array, target_in: jax.Array, train: bool = False) -> jax.Array:
        memory = self.encode(source, train)
        return self.decode(target_in, memory, key_lengths(source, self.pad_id), train)
