"""Future prediction in feature space (Vondrick, Pirsiavash & Torralba 2016).

A clip x_0 .. x_{T-1} of frames; phi is a fixed encoder; f (an MLP) learns to regress phi(x_{t+Delta})
from phi(x_{t-k+1}) .. phi(x_t), the k most recent frames (config.future.context = k,
config.future.offset = Delta). Every window of the clip is one regression pair.

phi is loaded from the encoder checkpoint of another run (config.future.phi_workdir, e.g. a SimCLR
pre-training), rebuilt with the method and config saved in that workdir (both read above the methods,
by ssl_jax.method_inputs, and handed over as data inputs) and applied exactly as that method encodes
images (its preprocessing and normalization; frames at their own resolution unless
config.future.phi_image_size says otherwise). It is frozen: its variables live in `state.extra`, not in
the optimized parameters, and its features are wrapped in stop_gradient. Without a phi_workdir, phi is
config.model.encoder at its random initialization (frozen random features).

config.future.train_phi=True makes phi trainable by the same loss: the degenerate variant. Nothing then
prevents the trivial solution phi(x) = const, f = const with loss 0; the logged `target_std` (the spread
of phi(x_{t+Delta}) over the batch, `ssl_jax.losses.feature_std`) shows the collapse, while with a
frozen phi it stays what phi gives. tests/test_future.py demonstrates both.

Evaluation. `encode` is f o phi: the predicted representation of frame k - 1 + Delta from the clip's
first k frames, so the generic kNN / linear protocols measure how much of the clip's class survives in
what f predicts (phi alone was evaluated in its own workdir). The method's own protocol
"future_regression" (ssl_jax.transfer.future) reports what f is trained for: the test-split mean
squared error of f's predictions against the copy-last-frame baseline phi(x_t) (predict no change),
and their ratio.
"""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections

from ssl_jax import augment, models
from ssl_jax.losses import feature_regression_loss, feature_std
from ssl_jax.methods import common
from ssl_jax.methods.base import LossAux, Method, PyTree, TrainState, Variables, fresh_state


def windows(
    features: jax.Array, context: int, offset: int
) -> tuple[jax.Array, jax.Array, jax.Array]:
    """All regression pairs of a batch of clips' frame features.

    features: [b, T, D]. Returns (inputs [b * P, context * D]: the context frames' features side by
    side, oldest first; targets [b * P, D]: the features `offset` frames after the last context frame;
    last [b * P, D]: the last context frame's features, the copy-last baseline), P = T - context -
    offset + 1 windows per clip, ordered clip-major.
    """
    b, num_frames, d = features.shape
    positions = num_frames - context - offset + 1
    if positions < 1:
        raise ValueError(
            f"clips of {num_frames} frames hold no window of {context} context frame(s) and a target "
            f"{offset} frame(s) later"
        )
    inputs = jnp.stack(
        [features[:, s : s + context].reshape(b, context * d) for s in range(positions)], axis=1
    )
    first_target = context - 1 + offset
    targets = features[:, first_target : first_target + positions]
    last = features[:, context - 1 : context - 1 + positions]
    return (
        inputs.reshape(b * positions, context * d),
        targets.reshape(b * positions, d),
        last.reshape(b * positions, d),
    )


