"""Tests for ssl_jax.transfer.probes: kNN and accuracy against NumPy references, linear-probe selection,
feature extraction with and without a data-parallel mesh."""

import jax.numpy as jnp
import numpy as np
import pytest

from ssl_jax import parallel
from ssl_jax.transfer import probes as evaluate

# ----------------------------------------------------------------------------------------------------
# References written from the definitions, in float64 with plain loops.
# ----------------------------------------------------------------------------------------------------


def knn_scores_reference(train, train_labels, query, num_classes, k, temperature):
    train = np.asarray(train, np.float64)
    query = np.asarray(query, np.float64)
    scores = np.zeros((len(query), num_classes))
    for q, row in enumerate(query):
        sims = train @ row / (np.linalg.norm(train, axis=1) * np.linalg.norm(row))
        for j in np.argsort(-sims)[:k]:
            scores[q, train_labels[j]] += np.exp(sims[j] / temperature)
    return scores


def accuracy_reference(logits, labels, k):
    hits = [
        label in np.argsort(-row, kind="stable")[:k]
        for row, label in zip(logits, labels, strict=True)
    ]
    return np.mean(hits)


def gaussian_clusters(rng, n, dim, num_classes, separation, class_probs=None):
    labels = rng.choice(num_classes, size=n, p=class_probs).astype(np.int32)
    means = rng.normal(size=(num_classes, dim)) * separation
    return (means[labels] + rng.normal(size=(n, dim))).astype(np.float32), labels


# ----------------------------------------------------------------------------------------------------
# accuracy
# ----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("k", [1, 3, 10])
def test_accuracy_matches_numpy(k):
    rng = np.random.default_rng(0)
    logits = rng.normal(size=(50, 10)).astype(np.float32)
    labels = rng.integers(0, 10, size=50).astype(np.int32)
    got = evaluate.accuracy(logits, labels, k=k)
    np.testing.assert_allclose(got, accuracy_reference(logits, labels, k), rtol=1e-6)
    if k == 10:
        assert float(got) == 1.0


def test_accuracy_rejects_k_above_num_classes():
    with pytest.raises(ValueError, match="k=4"):
        evaluate.accuracy(np.zeros((2, 3), np.float32), np.zeros(2, np.int32), k=4)


# ----------------------------------------------------------------------------------------------------
# kNN
# ----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "dtype,bank_chunk_size", [(np.float32, 65536), (jnp.bfloat16, 65536), (np.float32, 64)]
)
def test_knn_predict_matches_reference(dtype, bank_chunk_size):
    rng = np.random.default_rng(1)
    # Scaled rows check that the features really are normalised; 37 queries in chunks of 8 leave a
    # padded last chunk, and 300 training rows in chunks of 64 a last chunk that overlaps the one
    # before. Continuous random features make ties in the top k vanishingly unlikely.
    train = (rng.normal(size=(300, 16)) * rng.uniform(0.5, 3, size=(300, 1))).astype(dtype)
    query = rng.normal(size=(37, 16)).astype(dtype)
    train_labels = rng.integers(0, 7, size=300).astype(np.int32)
    scores = evaluate.knn_predict(
        train,
        train_labels,
        query,
        num_classes=7,
        k=5,
        temperature=0.1,
        chunk_size=8,
        bank_chunk_size=bank_chunk_size,
    )
    assert scores.shape == (37, 7) and scores.dtype == jnp.float32
    # bf16 inputs are compared on their bf16 values: the products are exact, only the sums round.
    expected = knn_scores_reference(
        np.asarray(train, np.float32), train_labels, np.asarray(query, np.float32), 7, 5, 0.1
    )
    np.testing.assert_allclose(scores, expected, rtol=2e-5)


