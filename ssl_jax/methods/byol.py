"""BYOL (Grill et al. 2020): an online network predicts a slowly moving target network's projection.

Online: encoder -> projector -> predictor, trained. Target: encoder -> projector, never trained; its
parameters and BatchNorm statistics live in `state.extra` and follow the online ones by a functional EMA
after every optimizer step, with BYOL's decay tau_k = 1 - (1 - tau_base)(cos(pi k / K) + 1) / 2 rising
from tau_base to 1 over the run (`ssl_jax.ema.cosine_increase`). The loss is symmetrized: view 1 through
the online network regresses onto view 2 through the target, and vice versa. Each view has its own
augmentation (BYOL's asymmetric pair) and its own forward pass (BN statistics per view, as in the paper's
code); BN is synchronized over the data axis in both networks.

The network (`bases.SiameseNetwork`), the target's copy and EMA (`bases.EMATargetMethod`) and the
backbone's export are shared with SimSiam and MoCo through ssl_jax.methods.bases.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import ml_collections

from ssl_jax import augment, ema
from ssl_jax.losses import byol_loss
from ssl_jax.methods import common
from ssl_jax.methods.base import LossAux, PyTree, TrainState, Variables
from ssl_jax.methods.bases import (
    EMATargetMethod,
    SiameseNetwork,
    check_heads,
    forward_views,
    siamese_network,
)


class BYOL(EMATargetMethod):
    """config.byol.tau_base; config.model.{encoder, projector, predictor}; config.augment (a ViewSpec
    preset: "byol" gives the asymmetric pair, views 0 and 1; any other preset is used for both views).
    """

    def __init__(
        self,
        config: ml_collections.ConfigDict,
        *,
        num_steps: int | None = None,
        steps_per_epoch: int | None = None,
    ):
        super().__init__(config, num_steps=num_steps, steps_per_epoch=steps_per_epoch)
        check_heads(config)
        tau_base = config.byol.tau_base
        if not 0.0 <= tau_base <= 1.0:
            raise ValueError(f"config.byol.tau_base must be in [0, 1], got {tau_base}.")

    # ---- networks and views

    def _network(self, axis_name: str | None, *, with_predictor: bool) -> SiameseNetwork:
        return siamese_network(self.config, axis_name, with_predictor=with_predictor)

    def view_specs(self) -> tuple[augment.ViewSpec, augment.ViewSpec]:
        return common.view_pair(self.config)

    def train_views(self) -> tuple[augment.ViewSpec, augment.ViewSpec]:
        return self.view_specs()

    def tau(self, step: jax.Array | int) -> jax.Array:
        """The target decay used for the update after optimizer step `step` (0-based)."""
        num_steps, _ = self.require_run_length()
        return ema.cosine_increase(step, num_steps, self.config.byol.tau_base)

    # ---- Method interface

    def init(self, rng: jax.Array, image_shape: tuple[int, ...]) -> Variables:
        size = self.view_specs()[0].crop_size
        dummy = jnp.zeros((2, size, size, image_shape[-1]), jnp.float32)
        variables = self._network(None, with_predictor=True).init(rng, dummy, train=True)
        params, batch_stats = variables["params"], variables["batch_stats"]
        # The target starts as a copy of the online encoder and projector.
        return Variables(params, batch_stats, self.initial_target(params, batch_stats))

    def loss_fn(self, params, batch_stats, extra, batch, *, rng, step, axis_name):
        spec1, spec2 = self.view_specs()
        x1 = common.augment_view(jax.random.fold_in(rng, 1), batch, 0, spec1)
        x2 = common.augment_view(jax.random.fold_in(rng, 2), batch, 1, spec2)

        online = self._network(axis_name, with_predictor=True)
        ((_, z1, p1), (_, _, p2)), new_stats = forward_views(online, params, batch_stats, (x1, x2))

        # The target runs in training mode (batch statistics), as in BYOL's code, so its running
        # statistics are never read while training; they follow the online ones by EMA in
        # update_extra rather than its own forward passes. Both target outputs are wrapped in
        # stop_gradient: the target is never trained, only averaged.
        target = self._network(axis_name, with_predictor=False)
        ((_, t1, _), (_, t2, _)), _ = forward_views(
            target, extra["target_params"], extra["target_batch_stats"], (x1, x2)
        )
        t1, t2 = jax.lax.stop_gradient(t1), jax.lax.stop_gradient(t2)

        # L + L~ (Grill et al. 2020, Sec. 3.1): each view's prediction regresses onto the other's target.
        per_example = byol_loss(p1, t2) + byol_loss(p2, t1)
        metrics = {
            "embedding_std": common.embedding_std(z1, axis_name),  # collapse indicator
            "tau": self.tau(step),
        }
        return per_example.mean(), LossAux(new_stats, metrics)

    def update_extra(self, state: TrainState, extra_out: PyTree) -> PyTree:
        """xi <- tau xi + (1 - tau) theta for the target's parameters and BN statistics, with the tau of
        the optimizer step just taken (state.step has already been incremented)."""
        del extra_out
        tau = self.tau(state.step - 1)
        return {
            "target_params": self.ema_target(state.extra["target_params"], state.params, tau),
            "target_batch_stats": self.ema_target(
                state.extra["target_batch_stats"], state.batch_stats, tau
            ),
        }