class FuturePrediction(Method):
    """config.future.{phi_workdir, phi_step, train_phi, context, offset, phi_image_size, residual};
    config.model.predictor.{hidden_dim, num_layers, use_bn} (f; its output width is phi's).

    residual=True parameterizes f(x) = phi(x_t) + g(x) with g's last layer zero-initialized: the same
    functions, but f starts as the copy-last-frame baseline and learns the change (phi's features have
    a large mean that a freshly initialized MLP would first have to learn)."""

    batch_keys = ("frames",)

    def __init__(
        self,
        config: ml_collections.ConfigDict,
        *,
        num_steps: int | None = None,
        steps_per_epoch: int | None = None,
    ):
        super().__init__(config, num_steps=num_steps, steps_per_epoch=steps_per_epoch)
        fut = config.future
        self.context = int(fut.get("context", 1))
        self.offset = int(fut.get("offset", 1))
        if self.context < 1 or self.offset < 1:
            raise ValueError(
                f"config.future.context and offset must be >= 1; got {self.context}, {self.offset}."
            )
        self.train_phi = bool(fut.get("train_phi", False))
        self.residual = bool(fut.get("residual", False))
        self.phi_workdir = fut.get("phi_workdir", "") or ""

    def data_inputs(self) -> tuple[str, ...]:
        """With a phi_workdir: "phi_method" (phi's method, by image size), and phi's variables to
        train ("phi_variables") or, to evaluate, only their shapes ("phi_shapes"): ssl_jax.method_inputs
        reads them from phi_workdir's saved config and checkpoint."""
        if not self.phi_workdir:
            return ()
        return ("phi_method", "phi_variables" if self.num_steps is not None else "phi_shapes")

    # ---- phi

    def _phi_encoder(self) -> nn.Module:
        return common.build_encoder(self.config, axis_name=None)

    def phi(self, phi_variables: PyTree, images: jax.Array) -> jax.Array:
        """phi's features [n, D] float32 of uint8 frames [n, H, W, C], in eval mode."""
        size = int(self.config.future.get("phi_image_size", 0)) or images.shape[1]
        if self.phi_workdir:
            return self.data_input("phi_method")(size).encode(phi_variables, images)
        data = self.config.data
        x = augment.preprocess_eval(
            images, image_size=size, mean=tuple(data.mean), std=tuple(data.std)
        )
        return self._phi_encoder().apply(phi_variables, x, train=False).astype(jnp.float32)

    def clip_features(self, phi_variables: PyTree, frames: jax.Array) -> jax.Array:
        """uint8 frames [b, T, H, W, C] -> phi features [b, T, D], all frames in one pass."""
        if frames.ndim != 5:
            raise ValueError(f"expected uint8 frames [b, T, H, W, C], got shape {frames.shape}")
        b, num_frames = frames.shape[:2]
        features = self.phi(phi_variables, frames.reshape(b * num_frames, *frames.shape[2:]))
        return features.reshape(b, num_frames, -1)

    def _load_phi(self, rng: jax.Array, image_shape: tuple[int, ...]) -> PyTree:
        if not self.phi_workdir:
            dummy = jnp.zeros((1, *image_shape), jnp.float32)
            return self._phi_encoder().init(rng, dummy, train=False)
        return self.data_input("phi_variables")

    # ---- f

    def _predictor(self, output_dim: int, axis_name: str | None) -> nn.Module:
        head = self.config.model.predictor
        return models.MLPHead(
            hidden_dim=head.hidden_dim,
            output_dim=output_dim,
            num_layers=head.get("num_layers", 2),
            use_bn=head.get("use_bn", True),
            zero_init_last=self.residual,
            bn_axis_name=axis_name if self.config.model.get("sync_batch_norm", True) else None,
            dtype=common.activation_dtype(self.config.model),
        )

    # ---- Method interface

    def init(self, rng: jax.Array, image_shape: tuple[int, ...]) -> Variables:
        """image_shape: one clip's [T, H, W, C]."""
        if len(image_shape) != 4:
            raise ValueError(f"future prediction trains on clips [T, H, W, C]; got {image_shape}")
        phi_rng, f_rng = jax.random.split(rng)
        return self._init_around(self._load_phi(phi_rng, image_shape[1:]), f_rng, image_shape)

    def _init_around(
        self, phi_vars: PyTree, f_rng: jax.Array, image_shape: tuple[int, ...]
    ) -> Variables:
        """The method's variables with phi's given: f initialized on phi's features of clips."""
        phi_vars = dict(phi_vars)
        phi_vars.setdefault("batch_stats", {})
        dummy = jnp.zeros((1, *image_shape), jnp.uint8)
        inputs, targets, _ = windows(self.clip_features(phi_vars, dummy), self.context, self.offset)
        f_vars = self._predictor(targets.shape[-1], None).init(f_rng, inputs, train=True)
        params = {"predictor": f_vars["params"]}
        batch_stats = {"predictor": f_vars.get("batch_stats", {})}
        if self.train_phi:
            params["phi"] = phi_vars["params"]
            batch_stats["phi"] = phi_vars["batch_stats"]
            return Variables(params, batch_stats, extra={})
        return Variables(params, batch_stats, extra={"phi": phi_vars})

    def exported_shapes(self, example_shape: tuple[int, ...]) -> PyTree:
        """As `Method.exported_shapes`; evaluating, phi's are the data input "phi_shapes" (read from
        its checkpoint's metadata), so no array is read (and none could be inside the trace)."""
        if "phi_shapes" not in self.data_inputs():
            return super().exported_shapes(example_shape)

        def exported(phi_vars):
            variables = self._init_around(phi_vars, jax.random.key(0), tuple(example_shape))
            return self.export_encoder(fresh_state(variables))

        return jax.eval_shape(exported, self.data_input("phi_shapes"))

    def _phi_variables(self, params: PyTree, batch_stats: PyTree, extra: PyTree) -> PyTree:
        if self.train_phi:
            return {"params": params["phi"], "batch_stats": batch_stats["phi"]}
        # Frozen: phi is not an optimized parameter, and no gradient is asked of it either.
        return jax.lax.stop_gradient(extra["phi"])

    def loss_fn(self, params, batch_stats, extra, batch, *, rng, step, axis_name):
        del rng, step
        phi_vars = self._phi_variables(params, batch_stats, extra)
        features = self.clip_features(phi_vars, batch["frames"])
        inputs, targets, last = windows(features, self.context, self.offset)
        if not self.train_phi:
            targets, last = jax.lax.stop_gradient(targets), jax.lax.stop_gradient(last)
        f = self._predictor(targets.shape[-1], axis_name)
        predictions, updates = f.apply(
            {"params": params["predictor"], "batch_stats": batch_stats["predictor"]},
            inputs,
            train=True,
            mutable=["batch_stats"],
        )
        if self.residual:
            predictions = last + predictions
        per_pair = feature_regression_loss(predictions, targets)
        new_stats = {**batch_stats, "predictor": updates["batch_stats"]}  # phi runs in eval mode
        metrics = {
            "target_std": feature_std(targets, axis_name=axis_name),  # collapse indicator
            "prediction_std": feature_std(predictions, axis_name=axis_name),
            "copy_last_mse": feature_regression_loss(last, targets).mean(),
        }
        return per_pair.mean(), LossAux(new_stats, metrics)

    def encoder_variables(self, params, batch_stats):
        """f's variables, and phi's when it was trained (a frozen phi is added by export_encoder)."""
        out = {
            "predictor": {"params": params["predictor"], "batch_stats": batch_stats["predictor"]}
        }
        if self.train_phi:
            out["phi"] = {"params": params["phi"], "batch_stats": batch_stats["phi"]}
        return out

    def export_encoder(self, state: TrainState) -> dict[str, PyTree]:
        """{"phi": phi's variables, "predictor": f's}: what `encode` and "future_regression" need."""
        out = self.encoder_variables(state.params, state.batch_stats)
        if not self.train_phi:
            out["phi"] = state.extra["phi"]
        return out

    def predict(self, encoder_variables: dict[str, PyTree], frames: jax.Array):
        """(predictions, targets, last) [b * P, D] for every window of uint8 clips [b, T, H, W, C]."""
        features = self.clip_features(encoder_variables["phi"], frames)
        inputs, targets, last = windows(features, self.context, self.offset)
        f = self._predictor(targets.shape[-1], None)
        predictions = f.apply(encoder_variables["predictor"], inputs, train=False)
        if self.residual:
            predictions = last + predictions
        return predictions, targets, last

    def encode(self, encoder_variables, images):
        """f o phi of each clip's first window: the predicted features [b, D] of frame
        context - 1 + offset from the first `context` frames (images: uint8 clips [b, T, H, W, C])."""
        window = images[:, : self.context + self.offset]
        predictions, _, _ = self.predict(encoder_variables, window)
        return predictions.astype(jnp.float32)
