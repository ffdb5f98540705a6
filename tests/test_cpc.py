"""CPC: cpc_loss against a NumPy reference written from the paper, 1-vs-8-device equality of its loss and
gradient (negatives gathered across devices), the GRU context's causality (also down the image patch
grid), the patch grid, the synthetic signal source, and one CLI run per mode (images and signals)."""

import json
import math
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.sharding import PartitionSpec as P

from ssl_jax import cli, parallel
from ssl_jax.data.signals import SyntheticSignalSource
from ssl_jax.losses import cpc_loss
from ssl_jax.models.cpc import CPCNetwork, GRUContext, PatchGridEncoder, extract_patches

import engine_checks

# ---------------------------------------------------------------- cpc_loss


def cpc_reference(pred: np.ndarray, z: np.ndarray, first_step: int) -> np.ndarray:
    """van den Oord et al. 2018, eqs. 3-4, with explicit loops: f_k(x_{t+k}, c_t) = exp(z_{t+k}^T W_k c_t);
    for each sequence b, step t and k, the positive z_{t+k} of b among z_{t+k} of every sequence;
    L_k averaged over the steps t that have a target, summed over k."""
    n, steps, num_k, _ = pred.shape
    pred, z = pred.astype(np.float64), z.astype(np.float64)
    out = np.zeros(n)
    for b in range(n):
        for j in range(num_k):
            k = first_step + j
            losses = []
            for t in range(steps - k):
                scores = [float(pred[b, t, j] @ z[m, t + k]) for m in range(n)]
                top = max(scores)
                denom = sum(math.exp(s - top) for s in scores)
                losses.append(-(scores[b] - top - math.log(denom)))
            out[b] += sum(losses) / len(losses)
    return out


def _cpc_inputs(n=6, steps=5, num_k=2, d=4, seed=0):
    rng = np.random.default_rng(seed)
    pred = rng.normal(size=(n, steps, num_k, d)).astype(np.float32)
    z = rng.normal(size=(n, steps, d)).astype(np.float32)
    return pred, z


@pytest.mark.parametrize("first_step", [1, 2])
def test_cpc_loss_matches_numpy_reference(first_step):
    pred, z = _cpc_inputs()
    got = jax.jit(cpc_loss, static_argnames="first_step")(pred, z, first_step=first_step)
    assert got.shape == (6,) and got.dtype == jnp.float32
    np.testing.assert_allclose(got, cpc_reference(pred, z, first_step), rtol=1e-5, atol=1e-5)


def test_cpc_loss_bf16_inputs_and_perfect_predictions():
    pred, z = _cpc_inputs(seed=1)
    got = cpc_loss(jnp.asarray(pred, jnp.bfloat16), jnp.asarray(z, jnp.bfloat16))
    assert got.dtype == jnp.float32
    np.testing.assert_allclose(got, cpc_reference(pred, z, 1), rtol=3e-2, atol=3e-2)
    # Orthogonal targets predicted exactly and scaled up: every (t, k) is solved, the loss -> 0.
    z = np.zeros((4, 3, 8), np.float32)
    for b in range(4):
        for t in range(3):
            z[b, t, 2 * b + (t % 2)] = 1.0
    perfect = np.full((4, 3, 2, 8), 5.0, np.float32)  # (t, k) without a target: must not matter
    for t in range(3):
        for j, k in enumerate((1, 2)):
            if t + k < 3:
                perfect[:, t, j] = 30.0 * z[:, t + k]
    np.testing.assert_allclose(cpc_loss(perfect, z), 0.0, atol=1e-6)


def test_cpc_loss_rejects_bad_inputs():
    pred, z = _cpc_inputs()
    with pytest.raises(TypeError, match="floating"):
        cpc_loss(pred.astype(np.int32), z)
    with pytest.raises(ValueError, match="targets must be"):
        cpc_loss(pred, z[:, :-1])
    with pytest.raises(ValueError, match=r"\[batch, T, K, dim\]"):
        cpc_loss(pred[0], z)
    with pytest.raises(ValueError, match="first_step"):
        cpc_loss(pred, z, first_step=4)  # k = 4, 5 on T = 5 steps
    with pytest.raises(ValueError, match="first_step"):
        cpc_loss(pred, z, first_step=0)


