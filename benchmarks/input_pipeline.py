"""Throughput of the host input pipeline on compressed photographs (issue #18), written offline.

Builds an ImageNet-like JPEG image folder from scikit-image's bundled colour photographs (random
crops re-encoded at random sizes, sides 300-600 px, 10 classes) and the same files as a tfds
ArrayRecord dataset; then times `ssl_jax.data.pipeline.Pipeline` producing two 224-px SimCLR views
per example (host decode-and-crop, uint8 out) for 1, 2, 4, ... grain worker processes, beside the
decoders compared on one core (PIL full decode + squash, the host_crop=no path; PIL draft mode, the
path of files simplejpeg does not take; simplejpeg's DCT scaling + OpenCV resize, chosen). Peak host memory is the largest summed RSS of this
process and its workers, sampled every 50 ms. Writes benchmarks/results/input_pipeline.md.

  python benchmarks/input_pipeline.py                        # 2,000 photos, workers 1 2 4
  python benchmarks/input_pipeline.py --num-images 300 --batches 4 --workers 1   # a quick look

Target (issue #18): >= 400 examples/s per core and >= 1.8x from 1 to 2 workers, so a 16-core GPU
host feeds ResNet-50's 4,200 examples/s (8,400 views/s) on one GPU; the run exits 1 when one
worker's examples per CPU-second (the per-core rate, whatever else loads the machine) miss it.
"""

from __future__ import annotations

import argparse
import io
import os
import platform
import sys
import tempfile
import threading
import time

import numpy as np
import psutil
from PIL import Image

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from ssl_jax.augment.image import CROP_DRAWS  # noqa: E402
from ssl_jax.data import ImageFolderSource  # noqa: E402
from ssl_jax.data.photos import (  # noqa: E402
    FolderPhotos,
    TfdsPhotos,
    _decode_pil,
    crop_box,
    decode_views,
    simclr_views,
)
from ssl_jax.data.pipeline import Pipeline  # noqa: E402

RESNET50_EXAMPLES_PER_S = 4200  # 8,400 views/s on one GPU (benchmarks/NOTES.md, issue #8)
TARGET_PER_CORE = 400
PHOTOS = ("astronaut", "coffee", "chelsea", "rocket", "immunohistochemistry", "motorcycle")


def _bundled_photos() -> list[np.ndarray]:
    import skimage.data

    out = []
    for name in PHOTOS:
        image = (
            skimage.data.stereo_motorcycle()[0]
            if name == "motorcycle"
            else getattr(skimage.data, name)()
        )
        out.append(image[..., :3])
    return out


def build_folder(root: str, num_images: int, seed: int = 0) -> list[str]:
    """num_images JPEGs (quality 90) in root/class_<k>/: a random crop (40-100% of each side) of a
    bundled photo, resized so its sides lie in 300-600 px."""
    rng = np.random.default_rng(seed)
    sources = _bundled_photos()
    paths = []
    for i in range(num_images):
        photo = sources[i % len(sources)]
        h, w = photo.shape[:2]
        ch, cw = (rng.uniform(0.4, 1.0, 2) * (h, w)).astype(int)
        top, left = rng.integers(0, h - ch + 1), rng.integers(0, w - cw + 1)
        out_w, out_h = rng.integers(300, 601, 2)
        image = Image.fromarray(photo[top : top + ch, left : left + cw]).resize((out_w, out_h))
        folder = os.path.join(root, f"class_{i % 10}")
        os.makedirs(folder, exist_ok=True)
        paths.append(os.path.join(folder, f"{i:05d}.jpg"))
        image.save(paths[-1], quality=90)
    return paths


def build_tfds(
    data_dir: str, paths: list[str], labels: list[int] | None = None, num_classes: int = 10
) -> None:
    """The same JPEG files, bytes unchanged, as the prepared tfds dataset `ssl_jax_photos` (split
    "train", ArrayRecord, no TensorFlow); labels default to i % num_classes. tests/test_pipeline.py
    builds its dataset with this too."""
    labels = [i % num_classes for i in range(len(paths))] if labels is None else labels
    import tensorflow_datasets as tfds

    with tfds.core.registered.skip_registration():

        class SslJaxPhotos(tfds.core.GeneratorBasedBuilder):
            VERSION = tfds.core.Version("1.0.0")

            def _info(self):
                features = {
                    "image": tfds.features.Image(encoding_format="jpeg"),
                    "label": tfds.features.ClassLabel(num_classes=num_classes),
                }
                return tfds.core.DatasetInfo(
                    builder=self, features=tfds.features.FeaturesDict(features)
                )

            def _split_generators(self, dl_manager):
                return {"train": self._generate_examples()}

            def _generate_examples(self):
                for i, (path, label) in enumerate(zip(paths, labels, strict=True)):
                    yield i, {"image": path, "label": int(label)}

        SslJaxPhotos(data_dir=data_dir, file_format="array_record").download_and_prepare()


