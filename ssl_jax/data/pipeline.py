"""The host input pipeline on grain: deterministic, resumable, multiprocess training and eval batches.

The law, so a run's numbers do not depend on how many workers or hosts feed it: the batch of global
step s is a pure function of (seed, s).
Epoch e = s // steps_per_epoch is the permutation `np.random.default_rng([seed, e])` of the source,
each epoch drops its remainder, process p holds rows [p * local, (p + 1) * local) of the global
batch, and `example_ids` are the global row ids s * global_batch_size + row.

The grain program is `MapDataset.range(start, stop).map(batch_of_step)` -> `to_iter_dataset`
(threads, a bounded prefetch buffer) -> `mp_prefetch` (worker processes, each computing the steps
i, i + n, ... and interleaved back in step order). An element is one step's local batch, not one
example, because the law is indexed by step and an in-memory array source then reads a batch with
one fancy index instead of stacking rows one by one in Python.

Two kinds of source: a fixed-size uint8 `Source` (arrays, npz, Fashion-MNIST) ships whole images
("image", "label"), one `source.get` per step; photographs (`photos.FolderPhotos`,
`photos.TfdsPhotos`) given `views` are decoded and cropped on the host into views "view_0" ...
(uint8 [local, size, size, C]) by `photos.decode_views`, example row r drawing its boxes from
`np.random.default_rng([seed, CROP_STREAM, r])`, so the views are the same for any worker count.
Photographs without `views` ship their whole-image `get` (each photo's centre crop at its
image_size), for methods that crop on device.

`Pipeline.get_state()` is a small JSON dict (the next step and the law's settings) to store in the
Orbax checkpoint beside the train state (checkpoint.py's JSON item); `set_state` resumes there.
The step is the whole position because every element is a pure function of its step; grain's own
`mp_prefetch` iterator state records each worker's position, which would tie a resume to the
worker count, so it is not what we save.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import grain
import numpy as np
from absl import flags

from ssl_jax.data.common import RowsSource, local_batch_size
from ssl_jax.data.loader import eval_batches as array_eval_batches
from ssl_jax.data.photos import (
    CropView,
    FolderPhotos,
    Photos,
    TfdsPhotos,
    decode_eval,
    decode_views,
)

CROP_STREAM = 0x63726F70  # "crop": keeps the crop uniforms apart from the permutation's stream
# example_ids are int32 (they key on-device augmentation); a run stops before they would wrap.
_MAX_ROWS = 2**31


def is_photos(source: Any) -> bool:
    """Whether `source` (or the source a `RowsSource` reads) is read as photographs
    (decode-and-crop) rather than fixed-size arrays."""
    while isinstance(source, RowsSource):
        source = source.base
    return isinstance(source, Photos)


class StepBatch:
    """The local batch of a global step: the grain map function (picklable, for worker processes).

    Holds no state beyond a cache of the current epoch's permutation, rebuilt in each worker.
    """

    def __init__(
        self,
        source: Any,
        global_batch_size: int,
        *,
        seed: int,
        shuffle: bool,
        process_index: int,
        process_count: int,
        views: Sequence[CropView] | None,
        mode: str | None,
        keys: Sequence[str] | None,
    ):
        self.local = local_batch_size(global_batch_size, process_index, process_count)
        self.source = source
        self.global_batch_size = global_batch_size
        self.seed = seed
        self.shuffle = shuffle
        self.process_index = process_index
        self.views = tuple(views) if views is not None else None
        self.mode = mode or getattr(source, "mode", "RGB")
        self.keys = None if keys is None else tuple(keys)
        self.steps_per_epoch = len(source) // global_batch_size
        self._perm: tuple[int, np.ndarray] | None = None

    def __getstate__(self) -> dict:
        return {**self.__dict__, "_perm": None}

    def permutation(self, epoch: int) -> np.ndarray:
        if self._perm is None or self._perm[0] != epoch:
            n = len(self.source)
            rng = np.random.default_rng([self.seed, epoch])
            self._perm = (epoch, rng.permutation(n) if self.shuffle else np.arange(n))
        return self._perm[1]

    def rows(self, step: int) -> tuple[np.ndarray, np.ndarray]:
        """(source indices, global row ids) of this process's rows of step `step`."""
        epoch, k = divmod(step, self.steps_per_epoch)
        first = k * self.global_batch_size + self.process_index * self.local
        indices = self.permutation(epoch)[first : first + self.local]
        rows = step * self.global_batch_size + self.process_index * self.local
        return indices, rows + np.arange(self.local, dtype=np.int64)

    def __call__(self, step: int) -> dict[str, np.ndarray]:
        indices, rows = self.rows(int(step))
        if self.views is None:
            out = self.source.get(indices)
            if self.keys is not None:
                out = {k: out[k] for k in self.keys}
        else:
            out = self._photos(indices, rows)
        out["example_ids"] = rows.astype(np.int32)
        return out

    def _photos(self, indices: np.ndarray, rows: np.ndarray) -> dict[str, np.ndarray]:
        per_view: list[list[np.ndarray]] = [[] for _ in self.views]
        labels = []
        for index, row in zip(indices.tolist(), rows.tolist(), strict=True):
            data, where, label = self.source.example(index)
            rng = np.random.default_rng([self.seed, CROP_STREAM, row])
            for bucket, view in zip(
                per_view,
                decode_views(data, self.views, rng, mode=self.mode, where=where),
                strict=True,
            ):
                bucket.append(view)
            labels.append(label)
        out = {f"view_{i}": np.stack(v) for i, v in enumerate(per_view)}
        if labels and labels[0] is not None:
            out["label"] = np.asarray(labels, np.int32)
        return out


