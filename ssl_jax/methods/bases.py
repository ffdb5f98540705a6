"""The base classes and networks the joint-embedding image methods share (the `Method` interface they
implement is in base.py).

- `BackboneMethod`: the backbone is params["encoder"], built from config.model.encoder; it is what
  exports and what evaluation encodes. SimCLR, Barlow Twins, VICReg, BYOL, SimSiam, MoCo, DINO.
- `TwoViewMethod`: augment twice, one network for both views, a subclass writes only
  `objective(z1, z2, *, axis_name)`. SimCLR and compositions of objectives (composite.py).
- `TwinEmbeddingMethod`: a `TwoViewMethod` with one augmentation and one forward pass per view, the
  redundancy-reduction methods' setting. Barlow Twins, VICReg.
- `SiameseNetwork` (backbone -> projector [-> predictor]) with `check_heads` and `forward_views`:
  BYOL, SimSiam, MoCo.
- `EMATargetMethod`: a target network that is a functional EMA of the online encoder and projector,
  kept in state.extra as "target_params" / "target_batch_stats". BYOL, MoCo (DINO's teacher is the
  whole student under its own key, so DINO shares only `BackboneMethod`).
"""

from __future__ import annotations

import abc

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections

from ssl_jax import augment, ema
from ssl_jax.methods import common
from ssl_jax.methods.base import LossAux, Method, PyTree, Variables

# -------------------------------------------------------------------------------------- backbone


class BackboneMethod(Method):
    """A method whose transferable backbone is params["encoder"] (config.model.encoder), evaluated on
    `common.eval_images` of the images, in eval mode."""

    def encoder_variables(self, params, batch_stats):
        return {"params": params["encoder"], "batch_stats": batch_stats.get("encoder", {})}

    def encode(self, encoder_variables, images):
        x = common.eval_images(self.config, images)
        encoder = common.build_encoder(self.config, axis_name=None)
        return encoder.apply(encoder_variables, x, train=False).astype(jnp.float32)


# -------------------------------------------------------------------------------------- two views


class TwoViewMethod(BackboneMethod):
    """Encoder + projector (config.model.{encoder, projector}) on two views made with config.augment."""

    @abc.abstractmethod
    def objective(
        self, z1: jax.Array, z2: jax.Array, *, axis_name: str | None
    ) -> tuple[jax.Array, dict[str, jax.Array]]:
        """This device's loss for projections z1, z2 [b, d] of its rows, and scalar terms to log.

        Runs under shard_map: pass `axis_name` to losses that need the global batch (negatives, statistics).
        """

    def _network(self, axis_name: str | None) -> common.EncoderWithHead:
        return common.EncoderWithHead(
            encoder=common.build_encoder(self.config, axis_name=axis_name),
            head=common.build_mlp(self.config, self.config.model.projector, axis_name=axis_name),
        )

    def _view_spec(self) -> augment.ViewSpec:
        return common.view_spec(self.config)

    def init(self, rng: jax.Array, image_shape: tuple[int, ...]) -> Variables:
        size = self._view_spec().crop_size
        dummy = jnp.zeros((2, size, size, image_shape[-1]), jnp.float32)
        variables = self._network(None).init(rng, dummy, train=True)
        return Variables(variables["params"], variables["batch_stats"], extra={})

    def train_views(self) -> tuple[augment.ViewSpec, augment.ViewSpec]:
        return (self._view_spec(),) * 2

    def views(self, rng: jax.Array, batch: dict[str, jax.Array]) -> tuple[jax.Array, jax.Array]:
        """The two float views [b, s, s, C] of this device's rows: config.augment applied twice to the
        uint8 images (or to the host's two crops), on device. (benchmarks/ablations.py overrides it
        to feed views made beforehand.)"""
        spec = self._view_spec()
        x1 = common.augment_view(jax.random.fold_in(rng, 1), batch, 0, spec)
        x2 = common.augment_view(jax.random.fold_in(rng, 2), batch, 1, spec)
        return x1, x2

    def loss_fn(self, params, batch_stats, extra, batch, *, rng, step, axis_name):
        del extra, step
        x1, x2 = self.views(rng, batch)
        n = x1.shape[0]
        # One forward pass over both views: BN statistics are taken over all 2N views, as in SimCLR.
        (_, z), updates = self._network(axis_name).apply(
            {"params": params, "batch_stats": batch_stats},
            jnp.concatenate([x1, x2]),
            train=True,
            mutable=["batch_stats"],
        )
        loss, terms = self.objective(z[:n], z[n:], axis_name=axis_name)
        metrics = {"embedding_std": common.embedding_std(z[:n], axis_name), **terms}
        return loss, LossAux(updates["batch_stats"], metrics)


