"""Encoders and heads: shapes, dtypes, parameter counts against torchvision, stems, zero-init residuals,
BatchNorm synchronised across an 8-device mesh, BatchNorm recomputed in the backward pass, and the registry.

Compiling a ResNet's random initialiser costs several seconds on CPU, so full-size ResNets are only traced
(jax.eval_shape) or run on NumPy-filled parameters; real initialisers run on blocks and a two-stage ResNet.
"""

import functools
import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.sharding import PartitionSpec as P

from ssl_jax import parallel
from ssl_jax.models import (
    ENCODERS,
    BasicBlock,
    BottleneckBlock,
    LinearHead,
    MLPHead,
    ResNet,
    SmallConvNet,
    encoder_feature_dim,
    get_encoder,
)

from engine_checks import traced_equations


def _count(tree) -> int:
    return sum(int(np.prod(x.shape)) for x in jax.tree.leaves(tree))


def _init_shapes(model, x_shape, dtype=jnp.float32):
    x = jax.ShapeDtypeStruct(x_shape, dtype)
    return jax.eval_shape(lambda x: model.init(jax.random.key(0), x, train=False), x)


def _apply_shapes(model, variables, x_shape, dtype=jnp.float32, train=True):
    """Output and captured intermediates, traced only."""

    def run(v, x):
        return model.apply(
            v, x, train=train, capture_intermediates=True, mutable=["batch_stats", "intermediates"]
        )

    return jax.eval_shape(run, variables, jax.ShapeDtypeStruct(x_shape, dtype))


def _numpy_variables(shapes, seed=0):
    """Concrete variables for `shapes` without compiling an initialiser: N(0, 0.05) weights, BN scale 1,
    running variance 1, zeros elsewhere."""
    rng = np.random.default_rng(seed)

    def fill(path, s):
        name = path[-1].key
        if name in ("scale", "var"):
            return np.ones(s.shape, s.dtype)
        if name == "kernel":
            return (0.05 * rng.standard_normal(s.shape)).astype(s.dtype)
        return np.zeros(s.shape, s.dtype)

    return jax.tree_util.tree_map_with_path(fill, shapes)


def _normal(*shape, seed=0, dtype=np.float32):
    # NumPy inputs: each new shape of jax.random.normal would cost a threefry compile on CPU.
    return np.random.default_rng(seed).standard_normal(shape).astype(dtype)


def _init(model, x):
    # XLA:CPU takes ~0.3 s or more to compile each threefry draw; the "rbg" generator compiles in a
    # fraction of that, and these tests only need some random initial values.
    key = jax.random.key(0, impl="rbg")
    return jax.jit(functools.partial(model.init, train=False))(key, x)


# torchvision's resnet{18,34,50}().parameters() minus the 1000-way fc (weight + bias).
@pytest.mark.parametrize(
    "name, expected",
    [
        ("resnet18", 11_689_512 - (512 * 1000 + 1000)),
        ("resnet34", 21_797_672 - (512 * 1000 + 1000)),
        ("resnet50", 25_557_032 - (2048 * 1000 + 1000)),
    ],
)
def test_resnet_param_counts_match_torchvision(name, expected):
    variables = _init_shapes(get_encoder(name), (1, 64, 64, 3))
    assert _count(variables["params"]) == expected
    # Running statistics live in their own collection, not among the trained parameters.
    assert set(variables) == {"params", "batch_stats"}


def test_cifar_stem_only_changes_the_first_conv():
    params = _init_shapes(get_encoder("resnet18", stem="cifar"), (1, 32, 32, 3))["params"]
    assert params["conv1"]["kernel"].shape == (3, 3, 3, 64)
    assert _count(params) == 11_176_512 - 7 * 7 * 3 * 64 + 3 * 3 * 3 * 64


