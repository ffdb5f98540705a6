"""Barlow Twins and VICReg: each loss against a NumPy reference written from its paper, bf16 inputs,
numerical gradients, loss and gradient equality on 1 and 8 devices (and proof that per-device statistics
would differ), a step-level 1-vs-8 check, one CLI run per method, and every config initializing."""

import json
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.sharding import PartitionSpec as P
from jax.test_util import check_grads

from ssl_jax import parallel, reporting
from ssl_jax.losses import barlow_twins_loss, vicreg_loss
from ssl_jax.losses.redundancy import barlow_twins_terms, vicreg_terms
from ssl_jax.methods import get_method

import engine_checks

AXIS = parallel.DATA_AXIS


# ---- independent NumPy references, written from the papers with explicit loops (float64)


def barlow_twins_reference(z1, z2, lambda_offdiag):
    """Zbontar et al. 2021, eqs. 1-2: C_ij = sum_b a_bi b_bj / (sqrt(sum_b a_bi^2) sqrt(sum_b b_bj^2)) of
    the batch-centred embeddings a, b; L = sum_i (1 - C_ii)^2 + lambda sum_i sum_{j != i} C_ij^2."""
    a = np.asarray(z1, np.float64)
    b = np.asarray(z2, np.float64)
    a, b = a - a.mean(axis=0), b - b.mean(axis=0)
    d = a.shape[1]
    c = np.empty((d, d))
    for i in range(d):
        for j in range(d):
            c[i, j] = np.sum(a[:, i] * b[:, j]) / (
                np.sqrt(np.sum(a[:, i] ** 2)) * np.sqrt(np.sum(b[:, j] ** 2))
            )
    on_diag = sum((1 - c[i, i]) ** 2 for i in range(d))
    off_diag = sum(c[i, j] ** 2 for i in range(d) for j in range(d) if j != i)
    return on_diag + lambda_offdiag * off_diag, on_diag, off_diag


def vicreg_reference(z1, z2, sim_coeff, std_coeff, cov_coeff, eps=1e-4):
    """Bardes et al. 2022, eqs. 1-6 with Algorithm 1's normalizations: s = mean squared error over the
    n x d entries; v(Z) = 1/d sum_j max(0, 1 - sqrt(Var(z^j) + eps)) with the unbiased variance;
    c(Z) = 1/d sum_{i != j} C(Z)_ij^2, C(Z) = 1/(n - 1) sum_b (z_b - mean)(z_b - mean)^T."""
    z1 = np.asarray(z1, np.float64)
    z2 = np.asarray(z2, np.float64)
    n, d = z1.shape
    s = sum(np.sum((z1[b] - z2[b]) ** 2) for b in range(n)) / (n * d)

    def v(z):
        stds = [np.sqrt(np.sum((z[:, j] - z[:, j].mean()) ** 2) / (n - 1) + eps) for j in range(d)]
        return sum(max(0.0, 1.0 - sj) for sj in stds) / d

    def c(z):
        zc = z - z.mean(axis=0)
        cov = sum(np.outer(zc[b], zc[b]) for b in range(n)) / (n - 1)
        return sum(cov[i, j] ** 2 for i in range(d) for j in range(d) if j != i) / d

    variance, covariance = v(z1) + v(z2), c(z1) + c(z2)
    loss = sim_coeff * s + std_coeff * variance + cov_coeff * covariance
    return loss, s, variance, covariance


def _views(n=24, d=8, noise=0.5, seed=0):
    """Correlated views whose dimensions have stds on both sides of VICReg's target of 1."""
    rng = np.random.default_rng(seed)
    scale = np.linspace(0.3, 2.0, d)
    z1 = rng.normal(size=(n, d)) * scale + rng.normal(size=d)
    z2 = z1 + noise * rng.normal(size=(n, d)) * scale
    return z1.astype(np.float32), z2.astype(np.float32)


# ---- the losses against the references


