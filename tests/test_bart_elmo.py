"""BART and ELMo: text infilling (exact rate, Poisson(3) spans, 0-length insertions, padding never noised,
kept tokens in order), sentence permutation (a permutation of whole sentences), ELMo's directions (forward
blind to the future, backward blind to the past), the bidirectional LM loss against a NumPy reference,
and one CLI run per method on the Austen corpus followed by `ssl-jax evaluate`."""

import json
import math
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from ssl_jax import cli
from ssl_jax.augment import bart_noise, sentence_end_table
from ssl_jax.augment.text import _span_lengths, poisson_cdf
from ssl_jax.data.tokenizer import ByteTokenizer
from ssl_jax.methods.bart import decoder_inputs
from ssl_jax.methods.elmo import bidirectional_lm_losses
from ssl_jax.models.lstm import BiLM

import engine_checks

MASK, PAD, END = 3, 0, 9  # END: the sentence-ending id of these tests' toy vocabulary


def _rows(batch=64, size=40, seed=0):
    rng = np.random.default_rng(seed)
    tokens = rng.integers(10, 60, (batch, size)).astype(np.int32)
    lengths = rng.integers(1, size + 1, batch)
    lengths[:4] = size, size, 1, 7
    for row, n in zip(tokens, lengths, strict=True):
        row[n:] = PAD
    return tokens, lengths


# ---------------------------------------------------------------- BART noising


def test_infilling_rate_order_and_padding():
    tokens, lengths = _rows()
    fn = jax.jit(lambda r, t, i: bart_noise(r, t, i, mask_id=MASK, mask_rate=0.3))
    out = fn(jax.random.key(0), tokens, jnp.arange(64))
    source, masked, spans = map(np.asarray, out)
    for row, src, m, k, n in zip(tokens, source, masked, spans, lengths, strict=True):
        removed = round(0.3 * n)
        assert m.sum() == removed and not m[n:].any()  # exact rate; padding never masked
        assert (src == MASK).sum() == k  # one [MASK] per span
        assert (removed == 0) == (k == 0)
        new_len = min(n - removed + k, len(row))
        assert np.all(src[new_len:] == PAD) and np.all(src[:new_len] != PAD)  # padding trailing
        if new_len == n - removed + k:  # not cut: the kept tokens, in order, are the unmasked ones
            np.testing.assert_array_equal(src[src != PAD][src[src != PAD] != MASK], row[:n][~m[:n]])
    # The same example is noised the same wherever it sits in the batch.
    again = fn(jax.random.key(0), tokens[::-1], jnp.arange(64)[::-1])
    np.testing.assert_array_equal(np.asarray(again.inputs)[::-1], source)


def test_poisson_span_lengths_and_zero_length_insertions():
    cdf = poisson_cdf(3.0)
    reference = np.cumsum([math.exp(-3.0) * 3.0**k / math.factorial(k) for k in range(len(cdf))])
    np.testing.assert_allclose(cdf, reference, rtol=1e-12)
    keys = jax.random.split(jax.random.key(1), 400)
    lengths, active = jax.vmap(lambda k: _span_lengths(k, 200, 256, 3.0))(keys)
    lengths, active = np.asarray(lengths), np.asarray(active)
    np.testing.assert_array_equal(lengths.sum(1), 200)  # the spans cover the count exactly
    last = active.sum(1) - 1
    full = np.concatenate([lengths[i, : last[i]] for i in range(400)])  # all but the cut last span
    assert full.size > 20_000
    np.testing.assert_allclose(full.mean(), 3.0, atol=0.05)  # Poisson: mean = variance = lambda
    np.testing.assert_allclose(full.var(), 3.0, atol=0.15)
    np.testing.assert_allclose((full == 0).mean(), math.exp(-3.0), atol=0.01)
    # With short spans many are empty: each still inserts a [MASK], so a row can have more masks than
    # masked runs (and than masked tokens).
    tokens = np.full((32, 40), 20, np.int32)
    out = bart_noise(jax.random.key(2), tokens, jnp.arange(32), mask_id=MASK, poisson_lambda=0.3)
    runs = np.sum(np.diff(np.asarray(out.masked).astype(int), axis=1) == 1, axis=1)
    assert np.any(np.asarray(out.num_spans) > runs + np.asarray(out.masked)[:, 0])


