"""MoCo v2 and v3: info_nce and moco_loss against NumPy references written from the papers, info_nce's
loss and gradient on 1 and 8 devices, shuffle-BN against a per-device reference, the queue and the
momentum encoder after real train steps on 1 and 8 devices, MoCo v3's 1-vs-8-device step, a CLI run of
each method, and every config initializing."""

import json
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.sharding import PartitionSpec as P
from jax.test_util import check_grads

from ssl_jax import augment, cli, ema, models, optim, parallel, reporting, train
from ssl_jax.losses import info_nce, moco_loss
from ssl_jax.methods import get_method
from ssl_jax.methods.moco import build_network, shuffle_bn_apply

import engine_checks

AXIS = parallel.DATA_AXIS
EMBEDDED = "data.name=embedded_fashion_mnist"
V2_SMOKE = "moco_v2_fashion_mnist.py:smoke"
V3_SMOKE = "moco_v3_fashion_mnist.py:smoke"

# ---------------------------------------------------------------- losses


def _unit(x: np.ndarray) -> np.ndarray:
    x = x.astype(np.float64)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def info_nce_reference(q, k, negatives, temperature):
    """van den Oord et al. 2018, eq. 4, with in-batch negatives: row i's positive is k_i, its negatives
    the other keys and every extra negative. Explicit loops, float64."""
    q, k = _unit(q), _unit(k)
    extra = np.zeros((0, q.shape[1])) if negatives is None else _unit(negatives)
    out = []
    for i in range(len(q)):
        candidates = [np.exp(q[i] @ kj / temperature) for kj in k]
        candidates += [np.exp(q[i] @ n / temperature) for n in extra]
        out.append(-np.log(np.exp(q[i] @ k[i] / temperature) / sum(candidates)))
    return np.array(out)


def moco_reference(q, k, queue, temperature):
    """He et al. 2020, eq. 1: one positive (the row's own key) and the K queue entries as negatives."""
    q, k, queue = _unit(q), _unit(k), _unit(queue)
    out = []
    for i in range(len(q)):
        pos = np.exp(q[i] @ k[i] / temperature)
        neg = sum(np.exp(q[i] @ n / temperature) for n in queue)
        out.append(-np.log(pos / (pos + neg)))
    return np.array(out)


def _qkq(n=8, d=12, num_queue=20, seed=0):
    rng = np.random.default_rng(seed)
    q = rng.normal(size=(n, d)).astype(np.float32)
    k = (q + 0.7 * rng.normal(size=(n, d))).astype(np.float32)
    queue = rng.normal(size=(num_queue, d)).astype(np.float32)
    return q, k, queue


@pytest.mark.parametrize("temperature", [0.07, 0.2, 1.0])
@pytest.mark.parametrize("with_negatives", [False, True])
def test_info_nce_matches_numpy_reference(temperature, with_negatives):
    q, k, queue = _qkq()
    negatives = queue if with_negatives else None
    f = jax.jit(lambda q, k, n: info_nce(q, k, negatives=n, temperature=temperature))
    got = f(q, k, negatives)
    assert got.shape == (8,) and got.dtype == jnp.float32
    np.testing.assert_allclose(
        got, info_nce_reference(q, k, negatives, temperature), rtol=1e-5, atol=1e-5
    )


@pytest.mark.parametrize("temperature", [0.07, 0.2, 1.0])
def test_moco_loss_matches_numpy_reference(temperature):
    q, k, queue = _qkq(seed=1)
    got = jax.jit(lambda q, k, m: moco_loss(q, k, m, temperature=temperature))(q, k, queue)
    assert got.shape == (8,) and got.dtype == jnp.float32
    np.testing.assert_allclose(got, moco_reference(q, k, queue, temperature), rtol=1e-5, atol=1e-5)


def test_moco_loss_has_no_in_batch_negatives():
    """Row by row, moco_loss is info_nce on a batch of one (whose only in-batch key is the positive);
    on the whole batch info_nce also counts the other rows' keys, so the two differ."""
    q, k, queue = _qkq(seed=2)
    full = jax.jit(lambda q, k: moco_loss(q, k, queue, temperature=0.2))(q, k)
    one_row = lambda q, k: info_nce(q[None], k[None], negatives=queue, temperature=0.2)[0]  # noqa: E731
    np.testing.assert_allclose(jax.jit(jax.vmap(one_row))(q, k), full, rtol=1e-6)
    in_batch = jax.jit(lambda q, k: info_nce(q, k, negatives=queue, temperature=0.2))(q, k)
    assert np.all(in_batch > full + 1e-3)


