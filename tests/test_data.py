"""Tests of ssl_jax.data: IDX parsing, every source, the resumable sharded loader, eval batches."""

import ast
import gzip
import os
import pathlib
import struct

import ml_collections
import numpy as np
import pytest
from PIL import Image

from ssl_jax.data import (
    EMBEDDED_PATH,
    FASHION_MNIST_CLASSES,
    SOURCES,
    ArraySource,
    DatasetNotFoundError,
    ImageFolderSource,
    NpzSource,
    Source,
    TfdsSource,
    embedded_fashion_mnist,
    eval_batches,
    fashion_mnist,
    get_source,
    load_idx,
    registry,
)
from ssl_jax.data.pipeline import Pipeline

from engine_checks import idx_bytes

# --------------------------------------------------------------------------------------- helpers


def id_source(n: int, labels: bool = True) -> ArraySource:
    """A source whose image i spells i in two pixels, so batches can be traced back to rows."""
    ids = np.arange(n)
    images = np.stack([ids // 256, ids % 256], axis=1).astype(np.uint8).reshape(n, 1, 2)
    return ArraySource(images, ids % 10 if labels else None, name="ids")


def ids_of(batch: dict) -> np.ndarray:
    image = batch["image"].astype(np.int64)
    return image[:, 0, 0, 0] * 256 + image[:, 0, 1, 0]


def take(loader, k: int) -> list[dict]:
    return [next(loader) for _ in range(k)]


def assert_batches_equal(a: list[dict], b: list[dict]) -> None:
    assert len(a) == len(b)
    for x, y in zip(a, b, strict=True):
        assert x.keys() == y.keys()
        for key in x:
            np.testing.assert_array_equal(x[key], y[key], err_msg=key)


# ------------------------------------------------------------------------------------------ IDX


@pytest.mark.parametrize("gzipped", [False, True])
def test_load_idx_hand_written(tmp_path, gzipped):
    images = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)
    ints = np.array([1, -2, 70000, -(2**31)], np.int32)
    for name, array, code in [("u8", images, 0x08), ("i32", ints, 0x0C)]:
        data = idx_bytes(array, code)
        path = tmp_path / name  # no .gz suffix: gzip is recognised by its magic bytes
        path.write_bytes(gzip.compress(data) if gzipped else data)
        got = load_idx(str(path))
        assert got.dtype == array.dtype and got.dtype.isnative
        np.testing.assert_array_equal(got, array)


def test_load_idx_rejects_bad_files(tmp_path):
    good = idx_bytes(np.zeros((2, 3), np.uint8), 0x08)
    (tmp_path / "short").write_bytes(good[:-1])
    (tmp_path / "magic").write_bytes(b"\x01" + good[1:])
    with pytest.raises(ValueError, match="header says"):
        load_idx(str(tmp_path / "short"))
    with pytest.raises(ValueError, match="not an IDX file"):
        load_idx(str(tmp_path / "magic"))


def test_fashion_mnist_reads_raw_files(tmp_path):
    images = np.arange(3 * 28 * 28, dtype=np.uint8).reshape(3, 28, 28)
    (tmp_path / "t10k-images-idx3-ubyte").write_bytes(idx_bytes(images, 0x08))
    with pytest.raises(
        DatasetNotFoundError, match=r"file t10k-labels-idx1-ubyte\(\.gz\) not found"
    ):
        fashion_mnist(str(tmp_path), "test")
    (tmp_path / "t10k-labels-idx1-ubyte").write_bytes(idx_bytes(np.array([9, 0, 9], np.uint8), 8))
    source = fashion_mnist(str(tmp_path), "test")
    np.testing.assert_array_equal(source.get(np.array([1]))["image"][0, ..., 0], images[1])
    assert source.labels.tolist() == [9, 0, 9] and source.num_classes == 10


def test_real_fashion_mnist(shared_data_dir):
    directory = os.path.join(shared_data_dir, "fashion-mnist")
    with gzip.open(os.path.join(directory, "t10k-images-idx3-ubyte.gz")) as f:
        assert struct.unpack(">IIII", f.read(16)) == (0x803, 10000, 28, 28)
    train_labels = load_idx(os.path.join(directory, "train-labels-idx1-ubyte.gz"))
    assert train_labels.shape == (60000,) and train_labels.dtype == np.uint8
    np.testing.assert_array_equal(np.bincount(train_labels), [6000] * 10)
    test = fashion_mnist(directory, "test")
    assert len(test) == 10000 and test.image_shape == (28, 28, 1) and test.num_classes == 10
    np.testing.assert_array_equal(np.bincount(test.labels), [1000] * 10)
    batch = test.get(np.array([0, 9999]))
    assert batch["image"].shape == (2, 28, 28, 1) and batch["label"].dtype == np.int32


# -------------------------------------------------------------------------------------- sources


def test_array_source_validation():
    with pytest.raises(ValueError, match=r"uint8.*got dtype float32"):
        ArraySource(np.zeros((4, 8, 8), np.float32))
    with pytest.raises(ValueError, match=r"C in \(1, 3\); got shape \(4, 8, 8, 2\)"):
        ArraySource(np.zeros((4, 8, 8, 2), np.uint8))
    with pytest.raises(ValueError, match=r"got shape \(4, 8\)"):
        ArraySource(np.zeros((4, 8), np.uint8))
    with pytest.raises(ValueError, match=r"labels of shape \(4,\)"):
        ArraySource(np.zeros((4, 8, 8), np.uint8), np.zeros(3, np.int64))
    with pytest.raises(ValueError, match=r"labels of shape"):
        ArraySource(np.zeros((4, 8, 8), np.uint8), np.zeros(4, np.float32))
    with pytest.raises(ValueError, match=r"\[0, 3\)"):
        ArraySource(np.zeros((4, 8, 8), np.uint8), np.array([0, 1, 2, 3]), num_classes=3)


def test_array_source_get():
    images = np.random.default_rng(0).integers(0, 256, (5, 4, 4, 3), dtype=np.uint8)
    source = ArraySource(images, np.array([0, 2, 1, 2, 0], np.int64))
    assert isinstance(source, Source)
    assert (len(source), source.image_shape, source.num_classes) == (5, (4, 4, 3), 3)
    batch = source.get(np.array([3, 1]))
    np.testing.assert_array_equal(batch["image"], images[[3, 1]])
    assert batch["label"].dtype == np.int32 and batch["label"].tolist() == [2, 2]
    gray = ArraySource(images[..., 0])
    assert gray.image_shape == (4, 4, 1) and gray.num_classes is None
    assert set(gray.get(np.array([0]))) == {"image"}
    with pytest.raises(IndexError):
        source.get(np.array([-1]))
    with pytest.raises(IndexError):
        source.get(np.array([5]))


def write_png(path, array):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(path)


def test_image_folder(tmp_path):
    rng = np.random.default_rng(0)
    dog = rng.integers(0, 256, (6, 5, 3), dtype=np.uint8)
    cats = [rng.integers(0, 256, (6, 5, 3), dtype=np.uint8) for _ in range(2)]
    write_png(tmp_path / "b_cat" / "1.png", cats[0])
    write_png(tmp_path / "b_cat" / "nested" / "2.png", cats[1])
    write_png(tmp_path / "a_dog" / "x.png", dog)
    (tmp_path / "a_dog" / "notes.txt").write_text("not an image")
    source = ImageFolderSource(str(tmp_path))
    assert source.class_names == ("a_dog", "b_cat") and source.num_classes == 2
    assert len(source) == 3 and source.image_shape == (6, 5, 3)
    batch = source.get(np.arange(3))
    np.testing.assert_array_equal(batch["image"], np.stack([dog, *cats]))  # PNG is lossless
    assert batch["label"].tolist() == [0, 1, 1]

    resized = ImageFolderSource(str(tmp_path), image_size=(4, 3))
    assert resized.get(np.array([2]))["image"].shape == (1, 4, 3, 3)
    gray = ImageFolderSource(str(tmp_path), image_size=8, grayscale=True)
    assert gray.image_shape == (8, 8, 1) and gray.get(np.array([0]))["image"].shape == (1, 8, 8, 1)


def test_image_folder_grayscale_and_errors(tmp_path):
    write_png(tmp_path / "c" / "a.png", np.full((4, 4), 7, np.uint8))
    write_png(tmp_path / "c" / "b.png", np.full((5, 4), 9, np.uint8))
    source = ImageFolderSource(str(tmp_path))
    assert source.image_shape == (4, 4, 1)
    np.testing.assert_array_equal(source.get(np.array([0]))["image"], np.full((1, 4, 4, 1), 7))
    with pytest.raises(ValueError, match="image_size"):
        source.get(np.array([0, 1]))
    with pytest.raises(DatasetNotFoundError, match="does not exist"):
        ImageFolderSource(str(tmp_path / "missing"))
    (tmp_path / "empty" / "cls").mkdir(parents=True)
    with pytest.raises(DatasetNotFoundError, match="no images"):
        ImageFolderSource(str(tmp_path / "empty"))


def test_npz(tmp_path):
    images = np.arange(3 * 4 * 4, dtype=np.uint8).reshape(3, 4, 4)
    np.savez(tmp_path / "plain.npz", images=images, labels=np.array([1, 0, 1]))
    np.savez(tmp_path / "splits.npz", test_images=images[:2], test_labels=np.array([0, 1]))
    plain = NpzSource(str(tmp_path / "plain.npz"))
    assert plain.name == "plain" and len(plain) == 3 and plain.num_classes == 2
    np.testing.assert_array_equal(plain.get(np.array([2]))["image"][0, ..., 0], images[2])
    assert len(NpzSource(str(tmp_path / "splits.npz"), "test")) == 2
    with pytest.raises(ValueError, match=r"no array train_images; it holds \['test_images'"):
        NpzSource(str(tmp_path / "splits.npz"), "train")
    with pytest.raises(DatasetNotFoundError, match="does not exist"):
        NpzSource(str(tmp_path / "missing.npz"))


def test_embedded_subset(shared_data_dir):
    assert os.path.getsize(EMBEDDED_PATH) <= 5_000_000
    directory = os.path.join(shared_data_dir, "fashion-mnist")
    for split, per_class in [("train", 900), ("test", 200)]:
        source = embedded_fashion_mnist(split)
        assert len(source) == 10 * per_class and source.image_shape == (28, 28, 1)
        assert source.num_classes == 10 and source.class_names == FASHION_MNIST_CLASSES
        np.testing.assert_array_equal(np.bincount(source.labels), [per_class] * 10)
        # Every embedded example is a real Fashion-MNIST example with its real label.
        full = fashion_mnist(directory, split)
        real = {img.tobytes(): label for img, label in zip(full.images, full.labels, strict=True)}
        assert all(
            real.get(img.tobytes()) == label
            for img, label in zip(source.images, source.labels, strict=True)
        )


# -------------------------------------------------------------------------------------- loader


def test_loader_batch_is_pure_function_of_seed_and_step():
    source = id_source(50)
    with Pipeline(source, 8, seed=3) as loader:
        assert loader.steps_per_epoch == 6
        batches = take(loader, 14)
    # Independent reference for step 13: epoch 2, batch 1 of that epoch.
    perm = np.random.default_rng([3, 2]).permutation(50)
    np.testing.assert_array_equal(ids_of(batches[13]), perm[8:16])
    np.testing.assert_array_equal(batches[13]["label"], perm[8:16] % 10)
    with Pipeline(source, 8, seed=3, prefetch=0) as again:
        assert_batches_equal(batches, take(again, 14))
    assert_batches_equal(batches, [again.batch_at(s) for s in range(14)])
    with Pipeline(source, 8, seed=4) as other:
        assert not np.array_equal(ids_of(next(other)), ids_of(batches[0]))


def test_loader_resume_matches_uninterrupted():
    source = id_source(37)
    with Pipeline(source, 6, seed=0) as loader:
        full = take(loader, 20)
        assert loader.step == 20
    for start in (1, 6, 13):
        with Pipeline(source, 6, seed=0, start_step=start, prefetch=3) as resumed:
            assert resumed.step == start
            assert_batches_equal(take(resumed, 20 - start), full[start:])
            assert resumed.step == 20


def test_loader_epochs_cover_every_example_once():
    source = id_source(50)
    with Pipeline(source, 8, seed=1) as loader:
        epochs = [np.concatenate([ids_of(next(loader)) for _ in range(6)]) for _ in range(3)]
    for ids in epochs:
        assert len(ids) == 48 and len(np.unique(ids)) == 48  # the remainder of 2 is dropped
    assert not np.array_equal(epochs[0], epochs[1])
    with Pipeline(source, 8, seed=1, shuffle=False) as ordered:
        np.testing.assert_array_equal(
            [ids_of(b) for b in take(ordered, 7)][-1], np.arange(8)
        )  # step 6 starts epoch 1 from row 0


def test_loader_process_shards_and_example_ids():
    source = id_source(64)
    with Pipeline(source, 16, seed=5) as whole:
        reference = take(whole, 5)
    shards = []
    for p in range(4):
        with Pipeline(source, 16, seed=5, process_index=p, process_count=4) as loader:
            assert loader.local_batch_size == 4
            shards.append(take(loader, 5))
    for step in range(5):
        ids = [ids_of(shards[p][step]) for p in range(4)]
        assert len(np.unique(np.concatenate(ids))) == 16  # disjoint
        np.testing.assert_array_equal(np.concatenate(ids), ids_of(reference[step]))
        example_ids = np.concatenate([shards[p][step]["example_ids"] for p in range(4)])
        assert example_ids.dtype == np.int32
        np.testing.assert_array_equal(example_ids, step * 16 + np.arange(16))
        np.testing.assert_array_equal(example_ids, reference[step]["example_ids"])


def test_loader_argument_errors():
    with pytest.raises(ValueError, match=r"global batch size \(10\).*process count \(4\)"):
        Pipeline(id_source(64), 10, seed=0, process_count=4)
    with pytest.raises(ValueError, match="has 5 examples, fewer than one global batch"):
        Pipeline(id_source(5), 8, seed=0)
    with pytest.raises(ValueError, match=r"has no \['label'\]"):
        Pipeline(id_source(16, labels=False), 8, seed=0)
    with Pipeline(id_source(16, labels=False), 8, seed=0, keys=("image",)) as loader:
        assert set(next(loader)) == {"image", "example_ids"}


def test_loader_close_stops_and_next_resumes_at_its_step():
    """close() ends the reading (its threads or worker processes); a later next() starts again at
    the step it had reached, so closing loses no batch and repeats none."""
    source = id_source(32)
    with Pipeline(source, 8, seed=0) as reference:
        expected = take(reference, 4)
    loader = Pipeline(source, 8, seed=0)
    first = take(loader, 2)
    loader.close()
    loader.close()
    assert loader.step == 2
    assert_batches_equal(first + take(loader, 2), expected)
    loader.close()


class FailingSource(ArraySource):
    def get(self, indices):
        if indices.min() >= 8:
            raise OSError("disk went away")
        return super().get(indices)


def test_loader_reraises_source_errors():
    source = FailingSource(np.zeros((16, 2, 2), np.uint8), np.zeros(16, np.int32))
    with Pipeline(source, 8, seed=0, shuffle=False) as loader:
        next(loader)
        with pytest.raises(OSError, match="disk went away"):
            next(loader)


@pytest.mark.parametrize("process_count", [1, 2])
def test_eval_batches_cover_everything_once(process_count):
    source = id_source(10)
    per_process = [
        list(eval_batches(source, 4, process_index=p, process_count=process_count))
        for p in range(process_count)
    ]
    assert all(len(batches) == 3 for batches in per_process)
    seen = []
    for step in range(3):
        for p in range(process_count):
            batch = per_process[p][step]
            assert batch["image"].shape[0] == 4 // process_count
            assert batch["mask"].dtype == bool
            seen += ids_of(batch)[batch["mask"]].tolist()
            np.testing.assert_array_equal(
                batch["example_ids"][batch["mask"]], ids_of(batch)[batch["mask"]]
            )
    assert seen == list(range(10))
    last = np.concatenate([per_process[p][2]["mask"] for p in range(process_count)])
    assert last.tolist() == [True, True, False, False]


# ---------------------------------------------------------------------------------- get_source


def test_get_source_unknown_name():
    with pytest.raises(ValueError) as info:
        get_source({"name": "mnistt"}, "train")
    message = str(info.value)
    assert "'mnistt'" in message
    for name in ("embedded_fashion_mnist", "fashion_mnist", "npz", "image_folder", "tfds"):
        assert name in message


def test_get_source_missing_data(tmp_path):
    with pytest.raises(DatasetNotFoundError) as info:
        get_source(
            ml_collections.ConfigDict({"name": "fashion_mnist", "data_dir": "/nope"}), "test"
        )
    assert isinstance(info.value, FileNotFoundError)
    message = str(info.value)
    assert "apt-get install dataset-fashion-mnist" in message
    assert "/usr/share/datasets/fashion-mnist" in message and "t10k-labels-idx1-ubyte.gz" in message
    with pytest.raises(DatasetNotFoundError, match="data_dir"):
        get_source({"name": "fashion_mnist"}, "train")
    with pytest.raises(DatasetNotFoundError, match=r"train/<class_name>"):
        get_source({"name": "image_folder", "data_dir": None}, "train")
    with pytest.raises(DatasetNotFoundError, match="does not exist"):
        get_source({"name": "image_folder", "data_dir": str(tmp_path)}, "train")
    with pytest.raises(DatasetNotFoundError, match="missing.npz"):
        get_source({"name": "npz", "path": str(tmp_path / "missing.npz")}, "train")


def test_get_source_by_name(tmp_path, shared_data_dir):
    embedded = get_source(ml_collections.ConfigDict({"name": "embedded_fashion_mnist"}), "test")
    assert embedded.name == "embedded_fashion_mnist" and len(embedded) == 2000
    directory = os.path.join(shared_data_dir, "fashion-mnist")
    assert len(get_source({"name": "fashion_mnist", "data_dir": directory}, "test")) == 10000
    for split, n in [("train", 3), ("test", 2)]:
        np.savez(tmp_path / f"{split}.npz", images=np.zeros((n, 2, 2), np.uint8))
    source = get_source({"name": "npz", "path": str(tmp_path / "{split}.npz")}, "test")
    assert len(source) == 2 and source.num_classes is None
    write_png(tmp_path / "folders" / "train" / "k" / "a.png", np.zeros((3, 3), np.uint8))
    cfg = ml_collections.ConfigDict({"name": "image_folder", "data_dir": str(tmp_path / "folders")})
    cfg.image_size = 5
    assert get_source(cfg, "train").image_shape == (5, 5, 1)


def test_every_source_module_registers_its_names():
    """The data.name values configs use, each registered by its module on `import ssl_jax.data`."""
    assert set(SOURCES) == {
        "embedded_fashion_mnist",
        "fashion_mnist",
        "npz",
        "image_folder",
        "tfds",
        "text_files",
        "tfds_text",
        "captioned",
        "tfds_captions",
        "moving_fashion_mnist",
        "tfds_video",
        "class_subset",
        "synthetic_signals",
        "skipgram_text",
        "skimage_samples",
    }
    with pytest.raises(ValueError, match="already registered"):
        registry.register("npz")(lambda cfg, split: None)
    assert registry.register("npz")(SOURCES["npz"]) is SOURCES["npz"]  # re-registering the same


def test_data_modules_import_one_way():
    """No import cycle among ssl_jax/data's modules, and no module imports a sibling inside a
    function (the lazy-import shims a cycle would need)."""
    package = pathlib.Path(registry.__file__).parent
    names = {path.stem for path in package.glob("*.py")} - {"__init__"}
    imports, nested = {}, []
    for name in names:
        tree = ast.parse((package / f"{name}.py").read_text())
        imports[name] = set()
        for node in ast.walk(tree):
            if not isinstance(node, ast.ImportFrom) or node.module is None:
                continue
            targets = {node.module.removeprefix("ssl_jax.data.")} | {a.name for a in node.names}
            siblings = targets & names if node.module.startswith("ssl_jax.data") else set()
            imports[name] |= siblings
            if siblings and node not in tree.body:
                nested.append(f"{name}: {ast.unparse(node)}")
    assert not nested
    done: set[str] = set()

    def visit(name: str, path: tuple[str, ...]) -> None:
        assert name not in path, f"import cycle: {' -> '.join((*path, name))}"
        if name not in done:
            for dep in imports[name]:
                visit(dep, (*path, name))
            done.add(name)

    for name in sorted(names):
        visit(name, ())


# ---------------------------------------------------------------------------------------- tfds


def test_tfds_missing_dataset(tmp_path):
    with pytest.raises(DatasetNotFoundError) as info:
        get_source({"name": "tfds", "tfds_name": "mnist", "data_dir": str(tmp_path)}, "train")
    message = str(info.value)
    assert "is not prepared" in message and str(tmp_path) in message
    assert "pip install 'ssl_jax[tf]'" in message
    assert f"tfds build mnist --data_dir {tmp_path} --file_format=array_record" in message
    with pytest.raises(DatasetNotFoundError, match="is neither known nor found"):
        TfdsSource("no_such_dataset_xyz", "train", data_dir=str(tmp_path))
    with pytest.raises(ValueError, match="tfds_name"):
        get_source({"name": "tfds"}, "train")


def test_tfds_reads_prepared_array_record(tmp_path):
    """A tiny dataset prepared here without TensorFlow (tfds encodes PIL images with PIL)."""
    tfds = pytest.importorskip("tensorflow_datasets")
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (6, 5, 4, 3), dtype=np.uint8)

    # Unregistered, so TfdsSource finds it from its files alone, as a user's prepared data.
    with tfds.core.registered.skip_registration():

        class SslJaxTiny(tfds.core.GeneratorBasedBuilder):
            VERSION = tfds.core.Version("1.0.0")

            def _info(self):
                features = {
                    "image": tfds.features.Image(shape=(5, 4, 3)),
                    "label": tfds.features.ClassLabel(names=["a", "b", "c"]),
                }
                return tfds.core.DatasetInfo(
                    builder=self, features=tfds.features.FeaturesDict(features)
                )

            def _split_generators(self, dl_manager):
                return {
                    "train": self._generate_examples(range(4)),
                    "test": self._generate_examples(range(4, 6)),
                }

            def _generate_examples(self, rows):
                for i in rows:
                    yield i, {"image": Image.fromarray(images[i]), "label": i % 3}

        SslJaxTiny(data_dir=str(tmp_path), file_format="array_record").download_and_prepare()

    cfg = {"name": "tfds", "tfds_name": "ssl_jax_tiny", "data_dir": str(tmp_path)}
    train = get_source(cfg, "train")
    assert (len(train), train.image_shape, train.num_classes) == (4, (5, 4, 3), 3)
    assert train.class_names == ("a", "b", "c")
    batch = train.get(np.arange(4))
    assert batch["image"].dtype == np.uint8 and batch["label"].dtype == np.int32
    # tfds stores examples in hashed-key order, so match each record to the example it came from.
    rows = [
        int(np.flatnonzero((images == image).all(axis=(1, 2, 3)))[0]) for image in batch["image"]
    ]
    assert sorted(rows) == [0, 1, 2, 3] and batch["label"].tolist() == [r % 3 for r in rows]
    test = get_source({**cfg, "test_split": "test[1:]"}, "test")
    assert len(test) == 1 and any(
        np.array_equal(test.get([0])["image"][0], images[i]) for i in (4, 5)
    )
    small = TfdsSource("ssl_jax_tiny", "train", data_dir=str(tmp_path), image_size=2)
    assert small.image_shape == (2, 2, 3) and small.get(np.arange(4))["image"].shape == (4, 2, 2, 3)
