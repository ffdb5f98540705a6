"""Pre-trains a list of method configs on one dataset and evaluates each (kNN, linear probe), writing a
results table with the command and the machine.

  python benchmarks/reproduce.py --data-dir ../shared/data/fashion-mnist --variant small_cnn \
      --epochs 2 --methods simclr,byol,simsiam,barlow_twins,vicreg,dino,moco_v2,moco_v3

Each method runs `configs/<method>_fashion_mnist.py:<variant>` through `ssl_jax.train.pretrain` into
runs/reproduce/<method>, so a re-run resumes finished work instead of repeating it. The table goes to
benchmarks/results/fashion_mnist.md (rows are rewritten as each method finishes).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

import jax  # noqa: E402

from ssl_jax import config_util, train  # noqa: E402


def machine() -> str:
    dev = jax.devices()[0]
    return (
        f"{jax.device_count()} x {dev.device_kind} ({dev.platform}), {os.cpu_count()} CPU cores, "
        f"jax {jax.__version__}, python {platform.python_version()}"
    )


def run(method: str, args) -> dict:
    spec = os.path.join(ROOT, "configs", f"{method}_fashion_mnist.py:{args.variant}")
    config = config_util.load_config(spec)
    overrides = [
        f"data.data_dir={args.data_dir}",
        f"num_epochs={args.epochs}",
        f"batch_size={args.batch_size}",
        "eval_every_steps=0",
        f"checkpoint_every_steps={10**9}",
    ]
    config_util.apply_overrides(config, overrides)
    workdir = os.path.join(args.workdir, method)
    start = time.perf_counter()
    results = train.pretrain(config, workdir)
    return {
        "method": method,
        "config": f"configs/{method}_fashion_mnist.py:{args.variant}",
        "encoder": config.model.encoder,
        "epochs": args.epochs,
        "batch": args.batch_size,
        "knn": results["knn"]["top1"],
        "linear": results["linear"]["top1"],
        "seconds": time.perf_counter() - start,
    }


def table(rows: list[dict], command: str) -> str:
    lines = [
        "# Fashion-MNIST: self-supervised pre-training, then frozen-feature evaluation",
        "",
        f"Command: `{command}`",
        "",
        f"Machine: {machine()}",
        "",
        "Full Fashion-MNIST (60,000 train / 10,000 test). kNN: k=20, T=0.07, cosine-weighted vote over all",
        "training features. Linear probe: softmax regression on frozen, standardized features, L2 chosen on a",
        "held-out 10% of the training split. Top-1 accuracy on the test split.",
        "",
        "| method | config | encoder | epochs | batch | kNN top-1 | linear top-1 | wall time |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for r in rows:
        lines.append(
            f"| {r['method']} | `{r['config']}` | {r['encoder']} | {r['epochs']:g} | {r['batch']} | "
            f"{100 * r['knn']:.2f}% | {100 * r['linear']:.2f}% | {r['seconds'] / 60:.1f} min |"
        )
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--methods", default="simclr,byol,simsiam,barlow_twins,vicreg,dino")
    parser.add_argument("--variant", default="small_cnn")
    parser.add_argument("--data-dir", required=True, help="the four Fashion-MNIST IDX files")
    parser.add_argument("--epochs", type=float, default=2.0)
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--workdir", default=os.path.join(ROOT, "runs", "reproduce"))
    parser.add_argument(
        "--output", default=os.path.join(ROOT, "benchmarks", "results", "fashion_mnist.md")
    )
    parser.add_argument("--min-knn", type=float, default=0.5, help="fail if any kNN top-1 is below")
    args = parser.parse_args(argv)
    command = "python benchmarks/reproduce.py " + " ".join(argv or sys.argv[1:])
    rows = []
    for method in args.methods.split(","):
        rows.append(run(method, args))
        print(json.dumps(rows[-1]), flush=True)
        os.makedirs(os.path.dirname(args.output), exist_ok=True)
        with open(args.output, "w") as f:
            f.write(table(rows, command))
    print(table(rows, command))
    failed = [r["method"] for r in rows if r["knn"] < args.min_knn]
    if failed:
        print(f"FAIL: kNN top-1 below {args.min_knn}: {failed}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
