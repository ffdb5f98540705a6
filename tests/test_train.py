"""The pre-training engine: 1-vs-8-device equality of a SimCLR step, one compilation, exact resume,
every config's smoke variant end to end, the CLI's outputs, and each bad input's clear error."""

import json
import os

import jax
import ml_collections
import numpy as np
import pytest

from ssl_jax import checkpoint, cli, config_util, parallel, reporting, train
from ssl_jax.methods import SimCLR

import engine_checks

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CONFIGS = os.path.join(ROOT, "configs")


def tiny_config(**changes) -> ml_collections.ConfigDict:
    config = config_util.load_config(f"{CONFIGS}/simclr_fashion_mnist.py:smoke")
    config.data.name = "embedded_fashion_mnist"
    config.eval.batch_size = 1024
    for key, value in changes.items():
        config_util.apply_overrides(config, [f"{key}={value}"])
    return config


def test_step_is_identical_on_one_and_eight_devices(n_devices):
    config = tiny_config(**{"model.dtype": "'float32'"})
    results = {}
    for n in (1, 8):
        mesh = parallel.make_mesh(jax.devices()[:n])
        state, step_fn = engine_checks.build(config, mesh)
        for i in range(2):  # two steps: the second sees updated BN statistics and momentum
            state, metrics = step_fn(state, engine_checks.batch_for(config, mesh, i))
        results[n] = jax.device_get((state, metrics))
    (s1, m1), (s8, m8) = results[1], results[8]
    np.testing.assert_allclose(m1["loss"], m8["loss"], rtol=1e-5)
    np.testing.assert_allclose(m1["grad_norm"], m8["grad_norm"], rtol=1e-4)
    jax.tree.map(
        lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5), s1.params, s8.params
    )
    jax.tree.map(
        lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5),
        s1.batch_stats,
        s8.batch_stats,
    )
    assert int(s8.step) == 2


def test_step_compiles_once_and_learns(n_devices):
    traces = []

    class CountingSimCLR(SimCLR):
        def loss_fn(self, *args, **kwargs):
            traces.append(1)
            return super().loss_fn(*args, **kwargs)

    config = tiny_config()
    mesh = parallel.make_mesh()
    state, step_fn = engine_checks.build(config, mesh, method=CountingSimCLR(config))
    losses = []
    for i in range(4):
        state, metrics = step_fn(state, engine_checks.batch_for(config, mesh, i))
        losses.append(float(metrics["loss"]))
    assert len(traces) == 1, f"the step was traced {len(traces)} times"
    assert all(np.isfinite(losses))
    assert int(jax.device_get(state.step)) == 4


def test_state_is_donated(n_devices):
    config = tiny_config()
    mesh = parallel.make_mesh()
    state, step_fn = engine_checks.build(config, mesh)
    leaf = jax.tree.leaves(state.params)[0]
    step_fn(state, engine_checks.batch_for(config, mesh, 0))
    assert leaf.is_deleted(), "the old state's buffers should be donated to the new state"


def _losses(workdir):
    return {r["step"]: r["loss"] for r in reporting.read_metrics(workdir) if "loss" in r}


def test_killed_and_resumed_run_gives_the_same_losses(tmp_path, n_devices):
    config = tiny_config(num_steps=6, checkpoint_every_steps=3, log_every_steps=1)
    config.eval.protocols = ()
    straight = tmp_path / "straight"
    full = train.pretrain(config, str(straight))
    resumed = tmp_path / "resumed"
    stopped = train.pretrain(config, str(resumed), stop_at_step=4)
    assert stopped["stopped"] and stopped["step"] == 4
    # The run "died" after step 4's checkpoint; steps 5-6 are redone from it.
    again = train.pretrain(config, str(resumed))
    a, b = _losses(straight), _losses(resumed)
    assert sorted(a) == sorted(b) == [1, 2, 3, 4, 5, 6]
    assert a == b, (a, b)
    assert full == again == {"step": 6}
    restored = [checkpoint.load_encoder(str(d))[0] for d in (straight, resumed)]
    jax.tree.map(np.testing.assert_array_equal, *restored)


def _write_rgb_npz(path, size, n_train=48, n_test=16):
    rng = np.random.default_rng(0)
    np.savez(
        path,
        train_images=rng.integers(0, 256, (n_train, size, size, 3), dtype=np.uint8),
        train_labels=rng.integers(0, 10, n_train).astype(np.int32),
        test_images=rng.integers(0, 256, (n_test, size, size, 3), dtype=np.uint8),
        test_labels=rng.integers(0, 10, n_test).astype(np.int32),
    )
    return str(path)


