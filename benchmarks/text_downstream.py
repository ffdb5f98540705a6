"""Pre-trains text methods on a corpus of labelled .txt files and tabulates pre-training and downstream
numbers: validation perplexity (GPT, ELMo) or masked-token accuracy (BERT, BART), kNN and linear probe
on frozen features, and classification fine-tuned from the pre-trained model and from random init.

  python benchmarks/text_downstream.py --data_dir ../shared/data/austen \
      --configs configs/gpt_austen.py configs/bert_austen.py --out benchmarks/results/austen.md

Each config runs `ssl-jax pretrain` into WORKDIR_ROOT/<config name> (resuming a finished run just
re-evaluates); `--append` adds a table (with its command and machine) to the existing file instead of
rewriting it, so methods can be added one at a time. Extra `--config.key=value` arguments go to every run. The script fails when a
number is out of its valid range or the fine-tuned pre-trained model does no better than predicting
the test split's majority class.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import sys
import time

import jax
import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)  # this checkout's ssl_jax, not an installed one

# The pre-training metric each method reports, by eval.json protocol: (key, label, format).
PRETRAIN_METRICS = {
    "perplexity": ("perplexity", "val. perplexity", "{:.1f}"),
    "masked_accuracy": ("masked_accuracy", "val. masked-token acc.", "{:.2%}"),
}
HEADER = (
    "| config | method | steps | pre-training metric | kNN top-1 | linear top-1 | fine-tuned "
    "(pre-trained) | fine-tuned (random init) | pretrain+eval time |\n"
    "| --- | --- | --- | --- | --- | --- | --- | --- | --- |\n"
)


def _pct(results: dict, protocol: str) -> str:
    return f"{results[protocol]['top1']:.2%}" if protocol in results else "-"


def run_one(config_spec: str, data_dir: str, workdir_root: str, overrides: list[str]) -> tuple:
    from ssl_jax import cli, config_util

    name = os.path.splitext(os.path.basename(config_spec.split(":")[0]))[0]
    if ":" in config_spec:
        name += "_" + config_spec.split(":")[1]
    workdir = os.path.join(workdir_root, name)
    argv = [
        "pretrain",
        "--config",
        config_spec,
        "--workdir",
        workdir,
        f"--config.data.data_dir={data_dir}",
        *overrides,
    ]
    start = time.perf_counter()
    if cli.main(argv) != 0:
        raise SystemExit(f"ssl-jax {' '.join(argv)} failed")
    seconds = time.perf_counter() - start
    with open(os.path.join(workdir, "eval.json")) as f:
        results = json.load(f)
    config = config_util.load_saved(workdir)
    return name, config, results, seconds


def check(name: str, config, results: dict) -> None:
    """Valid ranges, and fine-tuning from the pre-trained model above the majority-class rate."""
    chance = 1.0 / config.data.num_classes
    for protocol, r in results.items():
        if isinstance(r, dict) and "top1" in r and not 0.0 <= r["top1"] <= 1.0:
            raise SystemExit(f"{name}: {protocol} top1 {r['top1']} out of [0, 1]")
    if "perplexity" in results and not 1.0 <= results["perplexity"]["perplexity"] < math.inf:
        raise SystemExit(f"{name}: perplexity {results['perplexity']} is not a perplexity")
    if "finetune" in results:
        # The bar is the majority class of the test split, not 1 / classes: a model that predicts one
        # novel for every passage scores that much (the novels differ in length).
        from ssl_jax import data

        labels = data.get_source(config.data, "test").get(
            np.arange(len(data.get_source(config.data, "test")))
        )["label"]
        majority = max(chance, float(np.bincount(labels).max() / len(labels)))
        if results["finetune"]["top1"] <= majority + 1e-6:
            raise SystemExit(
                f"{name}: fine-tuned accuracy {results['finetune']['top1']:.4f} is no better than "
                f"predicting the majority class ({majority:.4f}); fine-tune longer."
            )


def row(name: str, config, results: dict, seconds: float) -> str:
    metric = "-"
    for protocol, (key, label, fmt) in PRETRAIN_METRICS.items():
        if protocol in results:
            metric = f"{label} {fmt.format(results[protocol][key])}"
    cells = [
        name,
        config.method,
        str(config.num_steps),
        metric,
        _pct(results, "knn"),
        _pct(results, "linear"),
        _pct(results, "finetune"),
        _pct(results, "finetune_scratch"),
        f"{seconds / 60:.1f} min",
    ]
    return "| " + " | ".join(cells) + " |\n"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data_dir", required=True, help="directory of .txt files, one per class")
    parser.add_argument("--configs", nargs="+", required=True, help="config files[:variant]")
    parser.add_argument("--workdir_root", default="runs/text_downstream")
    parser.add_argument("--out", default="benchmarks/results/austen.md")
    parser.add_argument("--append", action="store_true", help="add rows to an existing table")
    parser.add_argument("--machine", default=None, help="how to describe the machine in the table")
    args, overrides = parser.parse_known_args(argv)
    bad = [o for o in overrides if not o.startswith("--config.")]
    if bad:
        parser.error(f"unrecognized arguments: {bad}")

    machine = args.machine or (
        f"{platform.machine()} {os.cpu_count()} CPU cores, {jax.devices()[0].platform}, "
        f"jax {jax.__version__}"
    )
    command = "python " + " ".join(["benchmarks/text_downstream.py", *sys.argv[1:]])
    rows = []
    for spec in args.configs:
        name, config, results, seconds = run_one(spec, args.data_dir, args.workdir_root, overrides)
        check(name, config, results)
        rows.append(row(name, config, results, seconds))
        print(rows[-1], end="", flush=True)

    new_file = not (args.append and os.path.isfile(args.out))
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    with open(args.out, "w" if new_file else "a") as f:
        if new_file:
            f.write(
                "# Text pre-training and downstream classification\n\n"
                "Which of the six novels a passage of 64 BPE tokens comes from (6 classes; chance "
                "16.7%), on held-out contiguous blocks of each novel (ssl_jax.data.text). "
                "Fine-tuning trains the whole model and a linear head on the labelled train split; "
                "`random init` is the same recipe without pre-training.\n\n"
            )
        f.write(HEADER)
        f.writelines(rows)
        f.write(f"\nCommand: `{command}`  \nMachine: {machine}\n\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
