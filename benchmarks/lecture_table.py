"""The lecture's table on our data: low-label fine-tuning accuracy after random initialization, after each
self-supervised image method in the registry, and after supervised pre-training on another labelled task.

  python benchmarks/lecture_table.py --data-dir ../shared/data/fashion-mnist --steps 200 \
      --finetune-steps 200 --finetune-learning-rate 3e-3

Downstream task, the same for every row: Fashion-MNIST classes 5-9 (Sandal, Shirt, Sneaker, Bag, Ankle
boot; 30,000 train / 5,000 test images), fine-tuned end to end with a new linear head on a class-balanced
1% or 10% of its training labels (ssl_jax.transfer.finetune's "finetune_1pct" / "finetune_10pct"), scored on its
whole test split. Pre-training, `--steps` steps of batch `--batch-size` per row:
- self-supervised methods: every method of ssl_jax.methods.METHODS that trains on images alone and has a
  `configs/<method>_fashion_mnist.py` with a CPU-sized variant (`small_cnn`, else `cpu`, else a main
  recipe on the small CNN), on all 60,000
  unlabelled training images;
- supervised: configs/supervised_fashion_mnist.py, a classifier on the labels of classes 0-4 only (the
  R-CNN recipe: another labelled task; no downstream label is seen);
- random init: the small CNN, untrained (fine-tuning from scratch).
Each row is pre-trained once and fine-tuned once per `--seeds` seed (config.eval.finetune_seeds: the
labelled subset and the batch order change with it); the table gives mean ± sample std over the seeds.
Each row's workdir is runs/lecture_table/<row>; its result is kept in row.json there, so a re-run skips
rows finished with the same settings, and a row whose pre-training is finished with the same config only
fine-tunes again. Writes benchmarks/results/lecture_table.md after every row.
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
import ml_collections  # noqa: E402
import numpy as np  # noqa: E402

from ssl_jax import checkpoint, config_util, parallel, train  # noqa: E402
from ssl_jax.method_inputs import build_method  # noqa: E402
from ssl_jax.methods import METHODS, method_class  # noqa: E402
from ssl_jax.transfer import evaluate  # noqa: E402

DOWNSTREAM_CLASSES = (5, 6, 7, 8, 9)
PROTOCOLS = ("finetune_1pct", "finetune_10pct")
VARIANTS = ("small_cnn", "cpu", "")  # CPU-sized variants, in order of preference
# Methods that cannot pre-train on Fashion-MNIST at all, and why.
NOT_APPLICABLE = {
    "colorization": "it predicts colour from lightness and Fashion-MNIST is grayscale; its offline "
    "run on colour photographs is in benchmarks/results/pretext.md",
}
RANDOM, SUPERVISED = "random init (no pre-training)", "supervised (classes 0-4)"


def machine() -> str:
    dev = jax.devices()[0]
    return (
        f"{jax.device_count()} x {dev.device_kind} ({dev.platform}), {os.cpu_count()} CPU cores "
        f"(load average {os.getloadavg()[0]:.1f} when the table was written), jax {jax.__version__}, "
        f"python {platform.python_version()}"
    )


def image_methods() -> tuple[list[tuple[str, str]], list[str]]:
    """([(method, config spec)], [methods left out, with why]) for the self-supervised image methods."""
    found, missing = [], []
    for name in sorted(METHODS):
        if name == "supervised" or method_class(name).batch_keys != ("image",):
            continue
        path = os.path.join(ROOT, "configs", f"{name}_fashion_mnist.py")
        if name in NOT_APPLICABLE:
            missing.append(f"{name} ({NOT_APPLICABLE[name]})")
            continue
        if not os.path.isfile(path):
            missing.append(f"{name} (no configs/{name}_fashion_mnist.py)")
            continue
        for variant in VARIANTS:
            try:
                config = config_util.load_config(f"{path}:{variant}" if variant else path)
            except ValueError:
                continue
            if variant or config.model.encoder == "small_cnn":  # a main recipe already CPU-sized
                found.append(
                    (name, f"configs/{name}_fashion_mnist.py{':' * bool(variant)}{variant}")
                )
                break
        else:
            missing.append(f"{name} (no CPU-sized variant of configs/{name}_fashion_mnist.py)")
    return found, missing


def load(spec: str, args) -> ml_collections.ConfigDict:
    config = config_util.load_config(os.path.join(ROOT, spec))
    config_util.apply_overrides(
        config,
        [
            f"data.data_dir={args.data_dir}",
            f"num_steps={args.steps}",
            f"batch_size={args.batch_size}",
            "eval_every_steps=0",
            f"checkpoint_every_steps={10**9}",
            "eval.protocols=()",  # the downstream protocols run below, on the downstream task
        ],
    )
    return config


def downstream(config: ml_collections.ConfigDict, args) -> ml_collections.ConfigDict:
    """The pre-training config, pointed at the downstream task with the fine-tuning budget."""
    config = ml_collections.ConfigDict(config.to_dict())
    base = "fashion_mnist" if config.data.name == "class_subset" else config.data.name
    config.data.name = "class_subset"
    config.data.base = base
    config.data.classes = DOWNSTREAM_CLASSES
    config.data.num_classes = len(DOWNSTREAM_CLASSES)
    config.eval.finetune_steps = args.finetune_steps
    config.eval.finetune_batch_size = args.finetune_batch_size
    config.eval.finetune_learning_rate = args.finetune_learning_rate
    # One fine-tuning per seed, each on its own labelled subset and batch order (ssl_jax.transfer.finetune).
    config.eval.finetune_seeds = tuple(args.seeds)
    return config


def encoder_name(config: ml_collections.ConfigDict) -> str:
    """The network fine-tuned in a row: config.model.encoder, except for methods that bring their own."""
    if config.method == "cpc":
        return f"CPC patch-grid CNN + GRU ({config.cpc.get('features') or 'default'} features)"
    return config.model.encoder


def settings(args) -> dict:
    """What a finished row depends on besides its config: a row made with other values is re-run."""
    return {
        "data_dir": os.path.abspath(args.data_dir),
        "steps": args.steps,
        "batch_size": args.batch_size,
        "finetune_steps": args.finetune_steps,
        "finetune_batch_size": args.finetune_batch_size,
        "finetune_learning_rate": args.finetune_learning_rate,
        "seeds": list(args.seeds),
    }


def pretrained(workdir: str, config: ml_collections.ConfigDict) -> bool:
    """Whether `workdir` holds this config's finished pre-training, so a row re-run for other
    fine-tuning settings only fine-tunes."""
    path = os.path.join(workdir, config_util.CONFIG_FILE)
    if not os.path.isfile(path):
        return False
    with open(path) as f:
        saved = json.load(f)
    if saved.get("num_steps") != config.num_steps or config_util.config_differences(
        saved, config_util.to_dict(config)
    ):
        return False
    ckpt = checkpoint.Checkpointer(workdir)
    try:
        return ckpt.latest_step() == config.num_steps
    finally:
        ckpt.close()


def run_row(label: str, spec: str, args, mesh) -> dict:
    workdir = os.path.join(args.workdir, label.split(" ")[0])
    done = os.path.join(workdir, "row.json")
    previous = {}
    if os.path.isfile(done):
        with open(done) as f:
            previous = json.load(f)
        if previous.get("settings") == settings(args):
            return previous
        print(f"{done} was made with other settings ({previous.get('settings')}); re-running")
    config = load(spec, args)
    start = time.perf_counter()
    if label == RANDOM:
        config.eval.finetune_random_init = True
        encoder, steps, pretrain_minutes = None, 0, 0.0
    else:
        if pretrained(workdir, config):
            print(f"{workdir}: pre-training already done; fine-tuning only", flush=True)
            pretrain_minutes = previous.get("pretrain_minutes")
        else:
            if train.pretrain(config, workdir, overwrite=True).get("preempted"):
                # Its checkpoint is saved; going on to fine-tune a half-trained row would be wrong.
                raise SystemExit(
                    f"{label}: pre-training stopped by a signal; re-run to redo this row."
                )
            pretrain_minutes = (time.perf_counter() - start) / 60
        encoder, _ = checkpoint.load_encoder(workdir)
        steps = args.steps
    method = build_method(config)
    start = time.perf_counter()
    results = evaluate.evaluate_encoder(
        downstream(config, args), method, encoder, PROTOCOLS, mesh=mesh
    )
    row = {
        "method": label,
        "config": spec,
        "encoder": encoder_name(config),
        "steps": steps,
        "batch": args.batch_size if steps else 0,
        "seeds": list(args.seeds),
        "top1": {p: results[p]["top1_per_seed"] for p in PROTOCOLS},
        "train_examples": {p: results[p]["train_examples"] for p in PROTOCOLS},
        "finetune_steps": {p: results[p]["steps"] for p in PROTOCOLS},
        "settings": settings(args),
        "pretrain_minutes": pretrain_minutes,
        "finetune_minutes": (time.perf_counter() - start) / 60,
    }
    os.makedirs(workdir, exist_ok=True)
    with open(done, "w") as f:
        json.dump(row, f, indent=2)
    return row


def mean_std(values: list[float]) -> str:
    """Accuracies as "mean ± sample std" in percent (the mean alone for one seed)."""
    x = 100 * np.asarray(values)
    if len(x) == 1:
        return f"{x[0]:.2f}"
    return f"{x.mean():.2f} ± {x.std(ddof=1):.2f}"


def markdown(
    rows: list[dict], missing: list[str], command: str, args, pending: list[str] = ()
) -> str:
    ft = rows[0] if rows else None
    lines = [
        "# The lecture's table on Fashion-MNIST: low-label fine-tuning after each kind of pre-training",
        "",
        f"Command: `{command}`",
        "",
        f"Machine: {machine()}",
        "",
        f"Downstream task: Fashion-MNIST classes {DOWNSTREAM_CLASSES} (Sandal, Shirt, Sneaker, Bag, "
        "Ankle boot), relabelled 0-4; fine-tuned end to end (encoder + new linear head, AdamW) on a "
        "class-balanced 1% or 10% of its 30,000 training labels, top-1 on its 5,000 test images.",
        f"Pre-training: {args.steps} steps of batch {args.batch_size} "
        f"({args.steps * args.batch_size / 60000:.2f} epochs of the 60,000 training images) per row; "
        "self-supervised rows use no labels, the supervised row uses only the labels of classes 0-4 "
        "(disjoint from the downstream classes).",
    ]
    if ft:
        seeds = ", ".join(str(seed) for seed in args.seeds)
        lines.append(
            f"Fine-tuning: {args.finetune_steps} steps of batch {args.finetune_batch_size}, learning rate "
            f"{args.finetune_learning_rate:g}, on {ft['train_examples']['finetune_1pct']} (1%) / "
            f"{ft['train_examples']['finetune_10pct']} (10%) labelled images; repeated for "
            f"`finetune_seeds` {seeds} (each its own class-balanced labelled subset and batch order; "
            "the zero-initialized head, and for random init the encoder, start from the row's "
            "config seed) over one pre-training, reported as mean ± sample std over the seeds."
        )
    lines += [
        "",
        "| pre-training | config | encoder | steps | 1% labels top-1 | 10% labels top-1 | "
        "pre-training time | fine-tuning time |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for r in rows:
        pretrain = r.get("pretrain_minutes")
        lines.append(
            f"| {r['method']} | `{r['config']}` | {r['encoder']} | {r['steps']} | "
            f"{mean_std(r['top1']['finetune_1pct'])}% | {mean_std(r['top1']['finetune_10pct'])}% | "
            f"{'-' if pretrain is None else f'{pretrain:.1f} min'} | "
            f"{r['finetune_minutes']:.1f} min |"
        )
    if pending:
        lines += ["", "Still to run (re-run the command to resume): " + ", ".join(pending) + "."]
    if missing:
        lines += ["", "Not in this table: " + "; ".join(missing) + "."]
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data-dir", required=True, help="the four Fashion-MNIST IDX files")
    parser.add_argument("--steps", type=int, default=200, help="pre-training steps per row")
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--finetune-steps", type=int, default=150)
    parser.add_argument("--finetune-batch-size", type=int, default=128)
    parser.add_argument("--finetune-learning-rate", type=float, default=1e-3)
    parser.add_argument(
        "--seeds",
        type=lambda text: tuple(int(seed) for seed in text.split(",")),
        default=(0, 1, 2),
        help="fine-tuning seeds, comma-separated: each row is fine-tuned once per seed",
    )
    parser.add_argument("--methods", default="", help="comma-separated subset (default: all found)")
    parser.add_argument("--workdir", default=os.path.join(ROOT, "runs", "lecture_table"))
    parser.add_argument(
        "--output", default=os.path.join(ROOT, "benchmarks", "results", "lecture_table.md")
    )
    args = parser.parse_args(argv)
    command = "python benchmarks/lecture_table.py " + " ".join(
        sys.argv[1:] if argv is None else argv
    )
    ssl, missing = image_methods()
    if args.methods:
        wanted = set(args.methods.split(","))
        missing += [f"{m} (not requested)" for m, _ in ssl if m not in wanted]
        ssl = [(m, s) for m, s in ssl if m in wanted]
    plan = [
        (RANDOM, "configs/simclr_fashion_mnist.py:small_cnn"),
        (SUPERVISED, "configs/supervised_fashion_mnist.py"),
        *ssl,
    ]
    notes = kept_notes(args.output)
    mesh = parallel.make_mesh()
    rows = []
    for i, (label, spec) in enumerate(plan):
        print(f"--- {label}: {spec}", flush=True)
        rows.append(run_row(label, spec, args, mesh))
        pending = [name for name, _ in plan[i + 1 :]]
        with open(args.output, "w") as f:
            f.write(markdown(rows, missing, command, args, pending) + notes)
    print(markdown(rows, missing, command, args))
    return 0


def kept_notes(path: str) -> str:
    """The hand-written "Notes" section that ends an earlier table at `path` ("" if none), so that
    re-running the script rewrites the numbers but keeps the reading of them."""
    if not os.path.isfile(path):
        return ""
    with open(path) as f:
        text = f.read()
    start = text.find("\nNotes (")
    return text[start:] if start >= 0 else ""


if __name__ == "__main__":
    sys.exit(main())
