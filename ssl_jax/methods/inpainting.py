"""Context-encoder inpainting (Pathak et al. 2016): drop out a region of the image, encode what is left,
decode the whole image and score the reconstruction on the dropped region only (`inpainting_loss`).

The backbone (config.model.encoder) sees the normalized image with the region set to 0, the dataset
mean, as in the paper; its pooled features are the bottleneck, and `ConvDecoder` upsamples them back to
the image (the paper's channel-wise fully connected layer becomes a dense layer from the pooled vector).
Masks are made on device: the central region (side = mask_fraction of the image's) or, keyed by example
id, `num_blocks` random square blocks of side `block_size` (the paper's random-block variant; its
random-region variant cuts shapes from PASCAL segmentations, which we do not ship).

Only the reconstruction (L2) term is trained: the paper's adversarial term (weight 0.001 of the joint
loss) is left out, so predictions are the blurry conditional mean rather than sharp samples; the
adversarial term sharpens the inpainted pixels, while what is transferred here is the encoder.

config.inpainting: mask ("center" | "random_blocks"), mask_fraction, num_blocks, block_size,
decoder_widths, upsample ("transposed": the paper's stride-2 up-convolutions; "resize_conv":
nearest-neighbour x2 then a 3x3 conv, see `ConvDecoder`), flip (random horizontal flip before masking).
"""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections

from ssl_jax import augment
from ssl_jax.augment import pretext
from ssl_jax.losses.pretext import inpainting_loss
from ssl_jax.methods import common
from ssl_jax.methods.base import LossAux, Method, Variables
from ssl_jax.models.pretext_heads import ConvDecoder

MASKS = ("center", "random_blocks")


class ContextEncoder(nn.Module):
    """masked image [b, H, W, C] -> (features [b, D], reconstruction [b, H, W, C])."""

    encoder: nn.Module
    decoder: nn.Module

    @nn.compact
    def __call__(self, x: jax.Array, train: bool) -> tuple[jax.Array, jax.Array]:
        features = self.encoder(x, train=train)
        return features, self.decoder(features, train=train)


class Inpainting(Method):
    """config.inpainting; config.model.encoder (any registered backbone)."""

    def __init__(
        self,
        config: ml_collections.ConfigDict,
        *,
        num_steps: int | None = None,
        steps_per_epoch: int | None = None,
    ):
        super().__init__(config, num_steps=num_steps, steps_per_epoch=steps_per_epoch)
        if config.inpainting.mask not in MASKS:
            raise ValueError(
                f"inpainting.mask must be one of {MASKS}, got {config.inpainting.mask!r}."
            )
        if config.inpainting.get("adversarial_weight", 0.0):
            raise ValueError(
                "inpainting.adversarial_weight must be 0: the context encoder's adversarial term is not "
                "implemented (reconstruction loss only)."
            )

    def _network(self, axis_name: str | None, channels: int) -> ContextEncoder:
        cfg, size = self.config, self.config.data.image_size
        sync = cfg.model.get("sync_batch_norm", True)
        return ContextEncoder(
            encoder=common.build_encoder(cfg, axis_name=axis_name),
            decoder=ConvDecoder(
                out_shape=(size, size, channels),
                widths=tuple(cfg.inpainting.decoder_widths),
                upsample=cfg.inpainting.get("upsample", "transposed"),
                bn_axis_name=axis_name if sync else None,
                dtype=common.activation_dtype(cfg.model),
            ),
        )

    def init(self, rng: jax.Array, image_shape: tuple[int, ...]) -> Variables:
        size, channels = self.config.data.image_size, image_shape[-1]
        dummy = jnp.zeros((2, size, size, channels), jnp.float32)
        variables = self._network(None, channels).init(rng, dummy, train=True)
        return Variables(variables["params"], variables["batch_stats"], extra={})

    def masks(self, rng: jax.Array, example_ids: jax.Array, height: int, width: int) -> jax.Array:
        """bool [b, H, W]: True where the input is dropped out."""
        cfg = self.config.inpainting
        if cfg.mask == "center":
            mask = pretext.center_mask(height, width, fraction=cfg.mask_fraction)
            return jnp.broadcast_to(mask, (example_ids.shape[0], height, width))
        keys = jax.vmap(jax.random.fold_in, in_axes=(None, 0))(rng, example_ids)
        return jax.vmap(
            lambda k: pretext.random_block_mask(
                k, height, width, num_blocks=cfg.num_blocks, block_size=cfg.block_size
            )
        )(keys)

    def inputs(
        self, rng: jax.Array, images: jax.Array, example_ids: jax.Array
    ) -> tuple[jax.Array, jax.Array, jax.Array]:
        """(masked input, target, mask) of a uint8 batch: normalized float32 [b, H, W, C] twice, bool
        [b, H, W]."""
        x = common.eval_images(self.config, images)
        if self.config.inpainting.flip:
            keys = jax.vmap(jax.random.fold_in, in_axes=(None, 0))(
                jax.random.fold_in(rng, 0), example_ids
            )
            x = jax.vmap(augment.horizontal_flip)(keys, x)
        _, height, width, _ = x.shape
        mask = self.masks(jax.random.fold_in(rng, 1), example_ids, height, width)
        return jnp.where(mask[..., None], 0.0, x), x, mask

    def loss_fn(self, params, batch_stats, extra, batch, *, rng, step, axis_name):
        del extra, step
        masked, target, mask = self.inputs(rng, batch["image"], batch["example_ids"])
        (_, reconstruction), updates = self._network(axis_name, target.shape[-1]).apply(
            {"params": params, "batch_stats": batch_stats},
            masked,
            train=True,
            mutable=["batch_stats"],
        )
        per_example = inpainting_loss(reconstruction, target, mask)
        metrics = {"masked_fraction": jnp.mean(mask.astype(jnp.float32))}
        return per_example.mean(), LossAux(updates["batch_stats"], metrics)

    def encoder_variables(self, params, batch_stats):
        return {"params": params["encoder"], "batch_stats": batch_stats["encoder"]}

    def encode(self, encoder_variables, images):
        x = common.eval_images(self.config, images)
        encoder = common.build_encoder(self.config, axis_name=None)
        return encoder.apply(encoder_variables, x, train=False).astype(jnp.float32)
