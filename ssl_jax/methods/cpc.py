"""Contrastive Predictive Coding (van den Oord et al. 2018): an encoder maps the input to a sequence z_t,
an autoregressive GRU summarises z_1..z_t into a context c_t, and a bilinear map W_k c_t must pick out
z_{t+k} among the encodings of the other sequences of the global batch (InfoNCE, summed over k and
averaged over t: `ssl_jax.losses.cpc_loss`).

config.cpc.mode chooses the input:
- "sequence": 1-D signals ("signal" float32 [L], e.g. the "synthetic_signals" source); a strided 1-D
  convolution stack gives one sequence z [T, dz] per signal; the features for evaluation are the
  mean-pooled contexts c_t (the paper's audio setting).
- "image_patches": images ("image" uint8 [H, W, C]); a grid of overlapping patches, one small CNN per
  patch, and one GRU down each column of the grid, predicting the rows below (CPC v1's image setting,
  with a GRU per column in place of its PixelCNN context: ssl_jax.models.cpc). The first prediction is
  `first_step` rows ahead: with 8-pixel patches at stride 4, the next row overlaps the context's own
  pixels, so configs start at 2. The features are the mean-pooled patch encodings z (as the paper
  classifies mean-pooled encoder outputs).
config.cpc.features overrides that choice ("encoder", "context" or "both").
Every sequence of an image (every column) is a row of the loss; an image's loss is the mean over its
columns. No augmentation and no BatchNorm (LayerNorm instead), so nothing but the loss's gather couples
the examples of a batch.
"""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections

from ssl_jax.losses import cpc_loss
from ssl_jax.methods import common
from ssl_jax.methods.base import LossAux, Method, Variables
from ssl_jax.models.cpc import (
    FEATURE_KINDS,
    CPCFeatures,
    CPCNetwork,
    PatchGridEncoder,
    SignalEncoder,
)

# mode -> (source field it trains on, default features for evaluation)
MODES = {"image_patches": ("image", "encoder"), "sequence": ("signal", "context")}


class CPC(Method):
    """config.cpc.{mode, z_dim, context_dim, num_predictions, first_step, features, widths, strides,
    kernels (sequence), patch_size, patch_stride, patch_pad (image_patches)}."""

    def __init__(
        self,
        config: ml_collections.ConfigDict,
        *,
        num_steps: int | None = None,
        steps_per_epoch: int | None = None,
    ):
        super().__init__(config, num_steps=num_steps, steps_per_epoch=steps_per_epoch)
        cfg = config.cpc
        if cfg.mode not in MODES:
            raise ValueError(f"config.cpc.mode must be one of {sorted(MODES)}, got {cfg.mode!r}.")
        key, default_features = MODES[cfg.mode]
        self.batch_keys = (key,)
        self.features = cfg.get("features") or default_features
        if self.features not in FEATURE_KINDS:
            raise ValueError(
                f"config.cpc.features must be one of {FEATURE_KINDS}, got {self.features!r}."
            )

    def encoder_module(self, *, axis_name: str | None = None) -> nn.Module:
        """x -> the configured features, with the "encoder" and "context" parameters that
        `encoder_variables` exports (what fine-tuning trains)."""
        del axis_name  # no BatchNorm
        return self.network(CPCFeatures, kind=self.features)

    def network(self, cls: type[CPCNetwork] = CPCNetwork, **kwargs) -> CPCNetwork:
        """The configured network (`cls`, with extra fields `kwargs`: CPCFeatures for fine-tuning)."""
        cfg = self.config.cpc
        dtype = common.activation_dtype(self.config.model)
        if cfg.mode == "sequence":
            encoder = SignalEncoder(
                widths=tuple(cfg.widths),
                kernels=tuple(cfg.kernels),
                strides=tuple(cfg.strides),
                z_dim=cfg.z_dim,
                dtype=dtype,
            )
        else:
            encoder = PatchGridEncoder(
                patch_size=cfg.patch_size,
                stride=cfg.patch_stride,
                pad=cfg.patch_pad,
                widths=tuple(cfg.widths),
                strides=tuple(cfg.strides),
                z_dim=cfg.z_dim,
                dtype=dtype,
            )
        return cls(
            encoder=encoder,
            context_dim=cfg.context_dim,
            num_predictions=cfg.num_predictions,
            dtype=dtype,
            **kwargs,
        )

    def preprocess(
        self,
        x: jax.Array,
        *,
        train: bool = False,
        rng: jax.Array | None = None,
        example_ids: jax.Array | None = None,
        host_cropped: bool = False,
    ) -> jax.Array:
        """The network's input: the float signal as it is (no augmentation, in training either), or
        images as `Method.preprocess` makes them (fine-tuning's light augmentation when train)."""
        if self.config.cpc.mode == "sequence":
            return jnp.asarray(x, jnp.float32)
        return super().preprocess(
            x, train=train, rng=rng, example_ids=example_ids, host_cropped=host_cropped
        )

    def init(self, rng: jax.Array, image_shape: tuple[int, ...]) -> Variables:
        dtype = jnp.float32 if self.config.cpc.mode == "sequence" else jnp.uint8
        dummy = self.preprocess(jnp.zeros((2, *image_shape), dtype))
        variables = self.network().init(rng, dummy)
        return Variables(variables["params"], {}, extra={})

    def loss_fn(self, params, batch_stats, extra, batch, *, rng, step, axis_name):
        del extra, rng, step
        x = self.preprocess(batch[self.batch_keys[0]])
        z, _, predictions = self.network().apply({"params": params}, x)
        b, s, t, dz = z.shape
        # Every sequence (a signal, or a column of an image's patch grid) is a row of the loss.
        per_sequence = cpc_loss(
            predictions.reshape(b * s, t, -1, dz),
            z.reshape(b * s, t, dz),
            first_step=self.config.cpc.first_step,
            axis_name=axis_name,
        )
        per_example = per_sequence.reshape(b, s).mean(axis=1)
        metrics = {"embedding_std": common.embedding_std(z.mean(axis=(1, 2)), axis_name)}
        return per_example.mean(), LossAux(batch_stats, metrics)

    def encoder_variables(self, params, batch_stats):
        del batch_stats
        # What `features` reads: the encoder, and the context network unless only z is used.
        keep = ("encoder",) if self.features == "encoder" else ("encoder", "context")
        return {"params": {k: params[k] for k in keep}, "batch_stats": {}}

    def encode(self, encoder_variables, images):
        return self.network().apply(
            {"params": encoder_variables["params"]},
            self.preprocess(images),
            self.features,
            method=CPCNetwork.features,
        )
