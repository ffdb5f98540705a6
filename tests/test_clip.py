"""CLIP: clip_loss against a NumPy reference written from the paper (values and gradients), 1-vs-8-device
equality of the loss, its gradients and a whole train step, the capped logit scale, captioned sources
(templates, determinism, tokens, tfds-style records), zero-shot classification against an independent
NumPy computation, and one CLI run (pretrain, then evaluate --protocol zero_shot) on the embedded data."""

import json
import math
import os

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest
from jax.sharding import PartitionSpec as P

from ssl_jax import checkpoint, cli, data, parallel, reporting
from ssl_jax.data import captions
from ssl_jax.data.tokenizer import ByteTokenizer
from ssl_jax.losses import capped_logit_scale, clip_loss
from ssl_jax.methods import common, get_method
from ssl_jax.methods.clip import CLIP_KEY, CLIPModel
from ssl_jax.models.clip_text import TextTransformer
from ssl_jax.models.transformer import CausalDecoder
from ssl_jax.transfer import zero_shot

import engine_checks

# ---------------------------------------------------------------- clip_loss


def clip_reference(images: np.ndarray, texts: np.ndarray, scale: float) -> np.ndarray:
    """Radford et al. 2021, Fig. 3, per example in float64 with explicit loops: the logits are the
    scaled cosine similarities; loss_i is the cross-entropy of image i over all texts (its own text is
    the label), loss_t that of text i over all images; the paper averages the two."""
    i_e = images.astype(np.float64) / np.linalg.norm(images, axis=1, keepdims=True)
    t_e = texts.astype(np.float64) / np.linalg.norm(texts, axis=1, keepdims=True)
    n = len(i_e)
    logits = np.array([[scale * float(i_e[a] @ t_e[b]) for b in range(n)] for a in range(n)])
    out = []
    for k in range(n):
        loss_i = -logits[k, k] + math.log(sum(math.exp(v) for v in logits[k, :]))
        loss_t = -logits[k, k] + math.log(sum(math.exp(v) for v in logits[:, k]))
        out.append((loss_i + loss_t) / 2)
    return np.array(out)


def _pairs(n=12, d=8, seed=0):
    rng = np.random.default_rng(seed)
    images = rng.normal(size=(n, d)).astype(np.float32)
    texts = (images + rng.normal(size=(n, d))).astype(np.float32)
    return images, texts


@pytest.mark.parametrize("scale", [1.0, 1 / 0.07, 100.0])
def test_clip_loss_matches_numpy_reference(scale):
    images, texts = _pairs()
    got = jax.jit(clip_loss)(images, texts, logit_scale=scale)
    assert got.shape == (12,) and got.dtype == jnp.float32
    np.testing.assert_allclose(got, clip_reference(images, texts, scale), rtol=1e-5, atol=1e-5)


def test_clip_loss_is_symmetric_in_the_modalities_and_bf16_close():
    images, texts = _pairs(seed=1)
    np.testing.assert_allclose(
        clip_loss(images, texts, logit_scale=10.0),
        clip_loss(texts, images, logit_scale=10.0),
        rtol=1e-6,
    )
    got = clip_loss(
        jnp.asarray(images, jnp.bfloat16), jnp.asarray(texts, jnp.bfloat16), logit_scale=10.0
    )
    assert got.dtype == jnp.float32
    np.testing.assert_allclose(got, clip_reference(images, texts, 10.0), rtol=2e-2, atol=2e-2)


def test_clip_loss_gradients_match_finite_differences_of_the_reference():
    images, texts, scale = *_pairs(n=4, d=3, seed=2), 3.0
    grad_fn = jax.grad(lambda a, b, s: clip_loss(a, b, logit_scale=s).mean(), argnums=(0, 1, 2))
    grads = jax.jit(grad_fn)(images, texts, scale)

    def numeric(f, x, h=1e-6):  # central differences of the float64 reference
        g = np.zeros_like(x, np.float64)
        for idx in np.ndindex(x.shape):
            up, down = x.astype(np.float64), x.astype(np.float64)
            up[idx] += h
            down[idx] -= h
            g[idx] = (f(up) - f(down)) / (2 * h)
        return g

    ref = lambda a, b, s: clip_reference(a, b, s).mean()  # noqa: E731
    np.testing.assert_allclose(grads[0], numeric(lambda a: ref(a, texts, scale), images), atol=1e-5)
    np.testing.assert_allclose(grads[1], numeric(lambda b: ref(images, b, scale), texts), atol=1e-5)
    d_scale = (ref(images, texts, scale + 1e-6) - ref(images, texts, scale - 1e-6)) / 2e-6
    np.testing.assert_allclose(grads[2], d_scale, rtol=1e-4)


