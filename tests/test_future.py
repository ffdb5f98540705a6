"""Future prediction in feature space: the loss and collapse indicator against NumPy references, the
sequence sources (moving / rotating Fashion-MNIST items, tfds video records faked in memory), the
regression windows, the collapse of a trainable phi against a frozen one, and a CLI run whose phi comes
from another run's checkpoint."""

import json
import os

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.sharding import PartitionSpec as P
from PIL import Image

from ssl_jax import cli, data, models, parallel, reporting
from ssl_jax.data import sequences
from ssl_jax.losses import feature_regression_loss, feature_std
from ssl_jax.methods import get_method
from ssl_jax.methods.future_prediction import windows

import engine_checks

SMOKE = "future_prediction_fashion_mnist.py:smoke"

# ---------------------------------------------------------------- losses


def regression_reference(p: np.ndarray, t: np.ndarray) -> np.ndarray:
    """Vondrick et al. 2016, eq. 1: ||g(x_t) - phi(x_{t+1})||_2^2 per example, in float64 loops."""
    return np.array(
        [
            sum((float(a) - float(b)) ** 2 for a, b in zip(pr, tr, strict=True))
            for pr, tr in zip(p, t, strict=True)
        ]
    )


def std_reference(x: np.ndarray) -> float:
    """Mean over features of the population standard deviation over examples."""
    x = x.astype(np.float64)
    n = len(x)
    stds = []
    for j in range(x.shape[1]):
        mean = sum(x[:, j]) / n
        stds.append((sum((x[:, j] - mean) ** 2) / n) ** 0.5)
    return float(np.mean(stds))


def _features(n=16, d=6, seed=0):
    rng = np.random.default_rng(seed)
    p = rng.normal(size=(n, d)).astype(np.float32)
    t = (p + 0.5 * rng.normal(size=(n, d)) + 3.0).astype(np.float32)
    return p, t


def test_feature_regression_loss_matches_numpy_reference():
    p, t = _features()
    got = jax.jit(feature_regression_loss)(p, t)
    assert got.shape == (16,) and got.dtype == jnp.float32
    np.testing.assert_allclose(got, regression_reference(p, t), rtol=1e-5)
    np.testing.assert_array_equal(feature_regression_loss(t, t), np.zeros(16, np.float32))
    bf16 = feature_regression_loss(jnp.asarray(p, jnp.bfloat16), jnp.asarray(t, jnp.bfloat16))
    assert bf16.dtype == jnp.float32
    np.testing.assert_allclose(bf16, regression_reference(p, t), rtol=3e-2)
    # Gradient: 2 (p - t) into the prediction and, with no stop_gradient inside, -2 (p - t) into the
    # target (what lets a trainable phi collapse).
    gp, gt = jax.grad(lambda a, b: feature_regression_loss(a, b).sum(), argnums=(0, 1))(p, t)
    np.testing.assert_allclose(gp, 2 * (p - t), rtol=1e-5)
    np.testing.assert_allclose(gt, -2 * (p - t), rtol=1e-5)


def test_feature_std_matches_reference_and_the_global_batch(n_devices):
    p, t = _features(n=16)
    np.testing.assert_allclose(feature_std(t), std_reference(t), rtol=1e-5)
    constant = np.tile(t[:1], (16, 1))
    assert float(feature_std(constant)) < 1e-6  # collapse reads 0 (up to the mean's rounding)
    mesh = parallel.make_mesh(jax.devices()[:n_devices])
    sharded = parallel.per_device(
        lambda x: feature_std(x, axis_name=parallel.DATA_AXIS),
        mesh,
        in_specs=P("data"),
        out_specs=P(),
    )
    np.testing.assert_allclose(jax.jit(sharded)(t), std_reference(t), rtol=1e-5)


def test_bad_inputs_are_clear_errors():
    p, t = _features()
    with pytest.raises(TypeError, match="floating"):
        feature_regression_loss(p.astype(np.int32), t)
    with pytest.raises(ValueError, match="same shape"):
        feature_regression_loss(p, t[:, :3])
    with pytest.raises(ValueError, match="rank 2"):
        feature_std(p[0])


# ---------------------------------------------------------------- sequence sources


def test_bounce_reflects_off_both_walls():
    t = np.arange(12)
    got = sequences.bounce(np.int64(1), np.int64(3), t, 5)
    expected, p, v = [], 1, 3
    for _ in t:  # step-by-step simulation with reflection, the independent reference
        expected.append(p)
        p += v
        if p > 5:
            p, v = 10 - p, -v
        elif p < 0:
            p, v = -p, -v
    np.testing.assert_array_equal(got, expected)


