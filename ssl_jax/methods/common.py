"""Pieces most image methods share: building the backbone from the config, backbone + head networks,
a training view of a batch (`augment_view`), evaluation preprocessing, and the collapse indicator
every method logs."""

from __future__ import annotations

import dataclasses
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections

from ssl_jax import augment, models, parallel
from ssl_jax.losses._checks import l2_normalize


def activation_dtype(model_cfg: ml_collections.ConfigDict) -> jnp.dtype:
    return jnp.dtype(model_cfg.get("dtype", "float32"))


def build_encoder(config: ml_collections.ConfigDict, *, axis_name: str | None) -> nn.Module:
    """The backbone named by config.model.encoder; BN synchronized over `axis_name` when training."""
    model_cfg = config.model
    kwargs = dict(model_cfg.get("encoder_kwargs", {}) or {})
    sync = model_cfg.get("sync_batch_norm", True)
    return models.get_encoder(
        model_cfg.encoder,
        dtype=activation_dtype(model_cfg),
        bn_axis_name=axis_name if sync else None,
        **kwargs,
    )


def build_mlp(
    config: ml_collections.ConfigDict, head_cfg: Any, *, axis_name: str | None
) -> nn.Module:
    sync = config.model.get("sync_batch_norm", True)
    return models.MLPHead(
        hidden_dim=head_cfg.hidden_dim,
        output_dim=head_cfg.output_dim,
        num_layers=head_cfg.get("num_layers", 2),
        use_bn=head_cfg.get("use_bn", True),
        last_bn=head_cfg.get("last_bn", False),
        bn_axis_name=axis_name if sync else None,
        dtype=activation_dtype(config.model),
    )


class EncoderWithHead(nn.Module):
    """backbone -> head; parameters live under "encoder" and "head" so the backbone exports on its own."""

    encoder: nn.Module
    head: nn.Module

    @nn.compact
    def __call__(self, x: jax.Array, train: bool) -> tuple[jax.Array, jax.Array]:
        features = self.encoder(x, train=train)
        return features, self.head(features, train=train)


def view_spec(config: ml_collections.ConfigDict, **overrides: Any) -> augment.ViewSpec:
    """config.augment as a ViewSpec, normalized with config.data's statistics unless it sets its own."""
    fields = dict(
        config.augment.to_dict() if hasattr(config.augment, "to_dict") else config.augment
    )
    fields.setdefault("mean", tuple(config.data.mean))
    fields.setdefault("std", tuple(config.data.std))
    fields.update(overrides)
    return augment.ViewSpec.from_config(fields)


def view_pair(config: ml_collections.ConfigDict) -> tuple[augment.ViewSpec, augment.ViewSpec]:
    """The two views' specs: BYOL's asymmetric pair for augment preset "byol", else one spec twice."""
    if config.augment.get("preset") == "byol":
        return view_spec(config, view=0), view_spec(config, view=1)
    spec = view_spec(config)
    return spec, spec


def view_input(
    batch: dict[str, jax.Array], index: int, spec: augment.ViewSpec
) -> tuple[jax.Array, augment.ViewSpec]:
    """(uint8 images, spec) of training view `index`: the host's crop batch["view_<index>"] with
    the spec's crop turned off when the host cropped photographs (the method's `train_views`, in
    order), else the whole batch["image"] and `spec` as it is, cropped on device."""
    key = f"view_{index}"
    if key in batch:
        return batch[key], dataclasses.replace(spec, host_cropped=True)
    return batch["image"], spec


def augment_view(
    rng: jax.Array, batch: dict[str, jax.Array], index: int, spec: augment.ViewSpec
) -> jax.Array:
    """Training view `index` of this device's rows (`view_input`), augmented by `spec` on device,
    each example keyed by `rng` and its global id: float32 [b, s, s, C]."""
    images, spec = view_input(batch, index, spec)
    return augment.augment_batch(rng, images, batch["example_ids"], spec)


def crop_inputs(batch: dict[str, jax.Array], num_views: int) -> jax.Array | list[jax.Array]:
    """What a multi-view method crops from: batch["image"] (every view cut on device), or the
    host's crops [batch["view_0"], ..., batch["view_<num_views - 1>"]] of photographs."""
    if "view_0" in batch:
        return [batch[f"view_{i}"] for i in range(num_views)]
    return batch["image"]


def eval_images(config: ml_collections.ConfigDict, images: jax.Array) -> jax.Array:
    """uint8 [b, H, W, C] -> normalized float input of the backbone, deterministically."""
    data = config.data
    return augment.preprocess_eval(
        images, image_size=data.image_size, mean=tuple(data.mean), std=tuple(data.std)
    )


def embedding_std(z: jax.Array, axis_name: str | None = None) -> jax.Array:
    """Collapse indicator (Chen & He 2021): mean over dimensions of the std over the batch of l2-normalized
    embeddings. About 1/sqrt(dim) for well-spread embeddings, 0 when they collapse to a point."""
    z = parallel.all_gather(l2_normalize(z.astype(jnp.float32)), axis_name)
    return jnp.mean(jnp.std(z, axis=0))
