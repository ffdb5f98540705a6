"""The text pipeline and the GPT / BERT methods: tokenizers (byte round trip, BPE against a naive
reference trainer), packing and leak-free splits, tfds record conversion, BERT masking rates and
padding, the language-model losses against NumPy references, Transformer shapes and causality, one CLI
run per method, and every text config initializing."""

import collections
import json
import os

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from ssl_jax import augment, cli, parallel, reporting, train
from ssl_jax.data import get_source
from ssl_jax.data import text as text_data
from ssl_jax.data import tokenizer as tok
from ssl_jax.losses import causal_lm_loss, masked_lm_loss, seq2seq_loss
from ssl_jax.methods import get_method
from ssl_jax.models.transformer import CausalDecoder, EncoderDecoder, TransformerEncoder
from ssl_jax.transfer import evaluate

import engine_checks

SAMPLE = (
    "It is a truth universally acknowledged, that a single man in possession of a good fortune, "
    "must be in want of a wife.\n\nHowever little known the feelings or views of such a man may be "
    "on his first entering a neighbourhood, this truth is so well fixed in the minds of the "
    "surrounding families, that he is considered the rightful property of some one or other of "
    "their daughters.\n\n"
)

# ---------------------------------------------------------------- tokenizers


def test_byte_tokenizer_round_trips_any_text():
    t = tok.ByteTokenizer()
    text = "Émile's café costs 3€ — 日本語 🙂\ttab\n"
    ids = t.encode(text)
    assert t.decode(ids) == text
    assert len(ids) == len(text.encode("utf-8")) and min(ids) >= tok.NUM_SPECIAL
    assert t.vocab_size == 261 and max(ids) < t.vocab_size
    assert (t.pad_id, t.bos_id, t.eos_id, t.mask_id, t.sep_id) == (0, 1, 2, 3, 4)
    assert t.decode([t.bos_id, *ids, t.eos_id, t.pad_id]) == text  # specials decode to nothing


def _reference_bpe(text: str, num_merges: int) -> list[tuple[int, int]]:
    """Sennrich et al. 2016's algorithm written plainly: recount every pair of every word occurrence
    after each merge, take the most frequent (ties: the smallest pair), merge it everywhere."""
    words = [
        [b + tok.BYTE_OFFSET for b in w.encode("utf-8")] for w in tok._PRETOKEN_RE.findall(text)
    ]
    merges = []
    for r in range(num_merges):
        counts = collections.Counter(p for w in words for p in zip(w, w[1:], strict=False))
        if not counts:
            break
        best_count = max(counts.values())
        if best_count < 2:
            break
        pair = min(p for p, c in counts.items() if c == best_count)
        new_id = tok.BYTE_OFFSET + 256 + r
        merges.append(pair)
        for i, w in enumerate(words):
            out, j = [], 0
            while j < len(w):
                if j + 1 < len(w) and (w[j], w[j + 1]) == pair:
                    out.append(new_id)
                    j += 2
                else:
                    out.append(w[j])
                    j += 1
            words[i] = out
    return merges


def test_bpe_matches_a_naive_reference_and_round_trips(tmp_path):
    bpe = tok.train_bpe([SAMPLE], 261 + 40)
    assert bpe.merges == _reference_bpe(SAMPLE, 40)
    assert bpe.vocab_size == 301
    ids = bpe.encode(SAMPLE)
    assert bpe.decode(ids) == SAMPLE
    assert len(ids) < 0.75 * len(SAMPLE.encode())  # the merges compress
    # Text the tokenizer never saw, characters outside its merges included, falls back to bytes.
    unseen = "Zoë's naïveté: 東京 → 🙂!"
    assert bpe.decode(bpe.encode(unseen)) == unseen
    assert b"".join(bpe.token_bytes(i) for i in ids) == SAMPLE.encode()
    assert max(len(bpe.token_bytes(i)) for i in ids) >= 4  # merges of merges
    path = str(tmp_path / "bpe.json")
    bpe.save(path)
    loaded = tok.load_tokenizer(path)
    assert loaded.merges == bpe.merges and loaded.encode(SAMPLE) == ids
    assert json.load(open(path))["kind"] == "bpe"
    # get_tokenizer trains once, then loads the saved file (no texts needed).
    path2 = str(tmp_path / "cached.json")
    first = tok.get_tokenizer("bpe", texts=[SAMPLE], vocab_size=280, path=path2)
    again = tok.get_tokenizer("bpe", vocab_size=280, path=path2)
    assert first.merges == again.merges and os.path.isfile(path2)
    with pytest.raises(ValueError, match="at least"):
        tok.train_bpe([SAMPLE], 100)
    with pytest.raises(ValueError, match="Unknown tokenizer"):
        tok.get_tokenizer("wordpiece")


