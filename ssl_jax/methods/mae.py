"""MAE (He et al. 2022): mask most patches of an image, encode the rest, reconstruct the missing pixels.

Per step, on device: one light augmentation (random resized crop with scale 0.2-1, horizontal flip, the
paper's only augmentation), then per example a random subset of (1 - mask_ratio) of the patches is kept
(`random_patch_mask`: the argsort of uniform noise keyed by the example's global index, so the masks do
not depend on the device count). The ViT encoder sees the kept patches only (no mask tokens: that is
where MAE's saving comes from); the light decoder (`ssl_jax.models.mae_decoder`) adds mask tokens and
predicts every patch's pixels; the loss (`ssl_jax.losses.mae_loss`) is the MSE on the removed patches,
by default against per-patch normalized pixels (`norm_pix_loss`). The patches are cut from the same
normalized image the encoder receives.

The exported backbone is the encoder; `encode` runs it on every patch of the un-augmented image and
returns the class token after the final LayerNorm (the paper's linear probe reads the class token too;
its fine-tuning averages the patch tokens instead, which the shared fine-tuning protocol does not do).
Positions: the encoder uses what config.model.encoder_kwargs.position_embedding says (MAE: "sincos"),
the decoder always fixed sin-cos.
"""

from __future__ import annotations

from typing import NamedTuple

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections

from ssl_jax import augment
from ssl_jax.losses import mae_loss
from ssl_jax.methods import common
from ssl_jax.methods.base import LossAux, Method, Variables
from ssl_jax.models.mae_decoder import MAEDecoder
from ssl_jax.models.vit import ViT


class PatchMask(NamedTuple):
    """One masking of a batch of N-patch images, n_keep patches kept per example.

    keep: int32 [B, n_keep] grid indices of the kept patches (the encoder's `keep_indices`).
    restore: int32 [B, N] inverse permutation: grid position -> its index in [kept..., removed...].
    mask: float32 [B, N] in grid order, 1 where the patch was removed (and is reconstructed), else 0.
    """

    keep: jax.Array
    restore: jax.Array
    mask: jax.Array


def num_kept(num_patches: int, mask_ratio: float) -> int:
    """Patches each example keeps: int(N (1 - ratio)), as the paper's code (49 of 196 at 0.75)."""
    if not 0.0 < mask_ratio < 1.0:
        raise ValueError(f"mask_ratio must be in (0, 1), got {mask_ratio}.")
    keep = int(num_patches * (1.0 - mask_ratio))
    if keep < 1:
        raise ValueError(f"mask_ratio {mask_ratio} keeps no patch out of {num_patches}.")
    return keep


def random_patch_mask(
    rng: jax.Array, example_ids: jax.Array, num_patches: int, *, mask_ratio: float = 0.75
) -> PatchMask:
    """Per-example uniformly random masking, computed on device.

    Example i draws N uniforms from fold_in(rng, example_ids[i]) and keeps the patches with the
    n_keep smallest (the paper's "random sampling": argsort of noise). Every example keeps exactly
    n_keep = `num_kept(N, mask_ratio)` patches; its mask depends only on rng and its global index.
    """
    if example_ids.ndim != 1 or not jnp.issubdtype(example_ids.dtype, jnp.integer):
        raise ValueError(
            f"example_ids must be int [batch], got {example_ids.dtype} {example_ids.shape}."
        )
    keep_count = num_kept(num_patches, mask_ratio)
    keys = jax.vmap(jax.random.fold_in, in_axes=(None, 0))(rng, example_ids)
    noise = jax.vmap(lambda k: jax.random.uniform(k, (num_patches,)))(keys)
    shuffle = jnp.argsort(noise, axis=1).astype(jnp.int32)
    restore = jnp.argsort(shuffle, axis=1).astype(jnp.int32)
    mask = (restore >= keep_count).astype(jnp.float32)
    return PatchMask(keep=shuffle[:, :keep_count], restore=restore, mask=mask)


def patchify(images: jax.Array, patch_size: int) -> jax.Array:
    """[B, H, W, C] -> [B, (H // p) (W // p), p * p * C]: row-major patches, pixels in (row, column,
    channel) order within each; sides are cut to a multiple of p, as the ViT's VALID patch conv does."""
    batch, height, width, channels = images.shape
    p = patch_size
    rows, cols = height // p, width // p
    x = images[:, : rows * p, : cols * p].reshape(batch, rows, p, cols, p, channels)
    return x.transpose(0, 1, 3, 2, 4, 5).reshape(batch, rows * cols, p * p * channels)