@pytest.fixture(scope="module")
def embedded_train():
    return data.embedded_fashion_mnist("train")


def test_moving_items_are_real_items_moving_deterministically(embedded_train):
    source = sequences.MovingItemsSource(embedded_train, num_frames=5, canvas_size=40, seed=3)
    rows = np.array([0, 7, 123])
    batch = source.get(rows)
    assert batch["frames"].shape == (3, 5, 40, 40, 1) and batch["frames"].dtype == np.uint8
    np.testing.assert_array_equal(batch["label"], embedded_train.get(rows)["label"])
    np.testing.assert_array_equal(batch["image"], batch["frames"][:, 0])
    items = embedded_train.get(rows)["image"]
    for clip, item in zip(batch["frames"], items, strict=True):
        positions = []
        for frame in clip:  # each frame holds the whole item, pasted unchanged somewhere
            ys, xs = np.nonzero(frame[..., 0])
            y0 = ys.min() - np.nonzero(item[..., 0])[0].min()
            x0 = xs.min() - np.nonzero(item[..., 0])[1].min()
            np.testing.assert_array_equal(frame[y0 : y0 + 28, x0 : x0 + 28], item)
            assert frame.sum(dtype=np.int64) == item.sum(dtype=np.int64)
            positions.append((y0, x0))
        assert len(set(positions)) > 1  # it moves
        steps = np.abs(np.diff(np.array(positions), axis=0))
        assert steps.max() <= 3  # max_speed, bounces included
    # A pure function of (seed, split, row): the same alone or in another batch, other seeds differ.
    np.testing.assert_array_equal(source.get(np.array([7]))["frames"][0], batch["frames"][1])
    other = sequences.MovingItemsSource(embedded_train, num_frames=5, canvas_size=40, seed=4)
    assert not np.array_equal(other.get(rows)["frames"], batch["frames"])
    test_split = sequences.MovingItemsSource(embedded_train, num_frames=5, split="test", seed=3)
    assert not np.array_equal(test_split.get(rows)["frames"], batch["frames"])


def test_rotating_items_turn_about_the_centre(embedded_train):
    source = sequences.MovingItemsSource(
        embedded_train, num_frames=4, canvas_size=40, motion="rotate", seed=0
    )
    frames = source.get(np.array([5]))["frames"][0, ..., 0].astype(np.float64)
    rng = np.random.default_rng([0, source._split_key, 5])
    start = rng.uniform(0.0, 360.0)
    step = rng.uniform(10.0, 30.0) * rng.choice([-1.0, 1.0])
    canvas = np.zeros((40, 40), np.uint8)
    canvas[6:34, 6:34] = embedded_train.get(np.array([5]))["image"][0, ..., 0]
    for k, frame in enumerate(frames):  # each frame is the centred item turned by start + k * step
        turned = Image.fromarray(canvas).rotate(
            start + k * step, resample=Image.Resampling.BILINEAR
        )
        np.testing.assert_array_equal(frame, np.asarray(turned))
    assert not np.array_equal(frames[0], frames[1])


def test_moving_source_from_config_and_errors():
    cfg = {"name": "moving_fashion_mnist", "num_frames": 3, "canvas_size": 32, "motion": "rotate"}
    source = data.get_source(cfg, "test")
    assert len(source) == 2000 and data.example_shape(source, "frames") == (3, 32, 32, 1)
    assert source.num_classes == 10
    with pytest.raises(ValueError, match="motion"):
        data.get_source({**cfg, "motion": "zoom"}, "test")
    with pytest.raises(ValueError, match="canvas_size"):
        data.get_source({**cfg, "canvas_size": 20}, "test")


def _png(frame: np.ndarray) -> bytes:
    import io

    buffer = io.BytesIO()
    Image.fromarray(frame).save(buffer, format="PNG")
    return buffer.getvalue()


