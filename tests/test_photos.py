"""Tests of ssl_jax.data.photos: the crop-box law, host decode-and-crop, the eval crop, bad input."""

import math

import jax.numpy as jnp
import numpy as np
import pytest
from PIL import Image

from ssl_jax.augment.image import CROP_DRAWS, crop_box_from_uniforms
from ssl_jax.data import photos


def _photo(height: int, width: int, seed: int = 0) -> np.ndarray:
    """A smooth colour image (JPEG-friendly, so draft-mode decoding is close to a full decode)."""
    y, x = np.mgrid[0:height, 0:width] / max(height, width)
    phase = np.random.default_rng(seed).uniform(0, 2 * np.pi, 3)
    channels = [np.sin(6 * x + 3 * y + p) for p in phase]
    return ((np.stack(channels, -1) + 1) * 127.5).astype(np.uint8)


def _save(tmp_path, name: str, image: Image.Image, **kwargs) -> str:
    path = str(tmp_path / name)
    image.save(path, **kwargs)
    return path


def _reference_crop(image: Image.Image, box, size: int) -> np.ndarray:
    """Full decode, crop, then resize: what decode_views must match (up to draft-mode decoding)."""
    top, left, h, w = box
    cropped = image.convert("RGB").crop((left, top, left + w, top + h))
    return np.asarray(cropped.resize((size, size), Image.Resampling.BILINEAR))


# ---------------------------------------------------------------------------------- the box law


@pytest.mark.parametrize("height,width", [(375, 500), (350, 400), (40, 400), (7, 5), (1, 1)])
def test_crop_box_matches_the_device_law(height, width):
    """The NumPy box equals augment.crop_box_from_uniforms (jnp) for the same uniforms, the
    central-crop fallback (a 10:1 strip) included."""
    rng = np.random.default_rng(height * width)
    for _ in range(40):
        u = rng.random(CROP_DRAWS).astype(np.float32)
        expected = tuple(int(v) for v in crop_box_from_uniforms(jnp.asarray(u), height, width))
        assert photos.crop_box(u, height, width) == expected


def test_crop_box_statistics_follow_torchvision():
    """Where every try is valid, the area fraction is uniform in scale and log(w / h) uniform in
    log(ratio): means, spreads and quartiles over 4,000 draws; every box lies inside the image."""
    height, width, scale, ratio = 700, 800, (0.08, 0.5), (3 / 4, 4 / 3)
    rng = np.random.default_rng(0)
    boxes = np.array(
        [
            photos.crop_box(rng.random(CROP_DRAWS), height, width, scale=scale, ratio=ratio)
            for _ in range(4000)
        ]
    )
    top, left, h, w = boxes.T
    assert (top >= 0).all() and (left >= 0).all()
    assert (top + h <= height).all() and (left + w <= width).all()
    area = h * w / (height * width)
    lo, hi = math.log(ratio[0]), math.log(ratio[1])
    log_ratio = np.log(w / h)
    # Rounding w and h to pixels moves each value by well under 1%.
    np.testing.assert_allclose(area.mean(), np.mean(scale), atol=0.006)
    np.testing.assert_allclose(area.std(), (scale[1] - scale[0]) / math.sqrt(12), atol=0.006)
    np.testing.assert_allclose(np.quantile(area, [0.25, 0.75]), [0.185, 0.395], atol=0.012)
    np.testing.assert_allclose(log_ratio.mean(), (lo + hi) / 2, atol=0.01)
    np.testing.assert_allclose(log_ratio.std(), (hi - lo) / math.sqrt(12), atol=0.01)
    assert area.min() >= scale[0] - 0.01 and area.max() <= scale[1] + 0.01
    # The offsets are uniform over the free room: top / (height - h) has mean 1/2.
    np.testing.assert_allclose(np.mean(top / (height - h)), 0.5, atol=0.02)


# ------------------------------------------------------------------------------ decode-and-crop


def test_views_are_crops_of_the_original_photo(tmp_path):
    """A PNG view matches full decode + crop + resize (within 1 level on average: resizing with a
    box lets the filter read pixels just past the box's edge); a JPEG view, decoded in draft mode
    at a reduced DCT scale, stays close to it. Each view has its own box from the rng, in order."""
    array = _photo(300, 400)
    views = (photos.CropView(24), photos.CropView(24), photos.CropView(12, (0.05, 0.4)))
    for name, kwargs, tolerance in (("a.png", {}, 1.0), ("a.jpg", {"quality": 95}, 6.0)):
        path = _save(tmp_path, name, Image.fromarray(array), **kwargs)
        out = photos.decode_views(path, views, np.random.default_rng(1))
        rng = np.random.default_rng(1)
        with Image.open(path) as image:
            for view, got in zip(views, out, strict=True):
                box = photos.crop_box(rng.random(CROP_DRAWS), 300, 400, scale=view.scale)
                assert got.shape == (view.size, view.size, 3) and got.dtype == np.uint8
                diff = np.abs(got.astype(float) - _reference_crop(image, box, view.size))
                assert diff.mean() <= tolerance, (name, diff.mean())
    assert not np.array_equal(out[0], out[1])  # two views, two boxes