class MaskedAutoencoder(nn.Module):
    """encoder (a ViT, on the kept patches) -> decoder; parameters under "encoder" and "decoder"."""

    encoder: ViT
    decoder: MAEDecoder

    @nn.compact
    def __call__(self, x: jax.Array, keep: jax.Array, restore: jax.Array, train: bool) -> jax.Array:
        tokens = self.encoder(x, train=train, keep_indices=keep, return_tokens=True)
        return self.decoder(tokens, restore, train=train)


class MAE(Method):
    """config.mae.{mask_ratio, norm_pix_loss}; config.model.encoder (a ViT) and config.model.decoder
    {hidden_dim, depth, num_heads}; config.augment: ViewSpec fields (preset None) for the one view."""

    def __init__(
        self,
        config: ml_collections.ConfigDict,
        *,
        num_steps: int | None = None,
        steps_per_epoch: int | None = None,
    ):
        super().__init__(config, num_steps=num_steps, steps_per_epoch=steps_per_epoch)
        encoder = common.build_encoder(config, axis_name=None)
        if not isinstance(encoder, ViT):
            raise ValueError(
                f"MAE needs a ViT encoder (vit_tiny, vit_small, vit_base), got {config.model.encoder!r}."
            )
        self.patch_size = encoder.patch_size
        size = self._view_spec().crop_size
        self.grid = (size // self.patch_size, size // self.patch_size)
        self.num_patches = self.grid[0] * self.grid[1]
        self.num_keep = num_kept(self.num_patches, config.mae.mask_ratio)

    def _view_spec(self) -> augment.ViewSpec:
        return common.view_spec(self.config)

    def train_views(self) -> tuple[augment.ViewSpec]:
        return (self._view_spec(),)

    def _network(self, channels: int) -> MaskedAutoencoder:
        cfg = self.config.model
        dec = cfg.decoder
        encoder = common.build_encoder(self.config, axis_name=None)
        return MaskedAutoencoder(
            encoder=encoder,
            decoder=MAEDecoder(
                grid=self.grid,
                patch_dim=self.patch_size**2 * channels,
                hidden_dim=dec.hidden_dim,
                depth=dec.depth,
                num_heads=dec.num_heads,
                mlp_ratio=dec.get("mlp_ratio", 4.0),
                attention_implementation=encoder.attention_implementation,
                dtype=common.activation_dtype(cfg),
            ),
        )

    def init(self, rng: jax.Array, image_shape: tuple[int, ...]) -> Variables:
        size, channels = self._view_spec().crop_size, image_shape[-1]
        dummy = jnp.zeros((2, size, size, channels), jnp.float32)
        masks = random_patch_mask(
            rng, jnp.arange(2), self.num_patches, mask_ratio=self.config.mae.mask_ratio
        )
        variables = self._network(channels).init(rng, dummy, masks.keep, masks.restore, train=True)
        return Variables(variables["params"], {}, extra={})

    def masks(self, rng: jax.Array, example_ids: jax.Array) -> PatchMask:
        """The step's masks (a pure function of the step key and the global example indices)."""
        return random_patch_mask(
            jax.random.fold_in(rng, 2),
            example_ids,
            self.num_patches,
            mask_ratio=self.config.mae.mask_ratio,
        )

    def loss_fn(self, params, batch_stats, extra, batch, *, rng, step, axis_name):
        del extra, step, axis_name  # nothing spans devices: each example's loss is its own
        ids = batch["example_ids"]
        x = common.augment_view(jax.random.fold_in(rng, 1), batch, 0, self._view_spec())
        masks = self.masks(rng, ids)
        predictions = self._network(x.shape[-1]).apply(
            {"params": params},
            x,
            masks.keep,
            masks.restore,
            train=True,
            rngs={"dropout": jax.random.fold_in(rng, 3)},  # stochastic depth, when configured
        )
        per_example = mae_loss(
            predictions,
            patchify(x, self.patch_size),
            masks.mask,
            norm_pix_loss=self.config.mae.norm_pix_loss,
        )
        metrics = {"masked_fraction": jnp.mean(masks.mask)}
        return per_example.mean(), LossAux(batch_stats, metrics)

    def encoder_variables(self, params, batch_stats):
        del batch_stats  # a ViT has no BatchNorm
        return {"params": params["encoder"], "batch_stats": {}}

    def encode(self, encoder_variables, images):
        x = common.eval_images(self.config, images)
        encoder = common.build_encoder(self.config, axis_name=None)
        return encoder.apply(encoder_variables, x, train=False).astype(jnp.float32)