def test_clip_loss_bad_inputs_are_clear_errors():
    images, texts = _pairs()
    with pytest.raises(TypeError, match="floating"):
        clip_loss(images.astype(np.int32), texts, logit_scale=1.0)
    with pytest.raises(ValueError, match="same shape"):
        clip_loss(images, texts[:-1], logit_scale=1.0)
    with pytest.raises(ValueError, match="scalar"):
        clip_loss(images, texts, logit_scale=np.ones(2, np.float32))


def _sharded_loss_and_grads(w_img, w_txt, t, x, y, mesh, *, gather=True):
    """Mean CLIP loss of two linear towers and a log scale, the loss computed per device."""
    axis = parallel.DATA_AXIS

    def local(w_img, w_txt, t, x, y):
        per_example = clip_loss(
            x @ w_img,
            y @ w_txt,
            logit_scale=capped_logit_scale(t),
            axis_name=axis if gather else None,
        )
        return parallel.pmean(per_example.mean(), axis)

    f = parallel.per_device(local, mesh, in_specs=(P(), P(), P(), P(axis), P(axis)), out_specs=P())
    return jax.jit(jax.value_and_grad(f, argnums=(0, 1, 2)))(w_img, w_txt, t, x, y)


def test_one_device_equals_eight_devices_loss_and_gradients(n_devices):
    rng = np.random.default_rng(4)
    x = rng.normal(size=(32, 10)).astype(np.float32)
    y = (x[:, :7] + 0.3 * rng.normal(size=(32, 7))).astype(np.float32)
    w_img = rng.normal(size=(10, 6)).astype(np.float32)
    w_txt = rng.normal(size=(7, 6)).astype(np.float32)
    t = np.float32(math.log(1 / 0.07))

    def plain(w_img, w_txt, t):  # one device, no shard_map: the ground truth
        return clip_loss(x @ w_img, y @ w_txt, logit_scale=capped_logit_scale(t)).mean()

    loss0, grads0 = jax.jit(jax.value_and_grad(plain, argnums=(0, 1, 2)))(w_img, w_txt, t)
    for mesh in (parallel.make_mesh(), parallel.make_mesh(jax.devices()[:1])):
        loss, grads = _sharded_loss_and_grads(w_img, w_txt, t, x, y, mesh)
        np.testing.assert_allclose(loss, loss0, rtol=1e-6)
        for g, g0 in zip(grads, grads0, strict=True):
            np.testing.assert_allclose(g, g0, rtol=1e-5, atol=1e-6)
    ref = clip_reference(x @ w_img, y @ w_txt, float(np.exp(t))).mean()
    np.testing.assert_allclose(loss0, ref, rtol=1e-5)
    # Not vacuous: with each device's own rows as the only negatives the loss differs.
    local_loss, _ = _sharded_loss_and_grads(
        w_img, w_txt, t, x, y, parallel.make_mesh(), gather=False
    )
    assert abs(float(local_loss) - float(loss0)) > 1e-2


# ---------------------------------------------------------------- the learnable temperature


def test_logit_scale_is_capped_and_its_gradient_is_that_of_a_clamp():
    log100 = math.log(100.0)
    np.testing.assert_allclose(
        capped_logit_scale(jnp.float32(math.log(1 / 0.07))), 1 / 0.07, rtol=1e-6
    )
    np.testing.assert_allclose(capped_logit_scale(jnp.float32(log100 + 2.0)), 100.0, rtol=1e-6)
    np.testing.assert_allclose(
        capped_logit_scale(jnp.float32(3.0), max_scale=10.0), 10.0, rtol=1e-6
    )
    grad = lambda sign, t: float(jax.grad(lambda t: sign * capped_logit_scale(t))(jnp.float32(t)))  # noqa: E731
    # Inside the range: d exp(t) / dt = exp(t).
    np.testing.assert_allclose(grad(1.0, 2.0), math.exp(2.0), rtol=1e-6)
    # Above the cap: a gradient that would raise t further is dropped ...
    assert grad(-1.0, log100 + 0.5) == 0.0
    # ... and one that would lower it (descent moves t by -g) passes, so t is never stuck there.
    np.testing.assert_allclose(grad(1.0, log100 + 0.5), 100.0, rtol=1e-5)
    with pytest.raises(ValueError, match="scalar"):
        capped_logit_scale(jnp.zeros(2))
    # The method caps at config.clip.max_logit_scale, which may not start below the initial scale.
    method = get_method(engine_checks.load(SMOKE, "clip.max_logit_scale=50.0"))
    np.testing.assert_allclose(method.logit_scale(jnp.float32(10.0)), 50.0, rtol=1e-6)
    with pytest.raises(ValueError, match="max_logit_scale"):
        get_method(engine_checks.load(SMOKE, "clip.max_logit_scale=10.0"))


