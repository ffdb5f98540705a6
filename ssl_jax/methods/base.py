"""What a self-supervised method is to the training loop: the state pytree and the `Method` interface.

The loop (ssl_jax.train) owns the mesh, the optimizer, the data and the checkpoints; a method owns its
networks, its augmentations, its loss and any state besides the optimized parameters (EMA targets, a queue,
a centre). Adding a method is one file implementing `Method` plus a loss in ssl_jax.losses; the loop never
branches on a method's name.

A method reads no dataset, file or other run. What it needs from them (a histogram of the training
data, a vocabulary, another run's encoder) it names in `data_inputs`; the layer above computes each
named value (ssl_jax.method_inputs) and hands them over, once, by `bind`; the method reads them with
`data_input`.
"""

from __future__ import annotations

import abc
from collections.abc import Mapping
from typing import Any, NamedTuple

import flax
import jax
import jax.numpy as jnp
import ml_collections

from ssl_jax import augment
from ssl_jax.methods import common

PyTree = Any


@flax.struct.dataclass
class TrainState:
    """Everything that changes during training, as one pytree (checkpointed whole).

    extra: state the method owns besides the optimized parameters: target/teacher parameters, a MoCo queue,
    a DINO centre. Updated functionally by `Method.update_extra` after each optimizer step.
    """

    step: jax.Array
    params: PyTree
    batch_stats: PyTree
    opt_state: PyTree
    rng: jax.Array
    extra: PyTree


class Variables(NamedTuple):
    """A method's freshly initialized variables."""

    params: PyTree
    batch_stats: PyTree
    extra: PyTree


def fresh_state(variables: Variables) -> TrainState:
    """A `TrainState` at step 0 holding `variables`, with no optimizer state: what `export_encoder`
    reads from a state, for variables that were never trained."""
    return TrainState(
        step=jnp.zeros((), jnp.int32),
        params=variables.params,
        batch_stats=variables.batch_stats,
        opt_state=(),
        rng=jax.random.key(0),
        extra=variables.extra,
    )


class LossAux(NamedTuple):
    """What a method's per-device loss returns besides the loss.

    batch_stats: the updated BatchNorm statistics (replicated: synchronized BN makes them equal on every
      device, and the loop averages them anyway for methods with per-device statistics).
    metrics: scalars for logging, averaged over devices by the loop.
    extra_out: anything computed on device that `update_extra` needs (e.g. the gathered MoCo keys); it must be
      identical on every device (gather it), since it leaves shard_map replicated.
    """

    batch_stats: PyTree
    metrics: dict[str, jax.Array]
    extra_out: PyTree = None