def decoder_rates(paths: list[str], size: int, count: int) -> dict[str, float]:
    """(wall, CPU) ms per example (two views, or one squashed image) in this process, decoders
    side by side; CPU time is the per-core cost, whatever else loads the machine."""
    datas = [open(p, "rb").read() for p in paths[:count]]
    views = simclr_views(size)
    rng = np.random.default_rng(0)

    def squash(data):
        with Image.open(io.BytesIO(data)) as image:
            return np.asarray(image.convert("RGB").resize((size, size), Image.Resampling.BILINEAR))

    def full(data):
        with Image.open(io.BytesIO(data)) as image:
            decoded = image.convert("RGB")
        for _ in views:
            top, left, h, w = crop_box(rng.random(CROP_DRAWS), decoded.height, decoded.width)
            decoded.resize(
                (size, size), Image.Resampling.BILINEAR, box=(left, top, left + w, top + h)
            )

    def pil_draft(data):
        def boxes_of(h, w):
            out = []
            for _ in views:
                top, left, bh, bw = crop_box(rng.random(CROP_DRAWS), h, w)
                out.append((left, top, left + bw, top + bh))
            return out

        _decode_pil(data, boxes_of, [size] * len(views), "RGB", "<bytes>")

    cases = {
        "PIL full decode, squash to 224 (ImageFolderSource, host_crop=no)": squash,
        "PIL full decode, 2 crops": full,
        "PIL draft mode, 2 crops (photos._decode_pil: the path of non-YCbCr files)": pil_draft,
        "simplejpeg DCT scaling + OpenCV resize, 2 crops (photos.decode_views, chosen)": (
            lambda d: decode_views(d, views, rng)
        ),
    }
    out = {}
    for name, fn in cases.items():
        for data in datas[:10]:
            fn(data)
        start, cpu = time.perf_counter(), time.process_time()
        for data in datas:
            fn(data)
        wall_ms = (time.perf_counter() - start) / len(datas) * 1e3
        out[name] = (wall_ms, (time.process_time() - cpu) / len(datas) * 1e3)
    return out


class PeakRss:
    """The largest RSS of this process plus its children, sampled in a thread."""

    def __init__(self, period: float = 0.05):
        self.peak, self._stop, self._period = 0, threading.Event(), period
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        me = psutil.Process()
        while not self._stop.is_set():
            try:
                rss = me.memory_info().rss + sum(
                    c.memory_info().rss for c in me.children(recursive=True)
                )
            except psutil.Error:
                rss = 0
            self.peak = max(self.peak, rss)
            time.sleep(self._period)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()


def _cpu_seconds() -> float:
    """User + system CPU seconds of this process and its live children."""
    me = psutil.Process()
    total = 0.0
    for process in [me, *me.children(recursive=True)]:
        try:
            times = process.cpu_times()
            total += times.user + times.system
        except psutil.Error:
            pass
    return total


