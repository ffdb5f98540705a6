"""Pre-trains a list of method configs on one dataset, runs every evaluation protocol on each, and writes
the results: one table per protocol (with the published number beside ours where one exists), the
command and the machine, and PNG plots (loss curves, kNN accuracy over training, a 2-D PCA projection of
the test features).

  python benchmarks/reproduce.py --data-dir ../shared/data/fashion-mnist --variant small_cnn \
      --epochs 1 --finetune-steps 100 --baseline \
      --methods simclr,byol,simsiam,barlow_twins,vicreg,dino,moco_v2,moco_v3,simclr_vicreg

Each method runs `configs/<method>_<dataset>.py:<variant>` through `ssl_jax.train.pretrain` into
runs/reproduce/<dataset>/<method>, so a re-run resumes finished work instead of repeating it. `--variant ''`
selects the configs' main recipe (ResNet-18 for Fashion-MNIST and CIFAR-10): a GPU job.

Budget flags: --epochs (pre-training epochs of the train split), --batch-size, --finetune-steps (optimizer
steps of each fine-tuning protocol; 0 keeps the config's eval.finetune_epochs), --knn-every (kNN on the
test split every N pre-training steps, for the curve; 0: half an epoch). --baseline adds the untrained
encoder (random initialization) through the same protocols: for the fine-tuning protocols this is the
from-scratch baseline that pre-training is compared against.

Writes benchmarks/results/<dataset>.md (tables; any text after the `<!-- notes -->` line of an existing file
is kept), <dataset>.json (the rows, read back by --append) and <dataset>_{loss,knn,pca}.png.

--compare-peer puts the PyTorch peer beside each method instead (benchmarks/peers/lightly_fashion_mnist.py,
lightly 1.6, run as a subprocess with the same backbone, batch, epochs and the same kNN and linear-probe
code): one table per protocol (random init, ssl_jax, the peer) and one of pre-training wall time and rate,
written to benchmarks/results/<dataset>_<backbone>.md. Pre-training is timed without any evaluation in it
(compilation and data loading included, as the peer's is), then the protocols run on the saved encoder.

  python benchmarks/reproduce.py --compare-peer --data-dir ../shared/data/fashion-mnist \
      --variant small_cnn --methods simclr --epochs 3 --batch-size 256 --protocols knn,linear
"""

from __future__ import annotations

import argparse
import ast
import json
import os
import platform
import re
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

import jax  # noqa: E402
import numpy as np  # noqa: E402

from ssl_jax import (  # noqa: E402
    checkpoint,
    config_util,
    data,
    optim,
    parallel,
    reporting,
    train,
)
from ssl_jax.data.common import RowsSource  # noqa: E402
from ssl_jax.method_inputs import build_method  # noqa: E402
from ssl_jax.transfer import evaluate, probes  # noqa: E402

DEFAULT_METHODS = "simclr,byol,simsiam,barlow_twins,vicreg,dino,moco_v2,moco_v3,simclr_vicreg"
DEFAULT_PROTOCOLS = "knn,linear,finetune_1pct,finetune_10pct"
BASELINE = "random init"
NOTES_MARKER = "<!-- notes -->"
PCA_POINTS = 2000  # test images in the projection plot

PROTOCOL_TEXT = {
    "knn": "kNN: cosine similarity, k and T from config.eval (20, 0.07), weighted vote over all training "
    "features.",
    "linear": "Linear probe: softmax regression on frozen, standardized features; L2 chosen on a held-out "
    "10% of the training split, never on the test split.",
    "finetune": "Fine-tuning: encoder + new linear head, all training labels (AdamW, warm-up + cosine, "
    "random-resized-crop + flip, BN in training mode).",
    "finetune_10pct": "Fine-tuning on 10% of the training labels (class-balanced subset fixed by the seed).",
    "finetune_1pct": "Fine-tuning on 1% of the training labels (class-balanced subset fixed by the seed).",
}


def machine() -> str:
    dev = jax.devices()[0]
    return (
        f"{jax.device_count()} x {dev.device_kind} ({dev.platform}), {os.cpu_count()} CPU cores, "
        f"jax {jax.__version__}, python {platform.python_version()}"
    )


