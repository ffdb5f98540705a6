"""Checks every method must pass through the generic engine, shared by the per-method test files.

- `step_results(config, n_devices)`: two train steps on the first n devices (same data, same seed);
  `assert_same_on_one_and_eight(config)` compares loss, gradient norm, parameters, statistics and method
  state between 1 and 8 devices.
- `run_smoke(config_spec, workdir, *overrides)`: `ssl-jax pretrain` end to end through the CLI.
- `idx_bytes(array, code)`: an IDX file (Fashion-MNIST's format) written by hand.
- `traced_equations(jaxpr)`: every equation of a traced program, those of its sub-jaxprs included.
"""

from __future__ import annotations

import os
import struct

import jax
import ml_collections
import numpy as np

from ssl_jax import cli, config_util, data, optim, parallel, train
from ssl_jax.data.pipeline import Pipeline
from ssl_jax.method_inputs import build_method

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CONFIGS = os.path.join(ROOT, "configs")


def idx_bytes(array: np.ndarray, code: int) -> bytes:
    """An IDX file written by hand from the format's definition."""
    header = bytes([0, 0, code, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    return header + array.astype(array.dtype.newbyteorder(">")).tobytes()


def traced_equations(jaxpr):
    """Every equation of `jaxpr` and, depth first, of the jaxprs its equations carry (jit, remat,
    custom derivatives, shard_map, control flow)."""
    for eqn in jaxpr.eqns:
        yield eqn
        for value in eqn.params.values():
            for sub in value if isinstance(value, tuple | list) else (value,):
                sub = getattr(sub, "jaxpr", sub)  # a ClosedJaxpr's Jaxpr
                if hasattr(sub, "eqns"):
                    yield from traced_equations(sub)


def load(spec: str, *overrides: str) -> ml_collections.ConfigDict:
    """configs/<spec> (e.g. "byol_fashion_mnist.py:smoke") with overrides ("a.b=v")."""
    config = config_util.load_config(os.path.join(CONFIGS, spec))
    config_util.apply_overrides(config, list(overrides))
    return config


def batch_for(config, mesh, step: int):
    keys = train.step_keys(build_method(config))
    source = data.get_source(config.data, "train")
    batch = Pipeline(source, config.batch_size, seed=0, keys=keys[:-1]).batch_at(step)
    return parallel.shard_batch({k: batch[k] for k in keys}, mesh)


def build(config, mesh, *, method=None, run_steps: int = 100):
    """(replicated initial state, jitted step) for a run of `run_steps` steps on `mesh`, shaped for
    the first example of config.data (28x28x1 for Fashion-MNIST)."""
    method = method or build_method(config, num_steps=run_steps, steps_per_epoch=10)
    tx, schedule = optim.make_optimizer(train.optimizer_config(config, 10, run_steps), run_steps)
    shape = data.example_shape(data.get_source(config.data, "train"), method.batch_keys[0])
    state = train.create_train_state(method, tx, jax.random.PRNGKey(0), shape)
    return parallel.replicate(state, mesh), train.make_train_step(method, tx, schedule, mesh)


def step_results(config, n_devices: int, num_train_steps: int = 2, run_steps: int = 100):
    mesh = parallel.make_mesh(jax.devices()[:n_devices])
    state, step_fn = build(config, mesh, run_steps=run_steps)
    for i in range(num_train_steps):
        state, metrics = step_fn(state, batch_for(config, mesh, i))
    return jax.device_get((state, metrics))


def assert_same_on_one_and_eight(config, rtol: float = 1e-4, atol: float = 1e-5) -> None:
    """Loss, gradient norm, parameters, BN statistics and method state (targets, queues, centres) after
    two steps are the same on 1 and 8 devices: the global batch, not the device count, defines the step."""
    (s1, m1), (s8, m8) = step_results(config, 1), step_results(config, 8)
    np.testing.assert_allclose(m1["loss"], m8["loss"], rtol=rtol, atol=atol)
    np.testing.assert_allclose(m1["grad_norm"], m8["grad_norm"], rtol=10 * rtol, atol=atol)
    close = lambda a, b: np.testing.assert_allclose(a, b, rtol=rtol, atol=atol)  # noqa: E731
    jax.tree.map(close, s1.params, s8.params)
    jax.tree.map(close, s1.batch_stats, s8.batch_stats)
    jax.tree.map(close, s1.extra, s8.extra)


def run_smoke(
    spec: str, workdir: str, *overrides: str, data_name: str | None = "embedded_fashion_mnist"
) -> int:
    """`ssl-jax pretrain --config configs/<spec> --workdir DIR --config.data.name=<data_name>`
    (data_name None: the config's own data, e.g. a text corpus)."""
    argv = ["pretrain", "--config", os.path.join(CONFIGS, spec), "--workdir", workdir]
    if data_name is not None:
        argv.append(f"--config.data.name={data_name}")
    return cli.main([*argv, *overrides])