def pipeline_rate(photos, workers: int, batch: int, batches: int, size: int) -> dict:
    """examples/s (wall) and examples per CPU-second of `batches` batches after the first
    `workers` (start-up and warm-up)."""
    with (
        PeakRss() as memory,
        Pipeline(
            photos, batch, seed=0, views=simclr_views(size), num_workers=workers, prefetch=2
        ) as pipeline,
    ):
        for _ in range(max(workers, 1)):
            next(pipeline)
        start, cpu = time.perf_counter(), _cpu_seconds()
        for _ in range(batches):
            out = next(pipeline)
        seconds, cpu = time.perf_counter() - start, _cpu_seconds() - cpu
    assert out["view_0"].shape == (batch, size, size, 3)
    return {
        "rate": batches * batch / seconds,
        "per_cpu_s": batches * batch / cpu,
        "peak_gib": memory.peak / 2**30,
    }


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--num-images", type=int, default=2000)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--batches", type=int, default=12, help="timed batches per case")
    parser.add_argument("--workers", default="1,2,4")
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--out", default=os.path.join(ROOT, "benchmarks/results/input_pipeline.md"))
    args = parser.parse_args(argv)
    workers = [int(w) for w in args.workers.split(",")]
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory() as tmp:
        folder = os.path.join(tmp, "photos")
        paths = build_folder(folder, args.num_images)
        build_tfds(os.path.join(tmp, "tfds"), paths)
        sizes = [Image.open(p).size for p in paths]
        megabytes = sum(os.path.getsize(p) for p in paths) / 2**20
        decoders = decoder_rates(paths, args.size, min(200, len(paths)))
        inputs = {
            "image folder": FolderPhotos.from_source(ImageFolderSource(folder)),
            "tfds ArrayRecord": TfdsPhotos("ssl_jax_photos", "train", os.path.join(tmp, "tfds")),
        }
        rows = []
        for name, photos in inputs.items():
            for w in workers:
                result = pipeline_rate(photos, w, args.batch, args.batches, args.size)
                rows.append((name, w, result))
                print(
                    name,
                    w,
                    f"{result['rate']:.0f} examples/s",
                    f"{result['peak_gib']:.2f} GiB",
                    flush=True,
                )
    load_after = os.getloadavg()
    cores = os.cpu_count()
    lines = [
        "# Host input pipeline on compressed photographs (issue #18)",
        "",
        f"Command: `python benchmarks/input_pipeline.py {' '.join(argv or sys.argv[1:])}`",
        "",
        f"Machine: {platform.processor() or platform.machine()}, {cores} cores, Python "
        f"{platform.python_version()}; load average before {load_before[0]:.2f}, after "
        f"{load_after[0]:.2f} (other jobs share these cores, so rates are lower bounds).",
        f"Data: {len(paths)} JPEGs (quality 90, {megabytes:.0f} MiB) re-encoded from scikit-image's "
        f"bundled photos, width {min(s[0] for s in sizes)}-{max(s[0] for s in sizes)} px, height "
        f"{min(s[1] for s in sizes)}-{max(s[1] for s in sizes)} px (mean "
        f"{np.mean([s[0] for s in sizes]):.0f} x {np.mean([s[1] for s in sizes]):.0f}); views: two "
        f"{args.size}-px SimCLR crops per example, uint8; batch {args.batch}, {args.batches} timed "
        "batches after the first (one per worker) are discarded.",
        "",
        "## Decoders on one core (ms per example, lower is better)",
        "",
        "| decoder | wall ms / example | CPU ms / example | examples per CPU-second |",
        "| --- | ---: | ---: | ---: |",
    ]
    lines += [f"| {k} | {w:.2f} | {c:.2f} | {1e3 / c:.0f} |" for k, (w, c) in decoders.items()]
    lines += [
        "",
        "## The training pipeline (ssl_jax.data.pipeline.Pipeline)",
        "",
        "| input | workers | examples/s | views/s | speed-up | examples per CPU-second | peak RSS (GiB) |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for name, w, result in rows:
        base = next(r for n, k, r in rows if n == name and k == workers[0])
        lines.append(
            f"| {name} | {w} | {result['rate']:.0f} | {2 * result['rate']:.0f} | "
            f"{result['rate'] / base['rate']:.2f}x | {result['per_cpu_s']:.0f} | "
            f"{result['peak_gib']:.2f} |"
        )
    one = next(r for n, k, r in rows if k == 1)["per_cpu_s"] if 1 in workers else None
    lines += [
        "",
        f"ResNet-50 on one GPU needs {RESNET50_EXAMPLES_PER_S} examples/s "
        f"({2 * RESNET50_EXAMPLES_PER_S} views/s); the target is >= {TARGET_PER_CORE} examples/s "
        "per core, so a 16-core host feeds >= 6,400 examples/s.",
    ]
    if one is not None:
        lines.append(
            f"Measured: {one:.0f} examples per CPU-second with one worker (image folder, all "
            f"processes' CPU time counted), so 16 free cores would give about {16 * one:.0f} "
            "examples/s if the rate scales per core."
        )
    with open(args.out, "w") as f:
        f.write("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0 if one is None or one >= TARGET_PER_CORE else 1


if __name__ == "__main__":
    sys.exit(main())