def test_knn_bank_chunks_break_ties_as_one_top_k():
    # Each training row appears twice, 50 rows apart and with different labels: with k=1 only the
    # earlier copy may vote, wherever the bank's chunk boundaries fall (chunks of 7 over 100 rows
    # put the copies in different chunks and slide the last chunk back over rows already seen).
    rng = np.random.default_rng(4)
    base = rng.normal(size=(50, 8)).astype(np.float32)
    train = np.concatenate([base, base])
    labels = np.concatenate([np.zeros(50, np.int32), np.ones(50, np.int32)])
    kwargs = dict(num_classes=2, k=1, temperature=0.1, chunk_size=16)
    for bank_chunk_size in (7, 50, 100):
        scores = evaluate.knn_predict(
            train, labels, base, bank_chunk_size=bank_chunk_size, **kwargs
        )
        assert np.all(np.argmax(np.asarray(scores), axis=1) == 0), bank_chunk_size


def test_knn_predict_compiles_once_per_shape():
    rng = np.random.default_rng(2)
    kwargs = dict(num_classes=3, k=4, chunk_size=16)
    before = evaluate._knn_scores._cache_size()
    for seed_temperature in (0.05, 0.2):
        train = rng.normal(size=(64, 8)).astype(np.float32)
        labels = rng.integers(0, 3, size=64).astype(np.int32)
        query = rng.normal(size=(40, 8)).astype(np.float32)
        evaluate.knn_predict(train, labels, query, temperature=seed_temperature, **kwargs)
    assert evaluate._knn_scores._cache_size() == before + 1


def test_knn_accuracy_clustered_data_is_perfect_random_labels_are_chance():
    rng = np.random.default_rng(3)
    x, y = gaussian_clusters(rng, 3000, 32, 10, separation=2.0)
    result = evaluate.knn_accuracy(x[:2000], y[:2000], x[2000:], y[2000:], num_classes=10)
    assert result["top1"] > 0.98 and result["top5"] > 0.99, result

    random_labels = rng.integers(0, 10, size=3000).astype(np.int32)
    x = rng.normal(size=(3000, 32)).astype(np.float32)
    result = evaluate.knn_accuracy(
        x[:2000], random_labels[:2000], x[2000:], random_labels[2000:], num_classes=10
    )
    # Chance is 0.1 / 0.5; 1000 queries put +-5 sigma at about +-0.05.
    assert 0.05 < result["top1"] < 0.15, result
    assert 0.42 < result["top5"] < 0.58, result


def test_knn_rejects_bad_inputs():
    x = np.zeros((4, 2), np.float32)
    with pytest.raises(ValueError, match="k=5"):
        evaluate.knn_predict(x, np.zeros(4, np.int32), x, num_classes=2, k=5)
    with pytest.raises(ValueError, match="labels must lie"):
        evaluate.knn_predict(x, np.full(4, 2, np.int32), x, num_classes=2, k=1)


# ----------------------------------------------------------------------------------------------------
# Linear probe. All cases share shapes (240 train rows, 200 test, 64 dims, 4 classes) so the training
# programs compile once for the whole file. Labels are imbalanced (55% class 0): a heavily penalised
# probe collapses to the majority class, which is the best one can do on noise and a poor answer on
# informative features, so the validation choice has to move with the data.
# ----------------------------------------------------------------------------------------------------

PROBE_KWARGS = dict(
    num_classes=4,
    l2_grid=(0.0, 1e-3, 1e-1, 10.0),
    val_fraction=0.5,
    epochs=50,
    batch_size=32,
    learning_rate=0.05,
)
CLASS_PROBS = (0.55, 0.15, 0.15, 0.15)


def probe_data(seed, informative):
    rng = np.random.default_rng(seed)
    x, y = gaussian_clusters(rng, 440, 64, 4, separation=0.6, class_probs=CLASS_PROBS)
    if not informative:
        x = rng.normal(size=x.shape).astype(np.float32)
    return x[:240], y[:240], x[240:], y[240:]


def test_linear_probe_separates_clusters_and_picks_l2_on_validation():
    clean = evaluate.linear_probe(*probe_data(0, informative=True), **PROBE_KWARGS, seed=0)
    noise = evaluate.linear_probe(*probe_data(0, informative=False), **PROBE_KWARGS, seed=0)
    assert clean["top1"] > 0.95 and clean["train_top1"] > 0.95, clean
    # On noise with 120 fitting rows in 64 dims the unpenalised probe memorises; only a large
    # penalty gets the majority-class accuracy on held-out rows.
    assert noise["l2"] > clean["l2"], (clean, noise)
    assert noise["l2"] == max(PROBE_KWARGS["l2_grid"]), noise
    assert set(clean) == {"top1", "l2", "val_top1", "train_top1"}


