"""Future prediction's own protocol: how well f regresses the future, against predicting no change.

Registered on `FuturePrediction` (ssl_jax.transfer.protocols) as "future_regression"; the generic kNN /
linear protocols measure f o phi's features beside it.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from ssl_jax import data, parallel
from ssl_jax.losses import feature_regression_loss
from ssl_jax.methods.future_prediction import FuturePrediction
from ssl_jax.transfer import protocols


@protocols.register(FuturePrediction, "future_regression")
def future_regression(
    config: ml_collections.ConfigDict,
    encoder_variables: dict,
    *,
    mesh=None,
    method: FuturePrediction,
) -> dict[str, Any]:
    """Test-split regression error of f against predicting no change (copy the last frame's phi).

    Returns mse and copy_last_mse (squared L2 per window, averaged over every window of every test
    clip), relative_mse = mse / copy_last_mse (< 1: f beats the baseline), target_std, num_clips.
    """
    del mesh  # each process scores its share of the clips on its own devices
    source = data.get_source(config.data, "test")
    batch_size = max(jax.process_count(), int(config.eval.batch_size))
    batch_size -= batch_size % jax.process_count()

    @jax.jit
    def score(variables, frames, mask):
        predictions, targets, last = method.predict(variables, frames)
        keep = jnp.repeat(mask, predictions.shape[0] // mask.shape[0])  # windows clip-major
        return (
            feature_regression_loss(predictions, targets),
            feature_regression_loss(last, targets),
            keep,
            targets,
        )

    variables = jax.tree.map(jnp.asarray, encoder_variables)
    errors, baseline, targets = [], [], []
    for batch in data.eval_batches(
        source,
        batch_size,
        process_index=jax.process_index(),
        process_count=jax.process_count(),
        keys=("frames",),
    ):
        e, c, keep, t = jax.device_get(score(variables, batch["frames"], batch["mask"]))
        keep = np.asarray(keep, bool)
        errors.append(e[keep])
        baseline.append(c[keep])
        targets.append(t[keep])
    errors, baseline, targets = (
        parallel.gather_processes(np.concatenate(a)) for a in (errors, baseline, targets)
    )
    mse, copy_last = float(errors.mean()), float(baseline.mean())
    return {
        "mse": mse,
        "copy_last_mse": copy_last,
        "relative_mse": mse / copy_last if copy_last > 0 else float("inf"),
        "target_std": float(np.mean(np.std(targets, axis=0))),
        "num_clips": len(source),
    }
