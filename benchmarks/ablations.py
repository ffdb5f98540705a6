"""Where the library's SimCLR step spends its time: ablations timed in one process, each as a ratio to
the full step, beside the plain flax + optax step of the same networks (benchmarks/reference_step.py)
and, where given, the PyTorch peer measured on the same device (benchmarks/peers/torch_simclr_step.py).

  python benchmarks/ablations.py           # simclr_r18_cifar and simclr_r50_224, every row
  python benchmarks/ablations.py --cases simclr_r18_cifar --batch-scale 0.0625 --steps 3   # quick look
  python benchmarks/ablations.py --profile /tmp/profiles --peer-results peer.json \
      --throughput-output benchmarks/results/throughput.md    # what gpu_step_attribution.sh runs

Writes benchmarks/results/step_attribution.md: per case, the rows below (step time, images/s, time as a
ratio to the full step, the time each saves), then the gap between the full step and the reference
split into the savings of the removals, the residual measured directly (the library step with all of
them removed, against the reference), and what neither explains (the removals do not add up exactly),
named as such. With --profile, the top ops per step of the full and the reference step;
--throughput-output also writes the full steps as benchmarks/throughput.py's table.

  full step             the step benchmarks/throughput.py times: uint8 batch shipped from the host
  batch on device       the same compiled step, the uint8 batches already on the device
  no augmentation       the step on two float views made beforehand (on device)
  augmentation alone    the two views' augmentation (`TwoViewMethod.views`) as its own jitted program
  SGD instead of LARS   config optim.name=sgd
  no non-finite guard   train.make_train_step(guard_nonfinite=False)
  per-device BatchNorm  config model.sync_batch_norm=False (on one device, the same statistics)
  remat_norm            encoder_kwargs remat_norm=True (an alternative, not a removal)
  all removed           no augmentation, SGD, no guard, per-device BN, batch on device: the library
                        step doing the reference's work
  reference             reference_step.py on the same float views

Everything runs on one device (the reference is a one-device program). Every program is compiled
before any is timed, several at once (XLA compiles outside the GIL), so the run fits a short lease.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import dataclasses
import json
import os
import sys
import time

import jax
from jax.sharding import PartitionSpec as P

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# The GPU machine runs this file from a bare copy of the repository, where ssl_jax is not installed:
# the checkout goes on the path before ssl_jax (and throughput_lib, which imports it) is imported.
sys.path.insert(0, ROOT)

import reference_step  # noqa: E402
from throughput_lib import profile, runner, tables  # noqa: E402
from throughput_lib.cases import CASES  # noqa: E402

from ssl_jax import config_util, models, optim, parallel, train  # noqa: E402
from ssl_jax.method_inputs import build_method  # noqa: E402
from ssl_jax.methods import SimCLR, common  # noqa: E402

# The rows of every case's table, in order (the PyTorch peer's follow where given).
ROWS = (
    "full step",
    "batch on device",
    "no augmentation",
    "augmentation alone",
    "SGD instead of LARS",
    "no non-finite guard",
    "per-device BatchNorm",
    "remat_norm",
    "all removed",
    "reference",
)


class PremadeViews(SimCLR):
    """SimCLR fed its two float views (batch "view1", "view2"), made before the step."""

    batch_keys = ("view1", "view2")

    def views(self, rng, batch):
        del rng
        return batch["view1"], batch["view2"]


@dataclasses.dataclass
class Program:
    """One row's program: `lowered` compiles to a function timed as fn(state, batch_at(i))."""

    name: str
    what: str
    lowered: object
    state: object
    batch_at: object
    wrap: object = None  # compiled -> (state, batch) -> (state, metrics), where the call differs
    compiled: object = None
    compile_s: float = 0.0  # its own compilation's wall time, beside the others compiling


# ---------------------------------------------------------------- the programs


def _library(config, method, mesh, batch_at, example_shape, states: dict, *, guard: bool = True):
    """(lowered step, state) of the library's jitted step for `method` under `config`. The state is a
    copy of one in `states` of the same shapes where there is one (initializing compiles a program
    of its own, seconds for each variant otherwise)."""
    tx, schedule = optim.make_optimizer(train.optimizer_config(config, 100, 10_000), 10_000)

    def fresh():
        return train.create_train_state(method, tx, jax.random.key(0), example_shape)

    shapes = jax.eval_shape(fresh)
    key = (jax.tree.structure(shapes), tuple((x.shape, x.dtype) for x in jax.tree.leaves(shapes)))
    if key not in states:
        states[key] = parallel.replicate(fresh(), mesh)
    state = jax.tree.map(lambda x: x.copy(), states[key])  # each program donates its own
    step = train.make_train_step(method, tx, schedule, mesh, guard_nonfinite=guard)
    return step.lower(state, batch_at(0)), state


