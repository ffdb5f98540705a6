"""Orbax checkpoints: the whole train state, the data position and the exported encoder, saved
asynchronously by one `CheckpointManager`; the encoder item is what fine-tuning and evaluation restore.

Nothing here unpickles: Orbax stores arrays with TensorStore and small metadata as JSON.
"""

from __future__ import annotations

import os
from typing import Any

import jax
import numpy as np
import orbax.checkpoint as ocp

STATE, DATA, ENCODER = "state", "data", "encoder"


def checkpoint_dir(workdir: str) -> str:
    return os.path.join(os.path.abspath(workdir), "checkpoints")


class Checkpointer:
    """Saves and restores {state, data position, encoder} at integer steps under WORKDIR/checkpoints."""

    def __init__(self, workdir: str, *, max_to_keep: int = 2, async_save: bool = True):
        options = ocp.CheckpointManagerOptions(
            max_to_keep=max_to_keep,
            create=True,
            enable_async_checkpointing=async_save,
        )
        self._manager = ocp.CheckpointManager(
            checkpoint_dir(workdir), options=options, item_names=(STATE, DATA, ENCODER)
        )

    def latest_step(self) -> int | None:
        return self._manager.latest_step()

    def save(self, step: int, state: Any, data_position: dict, encoder: Any) -> None:
        """Starts an asynchronous save; returns once the arrays are copied off the devices."""
        self._manager.save(
            step,
            args=ocp.args.Composite(
                **{
                    STATE: ocp.args.StandardSave(state),
                    DATA: ocp.args.JsonSave(data_position),
                    ENCODER: ocp.args.StandardSave(encoder),
                }
            ),
        )

    def restore(self, step: int, target_state: Any) -> tuple[Any, dict]:
        """Restores the state into the structure, shapes and shardings of `target_state`."""
        abstract = jax.tree.map(ocp.utils.to_shape_dtype_struct, target_state)
        restored = self._manager.restore(
            step,
            args=ocp.args.Composite(
                **{STATE: ocp.args.StandardRestore(abstract), DATA: ocp.args.JsonRestore()}
            ),
        )
        return restored[STATE], dict(restored[DATA])

    def wait(self) -> None:
        self._manager.wait_until_finished()

    def close(self) -> None:
        self._manager.wait_until_finished()
        self._manager.close()


def load_encoder(workdir: str, step: int | None = None) -> tuple[dict, int]:
    """The pre-trained encoder variables ({"params", "batch_stats"}) as numpy arrays, and their step."""
    directory = checkpoint_dir(workdir)
    if not os.path.isdir(directory):
        raise FileNotFoundError(f"No checkpoints in {directory}: run `ssl-jax pretrain` first.")
    manager = ocp.CheckpointManager(directory, item_names=(STATE, DATA, ENCODER))
    try:
        step = manager.latest_step() if step is None else step
        if step is None:
            raise FileNotFoundError(f"No finished checkpoint in {directory}.")
        restored = manager.restore(
            step, args=ocp.args.Composite(**{ENCODER: ocp.args.StandardRestore()})
        )
        encoder = jax.tree.map(np.asarray, restored[ENCODER])
    finally:
        manager.close()
    return encoder, step
