"""Classic pretext tasks: the three losses against NumPy references written from the papers, the on-device
label makers (patch pairs, colour guards, masks), Lab against scikit-image, ab quantization and
rebalancing against NumPy, the scikit-image colour source, and one CLI pretrain + evaluate per method."""

import json
import math
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import skimage.color as skcolor  # the test extra installs scikit-image (Lab reference, sample photos)

from ssl_jax import cli, method_inputs, reporting
from ssl_jax.augment import pretext
from ssl_jax.losses import colorization_loss, inpainting_loss, relative_position_loss
from ssl_jax.methods import get_method
from ssl_jax.methods.colorization import annealed_mean_ab
from ssl_jax.models import get_encoder
from ssl_jax.models.pretext_heads import ConvDecoder, backbone_feature_map

import engine_checks

# ---------------------------------------------------------------- losses


def _log_softmax_reference(logits: np.ndarray) -> np.ndarray:
    logits = logits.astype(np.float64)
    shifted = logits - logits.max(axis=-1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=-1, keepdims=True))


def test_relative_position_loss_matches_numpy():
    rng = np.random.default_rng(0)
    logits = (3 * rng.normal(size=(6, 8))).astype(np.float32)
    labels = rng.integers(0, 8, 6).astype(np.int32)
    # Doersch et al. 2015: softmax over the 8 positions, -log p(true position), per pair.
    expected = [-_log_softmax_reference(logits[i])[labels[i]] for i in range(6)]
    got = jax.jit(relative_position_loss)(logits, labels)
    assert got.shape == (6,) and got.dtype == jnp.float32
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6)
    bf16 = relative_position_loss(jnp.asarray(logits, jnp.bfloat16), labels)
    np.testing.assert_allclose(bf16, expected, rtol=3e-2, atol=3e-2)
    with pytest.raises(TypeError, match="floating"):
        relative_position_loss(labels[:, None].repeat(8, 1), labels)
    with pytest.raises(ValueError, match="8 positions"):
        relative_position_loss(logits[:, :4], labels)
    with pytest.raises(TypeError, match="integer"):
        relative_position_loss(logits, labels.astype(np.float32))


def test_inpainting_loss_matches_numpy():
    rng = np.random.default_rng(1)
    pred = rng.normal(size=(3, 5, 4, 2)).astype(np.float32)
    target = rng.normal(size=(3, 5, 4, 2)).astype(np.float32)
    mask = rng.random((3, 5, 4)) < 0.4
    mask[2] = False  # nothing dropped out: nothing to reconstruct
    # Pathak et al. 2016, eq. 1: || M (x - F((1 - M) x)) ||^2, here averaged over the masked entries.
    expected = []
    for i in range(3):
        total, count = 0.0, 0
        for y in range(5):
            for x in range(4):
                if mask[i, y, x]:
                    total += sum(
                        (float(pred[i, y, x, c]) - float(target[i, y, x, c])) ** 2 for c in range(2)
                    )
                    count += 2
        expected.append(total / count if count else 0.0)
    got = jax.jit(inpainting_loss)(pred, target, mask)
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-7)
    assert got[2] == 0.0
    # Pixels outside the mask do not count: changing them leaves the loss as it was.
    changed = np.where(mask[..., None], pred, pred + 100.0)
    np.testing.assert_allclose(
        inpainting_loss(changed, target, mask[..., None]), expected, rtol=1e-5
    )
    with pytest.raises(ValueError, match="mask must have shape"):
        inpainting_loss(pred, target, mask[:, :3])


