"""What the text methods share: the model built from config.model, mean-pooled features, evaluation
loops over token sources, and the fine-tuning protocols.

`TextMethod` is a `Method` over `batch_keys = ("tokens",)` whose whole network is one Flax model
(`build_model`), exported whole (the LM head travels with it, so perplexity can be measured from the
checkpoint). Its features are the mean of the final hidden states over the non-pad tokens, float32 [b, D];
a subclass overrides `features` to pool otherwise.

Protocols every text method gets (config.eval.protocols / `ssl-jax evaluate --protocol`):
  "finetune"          the pre-trained model + a linear head, all trained on the labelled train split
                      (config.finetune), test accuracy reported (validation accuracy beside it);
  "finetune_scratch"  the same recipe from a random initialisation (seed config.finetune.seed): the
                      baseline that shows what pre-training bought.
"""

from __future__ import annotations

import abc
import functools
from collections.abc import Callable
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax

from ssl_jax import data, optim, parallel
from ssl_jax.data import tokenizer as tokenizers
from ssl_jax.methods.base import Method, PyTree, Variables
from ssl_jax.models import transformer


def vocab_size(config: ml_collections.ConfigDict) -> int:
    """The model's vocabulary: the byte tokenizer's 261 ids, or data.vocab_size for BPE (an upper
    bound: a BPE trained on little text may stop early, leaving some rows unused)."""
    if config.data.get("tokenizer", "bpe") == "byte":
        return tokenizers.ByteTokenizer.vocab_size
    return int(config.data.vocab_size)


def model_kwargs(config: ml_collections.ConfigDict) -> dict[str, Any]:
    """config.model as keyword arguments of the transformer models."""
    m = config.model
    return dict(
        vocab_size=vocab_size(config),
        hidden_dim=m.hidden_dim,
        num_layers=m.num_layers,
        num_heads=m.num_heads,
        mlp_dim=m.mlp_dim,
        max_len=int(m.get("max_len", 0) or config.data.seq_len),
        dropout_rate=m.get("dropout_rate", 0.1),
        tie_embeddings=m.get("tie_embeddings", True),
        pad_id=tokenizers.PAD_ID,
        dtype=jnp.dtype(m.get("dtype", "float32")),
        attention_implementation=m.get("attention_implementation", "") or None,
    )


class TextMethod(Method):
    """A method over token rows whose network is the single model `build_model()`."""

    batch_keys = ("tokens",)

    @abc.abstractmethod
    def build_model(self) -> nn.Module:
        """The network; `apply(variables, tokens, train)` gives hidden states [b, L, D]."""

    def init_params(self, rng: jax.Array, seq_len: int) -> PyTree:
        dummy = jnp.zeros((2, seq_len), jnp.int32)
        return self.build_model().init({"params": rng}, dummy, train=False)["params"]

    def init(self, rng: jax.Array, image_shape: tuple[int, ...]) -> Variables:
        (seq_len,) = image_shape
        return Variables({"model": self.init_params(rng, seq_len)}, {}, {})

    def encoder_variables(self, params, batch_stats):
        del batch_stats
        return {"params": params["model"]}

    def features(
        self,
        params: PyTree,
        tokens: jax.Array,
        *,
        train: bool = False,
        rng: jax.Array | None = None,
    ) -> jax.Array:
        """Mean of the final hidden states over each row's non-pad tokens: float32 [b, D]."""
        rngs = {"dropout": rng} if train and rng is not None else {}
        hidden = self.build_model().apply({"params": params}, tokens, train=train, rngs=rngs)
        return transformer.mean_pool(hidden, tokens, tokenizers.PAD_ID)

    def encode(self, encoder_variables, images):
        return self.features(encoder_variables["params"], images)

    def protocols(self) -> dict[str, Callable[..., dict[str, Any]]]:
        return {
            "finetune": functools.partial(finetune, method=self, from_scratch=False),
            "finetune_scratch": functools.partial(finetune, method=self, from_scratch=True),
        }


def dropout_rng(rng: jax.Array, axis_name: str | None) -> jax.Array:
    """A dropout key per device (devices hold different rows; one key everywhere would repeat masks)."""
    return jax.random.fold_in(jax.random.fold_in(rng, 0x0D0), parallel.axis_index(axis_name))