def test_bf16_inputs_close_to_fp32():
    q, k, queue = _qkq(seed=3)
    bf = lambda x: jnp.asarray(x, jnp.bfloat16)  # noqa: E731
    got = info_nce(bf(q), bf(k), negatives=bf(queue), temperature=0.2)
    assert got.dtype == jnp.float32
    np.testing.assert_allclose(got, info_nce_reference(q, k, queue, 0.2), rtol=3e-2, atol=3e-2)
    got = moco_loss(bf(q), bf(k), bf(queue), temperature=0.2)
    assert got.dtype == jnp.float32
    np.testing.assert_allclose(got, moco_reference(q, k, queue, 0.2), rtol=3e-2, atol=3e-2)


def test_gradients_numerically():
    q, k, queue = (x.astype(np.float64) for x in _qkq(n=4, d=5, num_queue=6, seed=4))
    f = jax.jit(lambda q, k, n: info_nce(q, k, negatives=n, temperature=0.5).sum())
    check_grads(f, (q, k, queue), order=1, modes=["rev"], atol=1e-2)
    g = jax.jit(lambda q: moco_loss(q, k, queue, temperature=0.5).sum())
    check_grads(g, (q,), order=1, modes=["rev"], atol=1e-2)


def test_moco_loss_stops_gradient_to_keys_and_queue():
    q, k, queue = _qkq(seed=5)
    grad_fn = jax.grad(lambda *a: moco_loss(*a, temperature=0.2).sum(), argnums=(0, 1, 2))
    grads = jax.jit(grad_fn)(q, k, queue)
    assert np.abs(grads[0]).max() > 1e-3
    assert np.all(grads[1] == 0) and np.all(grads[2] == 0)


def test_losses_are_finite_at_small_temperature():
    q, k, queue = _qkq(seed=6)
    for loss in (
        info_nce(q, k, negatives=queue, temperature=0.005),
        moco_loss(q, k, queue, temperature=0.005),
    ):
        assert np.all(np.isfinite(loss))


def test_losses_reject_bad_inputs():
    q, k, queue = _qkq()
    with pytest.raises(TypeError, match="floating"):
        info_nce(q.astype(np.int32), k, temperature=0.2)
    with pytest.raises(TypeError, match="floating"):
        moco_loss(q, k, queue.astype(np.int32), temperature=0.2)
    with pytest.raises(ValueError, match="same shape"):
        info_nce(q, k[:-1], temperature=0.2)
    with pytest.raises(ValueError, match=r"\[K, dim\]"):
        moco_loss(q, k, queue[0], temperature=0.2)
    with pytest.raises(ValueError, match="dim"):
        info_nce(q, k, negatives=queue[:, :3], temperature=0.2)
    with pytest.raises(ValueError, match="temperature"):
        moco_loss(q, k, queue, temperature=0.0)


def _sharded_info_nce(w, x1, x2, queue, mesh, *, gather=True):
    """Mean info_nce of a linear map on both sides, computed per device under shard_map."""

    def local(w, x1, x2, queue):
        axis = AXIS if gather else None
        per_example = info_nce(x1 @ w, x2 @ w, negatives=queue, temperature=0.2, axis_name=axis)
        return parallel.pmean(per_example.mean(), AXIS)

    f = parallel.per_device(local, mesh, in_specs=(P(), P(AXIS), P(AXIS), P()), out_specs=P())
    return jax.jit(jax.value_and_grad(f))(w, x1, x2, queue)


def test_info_nce_is_the_same_on_one_and_eight_devices(n_devices):
    rng = np.random.default_rng(7)
    x1 = rng.normal(size=(32, 10)).astype(np.float32)
    x2 = (x1 + 0.3 * rng.normal(size=x1.shape)).astype(np.float32)
    queue = rng.normal(size=(16, 6)).astype(np.float32)
    w = rng.normal(size=(10, 6)).astype(np.float32)
    # A plain single-device function, no shard_map at all, as the ground truth.
    single = lambda w: info_nce(x1 @ w, x2 @ w, negatives=queue, temperature=0.2).mean()  # noqa: E731
    loss0, grad0 = jax.jit(jax.value_and_grad(single))(w)
    np.testing.assert_allclose(
        loss0, info_nce_reference(x1 @ w, x2 @ w, queue, 0.2).mean(), rtol=1e-5
    )
    for mesh in (parallel.make_mesh(jax.devices()[:1]), parallel.make_mesh()):
        loss, grad = _sharded_info_nce(w, x1, x2, queue, mesh)
        np.testing.assert_allclose(loss, loss0, rtol=1e-6)
        np.testing.assert_allclose(grad, grad0, rtol=1e-5, atol=1e-6)
    # Not vacuous: with only the local keys as in-batch negatives the loss is another number.
    local_loss, _ = _sharded_info_nce(w, x1, x2, queue, parallel.make_mesh(), gather=False)
    assert abs(float(local_loss) - float(loss0)) > 1e-2