def _iterate(ds: grain.MapDataset, num_workers: int, num_threads: int, prefetch: int):
    it_ds = ds.to_iter_dataset(
        grain.ReadOptions(num_threads=num_threads, prefetch_buffer_size=prefetch)
    )
    if num_workers:
        # grain's workers read absl flags, which a program without absl.app never parsed.
        if not flags.FLAGS.is_parsed():
            flags.FLAGS.mark_as_parsed()
        options = grain.MultiprocessingOptions(num_workers=num_workers, per_worker_buffer_size=1)
        it_ds = it_ds.mp_prefetch(options)
    return iter(it_ds)


class Pipeline:
    """An endless iterator over this process's part of each global training batch (numpy dicts).

    source, global_batch_size, seed: the law's (module docstring); shuffle=False reads each epoch
    in source order; process_index / process_count: this process's share; start_step: the first
    step (a resume); keys: the source fields to ship (None: all). `views` (photographs only: one
    `CropView` per view; the batch then holds the views, "label" when the photos have labels, and
    "example_ids"), `mode` ("RGB" or "L" for photographs; default the source's), `num_workers`
    (grain worker processes; 0 decodes in this process), `num_threads` (grain reader threads per
    process) and `prefetch` (batches each process keeps ready: host memory is about
    (num_workers + 1) * (prefetch + num_threads) batches). `pipeline.step` is the global step of
    the next batch; `close()` stops the reading and a later `next()` starts again there.
    """

    def __init__(
        self,
        source: Any,
        global_batch_size: int,
        *,
        seed: int,
        views: Sequence[CropView] | None = None,
        mode: str | None = None,
        shuffle: bool = True,
        process_index: int = 0,
        process_count: int = 1,
        start_step: int = 0,
        num_workers: int = 0,
        num_threads: int = 1,
        prefetch: int = 2,
        keys: Sequence[str] | None = ("image", "label"),
    ):
        if views is not None and not is_photos(source):
            raise ValueError(
                f"source {source.name!r} holds fixed-size arrays, cropped on device; host crops "
                "(views=) need views of photographs (FolderPhotos, TfdsPhotos)"
            )
        if len(source) < global_batch_size:
            raise ValueError(
                f"source {source.name!r} has {len(source)} examples, fewer than one global batch "
                f"({global_batch_size}); lower the batch size or use more data"
            )
        if min(start_step, num_workers, prefetch) < 0 or num_threads < 1:
            raise ValueError(
                "start_step, num_workers and prefetch must be >= 0 and num_threads >= 1; got "
                f"{start_step}, {num_workers}, {prefetch}, {num_threads}"
            )
        self._fn = StepBatch(
            source,
            global_batch_size,
            seed=seed,
            shuffle=shuffle,
            process_index=process_index,
            process_count=process_count,
            views=views,
            mode=mode,
            keys=keys,
        )
        if views is None and keys is not None:
            missing = set(keys) - set(source.get(np.zeros(1, np.int64)))
            if missing:  # fail now, not in a worker
                raise ValueError(f"source {source.name!r} has no {sorted(missing)}; pass keys=")
        self.global_batch_size = global_batch_size
        self.local_batch_size = self._fn.local
        self.steps_per_epoch = self._fn.steps_per_epoch
        self.num_steps = _MAX_ROWS // global_batch_size
        self._settings = {
            "seed": int(seed),
            "global_batch_size": int(global_batch_size),
            "num_examples": len(source),
            "shuffle": bool(shuffle),
        }
        self._workers = (num_workers, num_threads, prefetch)
        self._iterator = None
        self.step = start_step

    def batch_at(self, step: int) -> dict[str, np.ndarray]:
        """The batch of global step `step`, computed now in this process; `self.step` unchanged."""
        return self._fn(step)

    def __iter__(self) -> Pipeline:
        return self

    def __next__(self) -> dict[str, np.ndarray]:
        if self._iterator is None:
            ds = grain.MapDataset.range(self.step, self.num_steps).map(self._fn)
            self._iterator = _iterate(ds, *self._workers)
        try:
            batch = next(self._iterator)
        except BaseException:
            self.close()  # a worker's error ends the pipeline; its processes go with it
            raise
        self.step += 1
        return batch

    def get_state(self) -> dict[str, Any]:
        """The position to checkpoint (JSON): the next step and the settings of the law."""
        return {"step": int(self.step), **self._settings}

    def set_state(self, state: dict[str, Any]) -> None:
        """Continues at `state["step"]`; a state saved under another seed, batch size, dataset
        size or shuffle setting would resume different numbers, so it is refused. Settings the
        state does not hold (an older checkpoint's {"step", "seed"}) are not compared."""
        differs = {
            k: (state[k], v) for k, v in self._settings.items() if k in state and state[k] != v
        }
        if differs:
            raise ValueError(
                "the checkpointed input position was saved with other settings "
                f"(saved, now): {differs}; resume with the settings it was saved with"
            )
        self.close()
        self.step = int(state["step"])

    def close(self) -> None:
        """Stops the worker processes; the next `next()` starts them again at `self.step`."""
        iterator, self._iterator = self._iterator, None
        if iterator is not None and hasattr(iterator, "close"):
            iterator.close()

    def __enter__(self) -> Pipeline:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()


