"""`ssl-jax export` and transfer from a checkpoint: one pre-training run (SimCLR smoke), exported to
.npz and .safetensors and read back with numpy / safetensors.numpy only, then fine-tuned through
`ssl-jax evaluate --protocol finetune_1pct`, and refused by a mismatched architecture with the paths named."""

import json
import os

import numpy as np
import pytest

from ssl_jax import checkpoint, cli

import engine_checks

SMOKE = "simclr_fashion_mnist.py:smoke"


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    path = str(tmp_path_factory.mktemp("export") / "run")
    # No end-of-run evaluation: this module evaluates through `ssl-jax evaluate` itself.
    assert engine_checks.run_smoke(SMOKE, path, "--config.eval.protocols=()") == 0
    return path


def _flat(tree, prefix=""):
    out = {}
    for key, value in tree.items():
        if isinstance(value, dict):
            out.update(_flat(value, f"{prefix}{key}/"))
        else:
            out[f"{prefix}{key}"] = np.asarray(value)
    return out


@pytest.mark.parametrize("suffix", [".npz", ".safetensors"])
def test_export_loads_without_jax_and_equals_the_checkpoint(workdir, tmp_path, suffix):
    out = str(tmp_path / f"encoder{suffix}")
    assert cli.main(["export", "--workdir", workdir, "--out", out]) == 0
    if suffix == ".npz":
        with np.load(out, allow_pickle=False) as f:
            manifest = json.loads(str(f["__manifest__"]))
            tensors = {k: f[k] for k in f.files if k != "__manifest__"}
    else:
        from safetensors import safe_open
        from safetensors.numpy import load_file

        tensors = load_file(out)
        with safe_open(out, framework="numpy") as f:
            manifest = json.loads(f.metadata()["ssl_jax_manifest"])

    encoder, step = checkpoint.load_encoder(workdir)
    expected = _flat(encoder)
    assert sorted(tensors) == sorted(expected)
    assert "params/conv0/kernel" in tensors and "batch_stats/bn0/mean" in tensors
    for name, value in expected.items():
        np.testing.assert_array_equal(tensors[name], value, err_msg=name)
        assert manifest["tensors"][name]["shape"] == list(value.shape)
    assert manifest["method"] == "simclr" and manifest["encoder"] == "small_cnn"
    assert manifest["encoder_kwargs"] == {"widths": [8, 16], "strides": [2, 2]}
    assert manifest["input_key"] == "image" and manifest["input_shape"] == [28, 28, 1]
    assert manifest["step"] == step == 3
    assert len(manifest["normalization"]["mean"]) == len(manifest["normalization"]["std"]) == 1


def test_export_rejects_an_unknown_format(workdir, tmp_path, capsys):
    assert cli.main(["export", "--workdir", workdir, "--out", str(tmp_path / "e.pt")]) == 2
    assert ".safetensors or .npz" in capsys.readouterr().err


def test_evaluate_finetunes_the_checkpoint_and_refuses_another_architecture(workdir, capsys):
    argv = ["evaluate", "--workdir", workdir, "--protocol", "finetune_1pct"]
    assert cli.main([*argv, "--config.eval.finetune_steps=2"]) == 0
    with open(os.path.join(workdir, "eval.json")) as f:
        result = json.load(f)["finetune_1pct"]
    assert result["train_examples"] == 90 and not result["random_init"]
    assert 0.0 <= result["top1"] <= 1.0
    assert "finetune_1pct top-1 accuracy" in capsys.readouterr().out

    wider = "--config.model.encoder_kwargs={'widths': (8, 32), 'strides': (2, 2)}"
    assert cli.main([*argv, wider]) == 2
    err = capsys.readouterr().err
    assert "params/conv1/kernel" in err and "(3, 3, 8, 16)" in err and "(3, 3, 8, 32)" in err
