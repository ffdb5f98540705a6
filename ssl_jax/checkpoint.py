"""Orbax checkpoints: the whole train state, the data position and the exported encoder, saved
asynchronously by one `CheckpointManager`; the encoder item is what fine-tuning and evaluation restore.

Faults, and what happens (tests/FAULTS.md lists each with its test):
- A process killed during a save leaves `<step>.orbax-checkpoint-tmp*`: Orbax renames a step directory
  to its final name only once every file is written, and `latest_step` sees final names only.
- A checkpoint that does not fit the model (another architecture, or a changed config) is refused before
  any array is read: `check_tree_matches` names each differing parameter path and both shapes.
- A committed checkpoint that cannot be read (truncated or missing files) raises
  `CorruptCheckpointError` naming the step directory; nothing is deleted or skipped silently, the
  message says which earlier step a resume would use once the broken one is moved aside, and ends
  with the underlying error on one line. The reads still in flight are let finish first, so that
  message is all that reaches stderr.
- A failed write (the disk full) raises `CheckpointWriteError` naming the last good step, which is
  left intact; running again resumes from it.

Nothing here unpickles: Orbax stores arrays with TensorStore and small metadata as JSON.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import os
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import numpy as np
import orbax.checkpoint as ocp

STATE, DATA, ENCODER = "state", "data", "encoder"


class CheckpointError(ValueError):
    """A checkpoint cannot be read or written as asked; the message says what to do."""


class CheckpointMismatchError(CheckpointError):
    """The checkpoint's parameter tree is not the model's (another architecture or config)."""


class CorruptCheckpointError(CheckpointError):
    """A committed checkpoint cannot be read back (files truncated, missing or not Orbax's)."""


class CheckpointWriteError(CheckpointError, OSError):
    """A checkpoint could not be written; `errno` is the OS error (ENOSPC: the disk is full)."""


def checkpoint_dir(workdir: str) -> str:
    return os.path.join(os.path.abspath(workdir), "checkpoints")


# --- Comparing trees: what the code builds against what a checkpoint holds. ---


def _key_name(key: Any) -> str:
    for attr in ("key", "name", "idx"):  # DictKey / FlattenedIndexKey, GetAttrKey, SequenceKey
        if hasattr(key, attr):
            return str(getattr(key, attr))
    return str(key)


def tree_shapes(tree: Any) -> dict[str, tuple[int, ...]]:
    """{"params/encoder/Conv_0/kernel": shape, ...} for every leaf that has a shape.

    Leaves may be arrays, `jax.ShapeDtypeStruct`s or Orbax metadata; dict keys, attribute names and
    sequence indices all become path components, so a dataclass state and its saved dict agree.
    """
    leaves = jax.tree_util.tree_flatten_with_path(tree)[0]
    return {
        "/".join(_key_name(k) for k in path): tuple(
            int(d) for d in (leaf.shape if hasattr(leaf, "shape") else np.shape(leaf))
        )
        for path, leaf in leaves
    }


def tree_differences(expected: Any, found: Any, *, limit: int = 12) -> list[str]:
    """One line per parameter path whose presence or shape differs between two trees (at most
    `limit` lines, then a count of the rest); empty when they match."""
    want, have = tree_shapes(expected), tree_shapes(found)
    lines = [
        f"{path}: checkpoint {have[path]} vs model {want[path]}"
        for path in sorted(want.keys() & have.keys())
        if want[path] != have[path]
    ]
    lines += [
        f"{path}: in the model {want[path]}, not in the checkpoint"
        for path in sorted(want.keys() - have.keys())
    ]
    lines += [
        f"{path}: in the checkpoint {have[path]}, not in the model"
        for path in sorted(have.keys() - want.keys())
    ]
    if len(lines) > limit:
        lines = [*lines[:limit], f"... and {len(lines) - limit} more"]
    return lines


def check_tree_matches(expected: Any, found: Any, *, what: str = "the checkpoint") -> None:
    """Raises `CheckpointMismatchError` unless `found` has exactly the leaf paths and shapes of
    `expected`, naming each differing path with both shapes.

    expected: the tree the code builds for the model it is about to run (arrays or
      `jax.ShapeDtypeStruct`s, e.g. `jax.eval_shape` of an init);
    found: the tree read from a checkpoint, or its Orbax metadata (only shapes are compared);
    what: names the checkpoint in the message, e.g. "the encoder in runs/x/checkpoints/8".

    Call it before feeding restored variables to a model: Flax would otherwise fail deep inside
    `apply` with one shape, or, for a smaller checkpoint, restore a part and train on.
    """
    lines = tree_differences(expected, found)
    if lines:
        raise CheckpointMismatchError(
            f"{what} does not fit this model; it was written for another architecture or config:\n  "
            + "\n  ".join(lines)
            + "\nRestore it with the config it was trained with (WORKDIR/config.json), or start "
            "afresh in another --workdir (or with --overwrite)."
        )


# --- Writing and reading checkpoints. ---


def _is_disk_full(error: BaseException) -> bool:
    seen = set()
    while error is not None and id(error) not in seen:
        seen.add(id(error))
        if isinstance(error, OSError) and error.errno in (errno.ENOSPC, errno.EDQUOT):
            return True
        if "No space left on device" in str(error) or "Disk quota exceeded" in str(error):
            return True  # TensorStore reports OS errors as ValueError text
        error = error.__cause__ or error.__context__
    return False


def _handlers() -> dict[str, ocp.CheckpointHandler]:
    # Handlers named up front, so metadata can be read before a restore says what each item is.
    return {
        STATE: ocp.StandardCheckpointHandler(),
        DATA: ocp.JsonCheckpointHandler(),
        ENCODER: ocp.StandardCheckpointHandler(),
    }


class Checkpointer:
    """Saves and restores {state, data position, encoder} at integer steps under WORKDIR/checkpoints."""

    def __init__(self, workdir: str, *, max_to_keep: int = 2, async_save: bool = True):
        self.directory = checkpoint_dir(workdir)
        options = ocp.CheckpointManagerOptions(
            max_to_keep=max_to_keep,
            create=True,
            enable_async_checkpointing=async_save,
        )
        self._manager = ocp.CheckpointManager(
            self.directory, options=options, item_handlers=_handlers()
        )
        self._saving: int | None = None  # the step of a save not yet known to be committed
        self._failed = False

    def latest_step(self) -> int | None:
        """The newest committed step; a directory still named `<step>.orbax-checkpoint-tmp*` (a save
        that never finished) is not one."""
        return self._manager.latest_step()

    def all_steps(self) -> list[int]:
        return sorted(self._manager.all_steps())

    def step_dir(self, step: int) -> str:
        return os.path.join(self.directory, str(step))

    def save(self, step: int, state: Any, data_position: dict, encoder: Any) -> None:
        """Starts an asynchronous save; returns once the arrays are copied off the devices.

        Raises CheckpointWriteError if this save, or the previous one still being written, fails.
        """
        self._guard(
            lambda: self._manager.save(
                step,
                args=ocp.args.Composite(
                    **{
                        STATE: ocp.args.StandardSave(state),
                        DATA: ocp.args.JsonSave(data_position),
                        ENCODER: ocp.args.StandardSave(encoder),
                    }
                ),
            ),
            step,
        )
        self._saving = step

    def _guard(self, write: Callable[[], Any], step: int | None) -> None:
        try:
            write()
        except Exception as e:  # a failed write, here or in the background thread of the last save
            self._failed = True
            failed = self._saving if self._saving is not None else step
            good = self.latest_step()
            if good == failed:  # committed after all: the failure was a later one's
                failed = step
            raise _write_error(e, failed, good, self.directory) from e

    def restore(self, step: int, target_state: Any) -> tuple[Any, dict]:
        """Restores the state into the structure, shapes and shardings of `target_state`.

        Raises CheckpointMismatchError if the saved state has other parameter paths or shapes (read
        from the checkpoint's metadata, before any array), CorruptCheckpointError if it cannot be read.
        """
        path = self.step_dir(step)
        with _reading(path, self.all_steps()):
            metadata = self._manager.item_metadata(step)[STATE]
        if metadata is None:
            raise CorruptCheckpointError(
                _corrupt_message(path, self.all_steps(), "its state has no metadata")
            )
        saved = getattr(metadata, "tree", metadata)
        params = getattr(target_state, "params", None)
        if params is not None and isinstance(saved, dict) and "params" in saved:
            # The parameters first: the optimizer moments repeat their paths and would crowd them out.
            check_tree_matches(
                {"params": params}, {"params": saved["params"]}, what=f"The checkpoint {path}"
            )
        check_tree_matches(target_state, saved, what=f"The checkpoint {path}")
        abstract = jax.tree.map(ocp.utils.to_shape_dtype_struct, target_state)
        with _reading(path, self.all_steps()):
            restored = self._manager.restore(
                step,
                args=ocp.args.Composite(
                    **{STATE: ocp.args.StandardRestore(abstract), DATA: ocp.args.JsonRestore()}
                ),
            )
        return restored[STATE], dict(restored[DATA])

    def wait(self) -> None:
        self._guard(self._manager.wait_until_finished, None)
        self._saving = None

    def close(self) -> None:
        """Waits for the last save (raising CheckpointWriteError if it failed) and closes."""
        try:
            if not self._failed:  # after a failure the manager re-raises it; it was reported
                self.wait()
        finally:
            try:
                self._manager.close()
            except Exception:  # the pending failure again, already raised above
                if not self._failed:
                    raise


def _write_error(
    error: Exception, step: int | None, good: int | None, directory: str
) -> CheckpointWriteError:
    full = _is_disk_full(error)
    cause = "the disk is full" if full else f"{type(error).__name__}: {error}"
    last = (
        f"The last good checkpoint is step {good} ({os.path.join(directory, str(good))}); it is "
        "intact, and running the same command again resumes from it"
        if good is not None
        else f"No checkpoint was committed in {directory}; running again starts from step 0"
    )
    free = "Free some space (or point --workdir at a larger disk), then run again. " if full else ""
    out = CheckpointWriteError(
        f"Could not write the checkpoint of step {step} in {directory}: {cause}. {free}{last}. "
        "An unfinished save is only ever a *.orbax-checkpoint-tmp* directory, never resumed from."
    )
    out.errno = errno.ENOSPC if full else getattr(error, "errno", None)
    return out


def _corrupt_message(path: str, steps: list[int], problem: str) -> str:
    step = int(os.path.basename(path))
    earlier = [s for s in steps if s < step]
    where = os.path.dirname(path)
    aside = os.path.join(os.path.dirname(where), f"corrupt-checkpoint-{step}")
    then = (
        f"uses step {earlier[-1]}, the previous checkpoint"
        if earlier
        else "starts from step 0 (there is no earlier checkpoint)"
    )
    return (
        f"The checkpoint {path} cannot be read. Nothing was changed. To go on, move it out of "
        f"{where} (e.g. `mv {path} {aside}`): running again then {then}. Or pass --overwrite to "
        f"start afresh.\n  cause: {problem}"
    )


# How long the cause of an unreadable checkpoint may run in its message.
_CAUSE_CHARS = 400


def _root_cause(error: BaseException, path: str) -> str:
    """The innermost error behind `error`, on one short line, with the step directory `path` left
    out of the file names it gives (the message names it once).

    Orbax wraps TensorStore's error in one that names only an array index and embeds the repr of a
    TensorStore spec (60 lines); TensorStore's own error says which array and which file, e.g.
    `ValueError: OUT_OF_RANGE: Error reading "params.encoder.conv0.kernel/0.0.0.0" in OCDBT database
    at local file "state/": Requested byte range [0, 1152) is not valid for value of size 0`, then
    appends its spec after " [tensorstore_spec=".
    """
    seen = set()
    while error.__cause__ is not None and id(error.__cause__) not in seen:
        seen.add(id(error))
        error = error.__cause__
    text = str(error).split(" [tensorstore_spec=")[0].strip().replace(path + os.sep, "")
    first = text.splitlines()[0] if text else ""
    if len(first) > _CAUSE_CHARS:
        first = first[: _CAUSE_CHARS - 3] + "..."
    return f"{type(error).__name__}: {first}" if first else type(error).__name__


class _DrainingLoop(asyncio.SelectorEventLoop):
    """An event loop that, when closed, first lets the tasks still running on it finish.

    Orbax runs a restore's reads, one task per array, on a fresh loop that it closes as soon as the
    restore returns or raises (`asyncio_utils.run_sync`, without `asyncio.run`'s clean-up). When one
    read fails, the others are abandoned mid-flight, and each later prints a traceback of about 60
    lines to stderr: "Exception ignored in: <coroutine object _read_array_index_and_device_put>"
    (its `except BaseException` turns the GeneratorExit of its finalization into an error), "Task
    exception was never retrieved", or "Event loop is closed" from a TensorStore thread completing
    a read. Letting them finish first (a failed restore then takes at most as long as a good one)
    leaves only the first error, which the restore raises.
    """

    def close(self) -> None:
        if not self.is_running() and not self.is_closed():
            pending = asyncio.all_tasks(self)
            while pending:
                self.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
                pending = asyncio.all_tasks(self)
            self.run_until_complete(asyncio.sleep(0))  # their done callbacks (gather's) run too
        super().close()


class _DrainingPolicy(asyncio.DefaultEventLoopPolicy):
    def new_event_loop(self) -> asyncio.AbstractEventLoop:
        return _DrainingLoop()


@contextlib.contextmanager
def _reading(path: str, steps: list[int]):
    """Turns any failure to read a committed step into a CorruptCheckpointError naming it, whose
    message ends with the underlying cause on one line; the reads a failure abandons are finished
    first (`_DrainingLoop`), so that message is all a user sees."""
    previous = asyncio.get_event_loop_policy()
    asyncio.set_event_loop_policy(_DrainingPolicy())
    try:
        yield
    except CheckpointError:
        raise
    except Exception as e:  # TensorStore's ValueError, a JSONDecodeError, a missing file or item
        raise CorruptCheckpointError(_corrupt_message(path, steps, _root_cause(e, path))) from e
    finally:
        asyncio.set_event_loop_policy(previous)


class _SavedEncoder(NamedTuple):
    """One checkpoint's encoder, opened: its manager, step, path, the steps beside it (for error
    messages) and the saved tree's metadata (shapes and dtypes, no array)."""

    manager: ocp.CheckpointManager
    step: int
    path: str
    steps: list[int]
    tree: Any


@contextlib.contextmanager
def _encoder_step(workdir: str, step: int | None):
    """The `_SavedEncoder` of `step` (default: the newest)."""
    directory = checkpoint_dir(workdir)
    if not os.path.isdir(directory):
        raise FileNotFoundError(f"No checkpoints in {directory}: run `ssl-jax pretrain` first.")
    manager = ocp.CheckpointManager(directory, item_handlers=_handlers())
    try:
        steps = sorted(manager.all_steps())
        step = manager.latest_step() if step is None else step
        if step is None:
            raise FileNotFoundError(f"No finished checkpoint in {directory}.")
        if step not in steps:
            raise FileNotFoundError(f"No checkpoint of step {step} in {directory}; it has {steps}.")
        path = os.path.join(directory, str(step))
        with _reading(path, steps):
            metadata = manager.item_metadata(step)[ENCODER]
        yield _SavedEncoder(manager, step, path, steps, getattr(metadata, "tree", metadata))
    finally:
        manager.close()


def _shapes(tree: Any, sharding: Any = None) -> Any:
    return jax.tree.map(
        lambda leaf: jax.ShapeDtypeStruct(tuple(leaf.shape), leaf.dtype, sharding=sharding), tree
    )


def encoder_shapes(workdir: str, step: int | None = None) -> Any:
    """The saved encoder's tree as `jax.ShapeDtypeStruct`s, read from the metadata (no array)."""
    with _encoder_step(workdir, step) as saved:
        return _shapes(saved.tree)


def load_encoder(
    workdir: str, step: int | None = None, *, expected: Any = None
) -> tuple[dict, int]:
    """The pre-trained encoder variables ({"params", "batch_stats"}) as numpy arrays, and their step.

    expected: if given (e.g. `Method.exported_shapes`, or `jax.eval_shape` of the encoder's init),
      the saved encoder must have its parameter paths and shapes (CheckpointMismatchError otherwise,
      before any array is read).
    Whatever mesh wrote the checkpoint, the arrays are read whole onto this process's first device:
    a run saved on 8 devices is evaluated or exported on 1.
    """
    with _encoder_step(workdir, step) as saved:
        if expected is not None:
            check_tree_matches(expected, saved.tree, what=f"The encoder in {saved.path}")
        device = jax.sharding.SingleDeviceSharding(jax.local_devices()[0])
        restore = ocp.args.StandardRestore(_shapes(saved.tree, device))
        with _reading(saved.path, saved.steps):
            restored = saved.manager.restore(
                saved.step, args=ocp.args.Composite(**{ENCODER: restore})
            )
            encoder = jax.tree.map(np.asarray, restored[ENCODER])
    return encoder, saved.step
