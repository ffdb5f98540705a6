"""ELMo's bidirectional LSTM language model (Peters et al. 2018, Sec. 3.1 and 3.2).

One token embedding feeds two stacks of LSTMs with projection (LSTMP: each layer's cell state of width
`lstm_dim` is projected back to the embedding width `embed_dim`): the forward stack reads the row left to
right, the backward stack right to left (`nn.RNN(reverse=True, seq_lengths=...)`, so it starts at each
row's last real token and padding, which is trailing, never reaches a real position). A residual
connection joins consecutive LSTM layers from the second on (ELMo adds one from the first to the second
layer). One softmax layer, shared by the two directions (Theta_s in eq. "jointly maximizes"), scores the
next token (forward) and the previous token (backward); it is the transposed token embedding when
`tie_embeddings`, else its own matrix, plus a bias. A character CNN (ELMo's token encoder) is not used:
the byte-level BPE already spells any word.

`representation` is the downstream ELMo vector (eq. 1): gamma * sum_j softmax(w)_j h_j over the L + 1
layers, where layer 0 is the token embedding duplicated for both directions and layer j the forward and
backward outputs of LSTM layer j concatenated; w (initialized 0: an average) and gamma (initialized 1)
are parameters that only the downstream task trains.
"""

from __future__ import annotations

from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

embed_init = nn.initializers.normal(stddev=0.02)


class BiLM(nn.Module):
    """`__call__(tokens int [B, L], train) -> (forward_logits, backward_logits)`, each [B, L, V]: position
    t's forward logits predict token t + 1, its backward logits token t - 1.

    `layers(tokens, train)` -> the L + 1 layer outputs [B, L, 2 embed_dim]; `representation` -> their
    learned mix (eq. 1). Pad tokens (`pad_id`, trailing) are skipped by both directions.
    """

    vocab_size: int
    embed_dim: int = 128
    lstm_dim: int = 512
    num_layers: int = 2
    dropout_rate: float = 0.1
    tie_embeddings: bool = True
    pad_id: int = 0
    dtype: Any = jnp.float32

    @property
    def feature_dim(self) -> int:
        """Width of `representation` (both directions concatenated)."""
        return 2 * self.embed_dim

    @property
    def hidden_dim(self) -> int:
        """The width of the features the model exposes (text fine-tuning sizes its head by it)."""
        return self.feature_dim

    def setup(self):
        self.embed = nn.Embed(
            self.vocab_size, self.embed_dim, embedding_init=embed_init, param_dtype=jnp.float32
        )

        def stack(direction: str, reverse: bool):
            cells = [
                nn.RNN(
                    nn.OptimizedLSTMCell(self.lstm_dim, dtype=self.dtype, param_dtype=jnp.float32),
                    reverse=reverse,
                    keep_order=True,
                    name=f"{direction}_lstm{i}",
                )
                for i in range(self.num_layers)
            ]
            projections = [
                nn.Dense(
                    self.embed_dim,
                    use_bias=False,
                    dtype=self.dtype,
                    param_dtype=jnp.float32,
                    name=f"{direction}_proj{i}",
                )
                for i in range(self.num_layers)
            ]
            return cells, projections

        self.forward_lstms, self.forward_projs = stack("forward", False)
        self.backward_lstms, self.backward_projs = stack("backward", True)
        self.dropout = nn.Dropout(self.dropout_rate)
        if not self.tie_embeddings:
            self.softmax_kernel = nn.Dense(
                self.vocab_size,
                use_bias=False,
                dtype=self.dtype,
                param_dtype=jnp.float32,
                kernel_init=embed_init,
            )
        self.softmax_bias = self.param("softmax_bias", nn.initializers.zeros, (self.vocab_size,))
        self.mix_weights = self.param("mix_weights", nn.initializers.zeros, (self.num_layers + 1,))
        self.gamma = self.param("gamma", nn.initializers.ones, ())

    def _directions(self, tokens: jax.Array, train: bool) -> tuple[jax.Array, list, list]:
        """(token embeddings, forward outputs per layer, backward outputs per layer), float32."""
        lengths = jnp.sum(tokens != self.pad_id, axis=-1).astype(jnp.int32)
        x = self.embed(tokens).astype(jnp.float32)
        valid = (tokens != self.pad_id)[..., None]
        outputs = []
        for lstms, projs in (
            (self.forward_lstms, self.forward_projs),
            (self.backward_lstms, self.backward_projs),
        ):
            h, layers = x, []
            for i, (lstm, proj) in enumerate(zip(lstms, projs, strict=True)):
                inputs = self.dropout(h, deterministic=not train)
                y = proj(lstm(inputs, initial_carry=self._zero_carry(inputs), seq_lengths=lengths))
                y = y.astype(jnp.float32)
                h = y + h if i > 0 else y  # residual from the second layer on
                h = jnp.where(valid, h, 0.0)  # padded positions carry nothing
                layers.append(h)
            outputs.append(layers)
        return x, outputs[0], outputs[1]

    def _zero_carry(self, inputs: jax.Array) -> tuple[jax.Array, jax.Array]:
        """The LSTM's zero (cell, hidden) state, made from the inputs so it has their type: under
        shard_map a constant is replicated while the scan's new carry varies per device, and the scan
        requires the two to match."""
        zero = jnp.zeros_like(inputs[:, 0, :1], dtype=jnp.float32)
        zero = jnp.broadcast_to(zero, (inputs.shape[0], self.lstm_dim))
        return zero, zero

    def logits(self, hidden: jax.Array) -> jax.Array:
        """The shared softmax layer: hidden [..., embed_dim] -> logits [..., V]."""
        if self.tie_embeddings:
            table = self.embed.embedding.astype(self.dtype)
            logits = jnp.einsum("...d,vd->...v", hidden.astype(self.dtype), table)
        else:
            logits = self.softmax_kernel(hidden)
        return logits + self.softmax_bias.astype(logits.dtype)

    def __call__(self, tokens: jax.Array, train: bool = False) -> tuple[jax.Array, jax.Array]:
        _, forward, backward = self._directions(tokens, train)
        top_f = self.dropout(forward[-1], deterministic=not train)
        top_b = self.dropout(backward[-1], deterministic=not train)
        return self.logits(top_f), self.logits(top_b)

    def layers(self, tokens: jax.Array, train: bool = False) -> list[jax.Array]:
        """The L + 1 layers ELMo mixes, each [B, L, 2 embed_dim]: [x; x], then [f_j; b_j]."""
        x, forward, backward = self._directions(tokens, train)
        pairs = [(x, x), *zip(forward, backward, strict=True)]
        return [jnp.concatenate(pair, axis=-1) for pair in pairs]

    def representation(self, tokens: jax.Array, train: bool = False) -> jax.Array:
        """ELMo (eq. 1): gamma * sum_j softmax(w)_j h_j, float32 [B, L, 2 embed_dim]."""
        weights = jax.nn.softmax(self.mix_weights)
        stacked = jnp.stack(self.layers(tokens, train), axis=0)
        return self.gamma * jnp.tensordot(weights, stacked, axes=1)