@pytest.mark.parametrize("stem, size", [("cifar", 32), ("imagenet", 64)])
def test_resnet18_forward_shapes_and_dtype(stem, size):
    model = get_encoder("resnet18", stem=stem)
    x = _normal(2, size, size, 3, seed=1)
    variables = _numpy_variables(_init_shapes(model, x.shape))
    feats, updates = jax.jit(functools.partial(model.apply, train=True, mutable=["batch_stats"]))(
        variables, x
    )
    assert feats.shape == (2, 512) and feats.dtype == jnp.float32
    assert np.all(np.isfinite(feats)) and np.all(np.asarray(feats) >= 0)  # pooled ReLU outputs
    # Training mode moved the running statistics away from their (0, 1) initial values.
    assert not np.allclose(updates["batch_stats"]["bn1"]["mean"], 0.0)


@pytest.mark.parametrize("name, dim", [("resnet34", 512), ("resnet50", 2048)])
@pytest.mark.parametrize("stem", ["cifar", "imagenet"])
def test_deeper_resnet_shapes(name, dim, stem):
    model = get_encoder(name, stem=stem)
    variables = _init_shapes(model, (2, 32, 32, 3))
    feats, _ = _apply_shapes(model, variables, (2, 32, 32, 3))
    assert feats.shape == (2, dim) and feats.dtype == jnp.float32
    assert encoder_feature_dim(name) == dim


def test_width_multiplier_scales_features():
    assert encoder_feature_dim("resnet50", width_multiplier=2) == 4096
    model = get_encoder("resnet18", width_multiplier=2, stem="cifar")
    feats, _ = _apply_shapes(model, _init_shapes(model, (1, 32, 32, 3)), (1, 32, 32, 3))
    assert feats.shape == (1, 1024)


