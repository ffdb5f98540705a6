"""Padded eval batches of in-memory sources: the one host-side batching that is not grain's.

`eval_batches` gives every example of a fixed-size source once, in order, padded to whole global
batches with a `mask`, split over processes. Each batch is one `source.get` of in-memory arrays or
tokens (a fancy index), so grain's worker processes would only add their start-up; training input
(`ssl_jax.data.pipeline.Pipeline`) and the photo sources' eval batches, which decode JPEGs, are
grain's. (The threaded training loader that used to live here is gone: Pipeline keeps its law, the
batch of step s a pure function of (seed, s), for any number of workers.)
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import numpy as np

from ssl_jax.data.common import local_batch_size
from ssl_jax.data.registry import Source


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
