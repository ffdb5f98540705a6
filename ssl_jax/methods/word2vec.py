"""word2vec: skip-gram with negative sampling (Mikolov et al. 2013a, b) on a directory of text files.

Parameters: input vectors v ("input", [V, d], uniform in +-0.5/d as in the released code) and output
vectors v' ("output", [V, d], zeros). A row of the "skipgram_text" source is a center word and the ids
of its 2 * window neighbours (ssl_jax.data.skipgram). On the device, per example and keyed by
fold_in(step key, example id), so results do not depend on the device count:
- subsampling of frequent words: the center and each context word are kept with probability
  min(1, sqrt(t / f) + t / f) (t = config.word2vec.subsample); a discarded word masks its pairs (the
  C code cuts it out of the stream, so its window reaches one word further: a small difference);
- the dynamic window: a size r uniform in 1..window, pairs further than r masked (the C code's
  `b = next_random % window`);
- negatives: `num_negatives` noise words per pair drawn from P_n proportional to count^0.75
  (config.word2vec.noise_power) by inverse-CDF sampling (a uniform draw located in the cumulative
  distribution: the continuous form of the C code's unigram table; `jax.random.categorical` would
  cost V per draw). A negative equal to the context word
  is kept (the C code skips it); with V in the thousands that is rare except for the most frequent words.
The noise distribution (as its CDF) and the keep probabilities are computed once from the train split's counts and
live in the state (`extra`), so a checkpoint carries them. The loss is `sgns_loss` averaged over the
kept pairs of the global batch.

Evaluation (`protocols`): "nearest_neighbours" lists the cosine neighbours of QUERY_WORDS, and
"word_similarity" is the check documented on `word_similarity`. Kept out of the generic kNN / linear
protocols, which need labelled examples.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from ssl_jax import parallel
from ssl_jax.data import get_source
from ssl_jax.data.skipgram import keep_probabilities, noise_distribution
from ssl_jax.losses import sgns_loss
from ssl_jax.methods.base import LossAux, Method, Variables

# Words whose neighbours "nearest_neighbours" reports (those outside the vocabulary are listed as
# missing): characters, family, feelings, time, objects of Austen's novels.
QUERY_WORDS = (
    "elizabeth",
    "darcy",
    "emma",
    "sister",
    "mother",
    "happy",
    "letter",
    "monday",
    "morning",
    "carriage",
    "house",
    "said",
)

# Pairs of words whose meanings are related (kinship counterparts, times of day and days, synonyms of
# feeling, things of the same kind, forms of address). `word_similarity` compares each pair's cosine with
# frequency-matched control words.
RELATED_PAIRS = (
    ("mother", "father"),
    ("brother", "sister"),
    ("son", "daughter"),
    ("husband", "wife"),
    ("aunt", "uncle"),
    ("niece", "nephew"),
    ("mr", "mrs"),
    ("sir", "madam"),
    ("he", "she"),
    ("him", "her"),
    ("man", "woman"),
    ("gentleman", "lady"),
    ("boy", "girl"),
    ("morning", "evening"),
    ("day", "night"),
    ("week", "month"),
    ("hour", "minute"),
    ("monday", "tuesday"),
    ("saturday", "sunday"),
    ("happy", "glad"),
    ("pleasure", "delight"),
    ("joy", "happiness"),
    ("love", "affection"),
    ("fear", "afraid"),
    ("carriage", "horses"),
    ("dinner", "supper"),
    ("breakfast", "tea"),
    ("letter", "note"),
    ("write", "read"),
    ("town", "country"),
    ("house", "cottage"),
    ("room", "parlour"),
    ("dance", "ball"),
    ("said", "replied"),
    ("cried", "exclaimed"),
    ("colonel", "captain"),
    ("better", "worse"),
    ("small", "large"),
    ("first", "second"),
    ("two", "three"),
)


class Word2Vec(Method):
    """config.word2vec.{embedding_dim, num_negatives, subsample, noise_power}; data from
    config.data (name "skipgram_text": data_dir, window, min_count, max_vocab, test_fraction)."""

    batch_keys = ("center", "context")

    def __init__(
        self,
        config: ml_collections.ConfigDict,
        *,
        num_steps: int | None = None,
        steps_per_epoch: int | None = None,
    ):
        super().__init__(config, num_steps=num_steps, steps_per_epoch=steps_per_epoch)
        source = get_source(config.data, "train")
        if not hasattr(source, "vocab"):
            raise ValueError(
                f"word2vec trains on a skip-gram source (config.data.name='skipgram_text'), "
                f"not {source.name!r}."
            )
        self.vocab = source.vocab
        self.window = source.window

    def init(self, rng: jax.Array, image_shape: tuple[int, ...]) -> Variables:
        del image_shape  # a center word is a scalar id
        cfg = self.config.word2vec
        size, dim = len(self.vocab), cfg.embedding_dim
        params = {
            "input": jax.random.uniform(rng, (size, dim), jnp.float32, -0.5 / dim, 0.5 / dim),
            "output": jnp.zeros((size, dim), jnp.float32),
        }
        counts = self.vocab.counts
        extra = {
            "noise_cdf": jnp.asarray(noise_cdf(noise_distribution(counts, cfg.noise_power))),
            "keep_prob": jnp.asarray(keep_probabilities(counts, cfg.subsample), jnp.float32),
        }
        return Variables(params, {}, extra)

    def sample(
        self, extra: dict[str, jax.Array], center: jax.Array, context: jax.Array, key: jax.Array
    ) -> tuple[jax.Array, jax.Array]:
        """One row's draws: (mask bool [2w] of the pairs kept, negatives int32 [2w, m])."""
        w = self.window
        keep_key, window_key, negative_key = jax.random.split(key, 3)
        u = jax.random.uniform(keep_key, (2 * w + 1,))
        keep_center = u[0] < extra["keep_prob"][center]
        keep_context = u[1:] < extra["keep_prob"][jnp.maximum(context, 0)]
        reach = jax.random.randint(window_key, (), 1, w + 1)  # dynamic window size in 1..w
        distance = jnp.concatenate([jnp.arange(w, 0, -1), jnp.arange(1, w + 1)])
        mask = keep_center & keep_context & (context >= 0) & (distance <= reach)
        # Inverse-CDF sampling: O(log V) per draw. jax.random.categorical (Gumbel-max) draws V noise
        # values per sample, [b, 2w, m, V] per step: 1.1 GB at batch 1024 over Austen's 5.6k words.
        u = jax.random.uniform(negative_key, (2 * w, self.config.word2vec.num_negatives))
        cdf = extra["noise_cdf"]
        negatives = jnp.minimum(jnp.searchsorted(cdf, u, side="right"), cdf.shape[0] - 1)
        return mask, negatives.astype(jnp.int32)

    def loss_fn(self, params, batch_stats, extra, batch, *, rng, step, axis_name):
        del step
        center, context = batch["center"], batch["context"]
        keys = jax.vmap(lambda i: jax.random.fold_in(rng, i))(batch["example_ids"])
        mask, negatives = jax.vmap(self.sample, in_axes=(None, 0, 0, 0))(
            extra, center, context, keys
        )
        n, pairs = context.shape
        v = params["input"][center]  # [n, d]
        per_pair = sgns_loss(
            jnp.repeat(v, pairs, axis=0),
            params["output"][jnp.maximum(context, 0)].reshape(n * pairs, -1),
            params["output"][negatives].reshape(n * pairs, negatives.shape[-1], -1),
        ).reshape(n, pairs)
        mask = mask.astype(jnp.float32)
        # The mean over the kept pairs of the global batch: the loop averages the devices' values,
        # so each device returns its sum times the device count over the global count.
        devices = parallel.psum(1, axis_name)
        kept = jax.lax.stop_gradient(parallel.psum(mask.sum(), axis_name))
        loss = jnp.sum(per_pair * mask) * devices / jnp.maximum(kept, 1.0)
        metrics = {"kept_pairs_per_row": kept / (n * devices)}
        return loss, LossAux(batch_stats, metrics)

    def encoder_variables(self, params, batch_stats):
        del batch_stats
        return {"params": {"input": params["input"]}, "batch_stats": {}}

    def encode(self, encoder_variables, images):
        """The input vectors [b, d] of a batch of word ids [b]."""
        return jnp.asarray(encoder_variables["params"]["input"])[images].astype(jnp.float32)

    def protocols(self):
        return {
            "nearest_neighbours": self._nearest_neighbours,
            "word_similarity": self._word_similarity,
        }

    def _embeddings(self, encoder_variables) -> np.ndarray:
        return np.asarray(jax.device_get(encoder_variables["params"]["input"]), np.float64)

    def _nearest_neighbours(self, config, encoder_variables, *, mesh=None) -> dict[str, Any]:
        del mesh
        k = int(config.eval.get("neighbours_k", 8))
        return nearest_neighbours(self._embeddings(encoder_variables), self.vocab, QUERY_WORDS, k=k)

    def _word_similarity(self, config, encoder_variables, *, mesh=None) -> dict[str, Any]:
        del mesh
        controls = int(config.eval.get("similarity_controls", 50))
        return word_similarity(
            self._embeddings(encoder_variables), self.vocab, RELATED_PAIRS, num_controls=controls
        )


