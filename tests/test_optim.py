"""Optimizer factory: schedule values, learning-rate scaling, decay masks on a real ResNet-18 tree, LARS
against a NumPy transcription of You et al. (2017), and every registered optimizer taking a jitted step.
"""

import math

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
import pytest

from ssl_jax import default_config, train
from ssl_jax.models import get_encoder
from ssl_jax.optim import (
    OPTIMIZERS,
    decay_mask,
    make_optimizer,
    scaled_learning_rate,
    warmup_cosine_schedule,
)


def _cosine(step, peak, total, warmup, end):
    """The schedule written out: linear from 0, then half a cosine from peak to end."""
    if step < warmup:
        return peak * step / warmup
    t = min(step - warmup, total - warmup) / (total - warmup)
    return end + (peak - end) * 0.5 * (1 + math.cos(math.pi * t))


def test_warmup_cosine_schedule_values():
    schedule = warmup_cosine_schedule(peak_lr=2.0, total_steps=110, warmup_steps=10, end_lr=0.2)
    assert float(schedule(0)) == 0.0
    np.testing.assert_allclose(schedule(5), 1.0, rtol=1e-6)
    np.testing.assert_allclose(schedule(10), 2.0, rtol=1e-6)  # the peak, at the end of warm-up
    np.testing.assert_allclose(schedule(60), 1.1, rtol=1e-6)  # half-way down: (peak + end) / 2
    np.testing.assert_allclose(schedule(110), 0.2, rtol=1e-6)
    np.testing.assert_allclose(schedule(500), 0.2, rtol=1e-6)  # held at end_lr afterwards
    for step in (3, 17, 42, 99):
        np.testing.assert_allclose(schedule(step), _cosine(step, 2.0, 110, 10, 0.2), rtol=1e-5)


def test_schedule_without_warmup_and_invalid_lengths():
    schedule = warmup_cosine_schedule(peak_lr=1.0, total_steps=10, warmup_steps=0)
    np.testing.assert_allclose(schedule(0), 1.0)
    np.testing.assert_allclose(schedule(10), 0.0, atol=1e-7)
    with pytest.raises(ValueError, match="warmup_steps"):
        warmup_cosine_schedule(peak_lr=1.0, total_steps=10, warmup_steps=10)


def test_scaled_learning_rate():
    # SimCLR: LARS at 0.3 x B/256, or 0.075 x sqrt(B); both give 4.8 at B = 4096.
    assert scaled_learning_rate(0.3, 4096, "linear") == pytest.approx(4.8)
    assert scaled_learning_rate(0.075, 4096, "sqrt") == pytest.approx(4.8)
    assert scaled_learning_rate(0.2, 512, "linear") == pytest.approx(0.4)  # BYOL's base
    assert scaled_learning_rate(0.05, 512, "none") == 0.05
    with pytest.raises(ValueError, match="linear"):
        scaled_learning_rate(0.1, 256, "cubic")


def test_decay_mask_on_resnet18():
    model = get_encoder("resnet18")
    params = jax.eval_shape(
        lambda: model.init(jax.random.key(0), jnp.zeros((1, 32, 32, 3)), train=False)
    )["params"]
    mask = decay_mask(params)
    assert jax.tree.structure(mask) == jax.tree.structure(params)
    flat = {jax.tree_util.keystr(path): m for path, m in jax.tree_util.tree_leaves_with_path(mask)}
    kernels = [k for k in flat if k.endswith("['kernel']")]
    assert len(kernels) == 1 + 8 * 2 + 3  # stem, two per block, three downsampling shortcuts
    assert all(flat[k] is True for k in kernels)
    others = [k for k in flat if k not in kernels]
    assert others and all(k.endswith(("['scale']", "['bias']")) for k in others)
    assert not any(flat[k] for k in others)


def test_decay_mask_dense_biases_and_exclusions():
    params = {
        "dense": {"kernel": jnp.zeros((4, 3)), "bias": jnp.zeros(3)},
        "attention": {"kernel": jnp.zeros((8, 2, 4)), "bias": jnp.zeros((2, 4))},  # 2-D bias
        "ln": {"scale": jnp.zeros(8), "bias": jnp.zeros(8)},
        "cls_token": jnp.zeros((1, 1, 8)),
    }
    mask = decay_mask(params)
    assert mask["dense"] == {"kernel": True, "bias": False}
    assert mask["attention"] == {"kernel": True, "bias": False}
    assert mask["ln"] == {"scale": False, "bias": False}
    assert mask["cls_token"] is True
    assert decay_mask(params, exclude=("cls_token",))["cls_token"] is False


def _lars_config(**overrides):
    cfg = dict(
        name="lars",
        learning_rate=0.3,
        lr_scaling="linear",
        batch_size=512,
        warmup_steps=0,
        weight_decay=1e-2,
        momentum=0.9,
    )
    cfg.update(overrides)
    return ml_collections.ConfigDict(cfg)


