"""CLIP (Radford et al. 2021): an image tower and a text tower trained to pair images with their captions.

Image tower: config.model.encoder (small_cnn / resnet / vit, BN synchronized over the data axis) ->
linear projection. Text tower: a causal Transformer over caption tokens whose output at the eos token (the
last non-pad token) is the caption's feature (`ssl_jax.models.clip_text`) -> linear projection. Both
projections land in one config.clip.embed_dim space; `clip_loss` contrasts the global batch's images and
texts in both directions with a learnable logit scale exp(t), t initialized to log(1 / 0.07) and capped
so the scale never exceeds config.clip.max_logit_scale (100). The only augmentation is a random resized
crop (config.augment), as in the paper.

Evaluation: `encode` is the image backbone's features, so kNN, linear probe and fine-tuning work as for
every image method. The "zero_shot" protocol (ssl_jax.transfer.zero_shot) needs the rest of the model, so the exported
encoder item carries it beside the backbone:

    {"params": backbone params, "batch_stats": backbone BN statistics,       <- what encode/fine-tune use
     "clip": {"params": {"text_encoder", "image_projection", "text_projection", "log_logit_scale"}}}

Zero-shot classification: every class name in every template (config.data.templates) through the text
tower; each class's embedding is the normalized mean of its normalized template embeddings (prompt
ensembling, Sec. 3.1.4); a test image takes the class whose embedding is nearest (cosine) to its own.
"""

from __future__ import annotations

import math
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from ssl_jax import augment
from ssl_jax.data.tokenizer import ByteTokenizer
from ssl_jax.losses import capped_logit_scale, clip_loss
from ssl_jax.losses._checks import l2_normalize
from ssl_jax.methods import common
from ssl_jax.methods.base import LossAux, Method, PyTree, Variables
from ssl_jax.models.clip_text import TextTransformer

# The exported encoder item's key for the parts of CLIP beyond the transferable image backbone.
CLIP_KEY = "clip"


class CLIPModel(nn.Module):
    """Image and text towers with their projections into one space, and the log logit scale t.

    Parameters: "encoder" (image backbone), "text_encoder", "image_projection", "text_projection",
    "log_logit_scale" (a scalar, kept out of weight decay like every 0-d/1-d parameter).
    """

    encoder: nn.Module
    text_encoder: nn.Module
    embed_dim: int
    init_temperature: float = 0.07
    dtype: Any = jnp.float32

    def setup(self):
        # CLIP's projections are bias-free linear maps (Fig. 3: I_f @ W_i, T_f @ W_t).
        def projection(name):
            return nn.Dense(
                self.embed_dim, use_bias=False, dtype=self.dtype, param_dtype=jnp.float32, name=name
            )

        self.image_projection = projection("image_projection")
        self.text_projection = projection("text_projection")
        self.log_logit_scale = self.param(
            "log_logit_scale",
            nn.initializers.constant(math.log(1.0 / self.init_temperature)),
            (),
            jnp.float32,
        )

    def embed_images(self, images: jax.Array, train: bool) -> jax.Array:
        """[b, H, W, C] normalized images -> [b, embed_dim] float32 (not normalized)."""
        return self.image_projection(self.encoder(images, train=train)).astype(jnp.float32)

    def embed_texts(self, tokens: jax.Array, train: bool) -> jax.Array:
        """int [b, L] tokens -> [b, embed_dim] float32 (not normalized)."""
        return self.text_projection(self.text_encoder(tokens, train=train)).astype(jnp.float32)

    def __call__(
        self, images: jax.Array, tokens: jax.Array, train: bool
    ) -> tuple[jax.Array, jax.Array, jax.Array]:
        return (
            self.embed_images(images, train),
            self.embed_texts(tokens, train),
            self.log_logit_scale,
        )


def check_config(config: ml_collections.ConfigDict) -> None:
    text = config.model.get("text")
    if text is None or config.get("clip") is None:
        raise ValueError("clip needs config.model.text (the text tower) and config.clip.")
    if config.clip.max_logit_scale < 1.0 / config.clip.init_temperature:
        raise ValueError(
            f"config.clip.max_logit_scale ({config.clip.max_logit_scale}) is below the initial "
            f"scale 1 / init_temperature ({1.0 / config.clip.init_temperature:.4g})."
        )


def text_vocab_size(config: ml_collections.ConfigDict) -> int:
    """config.model.text.vocab_size, or when 0 the tokenizer's: 261 for bytes, data.vocab_size (an upper
    bound: BPE learns at most that many ids) for BPE."""
    size = int(config.model.text.get("vocab_size", 0) or 0)
    if size > 0:
        return size
    if config.data.get("tokenizer", "byte") == "bpe":
        return int(config.data.vocab_size)
    return ByteTokenizer.vocab_size


