"""Timing one case: its jitted training step on synthetic host batches, and optionally the same step fed
by the training loader, around asynchronous checkpoint saves, and under jax.profiler.

Inputs of the stated size are already on the host (uint8 images, int32 tokens); each timed step ships its
batch to the devices (as training does), and the clock stops on the blocked result, after warm-up.
"""

from __future__ import annotations

import os
import platform
import subprocess
import tempfile
import time

import flax
import jax
import ml_collections
import numpy as np
import optax

from ssl_jax import checkpoint, data, optim, parallel, train
from ssl_jax.data.pipeline import Pipeline
from ssl_jax.method_inputs import build_method

from . import flops, profile
from .cases import Case


def timed_windows(step_fn, state, batch_at, *, start: int, steps: int):
    """(state, metrics, seconds per step): the best of three windows of `steps` steps dispatched back
    to back (transfers and compute overlap, as in training), each clocked to its blocked result."""
    windows = []
    for r in range(3):
        t0 = time.perf_counter()
        for i in range(steps):
            state, metrics = step_fn(state, batch_at(start + r * steps + i))
        jax.block_until_ready((state, metrics))
        windows.append((time.perf_counter() - t0) / steps)
    return state, metrics, float(min(windows))


def _real_data_loader(config, data_dir: str, examples: int, keys):
    """The training input (`ssl_jax.data.pipeline.Pipeline`: grain, shuffled, prefetching, as
    `ssl_jax.train` reads it) over the real files."""
    data_cfg = ml_collections.ConfigDict(config.data.to_dict())
    data_cfg.data_dir = data_dir
    source = data.get_source(data_cfg, "train")
    return source, Pipeline(
        source,
        examples,
        seed=0,
        process_index=jax.process_index(),
        process_count=jax.process_count(),
        keys=keys,
    )


def _checkpoint_cost(step_fn, state, batch_at, method, *, start: int, steps: int, every: int):
    """Per-step wall times (each step blocked on) over `steps` steps with an asynchronous Orbax save
    (`ssl_jax.checkpoint.Checkpointer`, as training saves) after every `every`-th: (mean ms of the
    save step and the two after it, mean ms of the others)."""
    near, far = [], []
    with tempfile.TemporaryDirectory() as workdir:
        ckpt = checkpoint.Checkpointer(workdir, max_to_keep=2)
        last_save = None
        try:
            for i in range(steps):
                t0 = time.perf_counter()
                state, metrics = step_fn(state, batch_at(start + i))
                if (i + 1) % every == 0:
                    ckpt.save(i + 1, state, {"step": i + 1}, method.export_encoder(state))
                    last_save = i
                jax.block_until_ready((state, metrics))
                ms = 1e3 * (time.perf_counter() - t0)
                near_save = last_save is not None and i - last_save <= 2
                (near if near_save else far).append(ms)
        finally:
            ckpt.close()
    return state, float(np.mean(near)), float(np.mean(far))


def run_case(
    case: Case,
    *,
    examples: int,
    steps: int,
    warmup: int,
    mesh,
    data_dir: str = "",
    checkpoint_every: int = 0,
    profile_dir: str = "",
    profile_steps: int = 5,
) -> dict:
    """Times `case`. data_dir: also time the step fed by the training loader over the real files
    (cases on Fashion-MNIST); checkpoint_every: also time steps around asynchronous saves;
    profile_dir: also trace `profile_steps` steps into profile_dir/<case> and summarize them."""
    config = case.config_fn(examples)
    method = build_method(config, num_steps=10_000, steps_per_epoch=100)
    tx, schedule = optim.make_optimizer(train.optimizer_config(config, 100, 10_000), 10_000)
    batch_at, example_shape = host_batches(case, config, examples, mesh, method.batch_keys[0])
    state = train.create_train_state(method, tx, jax.random.PRNGKey(0), example_shape)
    state = parallel.replicate(state, mesh)
    step_fn = train.make_train_step(method, tx, schedule, mesh)
    state, metrics, compile_s, step_s = warm_and_time(
        step_fn, state, batch_at, warmup=warmup, steps=steps
    )
    items = examples * case.items_per_example(config)
    extra = {}
    if data_dir and config.data.name == "fashion_mnist":
        keys = method.batch_keys
        source, loader = _real_data_loader(config, data_dir, examples, keys)
        if tuple(source.get(np.zeros(1, np.int64))[keys[0]].shape[1:]) != tuple(example_shape):
            raise SystemExit(
                f"{case.name}: {source.name} examples do not have shape {example_shape}"
            )
        try:

            def real_batch(i):
                del i
                batch = next(loader)
                return parallel.shard_batch({k: batch[k] for k in (*keys, "example_ids")}, mesh)

            for i in range(warmup):  # the pipeline's prefetch buffer fills up
                state, metrics = step_fn(state, real_batch(i))
            jax.block_until_ready((state, metrics))
            state, metrics, real_s = timed_windows(step_fn, state, real_batch, start=0, steps=steps)
            # The loader alone, no step: how fast this host can feed the devices at all. The
            # batches already prefetched are taken first, so the clock sees the producer's rate.
            for i in range(2):
                real_batch(i)
            t0 = time.perf_counter()
            for i in range(3 * steps):
                jax.block_until_ready(real_batch(i))
            loader_s = (time.perf_counter() - t0) / (3 * steps)
        finally:
            loader.close()
        extra["real_data"] = source.name
        extra["real_vs_synthetic"] = step_s / real_s
        extra["real_items_per_s"] = items / real_s
        extra["loader_items_per_s"] = items / loader_s
    if checkpoint_every:
        if checkpoint_every < 4:
            raise SystemExit("--checkpoint-every must be >= 4: 3 steps per save count as near it")
        timed = max(3 * steps, 3 * checkpoint_every)
        state, near_ms, far_ms = _checkpoint_cost(
            step_fn, state, batch_at, method, start=0, steps=timed, every=checkpoint_every
        )
        extra.update(checkpoint_every=checkpoint_every, near_save_ms=near_ms, other_ms=far_ms)
    if profile_dir:
        state, extra["profile"] = profile.trace_steps(
            step_fn,
            state,
            batch_at,
            start=0,
            steps=profile_steps,
            trace_dir=os.path.join(profile_dir, case.name),
        )
    return case_row(
        case,
        config,
        examples=examples,
        step_s=step_s,
        compile_s=compile_s,
        loss=float(metrics["loss"]),
        extra=extra,
    )