def noise_cdf(noise: np.ndarray) -> np.ndarray:
    """float32 cumulative distribution [V] of `noise`, its last entry exactly 1 (so a uniform draw
    in [0, 1) always lands on a word)."""
    cdf = np.cumsum(np.asarray(noise, np.float64))
    cdf[-1] = 1.0
    return cdf.astype(np.float32)


def _unit_rows(embeddings: np.ndarray) -> np.ndarray:
    return embeddings / np.maximum(np.linalg.norm(embeddings, axis=1, keepdims=True), 1e-12)


def nearest_neighbours(
    embeddings: np.ndarray, vocab: Any, queries: tuple[str, ...], *, k: int = 8
) -> dict[str, Any]:
    """For each query in the vocabulary, its k nearest words by cosine similarity (itself excluded):
    {"neighbours": {query: [[word, cosine], ...]}, "missing": [queries not in the vocabulary], "k"}."""
    unit = _unit_rows(embeddings)
    found, missing = {}, []
    for query in queries:
        if query not in vocab:
            missing.append(query)
            continue
        q = vocab.index[query]
        sims = unit @ unit[q]
        order = np.argsort(-sims, kind="stable")
        top = order[order != q][:k]
        found[query] = [[vocab.words[i], round(float(sims[i]), 4)] for i in top]
    return {"neighbours": found, "missing": missing, "k": k}


