"""Evaluation protocols on frozen features: weighted kNN, linear probe, top-k accuracy.

Every protocol takes features [N, D] (float32 or bfloat16) and integer labels [N] and runs as jitted
programs compiled once per shape. `extract_features` runs an encoder over a batch iterator to produce
those features. Loading an encoder from a checkpoint and running these is ssl_jax.transfer.evaluate.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax.sharding import Mesh

from ssl_jax import parallel

# kNN similarities decide which neighbours vote, so they are computed in true float32: GPUs would
# otherwise round float32 matmul inputs to TF32 (errors ~1e-4 in a cosine), enough to reorder near
# neighbours. The price on GPU is a slower matmul and ~10 s of autotuning per new shape.
_HIGHEST = jax.lax.Precision.HIGHEST
_EVAL_CHUNK = 4096  # rows per chunk when scoring a trained probe; bounds memory at chunk * grid * C


def _check_features(features: Any, labels: Any | None, name: str, num_classes: int) -> None:
    if features.ndim != 2 or not jnp.issubdtype(features.dtype, jnp.floating):
        raise ValueError(
            f"{name} features must be a float [N, D] array, got {features.dtype}"
            f"{list(features.shape)}."
        )
    if labels is None:
        return
    if labels.shape != features.shape[:1] or not jnp.issubdtype(labels.dtype, jnp.integer):
        raise ValueError(
            f"{name} labels must be integers of shape [{features.shape[0]}], got "
            f"{labels.dtype}{list(labels.shape)}."
        )
    host_labels = np.asarray(labels)
    if host_labels.size and (host_labels.min() < 0 or host_labels.max() >= num_classes):
        raise ValueError(
            f"{name} labels must lie in [0, {num_classes}), got "
            f"[{host_labels.min()}, {host_labels.max()}]."
        )


def _chunked_map(fn: Callable, xs: Any, chunk_size: int) -> Any:
    """`fn` over row chunks of the pytree `xs` with `lax.map`, so memory scales with one chunk.

    The rows are padded up to a whole number of chunks (a static shape, one compilation) and the
    padded rows are dropped from the outputs, whose leading axis is the row axis.
    """
    n = jax.tree.leaves(xs)[0].shape[0]
    chunk = max(1, min(chunk_size, n))
    num_chunks = -(-n // chunk)
    pad = num_chunks * chunk - n

    def split(x):
        x = jnp.pad(x, [(0, pad)] + [(0, 0)] * (x.ndim - 1))
        return x.reshape(num_chunks, chunk, *x.shape[1:])

    out = jax.lax.map(fn, jax.tree.map(split, xs))
    return jax.tree.map(lambda o: o.reshape(num_chunks * chunk, *o.shape[2:])[:n], out)


# ----------------------------------------------------------------------------------------------------
# Accuracy
# ----------------------------------------------------------------------------------------------------


@functools.partial(jax.jit, static_argnames="k")
def _topk_accuracy(logits: jax.Array, labels: jax.Array, k: int) -> jax.Array:
    _, top = jax.lax.top_k(logits, k)
    return jnp.mean(jnp.any(top == labels[:, None], axis=-1).astype(jnp.float32))


def accuracy(logits: jax.Array, labels: jax.Array, k: int = 1) -> jax.Array:
    """Fraction of rows whose label is among the k highest logits. logits: [N, C]; labels: [N].

    Ties are broken as `lax.top_k` breaks them (the lower class index ranks first). Returns a
    float32 scalar.
    """
    if not 1 <= k <= logits.shape[-1]:
        raise ValueError(f"k={k} must lie in [1, num_classes={logits.shape[-1]}].")
    return _topk_accuracy(jnp.asarray(logits), jnp.asarray(labels, jnp.int32), k)


# ----------------------------------------------------------------------------------------------------
# Weighted kNN (Wu et al. 2018, "Unsupervised Feature Learning via Non-Parametric Instance
# Discrimination", eq. 7; the protocol of DINO's eval_knn.py)
# ----------------------------------------------------------------------------------------------------


def _inv_norm(x: jax.Array) -> jax.Array:
    """1 / ||x|| over the last axis in float32, with a floor so an all-zero row scores 0, not NaN."""
    x = x.astype(jnp.float32)
    return jax.lax.rsqrt(jnp.maximum(jnp.sum(jnp.square(x), axis=-1), 1e-24))


@functools.partial(jax.jit, static_argnames=("num_classes", "k", "chunk_size", "bank_chunk_size"))
def _knn_scores(
    train_features: jax.Array,
    train_labels: jax.Array,
    query_features: jax.Array,
    temperature: jax.Array,
    *,
    num_classes: int,
    k: int,
    chunk_size: int,
    bank_chunk_size: int,
) -> jax.Array:
    dtype = jnp.promote_types(train_features.dtype, query_features.dtype)
    train = train_features.astype(dtype)
    train_inv_norm = _inv_norm(train)
    n = train.shape[0]
    num_bank_chunks = -(-n // bank_chunk_size)

    def chunk_scores(query: jax.Array) -> jax.Array:
        query_inv_norm = _inv_norm(query)

        def bank_chunk(i, best):
            # The last chunk is slid back to end at row n (no padded copy of the bank); the rows it
            # shares with the previous chunk are masked out, so every row is seen exactly once.
            start = jnp.minimum(i * bank_chunk_size, n - bank_chunk_size)
            rows = jax.lax.dynamic_slice_in_dim(train, start, bank_chunk_size)
            # Dot the raw features and divide by the norms afterwards: bf16 features keep their
            # exact products (float32 accumulation) instead of being rounded again after
            # normalisation.
            dots = jnp.einsum(
                "qd,nd->qn",
                query.astype(dtype),
                rows,
                precision=_HIGHEST,
                preferred_element_type=jnp.float32,
            )
            inv_norm = jax.lax.dynamic_slice_in_dim(train_inv_norm, start, bank_chunk_size)
            sims = dots * query_inv_norm[:, None] * inv_norm[None, :]
            fresh = start + jnp.arange(bank_chunk_size) >= i * bank_chunk_size
            sims = jnp.where(fresh[None, :], sims, -jnp.inf)
            labels = jax.lax.dynamic_slice_in_dim(train_labels, start, bank_chunk_size)
            # The running top k first: on equal similarity the earlier training row wins, as in a
            # single top_k over the whole bank.
            sims = jnp.concatenate([best[0], sims], axis=1)
            labels = jnp.concatenate(
                [best[1], jnp.broadcast_to(labels, sims.shape[:1] + labels.shape)], axis=1
            )
            top_sims, top = jax.lax.top_k(sims, k)
            return top_sims, jnp.take_along_axis(labels, top, axis=1)

        empty = (
            jnp.full((query.shape[0], k), -jnp.inf, jnp.float32),
            jnp.zeros((query.shape[0], k), train_labels.dtype),
        )
        top_sims, top_labels = jax.lax.fori_loop(0, num_bank_chunks, bank_chunk, empty)
        weights = jnp.exp(top_sims / temperature)
        votes = jax.nn.one_hot(top_labels, num_classes, dtype=jnp.float32)
        # An elementwise sum, not a matmul, so no TF32 rounding touches the weights.
        return jnp.sum(weights[:, :, None] * votes, axis=1)

    return _chunked_map(chunk_scores, query_features, chunk_size)


def knn_predict(
    train_features: jax.Array,
    train_labels: jax.Array,
    query_features: jax.Array,
    *,
    num_classes: int,
    k: int = 20,
    temperature: float = 0.07,
    chunk_size: int = 1024,
    bank_chunk_size: int = 65536,
) -> jax.Array:
    """Weighted kNN class scores: [Q, num_classes] float32.

    Features are L2-normalised; each query's k most cosine-similar training rows vote for their
    label with weight exp(similarity / temperature). Queries are processed `chunk_size` at a time
    against `bank_chunk_size` training rows at a time, keeping a running top k, so memory is
    O(chunk_size * bank_chunk_size) on top of the features, whatever the size of the training set
    (ImageNet's 1.28M rows: 1024 x 65536 float32 similarities, 256 MiB). The result is the same as
    one top k over the whole bank, ties included. Temperatures below ~0.0113 overflow float32
    (exp(1 / T) > 3.4e38).
    """
    for name, x, y in (("train", train_features, train_labels), ("query", query_features, None)):
        _check_features(x, y, name, num_classes)
    if query_features.shape[1] != train_features.shape[1]:
        raise ValueError(
            f"query features have dimension {query_features.shape[1]}, train features "
            f"{train_features.shape[1]}."
        )
    if not 1 <= k <= train_features.shape[0]:
        raise ValueError(f"k={k} must lie in [1, N_train={train_features.shape[0]}].")
    if temperature <= 0 or chunk_size < 1 or bank_chunk_size < 1:
        raise ValueError(
            "need temperature > 0 and chunk sizes >= 1, got "
            f"{temperature}, {chunk_size}, {bank_chunk_size}."
        )
    return _knn_scores(
        jnp.asarray(train_features),
        jnp.asarray(train_labels, jnp.int32),
        jnp.asarray(query_features),
        jnp.float32(temperature),
        num_classes=num_classes,
        k=k,
        chunk_size=min(chunk_size, query_features.shape[0]),
        bank_chunk_size=min(bank_chunk_size, train_features.shape[0]),
    )


def knn_accuracy(
    train_features: jax.Array,
    train_labels: jax.Array,
    query_features: jax.Array,
    query_labels: jax.Array,
    *,
    num_classes: int,
    k: int = 20,
    temperature: float = 0.07,
    chunk_size: int = 1024,
    bank_chunk_size: int = 65536,
) -> dict[str, float]:
    """Weighted kNN accuracy of the queries: {"top1": ...} plus "top5" when num_classes >= 5."""
    _check_features(query_features, query_labels, "query", num_classes)
    scores = knn_predict(
        train_features,
        train_labels,
        query_features,
        num_classes=num_classes,
        k=k,
        temperature=temperature,
        chunk_size=chunk_size,
        bank_chunk_size=bank_chunk_size,
    )
    result = {"top1": float(accuracy(scores, query_labels, k=1))}
    if num_classes >= 5:
        result["top5"] = float(accuracy(scores, query_labels, k=5))
    return result


# ----------------------------------------------------------------------------------------------------
# Linear probe: softmax regression on standardised frozen features, L2 chosen on a held-out part of
# the training split.
# ----------------------------------------------------------------------------------------------------


@jax.jit
def _standardize(train: jax.Array, test: jax.Array) -> tuple[jax.Array, jax.Array]:
    """Centre and scale both splits by the training split's per-feature mean and std (float32)."""
    train = train.astype(jnp.float32)
    mean = jnp.mean(train, axis=0)
    std = jnp.sqrt(jnp.mean(jnp.square(train - mean), axis=0))
    # A constant feature (a dead ReLU unit) would divide its rounding error up to unit variance;
    # zero it instead.
    informative = std > 1e-6 * jnp.abs(mean)
    scale = jnp.where(informative, 1.0 / jnp.where(informative, std, 1.0), 0.0)
    return (train - mean) * scale, (test.astype(jnp.float32) - mean) * scale


@functools.partial(jax.jit, static_argnames="n_val")
def _holdout(x: jax.Array, y: jax.Array, key: jax.Array, *, n_val: int) -> tuple[Any, Any]:
    """A random split of the rows: ((x, y) of `n_val` held-out rows, (x, y) of the rest)."""
    perm = jax.random.permutation(key, x.shape[0])
    return (x[perm[:n_val]], y[perm[:n_val]]), (x[perm[n_val:]], y[perm[n_val:]])


@functools.partial(jax.jit, static_argnames=("num_classes", "epochs", "batch_size"))
def _fit_softmax(
    x: jax.Array,
    y: jax.Array,
    l2: jax.Array,
    key: jax.Array,
    learning_rate: jax.Array,
    *,
    num_classes: int,
    epochs: int,
    batch_size: int,
) -> dict[str, jax.Array]:
    """One softmax regression per entry of `l2` [L], all on the same minibatch order, in one program.

    Minimises mean cross-entropy + l2 / 2 * ||W||^2 (the bias is not penalised) with Adam and a
    cosine-decayed learning rate. Each epoch is a fresh permutation; the last minibatch of an epoch
    is padded and its padding masked out. Returns {"w": [L, D, C], "b": [L, C]}.
    """
    n, d = x.shape
    batch = min(batch_size, n)
    steps_per_epoch = -(-n // batch)
    padded = steps_per_epoch * batch
    tx = optax.adam(optax.cosine_decay_schedule(learning_rate, epochs * steps_per_epoch))
    mask = (jnp.arange(padded) < n).astype(jnp.float32).reshape(steps_per_epoch, batch)

    def loss_fn(params, l2_value, xb, yb, mb):
        logits = xb @ params["w"] + params["b"]
        ce = optax.softmax_cross_entropy_with_integer_labels(logits, yb)
        return jnp.sum(ce * mb) / jnp.sum(mb) + 0.5 * l2_value * jnp.sum(jnp.square(params["w"]))

    def train_one(l2_value):
        params = {"w": jnp.zeros((d, num_classes)), "b": jnp.zeros((num_classes,))}

        def step(carry, batch_idx_mask):
            params, opt_state = carry
            idx, mb = batch_idx_mask
            grads = jax.grad(loss_fn)(params, l2_value, x[idx], y[idx], mb)
            updates, opt_state = tx.update(grads, opt_state, params)
            return (optax.apply_updates(params, updates), opt_state), None

        def epoch(carry, epoch_key):
            perm = jax.random.permutation(epoch_key, n)
            idx = jnp.pad(perm, (0, padded - n)).reshape(steps_per_epoch, batch)
            return jax.lax.scan(step, carry, (idx, mask))[0], None

        carry = (params, tx.init(params))
        carry, _ = jax.lax.scan(epoch, carry, jax.random.split(key, epochs))
        return carry[0]

    return jax.vmap(train_one)(l2)


@jax.jit
def _top1_per_model(params: dict[str, jax.Array], x: jax.Array, y: jax.Array) -> jax.Array:
    """Top-1 accuracy [L] of each of the L stacked probes in `params` on (x, y)."""

    def chunk_correct(xy):
        xc, yc = xy
        # Default precision, as in training. Probes lead the output because on an H100 the
        # [chunk, L, C] layout cost several times longer to compile (its matmul autotuning).
        logits = jnp.einsum("nd,ldc->lnc", xc, params["w"])
        logits = logits + params["b"][:, None, :]
        return (jnp.argmax(logits, axis=-1) == yc[None, :]).T  # [chunk, L]

    correct = _chunked_map(chunk_correct, (x, y), _EVAL_CHUNK)
    return jnp.mean(correct.astype(jnp.float32), axis=0)


def linear_probe(
    train_features: jax.Array,
    train_labels: jax.Array,
    test_features: jax.Array,
    test_labels: jax.Array,
    *,
    num_classes: int,
    l2_grid: Sequence[float] = (0.0, 1e-6, 1e-5, 1e-4, 1e-3, 1e-2),
    val_fraction: float = 0.1,
    epochs: int = 100,
    batch_size: int = 1024,
    learning_rate: float = 1e-3,
    seed: int = 0,
) -> dict[str, float]:
    """Linear probe accuracy: {"top1": test, "l2": chosen, "val_top1": ..., "train_top1": ...}.

    Features are standardised with training-split statistics. `val_fraction` of the training split
    (a random subset fixed by `seed`) is held out; a probe per `l2_grid` value is trained on the
    rest (see `_fit_softmax`) and the value with the best held-out top-1 is kept, ties going to the
    stronger penalty. The probe is then retrained on the whole training split with that value and
    scored on train and test. The test split never influences the choice. Deterministic given
    `seed`. Runs on the default device; all features must fit there.
    """
    _check_features(train_features, train_labels, "train", num_classes)
    _check_features(test_features, test_labels, "test", num_classes)
    if test_features.shape[1] != train_features.shape[1]:
        raise ValueError(
            f"test features have dimension {test_features.shape[1]}, train features "
            f"{train_features.shape[1]}."
        )
    n = train_features.shape[0]
    n_val = int(round(val_fraction * n))
    if not 1 <= n_val < n:
        raise ValueError(
            f"val_fraction={val_fraction} of {n} training rows must leave at least one "
            "row for validation and one for fitting."
        )
    if not l2_grid or min(l2_grid) < 0:
        raise ValueError(f"l2_grid must be a non-empty sequence of values >= 0, got {l2_grid}.")

    x_train, x_test = _standardize(jnp.asarray(train_features), jnp.asarray(test_features))
    y_train = jnp.asarray(train_labels, jnp.int32)
    y_test = jnp.asarray(test_labels, jnp.int32)
    split_key, select_key, final_key = jax.random.split(jax.random.key(seed), 3)
    fit = functools.partial(
        _fit_softmax,
        learning_rate=jnp.float32(learning_rate),
        num_classes=num_classes,
        epochs=epochs,
        batch_size=batch_size,
    )

    (x_val, y_val), (x_fit, y_fit) = _holdout(x_train, y_train, split_key, n_val=n_val)
    candidates = fit(x_fit, y_fit, jnp.asarray(l2_grid, jnp.float32), select_key)
    val_top1 = np.asarray(_top1_per_model(candidates, x_val, y_val))
    # Among equally good values, the strongest penalty: the simplest probe that validates as well.
    best = max(range(len(l2_grid)), key=lambda i: (val_top1[i], l2_grid[i]))
    l2 = float(l2_grid[best])

    final = fit(x_train, y_train, jnp.asarray([l2], jnp.float32), final_key)
    return {
        "top1": float(_top1_per_model(final, x_test, y_test)[0]),
        "l2": l2,
        "val_top1": float(val_top1[best]),
        "train_top1": float(_top1_per_model(final, x_train, y_train)[0]),
    }


# ----------------------------------------------------------------------------------------------------
# Feature extraction
# ----------------------------------------------------------------------------------------------------


def _process_local_rows(x: jax.Array) -> np.ndarray:
    """The rows of a (possibly multi-host) row-sharded array that live on this process, in order."""
    if x.is_fully_addressable:
        return np.asarray(x)
    shards = {s.index[0].start or 0: s for s in x.addressable_shards}  # replicas share a start
    return np.concatenate([np.asarray(shards[start].data) for start in sorted(shards)])


def extract_features(
    apply_fn: Callable[[Any, jax.Array], jax.Array],
    variables: Any,
    batches: Iterable[Mapping[str, Any]],
    *,
    mesh: Mesh | None = None,
    input_key: str = "image",
) -> tuple[np.ndarray, np.ndarray]:
    """Runs the jitted `apply_fn(variables, inputs) -> [b, D]` over `batches`.

    Each batch is a dict with `input_key` (uint8 images, or tokens), "label" and optionally a boolean "mask" whose False rows are
    padding and are dropped. With a `mesh`, each batch is split over its data axis and `variables`
    are replicated. Returns this process's (features [N, D], labels [N]) as host arrays, in order.
    """
    apply = jax.jit(apply_fn)
    if mesh is not None:
        variables = parallel.replicate(variables, mesh)
    features: list[np.ndarray] = []
    labels: list[np.ndarray] = []

    def collect(out, batch_labels, mask):
        rows = _process_local_rows(out)
        if mask is not None:
            rows, batch_labels = rows[mask], batch_labels[mask]
        features.append(rows)
        labels.append(batch_labels)

    pending = None
    for batch in batches:
        images = batch[input_key]
        if mesh is not None:
            parallel.check_batch_size(images.shape[0] * jax.process_count(), mesh)
            images = parallel.shard_batch(images, mesh)
        out = apply(variables, images)
        # Dispatch is asynchronous: fetch the previous batch while the device computes this one.
        if pending is not None:
            collect(*pending)
        mask = batch.get("mask")
        pending = (
            out,
            np.asarray(batch["label"]),
            None if mask is None else np.asarray(mask, bool),
        )
    if pending is None:
        raise ValueError("extract_features got no batches.")
    collect(*pending)
    return np.concatenate(features), np.concatenate(labels)
