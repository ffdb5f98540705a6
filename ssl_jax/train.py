"""The generic pre-training loop: one jitted, state-donating step over the data mesh, whatever the method.

`train_step(state, batch) -> (state, metrics)` is pure: the method's loss runs per device under
`jax.shard_map` (sharded negatives, synchronized BatchNorm), its gradient is taken from outside the shard_map
(so JAX inserts the cross-device reduction itself), and the optimizer and target updates run on the
replicated state. The host ships uint8 images and global example indices only: whole images, or,
for photographs (ssl_jax.data.photos), the method's training views cropped on the host from the
original photo (`host_views`), whose remaining augmentation runs on device.
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import shutil
import signal
import threading
import time
from typing import Any

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
from jax.sharding import PartitionSpec as P

from ssl_jax import checkpoint, config_util, data, optim, parallel, reporting
from ssl_jax.data.photos import CropView
from ssl_jax.data.pipeline import Pipeline, is_photos
from ssl_jax.method_inputs import build_method
from ssl_jax.methods import LossAux, Method, TrainState, method_class
from ssl_jax.transfer import evaluate


def step_keys(method: Method, num_views: int = 0) -> tuple[str, ...]:
    """What the host sends to the devices each step: the method's `batch_keys` and the global row ids
    (labels stay on the host unless a method asks for them); with `num_views` host crops, the views
    "view_0", ... in place of "image"."""
    keys = method.batch_keys
    if num_views:
        views = tuple(f"view_{i}" for i in range(num_views))
        keys = views + tuple(k for k in keys if k != "image")
    return (*keys, "example_ids")


def host_views(method: Method, source: Any) -> tuple[CropView, ...] | None:
    """The crops the host cuts from each photograph: one per `method.train_views()` spec, with its
    size, scale and ratio. None (whole images) for array sources and methods without train views."""
    specs = method.train_views() if is_photos(source) else None
    if specs is None:
        return None
    return tuple(CropView(s.crop_size, s.crop_scale, s.crop_ratio) for s in specs)


def create_train_state(
    method: Method, tx: optax.GradientTransformation, rng: jax.Array, image_shape: tuple[int, ...]
) -> TrainState:
    """The initial state, built by one compiled program (eager Flax init compiles op by op)."""

    @jax.jit
    def init(rng):
        init_rng, state_rng = jax.random.split(rng)
        variables = method.init(init_rng, image_shape)
        return TrainState(
            step=jnp.zeros((), jnp.int32),
            params=variables.params,
            batch_stats=variables.batch_stats,
            opt_state=tx.init(variables.params),
            rng=state_rng,
            extra=variables.extra,
        )

    return init(rng)


def train_step(
    state: TrainState,
    batch: dict[str, jax.Array],
    *,
    method: Method,
    tx: optax.GradientTransformation,
    schedule: optax.Schedule,
    mesh: jax.sharding.Mesh,
    guard_nonfinite: bool = True,
) -> tuple[TrainState, dict[str, jax.Array]]:
    """One optimizer step on a global batch sharded over the data axis. guard_nonfinite=False drops the
    select that keeps the old state on a non-finite step (benchmarks/ablations.py times its cost)."""
    axis = parallel.DATA_AXIS

    def device_loss(params, batch_stats, extra, batch, rng, step):
        loss, aux = method.loss_fn(
            params, batch_stats, extra, batch, rng=rng, step=step, axis_name=axis
        )
        # Averaging is a no-op for values already equal on every device (synchronized BN statistics).
        aux = LossAux(
            parallel.pmean(aux.batch_stats, axis), parallel.pmean(aux.metrics, axis), aux.extra_out
        )
        return parallel.pmean(loss, axis), aux

    sharded_loss = parallel.per_device(
        device_loss,
        mesh,
        in_specs=(P(), P(), P(), P(axis), P(), P()),
        out_specs=(P(), P()),
    )
    # Same key on every device; per-example randomness comes from folding in the global example index.
    rng = jax.random.fold_in(state.rng, state.step)
    grad_fn = jax.value_and_grad(sharded_loss, has_aux=True)
    (loss, aux), grads = grad_fn(
        state.params, state.batch_stats, state.extra, batch, rng, state.step
    )
    updates, opt_state = tx.update(grads, state.opt_state, state.params)
    new_state = state.replace(
        step=state.step + 1,
        params=optax.apply_updates(state.params, updates),
        batch_stats=aux.batch_stats,
        opt_state=opt_state,
    )
    new_state = new_state.replace(extra=method.update_extra(new_state, aux.extra_out))
    grad_norm = _global_norm(grads)
    # A non-finite loss or gradient leaves everything but the step counter as it was, so the state in
    # memory (and any checkpoint written from it) stays the last good one; the host decides what to do.
    finite = jnp.isfinite(loss) & jnp.isfinite(grad_norm)
    if guard_nonfinite:
        kept = jax.tree.map(lambda new, old: jnp.where(finite, new, old), new_state, state)
        new_state = kept.replace(step=state.step + 1)
    metrics = {
        "loss": loss,
        "learning_rate": schedule(state.step),
        "grad_norm": grad_norm,
        "nonfinite": 1 - finite.astype(jnp.int32),
        **aux.metrics,
    }
    return new_state, metrics


# optax.tree.norm replaced optax.global_norm (deprecated); keep working with either optax.
_global_norm = getattr(getattr(optax, "tree", None), "norm", None) or optax.global_norm


def make_train_step(method, tx, schedule, mesh, *, guard_nonfinite: bool = True):
    """The jitted step: state replicated and donated, batch split over the data axis."""
    step = functools.partial(
        train_step,
        method=method,
        tx=tx,
        schedule=schedule,
        mesh=mesh,
        guard_nonfinite=guard_nonfinite,
    )
    return parallel.jit_train_step(step, mesh)


def total_steps(config: ml_collections.ConfigDict, num_examples: int) -> tuple[int, int]:
    """(steps per epoch, total steps): config.num_steps when > 0, else num_epochs of the train split."""
    steps_per_epoch = num_examples // config.batch_size
    if steps_per_epoch == 0:
        raise ValueError(
            f"The training split has {num_examples} examples, fewer than one batch of {config.batch_size}."
        )
    if config.get("num_steps", 0):
        return steps_per_epoch, int(config.num_steps)
    return steps_per_epoch, int(round(config.num_epochs * steps_per_epoch))


def optimizer_config(config, steps_per_epoch: int, num_steps: int) -> ml_collections.ConfigDict:
    """config.optim with the batch size and warm-up in steps filled in.

    A warm-up longer than the run (a short `num_steps` override of an epoch-based recipe) is cut to
    leave at least one decaying step.
    """
    cfg = ml_collections.ConfigDict(config.optim.to_dict())
    cfg.batch_size = config.batch_size
    if "warmup_epochs" in cfg:
        cfg.warmup_steps = int(round(cfg.warmup_epochs * steps_per_epoch))
        del cfg["warmup_epochs"]
    asked = int(cfg.get("warmup_steps", 0))
    cfg.warmup_steps = min(asked, max(0, num_steps - 1))
    if num_steps > 1 and 2 * asked > num_steps and jax.process_index() == 0:
        # A short override of a long recipe (--config.num_epochs=3 on a 10-epoch warm-up) otherwise
        # spends the whole run warming up and never decays; say so rather than learn less silently.
        print(
            f"Warning: the warm-up ({asked} steps) is more than half of this run's {num_steps} "
            f"steps{' and is cut to ' + str(cfg.warmup_steps) if asked > cfg.warmup_steps else ''}; "
            "set config.optim.warmup_epochs (or warmup_steps) for a run this short.",
            flush=True,
        )
    return cfg


def check_source(source: Any, config: ml_collections.ConfigDict, input_key: str = "image") -> None:
    """The data must hold the method's input, and images must match the config's channel count."""
    example = source.get(np.zeros(1, np.int64))
    if input_key not in example:
        raise ValueError(
            f"Dataset {source.name!r} provides {sorted(example)}, but method {config.method!r} "
            f"trains on {input_key!r}; choose a dataset that has it (config.data.name)."
        )
    if input_key != "image":
        return
    channels = config.data.channels
    if source.image_shape[-1] != channels:
        raise ValueError(
            f"Dataset {source.name!r} has images of shape {tuple(source.image_shape)} "
            f"({source.image_shape[-1]} channels) but config.data.channels is {channels}; "
            f"set --config.data.channels={source.image_shape[-1]}."
        )


def prepare_workdir(workdir: str, config: ml_collections.ConfigDict, *, overwrite: bool) -> None:
    """Records the config; refuses a workdir that holds another run's config unless told to overwrite."""
    os.makedirs(workdir, exist_ok=True)
    path = os.path.join(workdir, config_util.CONFIG_FILE)
    new = config_util.to_dict(config)
    if os.path.isfile(path) and not overwrite:
        with open(path) as f:
            diffs = config_util.config_differences(json.load(f), new)
        if diffs:
            raise ValueError(
                f"{workdir!r} holds another run (its config differs: {'; '.join(diffs[:8])}). "
                "Use another --workdir, or pass --overwrite to start this run there afresh."
            )
    if overwrite and jax.process_index() == 0:
        shutil.rmtree(checkpoint.checkpoint_dir(workdir), ignore_errors=True)
        for name in (reporting.METRICS_FILE, "eval.json"):
            if os.path.exists(os.path.join(workdir, name)):
                os.remove(os.path.join(workdir, name))
    if jax.process_count() > 1:  # nobody starts before process 0 has cleared the old run
        from jax.experimental import multihost_utils

        multihost_utils.sync_global_devices("ssl_jax.prepare_workdir")
    if jax.process_index() == 0:
        with open(path, "w") as f:
            json.dump(new, f, indent=2, sort_keys=True)


