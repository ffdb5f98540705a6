"""Jittable, per-example-random text corruptions run on the accelerator inside the train step.

Like the image augmentations, example i draws from `fold_in(rng, example_ids[i])`, so its corruption
depends only on the step's key and its global index, not on the device count or its place in a batch.
Special ids (padding included) are never corrupted: the tokenizers put every special id below
`num_special` (ssl_jax.data.tokenizer).
"""

from __future__ import annotations

import math
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np


class MaskedTokens(NamedTuple):
    """inputs: the corrupted tokens [B, L]; masked: bool [B, L], the positions to predict."""

    inputs: jax.Array
    masked: jax.Array


def _example_keys(rng: jax.Array, example_ids: jax.Array, batch: int) -> jax.Array:
    if example_ids.shape != (batch,) or not jnp.issubdtype(example_ids.dtype, jnp.integer):
        raise ValueError(f"example_ids must be int [{batch}], got {example_ids.shape}.")
    return jax.vmap(jax.random.fold_in, in_axes=(None, 0))(rng, example_ids)


def _bert_mask_one(
    key, tokens, *, vocab_size, mask_id, num_special, mask_rate, mask_frac, random_frac
):
    select_key, action_key, random_key = jax.random.split(key, 3)
    eligible = tokens >= num_special
    n_eligible = jnp.sum(eligible)
    # Exactly round(rate * n) positions (at least one), chosen uniformly among the eligible ones, as
    # BERT's create_pretraining_data does: rank random scores, with ineligible positions ranked last.
    n_predict = jnp.where(
        n_eligible > 0,
        jnp.maximum(1, jnp.round(mask_rate * n_eligible).astype(jnp.int32)),
        0,
    )
    scores = jnp.where(eligible, jax.random.uniform(select_key, tokens.shape), 2.0)
    rank = jnp.argsort(jnp.argsort(scores))
    masked = (rank < n_predict) & eligible
    # Of the chosen: mask_frac -> [MASK], random_frac -> a random non-special token, the rest kept.
    u = jax.random.uniform(action_key, tokens.shape)
    random_tokens = jax.random.randint(random_key, tokens.shape, num_special, vocab_size)
    corrupted = jnp.where(
        u < mask_frac, mask_id, jnp.where(u < mask_frac + random_frac, random_tokens, tokens)
    )
    return jnp.where(masked, corrupted, tokens).astype(tokens.dtype), masked


def bert_mask(
    rng: jax.Array,
    tokens: jax.Array,
    example_ids: jax.Array,
    *,
    vocab_size: int,
    mask_id: int,
    num_special: int,
    mask_rate: float = 0.15,
    mask_frac: float = 0.8,
    random_frac: float = 0.1,
) -> MaskedTokens:
    """BERT's masked-LM corruption (Devlin et al. 2019, Sec. 3.1) of tokens int [B, L].

    In each example, round(mask_rate * n) of its n non-special tokens (at least one when n > 0) are
    chosen for prediction; each chosen token becomes `mask_id` with probability mask_frac (0.8), a
    uniformly random non-special token with probability random_frac (0.1), and stays itself otherwise.
    Special tokens and padding are never chosen nor changed. Returns MaskedTokens(inputs, masked).
    """
    tokens = jnp.asarray(tokens)
    if tokens.ndim != 2 or not jnp.issubdtype(tokens.dtype, jnp.integer):
        raise ValueError(f"tokens must be int [batch, length], got {tokens.dtype} {tokens.shape}.")
    if (
        not 0.0 <= mask_rate <= 1.0
        or mask_frac < 0
        or random_frac < 0
        or mask_frac + random_frac > 1
    ):
        raise ValueError(
            f"need 0 <= mask_rate <= 1 and mask_frac + random_frac <= 1; got {mask_rate}, "
            f"{mask_frac}, {random_frac}."
        )
    keys = _example_keys(rng, jnp.asarray(example_ids), tokens.shape[0])
    inputs, masked = jax.vmap(
        lambda k, t: _bert_mask_one(
            k,
            t,
            vocab_size=vocab_size,
            mask_id=mask_id,
            num_special=num_special,
            mask_rate=mask_rate,
            mask_frac=mask_frac,
            random_frac=random_frac,
        )
    )(keys, tokens)
    return MaskedTokens(inputs, masked)


# ------------------------------------------------------------------- BART (Lewis et al. 2020, Sec. 2.2)


class NoisedTokens(NamedTuple):
    """inputs: the noised source [B, L] (trailing padding); masked: bool [B, L] over the *original*
    tokens, True where an infilled span removed the token (the positions BART's masked-token accuracy
    scores); num_spans: int32 [B], the [MASK] tokens inserted (0-length spans included)."""

    inputs: jax.Array
    masked: jax.Array
    num_spans: jax.Array


