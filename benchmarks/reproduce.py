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

from ssl_jax import config_util, evaluate, optim, parallel, train  # noqa: E402
from ssl_jax.methods import get_method  # noqa: E402


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


def random_init_baseline(args) -> dict:
    """The same encoder, untrained (SimCLR's initialization), through the same protocols."""
    spec = os.path.join(ROOT, "configs", f"simclr_fashion_mnist.py:{args.variant}")
    config = config_util.load_config(spec)
    config_util.apply_overrides(config, [f"data.data_dir={args.data_dir}"])
    start = time.perf_counter()
    mesh = parallel.make_mesh()
    method = get_method(config, num_steps=1, steps_per_epoch=1)
    tx, _ = optim.make_optimizer(train.optimizer_config(config, 1, 2), 2)
    shape = (config.data.image_size, config.data.image_size, config.data.channels)
    state = train.create_train_state(method, tx, jax.random.PRNGKey(config.seed), shape)
    encoder = method.export_encoder(parallel.replicate(state, mesh))
    results = evaluate.evaluate_encoder(config, method, encoder, ("knn", "linear"), mesh=mesh)
    return {
        "method": "random init (no pre-training)",
        "config": f"configs/simclr_fashion_mnist.py:{args.variant}",
        "encoder": config.model.encoder,
        "epochs": 0,
        "batch": 0,
        "knn": results["knn"]["top1"],
        "linear": results["linear"]["top1"],
        "seconds": time.perf_counter() - start,
    }


def table(rows: list[dict], commands: list[str]) -> str:
    lines = [
        "# Fashion-MNIST: self-supervised pre-training, then frozen-feature evaluation",
        "",
        *[f"Command: `{c}`" for c in commands],
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


def _read_commands(path: str) -> list[str]:
    if not os.path.isfile(path):
        return []
    return [
        line.strip()[len("Command: `") : -1] for line in open(path) if line.startswith("Command: `")
    ]


def _read_rows(path: str) -> list[dict]:
    """Rows of a table this script wrote (for --append), parsed back from the markdown."""
    if not os.path.isfile(path):
        return []
    rows = []
    for line in open(path):
        cells = [c.strip().strip("`") for c in line.strip().strip("|").split("|")]
        if len(cells) != 8 or not cells[5].endswith("%"):
            continue
        rows.append(
            {
                "method": cells[0],
                "config": cells[1],
                "encoder": cells[2],
                "epochs": float(cells[3]),
                "batch": int(cells[4]),
                "knn": float(cells[5].rstrip("%")) / 100,
                "linear": float(cells[6].rstrip("%")) / 100,
                "seconds": float(cells[7].split()[0]) * 60,
            }
        )
    return rows


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
    parser.add_argument(
        "--baseline", action="store_true", help="add a row for the untrained encoder first"
    )
    parser.add_argument("--append", action="store_true", help="keep the rows already in --output")
    args = parser.parse_args(argv)
    command = "python benchmarks/reproduce.py " + " ".join(argv or sys.argv[1:])
    rows = _read_rows(args.output) if args.append else []
    commands = (_read_commands(args.output) if args.append else []) + [command]
    todo = (["baseline"] if args.baseline else []) + args.methods.split(",")
    for method in filter(None, todo):
        rows.append(random_init_baseline(args) if method == "baseline" else run(method, args))
        print(json.dumps(rows[-1]), flush=True)
        os.makedirs(os.path.dirname(args.output), exist_ok=True)
        with open(args.output, "w") as f:
            f.write(table(rows, commands))
    print(table(rows, commands))
    failed = [r["method"] for r in rows if r["epochs"] and r["knn"] < args.min_knn]
    if failed:
        print(f"FAIL: kNN top-1 below {args.min_knn}: {failed}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
