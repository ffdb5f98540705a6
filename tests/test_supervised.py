"""Supervised pre-training (the R-CNN recipe): its cross-entropy against a NumPy reference, the class-subset
data option that defines the upstream and downstream tasks, the choice of transferred layer (feature width
and exported parameters), and a CLI run on classes 0-4 fine-tuned on classes 5-9."""

import json
import os

import jax
import numpy as np
import pytest

from ssl_jax import cli, data, models
from ssl_jax.data.subsets import ClassSubsetSource
from ssl_jax.losses import token_cross_entropy
from ssl_jax.methods import get_method

import engine_checks

SMOKE = "supervised_fashion_mnist.py:smoke"


def cross_entropy_reference(logits: np.ndarray, labels: np.ndarray, eps: float) -> np.ndarray:
    """-sum_k q_k log p_k with q = (1 - eps) one-hot + eps / K (Szegedy et al. 2016), float64 loops."""
    out = []
    for row, label in zip(logits.astype(np.float64), labels, strict=True):
        log_z = np.log(sum(np.exp(v) for v in row))
        k = len(row)
        q = [(1 - eps) * (j == label) + eps / k for j in range(k)]
        out.append(-sum(q[j] * (row[j] - log_z) for j in range(k)))
    return np.array(out)


@pytest.mark.parametrize("eps", [0.0, 0.1])
def test_classification_loss_matches_numpy_reference(eps):
    rng = np.random.default_rng(0)
    logits = (rng.normal(size=(12, 5)) * 4).astype(np.float32)
    labels = rng.integers(0, 5, 12)
    got = jax.jit(lambda a, b: token_cross_entropy(a, b, label_smoothing=eps))(logits, labels)
    np.testing.assert_allclose(got, cross_entropy_reference(logits, labels, eps), rtol=1e-5)


def test_class_subset_relabels_and_keeps_only_its_classes():
    base = data.embedded_fashion_mnist("train")
    subset = ClassSubsetSource(base, (7, 2))
    assert len(subset) == 1800 and subset.num_classes == 2
    assert subset.class_names == ("Sneaker", "Pullover")
    rows = np.arange(0, 1800, 97)
    got = subset.get(rows)
    original = base.get(subset._rows[rows])
    np.testing.assert_array_equal(got["image"], original["image"])
    np.testing.assert_array_equal(got["label"], np.where(original["label"] == 7, 0, 1))
    assert set(np.unique(subset.labels)) == {0, 1}
    cfg = {"name": "class_subset", "base": "embedded_fashion_mnist", "classes": (5, 6, 7, 8, 9)}
    assert len(data.get_source({**cfg, "num_classes": 5}, "test")) == 1000
    with pytest.raises(ValueError, match="num_classes"):
        data.get_source({**cfg, "num_classes": 10}, "test")
    with pytest.raises(ValueError, match="not in"):
        ClassSubsetSource(base, (3, 10))


# The ImageNet recipe's pipeline (64 px smoke) on a ResNet-18, whose stages are cheaper to trace than
# ResNet-50's; the cut is the same code for every ResNet.
RESNET = ("supervised_imagenet.py:smoke", "model.encoder=resnet18", "model.encoder_kwargs={}")


@pytest.mark.parametrize(
    "spec, layer, names, width",
    [
        ((SMOKE,), 0, {"conv0", "bn0", "conv1", "bn1"}, 16),
        ((SMOKE,), 1, {"conv0", "bn0"}, 8),
        (RESNET, 2, {"conv1", "bn1", "layer1_0", "layer1_1", "layer2_0", "layer2_1"}, 128),
        (RESNET, 0, None, 512),
    ],
    ids=["small_cnn-all", "small_cnn-1", "resnet18-2", "resnet18-all"],
)
def test_transfer_layer_chooses_the_exported_prefix(spec, layer, names, width):
    config = engine_checks.load(*spec, f"supervised.transfer_layer={layer}")
    method = get_method(config, num_steps=10, steps_per_epoch=10)
    size, channels = config.data.image_size, config.data.channels
    variables = jax.eval_shape(
        lambda rng: method.init(rng, (size, size, channels)), jax.random.PRNGKey(0)
    )
    # The classifier always sits on the whole backbone; only the export is cut.
    full_width = models.encoder_feature_dim(config.model.encoder, **config.model.encoder_kwargs)
    assert variables.params["classifier"]["kernel"].shape[0] == full_width
    exported = method.encoder_variables(variables.params, variables.batch_stats)
    if names is not None:
        assert set(exported["params"]) == names
    else:
        assert set(exported["params"]) == set(variables.params["encoder"])
    images = jax.ShapeDtypeStruct((2, size, size, channels), np.uint8)
    features = jax.eval_shape(method.encode, exported, images)
    assert features.shape == (2, width)


def test_transfer_layer_errors():
    with pytest.raises(ValueError, match=r"\[0, 2\]"):
        get_method(engine_checks.load(SMOKE, "supervised.transfer_layer=3"))
    with pytest.raises(ValueError, match="whole"):
        get_method(
            engine_checks.load(
                SMOKE,
                "supervised.transfer_layer=1",
                "model.encoder=vit_tiny",
                "model.encoder_kwargs={}",
            )
        )


@pytest.fixture(scope="module")
def supervised_run(tmp_path_factory):
    """Pre-train on classes 0-4 of the embedded subset, transferring the first conv stage only."""
    workdir = str(tmp_path_factory.mktemp("supervised") / "run")
    assert (
        engine_checks.run_smoke(
            SMOKE, workdir, "--config.supervised.transfer_layer=1", data_name=None
        )
        == 0
    )
    return workdir


def test_cli_pretrains_on_one_task_and_fine_tunes_on_another(supervised_run, capsys):
    from ssl_jax import checkpoint, reporting

    records = [r for r in reporting.read_metrics(supervised_run) if "loss" in r]
    assert [r["step"] for r in records] == [1, 2, 3]
    assert all(np.isfinite(r["loss"]) and 0 <= r["train_accuracy"] <= 1 for r in records)
    # Upstream evaluation: kNN / linear on classes 0-4, with the 8-wide first-stage features.
    upstream = json.load(open(os.path.join(supervised_run, "eval.json")))
    assert 0.2 < upstream["knn"]["top1"] <= 1.0  # 5 classes: chance is 0.2
    encoder, _ = checkpoint.load_encoder(supervised_run)
    assert set(encoder["params"]) == {"conv0", "bn0"}
    capsys.readouterr()
    argv = ["evaluate", "--workdir", supervised_run, "--protocol", "finetune_10pct"]
    downstream = ["--config.data.classes=(5,6,7,8,9)", "--config.eval.finetune_steps=3"]
    assert cli.main([*argv, *downstream]) == 0
    result = json.load(open(os.path.join(supervised_run, "eval.json")))["finetune_10pct"]
    assert result["train_examples"] == 450 and result["steps"] == 3  # 10% of classes 5-9's 4,500
    assert 0.0 <= result["top1"] <= 1.0
