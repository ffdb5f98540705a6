"""ELMo (Peters et al. 2018): forward and backward LSTM language models sharing the token embedding and
the softmax, trained jointly.

The loss (Sec. 3.1, "jointly maximizes the log likelihood of the forward and backward directions") is,
per example, the forward LM's mean next-token NLL plus the backward LM's mean previous-token NLL, each
over the row's non-pad targets: `causal_lm_loss` on the forward logits, and on the backward logits and
tokens reversed within each row's length (so the backward LM's "next" token is the previous one).

Features for kNN / linear / fine-tuning: the ELMo representation (`BiLM.representation`, eq. 1: a
softmax-weighted mix of the L + 1 layers scaled by gamma; the weights and gamma train with the
downstream task) averaged over the row's non-pad tokens. Adds the "perplexity" protocol on the
validation split: exp of the forward and of the backward mean NLL, and exp of their average (the
geometric mean of the two perplexities, which is what this project reports for ELMo).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from ssl_jax.data import tokenizer as tokenizers
from ssl_jax.losses import causal_lm_loss, token_cross_entropy
from ssl_jax.methods import text_common
from ssl_jax.methods.base import LossAux
from ssl_jax.models.lstm import BiLM


def reverse_within_length(x: jax.Array, lengths: jax.Array) -> jax.Array:
    """Reverses each row's first `length` entries along axis 1 and leaves the rest in place: x [B, L, ...],
    lengths int [B]. Trailing padding stays trailing."""
    size = x.shape[1]
    pos = jnp.arange(size)[None, :]
    source = jnp.where(pos < lengths[:, None], lengths[:, None] - 1 - pos, pos)
    return jnp.take_along_axis(x, source.reshape(source.shape + (1,) * (x.ndim - 2)), axis=1)


def bidirectional_lm_losses(
    forward_logits: jax.Array, backward_logits: jax.Array, tokens: jax.Array, *, pad_id: int
) -> tuple[jax.Array, jax.Array]:
    """(forward, backward) per-example mean NLL, float32 [B] each: forward position t predicts token
    t + 1, backward position t predicts token t - 1; pad tokens are neither inputs nor targets."""
    lengths = jnp.sum(tokens != pad_id, axis=-1).astype(jnp.int32)
    forward = causal_lm_loss(forward_logits, tokens, ignore_id=pad_id)
    backward = causal_lm_loss(
        reverse_within_length(backward_logits, lengths),
        reverse_within_length(tokens, lengths),
        ignore_id=pad_id,
    )
    return forward, backward


class ELMo(text_common.TextMethod):
    """Bidirectional LSTM LM; config.model: embed_dim, lstm_dim, num_layers, dropout_rate,
    tie_embeddings, dtype. Features pool ELMo's learned mix of the layers (eq. 1)."""

    representation = "representation"

    def build_model(self) -> BiLM:
        m = self.config.model
        return BiLM(
            vocab_size=text_common.vocab_size(self.config),
            embed_dim=m.embed_dim,
            lstm_dim=m.lstm_dim,
            num_layers=m.num_layers,
            dropout_rate=m.get("dropout_rate", 0.1),
            tie_embeddings=m.get("tie_embeddings", True),
            pad_id=tokenizers.PAD_ID,
            dtype=jnp.dtype(m.get("dtype", "float32")),
        )

    def loss_fn(self, params, batch_stats, extra, batch, *, rng, step, axis_name):
        del batch_stats, extra, step
        tokens = batch["tokens"]
        forward_logits, backward_logits = self.build_model().apply(
            {"params": params["model"]},
            tokens,
            train=True,
            rngs={"dropout": text_common.dropout_rng(rng, axis_name)},
        )
        forward, backward = bidirectional_lm_losses(
            forward_logits, backward_logits, tokens, pad_id=tokenizers.PAD_ID
        )
        metrics = {"forward_nll": forward.mean(), "backward_nll": backward.mean()}
        return (forward + backward).mean(), LossAux({}, metrics)


def direction_sums(method: ELMo, variables, batch) -> jax.Array:
    """Per row: [forward NLL sum, forward targets, backward NLL sum, backward targets]."""
    tokens = batch["tokens"]
    pad = tokenizers.PAD_ID
    forward_logits, backward_logits = method.build_model().apply(variables, tokens, train=False)
    forward_targets = (tokens[:, 1:] != pad).astype(jnp.float32)
    backward_targets = (tokens[:, 1:] != pad).astype(jnp.float32)  # position t >= 1 predicts t - 1
    forward = token_cross_entropy(forward_logits[:, :-1], tokens[:, 1:]) * forward_targets
    backward = token_cross_entropy(backward_logits[:, 1:], tokens[:, :-1]) * backward_targets
    return jnp.stack(
        [forward.sum(1), forward_targets.sum(1), backward.sum(1), backward_targets.sum(1)], axis=1
    )
