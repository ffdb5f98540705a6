"""BERT (Devlin et al. 2019): a bidirectional Transformer encoder trained to recover masked tokens.

Each step corrupts the batch on the device with `augment.bert_mask` (15% of each row's non-special
tokens chosen; of those 80% -> [MASK], 10% -> a random token, 10% kept; padding never chosen), keyed per
example by its global index, and scores `masked_lm_loss` at the chosen positions. BERT's next-sentence
objective is left out, as RoBERTa (Liu et al. 2019) found it does not help.

config.bert: mask_rate (0.15), mask_frac (0.8), random_frac (0.1). Features for kNN / linear /
fine-tuning are the final hidden states averaged over the non-pad tokens (`TextMethod.features`; the
rows carry no [CLS] token, and mean pooling serves GPT and BERT alike). Adds the "masked_accuracy"
protocol: the fraction of the chosen tokens predicted exactly, on the validation split, with a fixed
masking (seed config.seed), the number BERT-style pre-training reports.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from ssl_jax import augment
from ssl_jax.data import tokenizer as tokenizers
from ssl_jax.losses import masked_lm_loss, token_cross_entropy
from ssl_jax.methods import text_common
from ssl_jax.methods.base import LossAux
from ssl_jax.models.transformer import TransformerEncoder


class BERT(text_common.TextMethod):
    """Masked language modelling with a bidirectional encoder."""

    def build_model(self) -> TransformerEncoder:
        return TransformerEncoder(**text_common.model_kwargs(self.config))

    def mask(
        self, rng: jax.Array, tokens: jax.Array, example_ids: jax.Array
    ) -> augment.MaskedTokens:
        cfg = self.config.get("bert", {})
        return augment.bert_mask(
            rng,
            tokens,
            example_ids,
            vocab_size=text_common.vocab_size(self.config),
            mask_id=tokenizers.MASK_ID,
            num_special=tokenizers.NUM_SPECIAL,
            mask_rate=cfg.get("mask_rate", 0.15),
            mask_frac=cfg.get("mask_frac", 0.8),
            random_frac=cfg.get("random_frac", 0.1),
        )

    def loss_fn(self, params, batch_stats, extra, batch, *, rng, step, axis_name):
        del batch_stats, extra, step
        tokens = batch["tokens"]
        inputs, masked = self.mask(jax.random.fold_in(rng, 1), tokens, batch["example_ids"])
        _, logits = self.build_model().apply(
            {"params": params["model"]},
            inputs,
            train=True,
            rngs={"dropout": text_common.dropout_rng(rng, axis_name)},
            method=TransformerEncoder.hidden_and_logits,
        )
        per_example = masked_lm_loss(logits, tokens, masked)
        hits = (jnp.argmax(logits, -1) == tokens) & masked
        metrics = {"masked_accuracy": hits.sum() / jnp.maximum(masked.sum(), 1)}
        return per_example.mean(), LossAux({}, metrics)


def masked_sums(method: BERT, rng: jax.Array, variables, batch) -> jax.Array:
    """Per row: [masked tokens predicted right, masked tokens, sum of their NLL]."""
    tokens = batch["tokens"]
    inputs, masked = method.mask(rng, tokens, batch["example_ids"])
    _, logits = method.build_model().apply(
        variables, inputs, train=False, method=TransformerEncoder.hidden_and_logits
    )
    weights = masked.astype(jnp.float32)
    right = (jnp.argmax(logits, -1) == tokens).astype(jnp.float32)
    nll = token_cross_entropy(logits, tokens)
    return jnp.stack([(right * weights).sum(1), weights.sum(1), (nll * weights).sum(1)], axis=1)
