"""What the text methods share: the model built from config.model, mean-pooled features, per-device
dropout keys and the base config.

`TextMethod` is a `Method` over `batch_keys = ("tokens",)` whose whole network is one Flax model
(`build_model`), exported whole (the LM head travels with it, so perplexity can be measured from the
checkpoint). Its features are the mean of the final hidden states over the non-pad tokens, float32 [b, D];
a subclass overrides `features` to pool otherwise.

Their evaluation protocols ("finetune", "finetune_scratch", perplexity, masked accuracy) read data, so
they live in ssl_jax.transfer.text, registered against these classes.
"""

from __future__ import annotations

import abc
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections

from ssl_jax import parallel
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


def dropout_rng(rng: jax.Array, axis_name: str | None) -> jax.Array:
    """A dropout key per device (devices hold different rows; one key everywhere would repeat masks)."""
    return jax.random.fold_in(jax.random.fold_in(rng, 0x0D0), parallel.axis_index(axis_name))


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