def test_jpeg_is_decoded_at_a_reduced_scale_only_when_every_box_allows(tmp_path):
    """Small views of a 640 x 480 JPEG decode at 1/8 scale or less work; a full-size view forces
    the full decode."""
    path = _save(tmp_path, "a.jpg", Image.fromarray(_photo(480, 640)), quality=90)
    with Image.open(path) as image:
        assert photos._draft(image, "RGB", (80, 60)) == (1 / 8, 1 / 8)
    with Image.open(path) as image:
        assert photos._draft(image, "RGB", (640, 480)) == (1.0, 1.0)


def test_multicrop_views_shapes(tmp_path):
    path = _save(tmp_path, "a.jpg", Image.fromarray(_photo(200, 260)))
    views = photos.multicrop_views(32, 16, num_local=4)
    assert [v.scale for v in views] == [(0.4, 1.0)] * 2 + [(0.05, 0.4)] * 4
    out = photos.decode_views(path, views, np.random.default_rng(0))
    assert [v.shape for v in out] == [(32, 32, 3)] * 2 + [(16, 16, 3)] * 4


def test_eval_resizes_the_short_side_then_centre_crops(tmp_path):
    """ImageNet's Resize(256) + CenterCrop(224) at a small size (Resize(32) + CenterCrop(28)): the
    same pixels as resizing the whole photo then cropping, and never a squash, even for a photo
    smaller than the crop."""
    array = _photo(150, 200)
    path = _save(tmp_path, "a.png", Image.fromarray(array))
    got = photos.decode_eval(path, 28, crop_fraction=0.875)
    resized = np.asarray(Image.fromarray(array).resize((42, 32), Image.Resampling.BILINEAR))
    top, left = round((32 - 28) / 2), round((42 - 28) / 2)
    expected = resized[top : top + 28, left : left + 28]
    assert got.shape == (28, 28, 3)
    assert np.abs(got.astype(float) - expected).mean() < 3.0
    sx, sy = 200 / 42, 150 / 32  # original pixels per resized pixel
    expected_box = (left * sx, top * sy, (left + 28) * sx, (top + 28) * sy)
    assert photos.eval_box(150, 200, 28, 0.875) == pytest.approx(expected_box)
    # A 10 x 20 photo: the eval box is a square of the original (aspect kept), upsampled to 28.
    left, top, right, bottom = photos.eval_box(10, 20, 28, 0.875)
    assert right - left == pytest.approx(bottom - top)
    tiny = _save(tmp_path, "tiny.png", Image.fromarray(_photo(10, 20)))
    assert photos.decode_eval(tiny, 28).shape == (28, 28, 3)


# ------------------------------------------------------------------------------------ bad input