# ---------------------------------------------------------------- shuffle-BN


def _batch_norm(h, xp=jnp):
    """BN without affine over the rows it is given (a device's batch)."""
    return (h - h.mean(0)) / xp.sqrt(h.var(0) + 1e-5)


def _shuffle_bn(fn, x, ids, key, mesh):
    def local(x, ids):
        mine, everyone, aux = shuffle_bn_apply(fn, x, ids, rng=key, axis_name=AXIS)
        return mine, everyone, parallel.pmean(aux, AXIS)

    f = parallel.per_device(local, mesh, in_specs=(P(AXIS), P(AXIS)), out_specs=(P(AXIS), P(), P()))
    return jax.jit(f)(x, ids)


def test_shuffle_bn_normalizes_random_subsets_and_returns_rows_home(n_devices):
    rng = np.random.default_rng(8)
    n, per_device = 32, 4
    x = rng.normal(size=(n, 5)).astype(np.float32) + np.arange(n, dtype=np.float32)[:, None] / 8
    ids = np.arange(100, 100 + n, dtype=np.int32)
    w = rng.normal(size=(5, 3)).astype(np.float32)
    key = jax.random.PRNGKey(3)
    mesh8 = parallel.make_mesh()

    # Per-device BN inside fn: with 8 devices each row is normalized with the statistics of the 4 rows
    # its slice of the permuted batch holds; the reference builds that grouping by hand, row by row.
    bn_fn = lambda x, ids: (_batch_norm(x @ w), jnp.float32(0))  # noqa: E731
    mine, everyone, _ = _shuffle_bn(bn_fn, x, ids, key, mesh8)
    perm = np.asarray(jax.random.permutation(key, n))
    reference = np.zeros((n, 3), np.float32)
    for d in range(8):
        rows = perm[d * per_device : (d + 1) * per_device]
        reference[rows] = _batch_norm(x[rows] @ w, np)
    np.testing.assert_allclose(mine, reference, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(everyone, reference, rtol=1e-5, atol=1e-5)
    # Not vacuous: both synchronized BN and unshuffled per-device BN give other keys.
    sync = _batch_norm(x @ w, np)
    unshuffled = np.concatenate(
        [_batch_norm(x[i : i + per_device] @ w, np) for i in range(0, n, per_device)]
    )
    assert np.abs(reference - sync).max() > 0.1 and np.abs(reference - unshuffled).max() > 0.1

    # A row-wise fn (no BN) must come back unchanged, each row in its own place, with its own id.
    rowwise = lambda x, ids: (x @ w + ids[:, None].astype(jnp.float32), jnp.float32(0))  # noqa: E731
    mine, everyone, _ = _shuffle_bn(rowwise, x, ids, key, mesh8)
    expected = x @ w + ids[:, None]
    np.testing.assert_allclose(mine, expected, rtol=1e-6)
    np.testing.assert_allclose(everyone, expected, rtol=1e-6)

    # One device: one subset, the whole batch: plain per-batch BN.
    mine, _, _ = _shuffle_bn(bn_fn, x, ids, key, parallel.make_mesh(jax.devices()[:1]))
    np.testing.assert_allclose(mine, sync, rtol=1e-5, atol=1e-5)


# ---------------------------------------------------------------- the queue and the momentum encoder

QUEUE_SIZE, STEPS = 32, 3  # batch 16: the third step wraps around to the start of the queue


def _v2_config():
    # Synchronized BN in both encoders, so that the step is the same on any number of devices; the
    # symmetric form, so that both views' queues are exercised; a momentum schedule to check.
    return engine_checks.load(
        V2_SMOKE,
        EMBEDDED,
        "model.sync_batch_norm=True",
        "moco.key_bn=sync",
        "moco.symmetric=True",
        f"moco.queue_size={QUEUE_SIZE}",
        "moco.final_momentum=0.999",
    )


@pytest.fixture(scope="module")
def v2_runs():
    """{n_devices: (states before and after each step, host batches)} for STEPS steps of MoCo v2."""
    config = _v2_config()
    runs = {}
    for n in (1, 8):
        mesh = parallel.make_mesh(jax.devices()[:n])
        method = get_method(config, num_steps=100, steps_per_epoch=10)
        tx, schedule = optim.make_optimizer(train.optimizer_config(config, 10, 100), 100)
        state = train.create_train_state(method, tx, jax.random.PRNGKey(0), (28, 28, 1))
        state = parallel.replicate(state, mesh)
        step_fn = train.make_train_step(method, tx, schedule, mesh)
        states, batches = [jax.device_get(state)], []
        for i in range(STEPS):
            batch = engine_checks.batch_for(config, mesh, i)
            batches.append(jax.device_get(batch))
            state, _ = step_fn(state, batch)
            states.append(jax.device_get(state))
        runs[n] = (states, batches)
    return config, runs


def _reference_keys_fn(config):
    """(state, host batch, view) -> the momentum network's l2-normalized keys of `view` for the global
    batch, computed on one device without shard_map (BN over the whole batch, as synchronized BN)."""
    spec = augment.ViewSpec.from_config(
        {**config.augment.to_dict(), "mean": config.data.mean, "std": config.data.std}
    )
    network = build_network(config, bn_axis_name=None)

    @jax.jit
    def keys(params, batch_stats, rng, images, ids, view):
        x = augment.augment_batch(jax.random.fold_in(rng, view), images, ids, spec)
        variables = {"params": params, "batch_stats": batch_stats}
        (_, k, _), _ = network.apply(variables, x, train=True, mutable=["batch_stats"])
        return k / jnp.linalg.norm(k, axis=1, keepdims=True)

    def fn(state, batch, view):
        rng = jax.random.fold_in(state.rng, state.step)
        extra = state.extra
        return np.asarray(
            keys(
                extra["target_params"],
                extra["target_batch_stats"],
                rng,
                batch["image"],
                batch["example_ids"],
                view,
            )
        )

    return fn


def test_queue_holds_the_global_batch_keys_at_the_pointer(v2_runs, n_devices):
    config, runs = v2_runs
    batch_size = config.batch_size
    reference_keys = _reference_keys_fn(config)
    for n, (states, batches) in runs.items():
        assert states[0].extra["queue"].shape == (2, QUEUE_SIZE, 16)
        for i in range(STEPS):
            before, after = states[i], states[i + 1]
            slot = (i * batch_size) % QUEUE_SIZE
            assert int(before.extra["queue_ptr"]) == slot
            assert int(after.extra["queue_ptr"]) == (slot + batch_size) % QUEUE_SIZE
            for view in (1, 2):  # queue v - 1 holds the keys of view v
                keys = reference_keys(before, batches[i], view)
                got = after.extra["queue"][view - 1]
                np.testing.assert_allclose(
                    got[slot : slot + batch_size], keys, rtol=1e-5, atol=2e-6, err_msg=f"{n} dev"
                )
                # The rest of the queue is untouched.
                rest = np.ones(QUEUE_SIZE, bool)
                rest[slot : slot + batch_size] = False
                np.testing.assert_array_equal(got[rest], before.extra["queue"][view - 1][rest])
    # The wrap-around overwrote the first step's keys and kept the second's.
    final = runs[1][0][-1].extra["queue"]
    assert not np.allclose(final[:, :batch_size], runs[1][0][1].extra["queue"][:, :batch_size])
    for a, b in zip(runs[1][0], runs[8][0], strict=True):
        np.testing.assert_allclose(a.extra["queue"], b.extra["queue"], rtol=1e-5, atol=2e-6)
        assert int(a.extra["queue_ptr"]) == int(b.extra["queue_ptr"])


def test_momentum_encoder_is_the_ema_and_takes_no_gradient(v2_runs):
    config, runs = v2_runs
    states, _ = runs[8]
    # The optimizer only ever sees the query network: the momentum network is not among its params.
    assert "target_params" not in states[0].params
    assert jax.tree.structure(states[0].params) == jax.tree.structure(
        states[0].extra["target_params"]
    )
    jax.tree.map(np.testing.assert_array_equal, states[0].params, states[0].extra["target_params"])
    for i in range(STEPS):
        before, after = states[i], states[i + 1]
        # Cosine from 0.99 to 0.999 over the 100-step run, the update after step i + 1.
        m = 0.999 - (0.999 - 0.99) * (np.cos(np.pi * (i + 1) / 100) + 1) / 2
        expected = jax.tree.map(
            lambda t, o, m=m: m * t.astype(np.float64) + (1 - m) * o.astype(np.float64),
            before.extra["target_params"],
            after.params,
        )
        jax.tree.map(
            lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7),
            after.extra["target_params"],
            expected,
        )
        moved = jax.tree.map(lambda a, b: np.abs(a - b).max(), before.params, after.params)
        assert max(jax.tree.leaves(moved)) > 0  # the query network did train
    method = get_method(config, num_steps=100, steps_per_epoch=10)
    np.testing.assert_allclose(
        method.momentum(1), 0.999 - 0.009 * (np.cos(np.pi / 100) + 1) / 2, rtol=1e-6
    )