# ---------------------------------------------------------------- packing and splits


def test_pack_pads_only_the_end_of_each_document():
    rows, owner = text_data.pack([[5, 6, 7, 8, 9], [], [10, 11]], seq_len=2, pad_id=0)
    np.testing.assert_array_equal(rows, [[5, 6], [7, 8], [9, 0], [10, 11]])
    np.testing.assert_array_equal(owner, [0, 0, 0, 2])
    assert rows.dtype == np.int32


def _corpus(directory, n_files=3, paragraphs=60):
    rng = np.random.default_rng(0)
    words = SAMPLE.split()
    os.makedirs(directory, exist_ok=True)
    texts = {}
    for f in range(n_files):
        paras = [
            f"Para {f}.{p}: " + " ".join(rng.choice(words, 12 + f)) + "." for p in range(paragraphs)
        ]
        texts[f"book{f}"] = "\n\n".join(paras) + "\n"
        with open(os.path.join(directory, f"book{f}.txt"), "w") as fh:
            fh.write(texts[f"book{f}"])
    return texts


def test_splits_are_contiguous_disjoint_blocks(tmp_path):
    texts = _corpus(str(tmp_path / "c"))
    text = texts["book0"]
    blocks = text_data.split_blocks(text, 20)
    assert "".join(blocks) == text and len(blocks) == 20
    assert all(b.startswith("Para") for b in blocks)  # cut at paragraph breaks
    docs = text_data.file_split_documents(text, 20)
    assert "".join(docs["train"] + docs["validation"] + docs["test"]) != text  # interleaved
    assert len(docs["validation"]) == len(docs["test"]) == 2 and len(docs["train"]) == 2
    assert sorted("".join(d for s in docs.values() for d in s)) == sorted(text)
    for split in ("validation", "test"):
        assert 0.05 < sum(map(len, docs[split])) / len(text) < 0.15


def test_text_source_rows_labels_and_no_leak(tmp_path):
    texts = _corpus(str(tmp_path / "c"))
    cfg = {
        "name": "text_files",
        "data_dir": str(tmp_path / "c"),
        "seq_len": 16,
        "tokenizer": "bpe",
        "vocab_size": 320,
        "tokenizer_path": str(tmp_path / "tok.json"),
    }
    sources = {s: get_source(cfg, s) for s in ("train", "validation", "test")}
    train = sources["train"]
    assert train.class_names == ("book0", "book1", "book2") and train.num_classes == 3
    assert os.path.isfile(cfg["tokenizer_path"]) and train.vocab_size <= 320
    # The tokenizer saw the train split only: it is the BPE of the train documents.
    train_docs = [d for t in texts.values() for d in text_data.file_split_documents(t, 20)["train"]]
    assert train.tokenizer.merges == tok.train_bpe(train_docs, 320).merges
    batch = train.get(np.arange(len(train)))
    assert batch["tokens"].shape == (len(train), 16) and batch["tokens"].dtype == np.int32
    # Padding is trailing: once a row has a pad, the rest of it is pad.
    pads = batch["tokens"] == tok.PAD_ID
    assert np.all(np.diff(pads.astype(int), axis=1) >= 0)
    seen = {s: set() for s in sources}
    for split, source in sources.items():
        rows = source.get(np.arange(len(source)))
        for tokens, label in zip(rows["tokens"], rows["label"], strict=True):
            passage = source.tokenizer.decode(tokens)
            assert passage in texts[f"book{label}"]  # the label is the passage's book
            seen[split].add(passage)
    assert not (seen["train"] & seen["test"]) and not (seen["train"] & seen["validation"])
    with pytest.raises(ValueError, match="split"):
        get_source(cfg, "dev")


def test_records_become_a_text_source_with_the_train_tokenizer():
    class LabelFeature:
        names = ("neg", "pos")
        num_classes = 2

    records = {
        "train": [{"text": SAMPLE.encode(), "label": 1}, {"text": "short one", "label": 0}],
        "test": [{"text": np.array(b"a test review", dtype=object), "label": 0}],
    }
    source = text_data.text_source_from_tfds(
        records,
        "test",
        text_key="text",
        label_key="label",
        seq_len=8,
        tokenizer="byte",
        vocab_size=261,
        tokenizer_path=None,
        label_feature=LabelFeature(),
        name="fake_reviews",
    )
    assert source.class_names == ("neg", "pos") and len(source) == 2
    out = source.get(np.arange(2))
    assert source.tokenizer.decode(out["tokens"].reshape(-1)) == "a test review"
    np.testing.assert_array_equal(out["label"], [0, 0])
    with pytest.raises(ValueError, match="text_key"):
        text_data.record_texts([{"review": "x"}], "text")


