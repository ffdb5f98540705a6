"""Evaluation of a pre-trained encoder: features of the train and test splits, then the protocols.

The protocol algorithms (kNN, linear probe, feature extraction) live in ssl_jax.probes and are re-exported
here; this module connects them to configs, checkpoints and WORKDIR/eval.json.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from typing import Any

import jax
import ml_collections
import numpy as np

from ssl_jax import parallel
from ssl_jax.probes import accuracy, extract_features, knn_accuracy, knn_predict, linear_probe

__all__ = [
    "accuracy",
    "evaluate_encoder",
    "evaluate_workdir",
    "extract_features",
    "knn_accuracy",
    "knn_predict",
    "linear_probe",
    "write_results",
]

# --- From a checkpoint to results: features of the train and test splits, then the protocols. ---

RESULTS_FILE = "eval.json"


def _eval_batch_size(requested: int, mesh: jax.sharding.Mesh | None) -> int:
    n = 1 if mesh is None else parallel.num_shards(mesh)
    return max(n, (requested // n) * n)


def evaluate_encoder(
    config: ml_collections.ConfigDict,
    method: Any,
    encoder_variables: dict,
    protocols: Sequence[str],
    *,
    mesh: jax.sharding.Mesh | None = None,
) -> dict[str, Any]:
    """Runs `protocols` ("knn", "linear") on the frozen features of `method.encode` on config.data."""
    from ssl_jax import data

    unknown = set(protocols) - set(PROTOCOLS)
    if unknown:
        raise ValueError(f"Unknown protocol(s) {sorted(unknown)}; valid: {', '.join(PROTOCOLS)}.")
    eval_cfg = config.eval
    batch_size = _eval_batch_size(eval_cfg.batch_size, mesh)
    features = {}
    for split in ("train", "test"):
        source = data.get_source(config.data, split)
        limit = eval_cfg.get("max_train_examples", 0)
        if split == "train" and 0 < limit < len(source):
            source = data.ArraySource(**_subset(source, limit, seed=config.seed))
        features[split] = extract_features(
            method.encode,
            encoder_variables,
            data.eval_batches(
                source,
                batch_size,
                process_index=jax.process_index(),
                process_count=jax.process_count(),
            ),
            mesh=mesh,
        )
    # Each process extracted its own rows; every protocol needs all of them.
    features = {k: tuple(parallel.gather_processes(a) for a in v) for k, v in features.items()}
    (train_x, train_y), (test_x, test_y) = features["train"], features["test"]
    num_classes = int(config.data.num_classes)
    results: dict[str, Any] = {}
    for protocol in protocols:
        results[protocol] = PROTOCOLS[protocol](
            eval_cfg, train_x, train_y, test_x, test_y, num_classes, config.seed
        )
    return results


def _subset(source: Any, n: int, *, seed: int) -> dict[str, Any]:
    """A fixed random subset of n rows (not the first n: some sources are sorted by class)."""
    rows = source.get(np.sort(np.random.default_rng(seed).choice(len(source), n, replace=False)))
    return {
        "images": rows["image"],
        "labels": rows["label"],
        "num_classes": source.num_classes,
        "name": f"{source.name}[{n} of {len(source)}]",
    }


def _run_knn(eval_cfg, train_x, train_y, test_x, test_y, num_classes, seed):
    del seed
    out = knn_accuracy(
        train_x,
        train_y,
        test_x,
        test_y,
        num_classes=num_classes,
        k=eval_cfg.knn_k,
        temperature=eval_cfg.knn_temperature,
    )
    return {**out, "k": int(eval_cfg.knn_k), "temperature": float(eval_cfg.knn_temperature)}


def _run_linear(eval_cfg, train_x, train_y, test_x, test_y, num_classes, seed):
    return linear_probe(
        train_x,
        train_y,
        test_x,
        test_y,
        num_classes=num_classes,
        epochs=eval_cfg.linear_epochs,
        batch_size=eval_cfg.linear_batch_size,
        learning_rate=eval_cfg.linear_learning_rate,
        seed=seed,
        l2_grid=tuple(eval_cfg.get("linear_l2_grid", (0.0, 1e-4, 1e-3, 1e-2, 1e-1, 1.0))),
    )


PROTOCOLS = {"knn": _run_knn, "linear": _run_linear}


def write_results(workdir: str, results: dict[str, Any]) -> str:
    """Merges `results` into WORKDIR/eval.json (one entry per protocol, the latest run of each)."""
    path = os.path.join(workdir, RESULTS_FILE)
    existing = {}
    if os.path.isfile(path):
        with open(path) as f:
            existing = json.load(f)
    existing.update(results)
    with open(path, "w") as f:
        json.dump(existing, f, indent=2, sort_keys=True)
    return path


def evaluate_workdir(
    workdir: str,
    protocols: Sequence[str] = ("knn", "linear"),
    *,
    step: int | None = None,
    overrides: Sequence[str] = (),
) -> dict[str, Any]:
    """`ssl-jax evaluate`: restores the encoder saved by `ssl-jax pretrain` in `workdir` and evaluates it."""
    from ssl_jax import checkpoint, config_util
    from ssl_jax.methods import get_method

    config = config_util.load_saved(workdir)
    config_util.apply_overrides(config, overrides)
    method = get_method(config)
    encoder, step = checkpoint.load_encoder(workdir, step)
    results = evaluate_encoder(config, method, encoder, protocols, mesh=parallel.make_mesh())
    results["step"] = int(step)
    write_results(workdir, results)
    return results