def pretrain(
    config: ml_collections.ConfigDict,
    workdir: str,
    *,
    overwrite: bool = False,
    stop_at_step: int | None = None,
) -> dict[str, Any]:
    """Pre-trains `config.method` into `workdir` (resuming from its latest checkpoint), then evaluates.

    stop_at_step: leave after checkpointing this step, as a preempted job would (no evaluation); the
      next call resumes. Returns the final evaluation results (also written to WORKDIR/eval.json), or,
      when SIGTERM / SIGINT stopped the run, {"step", "stopped", "preempted": True, "signal"}.

    A SIGTERM / SIGINT at any point of the call stops it with the state saved: while training, after
    the current step and its checkpoint; during the final evaluation (its checkpoint committed), at
    once, without eval.json. Running again resumes, or, from the last step, evaluates.
    """
    with _PreemptionRequest() as preemption:
        return _pretrain(
            config, workdir, overwrite=overwrite, stop_at_step=stop_at_step, preemption=preemption
        )


def _pretrain(
    config: ml_collections.ConfigDict,
    workdir: str,
    *,
    overwrite: bool,
    stop_at_step: int | None,
    preemption: _PreemptionRequest,
) -> dict[str, Any]:
    """`pretrain`, with SIGTERM / SIGINT already turned into `preemption` requests."""
    mesh = parallel.make_mesh()
    parallel.check_batch_size(config.batch_size, mesh)
    method_class(config.method)  # an unknown method name fails before any data is read
    train_source = data.get_source(config.data, "train")
    steps_per_epoch, num_steps = total_steps(config, len(train_source))
    method = build_method(config, num_steps=num_steps, steps_per_epoch=steps_per_epoch)
    input_key = method.batch_keys[0]
    check_source(train_source, config, input_key)
    tx, schedule = optim.make_optimizer(
        optimizer_config(config, steps_per_epoch, num_steps), num_steps
    )
    prepare_workdir(workdir, config, overwrite=overwrite)
    is_main = jax.process_index() == 0

    state = create_train_state(
        method, tx, jax.random.PRNGKey(config.seed), data.example_shape(train_source, input_key)
    )
    state = parallel.replicate(state, mesh)
    ckpt = checkpoint.Checkpointer(
        workdir, max_to_keep=config.get("keep_checkpoints", 2), async_save=True
    )
    start = ckpt.latest_step() or 0
    if start:
        state, position = ckpt.restore(start, state)
        start = int(position["step"])
        if is_main:
            print(f"Resuming from the checkpoint at step {start} in {workdir}.", flush=True)
    if is_main:  # drops what a run killed after its last checkpoint (or before its first) logged
        reporting.truncate_metrics(workdir, start if start else -1)

    writer = reporting.MetricsWriter(workdir, enabled=is_main)
    views = host_views(method, train_source)
    loader = Pipeline(  # grain; the batch of step s is a function of (seed, s), for any num_workers
        train_source,
        config.batch_size,
        seed=config.seed,
        views=views,
        start_step=start,
        process_index=jax.process_index(),
        process_count=jax.process_count(),
        num_workers=config.data.get("num_workers", 0),
        keys=method.batch_keys,
    )
    keys = step_keys(method, len(views or ()))
    step_fn = make_train_step(method, tx, schedule, mesh)
    progress = reporting.Progress(
        total=num_steps, initial=start, images_per_step=config.batch_size, enabled=is_main
    )
    log_every = max(1, config.log_every_steps)
    eval_every = config.get("eval_every_steps", 0)
    ckpt_every = config.checkpoint_every_steps
    if eval_every and start == 0:  # the random-initialization baseline, so the curve shows the gain
        encoder = method.export_encoder(state)
        result = evaluate.evaluate_encoder(config, method, encoder, ("knn",), mesh=mesh)
        writer.write(0, {"knn_top1": result["knn"]["top1"]})
    window_start, window_step = time.perf_counter(), start
    policy = config.get("nonfinite_policy", "stop")
    if policy not in NONFINITE_POLICIES:
        raise ValueError(f"nonfinite_policy must be one of {NONFINITE_POLICIES}, got {policy!r}.")
    pending = None  # (step, metrics) of the previous step: checked one step late, so the host never
    # waits on the step it just dispatched
    preempted = False
    try:
        for step in range(start, num_steps):
            if step == start and preemption.signum is not None:  # a notice during start-up: stop
                preempted, done = True, start  # before compiling a step, nothing new to save
                break
            batch = next(loader)
            batch = parallel.shard_batch({k: batch[k] for k in keys}, mesh)
            state, metrics = step_fn(state, batch)
            done = step + 1
            if pending is not None:
                check_finite(*pending, policy=policy, progress=progress)
            pending = (done, metrics)
            if done % log_every == 0 or done == num_steps:
                metrics = parallel.fetch(metrics)
                now = time.perf_counter()
                rate = (done - window_step) / max(now - window_start, 1e-9)
                window_start, window_step = now, done
                metrics["steps_per_sec"] = rate
                metrics["images_per_sec"] = rate * config.batch_size
                writer.write(done, metrics)
                progress.update(done, float(metrics["loss"]))
            else:
                progress.update(done)
            if eval_every and done % eval_every == 0 and done != num_steps:
                encoder = method.export_encoder(state)
                result = evaluate.evaluate_encoder(config, method, encoder, ("knn",), mesh=mesh)
                writer.write(done, {"knn_top1": result["knn"]["top1"]})
                window_start = time.perf_counter()
            preempted = preemption.reached(done)  # the last step too: its evaluation can wait
            stopping = done == stop_at_step or preempted
            if stopping or done == num_steps:
                check_finite(*pending, policy=policy, progress=progress)
            if done % ckpt_every == 0 or done == num_steps or stopping:
                encoder = method.export_encoder(state)
                ckpt.save(done, state, loader.get_state(), encoder)  # {"step": done, "seed", ...}
            if stopping:
                break
    finally:
        progress.close()
        loader.close()
        ckpt.close()
    if preempted:
        writer.close()
        saved = "checkpoint saved" if done > 0 else "nothing to save"
        print(f"Stopped by a signal after step {done}; {saved}. Run again to resume.")
        return {"step": done, "stopped": True, "preempted": True, "signal": int(preemption.signum)}
    if stop_at_step is not None and stop_at_step < num_steps:
        writer.close()
        return {"step": stop_at_step, "stopped": True}

    protocols = tuple(config.eval.protocols)
    results = {"step": num_steps}
    try:
        with preemption.immediate():  # the last checkpoint is committed: nothing is left to save
            encoder = method.export_encoder(state)
            if protocols:
                results.update(
                    evaluate.evaluate_encoder(config, method, encoder, protocols, mesh=mesh)
                )
    except Preempted as stop:
        writer.close()
        print(
            f"Stopped by a signal while evaluating step {num_steps}; its checkpoint is saved. "
            "Run again to evaluate it."
        )
        return {"step": num_steps, "stopped": True, "preempted": True, "signal": stop.signum}
    if is_main:
        final = {f"{p}_top1": results[p]["top1"] for p in protocols if "top1" in results[p]}
        writer.write(num_steps, final)
        evaluate.write_results(workdir, results)
        reporting.plot_curves(workdir)
    writer.close()
    return results


