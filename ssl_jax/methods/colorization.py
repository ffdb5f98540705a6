"""Colorization (Zhang et al. 2016; Larsson et al. 2016): predict an image's colour from its lightness.

On device, each uint8 RGB image is converted to CIE Lab (`augment.pretext.rgb_to_lab`); the backbone
(config.model.encoder, a convolutional one, with one input channel) sees L / 50 - 1, and
`ColorizationHead`, a small fully convolutional net of our own on the backbone's last feature map,
scores every output pixel over the in-gamut ab bins of a `grid_size` grid.

We chose classification, as Zhang et al.: the ab target at each output pixel (area-downsampled to
`output_size`) is soft-encoded over its 5 nearest bins (Gaussian, sigma 5), and each pixel's
cross-entropy is weighted by the rebalancing weight of its nearest bin, so that rare saturated colours
are not drowned by the desaturated ones a regression loss would average towards. The weights
(`augment.pretext.rebalancing_weights`, lambda = 0.5, sigma = 5) come from the ab histogram of up to
`prior_examples` training images, the data input "ab_counts" (counted above the methods, by
ssl_jax.method_inputs); they are computed once on the host when the state is initialized, and live in
`state.extra["class_weights"]` (so the checkpoint records them). With `rebalance = False` all weights are 1.

`encode` gives the backbone's pooled features of the L channel ([b, D]), so kNN, linear probe and
fine-tuning work as for any method; `colorize` turns logits back into RGB with the annealed mean.
The method needs RGB data (any RGB tfds or image-folder dataset, or the offline "skimage_samples").

config.colorization: grid_size, output_size, head_width, soft_neighbours, soft_sigma, rebalance,
rebalance_mix, rebalance_sigma, prior_examples, flip, temperature (annealed mean, for `colorize`).
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from ssl_jax import augment
from ssl_jax.augment import pretext
from ssl_jax.losses.pretext import colorization_loss
from ssl_jax.methods import common
from ssl_jax.methods.base import LossAux, Method, Variables
from ssl_jax.models.pretext_heads import ColorizationHead, backbone_feature_map


def lightness_input(lab: jax.Array) -> jax.Array:
    """The backbone's input: L in [0, 100] -> [-1, 1], one channel [..., 1]."""
    return lab[..., :1] / 50.0 - 1.0


def _three_channels(x: jax.Array) -> jax.Array:
    """Gray images [..., 1] repeated to RGB; RGB as it is."""
    return jnp.repeat(x, 3, axis=-1) if x.shape[-1] == 1 else x


def annealed_mean_ab(logits: jax.Array, centers: jax.Array, temperature: float = 0.38) -> jax.Array:
    """Zhang et al. 2016, eq. 5: the mean of the bin centres under softmax(logits / T).

    logits: [..., Q]; centers: [Q, 2]. Returns ab [..., 2]; T -> 0 is the mode, T = 1 the mean.
    """
    probs = jax.nn.softmax(jnp.asarray(logits, jnp.float32) / temperature, axis=-1)
    return probs @ jnp.asarray(centers, jnp.float32)


