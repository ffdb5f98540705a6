"""GPT (Radford et al. 2018): a causal Transformer decoder trained to predict the next token.

config.model: the decoder (hidden_dim, num_layers, num_heads, mlp_dim, dropout_rate, dtype,
tie_embeddings, attention_implementation); config.data: a text source (ssl_jax.data.text). The loss is
`causal_lm_loss` averaged over the batch's examples; nothing on the input is corrupted.

Features for kNN / linear / fine-tuning are the final hidden states averaged over the non-pad tokens
(`TextMethod.features`): with causal attention no single position sees the whole row, so the mean is
the natural summary. Adds the "perplexity" protocol: exp of the token-weighted mean next-token loss on
the validation split, the number GPT-style pre-training reports.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from ssl_jax.data import tokenizer as tokenizers
from ssl_jax.losses import causal_lm_loss, token_cross_entropy
from ssl_jax.methods import text_common
from ssl_jax.methods.base import LossAux
from ssl_jax.models.transformer import CausalDecoder


class GPT(text_common.TextMethod):
    """Next-token language modelling with a causal decoder."""

    def build_model(self) -> CausalDecoder:
        return CausalDecoder(**text_common.model_kwargs(self.config))

    def loss_fn(self, params, batch_stats, extra, batch, *, rng, step, axis_name):
        del batch_stats, extra, step
        tokens = batch["tokens"]
        hidden, logits = self.build_model().apply(
            {"params": params["model"]},
            tokens,
            train=True,
            rngs={"dropout": text_common.dropout_rng(rng, axis_name)},
            method=CausalDecoder.hidden_and_logits,
        )
        del hidden
        per_example = causal_lm_loss(logits, tokens, ignore_id=tokenizers.PAD_ID)
        targets = tokens[:, 1:]
        counted = targets != tokenizers.PAD_ID
        hits = (jnp.argmax(logits[:, :-1], -1) == targets) & counted
        metrics = {"next_token_accuracy": hits.sum() / jnp.maximum(counted.sum(), 1)}
        return per_example.mean(), LossAux({}, metrics)


def next_token_sums(method: GPT, variables, batch) -> jax.Array:
    """Per row: [sum of next-token NLL, number of predicted tokens, number predicted right]."""
    tokens = batch["tokens"]
    _, logits = method.build_model().apply(
        variables, tokens, train=False, method=CausalDecoder.hidden_and_logits
    )
    targets = tokens[:, 1:]
    counted = (targets != tokenizers.PAD_ID).astype(jnp.float32)
    nll = token_cross_entropy(logits[:, :-1], targets)
    right = (jnp.argmax(logits[:, :-1], -1) == targets).astype(jnp.float32)
    return jnp.stack([(nll * counted).sum(1), counted.sum(1), (right * counted).sum(1)], axis=1)
