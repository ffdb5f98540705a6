"""Pre-training and evaluation on photographs end to end: an image folder of JPEGs of random sizes
is read as photos (config.data.host_crop), the host crops each method's training views from the
original photo (SimCLR's two, DINO's 2 global + 2 local multi-crop), the step augments them on
device with the crop off, and the kNN / linear evaluation reads the eval crop; every image method's
views are read with the crop off; tfds datasets of variable-size images are photos too."""

import importlib.util
import json
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from PIL import Image

from ssl_jax import config_util, data, train
from ssl_jax.data import pipeline
from ssl_jax.data.photos import FolderPhotos, TfdsPhotos, decode_eval
from ssl_jax.data.pipeline import Pipeline
from ssl_jax.methods import get_method

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CONFIGS = os.path.join(ROOT, "configs")


@pytest.fixture(scope="module")
def photo_folder(tmp_path_factory):
    """DIR/{train,test}/<class>/<n>.jpg: 24 train and 8 test JPEGs, 40-90 px a side."""
    root = tmp_path_factory.mktemp("photos")
    rng = np.random.default_rng(0)
    for split, n in (("train", 24), ("test", 8)):
        for i in range(n):
            height, width = rng.integers(40, 91, 2)
            image = rng.integers(0, 256, (height, width, 3), dtype=np.uint8)
            folder = root / split / f"class_{i % 2}"
            folder.mkdir(parents=True, exist_ok=True)
            Image.fromarray(image).save(folder / f"{i:02d}.jpg", quality=90)
    return str(root)


def _config(spec: str, photo_folder: str):
    config = config_util.load_config(os.path.join(CONFIGS, spec))
    config_util.apply_overrides(
        config,
        [
            "data.name=image_folder",
            f"data.data_dir={photo_folder}",
            "data.num_classes=2",
            "eval.batch_size=8",
            "eval.max_train_examples=0",
            "num_steps=2",
        ],
    )
    config.eval.protocols = ("knn", "linear")
    return config


@pytest.mark.parametrize(
    "spec, sizes",
    [("simclr_imagenet.py:smoke", (48, 48)), ("dino_imagenet.py:smoke", (48, 48, 16, 16))],
)
def test_pretrain_on_photos_with_host_crops(spec, sizes, photo_folder, tmp_path):
    config = _config(spec, photo_folder)
    assert config.data.host_crop == "yes"  # the ImageNet configs crop photographs on the host
    source = data.get_source(config.data, "train")
    assert isinstance(source, FolderPhotos) and source.image_shape == (48, 48, 3)

    method = get_method(config, num_steps=2, steps_per_epoch=3)
    views = train.host_views(method, source)
    assert tuple(v.size for v in views) == sizes
    specs = method.train_views()
    assert all(
        v.scale == s.crop_scale and v.ratio == s.crop_ratio
        for v, s in zip(views, specs, strict=True)
    )
    batch = Pipeline(source, config.batch_size, seed=0, views=views).batch_at(0)
    keys = train.step_keys(method, len(views))
    assert set(keys) <= set(batch) and "image" not in keys
    for i, size in enumerate(sizes):
        assert batch[f"view_{i}"].shape == (config.batch_size, size, size, 3)

    workdir = str(tmp_path / "run")
    results = train.pretrain(config, workdir)
    with open(os.path.join(workdir, "metrics.jsonl")) as f:
        losses = [json.loads(line)["loss"] for line in f if '"loss"' in line]
    assert len(losses) == 2 and np.all(np.isfinite(losses))
    assert 0.0 <= results["knn"]["top1"] <= 1.0 and 0.0 <= results["linear"]["top1"] <= 1.0


def test_photo_evaluation_reads_the_centre_crop(photo_folder):
    """The eval images of a photo source are each photo's short-side resize and centre crop at
    data.image_size (photos.decode_eval), through the grain eval batches as through `get`."""
    config = _config("simclr_imagenet.py:smoke", photo_folder)
    source = data.get_source(config.data, "test")
    batches = list(pipeline.eval_batches(source, 8))
    assert len(batches) == 1 and batches[0]["mask"].all()
    expected = np.stack([decode_eval(p, 48) for p in source.paths])
    np.testing.assert_array_equal(batches[0]["image"], expected)
    np.testing.assert_array_equal(source.get(np.arange(8))["image"], expected)
    np.testing.assert_array_equal(batches[0]["label"], source.labels)


def test_host_crop_no_reads_whole_resized_images(photo_folder):
    config = _config("simclr_imagenet.py:smoke", photo_folder)
    config.data.host_crop = "no"
    source = data.get_source(config.data, "train")
    assert isinstance(source, data.ImageFolderSource) and source.image_shape == (48, 48, 3)
    config.data.host_crop = "sometimes"
    with pytest.raises(ValueError, match="host_crop must be one of"):
        data.get_source(config.data, "train")


