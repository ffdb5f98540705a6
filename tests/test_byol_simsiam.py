"""BYOL and SimSiam: losses against NumPy references written from the papers, the target network's
stop-gradient and EMA update checked against NumPy, BYOL's tau schedule, 1-vs-8-device equality of a
BYOL step, a CLI run per method, and every config's method initializing."""

import json
import math
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from ssl_jax import augment, cli, optim, parallel, reporting, train
from ssl_jax.losses import byol_loss, simsiam_loss
from ssl_jax.methods import get_method
from ssl_jax.methods.bases import forward_views
from ssl_jax.methods.byol import BYOL

import engine_checks

# ---------------------------------------------------------------- losses


def byol_reference(p: np.ndarray, z: np.ndarray) -> np.ndarray:
    """Grill et al. 2020, eq. 2: the squared distance between the l2-normalized vectors, in float64."""
    p = p.astype(np.float64) / np.linalg.norm(p, axis=1, keepdims=True)
    z = z.astype(np.float64) / np.linalg.norm(z, axis=1, keepdims=True)
    return np.sum((p - z) ** 2, axis=1)


def simsiam_reference(p: np.ndarray, z: np.ndarray) -> np.ndarray:
    """Chen & He 2021, eq. 1: minus the cosine similarity, written out per row with explicit loops."""
    out = []
    for a, b in zip(p.astype(np.float64), z.astype(np.float64), strict=True):
        out.append(-sum(a * b) / (math.sqrt(sum(a * a)) * math.sqrt(sum(b * b))))
    return np.array(out)


LOSSES = [(byol_loss, byol_reference), (simsiam_loss, simsiam_reference)]
LOSS_IDS = ["byol", "simsiam"]


def _pair(n=10, d=24, seed=0):
    rng = np.random.default_rng(seed)
    p = rng.normal(size=(n, d)).astype(np.float32)
    z = (p + rng.normal(size=(n, d))).astype(np.float32)
    z[0] = -3.0 * p[0]  # opposite directions: BYOL's maximum 4, SimSiam's 1
    z[1] = 0.5 * p[1]  # same direction, other length: BYOL's 0, SimSiam's -1
    return p, z


@pytest.mark.parametrize("loss_fn, reference", LOSSES, ids=LOSS_IDS)
def test_loss_matches_numpy_reference(loss_fn, reference):
    p, z = _pair()
    got = jax.jit(loss_fn)(p, z)
    assert got.shape == (10,) and got.dtype == jnp.float32
    np.testing.assert_allclose(got, reference(p, z), rtol=1e-5, atol=1e-5)


def test_loss_extremes():
    p, z = _pair()
    np.testing.assert_allclose(byol_loss(p, z)[:2], [4.0, 0.0], atol=1e-5)
    np.testing.assert_allclose(simsiam_loss(p, z)[:2], [1.0, -1.0], atol=1e-6)


@pytest.mark.parametrize("loss_fn, reference", LOSSES, ids=LOSS_IDS)
def test_bf16_inputs_close_to_fp32(loss_fn, reference):
    p, z = _pair(seed=1)
    got = loss_fn(jnp.asarray(p, jnp.bfloat16), jnp.asarray(z, jnp.bfloat16))
    assert got.dtype == jnp.float32
    np.testing.assert_allclose(got, reference(p, z), rtol=2e-2, atol=2e-2)


