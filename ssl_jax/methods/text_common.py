"""What the text methods share: the model built from config.model, mean-pooled features, per-device
dropout keys and the base config.

`TextMethod` is a `Method` over `batch_keys = ("tokens",)` whose whole network is one Flax model
(`build_model`), exported whole (the LM head travels with it, so perplexity can be measured from the
checkpoint). Its features are the mean over the non-pad tokens of the hidden states of the model's
`representation` method (float32 [b, D]): the final layer for GPT and BERT, BART's encoder, ELMo's
learned layer mix. `encoder_module()` is that computation as a Flax module whose parameters are the
model's own, so the generic fine-tuning engine (ssl_jax.transfer.finetune) trains a text model under a
new head exactly as it trains an image encoder.

Their own evaluation protocols (perplexity, masked accuracy) read data, so they live in
ssl_jax.transfer.text, registered against these classes.
"""

from __future__ import annotations

import abc
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections

from ssl_jax import default_config, parallel
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


class PooledText(nn.Module):
    """tokens [b, L] -> float32 [b, D]: the mean over each row's non-pad tokens of
    `model.<representation>(tokens, train)`.

    The model shares this module's scope, so its parameters sit at this module's top level: the tree
    a TextMethod exports (`{"params": params["model"]}`) is this module's variables as they are.
    Initializing runs the model's full `__call__` (on `model_inputs` copies of the tokens) so every
    parameter the pre-trained model has exists, including those `representation` does not use
    (BART's decoder)."""

    model: nn.Module
    representation: str = "__call__"
    model_inputs: int = 1
    pad_id: int = tokenizers.PAD_ID

    def setup(self):
        nn.share_scope(self, self.model)

    def __call__(self, tokens: jax.Array, train: bool = False) -> jax.Array:
        if self.is_initializing():
            self.model(*([tokens] * self.model_inputs), train=False)
        if self.representation == "__call__":
            hidden = self.model(tokens, train=train)
        else:
            hidden = getattr(self.model, self.representation)(tokens, train=train)
        return transformer.mean_pool(hidden, tokens, self.pad_id)


class TextMethod(Method):
    """A method over token rows whose network is the single model `build_model()`."""

    batch_keys = ("tokens",)
    #: The model's method whose hidden states [b, L, D] are pooled into features, and how many token
    #: arrays the model's `__call__` takes (an encoder-decoder takes source and target).
    representation: str = "__call__"
    model_inputs: int = 1

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
        """The pooled `representation` of each row (see PooledText): float32 [b, D]."""
        rngs = {"dropout": rng} if train and rng is not None else {}
        return self.encoder_module().apply({"params": params}, tokens, train=train, rngs=rngs)

    def encode(self, encoder_variables, images):
        return self.features(encoder_variables["params"], images)

    def encoder_module(self, *, axis_name: str | None = None) -> PooledText:
        """The whole model with mean pooling, as fine-tuning trains it (dropout on in training)."""
        del axis_name  # no BatchNorm
        return PooledText(self.build_model(), self.representation, self.model_inputs)

    def preprocess(self, inputs, *, train=False, rng=None, example_ids=None, host_cropped=False):
        """Token ids go to the model as they are: dropout is fine-tuning's only randomness."""
        del train, rng, example_ids, host_cropped
        return inputs


def dropout_rng(rng: jax.Array, axis_name: str | None) -> jax.Array:
    """A dropout key per device (devices hold different rows; one key everywhere would repeat masks)."""
    return jax.random.fold_in(jax.random.fold_in(rng, 0x0D0), parallel.axis_index(axis_name))


# ------------------------------------------------------------------------------------- configs


def base_config(method: str) -> ml_collections.ConfigDict:
    """The fields every text config sets, CPU-sized: ssl_jax.default_config's shared fields (run
    length, logging, checkpoints, evaluation) with a text source, a Transformer and a text
    fine-tuning recipe. configs/{gpt,bert}_austen.py start from here and change what their method
    needs."""
    config = default_config.shared_config()
    config.method = method
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
    # Fine-tuning (ssl_jax.transfer.finetune, the engine image methods use): the whole model + a
    # linear head, AdamW, 50 warm-up steps then cosine decay, no augmentation but dropout.
    config.eval.update(
        dict(
            finetune_steps=1000,
            finetune_batch_size=32,
            finetune_learning_rate=1e-3,
            finetune_weight_decay=0.01,
            finetune_warmup_steps=50,
            finetune_augment=False,
            finetune_validation_split="validation",
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
    config.eval.update(dict(finetune_steps=2, finetune_batch_size=16, finetune_warmup_steps=1))


def base_sizes(config: ml_collections.ConfigDict, *, seq_len: int) -> None:
    """The published 12-layer, 768-wide size (BERT-base, GPT-2 small) in bfloat16, in place."""
    config.data.seq_len = seq_len
    config.model.update(
        dict(hidden_dim=768, num_layers=12, num_heads=12, mlp_dim=3072, dtype="bfloat16")
    )