def host_batches(case: Case, config, examples: int, mesh, input_key: str):
    """(batch_at(i) -> the i-th step's batch shipped to the devices, the shape of one example): three
    distinct host batches of `case.inputs`, rotated, so no step reuses the device buffers of the
    previous one."""
    rng = np.random.default_rng(0)
    host = [case.inputs(rng, examples, config) for _ in range(3)]

    def batch_at(i):
        ids = np.arange(i * examples, (i + 1) * examples, dtype=np.int32)
        return parallel.shard_batch({**host[i % 3], "example_ids": ids}, mesh)

    return batch_at, host[0][input_key].shape[1:]


def warm_and_time(step_fn, state, batch_at, *, warmup: int, steps: int):
    """(state, metrics, compile_s, step_s): the first call (compilation included) clocked alone, then
    `warmup` - 1 more steps, then `timed_windows` from step `warmup` on."""
    t0 = time.perf_counter()
    state, metrics = step_fn(state, batch_at(0))
    jax.block_until_ready(metrics)
    compile_s = time.perf_counter() - t0
    for i in range(1, warmup):
        state, metrics = step_fn(state, batch_at(i))
    jax.block_until_ready((state, metrics))
    state, metrics, step_s = timed_windows(step_fn, state, batch_at, start=warmup, steps=steps)
    return state, metrics, compile_s, step_s


def case_row(
    case: Case,
    config,
    *,
    examples: int,
    step_s: float,
    compile_s: float,
    loss: float,
    extra: dict | None = None,
) -> dict:
    """A row of the throughput table: the rate in the case's unit, and TFLOP/s and MFU where the
    case's FLOPs are counted and the device's peak is known."""
    items = examples * case.items_per_example(config)
    row = {
        "case": case.name,
        "model": case.model,
        "input": f"{config.data.seq_len} tokens" if case.unit == "tokens" else case.input,
        "unit": case.unit,
        "batch": items,
        "examples": examples,
        "items_per_s": items / step_s,
        "step_ms": 1e3 * step_s,
        "compile_s": compile_s,
        "loss": loss,
        "tflops": None,
        "mfu": None,
        "note": case.note,
        **(extra or {}),
    }
    try:
        per_item = None if case.flops_per_item is None else case.flops_per_item(config)
    except NotImplementedError:  # e.g. --set model.encoder=small_cnn: no formula, MFU n/a
        per_item = None
    if per_item is not None:
        row["flops_per_item"] = per_item
        row["tflops"] = row["flops_per_item"] * items / step_s / 1e12
        peak = flops.peak_tflops(jax.devices()[0].device_kind)
        if peak is not None:
            row["mfu"] = row["tflops"] / (peak * jax.device_count())
    return row


def environment() -> dict:
    """The device, driver (NVIDIA GPUs) and library versions a results table is stamped with."""
    dev = jax.devices()[0]
    env = {
        "device": f"{jax.device_count()} x {dev.device_kind} ({dev.platform})",
        "jax": jax.__version__,
        "python": platform.python_version(),
    }
    env["flax"], env["optax"] = flax.__version__, optax.__version__
    try:
        out = subprocess.run(
            ["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"],
            capture_output=True,
            text=True,
            timeout=10,
        )
        if out.returncode == 0:
            env["driver"] = out.stdout.strip()
    except (FileNotFoundError, subprocess.TimeoutExpired):
        pass
    return env
