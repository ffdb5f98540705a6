"""word2vec: sgns_loss against a NumPy reference written from the paper (value and gradient), the
skip-gram source (tokens, vocabulary, windows, splits), the unigram^0.75 noise, subsampling and dynamic
window drawn on device checked statistically, the evaluation protocols on constructed embeddings, and
one CLI run (pretrain + evaluate) on a tiny corpus. sgns_loss has no in-batch negatives, so it needs no
1-vs-8-device test: its negatives are drawn per example, keyed by the example id."""

import json
import math
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from ssl_jax import cli, data
from ssl_jax.data import skipgram
from ssl_jax.losses import sgns_loss
from ssl_jax.method_inputs import build_method
from ssl_jax.methods import get_method
from ssl_jax.transfer.word2vec import nearest_neighbours, word_similarity

import engine_checks

SMOKE = "word2vec_austen.py:smoke"

# ---------------------------------------------------------------- sgns_loss


def sgns_reference(v: np.ndarray, u: np.ndarray, negatives: np.ndarray) -> np.ndarray:
    """Mikolov et al. 2013b, eq. 4, negated, with explicit loops:
    -log sigma(u_o . v_c) - sum_i log sigma(-u_{n_i} . v_c), sigma(x) = 1 / (1 + e^-x)."""

    def log_sigmoid(x):
        return -math.log1p(math.exp(-x)) if x >= 0 else x - math.log1p(math.exp(x))

    out = []
    for b in range(len(v)):
        loss = -log_sigmoid(float(np.dot(u[b], v[b])))
        for neg in negatives[b]:
            loss -= log_sigmoid(-float(np.dot(neg, v[b])))
        out.append(loss)
    return np.array(out)


def _sgns_inputs(n=7, m=3, d=5, seed=0, scale=1.0):
    rng = np.random.default_rng(seed)
    v = (scale * rng.normal(size=(n, d))).astype(np.float32)
    u = (scale * rng.normal(size=(n, d))).astype(np.float32)
    neg = (scale * rng.normal(size=(n, m, d))).astype(np.float32)
    return v, u, neg


@pytest.mark.parametrize(
    "scale", [0.3, 1.0, 6.0]
)  # 6.0: scores of +-100, where naive logs overflow
def test_sgns_loss_matches_numpy_reference(scale):
    v, u, neg = _sgns_inputs(scale=scale)
    got = jax.jit(sgns_loss)(v, u, neg)
    assert got.shape == (7,) and got.dtype == jnp.float32 and np.all(np.isfinite(got))
    np.testing.assert_allclose(got, sgns_reference(v, u, neg), rtol=1e-5, atol=1e-5)


def test_sgns_loss_gradient_and_bf16():
    v, u, neg = _sgns_inputs(seed=1)
    # d/dv = -(1 - sigma(u.v)) u + sum_i sigma(n_i.v) n_i, in float64.
    sig = lambda x: 1.0 / (1.0 + np.exp(-x))  # noqa: E731
    v64, u64, n64 = (a.astype(np.float64) for a in (v, u, neg))
    s_pos = np.sum(u64 * v64, axis=1, keepdims=True)
    s_neg = np.einsum("bd,bmd->bm", v64, n64)
    want = -(1 - sig(s_pos)) * u64 + np.einsum("bm,bmd->bd", sig(s_neg), n64)
    got = jax.jit(jax.grad(lambda a: sgns_loss(a, u, neg).sum()))(v)
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
    bf16 = sgns_loss(*(jnp.asarray(a, jnp.bfloat16) for a in (v, u, neg)))
    assert bf16.dtype == jnp.float32
    np.testing.assert_allclose(bf16, sgns_reference(v, u, neg), rtol=3e-2, atol=3e-2)


def test_sgns_loss_rejects_bad_inputs():
    v, u, neg = _sgns_inputs()
    with pytest.raises(TypeError, match="floating"):
        sgns_loss(v.astype(np.int32), u, neg)
    with pytest.raises(ValueError, match="same shape"):
        sgns_loss(v, u[:-1], neg)
    with pytest.raises(ValueError, match=r"\[batch, m, dim\]"):
        sgns_loss(v, u, neg[:, 0])
    with pytest.raises(ValueError, match=r"\[batch, m, dim\]"):
        sgns_loss(v, u, neg[:-1])


