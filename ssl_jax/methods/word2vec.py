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
The noise distribution (as its CDF) and the keep probabilities are computed once from the train split's
counts (its vocabulary, the data input "vocab", read by ssl_jax.method_inputs) and live in the state
(`extra`), so a checkpoint carries them. The loss is `sgns_loss` averaged over the kept pairs of the
global batch.

Evaluation: the protocols "nearest_neighbours" and "word_similarity" of ssl_jax.transfer.word2vec, kept
out of the generic kNN / linear protocols, which need labelled examples.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from ssl_jax import parallel
from ssl_jax.data.skipgram import keep_probabilities, noise_distribution
from ssl_jax.losses import sgns_loss
from ssl_jax.methods.base import LossAux, Method, Variables


class Word2Vec(Method):
    """config.word2vec.{embedding_dim, num_negatives, subsample, noise_power}; data from
    config.data (name "skipgram_text": data_dir, window, min_count, max_vocab, test_fraction)."""

    batch_keys = ("center", "context")

    def data_inputs(self) -> tuple[str, ...]:
        """The train split's vocabulary and the source's window (`method_inputs.vocab`, `.window`)."""
        return ("vocab", "window")

    @property
    def vocab(self) -> Any:
        return self.data_input("vocab")

    @property
    def window(self) -> int:
        return self.data_input("window")

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


def noise_cdf(noise: np.ndarray) -> np.ndarray:
    """float32 cumulative distribution [V] of `noise`, its last entry exactly 1 (so a uniform draw
    in [0, 1) always lands on a word)."""
    cdf = np.cumsum(np.asarray(noise, np.float64))
    cdf[-1] = 1.0
    return cdf.astype(np.float32)
