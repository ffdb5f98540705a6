"""Evaluation of a pre-trained encoder: features of the train and test splits, then the protocols.

The protocol algorithms (kNN, linear probe, feature extraction) live in ssl_jax.transfer.probes and are
re-exported here; this module connects them to configs, checkpoints and WORKDIR/eval.json.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from typing import Any

import jax
import ml_collections

from ssl_jax import checkpoint, config_util, data, default_config, parallel
from ssl_jax.data.common import RowsSource
from ssl_jax.data.pipeline import labelled_eval_batches
from ssl_jax.method_inputs import build_method
from ssl_jax.transfer import finetune as _finetune
from ssl_jax.transfer import (  # noqa: F401  (importing them registers their protocols)
    future,
    text,
    word2vec,
    zero_shot,
)
from ssl_jax.transfer import protocols as _method_protocols
from ssl_jax.transfer.probes import (
    accuracy,
    extract_features,
    knn_accuracy,
    knn_predict,
    linear_probe,
)

__all__ = [
    "accuracy",
    "available_protocols",
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
    """Runs `protocols` on the encoder: feature protocols ("knn", "linear") on the frozen features of
    `method.encode` over config.data's train and test splits (extracted once), model protocols
    (MODEL_PROTOCOLS, e.g. fine-tuning) and the method's own (registered in ssl_jax.transfer.protocols)."""
    own = _method_protocols.for_method(method)
    valid = {**FEATURE_PROTOCOLS, **MODEL_PROTOCOLS, **own}
    unknown = set(protocols) - set(valid)
    if unknown:
        raise ValueError(
            f"Unknown protocol(s) {sorted(unknown)}; valid: {', '.join(sorted(valid))}."
        )
    results: dict[str, Any] = {}
    feature_protocols = [p for p in protocols if p in FEATURE_PROTOCOLS and p not in own]
    if feature_protocols:
        (train_x, train_y), (test_x, test_y) = _features(config, method, encoder_variables, mesh)
        for protocol in feature_protocols:
            results[protocol] = FEATURE_PROTOCOLS[protocol](
                config.eval,
                train_x,
                train_y,
                test_x,
                test_y,
                int(config.data.num_classes),
                config.seed,
            )
    for protocol in protocols:
        if protocol in own:
            results[protocol] = own[protocol](config, encoder_variables, mesh=mesh)
        elif protocol in MODEL_PROTOCOLS:
            results[protocol] = MODEL_PROTOCOLS[protocol](
                config, method, encoder_variables, mesh=mesh
            )
    return {p: results[p] for p in protocols}


def available_protocols(method: Any) -> list[str]:
    """Every protocol name `evaluate_encoder` accepts for `method`: the generic feature and model
    protocols and those registered for its class (ssl_jax.transfer.protocols)."""
    return sorted({**FEATURE_PROTOCOLS, **MODEL_PROTOCOLS, **_method_protocols.for_method(method)})


def _features(config, method, encoder_variables, mesh):
    """((train features, labels), (test features, labels)), all rows on every process.

    Photographs (ssl_jax.data.photos) are read by the grain eval pipeline: each resized by its
    short side and centre-cropped to config.data.image_size, decoded in config.data.num_workers
    worker processes."""
    eval_cfg = config.eval
    batch_size = _eval_batch_size(eval_cfg.batch_size, mesh)
    input_key = method.batch_keys[0]
    features = {}
    for split in ("train", "test"):
        source = data.get_source(config.data, split)
        limit = eval_cfg.get("max_train_examples", 0)
        if split == "train" and 0 < limit < len(source):
            source = RowsSource.random(source, limit, seed=config.seed)
        batches = labelled_eval_batches(
            source,
            batch_size,
            keys=(input_key, "label"),
            image_size=int(config.data.get("image_size", 0) or 0) or None,
            num_workers=config.data.get("num_workers", 0),
            process_index=jax.process_index(),
            process_count=jax.process_count(),
        )
        features[split] = extract_features(
            method.encode, encoder_variables, batches, mesh=mesh, input_key=input_key
        )
    # Each process extracted its own rows; every protocol needs all of them.
    features = {k: tuple(parallel.gather_processes(a) for a in v) for k, v in features.items()}
    return features["train"], features["test"]


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
        chunk_size=int(eval_cfg.get("knn_chunk_size", 1024)),
        bank_chunk_size=int(eval_cfg.get("knn_bank_chunk_size", 65536)),
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


# fn(eval_cfg, train_x, train_y, test_x, test_y, num_classes, seed) on frozen features.
FEATURE_PROTOCOLS = {"knn": _run_knn, "linear": _run_linear}
# fn(config, method, encoder_variables, *, mesh) -> results: protocols that train the encoder itself.
MODEL_PROTOCOLS: dict[str, Any] = {}
# Fine-tuning the encoder with a new head on all / 10% / 1% of the labels (ssl_jax.transfer.finetune).
MODEL_PROTOCOLS.update(_finetune.PROTOCOLS)


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


def _add_missing_eval_fields(config: ml_collections.ConfigDict) -> None:
    """Gives a workdir saved before an evaluation field existed that field's default, so it can be
    evaluated (and overridden) with today's protocols."""
    for key, value in default_config.get_config().eval.items():
        if key not in config.eval:
            config.eval[key] = value


def expected_encoder(config: ml_collections.ConfigDict, method: Any) -> Any:
    """The encoder tree (`jax.ShapeDtypeStruct`s) `method` exports under `config` for the examples of
    config.data: what a checkpoint must hold to be evaluated with this config, so an override that
    changes the architecture fails naming the parameter paths."""
    source = data.get_source(config.data, "train")
    return method.exported_shapes(data.example_shape(source, method.batch_keys[0]))


def evaluate_workdir(
    workdir: str,
    protocols: Sequence[str] | None = None,
    *,
    step: int | None = None,
    overrides: Sequence[str] = (),
) -> dict[str, Any]:
    """`ssl-jax evaluate`: restores the encoder saved by `ssl-jax pretrain` in `workdir` and evaluates it."""
    config = config_util.load_saved(workdir)
    _add_missing_eval_fields(config)
    config_util.apply_overrides(config, overrides)
    method = build_method(config)
    encoder, step = checkpoint.load_encoder(
        workdir, step, expected=expected_encoder(config, method)
    )
    protocols = tuple(config.eval.protocols) if protocols is None else tuple(protocols)
    results = evaluate_encoder(config, method, encoder, protocols, mesh=parallel.make_mesh())
    results["step"] = int(step)
    write_results(workdir, results)
    return results