@pytest.mark.parametrize(
    "config_name", ["simclr_fashion_mnist", "simclr_cifar10", "simclr_imagenet"]
)
def test_smoke_variant_of_every_config(config_name, tmp_path, shared_data_dir, capsys):
    overrides = []
    if config_name == "simclr_fashion_mnist":
        overrides = [f"--config.data.data_dir={shared_data_dir}/fashion-mnist"]
    else:
        size = 32 if config_name == "simclr_cifar10" else 48
        npz = _write_rgb_npz(tmp_path / "rgb.npz", size)
        overrides = ["--config.data.name=npz", f"--config.data.path={npz}"]
    workdir = str(tmp_path / "run")
    argv = ["pretrain", "--config", f"{CONFIGS}/{config_name}.py:smoke", "--workdir", workdir]
    assert cli.main(argv + overrides) == 0
    out = capsys.readouterr().out
    assert "knn top-1 accuracy" in out and "linear top-1 accuracy" in out
    results = json.load(open(os.path.join(workdir, "eval.json")))
    assert 0.0 <= results["knn"]["top1"] <= 1.0 and 0.0 <= results["linear"]["top1"] <= 1.0


def test_cli_outputs_and_evaluate(tmp_path, capsys):
    workdir = str(tmp_path / "run")
    argv = [
        "pretrain",
        "--workdir",
        workdir,
        "--config.num_steps=8",
        "--config.batch_size=32",
        "--config.log_every_steps=2",
        "--config.eval_every_steps=4",
        "--config.checkpoint_every_steps=4",
        "--config.model.encoder_kwargs={'widths': (8, 16), 'strides': (2, 2)}",
        "--config.eval.linear_epochs=2",
    ]
    assert cli.main(argv) == 0
    records = reporting.read_metrics(workdir)
    assert [r["step"] for r in records if "loss" in r] == [2, 4, 6, 8]
    assert all(
        {"step", "loss", "images_per_sec", "embedding_std"} <= set(r)
        for r in records
        if "loss" in r
    )
    assert [r["step"] for r in records if "knn_top1" in r] == [0, 4, 8]
    assert os.path.getsize(os.path.join(workdir, "curves.png")) > 1000
    assert any(f.startswith("events") for f in os.listdir(os.path.join(workdir, "tensorboard")))
    assert json.load(open(os.path.join(workdir, "config.json")))["method"] == "simclr"
    capsys.readouterr()
    assert cli.main(["evaluate", "--workdir", workdir, "--protocol", "knn"]) == 0
    assert "knn top-1 accuracy" in capsys.readouterr().out
    assert json.load(open(os.path.join(workdir, "eval.json")))["step"] == 8


@pytest.mark.parametrize(
    "args, message",
    [
        (["--config.method=simclr2"], "Unknown method 'simclr2'; valid methods: "),
        (["--config.optim.nme=lars"], "Unknown config key 'optim.nme'"),
        (["--config.batch_size=12"], "multiple of the number of devices"),
        (
            ["--config.data.name=fashion_mnist", "--config.data.data_dir=/nonexistent"],
            "dataset-fashion-mnist",
        ),
        (["--config.data.channels=3"], "config.data.channels is 3"),
        (["--config.data.name=imagenet_folder"], "valid"),
        (["--config", "configs/simclr_cifar10.py:tiny"], "Unknown variant 'tiny'"),
        (["--config", "configs/nope.py"], "does not exist"),
    ],
)
def test_bad_input_is_a_clear_error(args, message, tmp_path, capsys, n_devices, monkeypatch):
    monkeypatch.chdir(ROOT)
    assert cli.main(["pretrain", "--workdir", str(tmp_path), *args]) == 2
    assert message in capsys.readouterr().err


def test_workdir_holding_another_run_is_refused(tmp_path, capsys):
    config = tiny_config(num_steps=2)
    config.eval.protocols = ()
    train.pretrain(config, str(tmp_path))
    assert (
        cli.main(["pretrain", "--workdir", str(tmp_path), "--config.simclr.temperature=0.7"]) == 2
    )
    err = capsys.readouterr().err
    assert "holds another run" in err and "--overwrite" in err
    assert os.path.isdir(os.path.join(tmp_path, "checkpoints"))  # nothing lost


def test_a_key_missing_from_an_older_saved_config_counts_as_its_default():
    """A workdir written before an option existed resumes when the option stays at its default,
    and is another run when it does not."""
    from ssl_jax import config_util, default_config

    new = config_util.to_dict(default_config.get_config())
    saved = {k: v for k, v in new.items() if k != "online_probe"}  # the option did not exist yet
    assert config_util.config_differences(saved, new) == []
    new["online_probe"] = {"enabled": True}
    assert config_util.config_differences(saved, new) == [
        "online_probe.enabled: '<absent>' -> True"
    ]
    # A key that is not a default anywhere is still a difference when it appears.
    assert config_util.config_differences(saved, {**saved, "extra_key": 1}) == [
        "extra_key: '<absent>' -> 1"
    ]