@pytest.mark.parametrize("loss_fn", [byol_loss, simsiam_loss], ids=LOSS_IDS)
def test_gradients_numerically_and_none_into_the_target(loss_fn):
    p, z = _pair(n=4, d=5, seed=2)
    # Only the prediction is a variable: the target's stop_gradient makes its autodiff gradient zero.
    # d cos(p, z) / dp = z / (|p||z|) - cos(p, z) p / |p|^2, in float64: deterministic on any CPU,
    # unlike float32 finite differences.
    p64, z64 = p.astype(np.float64), z.astype(np.float64)
    norm_p = np.linalg.norm(p64, axis=1, keepdims=True)
    norm_z = np.linalg.norm(z64, axis=1, keepdims=True)
    cos = np.sum(p64 * z64, axis=1, keepdims=True) / (norm_p * norm_z)
    dcos = z64 / (norm_p * norm_z) - cos * p64 / norm_p**2
    scale = -2.0 if loss_fn is byol_loss else -1.0  # 2 - 2 cos  /  -cos
    got = jax.jit(jax.grad(lambda a: loss_fn(a, z).sum()))(p)
    np.testing.assert_allclose(got, scale * dcos, rtol=1e-4, atol=1e-6)
    grad_z = jax.grad(lambda b: loss_fn(p, b).sum())(z)
    np.testing.assert_array_equal(grad_z, np.zeros_like(z))
    assert np.abs(jax.grad(lambda a: loss_fn(a, z).sum())(p)).max() > 1e-3


@pytest.mark.parametrize("loss_fn", [byol_loss, simsiam_loss], ids=LOSS_IDS)
def test_bad_inputs_are_clear_errors(loss_fn):
    p, z = _pair()
    with pytest.raises(TypeError, match="floating"):
        loss_fn(p.astype(np.int32), z)
    with pytest.raises(ValueError, match="same shape"):
        loss_fn(p, z[:, :3])
    with pytest.raises(ValueError, match="rank 2"):
        loss_fn(p[0], z[0])


# ---------------------------------------------------------------- BYOL's target network

SMOKE = "byol_fashion_mnist.py:smoke"
EMBEDDED = "data.name=embedded_fashion_mnist"  # the subset shipped in the package
RUN_STEPS = 10


def _tau_reference(k: int, total: int, base: float) -> float:
    return 1.0 - (1.0 - base) * (math.cos(math.pi * k / total) + 1.0) / 2.0


def test_tau_schedule_rises_from_base_to_one():
    config = engine_checks.load(SMOKE, "byol.tau_base=0.99")
    method = get_method(config, num_steps=RUN_STEPS, steps_per_epoch=5)
    taus = np.array([float(method.tau(k)) for k in range(RUN_STEPS + 3)])
    np.testing.assert_allclose(taus[0], 0.99, rtol=1e-7)
    np.testing.assert_allclose(taus[RUN_STEPS:], 1.0, rtol=1e-7)  # held at 1 past the end
    assert np.all(np.diff(taus) >= 0) and taus[1] > taus[0]
    expected = [_tau_reference(k, RUN_STEPS, 0.99) for k in range(RUN_STEPS + 1)]
    np.testing.assert_allclose(taus[: RUN_STEPS + 1], expected, rtol=1e-6)
    with pytest.raises(ValueError, match="num_steps"):
        get_method(config).tau(0)  # built for evaluation only: no run length


def _images(n=8, seed=0):
    rng = np.random.default_rng(seed)
    return {
        "image": rng.integers(0, 256, (n, 28, 28, 1), dtype=np.uint8),
        "example_ids": np.arange(n, dtype=np.int32),
    }


def _perturbed_target(extra, seed=1):
    """A target unequal to the online network (init copies it), so every EMA term is visible."""
    leaves, treedef = jax.tree.flatten(extra)
    rng = np.random.default_rng(seed)
    moved = [np.asarray(x) * 0.5 + 0.1 * np.abs(rng.normal(size=x.shape)) for x in leaves]
    return jax.tree.unflatten(treedef, [jnp.asarray(x, jnp.float32) for x in moved])


def _max_abs(tree) -> float:
    return max(float(jnp.abs(x).max()) for x in jax.tree.leaves(tree))


@pytest.fixture(scope="module")
def byol_run():
    """A BYOL smoke setup (no warm-up, so every step moves the online network) and its initial state,
    whose target is pulled away from the online copy it starts as, so every EMA term is visible."""
    config = engine_checks.load(SMOKE, EMBEDDED, "byol.tau_base=0.9", "optim.warmup_epochs=0.0")
    method = get_method(config, num_steps=RUN_STEPS, steps_per_epoch=5)
    tx, schedule = optim.make_optimizer(train.optimizer_config(config, 5, RUN_STEPS), RUN_STEPS)
    state = train.create_train_state(method, tx, jax.random.PRNGKey(0), (28, 28, 1))
    state = state.replace(extra=_perturbed_target(state.extra))
    return config, method, tx, schedule, jax.tree.map(np.array, jax.device_get(state))


