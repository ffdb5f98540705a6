"""Host-side batching without grain: padded eval batches of in-memory sources, and the threaded
training loader that fine-tuning still reads through.

Training input is `ssl_jax.data.pipeline.Pipeline` (grain: worker processes, a checkpointable
position, host crops of photographs). What stays here, and why:

- `eval_batches`: every example of a fixed-size source once, in order, padded to whole global
  batches with a `mask`, split over processes. Each batch is one `source.get` of in-memory arrays
  or tokens (a fancy index), so grain's worker processes would only add their start-up; the photo
  sources' eval batches, which decode JPEGs, are grain's (`pipeline.eval_batches`).
- `BatchLoader`: the same law as Pipeline's (the batch of global step s is a pure function of
  (seed, s): epoch e = s // steps_per_epoch is the permutation
  `np.random.default_rng([seed, e]).permutation(len(source))`, each epoch drops its remainder,
  process p holds rows [p * local, (p + 1) * local)), on one prefetch thread. It remains only for
  `ssl_jax.transfer.finetune` and `ssl_jax.transfer.text` until they move to Pipeline, which
  gives the same batches (tests/test_pipeline.py); nothing else uses it.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterator, Sequence

import numpy as np

from ssl_jax.data.common import local_batch_size
from ssl_jax.data.registry import Source

_POLL_S = 0.05  # how often a blocked producer checks whether it should stop


def _select(batch: dict[str, np.ndarray], keys: Sequence[str] | None, source: Source) -> dict:
    if keys is None:
        return batch
    missing = [k for k in keys if k not in batch]
    if missing:
        raise ValueError(
            f"source {source.name!r} provides {sorted(batch)}, not {missing}; pass keys= to choose "
            "(e.g. keys=('image',) for unlabelled data)"
        )
    return {k: batch[k] for k in keys}


class _Plan:
    """Which source rows make up this process's part of each global batch (no threads, no state
    beyond a cache of the current epoch's permutation)."""

    def __init__(self, source, global_batch_size, seed, shuffle, process_index, local, keys):
        self.source = source
        self.global_batch_size = global_batch_size
        self.seed = seed
        self.shuffle = shuffle
        self.process_index = process_index
        self.local = local
        self.keys = keys
        self.steps_per_epoch = len(source) // global_batch_size
        self._perm: tuple[int, np.ndarray] | None = None

    def permutation(self, epoch: int) -> np.ndarray:
        cached = self._perm  # one read: the tuple is replaced whole, so threads never see a mix
        if cached is None or cached[0] != epoch:
            n = len(self.source)
            rng = np.random.default_rng([self.seed, epoch])
            cached = (epoch, rng.permutation(n) if self.shuffle else np.arange(n))
            self._perm = cached
        return cached[1]

    def batch(self, step: int) -> dict[str, np.ndarray]:
        epoch, k = divmod(step, self.steps_per_epoch)
        first = k * self.global_batch_size + self.process_index * self.local
        indices = self.permutation(epoch)[first : first + self.local]
        out = _select(self.source.get(indices), self.keys, self.source)
        rows = (
            step * self.global_batch_size + self.process_index * self.local + np.arange(self.local)
        )
        # Global row ids key per-example augmentation; past 2**31 rows they wrap, harmless for a key.
        out["example_ids"] = rows.astype(np.int32)
        return out


class _Failure:
    def __init__(self, error: BaseException):
        self.error = error


def _put(item: object, out: queue.Queue, stop: threading.Event) -> None:
    while not stop.is_set():
        try:
            out.put(item, timeout=_POLL_S)
            return
        except queue.Full:
            pass


def _produce(plan: _Plan, step: int, out: queue.Queue, stop: threading.Event) -> None:
    # A free function, not a method, so the thread holds no reference to the loader and a
    # forgotten loader is still garbage-collected (its __del__ then stops this thread).
    try:
        while not stop.is_set():
            _put(plan.batch(step), out, stop)
            step += 1
    except BaseException as e:  # handed to the consumer, which re-raises it in the training loop
        _put(_Failure(e), out, stop)