def test_linear_probe_ignores_test_labels_and_is_deterministic():
    x_train, y_train, x_test, y_test = probe_data(1, informative=True)
    result = evaluate.linear_probe(x_train, y_train, x_test, y_test, **PROBE_KWARGS, seed=3)
    again = evaluate.linear_probe(x_train, y_train, x_test, y_test, **PROBE_KWARGS, seed=3)
    assert result == again

    shuffled = np.random.default_rng(0).permutation(y_test)
    permuted = evaluate.linear_probe(x_train, y_train, x_test, shuffled, **PROBE_KWARGS, seed=3)
    assert {k: permuted[k] for k in ("l2", "val_top1", "train_top1")} == {
        k: result[k] for k in ("l2", "val_top1", "train_top1")
    }
    # The test labels are used, for the test accuracy alone.
    assert permuted["top1"] < 0.7 < result["top1"], (result, permuted)


def test_linear_probe_accepts_bf16_and_rejects_empty_validation():
    x_train, y_train, x_test, y_test = probe_data(2, informative=True)
    bf16 = evaluate.linear_probe(
        x_train.astype(jnp.bfloat16),
        y_train,
        x_test.astype(jnp.bfloat16),
        y_test,
        **PROBE_KWARGS,
        seed=0,
    )
    assert bf16["top1"] > 0.95, bf16
    with pytest.raises(ValueError, match="val_fraction"):
        evaluate.linear_probe(
            x_train, y_train, x_test, y_test, **{**PROBE_KWARGS, "val_fraction": 0.001}
        )


# ----------------------------------------------------------------------------------------------------
# Feature extraction
# ----------------------------------------------------------------------------------------------------


def encoder_apply(variables, images):
    x = images.reshape(images.shape[0], -1).astype(jnp.float32) / 255.0
    return jnp.tanh(x @ variables["w"] + variables["b"])


def image_batches(rng):
    """Three batches of 16; the last is half padding, the second has no mask at all."""
    batches = []
    for i in range(3):
        batch = {
            "image": rng.integers(0, 256, size=(16, 4, 4, 3), dtype=np.uint8),
            "label": rng.integers(0, 10, size=16).astype(np.int32),
        }
        if i != 1:
            batch["mask"] = np.arange(16) < (8 if i == 2 else 16)
        batches.append(batch)
    return batches


@pytest.fixture
def encoder_and_batches():
    rng = np.random.default_rng(4)
    variables = {
        "w": jnp.asarray(rng.normal(size=(48, 8)), jnp.float32),
        "b": jnp.asarray(rng.normal(size=8), jnp.float32),
    }
    return variables, image_batches(rng)


def test_extract_features_drops_padding_and_matches_direct_apply(encoder_and_batches):
    variables, batches = encoder_and_batches
    features, labels = evaluate.extract_features(encoder_apply, variables, iter(batches))
    images = np.concatenate([b["image"] for b in batches])[:40]
    expected_labels = np.concatenate([b["label"] for b in batches])[:40]
    assert features.shape == (40, 8) and isinstance(features, np.ndarray)
    np.testing.assert_array_equal(labels, expected_labels)
    np.testing.assert_allclose(features, encoder_apply(variables, images), rtol=1e-5, atol=1e-6)


def test_extract_features_on_mesh_matches_single_device(encoder_and_batches, n_devices):
    variables, batches = encoder_and_batches
    mesh = parallel.make_mesh()
    single = evaluate.extract_features(encoder_apply, variables, batches)
    sharded = evaluate.extract_features(encoder_apply, variables, batches, mesh=mesh)
    np.testing.assert_allclose(sharded[0], single[0], rtol=1e-5, atol=1e-5)
    np.testing.assert_array_equal(sharded[1], single[1])

    uneven = [{"image": batches[0]["image"][:12], "label": batches[0]["label"][:12]}]
    with pytest.raises(ValueError, match="multiple of the number of devices"):
        evaluate.extract_features(encoder_apply, variables, uneven, mesh=mesh)
