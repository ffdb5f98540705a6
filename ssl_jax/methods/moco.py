"""MoCo v2 (He et al. 2020; Chen, Fan, Girshick & He 2020) and MoCo v3 (Chen, Xie & He 2021).

Both train a query encoder by gradient and keep a key ("momentum") encoder that is a functional EMA of it,
`xi <- m xi + (1 - m) theta` after every optimizer step; its parameters and BatchNorm statistics live in
`state.extra`, outside the optimized parameters, so no gradient ever reaches them.

MoCo v2 ("moco_v2"): backbone + 2-layer MLP head (no BN, as the paper's). The query of view 1 is scored
against the key of view 2 (its positive) and a queue of K keys from earlier batches (the negatives), by
`ssl_jax.losses.moco_loss` (He et al. 2020, eq. 1). The queue ([V, K, d] with its pointer in
`state.extra`) is refreshed in `update_extra` with the keys of the whole global batch, gathered on device
and passed out through `LossAux.extra_out`; K must be a multiple of the global batch. `moco.symmetric`
adds the mirrored loss (view 2's query against view 1's key) with one queue per view (V = 2), as
solo-learn's MoCo v2+; the paper's MoCo v2 is asymmetric (V = 1).

BatchNorm in MoCo v2 (README text):
  The key encoder uses shuffling BN (`moco.key_bn = "shuffle"`, He et al. 2020, Sec. 3.3). Inside the
  per-device step each device gathers the key-encoder inputs of the global batch (the uint8 images and
  their example ids, 4x less traffic than float views; each example's augmentation is keyed by its id, so
  augmenting after the gather gives the same views), permutes the rows with a permutation drawn from the
  step's key (the same on every device), encodes its own slice of the permuted batch with PER-DEVICE
  BatchNorm (the key network is built with bn_axis_name=None), gathers the keys and un-permutes them. A
  row's key is thus normalized with the statistics of a random subset of the batch, not those of the
  device holding its query, which removes the BN "signature" a query could use to find its key. With one
  device there is one subset, the whole batch: shuffle-BN degenerates to plain per-batch BN.
  `moco.key_bn = "sync"` instead synchronizes the key encoder's BN over all devices (no leak either:
  every row shares the global statistics).
  The query encoder's BN follows `model.sync_batch_norm`. The ImageNet and Fashion-MNIST configs keep it
  per-device (False), as MoCo trained: the paper's numbers were obtained with per-GPU statistics, both
  encoders then normalize over groups of the same size, and the differentiated encoder needs no
  cross-device reduction per BN layer. The CIFAR-10 config synchronizes both encoders (solo-learn's
  `sync_batchnorm: True` on one GPU), which makes that recipe independent of the device count.

MoCo v3 ("moco_v3"): no queue. Backbone (ResNet or ViT) + 3-layer projector + 2-layer predictor, all BN
synchronized; the momentum encoder mirrors backbone + projector, with m rising from `moco.momentum`
(0.99) to 1 on a half-cycle cosine over the run (`ssl_jax.ema.cosine_increase`). The loss is symmetric,
2t [InfoNCE(q1, k2) + InfoNCE(q2, k1)] with the keys of the whole global batch as negatives
(`ssl_jax.losses.info_nce`; Chen, Xie & He 2021, Alg. 1).

The network shape (`bases.SiameseNetwork`), the momentum network's copy and EMA
(`bases.EMATargetMethod`) and the backbone's export come from ssl_jax.methods.bases.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections

from ssl_jax import augment, ema, models, parallel
from ssl_jax.losses import info_nce, moco_loss
from ssl_jax.losses._checks import l2_normalize
from ssl_jax.methods import common
from ssl_jax.methods.base import LossAux, PyTree, TrainState, Variables
from ssl_jax.methods.bases import EMATargetMethod, SiameseNetwork, train_apply

KEY_BN_SCHEMES = ("shuffle", "sync")


# ----------------------------------------------------------------------------- collectives


def shuffle_bn_apply(
    fn: Callable[[jax.Array, jax.Array], tuple[jax.Array, Any]],
    images: jax.Array,
    example_ids: jax.Array,
    *,
    rng: jax.Array,
    axis_name: str | None,
) -> tuple[jax.Array, jax.Array, Any]:
    """MoCo's shuffling BN under shard_map (He et al. 2020, Sec. 3.3).

    fn(images, example_ids) -> (outputs [b, d], aux): the key network with per-device BN on b rows.
    images, example_ids: this device's rows. rng: identical on every device.
    Gathers the global batch, permutes it with `permutation(rng, N)`, runs fn on this device's slice of
    the permuted batch, gathers the outputs and undoes the permutation.
    Returns (outputs of this device's rows [b, d], outputs of the global batch [N, d] in global row order,
    replicated; fn's aux on this device). Without an axis: fn on the rows as they are.
    """
    if axis_name is None:
        out, aux = fn(images, example_ids)
        return out, out, aux
    n = images.shape[0]
    all_images = parallel.all_gather(images, axis_name)
    all_ids = parallel.all_gather(example_ids, axis_name)
    perm = jax.random.permutation(rng, all_images.shape[0])
    start = parallel.axis_index(axis_name) * n
    mine = jax.lax.dynamic_slice_in_dim(perm, start, n)  # the global rows this device encodes
    out, aux = fn(all_images[mine], all_ids[mine])
    shuffled = parallel.all_gather_replicated(
        out, axis_name
    )  # row j holds the output of global row perm[j]
    unshuffled = shuffled[jnp.argsort(perm)]
    return jax.lax.dynamic_slice_in_dim(unshuffled, start, n), unshuffled, aux


# ----------------------------------------------------------------------------- networks


def build_network(
    config: ml_collections.ConfigDict,
    *,
    bn_axis_name: str | None,
    predictor: bool = False,
) -> SiameseNetwork:
    """backbone -> config.model.projector [-> config.model.predictor], every BN over `bn_axis_name`;
    parameters under "encoder", "projector", "predictor", so the momentum network (no predictor)
    mirrors the rest by name."""
    model = config.model
    dtype = common.activation_dtype(model)

    def mlp(head: Any) -> nn.Module:
        return models.MLPHead(
            hidden_dim=head.hidden_dim,
            output_dim=head.output_dim,
            num_layers=head.get("num_layers", 2),
            use_bn=head.get("use_bn", True),
            last_bn=head.get("last_bn", False),
            last_bn_affine=head.get("last_bn_affine", False),
            bn_axis_name=bn_axis_name,
            dtype=dtype,
        )

    return SiameseNetwork(
        encoder=models.get_encoder(
            model.encoder,
            dtype=dtype,
            bn_axis_name=bn_axis_name,
            **dict(model.get("encoder_kwargs", {}) or {}),
        ),
        projector=mlp(model.projector),
        predictor=mlp(model.predictor) if predictor else None,
    )


class _MoCoBase(EMATargetMethod):
    """What both versions share: the momentum schedule, views, init of the momentum network, export."""

    uses_predictor = False

    def momentum(self, step: jax.Array | int) -> jax.Array:
        """The EMA decay applied after optimizer step `step` (1-based: the update that follows it).

        Constant `moco.momentum`, or a half-cycle cosine from it to `moco.final_momentum` over the run.
        """
        cfg = self.config.moco
        base = cfg.momentum
        final = cfg.get("final_momentum", None)
        if final is None or final == base:
            return jnp.asarray(base, jnp.float32)
        num_steps, _ = self.require_run_length()
        return ema.cosine_increase(step, num_steps, base, final)

    def _momentum_metric(self, step: jax.Array) -> dict[str, jax.Array]:
        """The decay the update after this step uses, when the run length is known (training)."""
        cfg = self.config.moco
        scheduled = cfg.get("final_momentum") not in (None, cfg.momentum)
        if scheduled and self.num_steps is None:
            return {}
        return {"momentum": self.momentum(step + 1)}

    def view_specs(self) -> tuple[augment.ViewSpec, augment.ViewSpec]:
        """The two views: BYOL's asymmetric pair for preset "byol" (MoCo v3), else one spec twice."""
        return common.view_pair(self.config)

    def train_views(self) -> tuple[augment.ViewSpec, augment.ViewSpec]:
        return self.view_specs()

    def _views(self, rng, batch, which=(1, 2)) -> list[jax.Array]:
        specs = self.view_specs()
        return [
            common.augment_view(jax.random.fold_in(rng, v), batch, v - 1, specs[v - 1])
            for v in which
        ]

    def _init_networks(self, rng: jax.Array, image_shape: tuple[int, ...]):
        size = self.view_specs()[0].crop_size
        dummy = jnp.zeros((2, size, size, image_shape[-1]), jnp.float32)
        network = build_network(self.config, bn_axis_name=None, predictor=self.uses_predictor)
        variables = network.init(rng, dummy, train=True)
        params, batch_stats = variables["params"], variables.get("batch_stats", {})
        # The momentum network starts as a copy of the query network (MoCo's code).
        return params, batch_stats, self.initial_target(params, batch_stats)

    def _ema_target(self, state: TrainState) -> PyTree:
        return self.ema_target(
            state.extra["target_params"], state.params, self.momentum(state.step)
        )


# ----------------------------------------------------------------------------- MoCo v2


class MoCoV2(_MoCoBase):
    """config.moco.{temperature, momentum, final_momentum (None: constant), queue_size, key_bn
    ("shuffle" | "sync"), symmetric}; config.model.{encoder, projector, sync_batch_norm (query BN)};
    config.augment (one ViewSpec preset for both views)."""

    def __init__(self, config, *, num_steps=None, steps_per_epoch=None):
        super().__init__(config, num_steps=num_steps, steps_per_epoch=steps_per_epoch)
        cfg = config.moco
        if cfg.key_bn not in KEY_BN_SCHEMES:
            raise ValueError(
                f"config.moco.key_bn must be one of {KEY_BN_SCHEMES}, got {cfg.key_bn!r}."
            )
        if cfg.queue_size <= 0 or cfg.queue_size % config.batch_size:
            raise ValueError(
                f"config.moco.queue_size ({cfg.queue_size}) must be a positive multiple of the "
                f"global batch size ({config.batch_size}), so that every step enqueues the whole "
                f"batch without wrapping; e.g. --config.moco.queue_size="
                f"{max(1, cfg.queue_size // config.batch_size) * config.batch_size}."
            )

    @property
    def key_views(self) -> tuple[int, ...]:
        """The views whose keys are enqueued: view 2 (asymmetric), or both (symmetric)."""
        return (1, 2) if self.config.moco.symmetric else (2,)

    def init(self, rng: jax.Array, image_shape: tuple[int, ...]) -> Variables:
        net_rng, queue_rng = jax.random.split(rng)
        params, batch_stats, extra = self._init_networks(net_rng, image_shape)
        dim = self.config.model.projector.output_dim
        shape = (len(self.key_views), self.config.moco.queue_size, dim)
        # Random unit vectors, as MoCo's `normalize(randn(dim, K))`, until real keys replace them.
        extra["queue"] = l2_normalize(jax.random.normal(queue_rng, shape, jnp.float32))
        extra["queue_ptr"] = jnp.zeros((), jnp.int32)
        return Variables(params, batch_stats, extra)

    def _key_fn(self, extra, batch_stats, rng, view: int, spec, *, bn_axis_name: str | None):
        """(uint8 images, ids) -> (l2-normalized keys of `view` augmented by `spec`, the key
        network's updated BN stats)."""
        network = build_network(self.config, bn_axis_name=bn_axis_name)

        def fn(images, ids):
            x = augment.augment_batch(jax.random.fold_in(rng, view), images, ids, spec)
            (_, k, _), stats = train_apply(network, extra["target_params"], batch_stats, x)
            return l2_normalize(k), stats

        return fn

    def loss_fn(self, params, batch_stats, extra, batch, *, rng, step, axis_name):
        cfg = self.config.moco
        ids = batch["example_ids"]

        # Queries: per-device or synchronized BN, as config.model.sync_batch_norm says.
        query_axis = axis_name if self.config.model.sync_batch_norm else None
        query_net = build_network(self.config, bn_axis_name=query_axis)
        query_views = (1, 2) if cfg.symmetric else (1,)
        queries = {}
        for view, x in zip(query_views, self._views(rng, batch, query_views), strict=True):
            (_, queries[view], _), batch_stats = train_apply(query_net, params, batch_stats, x)

        # Keys: the momentum network, shuffle-BN (per-device BN on a permuted batch) or synchronized BN.
        keys, global_keys = {}, []
        target_stats = extra["target_batch_stats"]
        for view in self.key_views:
            images, spec = common.view_input(batch, view - 1, self.view_specs()[view - 1])
            if cfg.key_bn == "shuffle":
                fn = self._key_fn(extra, target_stats, rng, view, spec, bn_axis_name=None)
                local, everyone, target_stats = shuffle_bn_apply(
                    fn, images, ids, rng=jax.random.fold_in(rng, 100 + view), axis_name=axis_name
                )
            else:
                fn = self._key_fn(extra, target_stats, rng, view, spec, bn_axis_name=axis_name)
                local, target_stats = fn(images, ids)
                everyone = parallel.all_gather_replicated(local, axis_name)
            # Targets: the key network is not trained by gradient (it is not in `params` either).
            keys[view] = jax.lax.stop_gradient(local)
            global_keys.append(jax.lax.stop_gradient(everyone))

        queue = extra["queue"]
        slot = {view: i for i, view in enumerate(self.key_views)}
        # q of view 1 against k of view 2 (and the mirror when symmetric), negatives from the queue of
        # the key's view (He et al. 2020, eq. 1; solo-learn's MoCo v2+ for the symmetric form).
        pairs = [(1, 2), (2, 1)] if cfg.symmetric else [(1, 2)]
        per_example = sum(
            moco_loss(queries[a], keys[b], queue[slot[b]], temperature=cfg.temperature)
            for a, b in pairs
        ) / len(pairs)

        q1 = l2_normalize(queries[1])
        metrics = {
            "embedding_std": common.embedding_std(queries[1], axis_name),
            "positive_cosine": jnp.mean(jnp.sum(q1 * keys[2], axis=-1)),
            **self._momentum_metric(step),
        }
        extra_out = {
            "keys": jnp.stack(global_keys),  # [V, N, d], replicated
            "target_batch_stats": parallel.pmean(target_stats, axis_name),
        }
        return per_example.mean(), LossAux(batch_stats, metrics, extra_out)

    def update_extra(self, state: TrainState, extra_out: PyTree) -> PyTree:
        """The momentum update, then the batch's keys replace the oldest ones at the queue pointer."""
        queue, ptr = state.extra["queue"], state.extra["queue_ptr"]
        keys = extra_out["keys"].astype(queue.dtype)  # [V, N, d]
        n, size = keys.shape[1], queue.shape[1]
        if size % n:  # static shapes; also checked against config.batch_size in __init__
            raise ValueError(f"queue_size {size} is not a multiple of the global batch {n}.")
        return {
            "target_params": self._ema_target(state),
            "target_batch_stats": extra_out["target_batch_stats"],
            "queue": jax.lax.dynamic_update_slice_in_dim(queue, keys, ptr, axis=1),
            "queue_ptr": (ptr + n) % size,
        }


# ----------------------------------------------------------------------------- MoCo v3


class MoCoV3(_MoCoBase):
    """config.moco.{temperature, momentum, final_momentum (1.0: MoCo v3's cosine to 1)};
    config.model.{encoder, projector, predictor}; config.augment ("byol" preset: the asymmetric pair)."""

    uses_predictor = True

    def __init__(self, config, *, num_steps=None, steps_per_epoch=None):
        super().__init__(config, num_steps=num_steps, steps_per_epoch=steps_per_epoch)
        proj, pred = config.model.projector, config.model.get("predictor")
        if pred is None or pred.output_dim != proj.output_dim:
            raise ValueError(
                "moco_v3 needs config.model.predictor with output_dim equal to the projector's "
                f"({proj.output_dim}): the prediction is contrasted with momentum projections."
            )

    def init(self, rng: jax.Array, image_shape: tuple[int, ...]) -> Variables:
        return Variables(*self._init_networks(rng, image_shape))

    def loss_fn(self, params, batch_stats, extra, batch, *, rng, step, axis_name):
        tau = self.config.moco.temperature
        x1, x2 = self._views(rng, batch)
        # Synchronized BN in the backbone and both heads, as MoCo v3 trains (SyncBatchNorm), unless
        # config.model.sync_batch_norm says per-device.
        bn_axis = axis_name if self.config.model.sync_batch_norm else None
        online = build_network(self.config, bn_axis_name=bn_axis, predictor=True)
        (_, z1, p1), batch_stats = train_apply(online, params, batch_stats, x1)
        (_, _, p2), batch_stats = train_apply(online, params, batch_stats, x2)

        momentum_net = build_network(self.config, bn_axis_name=bn_axis)
        target_stats = extra["target_batch_stats"]
        (_, k1, _), target_stats = train_apply(
            momentum_net, extra["target_params"], target_stats, x1
        )
        (_, k2, _), target_stats = train_apply(
            momentum_net, extra["target_params"], target_stats, x2
        )
        # Targets: no gradient reaches the momentum network.
        k1, k2 = jax.lax.stop_gradient(k1), jax.lax.stop_gradient(k2)

        # ctr(q1, k2) + ctr(q2, k1), ctr = CE over the global batch's keys x 2t (Alg. 1).
        per_example = (2.0 * tau) * (
            info_nce(p1, k2, temperature=tau, axis_name=axis_name)
            + info_nce(p2, k1, temperature=tau, axis_name=axis_name)
        )
        metrics = {
            "embedding_std": common.embedding_std(z1, axis_name),
            **self._momentum_metric(step),
        }
        extra_out = {"target_batch_stats": parallel.pmean(target_stats, axis_name)}
        return per_example.mean(), LossAux(batch_stats, metrics, extra_out)

    def update_extra(self, state: TrainState, extra_out: PyTree) -> PyTree:
        return {
            "target_params": self._ema_target(state),
            "target_batch_stats": extra_out["target_batch_stats"],
        }
