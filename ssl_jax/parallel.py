"""The device mesh, shardings and collective helpers: the only module that knows the data axis name.

Data parallelism is one jitted program over a `Mesh` with a single `"data"` axis spanning every device of
every process; per-device code runs under `jax.shard_map` with that axis.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

DATA_AXIS = "data"


def make_mesh(devices: list[jax.Device] | None = None) -> Mesh:
    """A 1-D mesh over `devices` (default: all devices of all processes) with the data axis.

    Axis type Auto, so sharding propagation works outside shard_map as it always has.
    """
    devices = jax.devices() if devices is None else devices
    try:
        from jax.sharding import AxisType

        return Mesh(np.asarray(devices), (DATA_AXIS,), axis_types=(AxisType.Auto,))
    except (ImportError, TypeError):  # older jax without axis types: Auto is the only behaviour
        return Mesh(np.asarray(devices), (DATA_AXIS,))


def replicated(mesh: Mesh) -> NamedSharding:
    return NamedSharding(mesh, P())


def data_sharded(mesh: Mesh) -> NamedSharding:
    """Leading (batch) dimension split over the data axis."""
    return NamedSharding(mesh, P(DATA_AXIS))


def jit_train_step(step, mesh: Mesh):
    """`step(state, batch) -> (state, metrics)` jitted for data parallelism: the state replicated and
    donated, the batch split over the data axis, state and metrics replicated."""
    return jax.jit(
        step,
        in_shardings=(replicated(mesh), data_sharded(mesh)),
        out_shardings=(replicated(mesh), replicated(mesh)),
        donate_argnums=0,
    )


def num_shards(mesh: Mesh) -> int:
    return mesh.shape[DATA_AXIS]


def check_batch_size(global_batch: int, mesh: Mesh) -> int:
    """Returns the per-device batch; raises before anything compiles if it does not divide evenly."""
    n = num_shards(mesh)
    if global_batch <= 0 or global_batch % n:
        raise ValueError(
            f"The global batch size {global_batch} must be a positive multiple of the number of "
            f"devices ({n}); try --config.batch_size={max(n, (global_batch // n) * n or n)}."
        )
    return global_batch // n


def shard_batch(batch: Any, mesh: Mesh) -> Any:
    """Host numpy arrays (this process's rows of the global batch) -> global arrays split on the data axis."""
    sharding = data_sharded(mesh)

    def put(x):
        x = np.asarray(x)
        if jax.process_count() == 1:
            return jax.device_put(x, sharding)
        return jax.make_array_from_process_local_data(sharding, x)

    return jax.tree.map(put, batch)


def replicate(tree: Any, mesh: Mesh) -> Any:
    return jax.device_put(tree, replicated(mesh))


def per_device(fn: Callable, mesh: Mesh, in_specs: Any, out_specs: Any) -> Callable:
    """`jax.shard_map` over the data axis (the one place the per-device programming model is entered)."""
    return jax.shard_map(fn, mesh=mesh, in_specs=in_specs, out_specs=out_specs)


def axis_index(axis_name: str | None) -> jax.Array:
    return jnp.int32(0) if axis_name is None else jax.lax.axis_index(axis_name)


def all_gather(x: jax.Array, axis_name: str | None) -> jax.Array:
    """Concatenate the per-device rows of `x` along axis 0 (identity without an axis)."""
    return x if axis_name is None else jax.lax.all_gather(x, axis_name, axis=0, tiled=True)


def all_gather_replicated(x: jax.Array, axis_name: str | None) -> jax.Array:
    """Like `all_gather`, but typed as replicated, so shard_map can return it with `out_specs=P()`.

    `lax.all_gather`'s result is typed as varying over the axis; a psum of zero-padded blocks is exact
    (each entry adds only zeros) and replicated. It moves devices x more bytes than a gather: use it for
    small arrays (gathered keys, statistics), not activations.
    """
    if axis_name is None:
        return x
    n = x.shape[0]
    padded = jnp.zeros((jax.lax.axis_size(axis_name) * n, *x.shape[1:]), x.dtype)
    padded = jax.lax.dynamic_update_slice_in_dim(padded, x, jax.lax.axis_index(axis_name) * n, 0)
    return jax.lax.psum(padded, axis_name)


def pmean(x: Any, axis_name: str | None) -> Any:
    return x if axis_name is None else jax.lax.pmean(x, axis_name)


def psum(x: Any, axis_name: str | None) -> Any:
    return x if axis_name is None else jax.lax.psum(x, axis_name)


def initialize_distributed(
    coordinator_address: str | None = None,
    num_processes: int | None = None,
    process_id: int | None = None,
    *,
    auto: bool = False,
) -> bool:
    """Joins this process to a multi-process JAX runtime; returns whether it did.

    With an explicit coordinator ("host:port", plus num_processes and process_id) the processes meet
    there; with `auto=True` JAX detects the cluster from the environment (Slurm, Open MPI, TPU pods, ...).
    Must run before anything touches the devices. CPU processes exchange collectives through gloo.
    """
    if coordinator_address is None and not auto:
        return False
    try:
        jax.config.update("jax_cpu_collectives_implementation", "gloo")
    except (AttributeError, ValueError):  # an older or newer jax without this option
        pass
    if coordinator_address is None:
        jax.distributed.initialize()
    else:
        jax.distributed.initialize(
            coordinator_address=coordinator_address,
            num_processes=num_processes,
            process_id=process_id,
        )
    return True


def fetch(tree: Any) -> Any:
    """Replicated device values -> numpy on this host, also when the array spans other processes."""

    def one(x):
        if isinstance(x, jax.Array) and not x.is_fully_addressable:
            return np.asarray(x.addressable_data(0))
        return np.asarray(x)

    return jax.tree.map(one, tree)


def gather_processes(rows: np.ndarray) -> np.ndarray:
    """Concatenates every process's rows (any number per process) in process order, on every process."""
    if jax.process_count() == 1:
        return rows
    from jax.experimental import multihost_utils

    counts = np.asarray(multihost_utils.process_allgather(np.array([rows.shape[0]]))).reshape(-1)
    padded = np.zeros((int(counts.max()), *rows.shape[1:]), rows.dtype)
    padded[: rows.shape[0]] = rows
    everything = np.asarray(multihost_utils.process_allgather(padded))  # [processes, max, ...]
    return np.concatenate([everything[p, : counts[p]] for p in range(len(counts))])
