"""A researcher's composition of two objectives trains through the unchanged engine, and the logged terms
add up to the loss."""

import functools

import jax
import numpy as np

from ssl_jax import methods
from ssl_jax.losses import nt_xent, vicreg_loss
from ssl_jax.methods import TwoViewMethod

from engine_checks import assert_same_on_one_and_eight, load, run_smoke


def test_composed_loss_is_the_weighted_sum_of_its_terms(n_devices):
    from ssl_jax.methods.composite import SimCLRPlusVICReg

    config = load("simclr_vicreg_fashion_mnist.py:smoke", "data.name=embedded_fashion_mnist")
    method = SimCLRPlusVICReg(config)
    z1, z2 = np.random.default_rng(0).normal(size=(2, 16, 8)).astype(np.float32)
    loss, terms = method.objective(z1, z2, axis_name=None)
    expected_a = nt_xent(z1, z2, temperature=0.2).mean()
    expected_b = vicreg_loss(z1, z2)
    np.testing.assert_allclose(terms["nt_xent"], expected_a, rtol=1e-6)
    np.testing.assert_allclose(terms["vicreg"], expected_b, rtol=1e-6)
    np.testing.assert_allclose(loss, expected_a + 0.05 * expected_b, rtol=1e-6)


def test_composite_step_is_identical_on_one_and_eight_devices(n_devices):
    assert_same_on_one_and_eight(
        load(
            "simclr_vicreg_fashion_mnist.py:smoke",
            "data.name=embedded_fashion_mnist",
            "model.dtype=float32",
        )
    )


class AlignmentPlusUniformity(TwoViewMethod):
    """Written in a test, as a user would: Wang & Isola's alignment + uniformity, no engine change."""

    def objective(self, z1, z2, *, axis_name):
        z1 = z1 / jax.numpy.linalg.norm(z1, axis=1, keepdims=True)
        z2 = z2 / jax.numpy.linalg.norm(z2, axis=1, keepdims=True)
        align = jax.numpy.sum((z1 - z2) ** 2, axis=1).mean()
        sq = jax.numpy.sum((z1[:, None] - z1[None]) ** 2, axis=-1)
        uniform = jax.numpy.log(jax.numpy.mean(jax.numpy.exp(-2.0 * sq)))
        return align + uniform, {"align": align, "uniform": uniform}


def test_a_user_defined_objective_trains_from_the_cli(tmp_path, monkeypatch):
    monkeypatch.setitem(methods.METHODS, "simclr", functools.partial(AlignmentPlusUniformity))
    assert run_smoke("simclr_fashion_mnist.py:smoke", str(tmp_path)) == 0
    from ssl_jax import reporting

    records = [r for r in reporting.read_metrics(str(tmp_path)) if "loss" in r]
    assert records and all({"align", "uniform"} <= set(r) for r in records)
    for r in records:
        np.testing.assert_allclose(r["loss"], r["align"] + r["uniform"], rtol=1e-5)


def test_simclr_vicreg_runs_from_the_cli(tmp_path):
    assert run_smoke("simclr_vicreg_fashion_mnist.py:smoke", str(tmp_path)) == 0