def sentence_end_table(tokenizer, *, closers: str = "\"')]") -> np.ndarray:
    """bool [vocab_size]: the ids that end a sentence, for `permute_sentences`.

    A token ends a sentence when its text, with trailing whitespace and closing quotes/brackets
    (`closers`) stripped, ends in ".", "!" or "?" (BART splits documents at full stops); the
    tokenizer's `sep_id` does too. Needs `tokenizer.decode` (and `token_bytes` where it has it).
    Runs on the host once; "Mr." counts as an end, as a full-stop splitter's would.
    """
    table = np.zeros(tokenizer.vocab_size, bool)
    for i in range(tokenizer.num_special, tokenizer.vocab_size):
        if hasattr(tokenizer, "token_bytes"):
            text = tokenizer.token_bytes(i).decode("utf-8", errors="ignore")
        else:
            text = tokenizer.decode([i])
        table[i] = text.rstrip().rstrip(closers).endswith((".", "!", "?"))
    table[tokenizer.sep_id] = True
    return table


def _lengths(tokens: jax.Array, pad_id: int) -> jax.Array:
    return jnp.sum(tokens != pad_id, axis=-1).astype(jnp.int32)


def _permute_one(key, tokens, length, sentence_ends):
    """One row's sentences in a uniformly random order; returns (tokens, new position of each token)."""
    size = tokens.shape[0]
    pos = jnp.arange(size)
    valid = pos < length
    # A sentence ends at a sentence-ending token and at the row's last real token (rows are cut from
    # documents, so the first and last sentences may be fragments).
    ends = (sentence_ends[tokens] | (pos == length - 1)) & valid
    sentence = jnp.cumsum(ends) - ends  # id of each token's sentence: ends strictly before it
    num_sentences = jnp.sum(ends)
    sizes = jax.ops.segment_sum(valid.astype(jnp.int32), sentence, num_segments=size)
    old_start = jnp.cumsum(sizes) - sizes
    order = jnp.argsort(jnp.where(pos < num_sentences, jax.random.uniform(key, (size,)), 2.0))
    placed = sizes[order]  # the sentences' sizes in their new order
    new_start = jnp.zeros(size, jnp.int32).at[order].set(jnp.cumsum(placed) - placed)
    new_pos = jnp.where(valid, new_start[sentence] + pos - old_start[sentence], pos)
    return jnp.zeros_like(tokens).at[new_pos].set(tokens), new_pos


def poisson_cdf(poisson_lambda: float, *, tail: float = 1e-12) -> np.ndarray:
    """P(X <= k) for k = 0..K of X ~ Poisson(lambda), K the first k whose upper tail is below `tail`
    (float64, host side)."""
    log_pmf, cdf, k = -poisson_lambda, [], 0
    while True:
        cdf.append((cdf[-1] if cdf else 0.0) + math.exp(log_pmf))
        if 1.0 - cdf[-1] < tail or k > 10_000:
            return np.asarray(cdf)
        k += 1
        log_pmf += math.log(poisson_lambda) - math.log(k)


def _span_lengths(key, num_to_mask, max_spans, poisson_lambda):
    """Span lengths ~ Poisson(lambda), drawn until they cover num_to_mask tokens, the last one cut so
    they cover it exactly (fairseq's DenoisingDataset does the same); unused slots are 0 and inactive.

    Drawn by inverting the CDF at uniforms (`jax.random.poisson`'s rejection loop does not trace under
    shard_map with per-device keys); lengths past the 1e-12 tail are clipped there."""
    cdf = jnp.asarray(poisson_cdf(poisson_lambda), jnp.float32)
    u = jax.random.uniform(key, (max_spans,))
    lengths = jnp.searchsorted(cdf, u, side="right").astype(jnp.int32)
    before = jnp.cumsum(lengths) - lengths
    active = before < num_to_mask
    return jnp.where(active, jnp.minimum(lengths, num_to_mask - before), 0), active