def test_colorization_loss_matches_numpy():
    rng = np.random.default_rng(2)
    b, h, w, q = 2, 3, 4, 7
    logits = (2 * rng.normal(size=(b, h, w, q))).astype(np.float32)
    soft = rng.random((b, h, w, q)) * (rng.random((b, h, w, q)) < 0.5)
    soft[..., 0] += 1e-3  # every pixel has some mass
    soft = (soft / soft.sum(-1, keepdims=True)).astype(np.float32)
    weights = rng.uniform(0.2, 3.0, q).astype(np.float32)
    hard = rng.integers(0, q, (b, h, w)).astype(np.int32)

    # Zhang et al. 2016, eq. 2: -sum_{h,w} v(Z_hw) sum_q Z_hwq log Zhat_hwq, v = w[argmax_q Z_hw];
    # averaged over the h x w pixels.
    def reference(targets_dist, weights):
        out = np.zeros(b)
        for i in range(b):
            for y in range(h):
                for x in range(w):
                    logp = _log_softmax_reference(logits[i, y, x])
                    dist = targets_dist[i, y, x].astype(np.float64)
                    out[i] += -weights[np.argmax(dist)] * float(np.dot(dist, logp))
        return out / (h * w)

    got = jax.jit(colorization_loss)(logits, soft, weights)
    np.testing.assert_allclose(got, reference(soft, weights), rtol=1e-5)
    one_hot = np.eye(q, dtype=np.float32)[hard]
    np.testing.assert_allclose(
        colorization_loss(logits, hard, weights), reference(one_hot, weights), rtol=1e-5
    )
    np.testing.assert_allclose(
        colorization_loss(logits, soft), reference(soft, np.ones(q)), rtol=1e-5
    )
    with pytest.raises(ValueError, match="class_weights"):
        colorization_loss(logits, soft, weights[:3])


# ---------------------------------------------------------------- Lab, bins, rebalancing


def _test_colours() -> np.ndarray:
    """Random colours, the 8 corners of the RGB cube, and dark ones on the linear branch of sRGB."""
    rng = np.random.default_rng(3)
    corners = np.array(np.meshgrid([0, 1], [0, 1], [0, 1])).reshape(3, -1).T
    dark = rng.uniform(0, 0.04, (16, 3))
    return np.concatenate([rng.random((200, 3)), corners, dark]).astype(np.float32)


def test_lab_matches_skimage_and_round_trips():
    rgb = _test_colours()
    reference = skcolor.rgb2lab(rgb).astype(np.float32)
    lab, back, from_reference = (
        np.asarray(a)
        for a in jax.jit(
            lambda x, r: (
                pretext.rgb_to_lab(x),
                pretext.lab_to_rgb(pretext.rgb_to_lab(x)),
                pretext.lab_to_rgb(r),
            )
        )(rgb, reference)
    )
    # scikit-image's matrix and white point differ from the IEC ones in the 5th digit.
    np.testing.assert_allclose(lab, reference, atol=2e-2)
    np.testing.assert_allclose(from_reference, rgb, atol=2e-4)
    np.testing.assert_allclose(back, rgb, atol=2e-4)
    assert lab[:, 0].min() >= 0 and lab[:, 0].max() <= 100.0 + 1e-3


def test_ab_grid_quantization_and_soft_encoding():
    grid = pretext.ab_grid(10.0)
    centers = grid.centers
    assert (
        250 <= grid.num_bins <= 313
    )  # in-gamut cells of the grid of 10 (the paper's hull has 313)
    np.testing.assert_array_equal(centers % 10, 0)
    lab = skcolor.rgb2lab(_test_colours())
    ab = lab[:, 1:].astype(np.float32)
    # Every real colour's grid cell is an in-gamut bin, so hard quantization is its nearest centre.
    nearest = np.argmin(((ab[:, None] - centers[None]) ** 2).sum(-1), axis=1)
    encode = jax.jit(
        lambda ab: (
            pretext.quantize_ab(ab, grid),
            pretext.soft_encode_ab(ab, grid, neighbours=5, sigma=5.0),
        )
    )
    got, soft = (np.asarray(a) for a in encode(ab))
    np.testing.assert_array_equal(np.abs(centers[got] - ab).max(axis=1) <= 5.0 + 1e-3, True)
    np.testing.assert_allclose(
        ((centers[got] - ab) ** 2).sum(-1), ((centers[nearest] - ab) ** 2).sum(-1), atol=1e-3
    )
    # Soft encoding: 5 nearest centres, Gaussian weights with sigma 5, normalized.
    for i in range(len(ab)):
        d2 = ((centers - ab[i]) ** 2).sum(-1).astype(np.float64)
        idx = np.argsort(d2)[:5]
        expected = np.zeros(grid.num_bins)
        expected[idx] = np.exp(-d2[idx] / 50.0)
        np.testing.assert_allclose(soft[i], expected / expected.sum(), atol=1e-5)


