"""The text protocols: fine-tuning a whole text model, a language model's perplexity, masked accuracy.

Each is registered (ssl_jax.transfer.protocols) against the method class it needs, so
config.eval.protocols / `ssl-jax evaluate --protocol` select them by name:
  "finetune"          (every TextMethod) the pre-trained model + a linear head, all trained on the
                      labelled train split (config.finetune), test accuracy reported (validation
                      accuracy beside it);
  "finetune_scratch"  the same recipe from a random initialisation (seed config.finetune.seed): the
                      baseline that shows what pre-training bought;
  "perplexity"        GPT (next token) and ELMo (forward, backward and their mean) on the validation split;
  "masked_accuracy"   BERT (80/10/10 masking) and BART (infilled spans) with a fixed noise key.
The per-row sums they reduce are model code and stay with their method (e.g. `gpt.next_token_sums`).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax

from ssl_jax import data, optim, parallel
from ssl_jax.methods import bart, bert, elmo, gpt, text_common
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


# ---------------------------------------------------------------------------------- fine-tuning


class _Classifier(nn.Module):
    num_classes: int

    @nn.compact
    def __call__(self, features: jax.Array) -> jax.Array:
        return nn.Dense(self.num_classes, kernel_init=nn.initializers.zeros, name="head")(features)


def finetune_config(config: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
    """config.finetune with its defaults filled in."""
    defaults = dict(
        num_steps=500,
        batch_size=32,
        learning_rate=1e-4,
        weight_decay=0.01,
        warmup_steps=50,
        seed=0,
        eval_batch_size=256,
    )
    given = config.get("finetune", None)
    defaults.update(given.to_dict() if given is not None else {})
    return ml_collections.ConfigDict(defaults)


@functools.lru_cache(maxsize=4)
def _finetune_programs(method: text_common.TextMethod, num_classes: int, cfg_items: tuple, mesh):
    """(tx, jitted train step, jitted predict) for one method and recipe: compiled once and shared by
    the pre-trained and from-scratch runs."""
    cfg = dict(cfg_items)
    num_steps = int(cfg["num_steps"])
    optim_cfg = ml_collections.ConfigDict(
        dict(
            name="adamw",
            learning_rate=cfg["learning_rate"],
            lr_scaling="none",
            weight_decay=cfg["weight_decay"],
            warmup_steps=min(int(cfg["warmup_steps"]), max(0, num_steps - 1)),
            batch_size=cfg["batch_size"],
            end_lr=0.0,
        )
    )
    tx, _ = optim.make_optimizer(optim_cfg, num_steps)
    head = _Classifier(num_classes)

    def logits_fn(params, tokens, *, train, rng):
        features = method.features(params["encoder"], tokens, train=train, rng=rng)
        return head.apply({"params": params["head"]}, features)

    def train_step(params, opt_state, batch, rng):
        def loss_fn(params):
            logits = logits_fn(params, batch["tokens"], train=True, rng=rng)
            return optax.softmax_cross_entropy_with_integer_labels(logits, batch["label"]).mean()

        loss, grads = jax.value_and_grad(loss_fn)(params)
        updates, opt_state = tx.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), opt_state, loss

    def predict(params, batch):
        logits = logits_fn(params, batch["tokens"], train=False, rng=None)
        return (jnp.argmax(logits, -1) == batch["label"]).astype(jnp.float32)[:, None]

    step = jax.jit(train_step, donate_argnums=(0, 1))
    if mesh is not None:
        replicated, sharded = parallel.replicated(mesh), parallel.data_sharded(mesh)
        step = jax.jit(
            train_step,
            in_shardings=(replicated, replicated, sharded, replicated),
            out_shardings=(replicated, replicated, replicated),
            donate_argnums=(0, 1),
        )
    return tx, head, step, predict


@protocols.register(text_common.TextMethod, "finetune", from_scratch=False)
@protocols.register(text_common.TextMethod, "finetune_scratch", from_scratch=True)
def finetune(
    config: ml_collections.ConfigDict,
    encoder_variables: dict[str, PyTree],
    *,
    mesh: jax.sharding.Mesh | None = None,
    method: text_common.TextMethod,
    from_scratch: bool = False,
) -> dict[str, Any]:
    """Fine-tunes the whole model + a linear head on the labelled train split (AdamW, warm-up then
    cosine decay, config.finetune) and reports top-1 accuracy on the test and validation splits.

    from_scratch: start from a random initialisation (seed config.finetune.seed) instead of
    `encoder_variables`, with the same recipe: the baseline for the pre-trained number.
    """
    cfg = finetune_config(config)
    train_source = data.get_source(config.data, "train")
    num_classes = int(train_source.num_classes or config.data.num_classes)
    if mesh is not None:
        parallel.check_batch_size(cfg.batch_size, mesh)
    tx, head, step, predict = _finetune_programs(
        method, num_classes, tuple(sorted(cfg.to_dict().items())), mesh
    )
    rng = jax.random.PRNGKey(cfg.seed)
    init_rng, head_rng, rng = jax.random.split(rng, 3)
    seq_len = int(config.data.seq_len)
    if from_scratch:
        encoder = jax.jit(method.init_params, static_argnums=1)(init_rng, seq_len)
    else:
        encoder = jax.tree.map(jnp.asarray, encoder_variables["params"])
    tokens_like = jax.ShapeDtypeStruct((1, seq_len), jnp.int32)
    features_dim = jax.eval_shape(method.features, encoder, tokens_like).shape[-1]
    head_params = head.init(head_rng, jnp.zeros((1, features_dim), jnp.float32))["params"]
    params = {"encoder": encoder, "head": head_params}
    opt_state = tx.init(params)
    if mesh is not None:
        params, opt_state = parallel.replicate((params, opt_state), mesh)
    loader = data.BatchLoader(
        train_source,
        cfg.batch_size,
        seed=cfg.seed,
        process_index=jax.process_index(),
        process_count=jax.process_count(),
        keys=("tokens", "label"),
    )
    losses = []
    try:
        for i in range(int(cfg.num_steps)):
            batch = next(loader)
            batch = {k: batch[k] for k in ("tokens", "label")}
            if mesh is not None:
                batch = parallel.shard_batch(batch, mesh)
            params, opt_state, loss = step(params, opt_state, batch, jax.random.fold_in(rng, i))
            losses.append(loss)
    finally:
        loader.close()
    results = {
        "init": "random" if from_scratch else "pretrained",
        "num_steps": int(cfg.num_steps),
        "final_train_loss": float(losses[-1]) if losses else float("nan"),
    }
    for split, key in (("test", "top1"), ("validation", "validation_top1")):
        correct = per_example_outputs(
            predict,
            params,
            data.get_source(config.data, split),
            batch_size=cfg.eval_batch_size,
            mesh=mesh,
            keys=("tokens", "label"),
        )
        results[key] = float(correct.mean())
    return results


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
    method.sentence_ends()  # read the tokenizer before tracing
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
