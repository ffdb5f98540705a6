"""MAE: the per-example patch masking (exact rate, uniform, keyed by example), patchify's layout, mae_loss
against a NumPy reference written from the paper, an encoder that never sees a removed patch, the
ImageNet recipe's numbers, and one CLI run followed by `ssl-jax evaluate`."""

import json
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from ssl_jax import cli, optim, reporting
from ssl_jax.losses import mae_loss
from ssl_jax.methods import get_method
from ssl_jax.methods.mae import num_kept, patchify, random_patch_mask

import engine_checks

SMOKE = "mae_fashion_mnist.py:smoke"
EMBEDDED = "data.name=embedded_fashion_mnist"

# ---------------------------------------------------------------- masking


def test_mask_rate_is_exact_per_example_and_masks_differ():
    n, ids = 49, np.arange(100, 164, dtype=np.int32)
    masks = jax.jit(lambda r, i: random_patch_mask(r, i, n, mask_ratio=0.75))(
        jax.random.key(0), ids
    )
    keep, restore, mask = map(np.asarray, masks)
    assert num_kept(n, 0.75) == 12 and num_kept(196, 0.75) == 49  # int(N (1 - r)), the paper's code
    assert keep.shape == (64, 12) and restore.shape == (64, n) and mask.shape == (64, n)
    np.testing.assert_array_equal(mask.sum(axis=1), np.full(64, n - 12))
    for k, r, m in zip(keep, restore, mask, strict=True):
        assert sorted(r) == list(range(n))  # a permutation
        assert set(k) == set(np.flatnonzero(m == 0))  # kept = not masked
        np.testing.assert_array_equal(r[k], np.arange(12))  # kept patches come first
    assert len({tuple(np.flatnonzero(m)) for m in mask}) == 64  # every example its own mask


def test_mask_depends_only_on_the_example_id_and_covers_patches_uniformly():
    rng = jax.random.key(1)
    ids = np.arange(4000, dtype=np.int32)
    fn = jax.jit(lambda i: random_patch_mask(rng, i, 16, mask_ratio=0.75).mask)
    mask = np.asarray(fn(ids))
    # The same example gets the same mask wherever it sits in the batch (any device count).
    np.testing.assert_array_equal(np.asarray(fn(ids[::-1]))[::-1], mask)
    # Each patch is removed with probability 12/16; 4000 draws put the frequency within ~0.035 (5 sigma).
    np.testing.assert_allclose(mask.mean(axis=0), 0.75, atol=0.035)
    with pytest.raises(ValueError, match="mask_ratio"):
        random_patch_mask(rng, ids[:2], 16, mask_ratio=1.0)


def test_patchify_layout():
    images = np.random.default_rng(0).normal(size=(2, 9, 8, 3)).astype(np.float32)
    got = np.asarray(
        patchify(jnp.asarray(images), 4)
    )  # the ninth row is cut, as the ViT's conv does
    assert got.shape == (2, 4, 48)
    for b in range(2):
        for i in range(2):
            for j in range(2):
                patch = images[b, 4 * i : 4 * i + 4, 4 * j : 4 * j + 4]  # (row, column, channel)
                np.testing.assert_array_equal(got[b, 2 * i + j], patch.reshape(-1))


# ---------------------------------------------------------------- loss


def mae_reference(pred, patches, mask, norm_pix_loss):
    """He et al. 2022, Sec. 3: per-pixel squared error averaged over a patch, then over the removed
    patches of the example; with norm_pix_loss each target patch is standardized by its own mean and
    unbiased variance (+1e-6), as in the paper's code. float64, explicit loops."""
    out = []
    for p_ex, t_ex, m_ex in zip(
        pred.astype(np.float64), patches.astype(np.float64), mask, strict=True
    ):
        total, count = 0.0, 0
        for p, t, m in zip(p_ex, t_ex, m_ex, strict=True):
            if not m:
                continue
            if norm_pix_loss:
                t = (t - t.mean()) / np.sqrt(t.var(ddof=1) + 1e-6)
            total += np.mean((p - t) ** 2)
            count += 1
        out.append(total / count if count else 0.0)
    return np.array(out)


def _loss_inputs(seed=0):
    rng = np.random.default_rng(seed)
    pred = rng.normal(size=(5, 6, 12)).astype(np.float32)
    patches = (3.0 + 2.0 * rng.normal(size=(5, 6, 12))).astype(np.float32)
    mask = (rng.uniform(size=(5, 6)) < 0.6).astype(np.float32)
    mask[0] = 0.0  # nothing removed: loss 0
    mask[1] = 1.0
    patches[2, 0] = 7.0  # a flat patch: zero variance stays finite
    mask[2, 0] = 1.0
    return pred, patches, mask


@pytest.mark.parametrize("norm_pix_loss", [True, False])
def test_mae_loss_matches_numpy_reference(norm_pix_loss):
    pred, patches, mask = _loss_inputs()
    got = jax.jit(lambda *a: mae_loss(*a, norm_pix_loss=norm_pix_loss))(pred, patches, mask)
    assert got.shape == (5,) and got.dtype == jnp.float32
    expected = mae_reference(pred, patches, mask, norm_pix_loss)
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6)
    assert float(got[0]) == 0.0
    bf16 = mae_loss(
        jnp.asarray(pred, jnp.bfloat16), patches, mask.astype(bool), norm_pix_loss=norm_pix_loss
    )
    assert bf16.dtype == jnp.float32
    np.testing.assert_allclose(bf16, expected, rtol=2e-2, atol=2e-2)


