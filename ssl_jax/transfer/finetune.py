"""Fine-tuning a pre-trained encoder with a new linear head: all labels, or a fixed 1% / 10% of them,
from the pre-trained weights or from a random initialization (the baseline).

The one fine-tuning engine, for image and text methods alike: the encoder network and its input transform
come from the method (`Method.encoder_module`, `Method.preprocess`; a text method's module is its whole
model with mean pooling and preprocess leaves the tokens as they are), so any method's checkpoint can be
fine-tuned. The recipe is read from one namespace, config.eval.finetune_* (defaults in
ssl_jax.default_config). The training program is its own jitted, state-donating step over the data mesh:
the per-device cross-entropy runs under `jax.shard_map` with BatchNorm in training mode (synchronized over
the data axis, as in pre-training) and dropout keyed per device, the gradient is taken from outside it,
and the optimizer (AdamW or SGD, ssl_jax.optim's warm-up + cosine schedule) runs on the replicated state.
Batches come from the grain pipeline (ssl_jax.data.pipeline: the batch of step s is a function of the
seed and s); from photographs (ssl_jax.data.photos) the host takes each example's random resized crop
(`Method.finetune_view`'s size, scale and ratio) from the original photo and the device does the rest
of the view. Accuracy is measured in eval mode on the whole test split, and on the split named by
config.eval.finetune_validation_split when one is; photographs are scored on their eval crop (short
side resized, centre crop to config.data.image_size).

Low-label subsets (`label_subset`) are class-balanced and a pure function of (seed, fraction): each class
keeps the first round(fraction * n_class) rows (at least one) of a permutation drawn from
`np.random.default_rng([seed, class])`. So for one seed the 1% subset is contained in the 10% subset, and
a rerun, on any machine, fine-tunes on the same rows.

Layer-wise learning-rate decay (Clark et al. 2020, ELECTRA; Bao et al. 2022, BEiT) multiplies the update of
a parameter at depth d by decay ** (L + 1 - d): the head has depth L + 1 (factor 1), the input layers depth 0
(factor decay ** (L + 1)). Depths come from the encoder's top-level parameter names (`layer_depths`):
ResNet: stem 0, stage s (`layer{s}_{block}`) s, L = number of stages. ViT / transformer: embeddings 0,
`block{i}` i + 1, the final norm L + 1, L = number of blocks. Anything else: the top-level names are grouped
by the first integer in their name (`conv2` and `bn2` together) and ranked 1..L in numeric order; names
without a number have depth 0.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
from jax.sharding import PartitionSpec as P

from ssl_jax import checkpoint, data, default_config, models, optim, parallel
from ssl_jax.data.common import RowsSource
from ssl_jax.data.photos import CropView
from ssl_jax.data.pipeline import Pipeline, is_photos, labelled_eval_batches
from ssl_jax.methods.base import TrainState
from ssl_jax.transfer import probes

PyTree = Any


@functools.lru_cache(maxsize=1)
def _default_eval() -> ml_collections.ConfigDict:
    return default_config.get_config().eval


def _field(eval_cfg: Any, name: str) -> Any:
    """config.eval.<name>, or its default (ssl_jax.default_config) for a config saved before it existed."""
    value = eval_cfg.get(name, None) if eval_cfg is not None else None
    return _default_eval()[name] if value is None else value


# ----------------------------------------------------------------------------------------------------
# Label subsets
# ----------------------------------------------------------------------------------------------------


def label_subset(labels: np.ndarray, fraction: float, seed: int) -> np.ndarray:
    """Sorted row indices of a class-balanced `fraction` of `labels` [N], fixed by `seed`.

    Each class c keeps max(1, round(fraction * n_c)) rows: the first ones of the permutation of its rows
    drawn from `default_rng([seed, c])`, so subsets of one seed are nested across fractions.
    """
    labels = np.asarray(labels)
    if not 0.0 < fraction <= 1.0:
        raise ValueError(f"label fraction must lie in (0, 1], got {fraction}.")
    if fraction == 1.0:
        return np.arange(len(labels))
    kept = []
    for c in np.unique(labels):
        rows = np.flatnonzero(labels == c)
        count = max(1, int(round(fraction * len(rows))))
        kept.append(np.random.default_rng([seed, int(c)]).permutation(rows)[:count])
    return np.sort(np.concatenate(kept))


def source_labels(source: Any) -> np.ndarray:
    """All labels of a source: its `labels` array when it has one, else read in chunks."""
    labels = getattr(source, "labels", None)
    if labels is not None:
        return np.asarray(labels)
    chunks = [
        source.get(np.arange(i, min(i + 4096, len(source))))["label"]
        for i in range(0, len(source), 4096)
    ]
    return np.concatenate(chunks)


# ----------------------------------------------------------------------------------------------------
# Layer-wise learning-rate decay
# ----------------------------------------------------------------------------------------------------

_RESNET_STAGE = re.compile(r"^layer(\d+)_\d+$")
_BLOCK = re.compile(r"^block(\d+)$")
_FINAL_NORMS = ("norm", "final_norm", "encoder_norm", "ln_f")
_FIRST_INT = re.compile(r"(\d+)")


def layer_depths(top_level_names: list[str]) -> tuple[dict[str, int], int]:
    """({top-level encoder parameter name: depth}, L); see the module docstring for the rules."""
    names = list(top_level_names)
    if any(_RESNET_STAGE.match(n) for n in names):
        depths = {n: int(m.group(1)) if (m := _RESNET_STAGE.match(n)) else 0 for n in names}
        return depths, max(depths.values())
    if any(_BLOCK.match(n) for n in names):
        num_layers = 1 + max(int(m.group(1)) for n in names if (m := _BLOCK.match(n)))
        depths = {}
        for n in names:
            m = _BLOCK.match(n)
            depths[n] = int(m.group(1)) + 1 if m else (num_layers + 1 if n in _FINAL_NORMS else 0)
        return depths, num_layers
    numbers = {n: int(m.group(1)) for n in names if (m := _FIRST_INT.search(n))}
    rank = {v: i + 1 for i, v in enumerate(sorted(set(numbers.values())))}
    return {n: rank[numbers[n]] if n in numbers else 0 for n in names}, len(rank)


def layer_decay_factors(params: PyTree, decay: float) -> PyTree:
    """A tree like `params` ({"encoder": ..., "head": ...}) of learning-rate factors decay ** (L + 1 - d)."""
    depths, num_layers = layer_depths(list(params["encoder"]))
    factors = {
        "encoder": {
            name: jax.tree.map(lambda _, d=d: decay ** (num_layers + 1 - d), sub)
            for name, sub in params["encoder"].items()
            for d in (depths[name],)
        }
    }
    for key in params:
        if key != "encoder":
            factors[key] = jax.tree.map(lambda _: 1.0, params[key])
    return factors


def scale_by_tree(factors: PyTree) -> optax.GradientTransformation:
    """Multiplies each update by its constant factor (a per-parameter learning-rate multiplier)."""

    def init_fn(params):
        del params
        return optax.EmptyState()

    def update_fn(updates, state, params=None):
        del params
        return jax.tree.map(lambda u, f: u * f, updates, factors), state

    return optax.GradientTransformation(init_fn, update_fn)


# ----------------------------------------------------------------------------------------------------
# The model and its training step
# ----------------------------------------------------------------------------------------------------


class Classifier(nn.Module):
    """encoder -> linear head (zero-initialized); parameters under "encoder" and "head"."""

    encoder: nn.Module
    num_classes: int

    @nn.compact
    def __call__(self, x: jax.Array, train: bool) -> jax.Array:
        features = self.encoder(x, train=train)
        return models.LinearHead(self.num_classes, name="head")(features)


def _variables(params: PyTree, batch_stats: PyTree) -> dict[str, PyTree]:
    return {"params": params, "batch_stats": batch_stats} if batch_stats else {"params": params}


def train_step(
    state: TrainState,
    batch: dict[str, jax.Array],
    *,
    model: Classifier,
    method: Any,
    tx: optax.GradientTransformation,
    schedule: optax.Schedule,
    mesh: jax.sharding.Mesh,
    input_key: str,
    augment: bool,
    label_smoothing: float,
    host_cropped: bool = False,
) -> tuple[TrainState, dict[str, jax.Array]]:
    """One optimizer step of cross-entropy on a global labelled batch sharded over the data axis."""
    axis = parallel.DATA_AXIS
    num_classes = model.num_classes

    def device_loss(params, batch_stats, batch, rng):
        x = method.preprocess(
            batch[input_key],
            train=augment,
            rng=rng,
            example_ids=batch["example_ids"],
            host_cropped=host_cropped,
        )
        logits, updates = model.apply(
            _variables(params, batch_stats),
            x,
            train=True,
            mutable=["batch_stats"],
            rngs={"dropout": jax.random.fold_in(rng, parallel.axis_index(axis))},
        )
        labels = batch["label"]
        targets = optax.smooth_labels(jax.nn.one_hot(labels, num_classes), label_smoothing)
        loss = optax.softmax_cross_entropy(logits.astype(jnp.float32), targets).mean()
        correct = jnp.mean((jnp.argmax(logits, -1) == labels).astype(jnp.float32))
        new_stats = parallel.pmean(updates.get("batch_stats", {}), axis)
        metrics = {"loss": parallel.pmean(loss, axis), "accuracy": parallel.pmean(correct, axis)}
        return metrics["loss"], (new_stats, metrics)

    sharded_loss = parallel.per_device(
        device_loss, mesh, in_specs=(P(), P(), P(axis), P()), out_specs=(P(), (P(), P()))
    )
    rng = jax.random.fold_in(state.rng, state.step)
    (_, (batch_stats, metrics)), grads = jax.value_and_grad(sharded_loss, has_aux=True)(
        state.params, state.batch_stats, batch, rng
    )
    updates, opt_state = tx.update(grads, state.opt_state, state.params)
    new_state = state.replace(
        step=state.step + 1,
        params=optax.apply_updates(state.params, updates),
        batch_stats=batch_stats,
        opt_state=opt_state,
    )
    return new_state, {**metrics, "learning_rate": schedule(state.step)}


def make_train_step(
    model, method, tx, schedule, mesh, *, input_key, augment, label_smoothing, host_cropped=False
):
    """The jitted step: state replicated and donated, batch split over the data axis."""
    step = functools.partial(
        train_step,
        model=model,
        method=method,
        tx=tx,
        schedule=schedule,
        mesh=mesh,
        input_key=input_key,
        augment=augment,
        label_smoothing=label_smoothing,
        host_cropped=host_cropped,
    )
    return parallel.jit_train_step(step, mesh)


# ----------------------------------------------------------------------------------------------------
# The protocol
# ----------------------------------------------------------------------------------------------------


def init_variables(
    model: Classifier, method: Any, example: np.ndarray, rng: jax.Array
) -> dict[str, PyTree]:
    """Freshly initialized {"params", "batch_stats"} of `model` for inputs like `example` [1, ...]."""

    @jax.jit
    def init(rng):
        x = method.preprocess(jnp.asarray(example), train=False)
        return model.init(rng, x, train=False)

    variables = init(rng)
    return {"params": variables["params"], "batch_stats": variables.get("batch_stats", {})}


def start_variables(
    model: Classifier,
    method: Any,
    example: np.ndarray,
    encoder_variables: Mapping[str, PyTree] | None,
    rng: jax.Array,
) -> tuple[PyTree, PyTree]:
    """(params, batch_stats) to fine-tune from: a new head on `encoder_variables` (checked against the
    method's encoder: a mismatching architecture is an error naming the paths), or all fresh when None."""
    fresh = init_variables(model, method, example, rng)
    if encoder_variables is None:
        return fresh["params"], fresh["batch_stats"]
    expected = {
        "params": fresh["params"]["encoder"],
        "batch_stats": fresh["batch_stats"].get("encoder", {}),
    }
    given = {
        "params": encoder_variables["params"],
        "batch_stats": encoder_variables.get("batch_stats", None) or {},
    }
    checkpoint.check_tree_matches(expected, given, what="the pre-trained encoder")
    params = {**fresh["params"], "encoder": given["params"]}
    batch_stats = dict(fresh["batch_stats"])
    if given["batch_stats"]:
        batch_stats["encoder"] = given["batch_stats"]
    return params, batch_stats


def _optimizer(eval_cfg, params, *, steps_per_epoch: int, num_steps: int, batch_size: int):
    warmup = int(_field(eval_cfg, "finetune_warmup_steps")) or int(
        round(_field(eval_cfg, "finetune_warmup_epochs") * steps_per_epoch)
    )
    optim_cfg = ml_collections.ConfigDict(
        {
            "name": _field(eval_cfg, "finetune_optimizer"),
            "learning_rate": float(_field(eval_cfg, "finetune_learning_rate")),
            "lr_scaling": "none",
            "batch_size": batch_size,
            "weight_decay": float(_field(eval_cfg, "finetune_weight_decay")),
            "momentum": float(_field(eval_cfg, "finetune_momentum")),
            "warmup_steps": min(warmup, max(0, num_steps - 1)),
        }
    )
    tx, schedule = optim.make_optimizer(optim_cfg, num_steps)
    decay = float(_field(eval_cfg, "finetune_layer_decay"))
    if not 0.0 < decay <= 1.0:
        raise ValueError(f"config.eval.finetune_layer_decay must lie in (0, 1], got {decay}.")
    if decay < 1.0:
        tx = optax.chain(tx, scale_by_tree(layer_decay_factors(params, decay)))
    return tx, schedule


def finetune(
    config: ml_collections.ConfigDict,
    method: Any,
    encoder_variables: Mapping[str, PyTree] | None,
    *,
    label_fraction: float = 1.0,
    mesh: jax.sharding.Mesh | None = None,
    random_init: bool = False,
) -> dict[str, Any]:
    """Fine-tunes the encoder + a new linear head on `label_fraction` of config.data's training labels
    (class-balanced, one subset per seed of config.eval.finetune_seeds) and scores the test split (and
    config.eval.finetune_validation_split, if set).

    encoder_variables None, random_init, or config.eval.finetune_random_init: start from a random
    initialization (the baseline pre-training is compared against). Returns {"top1": mean over seeds,
    "top1_per_seed", "top5" (mean, num_classes >= 5), "validation_top1" (with a validation split),
    "train_examples", "steps", "epochs", "label_fraction", "random_init", "init" ("pretrained" or
    "random"), "layer_decay", "train_loss" (last step, first seed)}.
    """
    mesh = parallel.make_mesh() if mesh is None else mesh
    eval_cfg = config.get("eval")
    if random_init or _field(eval_cfg, "finetune_random_init"):
        encoder_variables = None
    input_key = method.batch_keys[0]
    train_source = data.get_source(config.data, "train")
    num_classes = int(train_source.num_classes or config.data.num_classes)
    scored = {"top1": data.get_source(config.data, "test")}
    validation_split = str(_field(eval_cfg, "finetune_validation_split"))
    if validation_split:
        scored["validation_top1"] = data.get_source(config.data, validation_split)
    labels = source_labels(train_source)
    model = Classifier(method.encoder_module(axis_name=parallel.DATA_AXIS), num_classes)
    eval_model = Classifier(method.encoder_module(axis_name=None), num_classes)
    example = train_source.get(np.zeros(1, np.int64))[input_key]

    seeds = [int(s) for s in _field(eval_cfg, "finetune_seeds")]
    subsets = [label_subset(labels, label_fraction, config.seed + s) for s in seeds]
    n_train = len(subsets[0])
    n_dev = parallel.num_shards(mesh)
    batch_size = min(int(_field(eval_cfg, "finetune_batch_size")), (n_train // n_dev) * n_dev)
    parallel.check_batch_size(batch_size, mesh)
    steps_per_epoch = n_train // batch_size
    num_steps = int(_field(eval_cfg, "finetune_steps")) or max(
        1, int(round(float(_field(eval_cfg, "finetune_epochs")) * steps_per_epoch))
    )

    rng = jax.random.PRNGKey(config.seed)
    params, batch_stats = start_variables(model, method, example, encoder_variables, rng)
    # Host copies: each seed's state gets fresh device buffers, since the step donates its input (the
    # caller's encoder arrays must survive it).
    params, batch_stats = parallel.fetch((params, batch_stats))
    tx, schedule = _optimizer(
        eval_cfg,
        params,
        steps_per_epoch=steps_per_epoch,
        num_steps=num_steps,
        batch_size=batch_size,
    )
    augment = bool(_field(eval_cfg, "finetune_augment"))
    views = _host_views(method, train_source) if augment else None
    step_fn = make_train_step(
        model,
        method,
        tx,
        schedule,
        mesh,
        input_key=input_key,
        augment=augment,
        label_smoothing=float(_field(eval_cfg, "finetune_label_smoothing")),
        host_cropped=views is not None,
    )

    @jax.jit
    def logits_fn(variables, inputs):
        return eval_model.apply(variables, method.preprocess(inputs, train=False), train=False)

    accuracies = {key: [] for key in scored}
    top5, train_loss = [], None
    for seed, rows in zip(seeds, subsets, strict=True):
        state = TrainState(
            step=jnp.zeros((), jnp.int32),
            params=params,
            batch_stats=batch_stats,
            opt_state=jax.jit(tx.init)(params),
            rng=jax.random.fold_in(rng, seed),
            extra={},
        )
        state = parallel.replicate(state, mesh)
        source = RowsSource(train_source, rows)
        with Pipeline(
            source,
            batch_size,
            seed=config.seed + seed,
            views=views,
            process_index=jax.process_index(),
            process_count=jax.process_count(),
            num_workers=config.data.get("num_workers", 0),
            keys=(input_key, "label"),
        ) as batches:
            for _ in range(num_steps):
                batch = next(batches)
                if views is not None:  # the one host-cropped view is the encoder's input
                    batch = {input_key: batch.pop("view_0"), **batch}
                batch = {k: batch[k] for k in (input_key, "label", "example_ids")}
                state, metrics = step_fn(state, parallel.shard_batch(batch, mesh))
        if train_loss is None:
            train_loss = float(parallel.fetch(metrics["loss"]))
        for key, split_source in scored.items():
            logits, labels_seen = _logits(
                logits_fn, state, split_source, config, mesh, input_key=input_key
            )
            accuracies[key].append(float(probes.accuracy(logits, labels_seen, k=1)))
            if key == "top1" and num_classes >= 5:
                top5.append(float(probes.accuracy(logits, labels_seen, k=5)))
    top1 = accuracies["top1"]
    result = {
        **{key: float(np.mean(values)) for key, values in accuracies.items()},
        "top1_per_seed": top1,
        "train_examples": int(n_train),
        "steps": int(num_steps),
        "epochs": num_steps / steps_per_epoch,
        "batch_size": int(batch_size),
        "label_fraction": float(label_fraction),
        "random_init": encoder_variables is None,
        "init": "random" if encoder_variables is None else "pretrained",
        "layer_decay": float(_field(eval_cfg, "finetune_layer_decay")),
        "optimizer": str(_field(eval_cfg, "finetune_optimizer")),
        "learning_rate": float(_field(eval_cfg, "finetune_learning_rate")),
        "train_loss": train_loss,
    }
    if top5:
        result["top5"] = float(np.mean(top5))
    return result


def _host_views(method: Any, source: Any) -> tuple[CropView] | None:
    """The one crop the host takes from each photograph (`method.finetune_view`'s box law), or None
    for fixed-size arrays, cropped on device."""
    if not is_photos(source):
        return None
    spec = method.finetune_view(mean=(0.0,), std=(1.0,))
    return (CropView(spec.crop_size, spec.crop_scale, spec.crop_ratio),)


def _logits(logits_fn, state, source, config, mesh, *, input_key):
    """(logits, labels) of every row of `source`, in eval mode, on every process."""
    logits, labels = probes.extract_features(
        logits_fn,
        _variables(state.params, state.batch_stats),
        labelled_eval_batches(
            source,
            _eval_batch_size(config.get("eval"), mesh),
            keys=(input_key, "label"),
            image_size=int(config.data.get("image_size", 0) or 0) or None,
            num_workers=config.data.get("num_workers", 0),
            process_index=jax.process_index(),
            process_count=jax.process_count(),
        ),
        mesh=mesh,
        input_key=input_key,
    )
    return parallel.gather_processes(logits), parallel.gather_processes(labels)


def _eval_batch_size(eval_cfg, mesh) -> int:
    n = parallel.num_shards(mesh)
    requested = int(eval_cfg.get("batch_size", 512)) if eval_cfg is not None else 512
    return max(n, (requested // n) * n)


def protocol(label_fraction: float, *, random_init: bool = False):
    """A MODEL_PROTOCOLS entry: fn(config, method, encoder_variables, *, mesh) -> results."""

    def run(config, method, encoder_variables, *, mesh=None):
        return finetune(
            config,
            method,
            encoder_variables,
            label_fraction=label_fraction,
            mesh=mesh,
            random_init=random_init,
        )

    run.__name__ = f"finetune_{label_fraction:g}" + ("_scratch" if random_init else "")
    return run


PROTOCOLS = {
    "finetune": protocol(1.0),
    "finetune_10pct": protocol(0.1),
    "finetune_1pct": protocol(0.01),
    # the same recipe from a random initialization: what pre-training bought
    "finetune_scratch": protocol(1.0, random_init=True),
}