# ---------------------------------------------------------------- BERT masking


def test_bert_mask_rates_specials_and_per_example_keys():
    rng = np.random.default_rng(0)
    b, length, vocab = 64, 100, 300
    tokens = rng.integers(tok.NUM_SPECIAL, vocab, (b, length)).astype(np.int32)
    lengths = rng.integers(20, length + 1, b)
    tokens[np.arange(length)[None] >= lengths[:, None]] = tok.PAD_ID  # trailing padding
    tokens[:, 0] = tok.BOS_ID
    ids = np.arange(b, dtype=np.int32) + 1000
    kwargs = dict(vocab_size=vocab, mask_id=tok.MASK_ID, num_special=tok.NUM_SPECIAL)
    inputs, masked = jax.jit(lambda t, i: augment.bert_mask(jax.random.PRNGKey(0), t, i, **kwargs))(
        tokens, ids
    )
    inputs, masked = np.asarray(inputs), np.asarray(masked)
    special = tokens < tok.NUM_SPECIAL
    assert not masked[special].any()  # padding and BOS never chosen ...
    np.testing.assert_array_equal(inputs[special], tokens[special])  # ... nor changed
    np.testing.assert_array_equal(inputs[~masked], tokens[~masked])
    n_eligible = (~special).sum(1)
    np.testing.assert_array_equal(masked.sum(1), np.maximum(1, np.round(0.15 * n_eligible)))
    chosen = masked.sum()
    as_mask = (inputs[masked] == tok.MASK_ID).sum() / chosen
    kept = (inputs[masked] == tokens[masked]).sum() / chosen
    assert abs(as_mask - 0.8) < 0.04 and 0.05 < kept < 0.15  # 80% [MASK], ~10% kept (+1/vocab)
    replaced = masked & (inputs != tokens) & (inputs != tok.MASK_ID)
    assert 0.06 < replaced.sum() / chosen < 0.14 and inputs[replaced].min() >= tok.NUM_SPECIAL
    # Example i's masking depends on its id, not on its place in the batch.
    perm = rng.permutation(b)
    inputs2, masked2 = augment.bert_mask(jax.random.PRNGKey(0), tokens[perm], ids[perm], **kwargs)
    np.testing.assert_array_equal(np.asarray(masked2), masked[perm])
    np.testing.assert_array_equal(np.asarray(inputs2), inputs[perm])


# ---------------------------------------------------------------- losses


def _log_softmax_np(logits):
    x = logits.astype(np.float64)
    x = x - x.max(-1, keepdims=True)
    return x - np.log(np.exp(x).sum(-1, keepdims=True))


def _lm_case(seed=0, b=5, length=7, vocab=11):
    rng = np.random.default_rng(seed)
    logits = rng.normal(size=(b, length, vocab)).astype(np.float32) * 3
    tokens = rng.integers(1, vocab, (b, length)).astype(np.int32)
    tokens[1, 4:] = 0  # padding
    tokens[2, 1:] = 0  # nothing to predict after the first token
    return logits, tokens


def _mean_nll_reference(logits, targets, counted, smoothing=0.0):
    """Per example: the mean over counted positions of -sum_v q(v) log p(v), q the (smoothed) one-hot."""
    logp = _log_softmax_np(logits)
    out = []
    for i in range(len(targets)):
        terms = []
        for t in range(targets.shape[1]):
            if counted[i, t]:
                q = np.full(logits.shape[-1], smoothing / logits.shape[-1])
                q[targets[i, t]] += 1.0 - smoothing
                terms.append(-(q * logp[i, t]).sum())
        out.append(np.mean(terms) if terms else 0.0)
    return np.array(out)


def test_causal_lm_loss_matches_numpy():
    logits, tokens = _lm_case()
    got = jax.jit(causal_lm_loss)(logits, tokens)
    # Radford et al. 2018, eq. 1: log P(u_i | u_<i): position t's logits score token t + 1.
    expected = _mean_nll_reference(logits[:, :-1], tokens[:, 1:], tokens[:, 1:] != 0)
    assert got.shape == (5,) and got.dtype == jnp.float32
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6)
    assert float(got[2]) == 0.0
    bf16 = causal_lm_loss(jnp.asarray(logits, jnp.bfloat16), tokens)
    assert bf16.dtype == jnp.float32
    np.testing.assert_allclose(bf16, expected, rtol=3e-2, atol=3e-2)