def test_video_records_from_arrays_and_encoded_frames():
    rng = np.random.default_rng(0)
    videos = rng.integers(0, 256, (4, 10, 16, 16, 1), dtype=np.uint8)
    # tfds decodes a Video feature to an array [T, H, W, C]; raw records hold one encoded image a frame.
    as_arrays = [{"image_sequence": v, "label": i % 2} for i, v in enumerate(videos)]
    as_pngs = [{"image_sequence": [_png(f[..., 0]) for f in v]} for v in videos]
    a = sequences.VideoRecordsSource(
        as_arrays,
        frames_key="image_sequence",
        label_key="label",
        num_frames=3,
        frame_stride=2,
        clip_start=1,
        num_classes=2,
    )
    b = sequences.VideoRecordsSource(
        as_pngs, frames_key="image_sequence", num_frames=3, frame_stride=2, clip_start=1
    )
    rows = np.array([3, 0])
    got_a, got_b = a.get(rows), b.get(rows)
    expected = videos[rows][:, 1:7:2]
    np.testing.assert_array_equal(got_a["frames"], expected)
    np.testing.assert_array_equal(got_b["frames"], expected)
    np.testing.assert_array_equal(got_a["label"], [1, 0])
    assert "label" not in got_b and a.image_shape == (16, 16, 1) and a.num_classes == 2
    resized = sequences.VideoRecordsSource(as_arrays, frames_key="image_sequence", image_size=8)
    assert resized.get(rows)["frames"].shape == (2, 10, 8, 8, 1)
    with pytest.raises(ValueError, match="does not fit"):
        sequences.VideoRecordsSource(as_arrays, frames_key="image_sequence", num_frames=11)
    with pytest.raises(ValueError, match="no field"):
        sequences.VideoRecordsSource(as_arrays, frames_key="video")


# ---------------------------------------------------------------- the method


def test_windows_pair_context_with_the_frame_offset_later():
    b, t, d = 2, 6, 3
    features = np.arange(b * t * d, dtype=np.float32).reshape(b, t, d)
    inputs, targets, last = windows(jnp.asarray(features), context=2, offset=2)
    positions = t - 2 - 2 + 1
    assert inputs.shape == (b * positions, 2 * d) and targets.shape == (b * positions, d)
    for i in range(b):
        for s in range(positions):
            row = i * positions + s
            np.testing.assert_array_equal(inputs[row], np.concatenate(features[i, s : s + 2]))
            np.testing.assert_array_equal(targets[row], features[i, s + 3])
            np.testing.assert_array_equal(last[row], features[i, s + 1])
    with pytest.raises(ValueError, match="no window"):
        windows(jnp.asarray(features), context=4, offset=3)


class PixelMLP(nn.Module):
    """A tiny MLP phi on flattened pixels: unlike a pooled CNN it is not translation invariant, so the
    only features f can predict perfectly from a trainable phi are (near) constant ones."""

    dtype: object = jnp.float32
    bn_axis_name: object = None

    @nn.compact
    def __call__(self, x, train):
        x = nn.relu(nn.Dense(16)(x.reshape(x.shape[0], -1)))
        return nn.Dense(8)(x)


def _train_on_one_batch(train_phi: bool, steps: int, residual: bool):
    config = engine_checks.load(
        SMOKE,
        "model.encoder=pixel_mlp",
        "model.encoder_kwargs={}",
        "model.predictor.use_bn=False",
        f"future.train_phi={train_phi}",
        f"future.residual={residual}",
        "optim.learning_rate=0.01",
        "optim.warmup_epochs=0.0",
        "optim.weight_decay=0.0",
    )
    mesh = parallel.make_mesh(jax.devices()[:1])
    state, step_fn = engine_checks.build(config, mesh, run_steps=steps)
    batch = engine_checks.batch_for(config, mesh, 0)
    history = []
    for _ in range(steps):
        state, metrics = step_fn(state, batch)
        history.append({k: float(metrics[k]) for k in ("loss", "target_std", "copy_last_mse")})
    return jax.device_get(state), history


