"""The text protocols of particular methods: a language model's perplexity, masked accuracy.

Each is registered (ssl_jax.transfer.protocols) against the method class it needs, so
config.eval.protocols / `ssl-jax evaluate --protocol` select them by name:
  "perplexity"        GPT (next token) and ELMo (forward, backward and their mean) on the validation split;
  "masked_accuracy"   BERT (80/10/10 masking) and BART (infilled spans) with a fixed noise key.
The per-row sums they reduce are model code and stay with their method (e.g. `gpt.next_token_sums`).
Fine-tuning a text model ("finetune", "finetune_scratch", at any label fraction) is the generic engine
of ssl_jax.transfer.finetune, as for image methods.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from typing import Any

import jax
import numpy as np

from ssl_jax import data, parallel
from ssl_jax.methods import bart, bert, elmo, gpt
from ssl_jax.methods.base import PyTree
from ssl_jax.transfer import protocols

# ---------------------------------------------------------------- evaluation over a token source


def _eval_batch_size(requested: int, mesh: jax.sharding.Mesh | None) -> int:
    n = 1 if mesh is None else parallel.num_shards(mesh)
    return max(n, (requested // n) * n)


def per_example_outputs(
    fn: Callable[[PyTree, dict[str, jax.Array]], jax.Array],
    variables: PyTree,
    source: Any,
    *,
    batch_size: int,
    mesh: jax.sharding.Mesh | None,
    keys: tuple[str, ...] = ("tokens",),
) -> np.ndarray:
    """fn(variables, batch) -> [b, k] float32 over every row of `source` once (jitted, the batch split
    over the mesh): returns [len(source), k] on every process, in source order."""
    batch_size = _eval_batch_size(batch_size, mesh)
    apply = jax.jit(fn)
    if mesh is not None:
        variables = parallel.replicate(variables, mesh)
    outputs = []
    batches = data.eval_batches(
        source,
        batch_size,
        process_index=jax.process_index(),
        process_count=jax.process_count(),
        keys=keys,
    )
    for batch in batches:
        inputs = {k: batch[k] for k in (*keys, "example_ids")}
        if mesh is not None:
            inputs = parallel.shard_batch(inputs, mesh)
        out = apply(variables, inputs)
        rows = _process_local_rows(out)
        outputs.append(rows[np.asarray(batch["mask"], bool)])
    return parallel.gather_processes(np.concatenate(outputs))


def _process_local_rows(x: jax.Array) -> np.ndarray:
    if x.is_fully_addressable:
        return np.asarray(x)
    shards = {s.index[0].start or 0: s for s in x.addressable_shards}
    return np.concatenate([np.asarray(shards[s].data) for s in sorted(shards)])


@protocols.register(gpt.GPT, "perplexity")
def gpt_perplexity(
    config, encoder_variables, *, mesh=None, method: gpt.GPT, split: str = "validation"
):
    """exp(total next-token NLL / total predicted tokens) over every row of `split`."""
    sums = per_example_outputs(
        functools.partial(gpt.next_token_sums, method),
        {"params": encoder_variables["params"]},
        data.get_source(config.data, split),
        batch_size=config.eval.batch_size,
        mesh=mesh,
    ).sum(0)
    mean_nll = float(sums[0] / max(sums[1], 1.0))
    return {
        "perplexity": math.exp(mean_nll),
        "nll": mean_nll,
        "next_token_accuracy": float(sums[2] / max(sums[1], 1.0)),
        "tokens": int(sums[1]),
        "split": split,
    }


@protocols.register(elmo.ELMo, "perplexity")
def elmo_perplexity(
    config, encoder_variables, *, mesh=None, method: elmo.ELMo, split: str = "validation"
):
    """Token-weighted forward, backward and averaged perplexity over every row of `split`."""
    sums = per_example_outputs(
        functools.partial(elmo.direction_sums, method),
        {"params": encoder_variables["params"]},
        data.get_source(config.data, split),
        batch_size=config.eval.batch_size,
        mesh=mesh,
    ).sum(0)
    forward = float(sums[0] / max(sums[1], 1.0))
    backward = float(sums[2] / max(sums[3], 1.0))
    return {
        "perplexity": math.exp((forward + backward) / 2),
        "forward_perplexity": math.exp(forward),
        "backward_perplexity": math.exp(backward),
        "tokens": int(sums[1]),
        "split": split,
    }


@protocols.register(bert.BERT, "masked_accuracy")
def bert_masked_accuracy(
    config, encoder_variables, *, mesh=None, method: bert.BERT, split: str = "validation"
):
    """Accuracy (and perplexity) on the masked tokens of every row of `split`, masked with a fixed key."""
    rng = jax.random.PRNGKey(config.seed)
    sums = per_example_outputs(
        functools.partial(bert.masked_sums, method, rng),
        {"params": encoder_variables["params"]},
        data.get_source(config.data, split),
        batch_size=config.eval.batch_size,
        mesh=mesh,
    ).sum(0)
    count = max(float(sums[1]), 1.0)
    return {
        "masked_accuracy": float(sums[0] / count),
        "masked_perplexity": math.exp(float(sums[2] / count)),
        "masked_tokens": int(sums[1]),
        "split": split,
    }


@protocols.register(bart.BART, "masked_accuracy")
def bart_masked_accuracy(
    config, encoder_variables, *, mesh=None, method: bart.BART, split: str = "validation"
):
    """Reconstruction accuracy on the infilled tokens of every row of `split` (fixed noise key)."""
    method.sentence_ends()  # build the table (from the bound tokenizer) on the host, before tracing
    sums = per_example_outputs(
        functools.partial(bart.reconstruction_sums, method, jax.random.PRNGKey(config.seed)),
        {"params": encoder_variables["params"]},
        data.get_source(config.data, split),
        batch_size=config.eval.batch_size,
        mesh=mesh,
    ).sum(0)
    masked, counted = max(float(sums[1]), 1.0), max(float(sums[3]), 1.0)
    return {
        "masked_accuracy": float(sums[0] / masked),
        "masked_tokens": int(sums[1]),
        "token_accuracy": float(sums[2] / counted),
        "perplexity": math.exp(float(sums[4] / counted)),
        "split": split,
    }