NONFINITE_POLICIES = ("stop", "skip")


def check_finite(step: int, metrics: dict[str, Any], *, policy: str, progress=None) -> None:
    """Acts on a non-finite loss or gradient at `step` (whose update the step already skipped).

    "stop": raise, naming the step and the quantity; the last checkpoint is the last good state.
    "skip": report it and go on (the step's update was dropped).
    """
    if not int(parallel.fetch(metrics["nonfinite"])):
        return
    values = parallel.fetch({k: metrics[k] for k in ("loss", "grad_norm")})
    bad = [f"{k} is {float(v)}" for k, v in values.items() if not np.isfinite(v)]
    message = f"{' and '.join(bad)} at step {step}"
    if policy == "stop":
        raise FloatingPointError(
            f"{message}. The run stopped; its last checkpoint holds the last good state. "
            "Set --config.nonfinite_policy=skip to drop such steps instead."
        )
    if progress is not None:
        progress.write(f"warning: {message}; the update was skipped.")


class Preempted(BaseException):
    """SIGTERM / SIGINT during work that has nothing left to save (the final evaluation).

    A BaseException, as KeyboardInterrupt is, so that no `except Exception` on the way swallows it.
    """

    def __init__(self, signum: int):
        super().__init__(signum)
        self.signum = signum