def test_broken_files_raise_an_error_naming_them(tmp_path):
    good = _save(tmp_path, "good.jpg", Image.fromarray(_photo(64, 64)))
    data = open(good, "rb").read()
    truncated, empty = tmp_path / "truncated.jpg", tmp_path / "empty.jpg"
    truncated.write_bytes(data[: len(data) // 2])
    empty.write_bytes(b"")
    (tmp_path / "text.jpg").write_text("not an image")
    view = (photos.CropView(8),)
    for name in ("truncated.jpg", "empty.jpg", "text.jpg"):
        with pytest.raises(photos.PhotoError, match=name):
            photos.decode_views(str(tmp_path / name), view, np.random.default_rng(0))
        with pytest.raises(photos.PhotoError, match=name):
            photos.decode_eval(str(tmp_path / name), 8)
    with pytest.raises(photos.PhotoError, match="<bytes>"):
        photos.decode_views(data[:100], view, np.random.default_rng(0))
    with pytest.raises(FileNotFoundError):  # the file system's error, left as it is
        photos.decode_views(str(tmp_path / "missing.jpg"), view, np.random.default_rng(0))
    floats = _save(tmp_path, "float.tif", Image.fromarray(np.ones((8, 8), np.float32)))
    with pytest.raises(photos.PhotoError, match="float.tif"):
        photos.decode_eval(floats, 8)


def _whole(path: str, mode: str = "RGB") -> np.ndarray:
    """The full image as decode_views returns it: scale (1, 1) keeps the whole photo."""
    with Image.open(path) as image:
        size = image.size
    view = photos.CropView(size[0], scale=(1.0, 1.0), ratio=(size[0] / size[1],) * 2)
    out = photos.decode_views(path, [view], np.random.default_rng(0), mode=mode)[0]
    assert out.shape[:2] == (size[0], size[0])
    return out


def test_unusual_modes_are_converted(tmp_path):
    rgb = _photo(16, 16)
    # CMYK JPEG and palette PNG: PIL's own conversion to RGB.
    cmyk = _save(tmp_path, "cmyk.jpg", Image.fromarray(rgb).convert("CMYK"), quality=95)
    with Image.open(cmyk) as image:
        np.testing.assert_array_equal(_whole(cmyk), np.asarray(image.convert("RGB")))
    palette = _save(tmp_path, "p.png", Image.fromarray(rgb).quantize(16))
    with Image.open(palette) as image:
        np.testing.assert_array_equal(_whole(palette), np.asarray(image.convert("RGB")))
    # Alpha: a fully transparent pixel becomes white, an opaque one keeps its colour.
    rgba = np.concatenate([rgb, np.full((16, 16, 1), 255, np.uint8)], -1)
    rgba[:8, :, 3] = 0
    alpha = _whole(_save(tmp_path, "a.png", Image.fromarray(rgba, "RGBA")))
    assert (alpha[:8] == 255).all()
    np.testing.assert_array_equal(alpha[8:], rgb[8:])
    # 16-bit grayscale PNG: scaled to 8 bits (PIL's convert would clip at 255), then 3 channels.
    deep = np.linspace(0, 65535, 256).astype(np.uint16).reshape(16, 16)
    sixteen = _whole(_save(tmp_path, "16.png", Image.fromarray(deep)))
    np.testing.assert_array_equal(sixteen[..., 0], (deep.astype(np.int64) * 255 // 65535))
    assert (sixteen == sixteen[..., :1]).all()
    # A grayscale photo in an RGB dataset: three equal channels; in an 'L' dataset: one channel.
    gray = _save(tmp_path, "g.jpg", Image.fromarray(rgb).convert("L"))
    out = _whole(gray)
    assert out.shape == (16, 16, 3) and (out == out[..., :1]).all()
    assert _whole(gray, "L").shape == (16, 16, 1)


def test_a_photo_smaller_than_the_crop_is_upsampled(tmp_path):
    path = _save(tmp_path, "tiny.png", Image.fromarray(_photo(3, 2)))
    views = photos.simclr_views(24)
    out = photos.decode_views(path, views, np.random.default_rng(0))
    assert [v.shape for v in out] == [(24, 24, 3)] * 2
    with open(path, "rb") as f:  # bytes read the same as the path
        again = photos.decode_views(f.read(), views, np.random.default_rng(0))
    np.testing.assert_array_equal(out, again)


def _textured(height: int, width: int) -> np.ndarray:
    """A photo-like image: smooth colour plus fine texture and hard edges (where resamplers differ)."""
    rng = np.random.default_rng(3)
    image = _photo(height, width).astype(float)
    image += rng.normal(0, 12, image.shape)
    image[height // 3 : height // 2, width // 4 : width // 2] = (250, 30, 30)
    return np.clip(image, 0, 255).astype(np.uint8)


@pytest.mark.parametrize("mode", ["RGB", "L"])
def test_fast_jpeg_decode_stays_within_a_grey_level_of_pil(tmp_path, mode):
    """YCbCr and grayscale JPEGs take simplejpeg + OpenCV: the same boxes and DCT scale as PIL's
    draft mode and, on average, within about a grey level of PIL's antialiased bilinear, for
    crops that grow, shrink by up to 2, shrink by more, at full and at reduced DCT scale, and for
    the eval crop."""
    path = _save(tmp_path, "a.jpg", Image.fromarray(_textured(450, 380)), quality=90)
    data = open(path, "rb").read()
    assert photos._jpeg_size(data) == (450, 380)
    views = (
        photos.CropView(224),
        photos.CropView(224, (0.5, 1.0)),
        photos.CropView(96, (0.05, 0.4)),
        photos.CropView(40, (0.3, 1.0)),
    )
    diffs = []
    for seed in range(6):
        for subset in (views, views[2:], views[3:]):  # all, then only small views: 1/2, 1/4 scale
            fast = photos.decode_views(data, subset, np.random.default_rng(seed), mode=mode)
            rng = np.random.default_rng(seed)
            boxes = []
            for v in subset:
                top, left, h, w = photos.crop_box(rng.random(CROP_DRAWS), 450, 380, scale=v.scale)
                boxes.append((left, top, left + w, top + h))
            sizes = [v.size for v in subset]
            pil = photos._decode_pil(data, lambda h, w, b=boxes: b, sizes, mode, "a.jpg")
            for a, b in zip(fast, pil, strict=True):
                assert a.shape == b.shape == (a.shape[0], a.shape[0], 1 if mode == "L" else 3)
                diffs.append(np.abs(a.astype(float) - b).mean())
    eval_pil = photos._decode_pil(
        data, lambda h, w: [photos.eval_box(h, w, 64, 0.875)], [64], mode, "a.jpg"
    )[0]
    diffs.append(np.abs(photos.decode_eval(data, 64, mode=mode).astype(float) - eval_pil).mean())
    assert np.mean(diffs) < 1.0 and np.max(diffs) < 2.5, (np.mean(diffs), np.max(diffs))
