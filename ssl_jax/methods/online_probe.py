"""An online linear probe during pre-training (as solo-learn trains one): any method plus a linear
classifier on stop_gradient(backbone features), trained with the labels at every step.

`OnlineProbe(method)` is itself a `Method`. It asks for "label" besides the wrapped method's inputs, keeps
the wrapped method's variables under params["method"] (its state, targets and queues are untouched) and
the classifier's under params["online_probe"], and adds the classifier's cross-entropy to the method's
loss. The features are those `encode` gives evaluation (eval mode, no augmentation) of the current
optimized backbone, behind a stop_gradient: the probe never changes the encoder, only watches it. The
classifier is trained by the run's optimizer like every other parameter; it is not part of
`export_encoder`, so checkpoints' encoders, evaluation and export are what they are without it.

Logged: online_probe_loss, online_probe_acc (top-1 on the training batch, before the step's update) and
method_loss (the wrapped method's own loss; "loss" is their sum). Enabled by config.online_probe.enabled
(`ssl_jax.methods.get_method` wraps the method).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import optax

from ssl_jax import models
from ssl_jax.methods.base import Method, PyTree, TrainState, Variables

METHOD, PROBE = "method", "online_probe"


class OnlineProbe(Method):
    """`method` plus a linear classifier over config.data.num_classes on its frozen features."""

    def __init__(self, method: Method):
        super().__init__(
            method.config, num_steps=method.num_steps, steps_per_epoch=method.steps_per_epoch
        )
        self.method = method
        self.batch_keys = tuple(dict.fromkeys((*method.batch_keys, "label")))
        self.num_classes = int(method.config.data.num_classes)
        self.weight = float(method.config.online_probe.get("weight", 1.0))

    def data_inputs(self) -> tuple[str, ...]:
        return self.method.data_inputs()

    def bind(self, inputs) -> OnlineProbe:
        self.method.bind(inputs)
        return self

    def _head(self) -> models.LinearHead:
        return models.LinearHead(self.num_classes)

    def _input_dtype(self):
        return jnp.uint8 if self.method.batch_keys[0] == "image" else jnp.int32

    def init(self, rng: jax.Array, image_shape: tuple[int, ...]) -> Variables:
        method_rng, head_rng = jax.random.split(rng)
        inner = self.method.init(method_rng, image_shape)
        encoder = self.method.encoder_variables(inner.params, inner.batch_stats)
        dummy = jnp.zeros((2, *image_shape), self._input_dtype())
        features = jax.eval_shape(self.method.encode, encoder, dummy)
        head = self._head().init(head_rng, jnp.zeros(features.shape, jnp.float32))["params"]
        return Variables({METHOD: inner.params, PROBE: head}, inner.batch_stats, inner.extra)

    def probe_loss(
        self, params: PyTree, batch_stats: PyTree, batch: dict[str, jax.Array]
    ) -> tuple[jax.Array, jax.Array]:
        """(mean cross-entropy, top-1 accuracy) of the classifier on this device's rows."""
        encoder = self.method.encoder_variables(params[METHOD], batch_stats)
        # Photographs cropped on the host carry no whole image: the probe watches the first
        # training view (encode resizes it to data.image_size), as solo-learn's probe does.
        inputs = batch["view_0"] if "view_0" in batch else batch[self.method.batch_keys[0]]
        # The probe only watches the backbone: no gradient flows from its loss into the encoder.
        features = jax.lax.stop_gradient(self.method.encode(encoder, inputs))
        logits = self._head().apply({"params": params[PROBE]}, features)
        labels = batch["label"]
        loss = optax.softmax_cross_entropy_with_integer_labels(logits, labels).mean()
        accuracy = jnp.mean((jnp.argmax(logits, -1) == labels).astype(jnp.float32))
        return loss, accuracy

    def loss_fn(self, params, batch_stats, extra, batch, *, rng, step, axis_name):
        loss, aux = self.method.loss_fn(
            params[METHOD], batch_stats, extra, batch, rng=rng, step=step, axis_name=axis_name
        )
        probe_loss, accuracy = self.probe_loss(params, batch_stats, batch)
        metrics = {
            **aux.metrics,
            "method_loss": loss,
            "online_probe_loss": probe_loss,
            "online_probe_acc": accuracy,
        }
        return loss + self.weight * probe_loss, aux._replace(metrics=metrics)

    def train_views(self):
        return self.method.train_views()

    def _inner_state(self, state: TrainState) -> TrainState:
        return state.replace(params=state.params[METHOD])

    def update_extra(self, state: TrainState, extra_out: PyTree) -> PyTree:
        return self.method.update_extra(self._inner_state(state), extra_out)

    def encoder_variables(self, params, batch_stats):
        return self.method.encoder_variables(params[METHOD], batch_stats)

    def export_encoder(self, state: TrainState) -> dict[str, PyTree]:
        return self.method.export_encoder(self._inner_state(state))

    def encode(self, encoder_variables, images):
        return self.method.encode(encoder_variables, images)

    def encoder_module(self, *, axis_name=None):
        return self.method.encoder_module(axis_name=axis_name)

    def preprocess(self, inputs, *, train=False, rng=None, example_ids=None, host_cropped=False):
        return self.method.preprocess(
            inputs, train=train, rng=rng, example_ids=example_ids, host_cropped=host_cropped
        )