@pytest.mark.parametrize(
    "spec, full_crop",
    [
        ("byol_fashion_mnist.py:smoke", {"augment.crop_scale": (1.0, 1.0)}),
        (
            "simclr_fashion_mnist.py:smoke",
            {"augment.crop_scale": (1.0, 1.0), "online_probe.enabled": True},
        ),
        ("moco_v2_fashion_mnist.py:smoke", {"augment.crop_scale": (1.0, 1.0)}),
        ("barlow_twins_fashion_mnist.py:smoke", {"augment.crop_scale": (1.0, 1.0)}),
        ("mae_fashion_mnist.py:smoke", {"augment.crop_scale": (1.0, 1.0)}),
        ("supervised_fashion_mnist.py:smoke", {"augment.crop_scale": (1.0, 1.0)}),
        (
            "dino_fashion_mnist.py:smoke",
            {"augment.global_scale": (1.0, 1.0), "augment.local_scale": (1.0, 1.0)},
        ),
    ],
)
def test_each_method_reads_host_views_as_its_device_crops(spec, full_crop):
    """Every view the method names in train_views() is read from batch["view_<i>"] with the crop
    off: with crops that keep the whole (square) image, the loss from host views equals the loss
    from on-device crops of batch["image"], the rest of each view's augmentation keyed as before;
    views of another size than their spec's are refused (so none is cropped again on device)."""
    config = config_util.load_config(os.path.join(CONFIGS, spec))
    config.data.name = "embedded_fashion_mnist"
    config.update_from_flattened_dict(full_crop)
    if config.method == "dino":
        config.augment.local_size = config.augment.global_size
    method = get_method(config, num_steps=10, steps_per_epoch=5)
    source = data.get_source(config.data, "train")
    whole = Pipeline(source, 8, seed=0, keys=method.batch_keys).batch_at(0)
    views = method.train_views()
    assert all(v.crop_size == 28 for v in views)
    cropped = {k: v for k, v in whole.items() if k != "image"}
    cropped.update({f"view_{i}": whole["image"] for i in range(len(views))})
    variables = method.init(jax.random.key(0), (28, 28, 1))

    @jax.jit
    def loss(batch):
        return method.loss_fn(
            variables.params,
            variables.batch_stats,
            variables.extra,
            batch,
            rng=jax.random.key(1),
            step=jnp.int32(0),
            axis_name=None,
        )[0]

    np.testing.assert_allclose(loss(cropped), loss(whole), rtol=2e-5, atol=1e-6)
    small = {**cropped, **{f"view_{i}": whole["image"][:, :20, :20] for i in range(len(views))}}
    with pytest.raises(ValueError, match="host-cropped view must be 28x28"):
        loss(small)


def test_variable_size_tfds_images_are_read_as_photos(photo_folder, tmp_path):
    """host_crop="auto" reads a tfds dataset of variable-size JPEGs as photos (their encoded
    bytes, whose `get` is each photo's eval crop), "no" as whole images resized to image_size."""
    pytest.importorskip("tensorflow_datasets")
    spec = importlib.util.spec_from_file_location(
        "input_pipeline", os.path.join(ROOT, "benchmarks", "input_pipeline.py")
    )
    input_pipeline = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(input_pipeline)
    folder = data.get_source(
        {"name": "image_folder", "data_dir": photo_folder, "image_size": 16}, "test"
    )
    input_pipeline.build_tfds(str(tmp_path), folder.paths, [int(v) for v in folder.labels], 2)
    cfg = {"name": "tfds", "tfds_name": "ssl_jax_photos", "data_dir": str(tmp_path)}
    cfg["image_size"] = 16
    photos = data.get_source(cfg, "train")
    assert isinstance(photos, TfdsPhotos) and photos.image_shape == (16, 16, 3)
    expected = np.stack([decode_eval(photos.example(i)[0], 16) for i in range(8)])
    np.testing.assert_array_equal(photos.get(np.arange(8))["image"], expected)
    whole = data.get_source({**cfg, "host_crop": "no"}, "train")
    assert isinstance(whole, data.TfdsSource) and whole.image_shape == (16, 16, 3)


def test_fine_tuning_on_photos_crops_on_the_host(photo_folder):
    """Fine-tuning reads photographs as pre-training does: one random resized crop per example from
    the original photo (finetune_view's size, scale and ratio), the rest of the view on device, and
    the test split scored on each photo's eval crop; a row subset of photos is still photos."""
    from ssl_jax import parallel
    from ssl_jax.data.common import RowsSource
    from ssl_jax.transfer import finetune

    config = _config("simclr_imagenet.py:smoke", photo_folder)
    config.eval.update(finetune_steps=2, finetune_batch_size=8, finetune_crop_scale=(0.3, 1.0))
    method = get_method(config)
    source = data.get_source(config.data, "train")
    (view,) = finetune._host_views(method, source)
    assert (view.size, view.scale) == (48, (0.3, 1.0))
    assert (
        finetune._host_views(method, data.get_source({"name": "embedded_fashion_mnist"}, "train"))
        is None
    )

    subset = RowsSource(source, np.arange(3, 11))
    assert pipeline.is_photos(subset) and subset.image_shape == (48, 48, 3)
    batch = Pipeline(subset, 8, seed=0, views=(view,)).batch_at(0)
    assert batch["view_0"].shape == (8, 48, 48, 3)
    (evaluated,) = pipeline.labelled_eval_batches(subset, 8, image_size=48)
    np.testing.assert_array_equal(
        evaluated["image"], np.stack([decode_eval(p, 48) for p in source.paths[3:11]])
    )

    result = finetune.finetune(config, method, None, mesh=parallel.make_mesh())
    assert result["init"] == "random" and result["steps"] == 2
    assert 0.0 <= result["top1"] <= 1.0 and np.isfinite(result["train_loss"])
