"""BART (Lewis et al. 2020): corrupt a document, reconstruct it with an encoder-decoder.

Each step noises the batch on the device with `augment.bart_noise` (the paper's best combination,
Sec. 5.1: sentence permutation, then text infilling of config.bart.mask_rate of the tokens in spans of
Poisson(config.bart.poisson_lambda) length, each span replaced by one [MASK]), keyed per example by its
global index. The bidirectional encoder reads the noised row; the causal decoder, fed the original row
shifted right behind a <bos>, predicts the original row, scored by `seq2seq_loss` over its non-pad
tokens. Sentence boundaries come from the tokenizer (the data input "tokenizer";
`augment.sentence_end_table`: tokens ending in ".", "!" or "?", and <sep>); rows are cut from running
text, so their first and last sentences may be fragments.

Features for kNN / linear / fine-tuning: the encoder's final hidden states over the clean row, averaged
over its non-pad tokens (BART's classifier reads the decoder's last token instead; the shared text
fine-tuning protocol pools the encoder, which is what transfers). Adds the "masked_accuracy" protocol:
on the validation split, noised with a fixed key (seed config.seed), the fraction of the tokens removed
by infilling that the decoder predicts exactly (teacher forcing), the number this project reports for
BERT and BART pre-training; beside it the accuracy and perplexity over every target token.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from ssl_jax import augment
from ssl_jax.data import tokenizer as tokenizers
from ssl_jax.losses import seq2seq_loss, token_cross_entropy
from ssl_jax.methods import text_common
from ssl_jax.methods.base import LossAux
from ssl_jax.models.transformer import EncoderDecoder

BART_DEFAULTS = {"mask_rate": 0.3, "poisson_lambda": 3.0, "permute_sentences": True}


def decoder_inputs(targets: jax.Array) -> jax.Array:
    """The decoder's input: the targets shifted right one place behind <bos> (teacher forcing)."""
    bos = jnp.full((targets.shape[0], 1), tokenizers.BOS_ID, targets.dtype)
    return jnp.concatenate([bos, targets[:, :-1]], axis=1)


class BART(text_common.TextMethod):
    """Denoising sequence-to-sequence pre-training; config.bart.{mask_rate, poisson_lambda,
    permute_sentences}; config.model sizes each of the two stacks (num_layers per stack).
    Features pool the encoder's states."""

    representation = "encode"
    model_inputs = 2  # source and target

    def __init__(
        self,
        config: ml_collections.ConfigDict,
        *,
        num_steps: int | None = None,
        steps_per_epoch: int | None = None,
    ):
        super().__init__(config, num_steps=num_steps, steps_per_epoch=steps_per_epoch)
        self.noise_cfg = {**BART_DEFAULTS, **dict(config.get("bart", {}) or {})}
        self._sentence_ends = None

    def build_model(self) -> EncoderDecoder:
        return EncoderDecoder(**text_common.model_kwargs(self.config))

    def init_params(self, rng, seq_len):
        dummy = jnp.zeros((2, seq_len), jnp.int32)
        return self.build_model().init({"params": rng}, dummy, dummy, train=False)["params"]

    def data_inputs(self) -> tuple[str, ...]:
        """Sentence permutation needs the training source's tokenizer (`method_inputs.tokenizer`)."""
        return ("tokenizer",) if self.noise_cfg["permute_sentences"] else ()

    def sentence_ends(self) -> np.ndarray | None:
        """The tokenizer's sentence-ending ids (bool [vocab]), or None without sentence permutation.
        Built once from the data input "tokenizer" (host side)."""
        if not self.noise_cfg["permute_sentences"]:
            return None
        if self._sentence_ends is None:
            tokenizer = self.data_input("tokenizer")
            table = augment.sentence_end_table(tokenizer)
            vocab = text_common.vocab_size(self.config)
            self._sentence_ends = np.pad(table, (0, max(0, vocab - table.shape[0])))[:vocab]
        return self._sentence_ends

    def noise(self, rng: jax.Array, tokens: jax.Array, example_ids: jax.Array):
        cfg = self.noise_cfg
        ends = self.sentence_ends()
        return augment.bart_noise(
            rng,
            tokens,
            example_ids,
            mask_id=tokenizers.MASK_ID,
            pad_id=tokenizers.PAD_ID,
            sentence_ends=None if ends is None else jnp.asarray(ends),
            mask_rate=cfg["mask_rate"],
            poisson_lambda=cfg["poisson_lambda"],
        )

    def loss_fn(self, params, batch_stats, extra, batch, *, rng, step, axis_name):
        del batch_stats, extra, step
        tokens = batch["tokens"]
        noised = self.noise(jax.random.fold_in(rng, 1), tokens, batch["example_ids"])
        logits = self.build_model().apply(
            {"params": params["model"]},
            noised.inputs,
            decoder_inputs(tokens),
            train=True,
            rngs={"dropout": text_common.dropout_rng(rng, axis_name)},
        )
        per_example = seq2seq_loss(logits, tokens, ignore_id=tokenizers.PAD_ID)
        hits = (jnp.argmax(logits, -1) == tokens) & noised.masked
        metrics = {
            "masked_accuracy": hits.sum() / jnp.maximum(noised.masked.sum(), 1),
            "spans_per_row": noised.num_spans.mean().astype(jnp.float32),
        }
        return per_example.mean(), LossAux({}, metrics)


def reconstruction_sums(method: BART, rng: jax.Array, variables, batch) -> jax.Array:
    """Per row: [masked tokens right, masked tokens, target tokens right, target tokens, their NLL]."""
    tokens = batch["tokens"]
    noised = method.noise(rng, tokens, batch["example_ids"])
    logits = method.build_model().apply(
        variables, noised.inputs, decoder_inputs(tokens), train=False
    )
    right = (jnp.argmax(logits, -1) == tokens).astype(jnp.float32)
    masked = noised.masked.astype(jnp.float32)
    counted = (tokens != tokenizers.PAD_ID).astype(jnp.float32)
    nll = token_cross_entropy(logits, tokens)
    return jnp.stack(
        [
            (right * masked).sum(1),
            masked.sum(1),
            (right * counted).sum(1),
            counted.sum(1),
            (nll * counted).sum(1),
        ],
        axis=1,
    )