# ---------------------------------------------------------------- captions


@pytest.fixture(scope="module")
def captioned():
    cfg = ml_collections.ConfigDict(
        {"name": "captioned", "image_source": "embedded_fashion_mnist", "text_len": 48}
    )
    return cfg, data.get_source(cfg, "train")


def test_captions_use_every_template_deterministically(captioned):
    cfg, source = captioned
    assert len(captions.TEMPLATES) >= 5 and source.templates == captions.TEMPLATES
    rows = np.arange(0, len(source), 7)
    batch = source.get(rows)
    assert batch["text"].shape == (len(rows), 48) and batch["text"].dtype == np.int32
    assert batch["image"].shape == (len(rows), 28, 28, 1)
    tokenizer = ByteTokenizer()
    for i, row in enumerate(rows[:50]):
        caption = source.caption(row, batch["label"][i])
        assert tokenizer.decode(batch["text"][i]) == caption
        template = source.templates[source.template_of[row]]
        assert caption == template.format(data.FASHION_MNIST_CLASSES[batch["label"][i]].lower())
    # Every template is used, and not as a function of the class.
    assert set(source.template_of[rows]) == set(range(len(captions.TEMPLATES)))
    per_class = {int(c): set(source.template_of[rows][batch["label"] == c]) for c in range(10)}
    assert all(len(t) > 1 for t in per_class.values())
    # The same rows on every read and from a rebuilt source; another caption_seed draws others.
    again = data.get_source(cfg, "train").get(rows)
    np.testing.assert_array_equal(again["text"], batch["text"])
    np.testing.assert_array_equal(source.get(rows[::-1])["text"], batch["text"][::-1])
    other = data.get_source(
        ml_collections.ConfigDict({**cfg.to_dict(), "caption_seed": 1}), "train"
    )
    assert np.mean(other.template_of != source.template_of) > 0.5


def test_bpe_captions_are_trained_on_the_captions_and_cached(captioned, tmp_path):
    cfg, byte_source = captioned
    path = str(tmp_path / "bpe.json")
    bpe_cfg = ml_collections.ConfigDict(
        {**cfg.to_dict(), "tokenizer": "bpe", "vocab_size": 300, "tokenizer_path": path}
    )
    source = data.get_source(bpe_cfg, "train")
    assert os.path.isfile(path) and 261 < source.vocab_size <= 300
    rows = np.arange(0, 900, 9)
    batch = source.get(rows)
    for i, row in enumerate(rows):
        assert source.tokenizer.decode(batch["text"][i]) == source.caption(row, batch["label"][i])
    # Merges make captions shorter than their bytes; the test split reuses the saved tokenizer.
    lengths = lambda t: (t != 0).sum()  # noqa: E731
    assert lengths(batch["text"]) < lengths(byte_source.get(rows)["text"])
    test = data.get_source(bpe_cfg, "test")
    np.testing.assert_array_equal(test.prompt_tokens, source.prompt_tokens)


def test_tokens_are_bos_text_eos_then_padding_and_long_texts_keep_their_eos():
    tokenizer = ByteTokenizer()
    tokens = captions.tokenize(["ab", "a much longer caption"], tokenizer, 8)
    bos, eos, pad = tokenizer.bos_id, tokenizer.eos_id, tokenizer.pad_id
    np.testing.assert_array_equal(
        tokens[0], [bos, *tokenizer.encode("ab"), eos, pad, pad, pad, pad]
    )
    np.testing.assert_array_equal(tokens[1], [bos, *tokenizer.encode("a much"), eos])
    prompts = captions.class_prompt_tokens(["Bag", "Coat"], ("a {}.", "one {}"), tokenizer, 12)
    assert prompts.shape == (2, 2, 12)
    assert (
        tokenizer.decode(prompts[1, 0]) == "a coat."
        and tokenizer.decode(prompts[0, 1]) == "one bag"
    )
    with pytest.raises(ValueError, match="template"):
        captions.class_captions(["bag"], ("no placeholder",))