# ---------------------------------------------------------------- data


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    """Two small documents with a skewed word distribution (so subsampling has frequent words)."""
    root = tmp_path_factory.mktemp("corpus")
    rng = np.random.default_rng(0)
    words = np.array(["the", "mother", "father", "sister", "brother", "said", "happy", "glad"])
    weights = np.array([40, 8, 8, 6, 6, 4, 2, 2], np.float64)
    for i in range(2):
        text = " ".join(rng.choice(words, size=1500, p=weights / weights.sum()))
        (root / f"doc{i}.txt").write_text(text.capitalize() + ", don't stop.\n")
    (root / "notes.md").write_text("not a .txt file: ignored")
    return str(root)


def test_tokenize():
    text = "\u201cMy dear Mr. Bennet,\u201d said his lady; Elizabeth\u2019s 3 sisters don't."
    assert skipgram.tokenize(text) == [
        "my", "dear", "mr", "bennet", "said", "his", "lady", "elizabeth's", "sisters", "don't"
    ]  # fmt: skip


def test_source_rows_windows_and_splits(tmp_path):
    (tmp_path / "a.txt").write_text("x y x z x q y")  # q occurs once: out of the vocabulary
    (tmp_path / "b.txt").write_text("y y x z")
    train = skipgram.SkipGramSource(
        str(tmp_path), "train", window=2, min_count=2, test_fraction=0.25
    )
    # Train split: the first 75% of each file's words: a -> x y x z x (5 of 7), b -> y y x (3 of 4);
    # z leaves the streams, so a's rows are x y x x.
    assert train.vocab.words == ("x", "y") and list(train.counts) == [4, 3]  # z: once, dropped
    x, y = train.vocab.index["x"], train.vocab.index["y"]
    assert len(train) == sum(int(c) for c in train.counts)
    rows = train.get(np.arange(len(train)))
    # Windows never cross the document boundary (a's last word, b's first word).
    np.testing.assert_array_equal(rows["center"][:2], [x, y])
    np.testing.assert_array_equal(rows["context"][0], [-1, -1, y, x])
    first_b = len(train) - 3
    np.testing.assert_array_equal(rows["context"][first_b], [-1, -1, y, x])
    test = skipgram.SkipGramSource(str(tmp_path), "test", window=2, min_count=2, test_fraction=0.25)
    assert test.vocab is train.vocab  # built from the train split only, once
    # Test split: a -> "y" (q dropped: out of vocabulary), b -> "z" (not in the vocabulary either).
    np.testing.assert_array_equal(test.get(np.arange(len(test)))["center"], [y])


def test_vocabulary_min_count_and_order(corpus):
    vocab = skipgram.SkipGramSource(corpus, "train", min_count=3).vocab
    assert vocab.words[0] == "the" and "don't" not in vocab  # twice in the corpus: below min_count
    assert np.all(np.diff(vocab.counts) <= 0)
    with pytest.raises(FileNotFoundError, match="data_dir"):
        skipgram.SkipGramSource(os.path.join(corpus, "missing"), "train")


def test_keep_probabilities_and_noise_distribution():
    counts = np.array([900, 90, 9, 1])
    f = counts / counts.sum()
    t = 1e-2
    expected = [min(1.0, math.sqrt(t / fi) + t / fi) for fi in f]
    np.testing.assert_allclose(skipgram.keep_probabilities(counts, t), expected, rtol=1e-12)
    np.testing.assert_array_equal(skipgram.keep_probabilities(counts, 0.0), 1.0)
    noise = skipgram.noise_distribution(counts)
    np.testing.assert_allclose(noise, counts**0.75 / np.sum(counts**0.75), rtol=1e-12)


def test_on_device_sampling_rates(corpus):
    """Negatives follow unigram^0.75, centers and contexts are kept at sqrt(t/f) + t/f, and a pair at
    distance d survives the dynamic window with probability (window - d + 1) / window."""
    config = engine_checks.load(SMOKE, f"data.data_dir={corpus}", "word2vec.subsample=0.05")
    method = build_method(config)
    variables = method.init(jax.random.PRNGKey(0), ())
    extra = variables.extra
    vocab, w = method.vocab, method.window
    counts = vocab.counts
    center = vocab.index["the"]  # the most frequent word: kept with probability < 1
    context = jnp.full((2 * w,), vocab.index["glad"])  # rare: always kept
    rows = 4000
    keys = jax.random.split(jax.random.PRNGKey(1), rows)
    masks, negatives = jax.jit(jax.vmap(lambda k: method.sample(extra, center, context, k)))(keys)
    masks, negatives = np.asarray(masks), np.asarray(negatives)
    assert negatives.shape == (rows, 2 * w, config.word2vec.num_negatives)

    noise = counts**0.75 / np.sum(counts**0.75)
    freq = np.bincount(negatives.ravel(), minlength=len(counts)) / negatives.size
    sigma = np.sqrt(noise * (1 - noise) / negatives.size)
    assert np.all(np.abs(freq - noise) < 5 * sigma + 1e-4), (freq, noise)
    assert np.abs(freq - counts / counts.sum()).max() > 20 * sigma.max()  # not the raw unigram

    keep = skipgram.keep_probabilities(counts, 0.05)
    assert keep[center] < 0.9 and keep[vocab.index["glad"]] == 1.0
    center_kept = masks.any(axis=1)  # every pair is kept at distance 1 when the center is
    assert masks[:, [w - 1, w]].all(axis=1).sum() == center_kept.sum()
    np.testing.assert_allclose(center_kept.mean(), keep[center], atol=4 * math.sqrt(0.25 / rows))
    distance = np.concatenate([np.arange(w, 0, -1), np.arange(1, w + 1)])
    for d in range(1, w + 1):
        rate = masks[center_kept][:, distance == d].mean()
        np.testing.assert_allclose(rate, (w - d + 1) / w, atol=4 * math.sqrt(0.25 / rows))