def test_mae_loss_gradient_only_on_masked_patches_and_bad_inputs():
    pred, patches, mask = _loss_inputs(1)
    grad = np.asarray(jax.grad(lambda p: mae_loss(p, patches, mask).sum())(pred))
    assert np.all(grad[mask == 0] == 0) and np.all(np.abs(grad[mask == 1]).sum(-1) > 0)
    with pytest.raises(TypeError, match="floating"):
        mae_loss(pred.astype(np.int32), patches, mask)
    with pytest.raises(ValueError, match="same shape"):
        mae_loss(pred, patches[:, :, :4], mask)
    with pytest.raises(ValueError, match="mask"):
        mae_loss(pred, patches, mask[:, :3])


# ---------------------------------------------------------------- the method


def test_encoder_sees_only_the_kept_patches():
    config = engine_checks.load(SMOKE, EMBEDDED)  # 28 px, patch 7: 16 patches, 4 kept
    method = get_method(config)
    net = method._network(1)
    variables = method.init(jax.random.key(0), (28, 28, 1))
    ids = np.arange(2, dtype=np.int32)
    masks = method.masks(jax.random.key(5), jnp.asarray(ids))
    keep = np.asarray(masks.keep)
    x = np.random.default_rng(0).normal(size=(2, 28, 28, 1)).astype(np.float32)

    def patch_slice(index):
        i, j = divmod(int(index), 4)
        return slice(7 * i, 7 * i + 7), slice(7 * j, 7 * j + 7)

    removed = int(np.flatnonzero(np.asarray(masks.mask[0]))[0])
    # A pattern, not a constant: a constant shift leaves a per-patch normalized target unchanged.
    pattern = np.random.default_rng(1).normal(size=(7, 7, 1)).astype(np.float32)
    x_removed, x_kept = x.copy(), x.copy()
    x_removed[(0, *patch_slice(removed))] += pattern
    x_kept[(0, *patch_slice(keep[0, 0]))] += pattern

    @jax.jit
    def run(x):
        tokens = net.encoder.apply(
            {"params": variables.params["encoder"]},
            x,
            train=False,
            keep_indices=masks.keep,
            return_tokens=True,
        )
        pred = net.apply({"params": variables.params}, x, masks.keep, masks.restore, train=False)
        return tokens, pred, mae_loss(pred, patchify(x, 7), masks.mask)

    base, changed_removed, changed_kept = run(x), run(x_removed), run(x_kept)
    assert base[0].shape == (2, 1 + 4, 32)  # class token + the 4 kept patches
    np.testing.assert_array_equal(changed_removed[0], base[0])  # the encoder never saw it
    np.testing.assert_array_equal(changed_removed[1], base[1])  # nor did the decoder
    assert float(changed_removed[2][0]) != float(base[2][0])  # but it is a reconstruction target
    assert not np.allclose(changed_kept[0][0], base[0][0])  # a kept patch is seen
    np.testing.assert_array_equal(changed_kept[0][1], base[0][1])  # by its own example only


def test_imagenet_recipe_and_a_non_vit_encoder_is_refused():
    config = engine_checks.load("mae_imagenet.py")
    method = get_method(config)
    assert (method.num_patches, method.num_keep, method.patch_size) == (196, 49, 16)
    assert config.mae.norm_pix_loss and config.optim.b2 == 0.95
    peak = optim.scaled_learning_rate(
        config.optim.learning_rate, config.batch_size, config.optim.lr_scaling
    )
    np.testing.assert_allclose(peak, 1.5e-4 * 4096 / 256)
    cnn = engine_checks.load(SMOKE, "model.encoder=small_cnn")
    cnn.model.encoder_kwargs = {}
    with pytest.raises(ValueError, match="ViT"):
        get_method(cnn)


# ---------------------------------------------------------------- end to end


@pytest.fixture(scope="module")
def smoke_run(tmp_path_factory):
    workdir = str(tmp_path_factory.mktemp("mae") / "run")
    assert engine_checks.run_smoke(SMOKE, workdir) == 0
    return workdir


def test_cli_pretrains_and_evaluates(smoke_run):
    records = [r for r in reporting.read_metrics(smoke_run) if "loss" in r]
    assert [r["step"] for r in records] == [1, 2, 3]
    for r in records:
        assert np.isfinite(r["loss"]) and r["masked_fraction"] == 0.75
    assert 0.0 <= json.load(open(os.path.join(smoke_run, "eval.json")))["knn"]["top1"] <= 1.0
    # The exported encoder is the ViT alone, restored and probed by `ssl-jax evaluate`.
    assert cli.main(["evaluate", "--workdir", smoke_run, "--protocol", "linear"]) == 0
    results = json.load(open(os.path.join(smoke_run, "eval.json")))
    assert 0.0 <= results["linear"]["top1"] <= 1.0 and results["step"] == 3
