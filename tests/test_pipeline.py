"""Tests of ssl_jax.data.pipeline: the grain pipeline keeps the loader's law (the batch of step s
is a function of (seed, s)) for any number of workers and processes, and resumes from its state."""

import importlib.util
import json
import os
import pickle
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from ssl_jax.data import ArraySource, ImageFolderSource
from ssl_jax.data.photos import (
    FolderPhotos,
    PhotoError,
    TfdsPhotos,
    decode_eval,
    multicrop_views,
    simclr_views,
)
from ssl_jax.data.pipeline import Pipeline, eval_batches

VIEWS = simclr_views(16)


def _folder(tmp_path, n: int = 14) -> FolderPhotos:
    """n JPEGs of random sizes (24-60 px a side) in two classes, read as an image folder."""
    rng = np.random.default_rng(0)
    for i in range(n):
        height, width = rng.integers(24, 61, 2)
        image = rng.integers(0, 256, (height, width, 3), dtype=np.uint8)
        folder = tmp_path / "photos" / f"class_{i % 2}"
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray(image).save(folder / f"{i:02d}.jpg")
    return FolderPhotos.from_source(ImageFolderSource(str(tmp_path / "photos")))


def _benchmark(name: str):
    """benchmarks/<name>.py as a module (benchmarks/ is not a package)."""
    path = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "benchmarks")
    spec = importlib.util.spec_from_file_location(name, os.path.join(path, f"{name}.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _equal(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(np.array_equal(a[k], b[k]) for k in a)


def test_array_sources_keep_the_law():
    """Fixed-size arrays keep the whole-image path and the loader's law, across an epoch boundary
    (50 examples, 6 steps an epoch): step s reads rows [(s % 6) * 8, ...) of the permutation
    default_rng([seed, s // 6]), with example_ids s * 8 + row."""
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (50, 4, 4, 1), dtype=np.uint8)
    labels = rng.integers(0, 3, 50)
    source = ArraySource(images, labels)
    with Pipeline(source, 8, seed=3) as pipeline:
        for step in range(14):
            epoch, k = divmod(step, 6)
            rows = np.random.default_rng([3, epoch]).permutation(50)[k * 8 : (k + 1) * 8]
            expected = {
                "image": images[rows],
                "label": labels[rows],
                "example_ids": (step * 8 + np.arange(8)).astype(np.int32),
            }
            assert _equal(next(pipeline), expected), step
    unlabelled = Pipeline(source, 8, seed=3, keys=("image",))
    assert set(next(unlabelled)) == {"image", "example_ids"}
    with pytest.raises(ValueError, match="no \\['caption'\\]"):
        Pipeline(source, 8, seed=3, keys=("image", "caption"))
    with pytest.raises(ValueError, match="need views"):
        Pipeline(source, 8, seed=3, views=VIEWS)


def test_photo_batches_are_the_same_for_any_worker_count(tmp_path):
    """Views, labels and example_ids of steps 0-4 (two epochs of 14 photos at 6 a step) equal for
    0 (in this process) and 2 grain worker processes (one worker runs in test_a_broken_photo...)."""
    photos = _folder(tmp_path)
    expected = [Pipeline(photos, 6, seed=1, views=VIEWS).batch_at(s) for s in range(5)]
    first = expected[0]
    assert set(first) == {"view_0", "view_1", "label", "example_ids"}
    assert first["view_0"].shape == (6, 16, 16, 3) and first["view_0"].dtype == np.uint8
    assert not np.array_equal(first["view_0"], first["view_1"])
    for workers in (0, 2):
        with Pipeline(photos, 6, seed=1, views=VIEWS, num_workers=workers) as pipeline:
            got = [next(pipeline) for _ in range(5)]
        assert all(_equal(g, e) for g, e in zip(got, expected, strict=True)), workers
    other_seed = Pipeline(photos, 6, seed=2, views=VIEWS).batch_at(0)
    assert not np.array_equal(other_seed["view_0"], first["view_0"])


def test_mid_epoch_resume_from_the_checkpointed_state(tmp_path):
    """A pipeline killed after step 3 and rebuilt from its JSON state continues with the batches
    of the uninterrupted run, with another worker count too; a state saved under another seed is
    refused."""
    photos = _folder(tmp_path)
    with Pipeline(photos, 4, seed=5, views=VIEWS) as pipeline:
        uninterrupted = [next(pipeline) for _ in range(6)]
    with Pipeline(photos, 4, seed=5, views=VIEWS) as pipeline:
        for _ in range(3):
            next(pipeline)
        saved = json.loads(json.dumps(pipeline.get_state()))  # as Orbax's JSON item stores it
    assert saved["step"] == 3
    for workers in (0, 2):
        with Pipeline(photos, 4, seed=5, views=VIEWS, num_workers=workers) as resumed:
            resumed.set_state(saved)
            assert all(_equal(next(resumed), b) for b in uninterrupted[3:])
            assert resumed.get_state()["step"] == 6
    restarted = Pipeline(photos, 4, seed=5, views=VIEWS, start_step=3)
    assert _equal(next(restarted), uninterrupted[3])
    with pytest.raises(ValueError, match="seed"):
        Pipeline(photos, 4, seed=6, views=VIEWS).set_state(saved)
    with pytest.raises(ValueError, match="global_batch_size"):
        Pipeline(photos, 2, seed=5, views=VIEWS).set_state(saved)
    legacy = Pipeline(
        photos, 4, seed=5, views=VIEWS
    )  # the {"step", "seed"} older checkpoints saved
    legacy.set_state({"step": 3, "seed": 5})
    assert _equal(next(legacy), uninterrupted[3])


def test_two_processes_equal_one(tmp_path):
    """Process 0 and process 1 of two hold the two halves of the one-process global batch: the
    same views (keyed by global row), labels and example_ids."""
    photos = _folder(tmp_path)
    one = Pipeline(photos, 6, seed=4, views=VIEWS)
    halves = [
        Pipeline(photos, 6, seed=4, views=VIEWS, process_index=p, process_count=2) for p in (0, 1)
    ]
    for step in (0, 1, 2):
        parts = [h.batch_at(step) for h in halves]
        joined = {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}
        assert _equal(joined, one.batch_at(step))
    with pytest.raises(ValueError, match="multiple of the process count"):
        Pipeline(photos, 5, seed=4, views=VIEWS, process_count=2)


_SHARD_SCRIPT = """
import sys
import numpy as np
from ssl_jax.data import ImageFolderSource
from ssl_jax.data.photos import FolderPhotos, simclr_views
from ssl_jax.data.pipeline import Pipeline
root, index, out = sys.argv[1], int(sys.argv[2]), sys.argv[3]
photos = FolderPhotos.from_source(ImageFolderSource(root))
pipeline = Pipeline(photos, 6, seed=4, views=simclr_views(16), process_index=index, process_count=2)
np.savez(out, **{f"{k}_{s}": v for s in (0, 1, 2) for k, v in pipeline.batch_at(s).items()})
"""


def test_two_os_processes_equal_one(tmp_path):
    """The same check with each half computed in its own Python process (as two hosts would)."""
    photos = _folder(tmp_path)
    root = str(tmp_path / "photos")
    outs = [str(tmp_path / f"process_{p}.npz") for p in (0, 1)]
    runs = [
        subprocess.Popen([sys.executable, "-c", _SHARD_SCRIPT, root, str(p), outs[p]])
        for p in (0, 1)
    ]
    assert [run.wait(timeout=120) for run in runs] == [0, 0]
    parts = [np.load(out) for out in outs]
    one = Pipeline(photos, 6, seed=4, views=VIEWS)
    for step in (0, 1, 2):
        expected = one.batch_at(step)
        for key, value in expected.items():
            joined = np.concatenate([part[f"{key}_{step}"] for part in parts])
            np.testing.assert_array_equal(joined, value)


def test_multicrop_batches(tmp_path):
    """DINO's 2 global + 3 local views, each its own size."""
    photos = _folder(tmp_path)
    views = multicrop_views(16, 8, num_local=3)
    batch = Pipeline(photos, 4, seed=0, views=views).batch_at(0)
    shapes = [batch[f"view_{i}"].shape for i in range(5)]
    assert shapes == [(4, 16, 16, 3)] * 2 + [(4, 8, 8, 3)] * 3


def test_eval_batches_resize_and_centre_crop_every_photo_once(tmp_path):
    """Every photo once, in order, padded at the end with mask False, split across processes, each
    image the photos.decode_eval crop."""
    photos = _folder(tmp_path, n=7)
    batches = list(eval_batches(photos, 4, image_size=12))
    assert [b["image"].shape for b in batches] == [(4, 12, 12, 3)] * 2
    assert np.concatenate([b["mask"] for b in batches]).tolist() == [True] * 7 + [False]
    np.testing.assert_array_equal(batches[1]["example_ids"], [4, 5, 6, 7])
    for i in range(7):
        expected = decode_eval(photos.paths[i], 12)
        np.testing.assert_array_equal(batches[i // 4]["image"][i % 4], expected)
    np.testing.assert_array_equal(batches[0]["label"], photos.labels[:4])
    second = list(eval_batches(photos, 4, image_size=12, process_index=1, process_count=2))
    np.testing.assert_array_equal(second[1]["image"], batches[1]["image"][2:])


def test_a_broken_photo_stops_the_run_naming_the_file(tmp_path):
    """Nothing is silently dropped: the batch holding a truncated JPEG raises PhotoError with its
    path, in this process and from a worker process."""
    photos = _folder(tmp_path, n=8)
    broken = photos.paths[3]
    data = open(broken, "rb").read()
    with open(broken, "wb") as f:
        f.write(data[: len(data) // 3])
    for workers in (0, 1):
        with pytest.raises(PhotoError, match=broken):
            with Pipeline(photos, 8, seed=0, views=VIEWS, num_workers=workers) as pipeline:
                next(pipeline)


def test_tfds_photos_keep_the_encoded_jpegs(tmp_path):
    """A tfds ArrayRecord dataset of the folder's JPEG files, prepared here without TensorFlow, is
    read with its images still encoded: each record's bytes are one of the files, byte for byte,
    its label that file's class; the source pickles without its open files (for grain's workers)
    and gives the same batches after the round trip."""
    pytest.importorskip("tensorflow_datasets")
    folder = _folder(tmp_path, n=6)

    input_pipeline = _benchmark("input_pipeline")
    input_pipeline.build_tfds(
        str(tmp_path / "tfds"), folder.paths, [int(v) for v in folder.labels], num_classes=2
    )

    photos = TfdsPhotos("ssl_jax_photos", "train", str(tmp_path / "tfds"))
    assert len(photos) == 6
    files = {
        open(p, "rb").read(): int(label)
        for p, label in zip(folder.paths, folder.labels, strict=True)
    }
    for i in range(6):
        data, where, label = photos.example(i)
        assert files[data] == label and where == f"ssl_jax_photos[train] #{i}"
    batch = Pipeline(photos, 4, seed=0, views=VIEWS).batch_at(0)
    again = Pipeline(pickle.loads(pickle.dumps(photos)), 4, seed=0, views=VIEWS).batch_at(0)
    assert _equal(batch, again) and batch["view_0"].shape == (4, 16, 16, 3)
