"""Regenerates ssl_jax/data/embedded/fashion_mnist_subset.npz from the Fashion-MNIST IDX files.

    python benchmarks/make_embedded_data.py --src /usr/share/datasets/fashion-mnist

Picks `--train-per-class` and `--test-per-class` examples of each class with a fixed seed, keeps
them in their original order, and fails if the file exceeds `--max-bytes` (the package budget).
"""

from __future__ import annotations

import argparse
import os
import sys

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)  # run as a script from a checkout, installed or not

from ssl_jax.data.sources import EMBEDDED_PATH, fashion_mnist  # noqa: E402

DEFAULT_SOURCES = (
    os.path.join(ROOT, "..", "shared", "data", "fashion-mnist"),
    "/usr/share/datasets/fashion-mnist",
)


def balanced_subset(labels: np.ndarray, per_class: int, seed: int) -> np.ndarray:
    """Sorted indices of `per_class` examples of each class, drawn without replacement."""
    rng = np.random.default_rng(seed)
    chosen = [
        rng.choice(np.flatnonzero(labels == c), per_class, replace=False)
        for c in range(int(labels.max()) + 1)
    ]
    return np.sort(np.concatenate(chosen))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--src",
        help="directory of the four IDX files (default: first found of "
        + ", ".join(DEFAULT_SOURCES)
        + ")",
    )
    parser.add_argument("--out", default=EMBEDDED_PATH)
    parser.add_argument("--train-per-class", type=int, default=900)
    parser.add_argument("--test-per-class", type=int, default=200)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--max-bytes", type=int, default=5_000_000)
    args = parser.parse_args()
    src = args.src or next((d for d in DEFAULT_SOURCES if os.path.isdir(d)), DEFAULT_SOURCES[-1])

    arrays = {}
    for split, per_class, seed in (
        ("train", args.train_per_class, args.seed),
        ("test", args.test_per_class, args.seed + 1),
    ):
        source = fashion_mnist(src, split)
        keep = balanced_subset(source.labels, per_class, seed)
        arrays[f"{split}_images"] = source.images[keep, :, :, 0]
        arrays[f"{split}_labels"] = source.labels[keep].astype(np.uint8)
    np.savez_compressed(args.out, **arrays)

    size = os.path.getsize(args.out)
    counts = {k: len(v) for k, v in arrays.items() if k.endswith("labels")}
    print(f"wrote {args.out}: {size:,} bytes, {counts}")
    if size > args.max_bytes:
        sys.exit(f"{size:,} bytes exceeds --max-bytes={args.max_bytes:,}: lower the counts")


if __name__ == "__main__":
    main()