class CLIP(Method):
    """config.model.{encoder, text}; config.clip.{embed_dim, init_temperature, max_logit_scale};
    config.data.{text_len, templates} (a "captioned" or "tfds_captions" source: rows with "text");
    config.augment (a ViewSpec: CLIP's random resized crop)."""

    batch_keys = ("image", "text")

    def __init__(
        self,
        config: ml_collections.ConfigDict,
        *,
        num_steps: int | None = None,
        steps_per_epoch: int | None = None,
    ):
        super().__init__(config, num_steps=num_steps, steps_per_epoch=steps_per_epoch)
        check_config(config)

    # ---- networks

    def model(self, axis_name: str | None) -> CLIPModel:
        cfg = self.config
        text = cfg.model.text
        return CLIPModel(
            encoder=common.build_encoder(cfg, axis_name=axis_name),
            text_encoder=TextTransformer(
                vocab_size=text_vocab_size(cfg),
                max_len=int(cfg.data.text_len),
                width=int(text.width),
                depth=int(text.depth),
                num_heads=int(text.num_heads),
                mlp_ratio=float(text.get("mlp_ratio", 4.0)),
                pad_id=int(text.get("pad_id", 0)),
                dtype=common.activation_dtype(cfg.model),
            ),
            embed_dim=int(cfg.clip.embed_dim),
            init_temperature=float(cfg.clip.init_temperature),
            dtype=common.activation_dtype(cfg.model),
        )

    def view_spec(self) -> augment.ViewSpec:
        return common.view_spec(self.config)

    def logit_scale(self, log_logit_scale: jax.Array) -> jax.Array:
        """exp(t) capped at config.clip.max_logit_scale."""
        return capped_logit_scale(
            log_logit_scale, max_scale=float(self.config.clip.max_logit_scale)
        )

    # ---- Method interface

    def init(self, rng: jax.Array, image_shape: tuple[int, ...]) -> Variables:
        size = self.view_spec().crop_size
        images = jnp.zeros((2, size, size, image_shape[-1]), jnp.float32)
        tokens = jnp.ones((2, int(self.config.data.text_len)), jnp.int32)
        variables = self.model(None).init(rng, images, tokens, train=True)
        return Variables(variables["params"], variables.get("batch_stats", {}), extra={})

    def loss_fn(self, params, batch_stats, extra, batch, *, rng, step, axis_name):
        del extra, step
        images = common.augment_view(jax.random.fold_in(rng, 1), batch, 0, self.view_spec())
        (image_emb, text_emb, log_scale), updates = self.model(axis_name).apply(
            {"params": params, "batch_stats": batch_stats},
            images,
            batch["text"],
            train=True,
            mutable=["batch_stats"],
        )
        scale = self.logit_scale(log_scale)
        per_example = clip_loss(image_emb, text_emb, logit_scale=scale, axis_name=axis_name)
        metrics = {
            "logit_scale": scale,
            "embedding_std": common.embedding_std(image_emb, axis_name),  # collapse indicators
            "text_embedding_std": common.embedding_std(text_emb, axis_name),
        }
        return per_example.mean(), LossAux(updates.get("batch_stats", batch_stats), metrics)

    def encoder_variables(self, params, batch_stats):
        """The image backbone ("params", "batch_stats") plus, under "clip", the text tower, both
        projections and the logit scale, which the zero-shot protocol needs."""
        rest = {k: v for k, v in params.items() if k != "encoder"}
        return {
            "params": params["encoder"],
            "batch_stats": batch_stats.get("encoder", {}),
            CLIP_KEY: {"params": rest},
        }

    def encode(self, encoder_variables, images):
        x = common.eval_images(self.config, images)
        encoder = common.build_encoder(self.config, axis_name=None)
        backbone = {k: encoder_variables[k] for k in ("params", "batch_stats")}
        return encoder.apply(backbone, x, train=False).astype(jnp.float32)

    # ---- zero-shot classification

    def model_variables(self, encoder_variables: dict[str, PyTree]) -> dict[str, PyTree]:
        """The whole model's variables back from an exported encoder item."""
        if CLIP_KEY not in encoder_variables:
            raise ValueError(
                "This encoder has no text tower (it was not exported by the clip method), so it "
                "cannot classify zero-shot."
            )
        variables = {"params": {"encoder": encoder_variables["params"]}}
        variables["params"].update(encoder_variables[CLIP_KEY]["params"])
        if encoder_variables.get("batch_stats"):
            variables["batch_stats"] = {"encoder": encoder_variables["batch_stats"]}
        return variables

    def class_embeddings(
        self, encoder_variables: dict[str, PyTree], prompts: np.ndarray
    ) -> jax.Array:
        """prompts: int [C, T, L] (class x template tokens) -> [C, embed_dim] float32, unit norm."""
        num_classes, num_templates, length = prompts.shape
        model = self.model(None)

        @jax.jit
        def embed(variables, tokens):
            z = model.apply(variables, tokens, train=False, method=CLIPModel.embed_texts)
            z = l2_normalize(z).reshape(num_classes, num_templates, -1)
            return l2_normalize(z.mean(axis=1))

        return embed(self.model_variables(encoder_variables), prompts.reshape(-1, length))