def test_queue_size_must_be_a_multiple_of_the_global_batch():
    with pytest.raises(ValueError, match="multiple of the global batch size"):
        get_method(engine_checks.load(V2_SMOKE, "moco.queue_size=40"))
    with pytest.raises(ValueError, match="key_bn"):
        get_method(engine_checks.load(V2_SMOKE, "moco.key_bn=ghost"))


# ---------------------------------------------------------------- MoCo v3


def test_moco_v3_step_is_the_same_on_one_and_eight_devices(n_devices):
    engine_checks.assert_same_on_one_and_eight(
        engine_checks.load(V3_SMOKE, "model.dtype=float32", EMBEDDED)
    )


def test_moco_v3_momentum_is_cosine_to_one():
    method = get_method(engine_checks.load(V3_SMOKE), num_steps=50, steps_per_epoch=5)
    np.testing.assert_allclose(method.momentum(0), 0.99, rtol=1e-7)
    np.testing.assert_allclose(method.momentum(25), 0.995, rtol=1e-6)
    np.testing.assert_allclose(method.momentum(50), 1.0, rtol=1e-7)
    np.testing.assert_allclose(method.momentum(20), ema.cosine_increase(20, 50, 0.99), rtol=1e-7)
    with pytest.raises(ValueError, match="num_steps"):
        get_method(engine_checks.load(V3_SMOKE)).momentum(3)


