"""`ssl-jax`: parse the command line, load the config, call one library function.

ssl-jax pretrain [--config FILE[:variant]] [--workdir DIR] [--config.key=value ...] [--overwrite]
ssl-jax evaluate --workdir DIR [--protocol NAME ...] [--step N] [--config.key=value ...]
ssl-jax export --workdir DIR --out FILE.safetensors|FILE.npz [--step N]
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence

DEFAULT_WORKDIR = "runs/default"


def _split_overrides(argv: Sequence[str]) -> tuple[list[str], list[str]]:
    """Separates `--config.a.b=v` (or `--config.a.b v`) from the other arguments."""
    rest, overrides = [], []
    argv = list(argv)
    i = 0
    while i < len(argv):
        arg = argv[i]
        if arg.startswith("--config."):
            body = arg[len("--config.") :]
            if "=" not in body:
                if i + 1 >= len(argv):
                    raise SystemExit(f"error: {arg} needs a value (--config.key=value).")
                body = f"{body}={argv[i + 1]}"
                i += 1
            overrides.append(body)
        else:
            rest.append(arg)
        i += 1
    return rest, overrides


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="ssl-jax", description="Self-supervised pre-training and transfer in JAX."
    )
    sub = parser.add_subparsers(dest="command", required=True)
    pre = sub.add_parser(
        "pretrain", help="pre-train a method, then evaluate it (kNN, linear probe)"
    )
    pre.add_argument(
        "--config", default=None, help="FILE.py[:variant] (default: SimCLR, embedded data)"
    )
    pre.add_argument("--workdir", default=DEFAULT_WORKDIR, help=f"default: {DEFAULT_WORKDIR}")
    pre.add_argument(
        "--overwrite", action="store_true", help="start afresh in a workdir holding another run"
    )
    multi = pre.add_argument_group("multi-process runs (one process per host or per GPU)")
    multi.add_argument(
        "--distributed",
        action="store_true",
        help="join a multi-process runtime detected from the environment (Slurm, Open MPI, TPU pod)",
    )
    multi.add_argument("--coordinator_address", default=None, help="host:port of process 0")
    multi.add_argument("--num_processes", type=int, default=None)
    multi.add_argument("--process_id", type=int, default=None)
    ev = sub.add_parser("evaluate", help="evaluate a pre-trained encoder from its workdir")
    ev.add_argument("--workdir", required=True)
    ev.add_argument(
        "--protocol",
        action="append",
        help=(
            "knn, linear, finetune, finetune_10pct, finetune_1pct, or a protocol the method adds; "
            "repeatable (default: config.eval.protocols)"
        ),
    )
    ev.add_argument("--step", type=int, default=None, help="checkpoint step (default: latest)")
    ex = sub.add_parser(
        "export",
        help="write a workdir's encoder to a .safetensors or .npz file (loads without JAX)",
    )
    ex.add_argument("--workdir", required=True)
    ex.add_argument("--out", required=True, help="FILE.safetensors or FILE.npz")
    ex.add_argument("--step", type=int, default=None, help="checkpoint step (default: latest)")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    rest, overrides = _split_overrides(argv)
    args = _parser().parse_args(rest)

    # The command's modules are imported here, after parsing: importing ssl_jax.train (JAX, Flax,
    # Orbax, grain, tfds) takes ~6 s on a 2-core CPU, and `ssl-jax --help` or a usage error should
    # answer in well under a second.
    from ssl_jax import config_util

    try:
        if args.command == "pretrain":
            from ssl_jax import parallel, train

            parallel.initialize_distributed(
                args.coordinator_address,
                args.num_processes,
                args.process_id,
                auto=args.distributed,
            )
            config = config_util.load_config(args.config)
            config_util.apply_overrides(config, overrides)
            results = train.pretrain(config, args.workdir, overwrite=args.overwrite)
        elif args.command == "export":
            if overrides:
                raise ValueError("export takes no --config overrides.")
            from ssl_jax import export

            written = export.export_workdir(args.workdir, args.out, step=args.step)
            print(
                f"Wrote {written['tensors']} tensors ({written['parameters']:,} parameters) of the "
                f"encoder at step {written['step']} to {written['path']}."
            )
            return 0
        else:
            from ssl_jax.transfer import evaluate

            protocols = tuple(args.protocol) if args.protocol else None
            results = evaluate.evaluate_workdir(
                args.workdir, protocols, step=args.step, overrides=overrides
            )
    except (
        ValueError,
        KeyError,
        FileNotFoundError,
        TypeError,
        FloatingPointError,
        ImportError,
    ) as e:
        print(f"ssl-jax: error: {e.args[0] if e.args else e}", file=sys.stderr)
        return 2
    if results.get("preempted"):
        # Stopped by a signal with its checkpoint saved: exit as the signal would have (143 for
        # SIGTERM), so `ssl-jax pretrain && ...` and job schedulers see an unfinished run.
        return 128 + results["signal"]
    import jax

    if jax.process_index() == 0:
        print(summary(results))
    return 0


def summary(results: dict) -> str:
    """One line per protocol: its headline number (top-1 accuracy, or the first scalar) and the rest."""
    lines = []
    for protocol, r in results.items():
        if not isinstance(r, dict):
            continue
        scalars = {k: v for k, v in r.items() if isinstance(v, (int, float))}
        if "top1" in r:
            head = f"top-1 accuracy: {100 * r['top1']:.2f}%"
            rest = {k: v for k, v in r.items() if k != "top1"}
        elif scalars:
            key = next(iter(scalars))
            head = f"{key}: {scalars[key]:.4g}"
            rest = {k: v for k, v in r.items() if k != key}
        else:
            head, rest = "", r
        lines.append(f"{protocol:>7} {head}  {json.dumps(rest, default=str)}")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