def _infill_one(key, tokens, length, *, mask_id, pad_id, mask_rate, poisson_lambda, max_spans):
    """Text infilling of one row: returns (source, masked positions of `tokens`, number of spans)."""
    size = tokens.shape[0]
    span_key, place_key = jax.random.split(key)
    num_to_mask = jnp.round(mask_rate * length).astype(jnp.int32)
    lengths, active = _span_lengths(span_key, num_to_mask, max_spans, poisson_lambda)
    num_spans = jnp.sum(active)
    kept = length - jnp.sum(lengths)
    # The source is a uniformly random interleaving of the kept tokens (in order) and the spans: pick
    # which of its kept + num_spans slots hold a span; each span slot emits one [MASK] and swallows its
    # length of original tokens (none for a 0-length span: a pure insertion).
    capacity = size + max_spans
    slot = jnp.arange(capacity)
    used = slot < kept + num_spans
    scores = jnp.where(used, jax.random.uniform(place_key, (capacity,)), 2.0)
    is_span = jnp.argsort(jnp.argsort(scores)) < num_spans
    span_index = jnp.clip(jnp.cumsum(is_span) - is_span, 0, max_spans - 1)
    swallowed = jnp.where(is_span, lengths[span_index], used.astype(jnp.int32))
    start = jnp.cumsum(swallowed) - swallowed  # the original position each slot starts at
    source = jnp.where(is_span, mask_id, tokens[jnp.clip(start, 0, size - 1)])
    # A source longer than the row (many 0-length spans) keeps its first `size` tokens.
    source = jnp.where(used, source, pad_id)[:size].astype(tokens.dtype)
    # Original positions inside a span: +1 at its start, -1 past its end, then a running sum.
    spans = is_span & (swallowed > 0)
    marks = jnp.zeros(size + 1, jnp.int32)
    marks = marks.at[jnp.where(spans, start, size)].add(1)
    marks = marks.at[jnp.where(spans, start + swallowed, size)].add(-1)
    masked = jnp.cumsum(marks)[:size] > 0
    return source, masked, num_spans.astype(jnp.int32)


def bart_noise(
    rng: jax.Array,
    tokens: jax.Array,
    example_ids: jax.Array,
    *,
    mask_id: int,
    pad_id: int = 0,
    sentence_ends: jax.Array | None = None,
    mask_rate: float = 0.3,
    poisson_lambda: float = 3.0,
    max_spans: int | None = None,
) -> NoisedTokens:
    """BART's document corruption (Lewis et al. 2020, Sec. 2.2; the paper's best setting, Sec. 5.1, is
    sentence permutation + text infilling) of tokens int [B, L] with trailing padding.

    1. Sentence permutation (when `sentence_ends`, a bool [vocab] table such as `sentence_end_table`,
       is given): each row is split after every sentence-ending token and its sentences are shuffled
       uniformly at random.
    2. Text infilling: round(mask_rate * n) of the row's n tokens are removed in spans whose lengths
       are drawn from Poisson(poisson_lambda) (the last one cut to hit the count exactly); each span,
       whatever its length, becomes a single `mask_id`, and a 0-length span inserts a `mask_id`
       between two tokens. Spans never overlap and are placed uniformly at random among the kept
       tokens (fairseq instead draws span starts independently and lets them overlap, so its masked
       fraction falls below the target). At most `max_spans` spans (default L) per row.
    Padding is never permuted, masked, nor counted; the noised row keeps its padding trailing (a
    source that grew past L through 0-length insertions is cut to L). Example i draws from
    fold_in(rng, example_ids[i]). The reconstruction target is the original `tokens`.
    """
    tokens = jnp.asarray(tokens)
    if tokens.ndim != 2 or not jnp.issubdtype(tokens.dtype, jnp.integer):
        raise ValueError(f"tokens must be int [batch, length], got {tokens.dtype} {tokens.shape}.")
    if not 0.0 <= mask_rate <= 1.0 or poisson_lambda <= 0:
        raise ValueError(
            f"need 0 <= mask_rate <= 1 and poisson_lambda > 0; got {mask_rate}, {poisson_lambda}."
        )
    batch, size = tokens.shape
    max_spans = size if max_spans is None else int(max_spans)
    keys = _example_keys(rng, jnp.asarray(example_ids), batch)
    lengths = _lengths(tokens, pad_id)

    def one(key, row, length):
        permute_key, infill_key = jax.random.split(key)
        if sentence_ends is None:
            permuted, new_pos = row, jnp.arange(size)
        else:
            permuted, new_pos = _permute_one(permute_key, row, length, jnp.asarray(sentence_ends))
        source, masked, num_spans = _infill_one(
            infill_key,
            permuted,
            length,
            mask_id=mask_id,
            pad_id=pad_id,
            mask_rate=mask_rate,
            poisson_lambda=poisson_lambda,
            max_spans=max_spans,
        )
        # masked is over the permuted row; report it over the original one.
        return source, masked[new_pos] & (jnp.arange(size) < length), num_spans

    inputs, masked, num_spans = jax.vmap(one)(keys, tokens, lengths)
    return NoisedTokens(inputs, masked, num_spans)