def test_no_gradient_reaches_the_target_and_the_loss_pairs_the_views(byol_run):
    _, method, _, _, state = byol_run
    params, stats, extra = state.params, state.batch_stats, state.extra
    batch, rng = _images(), jax.random.PRNGKey(3)
    online_net = method._network(None, with_predictor=True)
    target_net = method._network(None, with_predictor=False)

    @jax.jit
    def probe(params, extra):
        def loss(params, extra):
            value, _ = method.loss_fn(params, stats, extra, batch, rng=rng, step=0, axis_name=None)
            return value

        value, grads = jax.value_and_grad(loss, argnums=(0, 1))(params, extra)
        x1, x2 = (
            augment.augment_batch(
                jax.random.fold_in(rng, i), batch["image"], batch["example_ids"], s
            )
            for i, s in zip((1, 2), method.view_specs(), strict=True)
        )

        def target_outputs(target_params):
            outs, _ = forward_views(
                target_net, target_params, extra["target_batch_stats"], (x1, x2)
            )
            return outs[0][1], outs[1][1]

        (o1, o2), _ = forward_views(online_net, params, stats, (x1, x2))
        target_grad = jax.grad(lambda t: sum(z.sum() for z in target_outputs(t)))(
            extra["target_params"]
        )
        return value, grads, target_grad, (o1[2], o2[2], *target_outputs(extra["target_params"]))

    value, (g_online, g_target), target_grad, outputs = probe(params, extra)
    for leaf in jax.tree.leaves(g_target):
        np.testing.assert_array_equal(leaf, np.zeros_like(leaf))
    assert _max_abs(g_online) > 0
    # The target's output does depend on its parameters, so the zero above is the stop_gradient's.
    assert _max_abs(target_grad) > 0

    # BYOL's L + L~: view 1's prediction against view 2's target and vice versa, summed.
    p1, p2, z1, z2 = (np.asarray(a) for a in outputs)
    crossed = np.mean(byol_reference(p1, z2) + byol_reference(p2, z1))
    same_view = np.mean(byol_reference(p1, z1) + byol_reference(p2, z2))
    np.testing.assert_allclose(value, crossed, rtol=1e-4)
    assert abs(crossed - same_view) > 1e-3  # the pairing is observable


def _ema_reference(old_target, new_online, tau):
    return jax.tree.map(
        lambda t, o: tau * np.asarray(t, np.float64) + (1 - tau) * np.asarray(o, np.float64),
        old_target,
        new_online,
    )


def test_train_step_moves_the_target_by_the_ema_formula(byol_run):
    config, method, tx, schedule, initial = byol_run
    mesh = parallel.make_mesh(jax.devices()[:1])
    state = parallel.replicate(initial, mesh)
    step_fn = train.make_train_step(method, tx, schedule, mesh)
    parts = ("encoder", "projector")
    for k in range(2):
        old = jax.tree.map(np.array, jax.device_get(state))  # copies: the step donates `state`
        state, metrics = step_fn(state, engine_checks.batch_for(config, mesh, k))
        new = jax.tree.map(np.array, jax.device_get(state))
        tau = _tau_reference(k, RUN_STEPS, 0.9)
        np.testing.assert_allclose(metrics["tau"], tau, rtol=1e-6)
        assert {"embedding_std", "tau", "loss"} <= set(metrics)
        for kind, online in (("params", new.params), ("batch_stats", new.batch_stats)):
            expected = _ema_reference(
                old.extra[f"target_{kind}"], {p: online[p] for p in parts}, tau
            )
            jax.tree.map(
                lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6),
                new.extra[f"target_{kind}"],
                expected,
            )
        # The online network did train (so the formula's second term is not the old online).
        assert _max_abs(jax.tree.map(lambda a, b: a - b, old.params, new.params)) > 0
        assert set(new.extra["target_params"]) == set(parts)  # the predictor has no target


