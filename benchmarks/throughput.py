"""Throughput of the whole pre-training step (on-device augmentation or masking, forward, backward,
optimizer update), and the achieved TFLOP/s and MFU from analytic FLOP counts.

Inputs of the stated size are already on the host (uint8 images, int32 tokens); each timed step ships its
batch to the devices (as training does), and the clock stops on the blocked result, after warm-up. Writes
benchmarks/results/throughput.md with the device, driver and library versions.

  python benchmarks/throughput.py                      # every case, on whatever devices exist
  python benchmarks/throughput.py --cases simclr_r18_cifar --steps 5 --batch-scale 0.0625   # a quick look
  python benchmarks/throughput.py --cases simclr_r18_fmnist --data-dir ../shared/data/fashion-mnist \
      --checkpoint-every 10        # + the real-data rate and the cost of asynchronous checkpoints
  python benchmarks/throughput.py --cases simclr_r18_cifar,simclr_r50_224 --profile runs/profiles
                                   # + jax.profiler traces, time by HLO instruction and kind

The pieces live in benchmarks/throughput_lib/: flops.py (the analytic FLOP and parameter counts, their
derivation in its docstring, and the peak table for MFU), cases.py (the cases), runner.py (timing a case),
profile.py (jax.profiler traces sorted by HLO instruction) and tables.py (the markdown page).
MFU = achieved FLOP/s / (devices x the device's peak dense bf16 FLOP/s). benchmarks/ablations.py times
the SimCLR cases beside their ablations, a plain flax + optax step and the PyTorch peer.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# The GPU machine runs this file from a bare copy of the repository, where ssl_jax is not installed:
# the checkout goes on the path before ssl_jax (and throughput_lib, which imports it) is imported.
sys.path.insert(0, ROOT)

from throughput_lib import runner, tables  # noqa: E402
from throughput_lib.cases import CASES  # noqa: E402

from ssl_jax import config_util, parallel  # noqa: E402


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--cases", default=",".join(CASES), help="comma-separated case names")
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--batch-scale", type=float, default=1.0, help="scale every case's batch")
    parser.add_argument(
        "--batch", type=int, default=0, help="override every case's examples per step"
    )
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        help="config override for every case, e.g. --set model.dtype=float32 (repeatable)",
    )
    parser.add_argument(
        "--output", default=os.path.join(ROOT, "benchmarks", "results", "throughput.md")
    )
    parser.add_argument(
        "--min-items-per-s", type=float, default=0.0, help="fail below this images/s or tokens/s"
    )
    parser.add_argument(
        "--data-dir",
        default="",
        help="Fashion-MNIST IDX files: cases on Fashion-MNIST are also timed fed from them",
    )
    parser.add_argument(
        "--checkpoint-every",
        type=int,
        default=0,
        help="also time steps around asynchronous checkpoint saves made every N steps",
    )
    parser.add_argument(
        "--profile",
        default="",
        help="also trace steps of each case with jax.profiler into DIR/<case> (TensorBoard/XProf)",
    )
    parser.add_argument("--profile-steps", type=int, default=5)
    args = parser.parse_args(argv)
    mesh = parallel.make_mesh()
    env = runner.environment()
    print("environment:", env, flush=True)
    rows = []
    for name in args.cases.split(","):
        if name not in CASES:
            raise SystemExit(f"unknown case {name!r}; valid: {', '.join(CASES)}")
        case = CASES[name]
        if args.set:
            make = case.config_fn

            def with_overrides(batch, make=make):
                config = make(batch)
                config_util.apply_overrides(config, args.set)
                return config

            case = dataclasses.replace(case, config_fn=with_overrides)
        n = parallel.num_shards(mesh)
        examples = args.batch or max(n, int(case.examples * args.batch_scale) // n * n)
        row = runner.run_case(
            case,
            examples=examples,
            steps=args.steps,
            warmup=args.warmup,
            mesh=mesh,
            data_dir=args.data_dir,
            checkpoint_every=args.checkpoint_every,
            profile_dir=args.profile,
            profile_steps=args.profile_steps,
        )
        print(row, flush=True)
        rows.append(row)
    command = "python " + " ".join([os.path.relpath(__file__, ROOT), *(argv or sys.argv[1:])])
    text = tables.to_markdown(rows, env, command)
    print(text)
    if args.output:
        os.makedirs(os.path.dirname(args.output), exist_ok=True)
        with open(args.output, "w") as f:
            f.write(text)
    slow = [r for r in rows if r["items_per_s"] < args.min_items_per_s]
    if slow:
        print(f"FAIL: below {args.min_items_per_s} items/s: {[r['case'] for r in slow]}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