class _PreemptionRequest:
    """Turns SIGTERM / SIGINT into a request to checkpoint and stop after the current step, or, within
    `immediate()`, into `Preempted` at once.

    One process: Python handlers (main thread only), installed on entering the `with` block and
    restored on leaving it. Several processes: they must all stop at the same step, so JAX's
    coordination service, which receives the SIGTERM notice, picks it
    (`multihost_utils.reached_preemption_sync_point`).
    """

    def __init__(self):
        # The signal that asked to stop, None until one did (SIGTERM when the coordination service
        # relayed the notice).
        self.signum: int | None = None
        self._previous = {}
        self._immediate = False
        self._multi = jax.process_count() > 1

    def __enter__(self) -> _PreemptionRequest:
        if not self._multi and threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGTERM, signal.SIGINT):
                self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def __exit__(self, *exc_info) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
        self._previous = {}

    def reached(self, step: int) -> bool:
        if self._multi:
            from jax.experimental import multihost_utils

            if multihost_utils.reached_preemption_sync_point(step):
                self.signum = self.signum or signal.SIGTERM
        return self.signum is not None

    @contextlib.contextmanager
    def immediate(self):
        """Within, a signal raises `Preempted` at once, and so does one received before."""
        try:
            self._immediate = True
            if self.signum is not None:
                raise Preempted(self.signum)
            yield
        finally:
            self._immediate = False

    def _handle(self, signum, frame):
        del frame
        if self.signum is not None and signum == signal.SIGINT:  # a second Ctrl-C means now
            raise KeyboardInterrupt
        self.signum = signum
        if self._immediate:
            raise Preempted(signum)