# ---------------------------------------------------------------- end to end and configs


@pytest.mark.parametrize("name", ["moco_v2", "moco_v3"])
def test_cli_smoke(name, tmp_path, capsys, n_devices):
    workdir = str(tmp_path / name)
    assert engine_checks.run_smoke(f"{name}_fashion_mnist.py:smoke", workdir) == 0
    results = json.load(open(os.path.join(workdir, "eval.json")))
    assert 0.0 <= results["knn"]["top1"] <= 1.0
    records = [r for r in reporting.read_metrics(workdir) if "loss" in r]
    assert [r["step"] for r in records] == [1, 2, 3]
    assert all(np.isfinite(r["loss"]) and r["embedding_std"] > 0 for r in records)
    if name == "moco_v2":
        # Cross-entropy over 1 positive + 64 queued negatives: near log(65) ~ 4.2 with random keys.
        assert all(0.0 < r["loss"] < 2 * np.log(65) for r in records)
        assert all(r["momentum"] == pytest.approx(0.99) for r in records)
        capsys.readouterr()
        assert cli.main(["evaluate", "--workdir", workdir, "--protocol", "knn"]) == 0
        assert "knn top-1 accuracy" in capsys.readouterr().out
    else:
        assert all(0.99 <= r["momentum"] <= 1.0 for r in records)


CONFIGS = [
    # (spec, queue shape or None)
    ("moco_v2_fashion_mnist.py", (1, 4096, 128)),
    ("moco_v2_cifar10.py", (2, 32768, 256)),
    ("moco_v2_imagenet.py", (1, 65536, 128)),
    ("moco_v3_fashion_mnist.py", None),
    ("moco_v3_imagenet.py:resnet50", None),
    ("moco_v3_imagenet.py", None),
    ("moco_v3_fashion_mnist.py:vit", None),
]


@pytest.mark.parametrize("spec, queue_shape", CONFIGS, ids=[c[0] for c in CONFIGS])
def test_config_initializes(spec, queue_shape):
    config = engine_checks.load(spec)
    if config.model.encoder not in models.ENCODERS:
        pytest.skip(f"encoder {config.model.encoder!r} is not registered yet")
    method = get_method(config, num_steps=1000, steps_per_epoch=10)
    size = config.data.image_size
    image_shape = (size, size, config.data.channels)
    shapes = jax.eval_shape(lambda rng: method.init(rng, image_shape), jax.random.PRNGKey(0))
    if queue_shape is not None:
        assert shapes.extra["queue"].shape == queue_shape
    else:
        assert "predictor" in shapes.params and "queue" not in shapes.extra
    # The momentum network mirrors the query network's encoder and projector, leaf for leaf.
    mirrored = {k: shapes.params[k] for k in ("encoder", "projector")}
    assert jax.tree.map(lambda a: a.shape, shapes.extra["target_params"]) == jax.tree.map(
        lambda a: a.shape, mirrored
    )
    tx, _ = optim.make_optimizer(train.optimizer_config(config, 10, 1000), 1000)
    jax.eval_shape(tx.init, shapes.params)