def _overridden(config, overrides: list[str]):
    """A copy of `config` with `overrides` (dotted name=value) applied."""
    config = config.copy_and_resolve_references()
    config_util.apply_overrides(config, overrides)
    return config


def _rotate(batches):
    return lambda i: batches[i % len(batches)]


def _reference_network(config):
    """reference_step's network with the shapes of config's encoder and projector."""
    encoder = common.build_encoder(config, axis_name=None)
    if not isinstance(encoder, models.ResNet) or encoder.width_multiplier != 1:
        raise SystemExit(f"the reference step is a 1x ResNet; {config.model.encoder!r} is not one")
    head = config.model.projector
    if head.get("num_layers", 2) != 2 or not head.get("use_bn", True) or head.get("last_bn"):
        raise SystemExit(
            "the reference's projector is Dense -> BN -> ReLU -> Dense; the config's is not"
        )
    # The block kind from the library's encoder (resnet50's bottleneck, resnet18's basic block),
    # the depth from its stage sizes.
    return reference_step.network(
        "resnet50" if encoder.block_cls.expansion == 4 else "resnet18",
        stem=encoder.stem,
        hidden_dim=int(head.hidden_dim),
        output_dim=int(head.output_dim),
        dtype=common.activation_dtype(config.model),
        stage_sizes=tuple(encoder.stage_sizes),
    )


def build_programs(case, examples: int, mesh, overrides: list[str]) -> tuple[dict, list[Program]]:
    """The case's config (with `overrides`) and every row's lowered program, the views made."""
    config = case.config_fn(examples)
    config_util.apply_overrides(config, overrides)
    method = build_method(config, num_steps=10_000, steps_per_epoch=100)
    if not hasattr(method, "views"):
        raise SystemExit(f"{case.name}: the ablations need a two-view method (TwoViewMethod)")
    host_at, example_shape = runner.host_batches(case, config, examples, mesh, "image")
    on_device = [jax.block_until_ready(host_at(i)) for i in range(3)]
    axis = parallel.DATA_AXIS
    augment_fn = jax.jit(
        parallel.per_device(
            method.views, mesh, in_specs=(P(), P(axis)), out_specs=(P(axis), P(axis))
        )
    )
    rng = jax.random.key(1)
    views = [augment_fn(jax.random.fold_in(rng, i), on_device[i]) for i in range(3)]
    view_batches = [
        {"view1": v1, "view2": v2, "example_ids": b["example_ids"]}
        for (v1, v2), b in zip(views, on_device, strict=True)
    ]
    view_shape = tuple(views[0][0].shape[1:])

    programs, states = [], {}
    lowered, state = _library(config, method, mesh, host_at, example_shape, states)
    programs.append(
        Program("full step", "the library step, batch shipped", lowered, state, host_at)
    )
    programs.append(
        Program(
            "batch on device",
            "the same step, uint8 batches already on the device",
            lowered,  # the full step's executable, continuing from its state
            state,
            _rotate(on_device),
        )
    )
    premade = PremadeViews(config, num_steps=10_000, steps_per_epoch=100)
    lowered, state = _library(config, premade, mesh, _rotate(view_batches), view_shape, states)
    programs.append(
        Program(
            "no augmentation",
            "float views made beforehand",
            lowered,
            state,
            _rotate(view_batches),
        )
    )
    programs.append(
        Program(
            "augmentation alone",
            "the two views' augmentation, its own program",
            augment_fn.lower(rng, on_device[0]),
            rng,
            _rotate(on_device),
            wrap=lambda fn: lambda key, batch: (key, fn(key, batch)),
        )
    )
    for name, what, fields, guard in [
        ("SGD instead of LARS", "optim.name=sgd", ["optim.name=sgd"], True),
        ("no non-finite guard", "guard_nonfinite=False", [], False),
        ("per-device BatchNorm", "sync_batch_norm=False", ["model.sync_batch_norm=False"], True),
    ]:
        variant = _overridden(config, fields)
        lowered, state = _library(
            variant,
            build_method(variant, num_steps=10_000, steps_per_epoch=100),
            mesh,
            host_at,
            example_shape,
            states,
            guard=guard,
        )
        programs.append(Program(name, what, lowered, state, host_at))
    kwargs = dict(config.model.get("encoder_kwargs", {}) or {})
    remat = _overridden(config, [f"model.encoder_kwargs={dict(kwargs, remat_norm=True)!r}"])
    lowered, state = _library(
        remat,
        build_method(remat, num_steps=10_000, steps_per_epoch=100),
        mesh,
        host_at,
        example_shape,
        states,
    )
    programs.append(
        Program("remat_norm", "BatchNorm recomputed in the backward", lowered, state, host_at)
    )
    bare = _overridden(config, ["optim.name=sgd", "model.sync_batch_norm=False"])
    bare_method = PremadeViews(bare, num_steps=10_000, steps_per_epoch=100)
    lowered, state = _library(
        bare, bare_method, mesh, _rotate(view_batches), view_shape, states, guard=False
    )
    programs.append(
        Program(
            "all removed",
            "no augmentation, SGD, no guard, per-device BN, batch on device",
            lowered,
            state,
            _rotate(view_batches),
        )
    )
    model = _reference_network(config)
    tx = reference_step.optimizer(
        float(optim.scaled_learning_rate(config.optim.learning_rate, examples, "linear"))
    )
    ref_state = reference_step.init(model, tx, jax.random.key(0), view_shape)
    ref_step = reference_step.make_step(model, tx, temperature=float(config.simclr.temperature))
    ref_views = [(b["view1"], b["view2"]) for b in view_batches]
    programs.append(
        Program(
            "reference",
            "flax.linen + optax alone (benchmarks/reference_step.py), same views",
            ref_step.lower(ref_state, *ref_views[0]),
            ref_state,
            _rotate(ref_views),
            wrap=lambda fn: lambda state, views: fn(state, *views),
        )
    )
    assert tuple(p.name for p in programs) == ROWS
    return config, programs