@pytest.mark.parametrize("residual", [False, True])
def test_trainable_phi_collapses_and_frozen_phi_does_not(monkeypatch, residual):
    monkeypatch.setitem(models.ENCODERS, "pixel_mlp", PixelMLP)
    steps = 40 if residual else 25  # a zero-initialized last layer starts slower
    frozen, frozen_history = _train_on_one_batch(False, steps, residual)
    trained, trained_history = _train_on_one_batch(True, steps, residual)
    if residual:  # f = phi(x_t) + g(.) with g's last layer at zero: it starts as copy-last
        first = frozen_history[0]
        np.testing.assert_allclose(first["loss"], first["copy_last_mse"], rtol=1e-6)
    # Frozen phi: not an optimized parameter, kept in state.extra; its features, hence the target
    # spread, are exactly what they were, and f learns (the loss falls).
    assert set(frozen.params) == {"predictor"} and set(frozen.extra) == {"phi"}
    stds = {h["target_std"] for h in frozen_history}
    assert len(stds) == 1 and stds.pop() > 0.1
    assert frozen_history[-1]["loss"] < 0.5 * frozen_history[0]["loss"]
    # Trainable phi: the same start (same seed), then the trivial solution: phi's output on the
    # target frames stops varying across examples, and the loss goes to ~0 with it.
    assert set(trained.params) == {"predictor", "phi"} and trained.extra == {}
    assert trained_history[0]["target_std"] == frozen_history[0]["target_std"]
    assert trained_history[-1]["target_std"] < 0.01 * trained_history[0]["target_std"]
    assert trained_history[-1]["loss"] < 0.02 * trained_history[0]["loss"]
    assert trained_history[-1]["loss"] < 0.1 * frozen_history[-1]["loss"]


# ---------------------------------------------------------------- end to end


@pytest.fixture(scope="module")
def future_run(tmp_path_factory):
    """A SimCLR smoke run (phi), then future prediction trained from its checkpoint, through the CLI."""
    root = tmp_path_factory.mktemp("future")
    phi_dir, workdir = str(root / "phi"), str(root / "future")
    assert (
        engine_checks.run_smoke(
            "simclr_fashion_mnist.py:smoke", phi_dir, "--config.eval.protocols=()"
        )
        == 0
    )
    argv = [
        "pretrain",
        "--config",
        os.path.join(engine_checks.CONFIGS, SMOKE),
        "--workdir",
        workdir,
    ]
    assert cli.main([*argv, f"--config.future.phi_workdir={phi_dir}"]) == 0
    return phi_dir, workdir


def test_cli_trains_f_on_a_frozen_phi_from_another_run(future_run, capsys):
    phi_dir, workdir = future_run
    from ssl_jax import checkpoint

    phi, _ = checkpoint.load_encoder(phi_dir)
    exported, _ = checkpoint.load_encoder(workdir)
    # The exported phi is the SimCLR encoder, unchanged by training f.
    jax.tree.map(np.testing.assert_array_equal, exported["phi"], phi)
    records = [r for r in reporting.read_metrics(workdir) if "loss" in r]
    assert [r["step"] for r in records] == [1, 2, 3]
    assert len({r["target_std"] for r in records}) > 1  # other batches, same frozen phi
    assert all(np.isfinite(r["loss"]) and r["target_std"] > 0 for r in records)
    results = json.load(open(os.path.join(workdir, "eval.json")))
    fr = results["future_regression"]
    assert fr["num_clips"] == 2000 and fr["mse"] > 0 and fr["copy_last_mse"] > 0
    np.testing.assert_allclose(fr["relative_mse"], fr["mse"] / fr["copy_last_mse"], rtol=1e-6)
    assert 0.0 <= results["knn"]["top1"] <= 1.0
    capsys.readouterr()
    assert cli.main(["evaluate", "--workdir", workdir, "--protocol", "future_regression"]) == 0
    assert "future_regression" in capsys.readouterr().out
    again = json.load(open(os.path.join(workdir, "eval.json")))["future_regression"]
    np.testing.assert_allclose(again["mse"], fr["mse"], rtol=1e-5)


def test_configs_initialize():
    for spec, shape in [
        ("future_prediction_fashion_mnist.py", (6, 40, 40, 1)),
        ("future_prediction_fashion_mnist.py:rotate", (6, 40, 40, 1)),
        ("future_prediction_moving_mnist.py", (20, 64, 64, 1)),
        ("future_prediction_moving_mnist.py:smoke", (8, 64, 64, 1)),
    ]:
        config = engine_checks.load(spec)
        method = get_method(config, num_steps=10, steps_per_epoch=10)
        variables = jax.eval_shape(
            lambda rng, method=method, shape=shape: method.init(rng, shape), jax.random.PRNGKey(0)
        )
        assert set(variables.params) == {"predictor"} and set(variables.extra) == {"phi"}
        width = config.model.encoder_kwargs["widths"][-1]
        assert variables.params["predictor"]["dense1"]["kernel"].shape == (
            config.model.predictor.hidden_dim,
            width,
        )
        assert variables.params["predictor"]["dense0"]["kernel"].shape[0] == (
            config.future.context * width
        )