@pytest.mark.parametrize("lambda_offdiag", [0.0, 5e-3, 0.1])
def test_barlow_twins_matches_numpy_reference(lambda_offdiag):
    z1, z2 = _views()
    fn = jax.jit(barlow_twins_terms, static_argnames=("lambda_offdiag", "eps"))
    # eps = 0 is eq. 2 exactly; the default eps (BatchNorm's 1e-5) moves the value by O(eps / var).
    terms = fn(z1, z2, lambda_offdiag=lambda_offdiag, eps=0.0)
    loss, on_diag, off_diag = barlow_twins_reference(z1, z2, lambda_offdiag)
    assert terms["loss"].shape == () and terms["loss"].dtype == jnp.float32
    np.testing.assert_allclose(terms["loss"], loss, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(terms["on_diag"], on_diag, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(terms["off_diag"], off_diag, rtol=1e-5, atol=1e-6)
    default = jax.jit(barlow_twins_loss, static_argnames="lambda_offdiag")(
        z1, z2, lambda_offdiag=lambda_offdiag
    )
    np.testing.assert_allclose(default, loss, rtol=1e-3)


@pytest.mark.parametrize(
    "coeffs", [(25.0, 25.0, 1.0), (1.0, 0.0, 0.0), (0.0, 1.0, 0.0), (0.0, 0.0, 1.0)]
)
def test_vicreg_matches_numpy_reference(coeffs):
    z1, z2 = _views(seed=1)
    sim, std, cov = coeffs
    fn = jax.jit(vicreg_terms, static_argnames=("sim_coeff", "std_coeff", "cov_coeff", "eps"))
    terms = fn(z1, z2, sim_coeff=sim, std_coeff=std, cov_coeff=cov)
    loss, s, variance, covariance = vicreg_reference(z1, z2, sim, std, cov)
    assert terms["loss"].shape == () and terms["loss"].dtype == jnp.float32
    assert 0.0 < variance and 0.0 < covariance  # the hinge and the penalty are both active
    np.testing.assert_allclose(terms["loss"], loss, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(terms["invariance"], s, rtol=1e-5)
    np.testing.assert_allclose(terms["variance"], variance, rtol=1e-5)
    np.testing.assert_allclose(terms["covariance"], covariance, rtol=1e-5)
    loss_only = jax.jit(vicreg_loss, static_argnames=("sim_coeff", "std_coeff", "cov_coeff"))
    np.testing.assert_allclose(
        loss_only(z1, z2, sim_coeff=sim, std_coeff=std, cov_coeff=cov), loss, rtol=1e-5
    )


def test_bf16_inputs_are_upcast():
    z1, z2 = _views(seed=2)
    b1, b2 = jnp.asarray(z1, jnp.bfloat16), jnp.asarray(z2, jnp.bfloat16)
    r1, r2 = np.asarray(b1, np.float32), np.asarray(b2, np.float32)  # what the bf16 inputs hold
    bt = barlow_twins_loss(b1, b2, eps=0.0)
    vic = vicreg_loss(b1, b2)
    assert bt.dtype == vic.dtype == jnp.float32
    # The math is float32: tight against the reference on the rounded inputs ...
    np.testing.assert_allclose(bt, barlow_twins_reference(r1, r2, 5e-3)[0], rtol=1e-5)
    np.testing.assert_allclose(vic, vicreg_reference(r1, r2, 25, 25, 1)[0], rtol=1e-5)
    # ... and the bf16 rounding itself moves the value by little.
    np.testing.assert_allclose(bt, barlow_twins_reference(z1, z2, 5e-3)[0], rtol=3e-2)
    np.testing.assert_allclose(vic, vicreg_reference(z1, z2, 25, 25, 1)[0], rtol=3e-2)


def test_gradients_numerically():
    z1, z2 = _views(n=6, d=4, seed=3)
    for fn in (
        jax.jit(lambda a, b: barlow_twins_loss(a, b, lambda_offdiag=0.1)),
        jax.jit(lambda a, b: vicreg_loss(a, b)),
    ):
        check_grads(fn, (z1, z2), order=1, modes=["rev"], atol=1e-2, rtol=1e-2)


def test_optimum_and_collapse():
    # Identical views with decorrelated dimensions of std >= 1: both losses are at their minimum 0.
    m = np.random.default_rng(4).normal(size=(16, 6))
    q, _ = np.linalg.qr(
        m - m.mean(axis=0)
    )  # orthonormal columns, centred (they span centred vectors)
    z = (4.0 * q).astype(np.float32)  # std 4 / sqrt(15) > 1 in every dimension
    assert float(jax.jit(barlow_twins_loss, static_argnames="eps")(z, z, eps=0.0)) < 1e-5
    assert float(jax.jit(vicreg_loss)(z, z)) < 1e-5
    # Collapsed embeddings: eps keeps both losses and their gradients finite, and the losses high
    # (Barlow Twins: C = 0, so d; VICReg: every std is sqrt(eps), so 25 * 2 * (1 - 0.01)).
    const = jnp.ones((16, 6), jnp.float32)
    for fn, floor in ((barlow_twins_loss, 6.0 - 1e-3), (vicreg_loss, 25 * 2 * 0.99 - 1e-3)):
        loss, grads = jax.jit(jax.value_and_grad(fn, argnums=(0, 1)))(const, const)
        assert float(loss) >= floor
        assert all(np.all(np.isfinite(g)) for g in grads)


def test_rejects_bad_inputs():
    z1, z2 = _views()
    for fn in (barlow_twins_loss, vicreg_loss):
        with pytest.raises(TypeError, match="floating"):
            fn(z1.astype(np.int32), z2)
        with pytest.raises(ValueError, match="same shape"):
            fn(z1, z2[:-1])
        with pytest.raises(ValueError, match=r"\[batch, dim\]"):
            fn(z1[0], z2[0])
    with pytest.raises(ValueError, match="lambda_offdiag"):
        barlow_twins_loss(z1, z2, lambda_offdiag=-1.0)
    with pytest.raises(ValueError, match="std_coeff"):
        vicreg_loss(z1, z2, std_coeff=-1.0)
    with pytest.raises(ValueError, match="at least 2 rows"):
        vicreg_loss(z1[:1], z2[:1])


# ---- one device vs eight


LOSSES = {
    "barlow_twins": lambda a, b, axis: barlow_twins_loss(a, b, lambda_offdiag=0.05, axis_name=axis),
    "vicreg": lambda a, b, axis: vicreg_loss(a, b, axis_name=axis),
}


def _sharded(loss, mesh, *, statistics_axis):
    """The loss of a linear projector computed per device under shard_map and averaged as the training
    loop does (pmean); `statistics_axis=None` takes every statistic over the device's rows only."""

    def local(w, x1, x2):
        return parallel.pmean(loss(x1 @ w, x2 @ w, statistics_axis), AXIS)

    return parallel.per_device(local, mesh, in_specs=(P(), P(AXIS), P(AXIS)), out_specs=P())


def _projector_problem(seed):
    rng = np.random.default_rng(seed)
    x1 = rng.normal(size=(32, 10)).astype(np.float32)
    x2 = (x1 + 0.3 * rng.normal(size=x1.shape)).astype(np.float32)
    w = rng.normal(size=(10, 6)).astype(np.float32)
    return w, x1, x2


@pytest.mark.parametrize("name", list(LOSSES))
def test_one_device_equals_eight_devices_loss_and_gradient(name, n_devices):
    loss = LOSSES[name]
    w, x1, x2 = _projector_problem(5)
    results = {}
    for n in (1, n_devices):
        f = _sharded(loss, parallel.make_mesh(jax.devices()[:n]), statistics_axis=AXIS)
        results[n] = jax.jit(jax.value_and_grad(f))(w, x1, x2)
    # The ground truth: a plain function of the whole batch, no shard_map at all.
    loss0, grad0 = jax.value_and_grad(lambda w: loss(x1 @ w, x2 @ w, None))(w)
    for n, (value, grad) in results.items():
        np.testing.assert_allclose(value, loss0, rtol=1e-5, err_msg=f"{n} devices")
        # float32 sums in another order: an absolute slack relative to the gradient's scale.
        atol = 1e-6 * float(np.max(np.abs(grad0)))
        np.testing.assert_allclose(grad, grad0, rtol=1e-4, atol=atol, err_msg=f"{n} devices")
    assert float(np.max(np.abs(grad0))) > 1e-3  # the gradient compared is not trivially zero
    reference = {
        "barlow_twins": lambda z1, z2: barlow_twins_reference(z1, z2, 0.05)[0],
        "vicreg": lambda z1, z2: vicreg_reference(z1, z2, 25, 25, 1)[0],
    }[name]
    np.testing.assert_allclose(loss0, reference(x1 @ w, x2 @ w), rtol=1e-4)


@pytest.mark.parametrize("name", list(LOSSES))
def test_loss_is_identical_on_every_device(name, n_devices):
    loss = LOSSES[name]
    w, x1, x2 = _projector_problem(6)
    local = lambda w, x1, x2: loss(x1 @ w, x2 @ w, AXIS)[None]  # noqa: E731
    f = parallel.per_device(
        local, parallel.make_mesh(), in_specs=(P(), P(AXIS), P(AXIS)), out_specs=P(AXIS)
    )
    per_device = np.asarray(jax.jit(f)(w, x1, x2))
    assert per_device.shape == (n_devices,)
    np.testing.assert_array_equal(per_device, per_device[0])


@pytest.mark.parametrize("name", list(LOSSES))
def test_per_device_statistics_give_a_different_loss(name, n_devices):
    """The equality above is not vacuous: statistics over each device's 4 rows change the loss."""
    loss = LOSSES[name]
    w, x1, x2 = _projector_problem(5)
    mesh = parallel.make_mesh()
    global_stats = jax.jit(_sharded(loss, mesh, statistics_axis=AXIS))(w, x1, x2)
    local_stats = jax.jit(_sharded(loss, mesh, statistics_axis=None))(w, x1, x2)
    assert abs(float(local_stats) - float(global_stats)) > 0.05 * abs(float(global_stats))


# ---- the methods through the engine


def test_barlow_twins_step_is_the_same_on_one_and_eight_devices(n_devices):
    engine_checks.assert_same_on_one_and_eight(
        engine_checks.load(
            "barlow_twins_fashion_mnist.py:smoke",
            "model.dtype=float32",
            "data.name=embedded_fashion_mnist",
        )
    )


@pytest.mark.parametrize(
    ("spec", "metrics"),
    [
        ("barlow_twins_fashion_mnist.py:smoke", ("on_diag", "off_diag")),
        ("vicreg_fashion_mnist.py:smoke", ("invariance", "variance", "covariance")),
    ],
)
def test_cli_smoke(spec, metrics, tmp_path):
    workdir = str(tmp_path / "run")
    assert engine_checks.run_smoke(spec, workdir) == 0
    with open(os.path.join(workdir, "eval.json")) as f:
        results = json.load(f)
    assert 0.0 <= results["knn"]["top1"] <= 1.0
    logged = [r for r in reporting.read_metrics(workdir) if "loss" in r]
    assert [r["step"] for r in logged] == [1, 2, 3]
    for record in logged:
        for key in (*metrics, "embedding_std"):
            assert np.isfinite(record[key]), (key, record)


@pytest.mark.parametrize(
    "spec",
    [
        f"{method}_{data}.py{variant}"
        for method in ("barlow_twins", "vicreg")
        for data in ("fashion_mnist", "cifar10", "imagenet")
        for variant in ("", ":smoke")
    ]
    + ["barlow_twins_fashion_mnist.py:small_cnn", "vicreg_fashion_mnist.py:small_cnn"],
)
def test_config_loads_and_initializes(spec):
    config = engine_checks.load(spec)
    method = get_method(config, num_steps=10, steps_per_epoch=5)
    assert config.method in ("barlow_twins", "vicreg")
    shape = (config.data.image_size, config.data.image_size, config.data.channels)
    variables = jax.eval_shape(lambda rng: method.init(rng, shape), jax.random.PRNGKey(0))
    projector = config.model.projector
    head = variables.params["head"]
    assert head[f"dense{projector.num_layers - 1}"]["kernel"].shape[-1] == projector.output_dim
    assert set(variables.params) == {"encoder", "head"} and variables.extra == {}


def test_view_pairs():
    """Barlow Twins uses BYOL's asymmetric pair; solo-learn's CIFAR VICReg one symmetric pipeline."""
    bt = get_method(engine_checks.load("barlow_twins_imagenet.py")).view_specs()
    assert (bt[0].blur_prob, bt[1].blur_prob) == (1.0, 0.1)
    assert (bt[0].solarize_prob, bt[1].solarize_prob) == (0.0, 0.2)
    vic = get_method(engine_checks.load("vicreg_cifar10.py")).view_specs()
    assert vic[0] == vic[1] and vic[0].solarize_prob == 0.1 and vic[0].crop_scale == (0.2, 1.0)