class Method(abc.ABC):
    """A self-supervised method: networks, augmentation and loss, bound to a config."""

    #: The source fields the training step receives besides "example_ids". `init` gets the shape of one
    #: example of the first; evaluation feeds that field to `encode`. Image methods read "image"; a text
    #: method reads "tokens"; a method that trains on labels (supervised pre-training) adds "label".
    batch_keys: tuple[str, ...] = ("image",)

    def __init__(
        self,
        config: ml_collections.ConfigDict,
        *,
        num_steps: int | None = None,
        steps_per_epoch: int | None = None,
    ):
        """num_steps, steps_per_epoch: the run's length, for schedules that span training (BYOL's tau,
        DINO's teacher temperature); None when the method is built only to encode (evaluation)."""
        self.config = config
        self.num_steps = num_steps
        self.steps_per_epoch = steps_per_epoch
        self._data_inputs: dict[str, Any] = {}

    def data_inputs(self) -> tuple[str, ...]:
        """The names of what this method, as configured, needs from data or from another run (e.g.
        colorization's "ab_counts"): each is computed by the provider of that name in
        ssl_jax.method_inputs and handed over by `bind` before the method is used. It may depend on
        the config and on whether the method trains (num_steps given) or only encodes. Default: none."""
        return ()

    def bind(self, inputs: Mapping[str, Any]) -> Method:
        """Hands the method the values of exactly the names `data_inputs` gives; returns the method."""
        if set(inputs) != set(self.data_inputs()):
            raise ValueError(
                f"{type(self).__name__} needs the data inputs {sorted(self.data_inputs())}; "
                f"got {sorted(inputs)}."
            )
        self._data_inputs = dict(inputs)
        return self

    def data_input(self, name: str) -> Any:
        """The value `bind` handed over for `name` (one of `data_inputs()`)."""
        if name not in self._data_inputs:
            raise ValueError(
                f"{type(self).__name__} needs {name!r} from the data; build the method with "
                "ssl_jax.method_inputs.build_method, which computes it and hands it over by `bind`."
            )
        return self._data_inputs[name]

    def require_run_length(self) -> tuple[int, int]:
        if self.num_steps is None or self.steps_per_epoch is None:
            raise ValueError(f"{type(self).__name__} needs num_steps and steps_per_epoch to train.")
        return self.num_steps, self.steps_per_epoch

    @abc.abstractmethod
    def init(self, rng: jax.Array, image_shape: tuple[int, ...]) -> Variables:
        """Initializes the method's variables for inputs whose examples have `image_shape`: the shape of
        one example of `batch_keys[0]` ([H, W, C] for images, [L] for token sequences)."""

    @abc.abstractmethod
    def loss_fn(
        self,
        params: PyTree,
        batch_stats: PyTree,
        extra: PyTree,
        batch: dict[str, jax.Array],
        *,
        rng: jax.Array,
        step: jax.Array,
        axis_name: str | None,
    ) -> tuple[jax.Array, LossAux]:
        """One device's share of the loss; runs inside `jax.shard_map` over `axis_name`.

        batch: this device's rows: "image" uint8 [b, H, W, C], "example_ids" int32 [b] (global row indices,
          to key per-example augmentation so results do not depend on the device count), maybe "label".
        rng: the step's key, identical on every device. Returns the mean loss over the local rows; the loop
        averages it over devices, so a loss that is already global (Barlow Twins) returns that value.
        """

    def update_extra(self, state: TrainState, extra_out: PyTree) -> PyTree:
        """Updates `state.extra` after the optimizer step (global view, inside jit). Default: unchanged."""
        del extra_out
        return state.extra

    def train_views(self) -> tuple[Any, ...] | None:
        """The `augment.ViewSpec`s of the training views, in order, whose random resized crops the
        host may take from photographs (ssl_jax.data.photos, one box per view on the original
        photo) and ship as batch["view_0"], ...; the step then reads them with
        `common.augment_view` and the crop off. None (default): the method reads batch["image"]
        whole, at config.data.image_size (a photo's centre crop)."""
        return None

    @abc.abstractmethod
    def encoder_variables(self, params: PyTree, batch_stats: PyTree) -> dict[str, PyTree]:
        """The backbone's variables ({"params", "batch_stats"}) that transfer to downstream tasks."""

    def export_encoder(self, state: TrainState) -> dict[str, PyTree]:
        """The backbone that evaluation and fine-tuning receive (saved as the checkpoint's encoder item).

        Default: the optimized backbone. Methods whose reported network is a target (DINO's teacher)
        override this."""
        return self.encoder_variables(state.params, state.batch_stats)

    def exported_shapes(self, example_shape: tuple[int, ...]) -> PyTree:
        """What `export_encoder` returns for examples of `example_shape`, as `jax.ShapeDtypeStruct`s,
        traced without computing anything: the tree a checkpoint must hold to be evaluated or
        fine-tuned under this config (`checkpoint.load_encoder(..., expected=...)`)."""

        def exported():
            variables = self.init(jax.random.key(0), example_shape)
            return self.export_encoder(fresh_state(variables))

        return jax.eval_shape(exported)

    @abc.abstractmethod
    def encode(self, encoder_variables: dict[str, PyTree], images: jax.Array) -> jax.Array:
        """Backbone features [b, D] (float32) of a batch of `batch_keys[0]` (uint8 images [b, H, W, C],
        or tokens [b, L]), no augmentation, eval mode."""

    def encoder_module(self, *, axis_name: str | None = None) -> Any:
        """The backbone as a Flax module, `module.apply(encoder_variables, preprocess(x), train=...)
        -> [b, D]` float32 features: what fine-tuning trains under a new head. BatchNorm (if any) is
        synchronized over `axis_name` in training mode.

        Default: config.model.encoder built by `ssl_jax.methods.common.build_encoder`, which every
        image method uses; a method with another backbone (text, a custom network) overrides it."""
        return common.build_encoder(self.config, axis_name=axis_name)

    def preprocess(
        self,
        inputs: jax.Array,
        *,
        train: bool = False,
        rng: jax.Array | None = None,
        example_ids: jax.Array | None = None,
        host_cropped: bool = False,
    ) -> jax.Array:
        """A batch of `batch_keys[0]` as the input of `encoder_module()`.

        train=False: deterministic (the transform `encode` applies). train=True: fine-tuning's light
        augmentation, random per example (keyed by `rng` and the global `example_ids`).
        host_cropped: the inputs are `finetune_view`'s random resized crops, already cut on the host
        from photographs (ssl_jax.data.photos): the device skips its crop.

        Default, for uint8 images [b, H, W, C]: evaluation is `common.eval_images` (resize /
        centre-crop to config.data.image_size, normalize); training is a random resized crop with
        scale config.eval.finetune_crop_scale (default (0.5, 1)) and a horizontal flip (p = 0.5),
        no colour augmentation. Methods on other inputs override it (no augmentation for tokens)."""
        if not train:
            return common.eval_images(self.config, inputs)
        if rng is None or example_ids is None:
            raise ValueError("preprocess(train=True) needs rng and example_ids.")
        spec = self.finetune_view(
            mean=tuple(self.config.data.mean),
            std=tuple(self.config.data.std),
            host_cropped=host_cropped,
        )
        return augment.augment_batch(rng, inputs, example_ids, spec)

    def finetune_view(
        self, *, mean: tuple[float, ...], std: tuple[float, ...], host_cropped: bool = False
    ):
        """Fine-tuning's augmentation (an `augment.ViewSpec`): a random resized crop to
        config.data.image_size with scale config.eval.finetune_crop_scale and a horizontal flip, no
        colour changes, normalized by mean and std; host_cropped: the crop was taken on the host."""
        return augment.ViewSpec(
            host_cropped=host_cropped,
            crop_size=int(self.config.data.image_size),
            crop_scale=tuple(self.config.eval.get("finetune_crop_scale", (0.5, 1.0))),
            flip_prob=0.5,
            jitter_prob=0.0,
            mean=mean,
            std=std,
        )
