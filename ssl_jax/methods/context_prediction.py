"""Context prediction (Doersch et al. 2015): from a patch and one of its 8 neighbours, predict where the
neighbour lies. A siamese backbone encodes both patches; `RelativePositionHead` fuses them late and
scores the 8 positions; the loss is `relative_position_loss`.

The pairs are cut on device per example (`augment.pretext.patch_pairs`, keyed by example id). Guards
against the shortcuts the paper found:
- edge continuity (texture or lines running across patch borders): a gap between the patches, and an
  independent jitter of each patch (the gap must exceed twice the jitter, so they never touch);
- chromatic aberration (the green-magenta shift towards the frame's edges reveals the absolute
  position): on RGB data each patch is colour-dropped (one channel kept, the other two replaced by
  small noise) or colour-projected (the green-magenta component removed), per config. Grayscale data
  such as Fashion-MNIST has no colour, so this shortcut does not exist there and nothing is done.

config.context_prediction: image_size (optional; else data.image_size), patch_size, gap, jitter, color ("drop" | "project" | "none"), noise_std,
hidden_dim (fc6/fc7 width). Evaluation encodes whole images with the trained backbone.
"""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections

from ssl_jax import augment
from ssl_jax.augment import pretext
from ssl_jax.losses.pretext import relative_position_loss
from ssl_jax.methods import common
from ssl_jax.methods.base import LossAux, Method, Variables
from ssl_jax.models.pretext_heads import RelativePositionHead

COLOR_MODES = ("drop", "project", "none")


class SiamesePatchNet(nn.Module):
    """(patches 1, patches 2) [b, P, P, C] -> position logits [b, 8]; one backbone pass over all 2b."""

    encoder: nn.Module
    head: nn.Module

    @nn.compact
    def __call__(self, p1: jax.Array, p2: jax.Array, train: bool) -> jax.Array:
        features = self.encoder(jnp.concatenate([p1, p2]), train=train)
        n = p1.shape[0]
        return self.head(features[:n], features[n:], train=train)


class ContextPrediction(Method):
    """config.context_prediction; config.model.encoder (any registered backbone)."""

    def __init__(
        self,
        config: ml_collections.ConfigDict,
        *,
        num_steps: int | None = None,
        steps_per_epoch: int | None = None,
    ):
        super().__init__(config, num_steps=num_steps, steps_per_epoch=steps_per_epoch)
        cfg = config.context_prediction
        if cfg.color not in COLOR_MODES:
            raise ValueError(
                f"context_prediction.color must be one of {COLOR_MODES}, got {cfg.color!r}."
            )
        size = self.grid_image_size
        pretext.check_patch_grid(size, size, cfg.patch_size, cfg.gap, cfg.jitter)

    @property
    def grid_image_size(self) -> int:
        """The side of the (resized, centre-cropped) image the 3x3 grid is cut from: the optional
        context_prediction.image_size, else config.data.image_size."""
        return int(
            self.config.context_prediction.get("image_size", 0) or self.config.data.image_size
        )

    def _network(self, axis_name: str | None) -> SiamesePatchNet:
        sync = self.config.model.get("sync_batch_norm", True)
        return SiamesePatchNet(
            encoder=common.build_encoder(self.config, axis_name=axis_name),
            head=RelativePositionHead(
                hidden_dim=self.config.context_prediction.hidden_dim,
                bn_axis_name=axis_name if sync else None,
                dtype=common.activation_dtype(self.config.model),
            ),
        )

    def init(self, rng: jax.Array, image_shape: tuple[int, ...]) -> Variables:
        size = self.config.context_prediction.patch_size
        dummy = jnp.zeros((2, size, size, image_shape[-1]), jnp.float32)
        variables = self._network(None).init(rng, dummy, dummy, train=True)
        return Variables(variables["params"], variables["batch_stats"], extra={})

    def make_pairs(
        self, rng: jax.Array, images: jax.Array, example_ids: jax.Array
    ) -> tuple[jax.Array, jax.Array, jax.Array]:
        """Normalized (centre, neighbour) patches [b, P, P, C] and labels [b] of a uint8 batch."""
        cfg = self.config.context_prediction
        data = self.config.data
        x = augment.preprocess_eval(
            images, image_size=self.grid_image_size, mean=tuple(data.mean), std=tuple(data.std)
        )
        p1, p2, labels = pretext.patch_pairs(
            jax.random.fold_in(rng, 0),
            x,
            example_ids,
            patch_size=cfg.patch_size,
            gap=cfg.gap,
            jitter=cfg.jitter,
        )
        if x.shape[-1] == 3 and cfg.color != "none":
            p1, p2 = self._chromatic_guard(jax.random.fold_in(rng, 1), p1, p2, example_ids)
        return p1, p2, labels

    def _chromatic_guard(self, rng, p1, p2, example_ids):
        cfg = self.config.context_prediction
        if cfg.color == "project":
            return pretext.project_out_green_magenta(p1), pretext.project_out_green_magenta(p2)
        keys = jax.vmap(jax.random.fold_in, in_axes=(None, 0))(rng, example_ids)
        drop = jax.vmap(lambda k, x: pretext.drop_color_channels(k, x, noise_std=cfg.noise_std))
        # Each patch drops its own channels: a shared choice would let the pair match colour statistics.
        return drop(jax.vmap(jax.random.fold_in, in_axes=(0, None))(keys, 1), p1), drop(
            jax.vmap(jax.random.fold_in, in_axes=(0, None))(keys, 2), p2
        )

    def loss_fn(self, params, batch_stats, extra, batch, *, rng, step, axis_name):
        del extra, step
        p1, p2, labels = self.make_pairs(rng, batch["image"], batch["example_ids"])
        logits, updates = self._network(axis_name).apply(
            {"params": params, "batch_stats": batch_stats},
            p1,
            p2,
            train=True,
            mutable=["batch_stats"],
        )
        per_example = relative_position_loss(logits, labels)
        metrics = {"position_accuracy": jnp.mean(jnp.argmax(logits, -1) == labels)}
        return per_example.mean(), LossAux(updates["batch_stats"], metrics)

    def encoder_variables(self, params, batch_stats):
        return {"params": params["encoder"], "batch_stats": batch_stats["encoder"]}

    def encode(self, encoder_variables, images):
        x = common.eval_images(self.config, images)
        if x.shape[-1] == 3 and self.config.context_prediction.color == "project":
            x = pretext.project_out_green_magenta(x)  # the colour space the backbone was trained in
        encoder = common.build_encoder(self.config, axis_name=None)
        return encoder.apply(encoder_variables, x, train=False).astype(jnp.float32)


__all__ = ["ContextPrediction"]