def compile_all(programs: list[Program], workers: int) -> float:
    """Compiles the first program alone (its compile time is the throughput table's, and on a GPU its
    autotuning, uncontended, fills XLA's in-process cache that the others' identical convolutions
    hit), then the rest `workers` at a time; returns the wall seconds it all took."""
    t0 = time.perf_counter()
    unique = {id(p.lowered): p.lowered for p in programs}

    def compile_one(lowered):
        start = time.perf_counter()
        return lowered.compile(), time.perf_counter() - start

    first, *rest = unique
    done = {first: compile_one(unique[first])}
    with concurrent.futures.ThreadPoolExecutor(max(1, workers)) as pool:
        compiled = pool.map(compile_one, [unique[k] for k in rest])
        done.update(zip(rest, compiled, strict=True))
    for p in programs:
        p.compiled, p.compile_s = done[id(p.lowered)]
    return time.perf_counter() - t0


# ---------------------------------------------------------------- timing and the tables


def _callable(p: Program):
    return p.wrap(p.compiled) if p.wrap else p.compiled


def time_programs(programs, *, warmup: int, steps: int, deadline: float) -> dict[str, dict]:
    """Each row's best-of-three seconds per step (after `warmup` steps), in order; rows reached after
    `deadline` (time.perf_counter) are marked skipped."""
    results = {}
    for p in programs:
        if time.perf_counter() > deadline:
            results[p.name] = {"skipped": "time budget"}
            continue
        state, fn = p.state, _callable(p)
        for i in range(warmup):
            state, out = fn(state, p.batch_at(i))
        jax.block_until_ready((state, out))
        state, out, step_s = runner.timed_windows(fn, state, p.batch_at, start=warmup, steps=steps)
        loss = (
            out["loss"] if isinstance(out, dict) else out if getattr(out, "ndim", 1) == 0 else None
        )
        results[p.name] = {"step_s": step_s, "loss": None if loss is None else float(loss)}
        for q in programs:  # the state donated last is dead: what shares the program continues here
            if q.lowered is p.lowered:
                q.state = state
    return results


def attribution(ms: dict[str, float]) -> list[tuple[str, float | None]]:
    """The gap full - reference split into the removals' savings, the residual measured by "all
    removed" - reference, and the part neither explains (the savings do not add exactly)."""
    full, ref = ms.get("full step"), ms.get("reference")
    if full is None or ref is None:
        return []

    def diff(a, b):
        return ms[a] - ms[b] if a in ms and b in ms else None

    parts = [
        ("host -> device copy of the uint8 batch", diff("full step", "batch on device")),
        ("augmentation inside the step", diff("batch on device", "no augmentation")),
        ("LARS over SGD", diff("full step", "SGD instead of LARS")),
        ("non-finite guard", diff("full step", "no non-finite guard")),
        ("synchronized BatchNorm", diff("full step", "per-device BatchNorm")),
    ]
    known = [v for _, v in parts if v is not None]
    residual = diff("all removed", "reference")
    explained = sum(known) + (residual or 0.0)
    return [
        ("gap: full step - reference", full - ref),
        *parts,
        ("sum of the removals' savings", sum(known)),
        ("library step machinery on the reference's work (all removed - reference)", residual),
        ("not explained by the rows above (the removals interact)", full - ref - explained),
    ]