def published(method: str, dataset: str, protocol: str) -> str:
    """The published number a config's docstring quotes ("reports 92.58% top-1"), for the linear
    protocol (solo-learn's numbers come from its online linear classifier); "—" where none exists."""
    path = os.path.join(ROOT, "configs", f"{method}_{dataset}.py")
    if protocol != "linear" or not os.path.isfile(path):
        return "—"
    with open(path) as f:
        doc = ast.get_docstring(ast.parse(f.read())) or ""
    match = re.search(r"reports\s+(\d+(?:\.\d+)?)%[^.%]{0,40}?top-1", doc)
    if not match:
        return "—"
    source = (
        "solo-learn"
        if "solo-learn" in doc[max(0, match.start() - 200) : match.start()]
        else "paper"
    )
    return f"{match.group(1)}% ({source})"


def config_file(method: str, args) -> str:
    return os.path.join(ROOT, "configs", f"{method}_{args.dataset}.py")


def config_spec(method: str, args) -> tuple[str, str]:
    rel = f"configs/{method}_{args.dataset}.py:{args.variant}"
    return os.path.join(ROOT, rel), rel


def load(method: str, args):
    spec, _ = config_spec(method, args)
    config = config_util.load_config(spec)
    overrides = [
        f"num_epochs={args.epochs}",
        f"batch_size={args.batch_size}",
        f"checkpoint_every_steps={10**9}",
        f"eval.protocols={tuple(args.protocols)!r}",
    ]
    if args.data_dir:
        overrides.append(f"data.data_dir={args.data_dir}")
    if args.finetune_steps:
        overrides.append(f"eval.finetune_steps={args.finetune_steps}")
    config_util.apply_overrides(config, overrides)
    return config


def test_features(config, method, encoder, mesh) -> tuple[np.ndarray, np.ndarray]:
    """Features and labels of the first PCA_POINTS test images."""
    source = data.get_source(config.data, "test")
    source = RowsSource(source, np.arange(min(PCA_POINTS, len(source))))
    batch = max(
        parallel.num_shards(mesh), 512 // parallel.num_shards(mesh) * parallel.num_shards(mesh)
    )
    return probes.extract_features(
        method.encode,
        encoder,
        data.eval_batches(source, batch, keys=(method.batch_keys[0], "label")),
        mesh=mesh,
        input_key=method.batch_keys[0],
    )


def row(method: str, args, config, results: dict, seconds: float, epochs: float) -> dict:
    _, rel = config_spec(method if method != BASELINE else "simclr", args)
    return {
        "method": method,
        "config": rel,
        "encoder": config.model.encoder,
        "epochs": epochs,
        "batch": config.batch_size if epochs else 0,
        "top1": {p: results[p]["top1"] for p in args.protocols if "top1" in results.get(p, {})},
        "details": {p: results[p] for p in args.protocols if p in results},
        "seconds": seconds,
    }


