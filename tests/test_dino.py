"""DINO: the loss against a NumPy transcription of the paper's Algorithm 1 (float32, bfloat16, gradients),
the centre over the global batch (1 vs 8 devices), multi-crop views, a teacher that never receives a
gradient and follows the EMA formula, a frozen-then-trained last layer, 1-vs-8-device equality of whole
steps, the CLI end to end, and the ImageNet / CIFAR-10 recipes initializing at full size."""

import json
import math
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.sharding import PartitionSpec as P
from jax.test_util import check_grads

from ssl_jax import augment, checkpoint, optim, parallel, reporting, train
from ssl_jax.losses import dino_loss, dino_statistics, update_center
from ssl_jax.methods import get_method

import engine_checks

SMOKE = "dino_fashion_mnist.py:smoke"
EMBEDDED = "data.name=embedded_fashion_mnist"


def _softmax(x):
    e = np.exp(x - x.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


def reference_dino_loss(student, teacher, center, student_temp, teacher_temp):
    """Caron et al. 2021, Algorithm 1 / DINOLoss.forward, per example, in float64 loops."""
    student, teacher = np.asarray(student, np.float64), np.asarray(teacher, np.float64)
    total, pairs = np.zeros(student.shape[1]), 0
    for g in range(teacher.shape[0]):
        q = _softmax((teacher[g] - np.asarray(center, np.float64)) / teacher_temp)
        for v in range(student.shape[0]):
            if v == g:
                continue  # the student does not predict the teacher's own view
            total += np.sum(-q * np.log(_softmax(student[v] / student_temp)), axis=-1)
            pairs += 1
    return total / pairs


def _logits(n_crops=5, n_global=2, batch=4, k=7, seed=0):
    rng = np.random.default_rng(seed)
    student = rng.normal(0, 1.0, (n_crops, batch, k)).astype(np.float32)
    teacher = rng.normal(0, 1.0, (n_global, batch, k)).astype(np.float32)
    center = rng.normal(0, 0.3, (k,)).astype(np.float32)
    return student, teacher, center


def test_dino_loss_matches_numpy_reference():
    student, teacher, center = _logits()
    loss_fn = jax.jit(dino_loss, static_argnames="student_temp")
    got = loss_fn(student, teacher, center, student_temp=0.1, teacher_temp=jnp.float32(0.04))
    expected = reference_dino_loss(student, teacher, center, 0.1, 0.04)
    assert got.shape == (4,) and got.dtype == jnp.float32
    np.testing.assert_allclose(got, expected, rtol=1e-5)
    # Lists of per-crop logits are the same input.
    as_lists = dino_loss(list(student), list(teacher), center, teacher_temp=0.04)
    np.testing.assert_allclose(as_lists, expected, rtol=1e-5)
    # Two global crops only (no multi-crop): the two cross terms.
    two = dino_loss(student[:2], teacher, center, teacher_temp=0.07)
    np.testing.assert_allclose(
        two, reference_dino_loss(student[:2], teacher, center, 0.1, 0.07), rtol=1e-5
    )
    # Large logits stay finite (log_softmax, max-subtracted softmax).
    big = dino_loss(200 * student, 200 * teacher, center, teacher_temp=0.04)
    assert np.all(np.isfinite(big))


def test_dino_loss_bf16_and_gradients():
    student, teacher, center = _logits(seed=1)
    expected = reference_dino_loss(student, teacher, center, 0.1, 0.04)
    low = dino_loss(
        jnp.asarray(student, jnp.bfloat16),
        jnp.asarray(teacher, jnp.bfloat16),
        center,
        teacher_temp=0.04,
    )
    assert low.dtype == jnp.float32
    # bf16 rounds logits by ~2^-8 relative; divided by 0.04 / 0.1 that moves the loss by a few percent.
    np.testing.assert_allclose(low, expected, rtol=5e-2)

    loss = lambda s, t: dino_loss(s, t, center, teacher_temp=0.04).sum()
    check_grads(
        lambda s: loss(s, teacher),
        (jnp.asarray(student),),
        order=1,
        modes=("rev",),
        eps=1e-3,
        atol=1e-2,
        rtol=1e-2,
    )
    # The teacher side is a target: stop-gradient, however the loss is differentiated.
    grad_teacher = jax.grad(loss, argnums=1)(student, teacher)
    np.testing.assert_array_equal(grad_teacher, 0.0)
    assert np.abs(jax.grad(loss)(student, teacher)).sum() > 0


def test_dino_loss_rejects_bad_inputs():
    student, teacher, center = _logits()
    with pytest.raises(TypeError, match="floating"):
        dino_loss(student.astype(np.int32), teacher, center, teacher_temp=0.04)
    with pytest.raises(TypeError, match="floating"):
        update_center(center, teacher.astype(np.int32), 0.9)
    with pytest.raises(ValueError, match="teacher_logits"):
        dino_loss(student, teacher[:, :3], center, teacher_temp=0.04)
    with pytest.raises(ValueError, match="global crops"):
        dino_loss(student[:1], teacher, center, teacher_temp=0.04)
    with pytest.raises(ValueError, match="center"):
        dino_loss(student, teacher, center[:3], teacher_temp=0.04)


def test_statistics_split_the_loss_into_entropy_and_kl():
    student, teacher, center = _logits(seed=2)
    stats = dino_statistics(student, teacher, center, teacher_temp=0.04)
    loss = dino_loss(student, teacher, center, teacher_temp=0.04)
    np.testing.assert_allclose(stats["teacher_entropy"] + stats["kl"], loss, rtol=1e-5)
    assert np.all(stats["kl"] >= 0) and np.all(stats["teacher_entropy"] >= 0)
    assert np.all(stats["teacher_entropy"] <= math.log(7) + 1e-6)
    q = _softmax((teacher.astype(np.float64) - center) / 0.04)
    np.testing.assert_allclose(
        stats["teacher_entropy"], (-q * np.log(q)).sum(-1).mean(0), rtol=1e-4, atol=1e-6
    )


def test_center_update_uses_the_global_batch(n_devices):
    rng = np.random.default_rng(3)
    teacher = rng.normal(0, 1, (2, 16, 6)).astype(np.float32)  # [n_global, global batch, K]
    center = rng.normal(0, 1, (6,)).astype(np.float32)
    expected = 0.9 * center + 0.1 * teacher.reshape(-1, 6).mean(0)
    np.testing.assert_allclose(update_center(center, teacher, 0.9), expected, rtol=1e-6)

    mesh = parallel.make_mesh()
    spec = dict(mesh=mesh, in_specs=(P(), P(None, "data")))
    sharded = jax.jit(
        jax.shard_map(lambda c, t: update_center(c, t, 0.9, "data"), out_specs=P(), **spec)
    )(center, teacher)
    np.testing.assert_allclose(sharded, expected, rtol=1e-6)
    # Without the cross-device mean each device would move the centre towards its own 2 rows.
    local = jax.jit(
        jax.shard_map(lambda c, t: update_center(c, t, 0.9)[None], out_specs=P("data"), **spec)
    )(center, teacher)
    assert not np.allclose(local, expected[None], rtol=1e-3)


def test_multicrop_views_shapes_distinct_and_per_example():
    images = np.random.default_rng(0).integers(0, 256, (4, 28, 28, 1), dtype=np.uint8)
    ids = np.arange(10, 14, dtype=np.int32)
    bare = dict(flip_prob=0.0, jitter_prob=0.0, mean=(0.5,), std=(0.5,))
    plain = augment.ViewSpec(crop_size=28, crop_scale=(0.4, 1.0), **bare)
    flipped = augment.ViewSpec(crop_size=28, crop_scale=(0.4, 1.0), **{**bare, "flip_prob": 1.0})
    local = augment.ViewSpec(crop_size=12, crop_scale=(0.05, 0.4), **bare)

    @jax.jit
    def views(rng, images, ids):
        return augment.multicrop_views(
            rng,
            images,
            ids,
            global_spec=(plain, flipped),
            local_spec=local,
            num_global=3,
            num_local=3,
        )

    g, loc = views(jax.random.key(0), images, ids)
    assert [v.shape for v in g] == [(4, 28, 28, 1)] * 3
    assert [v.shape for v in loc] == [(4, 12, 12, 1)] * 3
    assert all(v.dtype == jnp.float32 for v in g + loc)
    crops = [np.asarray(v) for v in g] + [np.asarray(v) for v in loc]
    for i in range(len(crops)):
        for j in range(i + 1, len(crops)):
            if crops[i].shape == crops[j].shape:
                assert not np.allclose(crops[i], crops[j]), (i, j)
    # Global crops 0 and 2 use `plain`: same key as a single-spec call for those crop indices.
    alone = augment.augment_batch(jax.random.fold_in(jax.random.key(0), 2), images, ids, plain)
    np.testing.assert_allclose(crops[2], alone, atol=1e-4)  # jit vs eager rounding
    # An example's crops depend on its id, not its row: reversing the batch reverses the views.
    g_rev, l_rev = views(jax.random.key(0), images[::-1], ids[::-1])
    np.testing.assert_allclose(np.asarray(l_rev[1])[::-1], crops[4], atol=1e-4)


def test_dino_view_specs_follow_the_paper():
    (g1, g2), loc = augment.dino_view_specs(
        224, 96, mean=augment.IMAGENET_MEAN, std=augment.IMAGENET_STD
    )
    assert (g1.crop_size, g1.crop_scale, loc.crop_size, loc.crop_scale) == (
        224,
        (0.4, 1.0),
        96,
        (0.05, 0.4),
    )
    assert (g1.blur_prob, g1.solarize_prob, g2.blur_prob, g2.solarize_prob) == (1.0, 0.0, 0.1, 0.2)
    assert (loc.blur_prob, loc.solarize_prob) == (0.5, 0.0)
    assert (g1.brightness, g1.contrast, g1.saturation, g1.hue, g1.jitter_prob) == (
        0.4,
        0.4,
        0.2,
        0.1,
        0.8,
    )
    assert g1.grayscale_prob == 0.2 and g1.kernel_size == loc.kernel_size == 13
    (small, _), tiny = augment.dino_view_specs(28, 6, mean=(0.5,), std=(0.5,))
    assert tiny.kernel_size == 11 and small.kernel_size == 13  # radius stays below the side


def _cheap_smoke(*overrides):
    """The smoke config with crops and solarization only, so that its tests compile faster."""
    config = engine_checks.load(SMOKE, "model.dtype=float32", EMBEDDED, *overrides)
    config.augment.jitter_prob = 0.0
    config.augment.grayscale_prob = 0.0
    return config


def test_teacher_gets_no_gradient_and_the_last_layer_freezes(n_devices):
    config = _cheap_smoke()
    # 10 steps per epoch: the last layer is frozen for steps 0-9.
    method = get_method(config, num_steps=100, steps_per_epoch=10)
    tx, _ = optim.make_optimizer(train.optimizer_config(config, 10, 100), 100)
    state = train.create_train_state(method, tx, jax.random.PRNGKey(0), (28, 28, 1))
    batch = engine_checks.batch_for(config, parallel.make_mesh(jax.devices()[:1]), 0)
    teacher = jax.tree.map(lambda p: 1.1 * p + 0.01, state.extra["teacher"])  # unlike the student
    extra = {**state.extra, "teacher": teacher}

    @jax.jit
    def grads(params, extra, step):
        def loss(params, extra):
            value, _ = method.loss_fn(
                params,
                state.batch_stats,
                extra,
                batch,
                rng=jax.random.key(1),
                step=step,
                axis_name=None,
            )
            return value

        return jax.grad(loss, argnums=(0, 1))(params, extra)

    for step, frozen in ((0, True), (10, False)):
        g_params, g_extra = grads(state.params, extra, jnp.int32(step))
        for leaf in jax.tree.leaves(g_extra):  # teacher and centre
            np.testing.assert_array_equal(leaf, 0.0)
        assert np.abs(np.asarray(g_params["encoder"]["patch_embed"]["kernel"])).sum() > 0
        assert np.abs(np.asarray(g_params["head"]["dense0"]["kernel"])).sum() > 0
        last = np.abs(np.asarray(g_params["head"]["last_layer"]["kernel"])).sum()
        assert (last == 0) if frozen else (last > 0), (step, last)


# The smoke step as engine_checks.step_results builds it (100 steps of 10 per epoch, 1 device), so the
# EMA test and the 1-vs-8 check share one compilation. The last layer is frozen for step 0 only.
STEP_CONFIG = (SMOKE, "model.dtype=float32", EMBEDDED, "dino.freeze_last_layer_epochs=0.1")


def test_step_updates_teacher_by_ema_and_centre(n_devices):
    config = engine_checks.load(*STEP_CONFIG)
    num_steps, base = 100, config.dino.teacher_momentum
    mesh = parallel.make_mesh(jax.devices()[:1])
    method = get_method(config, num_steps=num_steps, steps_per_epoch=10)
    tx, schedule = optim.make_optimizer(train.optimizer_config(config, 10, num_steps), num_steps)
    state = train.create_train_state(method, tx, jax.random.PRNGKey(0), (28, 28, 1))
    states = [jax.device_get(state)]
    state = parallel.replicate(state, mesh)
    step_fn = train.make_train_step(method, tx, schedule, mesh)
    for k in range(2):
        state, metrics = step_fn(state, engine_checks.batch_for(config, mesh, k))
        states.append(jax.device_get(state))
    s0, s1, s2 = states
    jax.tree.map(np.testing.assert_array_equal, s0.extra["teacher"], s0.params)  # a copy at first
    np.testing.assert_array_equal(s0.extra["center"], 0.0)
    # After each step the teacher is m_k * teacher + (1 - m_k) * new student, m_k on the cosine.
    for k, (before, after) in enumerate(((s0, s1), (s1, s2))):
        m = 1.0 - (1.0 - base) * (math.cos(math.pi * k / num_steps) + 1.0) / 2.0
        expected = jax.tree.map(
            lambda t, p, m=m: m * np.float64(t) + (1 - m) * np.float64(p),
            before.extra["teacher"],
            after.params,
        )
        close = lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)  # noqa: E731
        jax.tree.map(close, after.extra["teacher"], expected)
    assert not np.allclose(s1.extra["center"], 0.0)
    assert not np.allclose(s2.extra["center"], s1.extra["center"])
    m1 = 1 - (1 - base) * (math.cos(math.pi / num_steps) + 1) / 2
    np.testing.assert_allclose(metrics["teacher_momentum"], m1, rtol=1e-6)
    # Teacher temperature 0.04 -> 0.07 over 10 epochs = 100 steps: step 1 is 0.0403.
    np.testing.assert_allclose(metrics["teacher_temp"], 0.04 + 0.03 / 100, rtol=1e-5)
    # Unfrozen at step 1, the prototypes start to move.
    last = lambda s: np.asarray(s.params["head"]["last_layer"]["kernel"])  # noqa: E731
    direction = lambda v: v / np.linalg.norm(v, axis=0)  # noqa: E731
    assert not np.allclose(direction(last(s2)), direction(last(s1)), rtol=1e-6, atol=1e-7)