class Colorization(Method):
    """config.colorization; config.model.encoder (small_cnn or resnet*)."""

    def __init__(
        self,
        config: ml_collections.ConfigDict,
        *,
        num_steps: int | None = None,
        steps_per_epoch: int | None = None,
    ):
        super().__init__(config, num_steps=num_steps, steps_per_epoch=steps_per_epoch)
        if config.colorization.grid_size <= 0:
            raise ValueError(
                f"colorization.grid_size must be positive, got {config.colorization.grid_size}."
            )

    @functools.cached_property
    def grid(self) -> pretext.AbGrid:
        """The ab bins (computed on first use: evaluation, which only encodes, never needs them)."""
        return pretext.ab_grid(float(self.config.colorization.grid_size))

    # ---- networks

    def _encoder(self, axis_name: str | None):
        return common.build_encoder(self.config, axis_name=axis_name)

    def _head(self, axis_name: str | None) -> ColorizationHead:
        cfg = self.config
        size = cfg.colorization.output_size
        return ColorizationHead(
            num_bins=self.grid.num_bins,
            out_size=(size, size),
            width=cfg.colorization.head_width,
            bn_axis_name=axis_name if cfg.model.get("sync_batch_norm", True) else None,
            dtype=common.activation_dtype(cfg.model),
        )

    def _rgb(self, images: jax.Array) -> jax.Array:
        """uint8 [b, H, W, C] -> RGB in [0, 1] at data.image_size (gray images are repeated to RGB)."""
        x = augment.preprocess_eval(
            images, image_size=self.config.data.image_size, mean=(0.0,), std=(1.0,)
        )
        return _three_channels(x)

    # ---- the colour prior

    def data_inputs(self) -> tuple[str, ...]:
        """Rebalancing needs "ab_counts", the training split's ab histogram (`method_inputs.ab_counts`)."""
        return ("ab_counts",) if self.config.colorization.rebalance else ()

    def class_weights(self) -> np.ndarray:
        """Rebalancing weights [Q] from the training split's ab histogram (host side, once)."""
        cfg = self.config.colorization
        if not cfg.rebalance:
            return np.ones(self.grid.num_bins, np.float32)
        return pretext.rebalancing_weights(
            self.data_input("ab_counts"),
            self.grid.centers,
            sigma=cfg.rebalance_sigma,
            mix=cfg.rebalance_mix,
        )

    # ---- Method interface

    def init(self, rng: jax.Array, image_shape: tuple[int, ...]) -> Variables:
        if image_shape[-1] != 3:
            raise ValueError(
                f"Colorization needs RGB images [H, W, 3]; the data has shape {tuple(image_shape)}. "
                "Use an RGB dataset (e.g. --config.data.name=skimage_samples)."
            )
        size = self.config.data.image_size
        dummy = jnp.zeros((2, size, size, 1), jnp.float32)
        enc_rng, head_rng = jax.random.split(rng)
        encoder = self._encoder(None)
        enc_vars = encoder.init(enc_rng, dummy, train=True)
        _, feature_map, _ = backbone_feature_map(encoder, enc_vars, dummy, train=True)
        head_vars = self._head(None).init(head_rng, feature_map, train=True)
        params = {"encoder": enc_vars["params"], "head": head_vars["params"]}
        stats = {"encoder": enc_vars["batch_stats"], "head": head_vars["batch_stats"]}
        # Host-side NumPy, evaluated while `init` is traced: the weights enter as a constant.
        extra = {"class_weights": jnp.asarray(self.class_weights())}
        return Variables(params, stats, extra)

    def targets(
        self, rng: jax.Array, images: jax.Array, example_ids: jax.Array
    ) -> tuple[jax.Array, jax.Array]:
        """(backbone input [b, H, W, 1], soft ab targets [b, s, s, Q]) of a uint8 RGB batch."""
        cfg = self.config.colorization
        rgb = self._rgb(images)
        if cfg.flip:
            keys = jax.vmap(jax.random.fold_in, in_axes=(None, 0))(rng, example_ids)
            rgb = jax.vmap(augment.horizontal_flip)(keys, rgb)
        lab = pretext.rgb_to_lab(rgb)
        size = cfg.output_size
        ab = jax.image.resize(lab[..., 1:], (lab.shape[0], size, size, 2), "linear")
        soft = pretext.soft_encode_ab(
            ab, self.grid, neighbours=cfg.soft_neighbours, sigma=cfg.soft_sigma
        )
        return lightness_input(lab), soft

    def loss_fn(self, params, batch_stats, extra, batch, *, rng, step, axis_name):
        del step
        x, soft = self.targets(rng, batch["image"], batch["example_ids"])
        _, feature_map, enc_stats = backbone_feature_map(
            self._encoder(axis_name),
            {"params": params["encoder"], "batch_stats": batch_stats["encoder"]},
            x,
            train=True,
        )
        logits, head_state = self._head(axis_name).apply(
            {"params": params["head"], "batch_stats": batch_stats["head"]},
            feature_map,
            train=True,
            mutable=["batch_stats"],
        )
        per_example = colorization_loss(logits, soft, extra["class_weights"])
        hit = jnp.argmax(logits, axis=-1) == jnp.argmax(soft, axis=-1)
        metrics = {"bin_accuracy": jnp.mean(hit.astype(jnp.float32))}
        stats = {"encoder": enc_stats, "head": head_state["batch_stats"]}
        return per_example.mean(), LossAux(stats, metrics)

    def encoder_variables(self, params, batch_stats):
        return {"params": params["encoder"], "batch_stats": batch_stats["encoder"]}

    def preprocess(self, inputs, *, train=False, rng=None, example_ids=None, host_cropped=False):
        """The backbone's input, the L channel [b, H, W, 1] in [-1, 1]: of the image as it is
        (train=False) or of fine-tuning's random resized crop and flip of it (train=True)."""
        if not train:
            return lightness_input(pretext.rgb_to_lab(self._rgb(inputs)))
        if rng is None or example_ids is None:
            raise ValueError("preprocess(train=True) needs rng and example_ids.")
        # RGB in [0, 1], then Lab
        spec = self.finetune_view(mean=(0.0,), std=(1.0,), host_cropped=host_cropped)
        rgb = _three_channels(augment.augment_batch(rng, inputs, example_ids, spec))
        return lightness_input(pretext.rgb_to_lab(rgb))

    def encode(self, encoder_variables, images):
        x = self.preprocess(images)
        encoder = self._encoder(None)
        return encoder.apply(encoder_variables, x, train=False).astype(jnp.float32)

    def colorize(self, params, batch_stats, images: jax.Array) -> jax.Array:
        """RGB [b, H, W, 3] in [0, 1]: each image's own L with the predicted ab (annealed mean,
        upsampled to the image), in eval mode."""
        rgb = self._rgb(images)
        lab = pretext.rgb_to_lab(rgb)
        enc = {"params": params["encoder"], "batch_stats": batch_stats["encoder"]}
        _, feature_map, _ = backbone_feature_map(
            self._encoder(None), enc, lightness_input(lab), train=False
        )
        logits = self._head(None).apply(
            {"params": params["head"], "batch_stats": batch_stats["head"]}, feature_map, train=False
        )
        ab = annealed_mean_ab(logits, self.grid.centers, self.config.colorization.temperature)
        ab = jax.image.resize(ab, (*lab.shape[:3], 2), "linear")
        return pretext.lab_to_rgb(jnp.concatenate([lab[..., :1], ab], axis=-1))