def test_lars_matches_numpy_reference():
    rng = np.random.default_rng(0)
    params = {
        "dense": {
            "kernel": rng.standard_normal((5, 3)).astype(np.float32),
            "bias": rng.standard_normal(3).astype(np.float32),
        }
    }
    grads = [jax.tree.map(lambda p: rng.standard_normal(p.shape).astype(np.float32), params)]
    grads.append(jax.tree.map(lambda p: rng.standard_normal(p.shape).astype(np.float32), params))
    total_steps, wd, mu, eta = 20, 1e-2, 0.9, 1e-3
    tx, schedule = make_optimizer(_lars_config(), total_steps)
    peak = 0.3 * 512 / 256

    state = tx.init(params)
    p = params
    got = []
    for g in grads:
        updates, state = jax.jit(tx.update)(g, state, p)
        got.append(updates)
        p = optax.apply_updates(p, updates)

    # NumPy: the decayed, trust-ratio-scaled gradient times the learning rate goes into the momentum
    # buffer (optax / SimCLR's placement of the learning rate); biases get plain momentum SGD.
    w, b = params["dense"]["kernel"].astype(np.float64), params["dense"]["bias"].astype(np.float64)
    buf_w, buf_b = np.zeros_like(w), np.zeros_like(b)
    for step, g in enumerate(grads):
        lr = _cosine(step, peak, total_steps, 0, 0.0)
        np.testing.assert_allclose(schedule(step), lr, rtol=1e-6)
        u = g["dense"]["kernel"] + wd * w
        trust = eta * np.linalg.norm(w) / np.linalg.norm(u)
        buf_w = mu * buf_w + lr * trust * u
        buf_b = mu * buf_b + lr * g["dense"]["bias"]
        np.testing.assert_allclose(got[step]["dense"]["kernel"], -buf_w, rtol=1e-5)
        np.testing.assert_allclose(got[step]["dense"]["bias"], -buf_b, rtol=1e-5)
        w, b = w - buf_w, b - buf_b


@pytest.mark.parametrize("name", sorted(OPTIMIZERS))
def test_each_optimizer_steps_and_spares_biases(name):
    params = {
        "conv": {"kernel": jnp.full((3, 3, 2, 4), 0.5)},
        "bn": {"scale": jnp.ones(4), "bias": jnp.full(4, 0.5)},
        "head": {"kernel": jnp.full((4, 2), -0.5), "bias": jnp.full(2, 0.5)},
    }
    cfg = {"name": name, "learning_rate": 0.1, "weight_decay": 0.1}
    tx, _ = make_optimizer(cfg, total_steps=10)
    state = tx.init(params)

    @jax.jit
    def step(params, state, grads):
        updates, state = tx.update(grads, state, params)
        return optax.apply_updates(params, updates), state

    # Zero gradients isolate weight decay: kernels shrink, biases and BN parameters do not move.
    zeros = jax.tree.map(jnp.zeros_like, params)
    new, state = step(params, state, zeros)
    assert np.all(np.abs(new["conv"]["kernel"]) < 0.5) and np.all(
        np.abs(new["head"]["kernel"]) < 0.5
    )
    for leaf in (("bn", "scale"), ("bn", "bias"), ("head", "bias")):
        np.testing.assert_array_equal(new[leaf[0]][leaf[1]], params[leaf[0]][leaf[1]])
    # A real gradient moves everything and stays finite.
    ones = jax.tree.map(jnp.ones_like, params)
    newer, _ = step(new, state, ones)
    assert all(np.all(np.isfinite(x)) for x in jax.tree.leaves(newer))
    assert not np.allclose(newer["bn"]["bias"], new["bn"]["bias"])


def test_grad_clip_norm():
    params = {"w": jnp.zeros(4)}
    cfg = {"name": "sgd", "learning_rate": 1.0, "momentum": 0.0, "grad_clip_norm": 2.0}
    tx, _ = make_optimizer(cfg, total_steps=10)
    updates, _ = tx.update({"w": jnp.full(4, 100.0)}, tx.init(params), params)
    np.testing.assert_allclose(np.linalg.norm(updates["w"]), 2.0, rtol=1e-6)


def test_unknown_optimizer_and_missing_batch_size():
    with pytest.raises(ValueError, match="lars.*sgd.*adamw.*lamb"):
        make_optimizer({"name": "adagrad", "learning_rate": 0.1}, total_steps=10)
    with pytest.raises(ValueError, match="batch_size"):
        make_optimizer({"name": "sgd", "learning_rate": 0.1, "lr_scaling": "linear"}, 10)


def test_a_warmup_longer_than_half_the_run_is_reported(capsys):
    config = default_config.get_config()
    config.optim.warmup_epochs = 10.0  # a 10-epoch warm-up ...
    cfg = train.optimizer_config(config, steps_per_epoch=100, num_steps=300)  # ... in 3 epochs
    assert cfg.warmup_steps == 299
    assert (
        "warm-up (1000 steps) is more than half of this run's 300 steps" in capsys.readouterr().out
    )
    config.optim.warmup_epochs = 1.0
    assert train.optimizer_config(config, 100, 300).warmup_steps == 100
    assert capsys.readouterr().out == ""