def test_the_vocabulary_is_a_data_input(corpus):
    """The method reads no corpus: built without its data inputs it fails naming the missing one, and
    `bind` takes exactly the inputs it names; build_method gives them, and refuses another source."""
    config = engine_checks.load(SMOKE, f"data.data_dir={corpus}")
    bare = get_method(config)
    assert bare.data_inputs() == ("vocab", "window")
    with pytest.raises(ValueError, match="'vocab' from the data.*build_method"):
        bare.init(jax.random.PRNGKey(0), ())
    with pytest.raises(ValueError, match="needs the data inputs"):
        bare.bind({"vocab": None})
    assert build_method(config).vocab is data.get_source(config.data, "train").vocab
    with pytest.raises(ValueError, match="skip-gram source"):
        build_method(engine_checks.load(SMOKE, "data.name=skimage_samples"))


# ---------------------------------------------------------------- evaluation protocols


class _Vocab:
    def __init__(self, words):
        self.words = tuple(words)
        self.index = {word: i for i, word in enumerate(words)}

    def __contains__(self, word):
        return word in self.index


def test_similarity_check_and_neighbours_on_constructed_embeddings():
    rng = np.random.default_rng(0)
    words = [f"w{i}" for i in range(200)]
    vocab = _Vocab(words)
    pairs = tuple((f"w{i}", f"w{i + 100}") for i in range(0, 40, 4)) + (("w1", "absent"),)
    random = rng.normal(size=(200, 16))
    related = random.copy()
    for a, b in pairs[:-1]:
        related[vocab.index[b]] = related[vocab.index[a]] + 0.1 * rng.normal(size=16)
    good = word_similarity(related, vocab, pairs, num_controls=20)
    assert good["pair_accuracy"] == 1.0 and good["gap"] > 0.5
    assert good["pairs_used"] == 10 and good["pairs_missing"] == ["w1/absent"]
    chance = word_similarity(random, vocab, pairs, num_controls=20)
    assert 0.25 < chance["pair_accuracy"] < 0.75 and abs(chance["gap"]) < 0.3
    found = nearest_neighbours(related, vocab, ("w0", "nope"), k=3)
    assert found["neighbours"]["w0"][0][0] == "w100" and found["missing"] == ["nope"]
    assert len(found["neighbours"]["w0"]) == 3
    everything = nearest_neighbours(related, vocab, ("w0",), k=500)["neighbours"]["w0"]
    assert len(everything) == 199 and "w0" not in [word for word, _ in everything]


# ---------------------------------------------------------------- end to end


def test_cli_pretrains_and_evaluates(corpus, tmp_path):
    workdir = str(tmp_path / "run")
    code = engine_checks.run_smoke(
        SMOKE, workdir, f"--config.data.data_dir={corpus}", data_name=None
    )
    assert code == 0
    with open(os.path.join(workdir, "metrics.jsonl")) as f:
        records = [json.loads(line) for line in f if '"loss"' in line]
    assert len(records) == 3 and all(np.isfinite(r["loss"]) for r in records)
    assert all(0 < r["kept_pairs_per_row"] <= 4 for r in records)  # window 2: at most 4 pairs
    assert cli.main(["evaluate", "--workdir", workdir, "--protocol", "word_similarity"]) == 0
    with open(os.path.join(workdir, "eval.json")) as f:
        results = json.load(f)
    assert set(results["nearest_neighbours"]["neighbours"]) == {"sister", "mother", "happy", "said"}
    assert (
        results["word_similarity"]["pairs_used"] == 3
    )  # mother/father, brother/sister, happy/glad
    assert 0.0 <= results["word_similarity"]["pair_accuracy"] <= 1.0