class EvalBatch:
    """Eval batch b of photographs (picklable): rows b * batch_size + [p * local, (p + 1) * local),
    the last batch padded by repeating the final example, `mask` marking the real rows."""

    def __init__(self, source, batch_size, *, size, crop_fraction, mode, process_index, local):
        self.source, self.batch_size, self.size = source, batch_size, size
        self.crop_fraction, self.mode = crop_fraction, mode
        self.process_index, self.local = process_index, local

    def __call__(self, b: int) -> dict[str, np.ndarray]:
        n = len(self.source)
        rows = int(b) * self.batch_size + self.process_index * self.local + np.arange(self.local)
        images, labels = [], []
        for index in np.minimum(rows, n - 1).tolist():
            data, where, label = self.source.example(index)
            images.append(
                decode_eval(
                    data, self.size, crop_fraction=self.crop_fraction, mode=self.mode, where=where
                )
            )
            labels.append(label)
        out = {"image": np.stack(images), "mask": rows < n, "example_ids": rows.astype(np.int32)}
        if labels[0] is not None:
            out["label"] = np.asarray(labels, np.int32)
        return out


def eval_batches(
    source: FolderPhotos | TfdsPhotos,
    batch_size: int,
    *,
    image_size: int | None = None,
    crop_fraction: float = 0.875,
    mode: str | None = None,
    process_index: int = 0,
    process_count: int = 1,
    num_workers: int = 0,
) -> Iterator[dict[str, np.ndarray]]:
    """Every photograph once, in order, resized short side then centre-cropped (photos.eval_box) to
    `image_size` (default the source's), in global batches split across processes as
    `ssl_jax.data.eval_batches` splits them."""
    local = local_batch_size(batch_size, process_index, process_count)
    fn = EvalBatch(
        source,
        batch_size,
        size=image_size or source.image_size,
        crop_fraction=crop_fraction,
        mode=mode or source.mode,
        process_index=process_index,
        local=local,
    )
    num_batches = -(-len(source) // batch_size)
    iterator = _iterate(grain.MapDataset.range(num_batches).map(fn), num_workers, 1, 2)
    try:
        yield from iterator
    finally:
        if hasattr(iterator, "close"):
            iterator.close()


def labelled_eval_batches(
    source: Any,
    batch_size: int,
    *,
    keys: Sequence[str] = ("image", "label"),
    image_size: int | None = None,
    num_workers: int = 0,
    process_index: int = 0,
    process_count: int = 1,
) -> Iterator[dict[str, np.ndarray]]:
    """Every row of `source` once, in padded global batches split across processes, whatever the
    source: photographs through `eval_batches` (short side resized, centre crop to `image_size`,
    decoded in `num_workers` processes), fixed-size arrays as `ssl_jax.data.eval_batches` reads
    them (`keys`). What evaluation and fine-tuning score a split with."""
    shards = dict(process_index=process_index, process_count=process_count)
    if is_photos(source):
        return eval_batches(
            source,
            batch_size,
            image_size=image_size,
            mode="L" if source.image_shape[-1] == 1 else "RGB",
            num_workers=num_workers,
            **shards,
        )
    return array_eval_batches(source, batch_size, keys=keys, **shards)