def test_rebalancing_weights_match_the_paper():
    centers = np.array([[0, 0], [10, 0], [0, 10], [50, 50], [-40, 30]], np.float32)
    counts = np.array([1000.0, 300.0, 50.0, 5.0, 0.0])
    sigma, lam = 5.0, 0.5
    # Zhang et al. 2016, eqs. 3-4, written out: p~ = G_sigma * p, w ~ ((1 - lambda) p~ + lambda/Q)^-1,
    # E_p~[w] = 1.
    p = counts / counts.sum()
    smoothed = np.zeros(5)
    for i in range(5):
        for j in range(5):
            d2 = float(np.sum((centers[i] - centers[j]) ** 2))
            smoothed[i] += math.exp(-d2 / (2 * sigma**2)) * p[j]
    smoothed /= smoothed.sum()
    w = np.array([1.0 / ((1 - lam) * s + lam / 5) for s in smoothed])
    w /= float(np.dot(smoothed, w))
    got = pretext.rebalancing_weights(counts, centers, sigma=sigma, mix=lam)
    np.testing.assert_allclose(got, w, rtol=1e-5)
    np.testing.assert_allclose(np.dot(smoothed, got), 1.0, rtol=1e-5)
    assert got[4] > got[3] > got[0]  # rarer colours weigh more
    np.testing.assert_allclose(
        pretext.rebalancing_weights(counts, centers, mix=1.0), 1.0, rtol=1e-6
    )


def test_annealed_mean_matches_numpy():
    rng = np.random.default_rng(4)
    logits = rng.normal(size=(3, 6)).astype(np.float32)
    centers = rng.uniform(-80, 80, (6, 2)).astype(np.float32)
    for t in (1.0, 0.38):
        z = np.exp(_log_softmax_reference(logits) / t)
        expected = (z / z.sum(-1, keepdims=True)) @ centers
        np.testing.assert_allclose(
            annealed_mean_ab(logits, centers, t), expected, rtol=1e-4, atol=1e-3
        )
    mode = centers[np.argmax(logits, -1)]
    np.testing.assert_allclose(annealed_mean_ab(logits, centers, 1e-3), mode, atol=1e-3)


# ---------------------------------------------------------------- patch pairs and colour guards

P, GAP, JITTER, SIDE = 6, 3, 1, 28


@pytest.fixture(scope="module")
def pairs():
    """Patch pairs of coordinate images (pixel = row * 100 + col) and the same ids in another order."""
    n = 96
    coords = np.arange(SIDE)[:, None] * 100.0 + np.arange(SIDE)[None, :]
    images = np.broadcast_to(coords[None, :, :, None], (n, SIDE, SIDE, 1)).astype(np.float32)
    ids = np.arange(n, dtype=np.int32) + 1000
    make = jax.jit(
        lambda rng, x, i: pretext.patch_pairs(rng, x, i, patch_size=P, gap=GAP, jitter=JITTER)
    )
    rng = jax.random.PRNGKey(0)
    perm = np.random.default_rng(0).permutation(n)
    return (
        jax.device_get(make(rng, images, ids)),
        jax.device_get(make(rng, images[perm], ids[perm])),
        perm,
    )