def test_moved_keys_name_their_new_place_and_old_workdirs_still_read(tmp_path):
    """Text fine-tuning's config.finetune.* moved to config.eval.finetune_*: typing an old key is an
    error naming the new one, a config file still setting them is refused the same way, and a saved
    config of an older run is read with its values moved (and the validation split it reported)."""
    config = config_util.load_config(f"{CONFIGS}/gpt_austen.py:smoke")
    with pytest.raises(
        KeyError, match=r"config.finetune.num_steps is now config.eval.finetune_steps"
    ):
        config_util.apply_overrides(config, ["finetune.num_steps=5"])
    old_file = tmp_path / "old_text_config.py"
    old_file.write_text(
        "import ml_collections\n"
        "def get_config():\n"
        "    return ml_collections.ConfigDict({'finetune': {'num_steps': 3}})\n"
    )
    with pytest.raises(KeyError, match=r"finetune.num_steps -> eval.finetune_steps"):
        config_util.load_config(str(old_file))
    saved = config_util.to_dict(config)
    saved["finetune"] = dict(num_steps=7, learning_rate=2e-5, warmup_steps=3, seed=4, batch_size=8)
    (tmp_path / config_util.CONFIG_FILE).write_text(json.dumps(saved))
    restored = config_util.load_saved(str(tmp_path))
    assert "finetune" not in restored
    eval_cfg = restored.eval
    assert (eval_cfg.finetune_steps, eval_cfg.finetune_learning_rate) == (7, 2e-5)
    assert (eval_cfg.finetune_warmup_steps, eval_cfg.finetune_batch_size) == (3, 8)
    assert tuple(eval_cfg.finetune_seeds) == (4,)
    assert eval_cfg.finetune_validation_split == "validation"


class NaNAtStep(SimCLR):
    """SimCLR whose loss is NaN at step 2 (0-based), to exercise the non-finite policy."""

    def loss_fn(self, params, batch_stats, extra, batch, *, rng, step, axis_name):
        loss, aux = super().loss_fn(
            params, batch_stats, extra, batch, rng=rng, step=step, axis_name=axis_name
        )
        return jax.numpy.where(step == 2, jax.numpy.nan, loss), aux


@pytest.mark.parametrize("policy", ["stop", "skip"])
def test_nonfinite_loss_policy(policy, tmp_path, monkeypatch):
    from ssl_jax import methods

    monkeypatch.setitem(methods.METHODS, "simclr", NaNAtStep)
    config = tiny_config(num_steps=5, checkpoint_every_steps=1, nonfinite_policy=policy)
    config.eval.protocols = ()
    if policy == "stop":
        with pytest.raises(FloatingPointError, match="loss is nan at step 3"):
            train.pretrain(config, str(tmp_path))
        # The checkpoint written at step 3 holds the state of step 2: the NaN update was dropped.
        two = checkpoint.load_encoder(str(tmp_path), 2)[0]
        three = checkpoint.load_encoder(str(tmp_path), 3)[0]
        jax.tree.map(np.testing.assert_array_equal, two, three)
    else:
        assert train.pretrain(config, str(tmp_path)) == {"step": 5}
        losses = _losses(str(tmp_path))
        assert np.isnan(losses[3]) and all(np.isfinite(losses[s]) for s in (1, 2, 4, 5))


def test_sigterm_finishes_the_step_checkpoints_and_exits_143(tmp_path):
    import signal
    import subprocess
    import sys
    import time

    workdir = str(tmp_path / "run")
    argv = [
        sys.executable,
        "-m",
        "ssl_jax.cli",
        "pretrain",
        "--workdir",
        workdir,
        "--config",
        f"{CONFIGS}/simclr_fashion_mnist.py:smoke",
        "--config.data.name=embedded_fashion_mnist",
        "--config.num_steps=100000",
        "--config.checkpoint_every_steps=100000",
        "--config.eval.protocols=()",
    ]
    # One device; the suite's cheaper compiler settings (tests/conftest.py) kept.
    flags = " ".join(f for f in os.environ["XLA_FLAGS"].split() if "device_count" not in f)
    env = {**os.environ, "XLA_FLAGS": flags, "JAX_PLATFORMS": "cpu"}
    proc = subprocess.Popen(
        argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    metrics = os.path.join(workdir, reporting.METRICS_FILE)
    deadline = time.time() + 120
    while time.time() < deadline and not (
        os.path.exists(metrics) and len(reporting.read_metrics(workdir)) >= 3
    ):
        time.sleep(0.5)
    proc.send_signal(signal.SIGTERM)
    out, _ = proc.communicate(timeout=120)
    assert proc.returncode == 128 + signal.SIGTERM, out  # an unfinished run, as the signal would
    assert "Stopped by a signal" in out
    saved = checkpoint.Checkpointer(workdir).latest_step()
    logged = max(r["step"] for r in reporting.read_metrics(workdir))
    assert saved is not None and saved >= logged >= 3
