"""The online linear probe (ssl_jax.methods.online_probe): no gradient from the probe reaches the encoder,
the probe learns linearly separable data, and pre-training steps with it log its loss and accuracy while
the exported encoder stays the wrapped method's."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from ssl_jax import parallel
from ssl_jax.methods import get_method
from ssl_jax.methods.online_probe import METHOD, PROBE, OnlineProbe
from ssl_jax.methods.simclr import SimCLR

import engine_checks

SMOKE = "simclr_fashion_mnist.py:smoke"


@pytest.fixture(scope="module")
def probe_method():
    config = engine_checks.load(
        SMOKE, "data.name=embedded_fashion_mnist", "online_probe.enabled=True"
    )
    method = get_method(config, num_steps=100, steps_per_epoch=10)
    variables = jax.jit(lambda rng: method.init(rng, (28, 28, 1)))(jax.random.key(0))
    return config, method, variables


def _separable_batch(n=32, seed=0):
    """Dark images are class 0, bright ones class 1 (a single feature direction separates them)."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 2, n).astype(np.int32)
    level = np.where(labels == 1, 200, 30)[:, None, None, None]
    noise = rng.integers(-20, 21, (n, 28, 28, 1))
    images = np.clip(level + noise, 0, 255).astype(np.uint8)
    return {"image": jnp.asarray(images), "label": jnp.asarray(labels)}


def test_get_method_wraps_only_when_enabled(probe_method):
    config, method, variables = probe_method
    assert isinstance(method, OnlineProbe) and isinstance(method.method, SimCLR)
    assert method.batch_keys == ("image", "label")
    assert set(variables.params) == {METHOD, PROBE}
    config_off = engine_checks.load(SMOKE)
    assert isinstance(get_method(config_off), SimCLR)


def test_no_gradient_from_the_probe_reaches_the_encoder(probe_method):
    _, method, variables = probe_method
    batch = _separable_batch()

    @jax.jit
    def grads(params):
        return jax.grad(lambda p: method.probe_loss(p, variables.batch_stats, batch)[0])(params)

    g = grads(variables.params)
    assert all(float(jnp.max(jnp.abs(x))) == 0.0 for x in jax.tree.leaves(g[METHOD]))
    assert float(jnp.max(jnp.abs(g[PROBE]["dense"]["kernel"]))) > 0.0


def test_probe_learns_separable_data(probe_method):
    _, method, variables = probe_method
    batch = _separable_batch()
    tx = optax.adam(0.05)

    @jax.jit
    def train(params):
        def step(carry, _):
            params, opt_state = carry
            grads = jax.grad(lambda p: method.probe_loss(p, variables.batch_stats, batch)[0])(
                params
            )
            updates, opt_state = tx.update(grads, opt_state, params)
            return (optax.apply_updates(params, updates), opt_state), None

        (params, _), _ = jax.lax.scan(step, (params, tx.init(params)), None, length=50)
        return params, method.probe_loss(params, variables.batch_stats, batch)

    start_loss, _ = method.probe_loss(variables.params, variables.batch_stats, batch)
    trained, (loss, accuracy) = train(variables.params)
    np.testing.assert_allclose(start_loss, np.log(10), rtol=1e-5)  # zero-initialized head
    assert float(accuracy) == 1.0 and float(loss) < 0.2 * float(start_loss)
    jax.tree.map(np.testing.assert_array_equal, trained[METHOD], variables.params[METHOD])


def test_training_steps_log_the_probe_and_export_the_plain_encoder(probe_method, n_devices):
    config, _, _ = probe_method
    mesh = parallel.make_mesh()
    method = get_method(config, num_steps=100, steps_per_epoch=10)
    state, step_fn = engine_checks.build(config, mesh, method=method)
    head_before = np.asarray(state.params[PROBE]["dense"]["kernel"])
    for i in range(2):
        state, metrics = step_fn(state, engine_checks.batch_for(config, mesh, i))
    metrics = jax.device_get(metrics)
    for key in ("online_probe_loss", "online_probe_acc", "method_loss", "embedding_std"):
        assert np.isfinite(metrics[key]), key
    np.testing.assert_allclose(
        metrics["loss"], metrics["method_loss"] + metrics["online_probe_loss"], rtol=1e-5
    )
    assert not np.array_equal(head_before, np.asarray(state.params[PROBE]["dense"]["kernel"]))
    # The exported encoder is the backbone alone, exactly the wrapped method's: no probe parameters.
    exported = jax.device_get(method.export_encoder(state))
    assert jax.tree.structure(exported["params"]) == jax.tree.structure(
        state.params[METHOD]["encoder"]
    )
    jax.tree.map(np.testing.assert_array_equal, exported["params"], state.params[METHOD]["encoder"])