def word_similarity(
    embeddings: np.ndarray,
    vocab: Any,
    pairs: tuple[tuple[str, str], ...],
    *,
    num_controls: int = 50,
) -> dict[str, Any]:
    """Do related words lie closer than unrelated words of the same frequency?

    For each related pair (a, b) with both words in the vocabulary, and in both directions (a -> b and
    b -> a), the related cosine cos(a, b) is compared with cos(a, c) for the `num_controls` control words
    c nearest to b in frequency rank (ids are frequency ranks; a and b themselves excluded). Controlling
    for frequency matters: frequent words crowd together in word2vec spaces, so "closer than a random
    word" would partly measure frequency. Results:
      pair_accuracy: the fraction of (direction, control) comparisons the related word wins
        (0.5 for embeddings that know nothing, e.g. a random initialization; 1.0 at best);
      mean_related_cosine, mean_control_cosine and their difference `gap`;
      pairs_used / pairs_missing: how many of `pairs` were in the vocabulary.
    """
    unit = _unit_rows(embeddings)
    size = len(unit)
    wins, related, control = [], [], []
    used, missing = 0, []
    for a, b in pairs:
        if a not in vocab or b not in vocab:
            missing.append(f"{a}/{b}")
            continue
        used += 1
        for x, y in ((vocab.index[a], vocab.index[b]), (vocab.index[b], vocab.index[a])):
            near = np.argsort(np.abs(np.arange(size) - y), kind="stable")
            controls = [c for c in near if c not in (x, y)][:num_controls]
            rel = float(unit[x] @ unit[y])
            ctl = unit[controls] @ unit[x]
            related.append(rel)
            control.extend(ctl.tolist())
            wins.extend((rel > ctl).tolist())
    if not used:
        raise ValueError("none of the word-similarity pairs is in the vocabulary")
    mean_related, mean_control = float(np.mean(related)), float(np.mean(control))
    return {
        "pair_accuracy": float(np.mean(wins)),
        "mean_related_cosine": mean_related,
        "mean_control_cosine": mean_control,
        "gap": mean_related - mean_control,
        "pairs_used": used,
        "pairs_missing": missing,
        "num_controls": num_controls,
    }