def test_masked_lm_loss_matches_numpy():
    logits, tokens = _lm_case(seed=1)
    masked = np.random.default_rng(2).random(tokens.shape) < 0.3
    masked[0] = False  # an example with nothing masked contributes 0
    got = jax.jit(masked_lm_loss)(logits, tokens, masked)
    np.testing.assert_allclose(
        got, _mean_nll_reference(logits, tokens, masked), rtol=1e-5, atol=1e-6
    )
    with pytest.raises(TypeError, match="floating"):
        masked_lm_loss(tokens, tokens, masked)
    with pytest.raises(TypeError, match="integer"):
        masked_lm_loss(logits, tokens.astype(np.float32), masked)


@pytest.mark.parametrize("smoothing", [0.0, 0.1])
def test_seq2seq_loss_matches_numpy(smoothing):
    logits, tokens = _lm_case(seed=3)
    got = seq2seq_loss(logits, tokens, label_smoothing=smoothing)
    expected = _mean_nll_reference(logits, tokens, tokens != 0, smoothing)
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6)


# ---------------------------------------------------------------- models

TINY = dict(vocab_size=50, hidden_dim=16, num_layers=1, num_heads=2, mlp_dim=32, max_len=12)


def test_transformers_shapes_causality_and_padding():
    rng = np.random.default_rng(0)
    tokens = rng.integers(5, 50, (3, 10)).astype(np.int32)
    tokens[2, 6:] = 0
    later = tokens.copy()
    later[:, 7] = (later[:, 7] + 1 - 5) % 45 + 5  # change one token past position 6
    later[2, 6:] = 0
    results = {}
    for cls in (CausalDecoder, TransformerEncoder):
        model = cls(**TINY, dtype=jnp.bfloat16, dropout_rate=0.0)
        params = jax.jit(model.init, static_argnames="train")(
            jax.random.PRNGKey(0), tokens, train=False
        )
        assert all(x.dtype == jnp.float32 for x in jax.tree.leaves(params))
        run = jax.jit(lambda p, t, m=model: m.apply(p, t, method=cls.hidden_and_logits))  # noqa: B023
        (h1, l1), (h2, _) = run(params, tokens), run(params, later)
        assert h1.shape == (3, 10, 16) and h1.dtype == jnp.float32 and l1.shape == (3, 10, 50)
        results[cls] = np.abs(np.asarray(h1[:, :7] - h2[:, :7])).max()
        # Trailing padding is invisible: a row run alone at its true length gives the same states.
        short = run(params, tokens[2:, :6])[0]
        np.testing.assert_allclose(h1[2:, :6], short, atol=2e-2)
    assert results[CausalDecoder] == 0.0  # the future never reaches the past
    assert results[TransformerEncoder] > 1e-3  # bidirectional: it does


def test_encoder_decoder_shapes_and_decoder_causality():
    rng = np.random.default_rng(1)
    source = rng.integers(5, 50, (2, 9)).astype(np.int32)
    target = rng.integers(5, 50, (2, 6)).astype(np.int32)
    model = EncoderDecoder(**TINY, dropout_rate=0.0)
    params = jax.jit(model.init)(jax.random.PRNGKey(0), source, target)
    apply = jax.jit(model.apply)
    logits = apply(params, source, target)
    assert logits.shape == (2, 6, 50)
    changed = target.copy()
    changed[:, 4] = 7
    other = apply(params, source, changed)
    np.testing.assert_array_equal(logits[:, :4], other[:, :4])
    assert np.abs(np.asarray(logits[:, 4:] - other[:, 4:])).max() > 0


# ---------------------------------------------------------------- end to end


@pytest.fixture(scope="module")
def austen_excerpt(shared_data_dir, tmp_path_factory):
    """The first 12,000 characters of each of the six novels: real text, seconds to tokenize."""
    out = tmp_path_factory.mktemp("austen_excerpt")
    source = os.path.join(shared_data_dir, "austen")
    for name in sorted(os.listdir(source)):
        with open(os.path.join(source, name), encoding="utf-8") as f:
            (out / name).write_text(f.read(12_000), encoding="utf-8")
    return str(out)