def _sharded_cpc(w_pred, w_z, x, mesh, *, gather=True):
    """Mean CPC loss of linear predictor/encoder maps on x [N, T, 3], computed per device."""
    axis = parallel.DATA_AXIS

    def local(w_pred, w_z, x):
        pred = jnp.einsum("ntc,ckd->ntkd", x, w_pred)
        per_example = cpc_loss(pred, x @ w_z, axis_name=axis if gather else None)
        return parallel.pmean(per_example.mean(), axis)

    f = parallel.per_device(local, mesh, in_specs=(P(), P(), P(axis)), out_specs=P())
    return jax.jit(jax.value_and_grad(f, argnums=(0, 1)))(w_pred, w_z, x)


def test_cpc_loss_one_device_equals_eight_devices(n_devices):
    rng = np.random.default_rng(4)
    x = rng.normal(size=(16, 5, 3)).astype(np.float32)
    w_pred = rng.normal(size=(3, 2, 4)).astype(np.float32)
    w_z = rng.normal(size=(3, 4)).astype(np.float32)
    loss8, grads8 = _sharded_cpc(w_pred, w_z, x, parallel.make_mesh())
    loss1, grads1 = _sharded_cpc(w_pred, w_z, x, parallel.make_mesh(jax.devices()[:1]))

    def plain(w_pred, w_z):  # one device, no shard_map at all: the ground truth
        return cpc_loss(jnp.einsum("ntc,ckd->ntkd", x, w_pred), x @ w_z).mean()

    loss0, grads0 = jax.value_and_grad(plain, argnums=(0, 1))(w_pred, w_z)
    for loss in (loss8, loss1):
        np.testing.assert_allclose(loss, loss0, rtol=1e-6)
    for grads in (grads8, grads1):
        for got, want in zip(grads, grads0, strict=True):
            np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
    want = cpc_reference(np.einsum("ntc,ckd->ntkd", x, w_pred), x @ w_z, 1).mean()
    np.testing.assert_allclose(loss0, want, rtol=1e-5)
    # Not vacuous: with each device's negatives only, the loss is another number.
    local_only, _ = _sharded_cpc(w_pred, w_z, x, parallel.make_mesh(), gather=False)
    assert abs(float(local_only) - float(loss0)) > 1e-2


# ---------------------------------------------------------------- networks


def test_gru_context_is_causal():
    z = np.random.default_rng(0).normal(size=(2, 3, 6, 4)).astype(np.float32)
    context = GRUContext(context_dim=5)
    variables = context.init(jax.random.PRNGKey(0), z)
    apply = jax.jit(context.apply)
    c = apply(variables, z)
    assert c.shape == (2, 3, 6, 5)
    changed = z.copy()
    changed[:, :, 3:] += 1.0  # the future of step 2
    c2 = apply(variables, changed)
    np.testing.assert_array_equal(c[:, :, :3], c2[:, :, :3])
    assert np.abs(c[:, :, 3:] - c2[:, :, 3:]).min() > 0