def test_patch_pairs_geometry(pairs):
    (c, nb, labels), _, _ = pairs
    corners = lambda p: np.stack([p[:, 0, 0, 0] // 100, p[:, 0, 0, 0] % 100], -1).astype(int)  # noqa: E731
    c_yx, n_yx = corners(c), corners(nb)
    # The crops are the image's pixels at those corners (a coordinate image is affine in row, col).
    rows = np.arange(P)[:, None] * 100.0 + np.arange(P)[None, :]
    np.testing.assert_array_equal(c[..., 0] - c[:, :1, :1, 0], np.broadcast_to(rows, c.shape[:3]))
    assert (
        (c_yx >= 0).all()
        and (n_yx >= 0).all()
        and (c_yx + P <= SIDE).all()
        and (n_yx + P <= SIDE).all()
    )
    offsets = np.array(pretext.NEIGHBOUR_OFFSETS)[labels]
    stride = P + GAP
    displacement = n_yx - c_yx - offsets * stride  # the two jitters' difference
    assert np.abs(displacement).max() <= 2 * JITTER and np.abs(displacement).max() > 0
    # The gap survives the jitter: along every axis the neighbour moved on, patches stay apart.
    for axis in (0, 1):
        moved = offsets[:, axis] != 0
        separation = np.abs(n_yx[moved, axis] - c_yx[moved, axis]) - P
        assert separation.min() >= GAP - 2 * JITTER >= 1
    # The centre patch is at most JITTER away from the centre cell of a grid that fits in the image.
    grid_top_left = c_yx - stride
    extent = pretext.patch_grid_extent(P, GAP, JITTER)
    assert grid_top_left.min() >= 0 and grid_top_left.max() <= SIDE - extent + 2 * JITTER
    assert set(labels.tolist()) == set(range(8))  # all 8 positions are drawn
    assert len({tuple(x) for x in c_yx}) > 10  # and the grid moves from example to example


def test_patch_pairs_follow_the_example_id_not_the_batch_position(pairs):
    (c, nb, labels), (c2, nb2, labels2), perm = pairs
    np.testing.assert_array_equal(labels[perm], labels2)
    np.testing.assert_array_equal(c[perm], c2)
    np.testing.assert_array_equal(nb[perm], nb2)
    with pytest.raises(ValueError, match="exceed 2 x jitter"):
        pretext.check_patch_grid(SIDE, SIDE, 6, 2, 1)
    with pytest.raises(ValueError, match="spans"):
        pretext.check_patch_grid(SIDE, SIDE, 8, 3, 1)


def test_colour_projection_and_dropping():
    rng = np.random.default_rng(5)
    x = rng.normal(size=(4, 4, 3)).astype(np.float32)
    projected = np.asarray(pretext.project_out_green_magenta(x))
    a = np.array([1.0, -2.0, 1.0]) / math.sqrt(6.0)
    np.testing.assert_allclose(projected @ a, 0.0, atol=1e-5)
    np.testing.assert_allclose(pretext.project_out_green_magenta(projected), projected, atol=1e-5)
    gray = np.full((2, 2, 3), 0.3, np.float32)  # a gray pixel has no green-magenta component
    np.testing.assert_allclose(pretext.project_out_green_magenta(gray), gray, atol=1e-6)

    drop = jax.jit(jax.vmap(lambda k: pretext.drop_color_channels(k, x, noise_std=0.01)))
    out = np.asarray(drop(jax.random.split(jax.random.PRNGKey(1), 30)))
    kept = [[np.array_equal(o[..., ch], x[..., ch]) for ch in range(3)] for o in out]
    assert all(sum(k) == 1 for k in kept)  # exactly one channel survives
    assert {k.index(True) for k in kept} == {0, 1, 2}  # and which one is random
    noise = np.concatenate(
        [
            o[..., [ch for ch in range(3) if not k[ch]]].ravel()
            for o, k in zip(out, kept, strict=True)
        ]
    )
    assert 0.005 < noise.std() < 0.02 and abs(noise.mean()) < 0.005


# ---------------------------------------------------------------- masks


def test_center_and_random_block_masks():
    mask = np.asarray(pretext.center_mask(28, 28, fraction=0.5))
    expected = np.zeros((28, 28), bool)
    expected[7:21, 7:21] = True
    np.testing.assert_array_equal(mask, expected)

    config = engine_checks.load(
        "inpainting_fashion_mnist.py:smoke",
        "inpainting.mask=random_blocks",
        "inpainting.num_blocks=2",
    )
    method = get_method(config)
    ids = jnp.arange(16, dtype=jnp.int32)
    make = jax.jit(lambda i: method.masks(jax.random.PRNGKey(0), i, 28, 28))
    masks, again = np.asarray(make(ids)), np.asarray(make(ids[::-1]))[::-1]
    np.testing.assert_array_equal(masks, again)  # keyed by example id
    size = config.inpainting.block_size
    areas = masks.sum(axis=(1, 2))
    assert (areas >= size * size).all() and (areas <= 2 * size * size).all()
    assert len({m.tobytes() for m in masks}) == 16  # every example has its own blocks
    # Each mask is a union of size x size squares: its rows and columns come in runs of >= size.
    for m in masks:
        rows = np.flatnonzero(m.any(axis=1))
        assert rows.max() - rows.min() + 1 >= size


def test_inpainting_inputs_drop_the_region_to_the_mean():
    config = engine_checks.load("inpainting_fashion_mnist.py:smoke", "inpainting.flip=False")
    method = get_method(config)
    images = np.random.default_rng(6).integers(0, 256, (4, 28, 28, 1), dtype=np.uint8)
    masked, target, mask = jax.jit(method.inputs)(jax.random.PRNGKey(0), images, jnp.arange(4))
    masked, target, mask = map(np.asarray, (masked, target, mask))
    np.testing.assert_array_equal(masked[mask], 0.0)
    np.testing.assert_array_equal(masked[~mask], target[~mask])
    assert mask.mean() == 0.25


# ---------------------------------------------------------------- backbone feature map


def test_backbone_feature_map_is_what_the_encoder_pools():
    encoder = get_encoder("small_cnn", widths=(4, 8), strides=(2, 2))
    x = jnp.asarray(np.random.default_rng(7).normal(size=(2, 16, 16, 1)), jnp.float32)

    @jax.jit
    def run(x):
        variables = encoder.init(jax.random.PRNGKey(0), x, train=False)
        pooled, fmap, stats = backbone_feature_map(encoder, variables, x, train=False)
        return pooled, fmap, stats, encoder.apply(variables, x, train=False)

    pooled, fmap, stats, direct = run(x)
    assert fmap.shape == (2, 4, 4, 8) and stats == {}
    np.testing.assert_allclose(fmap.mean(axis=(1, 2)), pooled, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(pooled, direct, rtol=1e-6)
    with pytest.raises(ValueError, match="convolutional"):
        backbone_feature_map(get_encoder("vit_tiny"), {}, x, train=False)


def test_conv_decoder_upsamplings():
    """Both ways of doubling give the image's shape; resize_conv's upsampling is nearest-neighbour,
    so a 1x1-channel identity conv on it repeats every pixel 2x2."""
    features = jnp.asarray(np.random.default_rng(3).normal(size=(2, 8)), jnp.float32)
    for upsample in ("transposed", "resize_conv"):
        decoder = ConvDecoder(out_shape=(28, 28, 3), widths=(8, 4), upsample=upsample)
        variables = decoder.init(jax.random.PRNGKey(0), features, train=False)
        assert decoder.apply(variables, features, train=False).shape == (2, 28, 28, 3)
        assert variables["params"]["up0"]["kernel"].shape[:2] == (
            (4, 4) if upsample == "transposed" else (3, 3)
        )
    decoder = ConvDecoder(out_shape=(4, 4, 1), widths=(1,), upsample="resize_conv")
    variables = decoder.init(jax.random.PRNGKey(0), features, train=False)
    params = jax.tree.map(lambda p: p, variables["params"])
    params["up0"]["kernel"] = jnp.zeros((3, 3, 1, 1)).at[1, 1].set(1.0)
    _, intermediates = decoder.apply(
        {**variables, "params": params},
        features,
        train=False,
        capture_intermediates=lambda mdl, _: mdl.name in ("bn_bottleneck", "up0"),
    )
    small = jax.nn.relu(intermediates["intermediates"]["bn_bottleneck"]["__call__"][0])
    small = small.reshape(2, 2, 2, 1)
    np.testing.assert_allclose(
        intermediates["intermediates"]["up0"]["__call__"][0],
        jnp.repeat(jnp.repeat(small, 2, axis=1), 2, axis=2),
        rtol=1e-6,
    )
    with pytest.raises(ValueError, match="upsample"):
        bad = ConvDecoder(out_shape=(4, 4, 1), widths=(1,), upsample="bilinear")
        bad.init(jax.random.PRNGKey(0), features, train=False)


def test_colorize_keeps_the_lightness_and_outputs_rgb():
    config = engine_checks.load("colorization_skimage.py:smoke", "colorization.rebalance=False")
    method = get_method(config)
    images = np.random.default_rng(8).integers(30, 220, (2, 32, 32, 3), dtype=np.uint8)

    @jax.jit
    def run(images):
        variables = method.init(jax.random.PRNGKey(0), (32, 32, 3))
        return method.colorize(variables.params, variables.batch_stats, images)

    rgb = np.asarray(run(images))
    assert rgb.shape == (2, 32, 32, 3) and rgb.min() >= 0.0 and rgb.max() <= 1.0
    # The output keeps each pixel's own L; only ab is predicted (clipping to the gamut moves L a little).
    lightness = lambda x: skcolor.rgb2lab(x)[..., 0]  # noqa: E731
    assert np.median(np.abs(lightness(rgb) - lightness(images / 255.0))) < 2.0


# ---------------------------------------------------------------- the offline colour source


def test_skimage_samples_source():
    from ssl_jax.data import color_samples, get_source

    config = engine_checks.load("colorization_skimage.py:smoke")
    train, test = get_source(config.data, "train"), get_source(config.data, "test")
    n = len(color_samples.SAMPLE_IMAGES)
    assert len(train) == 40 * n and len(test) == 10 * n and train.num_classes == n
    batch = train.get(np.arange(len(train)))
    assert batch["image"].shape == (40 * n, 32, 32, 3) and batch["image"].dtype == np.uint8
    np.testing.assert_array_equal(np.bincount(batch["label"]), 40)
    assert get_source(config.data, "train") is train  # cached, deterministic
    other = color_samples.skimage_samples("train", per_image=40, seed=1)
    assert not np.array_equal(other.images, train.images)
    # Test crops come from the held-out right strip of each photograph: none equals a train crop, and
    # the first test crop of the astronaut lies entirely right of the cut.
    train_set = {img.tobytes() for img in train.images}
    assert not any(img.tobytes() in train_set for img in test.images)
    photo = color_samples._resize_short_side(color_samples._load_photo("astronaut"), 160)
    windows = np.lib.stride_tricks.sliding_window_view(photo, (32, 32, 3))[..., 0, :, :, :]
    hits = np.argwhere((windows == test.images[0]).all(axis=(-3, -2, -1)))
    assert len(hits) and (hits[:, 1] >= round(photo.shape[1] * 0.75)).all()


def test_colour_prior_matches_a_skimage_reference():
    config = engine_checks.load("colorization_skimage.py:smoke")
    method = method_inputs.build_method(config, num_steps=3, steps_per_epoch=1)
    from ssl_jax.data import get_source

    source = get_source(config.data, "train")
    rows = np.sort(np.random.default_rng(config.seed).choice(len(source), 64, replace=False))
    lab = skcolor.rgb2lab(source.get(rows)["image"])
    centers = method.grid.centers
    ab = lab[..., 1:].reshape(-1, 2)
    nearest = np.argmin(((ab[:, None] - centers[None]) ** 2).sum(-1), axis=1)
    counts = np.bincount(nearest, minlength=len(centers))
    expected = pretext.rebalancing_weights(counts, centers, sigma=5.0, mix=0.5)
    # scikit-image's constants and ties at cell borders move a handful of pixels to a neighbour bin.
    np.testing.assert_allclose(method.class_weights(), expected, rtol=2e-2)


# ---------------------------------------------------------------- end to end and configs

RUNS = {
    "context_prediction": (
        "context_prediction_fashion_mnist.py:smoke",
        "embedded_fashion_mnist",
        "position_accuracy",
    ),
    "inpainting": (
        "inpainting_fashion_mnist.py:smoke",
        "embedded_fashion_mnist",
        "masked_fraction",
    ),
    "colorization": ("colorization_skimage.py:smoke", None, "bin_accuracy"),
}


@pytest.mark.parametrize("name", sorted(RUNS))
def test_cli_pretrain_and_evaluate(name, tmp_path, capsys):
    spec, data_name, metric = RUNS[name]
    workdir = str(tmp_path / name)
    assert engine_checks.run_smoke(spec, workdir, data_name=data_name) == 0
    results = json.load(open(os.path.join(workdir, "eval.json")))
    assert 0.0 <= results["knn"]["top1"] <= 1.0
    records = [r for r in reporting.read_metrics(workdir) if "loss" in r]
    assert [r["step"] for r in records] == [1, 2, 3]
    assert all(np.isfinite(r["loss"]) and r["loss"] > 0 and metric in r for r in records)
    if name == "context_prediction":
        assert all(0.0 <= r[metric] <= 1.0 for r in records)
    if name == "inpainting":
        np.testing.assert_allclose([r[metric] for r in records], 0.25)
    capsys.readouterr()
    assert cli.main(["evaluate", "--workdir", workdir, "--protocol", "knn"]) == 0
    assert "knn top-1 accuracy" in capsys.readouterr().out


CONFIGS = [
    ("context_prediction_fashion_mnist.py", (28, 28, 1)),
    ("inpainting_fashion_mnist.py", (28, 28, 1)),
    ("inpainting_fashion_mnist.py:random_blocks", (28, 28, 1)),
    ("colorization_skimage.py", (32, 32, 3)),
    ("context_prediction_imagenet.py", (256, 256, 3)),
    ("context_prediction_imagenet.py:smoke", (48, 48, 3)),
    ("inpainting_imagenet.py", (128, 128, 3)),
    ("inpainting_imagenet.py:smoke", (32, 32, 3)),
    ("colorization_imagenet.py", (224, 224, 3)),
    ("colorization_imagenet.py:smoke", (32, 32, 3)),
]


@pytest.mark.parametrize("spec, image_shape", CONFIGS, ids=[c[0] for c in CONFIGS])
def test_every_config_initializes(spec, image_shape):
    # The ImageNet prior needs ImageNet; the rebalancing itself is tested above.
    overrides = ("colorization.rebalance=False",) if spec.startswith("colorization") else ()
    config = engine_checks.load(spec, *overrides)
    method = get_method(config, num_steps=100, steps_per_epoch=10)
    variables = jax.eval_shape(lambda rng: method.init(rng, image_shape), jax.random.PRNGKey(0))
    assert "encoder" in variables.params
    if config.method == "colorization":
        assert variables.extra["class_weights"].shape == (method.grid.num_bins,)
        encoder = variables.params["encoder"]
        stem = encoder.get("conv0", encoder.get("conv1"))["kernel"]  # small_cnn / resnet
        assert stem.shape[-2] == 1  # the backbone sees the L channel only


def test_bad_settings_are_clear_errors():
    with pytest.raises(ValueError, match="exceed 2 x jitter"):
        get_method(
            engine_checks.load(
                "context_prediction_fashion_mnist.py:smoke", "context_prediction.gap=2"
            )
        )
    with pytest.raises(ValueError, match="adversarial"):
        get_method(
            engine_checks.load(
                "inpainting_fashion_mnist.py:smoke", "inpainting.adversarial_weight=0.001"
            )
        )
    config = engine_checks.load("colorization_skimage.py:smoke", "colorization.rebalance=False")
    with pytest.raises(ValueError, match="RGB"):
        get_method(config).init(jax.random.PRNGKey(0), (32, 32, 1))