# ------------------------------------------------------------------- evaluation over a token source


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
def _finetune_programs(method: TextMethod, num_classes: int, cfg_items: tuple, mesh):
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


def finetune(
    config: ml_collections.ConfigDict,
    encoder_variables: dict[str, PyTree],
    *,
    mesh: jax.sharding.Mesh | None = None,
    method: TextMethod,
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


# ------------------------------------------------------------------------------------- configs


def base_config(method: str) -> ml_collections.ConfigDict:
    """The fields every text config sets, CPU-sized: ssl_jax.default_config with the image parts
    (augmentation, projector) replaced by a text source, a Transformer and a fine-tuning recipe.
    configs/{gpt,bert}_austen.py start from here and change what their method needs."""
    from ssl_jax import default_config

    config = default_config.get_config()
    config.method = method
    for image_only in ("augment", "simclr"):
        if image_only in config:
            del config[image_only]
    config.data = ml_collections.ConfigDict(
        dict(
            name="text_files",  # or "tfds_text" with tfds_name, text_key, label_key, *_split
            data_dir="",
            seq_len=64,
            tokenizer="bpe",  # or "byte"
            vocab_size=2048,
            tokenizer_path="",  # "" -> cached under $SSL_JAX_CACHE_DIR (ssl_jax.data.text)
            num_blocks=20,
            num_classes=6,
            tfds_name="",
            text_key="text",
            label_key="label",
        )
    )
    config.model = ml_collections.ConfigDict(
        dict(
            hidden_dim=128,
            num_layers=2,
            num_heads=4,
            mlp_dim=512,
            max_len=0,  # 0: data.seq_len
            dropout_rate=0.1,
            tie_embeddings=True,
            dtype="float32",  # bfloat16 on accelerators (the :base variants)
            attention_implementation="",  # "" -> JAX's choice; "cudnn" for the fused GPU kernel
        )
    )
    config.batch_size = 32
    config.num_epochs = 0.0
    config.num_steps = 400
    config.optim = ml_collections.ConfigDict(
        dict(
            name="adamw",
            learning_rate=1e-3,
            lr_scaling="none",
            weight_decay=0.01,
            b1=0.9,
            b2=0.98,
            eps=1e-6,
            warmup_steps=40,
            end_lr=0.0,
            grad_clip_norm=1.0,
        )
    )
    config.log_every_steps = 50
    config.eval_every_steps = 0
    config.checkpoint_every_steps = 200
    config.eval.protocols = ("knn", "linear", "finetune", "finetune_scratch")
    config.eval.batch_size = 256
    config.eval.knn_k = 20
    config.eval.knn_temperature = 0.07
    config.eval.max_train_examples = 4000  # kNN / probe fitted on 4,000 train rows (CPU time)
    config.finetune = ml_collections.ConfigDict(
        dict(
            num_steps=1000,
            batch_size=32,
            learning_rate=1e-3,
            weight_decay=0.01,
            warmup_steps=50,
            seed=0,
            eval_batch_size=256,
        )
    )
    return config


def smoke_variant(config: ml_collections.ConfigDict) -> None:
    """Shrinks a text config in place to seconds on a CPU (for tests): a tiny model, byte-level BPE of
    300 ids, 3 steps, 2 fine-tuning steps."""
    config.data.seq_len = 32
    config.data.vocab_size = 300
    config.model.update(
        dict(hidden_dim=32, num_layers=1, num_heads=2, mlp_dim=64, dropout_rate=0.0)
    )
    config.batch_size = 16
    config.num_steps = 3
    config.optim.warmup_steps = 1
    config.log_every_steps = 1
    config.checkpoint_every_steps = 2
    config.eval.batch_size = 64
    config.eval.protocols = ("knn", "finetune", "finetune_scratch")
    config.finetune.update(dict(num_steps=2, batch_size=16, warmup_steps=1, eval_batch_size=64))


def base_sizes(config: ml_collections.ConfigDict, *, seq_len: int) -> None:
    """The published 12-layer, 768-wide size (BERT-base, GPT-2 small) in bfloat16, in place."""
    config.data.seq_len = seq_len
    config.model.update(
        dict(hidden_dim=768, num_layers=12, num_heads=12, mlp_dim=3072, dtype="bfloat16")
    )