def to_markdown(cases: list[dict], env: dict, command: str) -> str:
    lines = [
        "# Where the SimCLR step's time goes",
        "",
        f"Command: `{command}`",
        "",
        "Environment: " + ", ".join(f"{k} {v}" for k, v in env.items()),
        "",
        "One device. Step = best of three windows of back-to-back steps after warm-up; ratio = the "
        "row's step time over the full step's; saving = full step - row.",
    ]
    for c in cases:
        full = c["rows"].get("full step", {}).get("step_s")
        lines += ["", f"## {c['case']}: {c['model']}, {c['views']} views per step", ""]
        body = []
        for name, what in c["what"].items():
            r = c["rows"].get(name, {})
            if "step_s" not in r:
                body.append([name, what, r.get("skipped", "not run"), "", "", ""])
                continue
            s = r["step_s"]
            body.append(
                [
                    name,
                    what,
                    f"{1e3 * s:.2f}",
                    tables.rate(c["views"] / s),
                    f"{s / full:.3f}" if full else "n/a",
                    f"{1e3 * (full - s):+.2f}" if full else "n/a",
                ]
            )
        lines += tables.table(
            ["row", "what differs", "step (ms)", "images/s", "ratio to full", "saving (ms)"], body
        )
        parts = attribution({k: 1e3 * v["step_s"] for k, v in c["rows"].items() if "step_s" in v})
        if parts:
            gap = parts[0][1]
            lines += ["", "Attribution of the gap to the reference:", ""]
            lines += tables.table(
                ["part", "ms per step", "share of the gap"],
                [
                    [
                        p,
                        "n/a" if v is None else f"{v:+.2f}",
                        "" if v is None or not gap else f"{100 * v / gap:.0f}%",
                    ]
                    for p, v in parts
                ],
            )
        for name, prof in c.get("profiles", {}).items():
            if "error" in prof:
                lines += ["", f"Profile of the {name}: failed ({prof['error']})."]
                continue
            lines += [
                "",
                f"Profile of the {name} ({prof['source']}): {prof['ms_per_step']:.2f} ms of op time per "
                "step. By kind: "
                + ", ".join(f"{k} {100 * share:.1f}%" for k, share in prof["categories"]),
                "",
            ]
            lines += tables.table(
                ["HLO instruction", "kind", "ms / step", "share"],
                [[n, k, f"{ms:.3f}", f"{100 * sh:.1f}%"] for n, k, ms, sh in prof["top"]],
            )
        lines += ["", f"Compilation of every program: {c['compile_s']:.1f} s wall."]
    return "\n".join(lines) + "\n"


def add_peer(case: dict, peer: dict) -> None:
    """The PyTorch peer's rows of this case (its own JSON), as rows of the case's table."""
    for r in peer.get("rows", []):
        if r.get("case") != case["case"]:
            continue
        name = f"PyTorch {r['variant']}"
        what = r.get("what", "the PyTorch peer")
        case["what"][name] = f"{what} (torch {peer.get('torch', '?')}, {peer.get('device', '?')})"
        case["rows"][name] = (
            {"step_s": r["step_ms"] / 1e3} if "step_ms" in r else {"skipped": r.get("skipped", "")}
        )