class BatchLoader:
    """An endless iterator over this process's rows of each global batch, as dicts of numpy arrays.

    Each batch holds the source's `keys` ([global_batch_size // process_count, ...]) plus
    `example_ids`: int32 global row ids `step * global_batch_size + row`. `loader.step` is the
    global step of the next batch: store it in checkpoints and pass it back as `start_step`.
    """

    def __init__(
        self,
        source: Source,
        global_batch_size: int,
        *,
        seed: int,
        shuffle: bool = True,
        process_index: int = 0,
        process_count: int = 1,
        start_step: int = 0,
        prefetch: int = 2,
        keys: Sequence[str] | None = ("image", "label"),
    ):
        local = local_batch_size(global_batch_size, process_index, process_count)
        if len(source) < global_batch_size:
            raise ValueError(
                f"source {source.name!r} has {len(source)} examples, fewer than one global batch "
                f"({global_batch_size}); lower the batch size or use more data"
            )
        if start_step < 0 or prefetch < 0:
            raise ValueError(f"start_step and prefetch must be >= 0; got {start_step}, {prefetch}")
        self._plan = _Plan(source, global_batch_size, seed, shuffle, process_index, local, keys)
        _select(source.get(np.zeros(1, np.int64)), keys, source)  # fail now on a wrong key
        self.global_batch_size = global_batch_size
        self.local_batch_size = local
        self.steps_per_epoch = self._plan.steps_per_epoch
        self.step = start_step
        self._closed = False
        self._stop = threading.Event()
        self._queue: queue.Queue | None = None
        if prefetch:
            self._queue = queue.Queue(maxsize=prefetch)
            # Daemon, so a loader that is never closed cannot keep the interpreter alive at exit.
            self._thread = threading.Thread(
                target=_produce,
                args=(self._plan, start_step, self._queue, self._stop),
                name="ssl_jax-BatchLoader",
                daemon=True,
            )
            self._thread.start()

    def batch_at(self, step: int) -> dict[str, np.ndarray]:
        """The batch for global step `step`, computed now; does not move `self.step`."""
        return self._plan.batch(step)

    def __iter__(self) -> BatchLoader:
        return self

    def __next__(self) -> dict[str, np.ndarray]:
        if self._closed:
            raise RuntimeError("this BatchLoader is closed")
        if self._queue is None:
            item = self._plan.batch(self.step)
        else:
            item = self._queue.get()
            if isinstance(item, _Failure):
                self.close()
                raise item.error
        self.step += 1
        return item

    def close(self) -> None:
        """Stops the prefetch thread and waits for it; idempotent."""
        self._closed = True
        self._stop.set()
        if self._queue is not None:
            self._thread.join()
            self._queue = None

    def __enter__(self) -> BatchLoader:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    def __del__(self) -> None:
        # Without a join: __del__ may run on any thread, and the producer exits within _POLL_S.
        stop = getattr(self, "_stop", None)
        if stop is not None:
            stop.set()


def eval_batches(
    source: Source,
    batch_size: int,
    *,
    process_index: int = 0,
    process_count: int = 1,
    keys: Sequence[str] | None = ("image", "label"),
) -> Iterator[dict[str, np.ndarray]]:
    """Every example once, in order, in global batches of `batch_size` split across processes.

    The last batch is padded to full size by repeating the final example; `mask` (bool) marks the
    real rows and `example_ids` (int32) are their source indices. Every process yields the same
    number of batches, so collectives over them stay in step.
    """
    local = local_batch_size(batch_size, process_index, process_count)
    n = len(source)
    for start in range(0, n, batch_size):
        rows = start + process_index * local + np.arange(local)
        batch = _select(source.get(np.minimum(rows, n - 1)), keys, source)
        batch["mask"] = rows < n
        batch["example_ids"] = rows.astype(np.int32)
        yield batch