class TwinEmbeddingMethod(TwoViewMethod):
    """`TwoViewMethod` with per-view augmentation and per-view forward passes: what Barlow Twins and
    VICReg add to it. Each view has its own augmentation (BYOL's asymmetric pair under the "byol"
    preset, which both papers use) and its own forward pass, so each view's BN statistics are its own,
    as both papers' code calls the network once per view (SimCLR normalizes the 2N views together).
    A subclass writes only `objective(z1, z2, *, axis_name)`, a loss over the global batch
    (ssl_jax.losses.redundancy). There is no target network and no method state.

    config.model.{encoder, projector}; config.augment (a ViewSpec preset: "byol" gives the asymmetric
    pair, views 0 and 1; any other preset is used for both views; other keys override both views).
    """

    def view_specs(self) -> tuple[augment.ViewSpec, augment.ViewSpec]:
        return common.view_pair(self.config)

    def train_views(self) -> tuple[augment.ViewSpec, augment.ViewSpec]:
        return self.view_specs()

    def loss_fn(self, params, batch_stats, extra, batch, *, rng, step, axis_name):
        del extra, step
        network = self._network(axis_name)
        embeddings = []
        # One training-mode pass per view, threading the BN running statistics through both (as two
        # calls of a PyTorch module would): each view's BN statistics are its own, as in both papers.
        for i, spec in enumerate(self.view_specs(), start=1):
            x = common.augment_view(jax.random.fold_in(rng, i), batch, i - 1, spec)
            (_, z), updates = network.apply(
                {"params": params, "batch_stats": batch_stats},
                x,
                train=True,
                mutable=["batch_stats"],
            )
            batch_stats = updates["batch_stats"]
            embeddings.append(z)
        z1, z2 = embeddings
        loss, terms = self.objective(z1, z2, axis_name=axis_name)
        metrics = {**terms, "embedding_std": common.embedding_std(z1, axis_name)}
        return loss, LossAux(batch_stats, metrics)


# ------------------------------------------------------------------------- siamese networks


class SiameseNetwork(nn.Module):
    """backbone -> projector [-> predictor]. Parameters live under "encoder", "projector" and
    "predictor", so the backbone exports on its own and a target without predictor mirrors the rest.

    Returns (features, projection, prediction); prediction is None without a predictor.
    """

    encoder: nn.Module
    projector: nn.Module
    predictor: nn.Module | None = None

    @nn.compact
    def __call__(self, x: jax.Array, train: bool) -> tuple[jax.Array, jax.Array, jax.Array | None]:
        features = self.encoder(x, train=train)
        z = self.projector(features, train=train)
        p = None if self.predictor is None else self.predictor(z, train=train)
        return features, z, p


def siamese_network(
    config: ml_collections.ConfigDict, axis_name: str | None, *, with_predictor: bool
) -> SiameseNetwork:
    """config.model.{encoder, projector[, predictor]} with `common`'s builders (BN over `axis_name`
    unless config.model.sync_batch_norm is False)."""
    return SiameseNetwork(
        encoder=common.build_encoder(config, axis_name=axis_name),
        projector=common.build_mlp(config, config.model.projector, axis_name=axis_name),
        predictor=(
            common.build_mlp(config, config.model.predictor, axis_name=axis_name)
            if with_predictor
            else None
        ),
    )


def check_heads(config: ml_collections.ConfigDict) -> None:
    """The predictor maps projections to projections, so its output width must be the projector's."""
    proj, pred = config.model.projector, config.model.get("predictor")
    if pred is None:
        raise ValueError(f"{config.method} needs config.model.predictor (hidden_dim, output_dim).")
    if pred.output_dim != proj.output_dim:
        raise ValueError(
            f"config.model.predictor.output_dim ({pred.output_dim}) must equal "
            f"config.model.projector.output_dim ({proj.output_dim}): the prediction regresses "
            "onto a projection."
        )


def train_apply(
    network: nn.Module, params: PyTree, batch_stats: PyTree, x: jax.Array
) -> tuple[PyTree, PyTree]:
    """A training-mode forward pass; returns (outputs, updated batch_stats)."""
    out, updates = network.apply(
        {"params": params, "batch_stats": batch_stats}, x, train=True, mutable=["batch_stats"]
    )
    return out, updates.get("batch_stats", {})


def forward_views(
    network: nn.Module,
    params: PyTree,
    batch_stats: PyTree,
    views: tuple[jax.Array, ...],
) -> tuple[list[tuple[jax.Array, jax.Array, jax.Array | None]], PyTree]:
    """One training-mode forward pass per view, threading the BN running statistics through them in
    order (as two calls of a PyTorch module would). Returns the per-view outputs and the final stats."""
    outputs = []
    for x in views:
        out, batch_stats = train_apply(network, params, batch_stats, x)
        outputs.append(out)
    return outputs, batch_stats


# ------------------------------------------------------------------------------- EMA targets


class EMATargetMethod(BackboneMethod):
    """A target network that is a functional EMA of the online network's `target_parts` (encoder and
    projector; a predictor has no target counterpart): xi <- decay xi + (1 - decay) theta after every
    optimizer step. Its parameters and BN statistics live in state.extra under "target_params" and
    "target_batch_stats", outside the optimized parameters, so no gradient ever reaches them. The
    subclass picks the decay and its schedule, and calls `ema_target` in `update_extra`."""

    target_parts: tuple[str, ...] = ("encoder", "projector")

    def target_part(self, tree: PyTree) -> PyTree:
        """The `target_parts` subtrees of an online params / batch_stats tree."""
        return {k: tree[k] for k in self.target_parts if k in tree}

    def initial_target(self, params: PyTree, batch_stats: PyTree) -> dict[str, PyTree]:
        """The target's state.extra entries at step 0: a copy of the online parts (MoCo's code and
        solo-learn; BYOL's code draws it from another seed and notes no significant difference)."""
        return {
            "target_params": self.target_part(params),
            "target_batch_stats": self.target_part(batch_stats),
        }

    def ema_target(self, target: PyTree, online: PyTree, decay: jax.Array) -> PyTree:
        """target <- decay target + (1 - decay) online's `target_parts`."""
        return ema.ema_update(target, self.target_part(online), decay)