def run_case(name: str, args, mesh, deadline: float) -> tuple[dict, dict | None]:
    """(the case's entry for `to_markdown`, its throughput-table row or None when not timed)."""
    case = CASES[name]
    examples = args.batch or max(1, int(case.examples * args.batch_scale))
    t0 = time.perf_counter()
    config, programs = build_programs(case, examples, mesh, args.set)
    lower_s = time.perf_counter() - t0
    compile_s = compile_all(programs, args.compile_workers)
    print(f"{name}: lowered in {lower_s:.1f} s, compiled in {compile_s:.1f} s", flush=True)
    rows = time_programs(programs, warmup=args.warmup, steps=args.steps, deadline=deadline)
    print(rows, flush=True)
    entry = {
        "case": name,
        "model": case.model,
        "views": examples * case.items_per_example(config),
        "what": {p.name: p.what for p in programs},
        "rows": rows,
        "compile_s": lower_s + compile_s,
        "profiles": {},
    }
    by_name = {p.name: p for p in programs}
    if args.profile:
        for row_name in ("full step", "reference"):
            p = by_name[row_name]
            if "step_s" not in rows[row_name]:
                continue
            try:
                p.state, entry["profiles"][row_name] = profile.trace_steps(
                    _callable(p),
                    p.state,
                    p.batch_at,
                    start=0,
                    steps=args.profile_steps,
                    trace_dir=os.path.join(args.profile, name, row_name.replace(" ", "_")),
                    hlo_text=p.compiled.as_text(),
                )
            except Exception as error:  # noqa: BLE001 (a profiler failure must not lose the timings)
                print(f"{name}: profiling the {row_name} failed: {error!r}", flush=True)
                entry["profiles"][row_name] = {"error": repr(error)}
    full = rows["full step"]
    if "step_s" not in full:
        return entry, None
    row = runner.case_row(
        case,
        config,
        examples=examples,
        step_s=full["step_s"],
        compile_s=by_name["full step"].compile_s,
        loss=full["loss"],
        extra={"profile": prof}
        if "top" in (prof := entry["profiles"].get("full step", {}))
        else {},
    )
    row["note"] += "; timed by benchmarks/ablations.py beside its ablations"
    return entry, row


def write(args, results: dict) -> None:
    """The page (with the peer's rows where its JSON exists), its JSON, the throughput table."""
    peer = {}
    if args.peer_results and os.path.exists(args.peer_results):
        with open(args.peer_results) as f:
            peer = json.load(f)
    for entry in results["cases"]:
        add_peer(entry, peer)
    text = to_markdown(results["cases"], results["env"], results["command"])
    os.makedirs(os.path.dirname(os.path.abspath(args.output)), exist_ok=True)
    with open(args.output, "w") as f:
        f.write(text)
    with open(os.path.splitext(args.output)[0] + ".json", "w") as f:
        json.dump(results, f, indent=1)
    if args.throughput_output and results["throughput_rows"]:
        with open(args.throughput_output, "w") as f:
            f.write(
                tables.to_markdown(results["throughput_rows"], results["env"], results["command"])
            )
    print(text, flush=True)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--cases", default="simclr_r18_cifar,simclr_r50_224")
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--batch-scale", type=float, default=1.0, help="scale every case's batch")
    parser.add_argument("--batch", type=int, default=0, help="examples per step, every case")
    parser.add_argument("--set", action="append", default=[], help="config override, every case")
    parser.add_argument(
        "--output",
        default=os.path.join(ROOT, "benchmarks", "results", "step_attribution.md"),
        help="the page; its results also go to the same name with .json",
    )
    parser.add_argument("--throughput-output", default="", help="also write the throughput table")
    parser.add_argument("--profile", default="", help="trace the full and reference steps into DIR")
    parser.add_argument("--profile-steps", type=int, default=5)
    parser.add_argument("--peer-results", default="", help="torch_simclr_step.py's JSON")
    parser.add_argument(
        "--render", default="", help="no run: rewrite the page from this results JSON (+ the peer)"
    )
    parser.add_argument("--compile-workers", type=int, default=8)
    parser.add_argument(
        "--budget-s", type=float, default=1e9, help="rows not started by then are skipped"
    )
    args = parser.parse_args(argv)
    if args.render:
        with open(args.render) as f:
            results = json.load(f)
        write(args, results)
        return 0
    for name in args.cases.split(","):
        if name not in CASES:
            raise SystemExit(f"unknown case {name!r}; valid: {', '.join(CASES)}")
    deadline = time.perf_counter() + args.budget_s
    command = "python " + " ".join([os.path.relpath(__file__, ROOT), *(argv or sys.argv[1:])])
    results = {"env": runner.environment(), "command": command, "cases": [], "throughput_rows": []}
    print("environment:", results["env"], flush=True)
    mesh = parallel.make_mesh(jax.devices()[:1])
    for name in args.cases.split(","):
        if time.perf_counter() > deadline:
            print(f"{name}: skipped (time budget)", flush=True)
            continue
        entry, row = run_case(name, args, mesh, deadline)
        results["cases"].append(entry)
        if row is not None:
            results["throughput_rows"].append(row)
        write(args, results)  # after every case: a run stopped later keeps what it measured
    return 0


if __name__ == "__main__":
    sys.exit(main())
