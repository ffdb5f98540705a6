"""DINO (Caron et al. 2021, "Emerging Properties in Self-Supervised Vision Transformers"): a student network
learns to predict, from every crop, the centred and sharpened output distribution that a momentum teacher
gives for the other global crops.

- Networks: backbone (ViT or ResNet) + DINO head (MLP with GELU to a 256-d bottleneck, l2-normalized, then a
  weight-normalized linear layer to K prototypes). The teacher is an EMA of the student (momentum 0.996 -> 1,
  cosine) kept in `state.extra["teacher"]`; it sees only the global crops, the student sees all crops.
- Centre: `state.extra["center"]`, the EMA (0.9) of the teacher's mean output over the global batch. The
  batch mean is computed in `loss_fn` (pmean over devices, so it leaves shard_map replicated) and applied
  in `update_extra`, after the optimizer step, together with the teacher's EMA update.
- Teacher temperature: linear warm-up from dino.warmup_teacher_temp to dino.teacher_temp over
  dino.warmup_teacher_temp_epochs, per step (DINO steps it per epoch); student temperature 0.1.
- Last layer frozen for dino.freeze_last_layer_epochs: its parameters pass through stop_gradient while
  step < freeze_steps, so their gradient is exactly zero. DINO sets those gradients to None, which makes
  PyTorch's AdamW skip the layer altogether; here the optimizer still sees it:
  * decoupled weight decay still shrinks the kernel, uniformly per prototype; the layer divides by those
    norms, so its output is unchanged (it stays frozen as a function), and over one warm-up epoch the
    shrinkage is negligible (exp(-wd * sum of lr) ~ 0.995 for the ImageNet recipe);
  * Adam's moments stay zero while its step count advances, so after the freeze their bias correction
    assumes history they do not have and the layer's first updates come out larger than PyTorch's: the
    ratio (1 - b1^k) / sqrt(1 - b2^k) is ~6.5 ten steps after unfreezing, ~3 after 100, ~1.3 after 1000.
    Matching DINO exactly needs the optimizer to skip frozen leaves (state untouched until unfrozen).
- Teacher BatchNorm (ResNet backbones): the teacher runs in training mode (batch statistics, synchronized
  over devices), as DINO's teacher does; its running averages are never used and are not kept.
- Evaluation and export use the teacher backbone, as DINO reports it (`export_encoder`). A ResNet
  teacher has no running BN statistics of its own (it always runs on batch statistics), so its exported
  statistics are the student's running averages. The backbone's variables and `encode` are
  `bases.BackboneMethod`'s.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from ssl_jax import augment, ema, parallel
from ssl_jax.losses import dino_loss, dino_statistics
from ssl_jax.losses._checks import l2_normalize
from ssl_jax.losses.distillation import teacher_batch_center, update_center
from ssl_jax.methods import common
from ssl_jax.methods.base import LossAux, Variables
from ssl_jax.methods.bases import BackboneMethod

# PyTorch's default nn.Linear init, which DINO's weight-normalized last layer keeps.
_torch_linear_init = nn.initializers.variance_scaling(1.0 / 3.0, "fan_in", "uniform")


class WeightNormDense(nn.Module):
    """x @ (g * v / ||v||) without bias (torch.nn.utils.weight_norm over a Linear, dim=0), in float32.

    The direction v is the "kernel" [in, K]; g is fixed to 1 (DINO's norm_last_layer=True) or learned as
    "scale" [K] (learn_scale, DINO's norm_last_layer=False)."""

    features: int
    learn_scale: bool = False

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        x = jnp.asarray(x, jnp.float32)
        v = self.param("kernel", _torch_linear_init, (x.shape[-1], self.features), jnp.float32)
        w = v * jax.lax.rsqrt(jnp.maximum(jnp.sum(v * v, axis=0, keepdims=True), 1e-24))
        if self.learn_scale:
            w = w * self.param("scale", nn.initializers.ones, (self.features,), jnp.float32)
        return x @ w


class DINOHead(nn.Module):
    """DINO's projection head: num_layers Dense layers (GELU between them, optional BN) down to
    `bottleneck_dim`, l2 normalization, then a weight-normalized layer to `output_dim` prototypes.

    The last layer and the normalization run in float32 whatever `dtype` says: the logits are divided by
    temperatures as low as 0.04, which would amplify bfloat16's rounding of cosines in [-1, 1]."""

    output_dim: int
    hidden_dim: int = 2048
    bottleneck_dim: int = 256
    num_layers: int = 3
    use_bn: bool = False
    norm_last_layer: bool = True
    bn_axis_name: str | None = None
    dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, x: jax.Array, train: bool) -> jax.Array:
        if self.num_layers < 1:
            raise ValueError(f"DINOHead needs num_layers >= 1, got {self.num_layers}.")
        # DINO's _init_weights: trunc_normal_(std=0.02) (bounds +-2 are absolute: a plain normal), zero bias.
        dense = functools.partial(
            nn.Dense,
            dtype=self.dtype,
            param_dtype=jnp.float32,
            kernel_init=nn.initializers.normal(0.02),
        )
        x = jnp.asarray(x, self.dtype)
        for i in range(self.num_layers - 1):
            x = dense(self.hidden_dim, name=f"dense{i}")(x)
            if self.use_bn:
                x = nn.BatchNorm(
                    use_running_average=not train,
                    momentum=0.9,
                    epsilon=1e-5,
                    axis_name=self.bn_axis_name,
                    dtype=self.dtype,
                    param_dtype=jnp.float32,
                    name=f"bn{i}",
                )(x)
            x = nn.gelu(x, approximate=False)
        x = dense(self.bottleneck_dim, name=f"dense{self.num_layers - 1}")(x)
        z = l2_normalize(x.astype(jnp.float32))
        return WeightNormDense(
            self.output_dim, learn_scale=not self.norm_last_layer, name="last_layer"
        )(z)


class DINONetwork(nn.Module):
    """Backbone + DINO head over a list of crop batches (DINO's MultiCropWrapper): consecutive crops of
    one resolution share a backbone pass, and one head pass covers every crop.

    Returns (features [n * b, D], logits [n * b, K]), crop-major, in the order of `crops`."""

    encoder: nn.Module
    head: nn.Module

    @nn.compact
    def __call__(self, crops: Sequence[jax.Array], train: bool) -> tuple[jax.Array, jax.Array]:
        groups: list[list[jax.Array]] = []
        for crop in crops:
            if groups and groups[-1][0].shape == crop.shape:
                groups[-1].append(crop)
            else:
                groups.append([crop])
        features = jnp.concatenate(
            [self.encoder(jnp.concatenate(group), train=train) for group in groups]
        )
        return features, self.head(features, train=train)


def _freeze_last_layer(params: Any, frozen: jax.Array) -> Any:
    """params with the head's last layer behind stop_gradient where `frozen` (a traced bool)."""
    last = jax.tree.map(
        lambda p: jnp.where(frozen, jax.lax.stop_gradient(p), p), params["head"]["last_layer"]
    )
    return {**params, "head": {**params["head"], "last_layer": last}}


class DINO(BackboneMethod):
    """config.dino: student_temp, teacher_temp, warmup_teacher_temp, warmup_teacher_temp_epochs,
    teacher_momentum, center_momentum, freeze_last_layer_epochs. config.model: encoder, encoder_kwargs,
    head {hidden_dim, bottleneck_dim, output_dim, num_layers, use_bn, norm_last_layer}. config.augment: the
    multi-crop fields num_global, num_local, global_size, local_size plus `augment.dino_view_specs`'s
    keywords (global_scale, local_scale, global_blur_prob, ...)."""

    def _network(self, axis_name: str | None, *, teacher: bool = False) -> DINONetwork:
        model = self.config.model
        encoder = common.build_encoder(self.config, axis_name=axis_name)
        if teacher and getattr(encoder, "drop_path_rate", 0.0):
            encoder = encoder.clone(drop_path_rate=0.0)  # DINO's teacher has no stochastic depth
        head = model.head
        sync = model.get("sync_batch_norm", True)
        return DINONetwork(
            encoder=encoder,
            head=DINOHead(
                output_dim=head.output_dim,
                hidden_dim=head.hidden_dim,
                bottleneck_dim=head.bottleneck_dim,
                num_layers=head.get("num_layers", 3),
                use_bn=head.get("use_bn", False),
                norm_last_layer=head.get("norm_last_layer", True),
                bn_axis_name=axis_name if sync else None,
                dtype=common.activation_dtype(model),
            ),
        )

    def crop_specs(self) -> tuple[tuple[augment.ViewSpec, ...], augment.ViewSpec, int, int]:
        """(global specs, local spec, num_global, num_local) from config.augment."""
        fields = dict(self.config.augment.to_dict())
        num_global, num_local = fields.pop("num_global"), fields.pop("num_local")
        global_size, local_size = fields.pop("global_size"), fields.pop("local_size")
        fields.setdefault("mean", tuple(self.config.data.mean))
        fields.setdefault("std", tuple(self.config.data.std))
        global_specs, local_spec = augment.dino_view_specs(global_size, local_size, **fields)
        return global_specs, local_spec, num_global, num_local

    def train_views(self) -> tuple[augment.ViewSpec, ...]:
        """Global crops 0 .. num_global - 1 (cycling the global specs), then the local crops."""
        global_specs, local_spec, num_global, num_local = self.crop_specs()
        cycled = tuple(global_specs[c % len(global_specs)] for c in range(num_global))
        return cycled + (local_spec,) * num_local

    def _schedule_steps(self, epochs: float) -> int:
        _, steps_per_epoch = self.require_run_length()
        return int(round(epochs * steps_per_epoch))

    def teacher_temperature(self, step: jax.Array) -> jax.Array:
        cfg = self.config.dino
        warmup = self._schedule_steps(cfg.warmup_teacher_temp_epochs)
        return ema.linear_warmup(step, warmup, cfg.warmup_teacher_temp, cfg.teacher_temp)

    def teacher_momentum(self, step: jax.Array) -> jax.Array:
        num_steps, _ = self.require_run_length()
        return ema.cosine_increase(step, num_steps, self.config.dino.teacher_momentum)

    def init(self, rng: jax.Array, image_shape: tuple[int, ...]) -> Variables:
        global_specs, _, _, _ = self.crop_specs()
        size = global_specs[0].crop_size
        dummy = jnp.zeros((2, size, size, image_shape[-1]), jnp.float32)
        variables = self._network(None).init(rng, [dummy], train=True)
        params = variables["params"]
        extra = {
            # The teacher starts as a copy of the student (DINO loads the student's state dict).
            "teacher": params,
            "center": jnp.zeros((self.config.model.head.output_dim,), jnp.float32),
        }
        return Variables(params, variables.get("batch_stats", {}), extra)

    def loss_fn(self, params, batch_stats, extra, batch, *, rng, step, axis_name):
        cfg = self.config.dino
        global_specs, local_spec, num_global, num_local = self.crop_specs()
        ids = batch["example_ids"]
        global_views, local_views = augment.multicrop_views(
            jax.random.fold_in(rng, 0),
            common.crop_inputs(batch, num_global + num_local),
            ids,
            global_spec=global_specs,
            local_spec=local_spec,
            num_global=num_global,
            num_local=num_local,
        )
        b = ids.shape[0]

        # Teacher: global crops only, no gradient; its BN statistics updates (ResNet) are dropped.
        (_, teacher_logits), _ = self._network(axis_name, teacher=True).apply(
            {"params": extra["teacher"], "batch_stats": batch_stats},
            global_views,
            train=True,
            mutable=["batch_stats"],
        )
        teacher_logits = jax.lax.stop_gradient(teacher_logits.reshape(num_global, b, -1))

        frozen = step < self._schedule_steps(cfg.freeze_last_layer_epochs)
        # Stochastic depth (if any) is the one per-device random draw: fold in the device index.
        dropout_rng = jax.random.fold_in(jax.random.fold_in(rng, 1), parallel.axis_index(axis_name))
        (features, student_logits), updates = self._network(axis_name).apply(
            {"params": _freeze_last_layer(params, frozen), "batch_stats": batch_stats},
            global_views + local_views,
            train=True,
            mutable=["batch_stats"],
            rngs={"dropout": dropout_rng},
        )
        student_logits = student_logits.reshape(num_global + num_local, b, -1)

        teacher_temp = self.teacher_temperature(step)
        temps = dict(student_temp=cfg.student_temp, teacher_temp=teacher_temp)
        per_example = dino_loss(student_logits, teacher_logits, extra["center"], **temps)
        stats = dino_statistics(
            jax.lax.stop_gradient(student_logits), teacher_logits, extra["center"], **temps
        )
        metrics = {
            "teacher_entropy": stats["teacher_entropy"].mean(),
            "teacher_student_kl": stats["kl"].mean(),
            "embedding_std": common.embedding_std(jax.lax.stop_gradient(features[:b]), axis_name),
            "teacher_temp": teacher_temp,
            "teacher_momentum": self.teacher_momentum(step),
        }
        # The global batch's mean teacher output, already averaged over devices: replicated, as
        # extra_out must be.
        extra_out = {"batch_center": teacher_batch_center(teacher_logits, axis_name)}
        return per_example.mean(), LossAux(updates.get("batch_stats", {}), metrics, extra_out)

    def update_extra(self, state, extra_out):
        # state.step has already advanced; the update belongs to the step just taken (DINO's `it`).
        step = state.step - 1
        teacher = ema.ema_update(state.extra["teacher"], state.params, self.teacher_momentum(step))
        center = update_center(
            state.extra["center"], extra_out["batch_center"], self.config.dino.center_momentum
        )
        return {"teacher": teacher, "center": center}

    def export_encoder(self, state):
        return {
            "params": state.extra["teacher"]["encoder"],
            "batch_stats": state.batch_stats.get("encoder", {}),
        }