def test_caption_rows_from_tfds_style_records():
    """What TfdsCaptionSource.get does to ArrayRecord records (COCO: several captions per image)."""
    records = [
        {
            "image": np.zeros((4, 4, 3), np.uint8),
            "captions": {"text": np.array([b"a dog.", b"a pet."])},
            "label": 3,
        },
        {
            "image": np.zeros((4, 4, 3), np.uint8),
            "captions": {"text": np.array(["a cat."])},
            "label": 1,
        },
        {
            "image": np.zeros((4, 4, 3), np.uint8),
            "captions": {"text": [b"x", b"y", b"z"]},
            "label": 0,
        },
    ]
    tokenizer = ByteTokenizer()
    kwargs = dict(caption_key="captions/text", tokenizer=tokenizer, text_len=10, label_key="label")
    rows = captions.caption_rows(records, np.array([5, 6, 7]), seed=0, **kwargs)
    texts = [tokenizer.decode(t) for t in rows["text"]]
    assert texts[0] in ("a dog.", "a pet.") and texts[1] == "a cat." and texts[2] in "xyz"
    np.testing.assert_array_equal(rows["label"], [3, 1, 0])
    again = captions.caption_rows(records, np.array([5, 6, 7]), seed=0, **kwargs)
    np.testing.assert_array_equal(again["text"], rows["text"])  # the same caption on every read
    # Over many indices the choice covers every caption of a record.
    seen = {
        tokenizer.decode(captions.caption_rows(records[2:], np.array([i]), **kwargs)["text"][0])
        for i in range(40)
    }
    assert seen == {"x", "y", "z"}
    with pytest.raises(KeyError):
        captions.caption_rows(records, np.arange(3), **{**kwargs, "caption_key": "caption"})


def test_captioned_source_needs_an_image_source_and_class_names():
    with pytest.raises(ValueError, match="image_source"):
        data.get_source(ml_collections.ConfigDict({"name": "captioned"}), "train")
    unnamed = data.ArraySource(np.zeros((4, 2, 2), np.uint8), np.arange(4))
    with pytest.raises(ValueError, match="class_names"):
        captions.CaptionedSource(unnamed, tokenizer=ByteTokenizer(), text_len=16)
    with pytest.raises(ValueError, match="4 classes"):
        captions.CaptionedSource(
            unnamed, tokenizer=ByteTokenizer(), text_len=16, class_names=("a", "b")
        )


# ---------------------------------------------------------------- the text tower


def test_text_tower_reads_the_eos_and_never_sees_the_padding():
    tower = TextTransformer(vocab_size=20, max_len=8, width=16, depth=1, num_heads=2)
    tokens = np.array([[1, 7, 8, 2, 0, 0, 0, 0], [1, 7, 8, 9, 5, 2, 0, 0]], np.int32)
    variables = jax.jit(tower.init)(jax.random.PRNGKey(0), tokens)
    apply = jax.jit(tower.apply)  # one compiled program per shape, not one per op
    out = apply(variables, tokens)
    assert out.shape == (2, 16) and out.dtype == jnp.float32
    # The feature is the final hidden state at each row's eos (positions 3 and 5).
    stack = CausalDecoder(
        vocab_size=20,
        hidden_dim=16,
        num_layers=1,
        num_heads=2,
        mlp_dim=64,
        max_len=8,
        dropout_rate=0.0,
    )
    hidden = jax.jit(stack.apply)({"params": variables["params"]["transformer"]}, tokens)
    np.testing.assert_allclose(out, hidden[np.arange(2), [3, 5]], rtol=1e-6)
    # The padding is never seen: the same captions padded to another length give the same features.
    np.testing.assert_allclose(apply(variables, tokens[:, :6]), out, rtol=1e-5, atol=1e-6)
    # Every earlier token matters.
    earlier = tokens.copy()
    earlier[1, 2] = 3
    assert np.abs(apply(variables, earlier)[1] - out[1]).max() > 1e-4


# ---------------------------------------------------------------- the method, end to end

SMOKE = "clip_fashion_mnist.py:smoke"
EMBEDDED = ("data.name=captioned", "data.image_source=embedded_fashion_mnist")


def test_clip_step_is_the_same_on_one_and_eight_devices(n_devices):
    engine_checks.assert_same_on_one_and_eight(engine_checks.load(SMOKE, *EMBEDDED))


