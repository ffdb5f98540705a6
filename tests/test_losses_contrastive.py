"""nt_xent against a NumPy reference written from the SimCLR paper, and 1-vs-8-device equality."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.sharding import PartitionSpec as P
from jax.test_util import check_grads

from ssl_jax import parallel
from ssl_jax.losses import nt_xent


def nt_xent_reference(z1: np.ndarray, z2: np.ndarray, temperature: float) -> np.ndarray:
    """Chen et al. 2020, Algorithm 1, with the paper's interleaved indexing (2k-1, 2k) and explicit loops."""
    n = z1.shape[0]
    z = np.empty((2 * n, z1.shape[1]), np.float64)
    z[0::2], z[1::2] = z1, z2  # views 2k and 2k+1 (0-based) are the pair of example k
    z = z / np.linalg.norm(z, axis=1, keepdims=True)
    sim = z @ z.T

    def ell(i, j):
        denom = sum(np.exp(sim[i, k] / temperature) for k in range(2 * n) if k != i)
        return -np.log(np.exp(sim[i, j] / temperature) / denom)

    return np.array([0.5 * (ell(2 * k, 2 * k + 1) + ell(2 * k + 1, 2 * k)) for k in range(n)])


def _views(n=12, d=16, seed=0):
    rng = np.random.default_rng(seed)
    z1 = rng.normal(size=(n, d)).astype(np.float32)
    z2 = (z1 + 0.5 * rng.normal(size=(n, d))).astype(np.float32)
    return z1, z2


@pytest.mark.parametrize("temperature", [0.05, 0.1, 0.5, 1.0])
def test_matches_numpy_reference(temperature):
    z1, z2 = _views()
    got = jax.jit(nt_xent, static_argnames="temperature")(z1, z2, temperature=temperature)
    assert got.shape == (12,) and got.dtype == jnp.float32
    np.testing.assert_allclose(got, nt_xent_reference(z1, z2, temperature), rtol=1e-5, atol=1e-5)


def test_bf16_inputs_close_to_fp32():
    z1, z2 = _views(seed=1)
    got = nt_xent(jnp.asarray(z1, jnp.bfloat16), jnp.asarray(z2, jnp.bfloat16), temperature=0.1)
    assert got.dtype == jnp.float32
    np.testing.assert_allclose(got, nt_xent_reference(z1, z2, 0.1), rtol=2e-2, atol=2e-2)


def test_small_temperature_is_finite():
    z1, z2 = _views(seed=2)
    loss, grad = jax.value_and_grad(lambda a: nt_xent(a, z2, temperature=0.01).mean())(z1)
    assert np.isfinite(loss) and np.all(np.isfinite(grad))


def test_gradients_numerically():
    z1, z2 = _views(n=4, d=5, seed=3)
    f = lambda a, b: nt_xent(a, b, temperature=0.5).sum()  # noqa: E731
    check_grads(
        f, (z1.astype(np.float64), z2.astype(np.float64)), order=1, modes=["rev"], atol=1e-2
    )


def test_identical_views_far_apart_give_low_loss():
    z = np.eye(8, dtype=np.float32)  # orthogonal examples, perfectly aligned views
    assert float(nt_xent(z, z, temperature=0.05).mean()) < 1e-6 + np.log(1 + 14 * np.exp(-20))


def test_rejects_bad_inputs():
    z1, z2 = _views()
    with pytest.raises(TypeError, match="floating"):
        nt_xent(z1.astype(np.int32), z2)
    with pytest.raises(ValueError, match="same shape"):
        nt_xent(z1, z2[:-1])
    with pytest.raises(ValueError, match=r"\[batch, dim\]"):
        nt_xent(z1[0], z2[0])
    with pytest.raises(ValueError, match="temperature"):
        nt_xent(z1, z2, temperature=0.0)


def _sharded_loss_and_grad(w, x1, x2, mesh, temperature):
    """Mean NT-Xent of a linear projector, the loss computed per device under shard_map."""

    def local(w, x1, x2):
        per_example = nt_xent(x1 @ w, x2 @ w, temperature=temperature, axis_name=parallel.DATA_AXIS)
        return parallel.pmean(per_example.mean(), parallel.DATA_AXIS)

    axis = parallel.DATA_AXIS
    f = parallel.per_device(local, mesh, in_specs=(P(), P(axis), P(axis)), out_specs=P())
    return jax.jit(jax.value_and_grad(f))(w, x1, x2)


def test_one_device_equals_eight_devices_loss_and_gradient(n_devices):
    rng = np.random.default_rng(4)
    x1 = rng.normal(size=(32, 10)).astype(np.float32)
    x2 = (x1 + 0.3 * rng.normal(size=x1.shape)).astype(np.float32)
    w = rng.normal(size=(10, 6)).astype(np.float32)
    mesh8 = parallel.make_mesh()
    mesh1 = parallel.make_mesh(jax.devices()[:1])
    loss8, grad8 = _sharded_loss_and_grad(w, x1, x2, mesh8, 0.2)
    loss1, grad1 = _sharded_loss_and_grad(w, x1, x2, mesh1, 0.2)
    # Plain single-device function, no shard_map at all, as the ground truth.
    loss0, grad0 = jax.value_and_grad(lambda w: nt_xent(x1 @ w, x2 @ w, temperature=0.2).mean())(w)
    np.testing.assert_allclose(loss8, loss0, rtol=1e-6)
    np.testing.assert_allclose(loss1, loss0, rtol=1e-6)
    np.testing.assert_allclose(grad8, grad0, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(grad1, grad0, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(loss0, nt_xent_reference(x1 @ w, x2 @ w, 0.2).mean(), rtol=1e-5)


def test_without_gather_the_sharded_loss_differs(n_devices):
    """The equality above is not vacuous: per-device negatives only give a different loss."""
    rng = np.random.default_rng(5)
    x1 = rng.normal(size=(16, 6)).astype(np.float32)
    x2 = x1 + 0.1
    mesh = parallel.make_mesh()
    axis = parallel.DATA_AXIS

    def local_only(x1, x2):
        return parallel.pmean(nt_xent(x1, x2, temperature=0.2).mean(), axis)

    f = parallel.per_device(local_only, mesh, in_specs=(P(axis), P(axis)), out_specs=P())
    assert abs(float(f(x1, x2)) - float(nt_xent(x1, x2, temperature=0.2).mean())) > 1e-2


def test_batch_not_divisible_by_devices_is_a_clear_error(n_devices):
    with pytest.raises(ValueError, match="multiple of the number of devices"):
        parallel.check_batch_size(30, parallel.make_mesh())
    assert parallel.check_batch_size(32, parallel.make_mesh()) == 4
