"""Supervised pre-training, the transfer baseline of R-CNN (Girshick et al. 2014): train a classifier on
one labelled task, then fine-tune (or probe) its backbone on another.

The network is config.model.encoder followed by a linear classifier over config.data.num_classes,
trained with softmax cross-entropy (optionally label-smoothed) on lightly augmented images (config.augment:
a random resized crop and a flip, no colour changes). The "one labelled task" is chosen at the data level,
so the same option chooses the downstream task: e.g. Fashion-MNIST classes 0-4 upstream
(data.name="class_subset", data.classes=(0, 1, 2, 3, 4)) and classes 5-9 downstream (`ssl-jax evaluate
--config.data.classes='(5,6,7,8,9)'`); see ssl_jax.data.subsets.

Which layer transfers (R-CNN compares pool5, fc6 and fc7): config.supervised.transfer_layer = k keeps
the first k stages of the backbone (small_cnn: its first k conv-BN-ReLU layers; ResNets: the stem and
the first k residual stages) and the exported encoder is that prefix, globally average-pooled: its
features are k-th stage's channels (small_cnn widths[k-1], ResNet 64 * 2^(k-1) * expansion). k = 0 (the
default) transfers the whole backbone. The classifier is always trained on the whole backbone; only
what is exported, encoded and fine-tuned changes.
"""

from __future__ import annotations

import functools
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections

from ssl_jax import augment, models
from ssl_jax.losses import token_cross_entropy
from ssl_jax.methods import common
from ssl_jax.methods.base import LossAux, Method, Variables

# Which constructor field lists an encoder's stages, for the encoders a prefix can be cut from.
_STAGE_FIELDS = {
    "small_cnn": ("widths", "strides"),
    "resnet18": ("stage_sizes",),
    "resnet34": ("stage_sizes",),
    "resnet50": ("stage_sizes",),
}


def num_stages(name: str, kwargs: dict[str, Any]) -> int:
    """How many stages `get_encoder(name, **kwargs)` has (what transfer_layer counts)."""
    if name not in _STAGE_FIELDS:
        raise ValueError(
            f"supervised.transfer_layer > 0 cuts stages of {sorted(_STAGE_FIELDS)}; "
            f"encoder {name!r} can only transfer whole (transfer_layer=0)."
        )
    module = models.get_encoder(name, **kwargs)
    return len(getattr(module, _STAGE_FIELDS[name][0]))


def truncated_kwargs(name: str, kwargs: dict[str, Any], layer: int) -> dict[str, Any]:
    """Constructor kwargs of the encoder `name` cut after its first `layer` stages (0: unchanged)."""
    if layer == 0:
        return dict(kwargs)
    total = num_stages(name, kwargs)
    if not 1 <= layer <= total:
        raise ValueError(
            f"supervised.transfer_layer must be in [0, {total}] for this {name}; got {layer}."
        )
    module = models.get_encoder(name, **kwargs)
    cut = dict(kwargs)
    for field in _STAGE_FIELDS[name]:
        cut[field] = tuple(getattr(module, field))[:layer]
    return cut


class ClassifierNetwork(nn.Module):
    """backbone -> linear classifier; parameters under "encoder" and "classifier"."""

    encoder: nn.Module
    num_classes: int

    @nn.compact
    def __call__(self, x: jax.Array, train: bool) -> tuple[jax.Array, jax.Array]:
        features = self.encoder(x, train=train)
        logits = nn.Dense(self.num_classes, param_dtype=jnp.float32, name="classifier")(features)
        return features, logits.astype(jnp.float32)


class Supervised(Method):
    """config.supervised.{transfer_layer, label_smoothing}; config.model.encoder; config.augment (a
    ViewSpec without preset: crop_size, crop_scale, flip_prob, jitter_prob = 0)."""

    batch_keys = ("image", "label")

    def __init__(
        self,
        config: ml_collections.ConfigDict,
        *,
        num_steps: int | None = None,
        steps_per_epoch: int | None = None,
    ):
        super().__init__(config, num_steps=num_steps, steps_per_epoch=steps_per_epoch)
        self.transfer_layer = int(config.supervised.get("transfer_layer", 0))
        if self.transfer_layer:
            truncated_kwargs(config.model.encoder, self._encoder_kwargs(), self.transfer_layer)

    def _encoder_kwargs(self) -> dict[str, Any]:
        return dict(self.config.model.get("encoder_kwargs", {}) or {})

    def _network(self, axis_name: str | None) -> ClassifierNetwork:
        return ClassifierNetwork(
            encoder=common.build_encoder(self.config, axis_name=axis_name),
            num_classes=int(self.config.data.num_classes),
        )

    def train_views(self) -> tuple[augment.ViewSpec]:
        return (common.view_spec(self.config),)

    def init(self, rng: jax.Array, image_shape: tuple[int, ...]) -> Variables:
        spec = common.view_spec(self.config)
        dummy = jnp.zeros((2, spec.crop_size, spec.crop_size, image_shape[-1]), jnp.float32)
        variables = self._network(None).init(rng, dummy, train=True)
        return Variables(variables["params"], variables["batch_stats"], extra={})

    def loss_fn(self, params, batch_stats, extra, batch, *, rng, step, axis_name):
        del extra, step
        x = common.augment_view(rng, batch, 0, common.view_spec(self.config))
        (features, logits), updates = self._network(axis_name).apply(
            {"params": params, "batch_stats": batch_stats}, x, train=True, mutable=["batch_stats"]
        )
        smoothing = float(self.config.supervised.get("label_smoothing", 0.0))
        per_example = token_cross_entropy(logits, batch["label"], label_smoothing=smoothing)
        metrics = {
            "train_accuracy": jnp.mean(jnp.argmax(logits, -1) == batch["label"]),
            "embedding_std": common.embedding_std(features, axis_name),
        }
        return per_example.mean(), LossAux(updates["batch_stats"], metrics)

    # ---- what transfers

    @functools.cached_property
    def _exported_names(self) -> tuple[frozenset, frozenset]:
        """Top-level parameter / statistics names of the transferred prefix of the backbone."""
        data = self.config.data
        dummy = jax.ShapeDtypeStruct(
            (1, data.image_size, data.image_size, data.channels), jnp.float32
        )
        shapes = jax.eval_shape(
            lambda x: self.encoder_module().init(jax.random.PRNGKey(0), x, train=False), dummy
        )
        return frozenset(shapes["params"]), frozenset(shapes.get("batch_stats", {}))

    def encoder_module(self, *, axis_name: str | None = None) -> nn.Module:
        """The transferred backbone: config.model.encoder cut after supervised.transfer_layer stages."""
        model_cfg = self.config.model
        return models.get_encoder(
            model_cfg.encoder,
            dtype=common.activation_dtype(model_cfg),
            bn_axis_name=axis_name if model_cfg.get("sync_batch_norm", True) else None,
            **truncated_kwargs(model_cfg.encoder, self._encoder_kwargs(), self.transfer_layer),
        )

    def encoder_variables(self, params, batch_stats):
        param_names, stat_names = self._exported_names
        return {
            "params": {k: v for k, v in params["encoder"].items() if k in param_names},
            "batch_stats": {k: v for k, v in batch_stats["encoder"].items() if k in stat_names},
        }

    def encode(self, encoder_variables, images):
        x = common.eval_images(self.config, images)
        return self.encoder_module().apply(encoder_variables, x, train=False).astype(jnp.float32)