@pytest.mark.parametrize("stem, reduction", [("imagenet", 4), ("cifar", 1)])
def test_stem_downsampling(stem, reduction):
    model = get_encoder("resnet18", stem=stem)
    variables = _init_shapes(model, (1, 64, 64, 3))
    _, state = _apply_shapes(model, variables, (1, 64, 64, 3))
    stage1_out = state["intermediates"]["layer1_0"]["__call__"][0]
    assert stage1_out.shape == (1, 64 // reduction, 64 // reduction, 64)
    stage4_out = state["intermediates"]["layer4_1"]["__call__"][0]
    assert stage4_out.shape[1] == 64 // reduction // 8


def test_unknown_stem_raises():
    with pytest.raises(ValueError, match="stem"):
        _init_shapes(get_encoder("resnet18", stem="tiny"), (1, 32, 32, 3))


@pytest.mark.parametrize("name", ["resnet18", "resnet50", "small_cnn"])
def test_bf16_activations_fp32_params(name):
    model = get_encoder(name, dtype=jnp.bfloat16)
    shape = (2, 32, 32, 3)
    variables = _init_shapes(model, shape)
    assert {x.dtype for x in jax.tree.leaves(variables)} == {jnp.dtype(jnp.float32)}
    feats, state = _apply_shapes(model, variables, shape)
    assert feats.dtype == jnp.float32
    inner = jax.tree.leaves(state["intermediates"])
    assert inner and all(x.dtype == jnp.bfloat16 for x in inner if x.ndim == 4)
    assert {x.dtype for x in jax.tree.leaves(state["batch_stats"])} == {jnp.dtype(jnp.float32)}

    # Every convolution runs in bf16 on both operands, and the forward graph has no transposes (NHWC
    # activations with HWIO kernels map straight onto the convolution's dimension numbers).
    def forward(v, x):
        return model.apply(v, x, train=True, mutable=["batch_stats"])[0]

    hlo = jax.jit(forward).lower(variables, jax.ShapeDtypeStruct(shape, jnp.float32)).as_text()
    convs = [line for line in hlo.splitlines() if "stablehlo.convolution" in line]
    assert convs
    for line in convs:
        operands = re.search(r":\s*\((tensor<[^>]*>), (tensor<[^>]*>)\)", line)
        assert operands and all(t.endswith("bf16>") for t in operands.groups()), line
    assert "stablehlo.transpose" not in hlo


@pytest.mark.parametrize(
    "block, channels", [(BasicBlock(filters=8), 8), (BottleneckBlock(filters=4), 16)]
)
def test_zero_init_residual_makes_block_identity(block, channels):
    # Block inputs follow a ReLU, hence non-negative; relu(x + 0) == x exactly for those.
    x = np.maximum(_normal(4, 6, 6, channels), 0.0)
    model = block.clone(zero_init_residual=True)
    variables = _init(model, x)

    @jax.jit
    def both_modes(variables):
        train_out, _ = model.apply(variables, x, train=True, mutable=["batch_stats"])
        return train_out, model.apply(variables, x, train=False)

    for out in both_modes(variables):
        np.testing.assert_array_equal(out, x)
    # With the last BN scale back at one the block is not the identity: the check above can fail.
    last_bn = "bn3" if isinstance(block, BottleneckBlock) else "bn2"
    params = jax.tree.map(np.asarray, variables["params"])
    params[last_bn]["scale"] = np.ones_like(params[last_bn]["scale"])
    for out in both_modes({**variables, "params": params}):
        assert not np.allclose(out, x)


def test_zero_init_residual_reaches_every_block_and_only_the_last_bn():
    # A two-stage ResNet exercises the same plumbing as ResNet-18 at a fraction of the compile time.
    model = ResNet(stage_sizes=(2, 1), block_cls=BasicBlock, stem="cifar", zero_init_residual=True)
    p = _init(model, jnp.zeros((1, 8, 8, 3)))["params"]
    for block in ("layer1_0", "layer1_1", "layer2_0"):
        np.testing.assert_array_equal(p[block]["bn2"]["scale"], 0.0)
        np.testing.assert_array_equal(p[block]["bn1"]["scale"], 1.0)
    np.testing.assert_array_equal(p["layer2_0"]["downsample_bn"]["scale"], 1.0)
    np.testing.assert_array_equal(p["bn1"]["scale"], 1.0)


def _two_stage_resnet(**kwargs):
    return ResNet(stage_sizes=(1, 1), block_cls=BasicBlock, stem="cifar", **kwargs)


def test_remat_norm_keeps_values_gradients_and_parameters():
    x = jax.random.uniform(jax.random.key(1), (4, 16, 16, 3))
    results = []
    for remat in (False, True):
        model = _two_stage_resnet(remat_norm=remat)
        variables = model.init(jax.random.key(0), x, train=True)

        def loss(params, model=model, variables=variables):
            out, updates = model.apply(
                {"params": params, "batch_stats": variables["batch_stats"]},
                x,
                train=True,
                mutable=["batch_stats"],
            )
            return jnp.sum(out**2), updates

        (value, updates), grads = jax.jit(jax.value_and_grad(loss, has_aux=True))(
            variables["params"]
        )
        results.append((variables, value, updates, grads))
    (v0, l0, u0, g0), (v1, l1, u1, g1) = results
    # Same parameter tree (checkpoints interchange), same loss, BN statistics and gradients.
    assert jax.tree.structure(v0) == jax.tree.structure(v1)
    np.testing.assert_allclose(l0, l1, rtol=1e-6)
    for a, b in zip(jax.tree.leaves((u0, g0)), jax.tree.leaves((u1, g1)), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-7)


def _activation_residual_bytes(model, size: int, batch: int = 2) -> dict[str, int]:
    """Bytes per dtype of the activation-sized arrays a bf16 training forward keeps for its backward
    (the leaves of the vjp closure with the batch as their leading dimension), traced only."""
    x = jax.ShapeDtypeStruct((batch, size, size, 3), jnp.bfloat16)
    variables = jax.eval_shape(lambda x: model.init(jax.random.key(0), x, train=True), x)

    def residuals(variables, x):
        def loss(params):
            out, _ = model.apply(
                {**variables, "params": params}, x, train=True, mutable=["batch_stats"]
            )
            return out.sum()

        return jax.tree.leaves(jax.vjp(loss, variables["params"])[1])

    found: dict[str, int] = {}
    for leaf in jax.eval_shape(residuals, variables, x):
        if leaf.ndim == 4 and leaf.shape[0] == batch:
            found[str(leaf.dtype)] = found.get(str(leaf.dtype), 0) + leaf.size * leaf.dtype.itemsize
    return found


def test_remat_norm_keeps_no_float32_activations_for_the_backward_pass():
    plain = _activation_residual_bytes(_two_stage_resnet(dtype=jnp.bfloat16), 32)
    remat = _activation_residual_bytes(_two_stage_resnet(dtype=jnp.bfloat16, remat_norm=True), 32)
    assert plain["float32"] > 0 and "float32" not in remat  # x - mean and x^2 of every BN, in f32
    assert sum(remat.values()) < 0.6 * sum(plain.values())


def test_remat_norm_with_synchronized_statistics_on_8_devices():
    """Same gradients as without remat over a sharded batch, and the backward pass reuses the
    forward's cross-device sums instead of running every BN's all-reduce again."""
    mesh = parallel.make_mesh()
    x = _normal(16, 16, 16, 3) + np.arange(16, dtype=np.float32)[:, None, None, None]
    variables = _init(_two_stage_resnet(), x[:2])
    grads, sums = [], []
    for remat in (False, True):
        model = _two_stage_resnet(bn_axis_name=parallel.DATA_AXIS, remat_norm=remat)

        def step(v, x, model=model):
            def loss(params):
                out, _ = model.apply(
                    {**v, "params": params}, x, train=True, mutable=["batch_stats"]
                )
                return jax.lax.pmean(jnp.sum(out**2), parallel.DATA_AXIS)

            return jax.grad(loss)(v["params"])

        fn = parallel.per_device(step, mesh, in_specs=(P(), P("data")), out_specs=P())
        grads.append(jax.jit(fn)(variables, x))
        equations = traced_equations(jax.make_jaxpr(fn)(variables, x).jaxpr)
        sums.append(sum(eqn.primitive.name.startswith("psum") for eqn in equations))
    for a, b in zip(jax.tree.leaves(grads[0]), jax.tree.leaves(grads[1]), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    assert sums[0] == sums[1] > 0


def test_conv_init_is_he_fan_out():
    block = BasicBlock(filters=256)
    kernel = np.asarray(_init(block, jnp.zeros((1, 4, 4, 128)))["params"]["conv2"]["kernel"])
    fan_out = 3 * 3 * kernel.shape[-1]
    np.testing.assert_allclose(kernel.std(), np.sqrt(2.0 / fan_out), rtol=0.02)


@pytest.mark.parametrize("size", [28, 32])
def test_small_cnn_forward(size):
    model = get_encoder("small_cnn")
    x = _normal(4, size, size, 1)
    variables = _init(model, x)
    apply = jax.jit(functools.partial(model.apply, train=True, mutable=["batch_stats"]))
    feats, _ = apply(variables, x)
    assert feats.shape == (4, encoder_feature_dim("small_cnn")) and feats.dtype == jnp.float32
    assert np.all(np.isfinite(feats))


def test_small_cnn_custom_widths():
    model = SmallConvNet(widths=(8, 16), strides=(2, 2))
    feats, _ = _apply_shapes(model, _init_shapes(model, (4, 28, 28, 1)), (4, 28, 28, 1))
    assert feats.shape == (4, 16) and model.feature_dim == 16


def test_small_cnn_rejects_mismatched_strides():
    with pytest.raises(ValueError, match="stride"):
        _init_shapes(SmallConvNet(widths=(8, 16), strides=(2,)), (1, 28, 28, 1))


def test_sync_batchnorm_under_shard_map_matches_global_batch(n_devices):
    mesh = parallel.make_mesh()
    x = _normal(2 * n_devices, 16, 16, 3) * 2.0 + 0.5
    # Rows differ in distribution per device, so per-device statistics would visibly differ.
    x = x + np.arange(2 * n_devices, dtype=np.float32)[:, None, None, None]
    local = SmallConvNet(widths=(8, 16), strides=(2, 2))
    synced = local.clone(bn_axis_name=parallel.DATA_AXIS)
    variables = _init(local, x[:2])

    def step(model, v, x):
        feats, updates = model.apply(v, x, train=True, mutable=["batch_stats"])
        return feats, updates["batch_stats"]

    want_feats, want_stats = jax.jit(functools.partial(step, local))(variables, x)
    sharded = jax.jit(
        parallel.per_device(
            functools.partial(step, synced),
            mesh,
            in_specs=(P(), P("data")),
            out_specs=(P("data"), P()),
        )
    )
    got_feats, got_stats = sharded(variables, x)
    np.testing.assert_allclose(got_feats, want_feats, rtol=1e-5, atol=1e-5)
    jax.tree.map(
        lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6), got_stats, want_stats
    )
    # Per-device BatchNorm on the same shards gives different features: the check above can fail.
    unsynced = jax.jit(
        parallel.per_device(
            functools.partial(step, local),
            mesh,
            in_specs=(P(), P("data")),
            out_specs=(P("data"), P("data")),
        )
    )
    assert not np.allclose(unsynced(variables, x)[0], want_feats, atol=1e-3)


def test_registry():
    assert set(ENCODERS) >= {"resnet18", "resnet34", "resnet50", "small_cnn"}
    with pytest.raises(ValueError, match="resnet18.*small_cnn|small_cnn.*resnet18"):
        get_encoder("resnet1000")
    model = get_encoder("resnet18", bn_axis_name="data", dtype=jnp.bfloat16)
    assert model.bn_axis_name == "data" and model.dtype == jnp.bfloat16
    assert encoder_feature_dim("resnet18") == 512
    assert encoder_feature_dim("small_cnn", widths=(8, 24), strides=(2, 2)) == 24


def test_mlp_head_shapes_and_structure():
    x = _normal(4, 32)
    head = MLPHead(hidden_dim=16, output_dim=8)
    variables = _init_shapes(head, x.shape)
    out, _ = _apply_shapes(head, variables, x.shape)
    assert out.shape == (4, 8) and out.dtype == jnp.float32
    p = variables["params"]
    assert set(p) == {"dense0", "bn0", "dense1"}
    assert "bias" not in p["dense0"] and p["dense1"]["bias"].shape == (8,)  # BN replaces the bias

    no_bn = MLPHead(hidden_dim=16, output_dim=8, use_bn=False)
    assert set(_init_shapes(no_bn, x.shape)) == {"params"}


def test_mlp_head_last_bn_bf16():
    x = _normal(4, 32)
    head = MLPHead(hidden_dim=16, output_dim=8, num_layers=3, last_bn=True, dtype=jnp.bfloat16)
    v = _init(head, x)
    assert set(v["params"]) == {"dense0", "bn0", "dense1", "bn1", "dense2"}  # bn2 has no params
    assert "bn2" in v["batch_stats"]
    out, _ = jax.jit(functools.partial(head.apply, train=True, mutable=["batch_stats"]))(v, x)
    assert out.shape == (4, 8) and out.dtype == jnp.float32
    # A last BN without affine parameters, in train mode, centres each output unit on the batch.
    np.testing.assert_allclose(np.asarray(out).mean(0), 0.0, atol=0.05)


def test_linear_head():
    x = _normal(4, 32, dtype=jnp.bfloat16)
    head = LinearHead(num_classes=10)
    key = jax.random.key(1, impl="rbg")
    logits = jax.jit(lambda x: head.apply(head.init(key, x), x))(x)
    assert logits.shape == (4, 10) and logits.dtype == jnp.float32
    np.testing.assert_array_equal(logits, 0.0)  # zero-initialised