@pytest.mark.parametrize("name, protocol", [("gpt", "perplexity"), ("bert", "masked_accuracy")])
def test_cli_smoke_and_evaluate(name, protocol, austen_excerpt, tmp_path, capsys):
    workdir = str(tmp_path / name)
    overrides = (
        f"--config.data.data_dir={austen_excerpt}",
        f"--config.data.tokenizer_path={tmp_path / 'tok.json'}",
    )
    assert (
        engine_checks.run_smoke(f"{name}_austen.py:smoke", workdir, *overrides, data_name=None) == 0
    )
    results = json.load(open(os.path.join(workdir, "eval.json")))
    records = [r for r in reporting.read_metrics(workdir) if "loss" in r]
    assert [r["step"] for r in records] == [1, 2, 3] and all(
        np.isfinite(r["loss"]) for r in records
    )
    vocab = 300
    # An untrained model's loss is about log(vocab); three steps do not move it far.
    assert abs(records[0]["loss"] - np.log(vocab)) < 1.0
    if name == "gpt":
        assert 1.0 < results["perplexity"]["perplexity"] < 2 * vocab
        assert (
            results["perplexity"]["tokens"] > 0 and results["perplexity"]["split"] == "validation"
        )
    else:
        assert 0.0 <= results["masked_accuracy"]["masked_accuracy"] <= 1.0
        assert results["masked_accuracy"]["masked_tokens"] > 0
    assert 0.0 <= results["knn"]["top1"] <= 1.0
    assert (
        results["finetune"]["init"] == "pretrained"
        and results["finetune_scratch"]["init"] == "random"
    )
    assert all(0.0 <= results[p]["top1"] <= 1.0 for p in ("finetune", "finetune_scratch"))
    capsys.readouterr()
    assert cli.main(["evaluate", "--workdir", workdir, "--protocol", protocol]) == 0
    assert protocol in capsys.readouterr().out
    again = json.load(open(os.path.join(workdir, "eval.json")))[protocol]
    assert again == results[protocol]  # deterministic from the checkpoint


def test_text_models_fine_tune_through_the_one_engine(austen_excerpt, tmp_path):
    """A text method fine-tunes on the image engine (ssl_jax.transfer.finetune): a class-balanced
    label subset, the validation split scored beside the test split, from random init or given
    weights, and a pre-trained tree of another architecture refused naming its paths."""
    from ssl_jax.transfer import finetune

    config = engine_checks.load("bert_austen.py:smoke")
    config.data.data_dir = austen_excerpt
    config.data.tokenizer_path = str(tmp_path / "tok.json")
    method = get_method(config)
    mesh = parallel.make_mesh()
    result = finetune.finetune(
        config, method, None, label_fraction=0.5, mesh=mesh, random_init=True
    )
    assert result["init"] == "random" and result["label_fraction"] == 0.5
    assert result["steps"] == config.eval.finetune_steps
    assert 0.0 <= result["top1"] <= 1.0 and 0.0 <= result["validation_top1"] <= 1.0
    full = len(get_source(config.data, "train"))
    assert abs(result["train_examples"] - full / 2) <= config.data.num_classes
    encoder = method.export_encoder(
        train.create_train_state(method, optax.sgd(0.1), jax.random.key(0), (32,))
    )
    assert finetune.finetune(config, method, encoder, mesh=mesh)["init"] == "pretrained"
    wrong = {"params": {**encoder["params"], "extra_layer": {"kernel": jnp.zeros((2, 2))}}}
    with pytest.raises(ValueError, match="extra_layer"):
        finetune.finetune(config, method, wrong, mesh=mesh)


CONFIGS = [
    (f"{m}_austen.py{v}", seq)
    for m in ("gpt", "bert")
    for v, seq in (("", 64), (":smoke", 32), (":base", 1024 if m == "gpt" else 512))
]


@pytest.mark.parametrize("spec, seq_len", CONFIGS, ids=[c[0] for c in CONFIGS])
def test_every_config_initializes(spec, seq_len):
    config = engine_checks.load(spec)
    assert config.data.seq_len == seq_len
    method = get_method(config, num_steps=10, steps_per_epoch=5)
    variables = jax.eval_shape(lambda rng: method.init(rng, (seq_len,)), jax.random.PRNGKey(0))
    embedding = variables.params["model"]["embed"]["tokens"]["embedding"]
    assert embedding.shape == (config.data.vocab_size, config.model.hidden_dim)
    assert variables.params["model"]["embed"]["positions"].shape == (
        seq_len,
        config.model.hidden_dim,
    )
    if spec.endswith(":base"):
        assert (config.model.num_layers, config.model.hidden_dim) == (12, 768)
        assert config.model.dtype == "bfloat16"
    assert {"finetune", "finetune_scratch"} <= set(evaluate.available_protocols(method))