@pytest.fixture(scope="module")
def smoke_run(tmp_path_factory):
    """One `ssl-jax pretrain` of the smoke config on the embedded data (zero-shot, kNN, linear)."""
    workdir = str(tmp_path_factory.mktemp("clip") / "run")
    overrides = [f"--config.{o}" for o in EMBEDDED[1:]]
    assert engine_checks.run_smoke(SMOKE, workdir, *overrides, data_name="captioned") == 0
    return workdir


def test_cli_pretrain_then_evaluate_zero_shot(smoke_run, capsys):
    results = json.load(open(os.path.join(smoke_run, "eval.json")))
    assert set(results) >= {"zero_shot", "knn", "linear"}
    assert results["zero_shot"]["num_classes"] == 10
    assert results["zero_shot"]["num_templates"] == len(captions.TEMPLATES)
    records = [r for r in reporting.read_metrics(smoke_run) if "loss" in r]
    assert [r["step"] for r in records] == [1, 2, 3]
    # The scale starts at 1 / 0.07 and the loss is finite and positive.
    np.testing.assert_allclose(records[0]["logit_scale"], 1 / 0.07, rtol=1e-5)
    assert all(np.isfinite(r["loss"]) and r["loss"] > 0 for r in records)
    capsys.readouterr()
    assert cli.main(["evaluate", "--workdir", smoke_run, "--protocol", "zero_shot"]) == 0
    assert "zero_shot top-1 accuracy" in capsys.readouterr().out
    again = json.load(open(os.path.join(smoke_run, "eval.json")))["zero_shot"]
    assert again["top1"] == results["zero_shot"]["top1"]  # from the checkpoint, the same number


def test_zero_shot_equals_nearest_prompt_ensemble_in_numpy(smoke_run):
    """The protocol against the same classification written out in NumPy: each prompt through the text
    tower, class embedding = normalized mean of normalized prompt embeddings, argmax of cosine."""
    config = engine_checks.load(SMOKE, *EMBEDDED)
    method = get_method(config)
    encoder, _ = checkpoint.load_encoder(smoke_run)
    assert set(encoder) == {"params", "batch_stats", CLIP_KEY}
    assert set(encoder[CLIP_KEY]["params"]) == {
        "text_encoder",
        "image_projection",
        "text_projection",
        "log_logit_scale",
    }
    got = zero_shot.zero_shot(config, encoder, mesh=None, method=method)

    source = data.get_source(config.data, "test")
    batch = source.get(np.arange(len(source)))
    variables = method.model_variables(encoder)
    model = method.model(None)

    @jax.jit
    def embed(variables, images, tokens):
        x = common.eval_images(config, images)
        image_emb = model.apply(variables, x, train=False, method=CLIPModel.embed_images)
        return image_emb, model.apply(variables, tokens, train=False, method=CLIPModel.embed_texts)

    prompts = source.prompt_tokens  # [C, T, L]
    x, z = (
        np.asarray(a, np.float64)
        for a in embed(variables, batch["image"], prompts.reshape(-1, prompts.shape[-1]))
    )
    z = z.reshape(*prompts.shape[:2], -1)
    z /= np.linalg.norm(z, axis=-1, keepdims=True)
    classes = z.mean(axis=1)
    classes /= np.linalg.norm(classes, axis=-1, keepdims=True)
    x /= np.linalg.norm(x, axis=-1, keepdims=True)
    predictions = np.argmax(x @ classes.T, axis=1)
    np.testing.assert_allclose(got["top1"], np.mean(predictions == batch["label"]), atol=1e-6)


@pytest.mark.parametrize(
    "spec, image_shape",
    [
        ("clip_fashion_mnist.py", (28, 28, 1)),
        ("clip_fashion_mnist.py:small_cnn", (28, 28, 1)),
        ("clip_coco.py", (224, 224, 3)),
        ("clip_coco.py:smoke", (48, 48, 3)),
    ],
)
def test_every_config_initializes(spec, image_shape):
    config = engine_checks.load(spec)
    method = get_method(config, num_steps=100, steps_per_epoch=10)
    variables = jax.eval_shape(lambda rng: method.init(rng, image_shape), jax.random.PRNGKey(0))
    params = variables.params
    embed = config.clip.embed_dim
    assert params["image_projection"]["kernel"].shape[-1] == embed
    assert params["text_projection"]["kernel"].shape == (config.model.text.width, embed)
    assert params["log_logit_scale"].shape == ()
    assert method.batch_keys == ("image", "text")