def run(method: str, args, mesh) -> dict:
    config = load(method, args)
    steps_per_epoch = len(data.get_source(config.data, "train")) // config.batch_size
    config.eval_every_steps = args.knn_every or max(1, steps_per_epoch // 2)
    workdir = os.path.join(args.workdir, args.dataset, method)
    start = time.perf_counter()
    results = train.pretrain(config, workdir)
    if results.get("preempted"):
        raise SystemExit(f"{method}: pre-training stopped by a signal; re-run to resume.")
    seconds = time.perf_counter() - start
    encoder, _ = checkpoint.load_encoder(workdir)
    x, y = test_features(config, build_method(config), encoder, mesh)
    np.savez(os.path.join(workdir, "test_features.npz"), features=x, labels=y)
    return row(method, args, config, results, seconds, args.epochs)


def random_init_baseline(args, mesh) -> dict:
    """SimCLR's encoder, untrained, through the same protocols (fine-tuning = training from scratch)."""
    config = load("simclr", args)
    start = time.perf_counter()
    method = build_method(config, num_steps=1, steps_per_epoch=1)
    tx, _ = optim.make_optimizer(train.optimizer_config(config, 1, 2), 2)
    shape = data.example_shape(data.get_source(config.data, "train"), method.batch_keys[0])
    state = train.create_train_state(method, tx, jax.random.PRNGKey(config.seed), shape)
    encoder = method.export_encoder(parallel.replicate(state, mesh))
    results = evaluate.evaluate_encoder(config, method, encoder, tuple(args.protocols), mesh=mesh)
    seconds = time.perf_counter() - start
    workdir = os.path.join(args.workdir, args.dataset, "random_init")
    os.makedirs(workdir, exist_ok=True)
    x, y = test_features(config, method, jax.device_get(encoder), mesh)
    np.savez(os.path.join(workdir, "test_features.npz"), features=x, labels=y)
    return row(BASELINE, args, config, results, seconds, 0.0)


# --------------------------------------------------------------------------- ssl_jax beside the peer

PEER_SCRIPT = os.path.join(ROOT, "benchmarks", "peers", "lightly_fashion_mnist.py")


def backbone_of(args) -> str:
    """The peer's backbone for the configs' variant: the small CNN, or the main recipe's ResNet-18."""
    return "small_cnn" if args.variant == "small_cnn" else "resnet18"


def run_timed(method: str, args, mesh) -> dict:
    """ssl_jax: pre-training alone, timed (no evaluation inside it), then the protocols on the
    saved encoder."""
    config = load(method, args)
    config.eval_every_steps = 0
    protocols = tuple(args.protocols)
    config.eval.protocols = ()
    workdir = os.path.join(args.workdir, args.dataset, f"{method}_vs_peer")
    start = time.perf_counter()
    results = train.pretrain(config, workdir)
    seconds = time.perf_counter() - start
    if results.get("preempted"):
        raise SystemExit(f"{method}: pre-training stopped by a signal; re-run to resume.")
    steps = int(results["step"])
    scores = evaluate.evaluate_workdir(workdir, protocols)
    rates = [r["images_per_sec"] for r in reporting.read_metrics(workdir) if "images_per_sec" in r]
    return {
        "library": f"ssl_jax (jax {jax.__version__})",
        "method": method,
        "config": config_spec(method, args)[1],
        "epochs": args.epochs,
        "batch": config.batch_size,
        "top1": {p: scores[p]["top1"] for p in protocols if "top1" in scores.get(p, {})},
        "pretrain_seconds": seconds,
        "images_per_second": steps * config.batch_size / seconds,
        "steady_images_per_second": float(np.median(rates)) if rates else None,
    }


def run_peer(method: str, args) -> dict:
    """The peer's run of `method` in its own process (its own threads and data-loading workers)."""
    out = os.path.join(args.workdir, args.dataset, f"{method}_peer")
    command = [
        sys.executable,
        PEER_SCRIPT,
        f"--data-dir={args.data_dir}",
        f"--method={method}",
        f"--backbone={backbone_of(args)}",
        f"--batch-size={args.batch_size}",
        f"--epochs={args.epochs}",
        f"--out={out}",
        *args.peer_args,
    ]
    subprocess.run(command, check=True)
    with open(os.path.join(out, "result.json")) as f:
        peer = json.load(f)
    peer["config"] = "benchmarks/peers/lightly_fashion_mnist.py"
    peer["images_per_second"] = peer["steps"] * peer["batch_size"] / peer["pretrain_seconds"]
    return {**peer, "batch": peer["batch_size"]}


def random_init_row(args, mesh) -> dict:
    base = random_init_baseline(args, mesh)
    return {**base, "library": f"ssl_jax (jax {jax.__version__})", "pretrain_seconds": None}


def peer_markdown(rows: list[dict], commands: list[str], args, notes: str) -> str:
    lines = [
        *report_head(
            f"{backbone_of(args)}: ssl_jax beside the PyTorch peer at equal budget", commands, args
        ),
        "Both libraries pre-train the same backbone and heads (sizes from the ssl_jax config) with "
        "the same batch and epochs on the full training split; both encoders are then scored by "
        "the same ssl_jax kNN and linear-probe code on the test split. The peer's recipe is "
        "lightly's own (benchmarks/peers/lightly_fashion_mnist.py); ssl_jax's is the config named.",
        "",
    ]
    for protocol in [p for p in args.protocols if any(p in r["top1"] for r in rows)]:
        lines += [
            f"## {protocol}",
            "",
            PROTOCOL_TEXT.get(protocol, ""),
            "",
            "| encoder | library | config | epochs | batch | top-1 |",
            "| --- | --- | --- | --- | --- | --- |",
        ]
        for r in rows:
            if protocol in r["top1"]:
                lines.append(
                    f"| {r['method']} | {r['library']} | `{r['config']}` | {r['epochs']:g} | "
                    f"{r['batch'] or '—'} | {100 * r['top1'][protocol]:.2f}% |"
                )
        lines.append("")
    lines += [
        "## Pre-training wall time",
        "",
        "Seconds from the start of pre-training to its last step (compilation and data loading "
        "included; no evaluation), and the examples (images) per second that gives.",
        "",
        "| method | library | seconds | images/s |",
        "| --- | --- | --- | --- |",
    ]
    for r in rows:
        if r.get("pretrain_seconds"):
            lines.append(
                f"| {r['method']} | {r['library']} | {r['pretrain_seconds']:.0f} | "
                f"{r['images_per_second']:,.0f} |"
            )
    lines += ["", NOTES_MARKER]
    return "\n".join(lines) + "\n" + notes


def compare_peer(args, methods: list[str], command: str) -> int:
    args.output = args.output or os.path.join(
        ROOT, "benchmarks", "results", f"{args.dataset}_{backbone_of(args)}.md"
    )
    rows_path = os.path.splitext(args.output)[0] + ".json"
    notes = _notes(args.output)
    saved = {"commands": [], "rows": []}
    if args.append and os.path.isfile(rows_path):
        with open(rows_path) as f:
            saved = json.load(f)
    rows, commands = saved["rows"], [*saved["commands"], command]
    mesh = parallel.make_mesh()
    os.makedirs(os.path.dirname(os.path.abspath(args.output)), exist_ok=True)
    runs = [lambda: random_init_row(args, mesh)] if args.baseline else []
    for method in methods:
        runs += [lambda m=method: run_timed(m, args, mesh), lambda m=method: run_peer(m, args)]
    for fn in runs:
        new = fn()
        same = (new["method"], new["library"].split()[0])
        rows = [r for r in rows if (r["method"], r["library"].split()[0]) != same] + [new]
        print(json.dumps({k: new.get(k) for k in ("method", "library", "top1")}), flush=True)
        with open(rows_path, "w") as f:
            json.dump({"commands": commands, "machine": args.machine, "rows": rows}, f, indent=1)
        with open(args.output, "w") as f:
            f.write(peer_markdown(rows, commands, args, notes))
    print(peer_markdown(rows, commands, args, notes))
    return 0


# ------------------------------------------------------------------------------------------ the report


def report_head(subtitle: str, commands: list[str], args) -> list[str]:
    """A results page's first lines: the dataset and `subtitle`, every command, the machine."""
    title = args.dataset.replace("_", "-")
    commands = [f"Command: `{c}`" for c in commands]
    return [f"# {title}, {subtitle}", "", *commands, "", f"Machine: {args.machine}", ""]


def markdown(rows: list[dict], commands: list[str], args, notes: str) -> str:
    protocols = [p for p in args.protocols if any(p in r["top1"] for r in rows)]
    lines = [
        *report_head(
            "self-supervised pre-training, then every evaluation protocol", commands, args
        ),
        "Top-1 accuracy on the test split. Pre-training budget per row in its epochs column; "
        "fine-tuning budget in the protocol's table. The random-init row is the same encoder untrained.",
        "",
    ]
    for protocol in protocols:
        lines += [f"## {protocol}", "", PROTOCOL_TEXT.get(protocol, ""), ""]
        budget = [r["details"][protocol] for r in rows if "steps" in r["details"].get(protocol, {})]
        if budget:
            b = budget[0]
            lines += [
                f"Budget: {b['steps']} steps of batch {b['batch_size']} on {b['train_examples']} "
                f"labelled images ({b['epochs']:.1f} epochs of the subset), "
                f"{b.get('optimizer', 'adamw')} with peak learning rate {b.get('learning_rate', 1e-3):g} "
                f"(warm-up + cosine), layer decay {b['layer_decay']:g}.",
                "",
            ]
        lines += [
            "| method | config | encoder | epochs | batch | top-1 | published |",
            "| --- | --- | --- | --- | --- | --- | --- |",
        ]
        for r in rows:
            if protocol not in r["top1"]:
                continue
            lines.append(
                f"| {r['method']} | `{r['config']}` | {r['encoder']} | {r['epochs']:g} | "
                f"{r['batch'] or '—'} | {100 * r['top1'][protocol]:.2f}% | "
                f"{published(r['method'], args.dataset, protocol)} |"
            )
        lines.append("")
    lines += [
        "## Wall time (pre-training and all protocols)",
        "",
        "| method | minutes |",
        "| --- | --- |",
        *[f"| {r['method']} | {r['seconds'] / 60:.1f} |" for r in rows],
        "",
        "## Plots",
        "",
        f"![loss curves]({args.dataset}_loss.png)",
        "",
        f"![kNN accuracy over training]({args.dataset}_knn.png)",
        "",
        f"![PCA of the test features]({args.dataset}_pca.png)",
        "",
        NOTES_MARKER,
    ]
    return "\n".join(lines) + "\n" + notes


def plots(rows: list[dict], args) -> list[str]:
    import matplotlib  # here: the backend must be chosen before pyplot is first imported

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out_dir = os.path.dirname(os.path.abspath(args.output))
    base = os.path.join(out_dir, args.dataset)
    workdirs = {
        r["method"]: os.path.join(
            args.workdir, args.dataset, "random_init" if r["method"] == BASELINE else r["method"]
        )
        for r in rows
    }
    trained = [m for m in workdirs if m != BASELINE]
    written = []

    # Loss curves: one panel per method (the losses have different scales).
    cols = min(3, max(1, len(trained)))
    grid_rows = max(1, -(-len(trained) // cols))
    fig, axes = plt.subplots(grid_rows, cols, figsize=(4 * cols, 2.8 * grid_rows), squeeze=False)
    for ax, method in zip(axes.flat, trained, strict=False):
        records = [r for r in reporting.read_metrics(workdirs[method]) if "loss" in r]
        ax.plot([r["step"] for r in records], [r["loss"] for r in records])
        ax.set_title(method)
        ax.set_xlabel("step")
        ax.grid(alpha=0.3)
    for ax in list(axes.flat)[len(trained) :]:
        ax.axis("off")
    fig.suptitle("pre-training loss")
    fig.tight_layout()
    fig.savefig(base + "_loss.png", dpi=90)
    plt.close(fig)
    written.append(base + "_loss.png")

    # kNN accuracy over training, every method on one axes.
    fig, ax = plt.subplots(figsize=(6, 4))
    for method in trained:
        records = [r for r in reporting.read_metrics(workdirs[method]) if "knn_top1" in r]
        ax.plot(
            [r["step"] for r in records], [100 * r["knn_top1"] for r in records], "o-", label=method
        )
    base_row = next((r for r in rows if r["method"] == BASELINE and "knn" in r["top1"]), None)
    if base_row:
        ax.axhline(100 * base_row["top1"]["knn"], color="gray", ls="--", label=BASELINE)
    ax.set_xlabel("pre-training step")
    ax.set_ylabel("kNN top-1 (%)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(base + "_knn.png", dpi=90)
    plt.close(fig)
    written.append(base + "_knn.png")

    # 2-D PCA of the test features, coloured by class.
    have = [m for m in workdirs if os.path.isfile(os.path.join(workdirs[m], "test_features.npz"))]
    cols = min(4, max(1, len(have)))
    grid_rows = max(1, -(-len(have) // cols))
    fig, axes = plt.subplots(grid_rows, cols, figsize=(3 * cols, 3 * grid_rows), squeeze=False)
    for ax, method in zip(axes.flat, have, strict=False):
        with np.load(os.path.join(workdirs[method], "test_features.npz")) as f:
            x, y = f["features"].astype(np.float64), f["labels"]
        x = x - x.mean(axis=0)
        _, _, vt = np.linalg.svd(x, full_matrices=False)
        xy = x @ vt[:2].T
        ax.scatter(xy[:, 0], xy[:, 1], c=y, cmap="tab10", s=2)
        ax.set_title(method, fontsize=9)
        ax.set_xticks([])
        ax.set_yticks([])
    for ax in list(axes.flat)[len(have) :]:
        ax.axis("off")
    fig.suptitle(f"PCA of {PCA_POINTS} test features (colour: class)")
    fig.tight_layout()
    fig.savefig(base + "_pca.png", dpi=90)
    plt.close(fig)
    written.append(base + "_pca.png")
    return written


def _notes(path: str) -> str:
    if not os.path.isfile(path):
        return ""
    text = open(path).read()
    return text.split(NOTES_MARKER, 1)[1].lstrip("\n") if NOTES_MARKER in text else ""


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--methods",
        default=None,
        help=f"comma-separated (default: those of {DEFAULT_METHODS} with a config for the dataset)",
    )
    parser.add_argument("--dataset", default="fashion_mnist", help="configs/<method>_<dataset>.py")
    parser.add_argument("--variant", default="small_cnn", help="config variant ('' = main recipe)")
    parser.add_argument("--data-dir", default="", help="config.data.data_dir (e.g. the IDX files)")
    parser.add_argument("--protocols", default=DEFAULT_PROTOCOLS, help="comma-separated")
    parser.add_argument("--epochs", type=float, default=1.0, help="pre-training epochs")
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument(
        "--finetune-steps", type=int, default=100, help="steps per fine-tuning protocol (0: config)"
    )
    parser.add_argument("--knn-every", type=int, default=0, help="kNN every N steps (0: 1/2 epoch)")
    parser.add_argument("--workdir", default=os.path.join(ROOT, "runs", "reproduce"))
    parser.add_argument("--output", default=None, help="default benchmarks/results/<dataset>.md")
    parser.add_argument("--min-knn", type=float, default=0.5, help="fail if any kNN top-1 is below")
    parser.add_argument("--baseline", action="store_true", help="add the untrained encoder first")
    parser.add_argument(
        "--append", action="store_true", help="keep the rows already in the results"
    )
    parser.add_argument(
        "--compare-peer",
        action="store_true",
        help="pre-train the PyTorch peer (lightly) beside each method; see the module docstring",
    )
    parser.add_argument(
        "--peer-arg",
        dest="peer_args",
        action="append",
        default=[],
        help="an extra flag for the peer script, e.g. --peer-arg=--workers=2 (repeatable)",
    )
    args = parser.parse_args(argv)
    args.protocols = [p for p in args.protocols.split(",") if p]
    args.machine = machine()
    command = "python benchmarks/reproduce.py " + " ".join(
        repr(a) if a == "" else a for a in (sys.argv[1:] if argv is None else argv)
    )
    if args.methods is None:
        methods = [m for m in DEFAULT_METHODS.split(",") if os.path.isfile(config_file(m, args))]
    else:
        methods = [m for m in args.methods.split(",") if m]
    missing = [config_file(m, args) for m in methods if not os.path.isfile(config_file(m, args))]
    if missing:
        parser.error(f"no such config: {', '.join(missing)}")
    if args.compare_peer:
        return compare_peer(args, methods, command)
    args.output = args.output or os.path.join(ROOT, "benchmarks", "results", f"{args.dataset}.md")
    rows_path = os.path.splitext(args.output)[0] + ".json"
    saved = {"commands": [], "rows": []}
    if args.append and os.path.isfile(rows_path):
        with open(rows_path) as f:
            saved = json.load(f)
    rows, commands = saved["rows"], [*saved["commands"], command]
    notes = _notes(args.output)
    mesh = parallel.make_mesh()
    todo = ([BASELINE] if args.baseline else []) + methods
    os.makedirs(os.path.dirname(os.path.abspath(args.output)), exist_ok=True)
    for method in todo:
        new = random_init_baseline(args, mesh) if method == BASELINE else run(method, args, mesh)
        rows = [r for r in rows if r["method"] != method] + [new]
        print(json.dumps({k: new[k] for k in ("method", "top1", "seconds")}), flush=True)
        with open(rows_path, "w") as f:
            json.dump({"commands": commands, "machine": args.machine, "rows": rows}, f, indent=1)
        with open(args.output, "w") as f:
            f.write(markdown(rows, commands, args, notes))
        plots(rows, args)
    print(markdown(rows, commands, args, notes))
    failed = [r["method"] for r in rows if r["epochs"] and r["top1"].get("knn", 1.0) < args.min_knn]
    if failed:
        print(f"FAIL: kNN top-1 below {args.min_knn}: {failed}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