def _sentences(row):
    out, current = [], []
    for t in row[row != PAD]:
        current.append(int(t))
        if t == END:
            out.append(tuple(current))
            current = []
    return out + ([tuple(current)] if current else [])


def test_sentence_permutation_permutes_whole_sentences():
    tokens, lengths = _rows(seed=3)
    tokens[tokens % 6 == 0] = END  # sentences of a few tokens
    tokens[np.arange(40)[None, :] >= lengths[:, None]] = PAD
    ends = np.zeros(64, bool)
    ends[END] = True
    out = bart_noise(
        jax.random.key(4), tokens, jnp.arange(64), mask_id=MASK, mask_rate=0.0, sentence_ends=ends
    )
    shuffled, reordered = np.asarray(out.inputs), 0
    for row, new, n in zip(tokens, shuffled, lengths, strict=True):
        np.testing.assert_array_equal(new[n:], PAD)  # padding stays, trailing
        # Cut after each sentence end: the same sentences, in another order. (The last piece of a
        # row may lack an end token; it moves as a whole too.)
        pieces = _sentences(row[:n])
        joined = np.concatenate([np.asarray(p) for p in pieces])
        np.testing.assert_array_equal(joined, row[:n])
        assert sorted(_sentences_by(new[:n], pieces)) == sorted(pieces)
        reordered += not np.array_equal(new, row)
    assert reordered > 32  # most rows with several sentences change order
    assert not np.asarray(out.masked).any()


def _sentences_by(row, pieces):
    """Reads `row` as a concatenation of `pieces` (in some order), greedily; fails if it is not one."""
    remaining, out, i = list(pieces), [], 0
    while i < len(row):
        match = next(p for p in remaining if tuple(row[i : i + len(p)]) == p)
        remaining.remove(match)
        out.append(match)
        i += len(match)
    return out


def test_sentence_end_table_and_decoder_inputs():
    table = sentence_end_table(ByteTokenizer())
    ids = {c: ByteTokenizer().encode(c)[0] for c in ".!?a,"}
    assert table[ids["."]] and table[ids["!"]] and table[ids["?"]] and table[ByteTokenizer.sep_id]
    assert not table[ids["a"]] and not table[ids[","]] and not table[PAD]
    shifted = decoder_inputs(jnp.asarray([[7, 8, 9, 0]]))
    np.testing.assert_array_equal(shifted, [[ByteTokenizer.bos_id, 7, 8, 9]])


# ---------------------------------------------------------------- ELMo


def bilm_reference(forward, backward, tokens):
    """Peters et al. 2018, Sec. 3.1: sum over the row of log p(t_k | t_1..t_k-1) (forward) and of
    log p(t_k | t_k+1..t_N) (backward), negated and averaged per direction; float64 loops."""

    def nll(logits, target):
        z = logits.astype(np.float64)
        return np.log(np.sum(np.exp(z - z.max()))) + z.max() - z[target]

    out_f, out_b = [], []
    for f, b, row in zip(forward, backward, tokens, strict=True):
        n = int(np.sum(row != PAD))
        fw = [nll(f[k - 1], row[k]) for k in range(1, n)]
        bw = [nll(b[k + 1], row[k]) for k in range(n - 1)]
        out_f.append(np.mean(fw) if fw else 0.0)
        out_b.append(np.mean(bw) if bw else 0.0)
    return np.array(out_f), np.array(out_b)