def test_step_is_identical_on_one_and_eight_devices(n_devices):
    # Unfrozen from the second step on, the last layer's gradient is compared too.
    engine_checks.assert_same_on_one_and_eight(engine_checks.load(*STEP_CONFIG))


def test_cli_smoke_and_encoder_export(tmp_path, capsys):
    workdir = str(tmp_path / "dino")
    assert engine_checks.run_smoke(SMOKE, workdir) == 0
    results = json.load(open(os.path.join(workdir, "eval.json")))
    assert 0.0 <= results["knn"]["top1"] <= 1.0
    records = [r for r in reporting.read_metrics(workdir) if "loss" in r]
    assert [r["step"] for r in records] == [1, 2, 3]
    for r in records:
        assert np.isfinite(r["loss"]) and r["embedding_std"] > 0
        assert 0 < r["teacher_entropy"] <= math.log(64) + 1e-4 and r["teacher_student_kl"] >= 0
    encoder, step = checkpoint.load_encoder(workdir)
    assert step == 3 and encoder["params"]["pos_embedding"].shape == (1, 4, 4, 32)
    capsys.readouterr()


@pytest.mark.parametrize(
    "spec, image_shape, k, crops",
    [
        ("dino_imagenet.py", (224, 224, 3), 65536, (2, 224, 8, 96)),
        ("dino_cifar10.py", (32, 32, 3), 4096, (2, 32, 0, 32)),
        ("dino_fashion_mnist.py", (28, 28, 1), 4096, (2, 28, 6, 12)),
        ("dino_fashion_mnist.py:resnet18", (28, 28, 1), 4096, (2, 28, 6, 12)),
    ],
)
def test_recipes_initialize_at_full_size(spec, image_shape, k, crops):
    config = engine_checks.load(spec)
    method = get_method(config, num_steps=1000, steps_per_epoch=10)
    shapes = jax.eval_shape(lambda key: method.init(key, image_shape), jax.random.key(0))
    assert shapes.extra["center"].shape == (k,)
    assert jax.tree.structure(shapes.extra["teacher"]) == jax.tree.structure(shapes.params)
    assert shapes.params["head"]["last_layer"]["kernel"].shape == (256, k)
    g, loc, n_global, n_local = method.crop_specs()
    assert (n_global, g[0].crop_size, n_local, loc.crop_size) == crops
    if config.model.encoder == "vit_small":
        n = sum(int(np.prod(x.shape)) for x in jax.tree.leaves(shapes.params["encoder"]))
        assert abs(n - 21.7e6) < 0.05e6  # ViT-S/16 at 224 px
        assert ("scale" in shapes.params["head"]["last_layer"]) == (
            not config.model.head.norm_last_layer
        )
    # The whole loss traces at full size (no compilation): every crop and the teacher fit together.
    batch = {
        "image": jax.ShapeDtypeStruct((2, *image_shape), jnp.uint8),
        "example_ids": jax.ShapeDtypeStruct((2,), jnp.int32),
    }
    loss, aux = jax.eval_shape(
        lambda v, b: method.loss_fn(
            v.params,
            v.batch_stats,
            v.extra,
            b,
            rng=jax.random.key(0),
            step=jnp.int32(0),
            axis_name=None,
        ),
        shapes,
        batch,
    )
    assert loss.shape == () and aux.extra_out["batch_center"].shape == (k,)


def test_imagenet_variants():
    vanilla = engine_checks.load("dino_imagenet.py:ep100")
    assert (vanilla.num_epochs, vanilla.batch_size, vanilla.dino.teacher_temp) == (100.0, 512, 0.04)
    assert vanilla.model.head.norm_last_layer
    smoke = engine_checks.load("dino_imagenet.py:smoke")
    g, loc, n_global, n_local = get_method(smoke).crop_specs()
    assert (n_global, g[0].crop_size, n_local, loc.crop_size) == (2, 48, 2, 16)
    with pytest.raises(ValueError, match="variant"):
        engine_checks.load("dino_imagenet.py:nope")