def test_patch_grid_and_its_context_runs_down_the_columns():
    images = np.random.default_rng(1).normal(size=(2, 28, 28, 1)).astype(np.float32)
    patches = extract_patches(images, 8, 4, 2)
    assert patches.shape == (2, 7, 7, 8, 8, 1)
    padded = np.pad(images, ((0, 0), (2, 2), (2, 2), (0, 0)))
    for r, c in [(0, 0), (3, 5), (6, 6)]:
        np.testing.assert_array_equal(
            patches[:, r, c], padded[:, 4 * r : 4 * r + 8, 4 * c : 4 * c + 8]
        )

    net = CPCNetwork(
        PatchGridEncoder(widths=(4,), strides=(2,), z_dim=6), context_dim=5, num_predictions=2
    )
    variables = net.init(jax.random.PRNGKey(0), images)
    apply = jax.jit(net.apply)
    z, c, pred = apply(variables, images)
    assert z.shape == (2, 7, 7, 6) and c.shape == (2, 7, 7, 5) and pred.shape == (2, 7, 7, 2, 6)
    # Patch row r covers image rows 4r - 2 .. 4r + 5: changing rows >= 18 (patch rows >= 4) leaves
    # the context of grid rows 0..3 of every column unchanged, and changes the rows below.
    changed = images.copy()
    changed[:, 18:] += 1.0
    _, c2, _ = apply(variables, changed)
    np.testing.assert_array_equal(c[:, :, :4], c2[:, :, :4])
    assert np.abs(c[:, :, 4:] - c2[:, :, 4:]).max() > 1e-4
    features = jax.jit(lambda v, x: net.apply(v, x, "both", method=CPCNetwork.features))
    encoder_only = {"params": {k: variables["params"][k] for k in ("encoder", "context")}}
    both = features(encoder_only, images)
    np.testing.assert_allclose(both[:, :6], z.mean(axis=(1, 2)), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(both[:, 6:], c.mean(axis=(1, 2)), rtol=1e-5, atol=1e-6)


# ---------------------------------------------------------------- synthetic signals


def test_synthetic_signals_are_deterministic_balanced_and_class_coded():
    source = SyntheticSignalSource("train", num_examples=60, length=512, num_classes=3, seed=7)
    rows = source.get(np.array([5, 1, 2]))
    assert rows["signal"].shape == (3, 512) and rows["signal"].dtype == np.float32
    again = source.get(np.array([2, 5]))  # a row does not depend on the batch it comes in
    np.testing.assert_array_equal(again["signal"], rows["signal"][[2, 0]])
    test = SyntheticSignalSource("test", num_examples=60, length=512, num_classes=3, seed=7)
    assert not np.allclose(test.get(np.array([5]))["signal"], rows["signal"][:1])
    labels = source.get(np.arange(60))["label"]
    np.testing.assert_array_equal(np.bincount(labels), [20, 20, 20])
    # The mean power spectrum of each class peaks at its fundamental or its harmonic.
    signals = source.get(np.arange(60))["signal"]
    freqs = np.fft.rfftfreq(512)
    for label, f in enumerate(source.class_frequencies):
        power = (np.abs(np.fft.rfft(signals[labels == label], axis=1)) ** 2).mean(axis=0)
        peak = freqs[np.argmax(power)]
        assert min(abs(peak - f), abs(peak - 2 * f)) <= 0.04 * f + 1 / 512, (label, peak, f)
    with pytest.raises(IndexError):
        source.get(np.array([60]))


# ---------------------------------------------------------------- end to end


@pytest.fixture(scope="module")
def smoke_runs(tmp_path_factory):
    """One `ssl-jax pretrain` per mode, then `ssl-jax evaluate --protocol knn` on the signal run."""
    root = tmp_path_factory.mktemp("cpc")
    runs = {}
    for mode, spec, data_name in [
        ("image", "cpc_fashion_mnist.py:smoke", "embedded_fashion_mnist"),
        ("signal", "cpc_signals.py:smoke", None),
    ]:
        workdir = str(root / mode)
        assert engine_checks.run_smoke(spec, workdir, data_name=data_name) == 0
        runs[mode] = workdir
    assert cli.main(["evaluate", "--workdir", runs["signal"], "--protocol", "knn"]) == 0
    return runs


@pytest.mark.parametrize("mode", ["image", "signal"])
def test_cli_pretrains_and_evaluates(smoke_runs, mode):
    workdir = smoke_runs[mode]
    with open(os.path.join(workdir, "metrics.jsonl")) as f:
        losses = [json.loads(line)["loss"] for line in f if '"loss"' in line]
    assert len(losses) == 3 and all(np.isfinite(losses))
    with open(os.path.join(workdir, "eval.json")) as f:
        results = json.load(f)
    assert results["step"] == 3
    assert 0.0 <= results["knn"]["top1"] <= 1.0 and 0.0 <= results["linear"]["top1"] <= 1.0


def test_exported_encoder_has_no_predictors(smoke_runs):
    from ssl_jax import checkpoint

    encoder, step = checkpoint.load_encoder(smoke_runs["signal"])
    assert step == 3 and sorted(encoder["params"]) == ["context", "encoder"]


@pytest.mark.parametrize("mode", ["image", "signal"])
def test_cpc_checkpoint_fine_tunes(smoke_runs, mode):
    """Fine-tuning takes a CPC checkpoint like any other (images get fine-tuning's augmentation,
    signals none)."""
    overrides = ["--config.eval.finetune_steps=2", "--config.eval.finetune_batch_size=16"]
    argv = ["evaluate", "--workdir", smoke_runs[mode], "--protocol", "finetune_10pct", *overrides]
    assert cli.main(argv) == 0
    with open(os.path.join(smoke_runs[mode], "eval.json")) as f:
        result = json.load(f)["finetune_10pct"]
    assert result["steps"] == 2 and 0.0 <= result["top1"] <= 1.0
