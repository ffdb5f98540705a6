"""The Vision Transformer: shapes at two input sizes (position-embedding interpolation), parameter counts of
ViT-S/16 and ViT-B/16 against the published figures, attention against a plain NumPy softmax(QK^T/sqrt(d))V,
and the hooks MAE needs (kept patches, all tokens)."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from ssl_jax import models
from ssl_jax.models.vit import SelfAttention, ViT, interpolate_grid, sincos_2d


def _count(tree) -> int:
    return sum(int(np.prod(x.shape)) for x in jax.tree.leaves(tree))


def _vit_count(dim: int, depth: int, patch: int, image: int = 224, channels: int = 3) -> int:
    """Parameters of timm's ViT without a head, from its layer shapes."""
    tokens = (image // patch) ** 2 + 1
    embed = patch * patch * channels * dim + dim + dim + tokens * dim  # conv, cls token, positions
    block = 2 * 2 * dim + (dim * 3 * dim + 3 * dim) + (dim * dim + dim)
    block += (dim * 4 * dim + 4 * dim) + (4 * dim * dim + dim)
    return embed + depth * block + 2 * dim


@pytest.mark.parametrize(
    "name, dim, published", [("vit_small", 384, 21.7e6), ("vit_base", 768, 85.8e6)]
)
def test_parameter_counts_match_the_published_figures(name, dim, published):
    model = models.get_encoder(name, patch_size=16)
    x = jax.ShapeDtypeStruct((1, 224, 224, 3), jnp.float32)
    shapes = jax.eval_shape(lambda x: model.init(jax.random.key(0), x, train=False), x)
    n = _count(shapes["params"])
    assert n == _vit_count(dim, 12, 16)
    assert abs(n - published) < 0.05e6, n  # DINO / DeiT: ViT-S/16 21.7M, ViT-B/16 85.8M
    assert model.feature_dim == dim == models.encoder_feature_dim(name)
    assert jax.tree.leaves(shapes["params"])[0].dtype == jnp.float32


def test_shapes_at_two_input_sizes_interpolate_positions():
    model = models.get_encoder("vit_tiny", patch_size=4, dtype=jnp.bfloat16, bn_axis_name="data")
    exact = models.get_encoder("vit_tiny", patch_size=4)  # the same network in float32
    x = jax.random.uniform(jax.random.key(1), (3, 28, 28, 1))
    w = jax.random.normal(jax.random.key(2), (64,))

    @jax.jit
    def run(x):
        params = model.init(jax.random.key(0), x[:2], train=False)["params"]
        local = lambda p: model.apply({"params": p}, x[:, :12, :12], train=True)  # noqa: E731
        # The gradient of a random projection (the plain sum of the output is 0: the final LayerNorm
        # centres it) reaches the stored 7x7 grid through the resize.
        grad = jax.grad(lambda p: jnp.sum(local(p) @ w))(params)
        full = model.apply({"params": params}, x, train=True)
        return params, full, local(params), exact.apply({"params": params}, x, train=True), grad

    params, full, local, full_f32, grad = run(x)
    assert params["pos_embedding"].shape == (1, 7, 7, 64)
    assert all(p.dtype == jnp.float32 for p in jax.tree.leaves(params))
    assert full.shape == local.shape == (3, 64)  # a 3x3 grid for the 12-px input: positions resized
    assert full.dtype == local.dtype == jnp.float32
    assert np.all(np.isfinite(np.asarray(local)))
    # bfloat16 matmuls with a float32 residual stream stay close to the float32 model.
    np.testing.assert_allclose(full, full_f32, atol=0.1)
    assert np.abs(np.asarray(full) - np.asarray(full_f32)).mean() < 0.02
    assert grad["pos_embedding"].shape == (1, 7, 7, 64)
    assert np.abs(np.asarray(grad["pos_embedding"])).sum() > 0


def test_interpolation_is_identity_on_the_same_grid_and_keeps_constants():
    grid = jax.random.normal(jax.random.key(0), (1, 7, 7, 5))
    assert interpolate_grid(grid, 7, 7) is grid
    constant = jnp.full((1, 7, 7, 5), 0.3)
    np.testing.assert_allclose(interpolate_grid(constant, 3, 4), 0.3, rtol=1e-6)
    assert interpolate_grid(grid, 3, 4).shape == (1, 3, 4, 5)


def test_attention_equals_plain_softmax_reference():
    heads, dim, tokens = 4, 32, 9
    layer = SelfAttention(num_heads=heads)
    x = jax.random.normal(jax.random.key(0), (2, tokens, dim))
    params = layer.init(jax.random.key(1), x)["params"]
    params = jax.tree.map(lambda p: p + 0.1 * jax.random.normal(jax.random.key(2), p.shape), params)
    out = np.asarray(jax.jit(layer.apply)({"params": params}, x))

    p = jax.tree.map(lambda a: np.asarray(a, np.float64), params)
    xn = np.asarray(x, np.float64)
    qkv = xn @ p["qkv"]["kernel"] + p["qkv"]["bias"]
    q, k, v = np.split(qkv, 3, axis=-1)
    head_dim = dim // heads
    q, k, v = (a.reshape(2, tokens, heads, head_dim).transpose(0, 2, 1, 3) for a in (q, k, v))
    logits = q @ k.transpose(0, 1, 3, 2) / np.sqrt(head_dim)
    weights = np.exp(logits - logits.max(-1, keepdims=True))
    weights /= weights.sum(-1, keepdims=True)
    attended = (weights @ v).transpose(0, 2, 1, 3).reshape(2, tokens, dim)
    expected = attended @ p["proj"]["kernel"] + p["proj"]["bias"]
    np.testing.assert_allclose(out, expected, rtol=1e-4, atol=1e-5)


def test_mae_hooks_keep_indices_and_tokens():
    model = ViT(hidden_dim=32, depth=1, num_heads=2, patch_size=7, position_embedding="sincos")
    x = jax.random.uniform(jax.random.key(0), (2, 28, 28, 1))
    everything = jnp.tile(jnp.arange(16)[None], (2, 1))

    @jax.jit
    def run(x):
        variables = model.init(jax.random.key(1), x, train=False)
        apply = functools.partial(model.apply, variables, x, train=False)
        tokens = apply(return_tokens=True)
        same = apply(keep_indices=everything, return_tokens=True)
        return variables, tokens, same, apply(keep_indices=everything[:, :4])

    variables, tokens, same, kept = run(x)
    assert "pos_embedding" not in variables["params"]  # fixed sin-cos positions
    assert tokens.shape == (2, 17, 32)
    np.testing.assert_allclose(same, tokens, rtol=1e-5, atol=1e-6)
    assert kept.shape == (2, 32)
    assert sincos_2d(4, 4, 32).shape == (1, 4, 4, 32)


def test_drop_path_only_in_training():
    x = jax.random.uniform(jax.random.key(0), (4, 28, 28, 1))
    plain = models.get_encoder("vit_tiny", patch_size=7)
    dropped = models.get_encoder("vit_tiny", patch_size=7, drop_path_rate=0.5)

    @jax.jit
    def run(x):
        variables = plain.init(jax.random.key(1), x, train=False)
        rngs = {"dropout": jax.random.key(2)}
        return (
            dropped.apply(variables, x, train=False),
            plain.apply(variables, x, train=False),
            dropped.apply(variables, x, train=True, rngs=rngs),
            plain.apply(variables, x, train=True),
        )

    dropped_eval, plain_eval, dropped_train, plain_train = run(x)
    np.testing.assert_allclose(dropped_eval, plain_eval, rtol=1e-6)
    assert not np.allclose(dropped_train, plain_train)