def test_bidirectional_lm_loss_matches_numpy_reference():
    rng = np.random.default_rng(5)
    tokens, _ = _rows(batch=6, size=9, seed=5)
    forward = rng.normal(size=(6, 9, 13)).astype(np.float32)
    backward = rng.normal(size=(6, 9, 13)).astype(np.float32)
    tokens = tokens % 13
    tokens[tokens == PAD] = 1
    tokens[2, 1:] = PAD
    tokens[3, 5:] = PAD
    got_f, got_b = jax.jit(lambda f, b, t: bidirectional_lm_losses(f, b, t, pad_id=PAD))(
        forward, backward, tokens
    )
    ref_f, ref_b = bilm_reference(forward, backward, tokens)
    np.testing.assert_allclose(got_f, ref_f, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(got_b, ref_b, rtol=1e-5, atol=1e-6)


def test_elmo_directions_see_only_their_side_and_the_mix():
    model = BiLM(vocab_size=30, embed_dim=8, lstm_dim=12, num_layers=1, dropout_rate=0.0)
    tokens = np.array([[5, 6, 7, 8, 9, 10, 11, 12, 0, 0]] * 2, np.int32)
    tokens[1, 4] = 20  # row 1 differs from row 0 at position 4 only

    @jax.jit
    def run(tokens):
        variables = model.init(jax.random.key(0), tokens, method=BiLM.layers)
        both = lambda m, t: (m.layers(t), m.representation(t))  # noqa: E731
        return model.apply(variables, tokens, method=both)

    layers, rep = run(tokens)
    top = np.asarray(layers[-1])  # [f; b]: forward in the first 8 channels, backward in the last 8
    forward, backward = top[..., :8], top[..., 8:]
    np.testing.assert_array_equal(forward[1, :4], forward[0, :4])  # t < 4 never sees token 4
    assert not np.allclose(forward[1, 4:8], forward[0, 4:8])
    np.testing.assert_array_equal(backward[1, 5:8], backward[0, 5:8])  # t > 4 never sees it
    assert not np.allclose(backward[1, :5], backward[0, :5])
    np.testing.assert_array_equal(top[:, 8:], 0.0)  # padding carries nothing
    assert len(layers) == 2 and layers[0].shape == (2, 10, 16)
    # At initialization w = 0 and gamma = 1: the mix is the plain average of the layers.
    np.testing.assert_allclose(rep, np.mean(np.stack(layers), axis=0), rtol=1e-6, atol=1e-6)


# ---------------------------------------------------------------- end to end


@pytest.fixture(scope="module")
def tiny_corpus(tmp_path_factory, shared_data_dir):
    """Three 'novels' of ~6 kB each, cut from the Austen files: tokenizing the full corpus would cost
    more than the runs themselves."""
    out = tmp_path_factory.mktemp("corpus")
    names = sorted(os.listdir(os.path.join(shared_data_dir, "austen")))[:3]
    for name in names:
        with open(os.path.join(shared_data_dir, "austen", name), encoding="utf-8") as f:
            text = f.read()
        start = len(text) // 3
        (out / name).write_text(text[start : start + 6000], encoding="utf-8")
    return str(out)


@pytest.fixture(scope="module", params=["bart_austen.py:smoke", "elmo_austen.py:smoke"])
def smoke_run(request, tmp_path_factory, tiny_corpus):
    workdir = str(tmp_path_factory.mktemp("text2") / "run")
    headline = "masked_accuracy" if request.param.startswith("bart") else "perplexity"
    overrides = (
        f"--config.data.data_dir={tiny_corpus}",
        "--config.data.num_classes=3",
        f"--config.eval.protocols=('{headline}','finetune','finetune_scratch')",
    )
    assert engine_checks.run_smoke(request.param, workdir, *overrides, data_name=None) == 0
    return headline, workdir


def test_cli_pretrains_reports_and_evaluates(smoke_run):
    headline, workdir = smoke_run
    results = json.load(open(os.path.join(workdir, "eval.json")))
    value = results[headline][headline]
    assert (0.0 <= value <= 1.0) if headline == "masked_accuracy" else value > 1.0
    for protocol in ("finetune", "finetune_scratch"):
        assert 0.0 <= results[protocol]["top1"] <= 1.0
    assert results["finetune_scratch"]["init"] == "random"
    assert cli.main(["evaluate", "--workdir", workdir, "--protocol", headline]) == 0
    again = json.load(open(os.path.join(workdir, "eval.json")))[headline][headline]
    np.testing.assert_allclose(again, value, rtol=1e-5)  # the checkpoint restores the same model
