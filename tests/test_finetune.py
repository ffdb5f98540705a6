"""Fine-tuning (ssl_jax.transfer.finetune): class-balanced label subsets fixed by seed, layer depths and layer-wise
learning-rate decay against hand-derived values, a mismatched encoder named path by path, and the
"finetune_1pct" protocol end to end from a pre-trained and from a random encoder (a few steps)."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from ssl_jax import checkpoint, models, parallel
from ssl_jax.method_inputs import build_method
from ssl_jax.transfer import evaluate, finetune

import engine_checks

SMOKE = "simclr_fashion_mnist.py:smoke"
# Two optimizer steps on the embedded subset's 1% (9 images of each of its 10 classes).
FINETUNE_OVERRIDES = ("eval.finetune_steps=2",)

# ---------------------------------------------------------------- label subsets


def test_label_subset_is_class_balanced_nested_and_a_function_of_seed_and_fraction():
    counts = np.array([500, 300, 150, 40, 3])  # unequal classes, one too small for 1%
    labels = np.random.default_rng(0).permutation(np.repeat(np.arange(5), counts))
    for fraction in (0.01, 0.1, 0.5):
        rows = finetune.label_subset(labels, fraction, seed=3)
        assert np.all(np.diff(rows) > 0)  # sorted, no repeats
        expected = [max(1, int(round(fraction * c))) for c in counts]
        np.testing.assert_array_equal(np.bincount(labels[rows], minlength=5), expected)
        np.testing.assert_array_equal(rows, finetune.label_subset(labels.copy(), fraction, 3))
    small, large = (finetune.label_subset(labels, f, seed=3) for f in (0.01, 0.1))
    assert set(small) <= set(large)  # one seed's subsets are nested
    other_seed = finetune.label_subset(labels, 0.1, seed=4)
    assert not np.array_equal(large, other_seed)
    np.testing.assert_array_equal(finetune.label_subset(labels, 1.0, 0), np.arange(len(labels)))
    for bad in (0.0, 1.5):
        with pytest.raises(ValueError, match="label fraction"):
            finetune.label_subset(labels, bad, 0)


# ---------------------------------------------------------------- layer-wise learning-rate decay


def _top_level_names(encoder):
    shapes = jax.eval_shape(
        lambda: encoder.init(jax.random.key(0), jnp.zeros((1, 32, 32, 3)), train=False)
    )
    return list(shapes["params"])


def test_layer_depths_of_resnet_vit_and_small_cnn():
    resnet, num = finetune.layer_depths(_top_level_names(models.ResNet18(stem="cifar")))
    assert num == 4
    assert resnet["conv1"] == resnet["bn1"] == 0
    assert [resnet[f"layer{s}_{b}"] for s in (1, 2, 3, 4) for b in (0, 1)] == [
        1,
        1,
        2,
        2,
        3,
        3,
        4,
        4,
    ]

    vit, num = finetune.layer_depths(_top_level_names(models.ViTTiny(patch_size=8)))
    assert num == 2
    assert vit["patch_embed"] == vit["cls_token"] == vit["pos_embedding"] == 0
    assert (vit["block0"], vit["block1"], vit["norm"]) == (1, 2, 3)

    cnn, num = finetune.layer_depths(
        _top_level_names(models.SmallConvNet(widths=(4, 8, 16), strides=(2, 2, 2)))
    )
    assert num == 3
    assert [cnn[f"conv{i}"] for i in range(3)] == [cnn[f"bn{i}"] for i in range(3)] == [1, 2, 3]


def test_layer_decay_scales_each_update_by_decay_to_the_distance_from_the_head():
    ones = {"kernel": jnp.ones((2, 2)), "bias": jnp.ones(2)}
    params = {
        "encoder": {"conv1": ones, "layer1_0": ones, "layer2_0": ones},
        "head": {"dense": ones},
    }
    factors = finetune.layer_decay_factors(params, 0.5)
    # L = 2 stages: head 1, stage 2 0.5, stage 1 0.25, stem 0.125.
    expected = {"head": 1.0, "layer2_0": 0.5, "layer1_0": 0.25, "conv1": 0.125}
    tx = optax.chain(optax.sgd(1.0), finetune.scale_by_tree(factors))
    grads = jax.tree.map(lambda x: 2.0 * x, params)
    updates, _ = tx.update(grads, tx.init(params), params)
    for name, factor in expected.items():
        got = updates["head"]["dense"] if name == "head" else updates["encoder"][name]
        for leaf in jax.tree.leaves(got):
            np.testing.assert_allclose(leaf, -2.0 * factor)


# ---------------------------------------------------------------- the protocol


@pytest.fixture(scope="module")
def smoke_method():
    config = engine_checks.load(SMOKE, "data.name=embedded_fashion_mnist", *FINETUNE_OVERRIDES)
    method = build_method(config)
    template = finetune.Classifier(method.encoder_module(), int(config.data.num_classes))
    example = np.zeros((1, 28, 28, 1), np.uint8)
    fresh = finetune.init_variables(template, method, example, jax.random.key(7))
    encoder = {
        "params": fresh["params"]["encoder"],
        "batch_stats": fresh["batch_stats"]["encoder"],
    }
    return config, method, encoder


def test_mismatched_encoder_is_an_error_naming_the_paths(smoke_method):
    config, method, encoder = smoke_method
    wrong = jax.tree.map(np.asarray, encoder)
    wrong["params"]["conv1"]["kernel"] = np.zeros((3, 3, 8, 32), np.float32)  # widths (8, 32)
    del wrong["batch_stats"]["bn1"]
    with pytest.raises(checkpoint.CheckpointMismatchError) as info:
        finetune.finetune(config, method, wrong, label_fraction=0.01)
    message = str(info.value)
    assert "params/conv1/kernel" in message and "(3, 3, 8, 32)" in message
    assert "batch_stats/bn1/mean" in message


def test_finetune_1pct_from_pretrained_and_from_random_init(smoke_method, n_devices):
    config, method, encoder = smoke_method
    mesh = parallel.make_mesh()
    # Replicated on the mesh, as pre-training hands it over: the donating step must not consume it.
    encoder = parallel.replicate(encoder, mesh)
    results = evaluate.evaluate_encoder(config, method, encoder, ("finetune_1pct",), mesh=mesh)
    jax.tree.map(np.asarray, encoder)  # still alive
    r = results["finetune_1pct"]
    # 1% of the embedded subset's 900 images per class; the batch is cut to a multiple of 8 devices.
    assert r["train_examples"] == 90 and r["batch_size"] == 88 and r["steps"] == 2
    assert not r["random_init"] and r["label_fraction"] == 0.01
    assert 0.0 <= r["top1"] <= r["top5"] <= 1.0 and np.isfinite(r["train_loss"])
    # A zero-initialized head scores every class alike at first: the first loss is log(10).
    assert abs(r["train_loss"] - np.log(10)) < 0.5

    config.eval.finetune_random_init = True
    scratch = finetune.finetune(config, method, encoder, label_fraction=0.01, mesh=mesh)
    config.eval.finetune_random_init = False
    assert scratch["random_init"] and scratch["train_examples"] == 90
    assert scratch["top1"] != r["top1"] or scratch["train_loss"] != r["train_loss"]


# ---------------------------------------------------------------- every method's checkpoint fits


def _image_methods() -> list[str]:
    from ssl_jax.methods import METHODS, method_class

    return sorted(n for n in METHODS if method_class(n).batch_keys == ("image",))


def _smoke_spec(name: str) -> str:
    if name == "colorization":  # colour photographs: no Fashion-MNIST config
        return "colorization_skimage.py:smoke"
    return f"{name}_fashion_mnist.py:smoke"


@pytest.mark.parametrize("name", _image_methods())
def test_every_image_method_exports_what_its_fine_tuning_encoder_takes(name):
    """What a method exports (`encoder_variables`) has exactly the parameter paths and shapes of the
    network fine-tuning builds (`encoder_module`), and the classifier runs on `preprocess`'s output in
    both modes: any image method's checkpoint feeds the fine-tuning protocols."""
    config = engine_checks.load(_smoke_spec(name))
    method = build_method(config)
    size = int(config.data.get("image_size", 28) or 28)
    channels = 3 if name == "colorization" else 1
    variables = method.init(jax.random.key(0), (size, size, channels))
    exported = method.encoder_variables(variables.params, variables.batch_stats)
    model = finetune.Classifier(method.encoder_module(), 5)
    example = np.zeros((2, size, size, channels), np.uint8)
    params, batch_stats = finetune.start_variables(
        model, method, example[:1], exported, jax.random.key(1)
    )  # raises CheckpointMismatchError naming the paths otherwise
    for train in (False, True):
        x = method.preprocess(
            jnp.asarray(example), train=train, rng=jax.random.key(2), example_ids=jnp.arange(2)
        )
        logits, _ = model.apply(
            {"params": params, "batch_stats": batch_stats},
            x,
            train=train,
            mutable=["batch_stats"],
        )
        assert logits.shape == (2, 5)