def test_byol_step_is_the_same_on_one_and_eight_devices(n_devices):
    engine_checks.assert_same_on_one_and_eight(
        engine_checks.load(SMOKE, "model.dtype=float32", EMBEDDED)
    )


# ---------------------------------------------------------------- end to end and configs


@pytest.mark.parametrize("name", ["byol", "simsiam"])
def test_cli_smoke_and_evaluate(name, tmp_path, capsys):
    workdir = str(tmp_path / name)
    assert engine_checks.run_smoke(f"{name}_fashion_mnist.py:smoke", workdir) == 0
    results = json.load(open(os.path.join(workdir, "eval.json")))
    assert 0.0 <= results["knn"]["top1"] <= 1.0
    records = [r for r in reporting.read_metrics(workdir) if "loss" in r]
    assert [r["step"] for r in records] == [1, 2, 3]
    assert all(np.isfinite(r["loss"]) and r["embedding_std"] > 0 for r in records)
    if name == "byol":
        taus = [r["tau"] for r in records]
        np.testing.assert_allclose(taus[0], 0.99, rtol=1e-6)  # tau_base at the first update
        assert (
            taus == sorted(taus) and taus[-1] <= 1.0 and all(0 <= r["loss"] <= 8 for r in records)
        )
    else:
        assert all(-1.0 <= r["loss"] <= 1.0 for r in records)
    capsys.readouterr()
    assert cli.main(["evaluate", "--workdir", workdir, "--protocol", "knn"]) == 0
    assert "knn top-1 accuracy" in capsys.readouterr().out


CONFIGS = [
    (f"{method}_{data}.py{variant}", shape)
    for method in ("byol", "simsiam")
    for data, shape in (("cifar10", (32, 32, 3)), ("imagenet", (224, 224, 3)))
    for variant in ("", ":smoke")
] + [
    (f"{m}_fashion_mnist.py{v}", (28, 28, 1))
    for m in ("byol", "simsiam")
    for v in ("", ":small_cnn")
]


@pytest.mark.parametrize("spec, image_shape", CONFIGS, ids=[c[0] for c in CONFIGS])
def test_every_config_initializes(spec, image_shape):
    config = engine_checks.load(spec)
    method = get_method(config, num_steps=100, steps_per_epoch=10)
    variables = jax.eval_shape(lambda rng: method.init(rng, image_shape), jax.random.PRNGKey(0))
    proj = config.model.projector
    assert variables.params["projector"][f"dense{proj.num_layers - 1}"]["kernel"].shape[-1] == (
        proj.output_dim
    )
    assert set(variables.params) == {"encoder", "projector", "predictor"}
    if config.method == "byol":
        assert isinstance(method, BYOL)
        first, second = method.view_specs()  # the asymmetric pair: solarize the second view only
        assert first.solarize_prob == 0.0 and second.solarize_prob == 0.2
        assert set(variables.extra["target_params"]) == {"encoder", "projector"}
        shapes = lambda tree: jax.tree.map(lambda x: (x.shape, x.dtype), tree)  # noqa: E731
        online = {k: variables.params[k] for k in ("encoder", "projector")}
        assert shapes(variables.extra["target_params"]) == shapes(online)
    else:
        assert variables.extra == {}
        # SimSiam's projector ends in a BN without scale and bias (Chen & He 2021, Sec. 3).
        last_bn = f"bn{proj.num_layers - 1}"
        assert last_bn in variables.batch_stats["projector"]
        assert last_bn not in variables.params["projector"]


def test_mismatched_predictor_is_a_clear_error():
    config = engine_checks.load("simsiam_fashion_mnist.py:smoke", "model.predictor.output_dim=7")
    with pytest.raises(ValueError, match="predictor.output_dim"):
        get_method(config)
