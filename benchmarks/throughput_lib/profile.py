"""Where a step's time goes: jax.profiler traces, read back and sorted by optimized-HLO instruction.

`trace_steps` traces steps of a jitted step function and writes its optimized HLO beside the trace;
`profile_summary` sums the trace's op time per step by instruction and by kind (convolution, matmul,
reduction / elementwise fusion, layout, collective), the kinds coming from `hlo_instructions` and
`op_category`, which read HLO text only (tests/test_throughput.py checks them on GPU-style HLO).
"""

from __future__ import annotations

import glob
import os
import re

import jax

_COLLECTIVES = ("all-reduce", "all-gather", "reduce-scatter", "all-to-all", "collective-permute")
# What a fusion made of nothing else only moves: a layout change.
_DATA_MOVEMENT = {
    "parameter",
    "copy",
    "transpose",
    "bitcast",
    "reshape",
    "tuple",
    "get-tuple-element",
}
_INSTRUCTION = re.compile(r"^\s*(?:ROOT\s+)?%?([\w.\-]+) = (.*)$")
_OPCODE = re.compile(r"\s([a-z][a-z0-9\-]*)\(")


def hlo_instructions(hlo_text: str) -> dict[str, tuple[str, str, set[str]]]:
    """An optimized HLO module's instructions: name -> (opcode, detail, opcodes it runs). detail is a
    custom call's target or a fusion's kind; the opcodes run are those of the computations a fusion or
    call reaches (transitively), so a fusion can be told to hold a convolution, a dot or a reduction."""
    computations: dict[str, list[tuple[str, str, str, list[str]]]] = {}
    current = None
    for line in hlo_text.splitlines():
        match = _INSTRUCTION.match(line)
        if match is None:
            header = line.strip()
            if header.endswith("{"):
                current = header.split()[1 if header.startswith("ENTRY") else 0].lstrip("%")
                computations.setdefault(current, [])
            continue
        name, rest = match.groups()
        op = _OPCODE.search(" " + rest)
        if op is None or current is None:
            continue
        target = re.search(r'custom_call_target="([^"]+)"', rest)
        kind = re.search(r"kind=(k\w+)", rest)
        called = re.findall(r"(?:calls|to_apply|body|condition)=%?([\w.\-]+)", rest)
        detail = target.group(1) if target else kind.group(1) if kind else ""
        computations[current].append((name, op.group(1), detail, called))

    def reached(names: list[str], seen: set[str]) -> set[str]:
        ops: set[str] = set()
        for comp in names:
            if comp in seen or comp not in computations:
                continue
            seen.add(comp)
            for _, opcode, detail, called in computations[comp]:
                ops.add(f"custom-call:{detail}" if opcode == "custom-call" else opcode)
                ops |= reached(called, seen)
        return ops

    return {
        name: (opcode, detail, reached(called, set()))
        for instrs in computations.values()
        for name, opcode, detail, called in instrs
    }


def op_category(opcode: str, detail: str, inner: set[str]) -> str:
    """What an executed HLO instruction is, in the terms the performance notes use."""
    base = opcode.removesuffix("-start").removesuffix("-done")
    if base in _COLLECTIVES:
        return "collective"
    ops = {opcode, *inner} | ({f"custom-call:{detail}"} if opcode == "custom-call" else set())
    calls = " ".join(o.lower() for o in ops if o.startswith("custom-call:"))
    if "convolution" in ops or "conv" in calls:
        return "convolution"
    if "dot" in ops or any(s in calls for s in ("gemm", "matmul", "cublas")):
        return "matmul"
    if opcode == "fusion":
        if inner <= _DATA_MOVEMENT:
            return "layout (copy, transpose)"
        return "reduction fusion" if "reduce" in ops or detail == "kInput" else "elementwise fusion"
    if base in ("copy", "transpose"):
        return "layout (copy, transpose)"
    return opcode


def profile_summary(trace_dir: str, hlo_text: str, steps: int, top: int = 8) -> dict:
    """Time per step by HLO instruction and by category, from the newest trace under trace_dir: the
    device's "XLA Ops" line on accelerators; on a CPU, the XLA worker threads (summed over threads)."""
    files = sorted(glob.glob(os.path.join(trace_dir, "**", "*.xplane.pb"), recursive=True))
    if not files:
        raise RuntimeError(f"jax.profiler wrote no trace under {trace_dir}")
    profile = jax.profiler.ProfileData.from_file(files[-1])
    devices = [p for p in profile.planes if p.name.startswith("/device:")]
    events = []
    if devices:
        source = f"{devices[0].name} XLA Ops"
        for plane in devices:
            lines = [line for line in plane.lines if line.name == "XLA Ops"] or list(plane.lines)
            events += [(e.name, e.duration_ns) for line in lines for e in line.events]
    else:
        source = "host XLA threads (summed over threads)"
        for plane in profile.planes:
            for line in plane.lines:
                if line.name.startswith("tf_XLA"):
                    events += [
                        (e.name, e.duration_ns)
                        for e in line.events
                        if not e.name.startswith("ThunkExecutor")
                    ]
    instructions = hlo_instructions(hlo_text)
    by_op: dict[str, float] = {}
    for name, ns in events:
        by_op[name] = by_op.get(name, 0.0) + ns
    total = sum(by_op.values()) or 1.0
    by_category: dict[str, float] = {}
    ops = []
    for name, ns in sorted(by_op.items(), key=lambda kv: -kv[1]):
        known = instructions.get(name)
        category = op_category(*known) if known else "other (not an HLO instruction)"
        by_category[category] = by_category.get(category, 0.0) + ns
        ops.append((name, category, ns / 1e6 / steps, ns / total))
    return {
        "trace": os.path.dirname(files[-1]),
        "source": source,
        "ms_per_step": total / 1e6 / steps,
        "categories": sorted(
            ((c, ns / total) for c, ns in by_category.items()), key=lambda x: -x[1]
        ),
        "top": ops[:top],
    }


def trace_steps(
    step_fn, state, batch_at, *, start: int, steps: int, trace_dir: str, hlo_text: str = ""
):
    """`steps` steps under jax.profiler.trace (TensorBoard / Perfetto / XProf format), each annotated as
    a training step; the optimized HLO (`hlo_text`, or compiled here from the jitted `step_fn`) written
    beside the trace and used to name what ran."""
    os.makedirs(trace_dir, exist_ok=True)
    hlo_text = hlo_text or step_fn.lower(state, batch_at(start)).compile().as_text()
    with open(os.path.join(trace_dir, "step.hlo.txt"), "w") as f:
        f.write(hlo_text)
    with jax.profiler.trace(trace_dir):
        for i in range(steps):
            with jax.profiler.StepTraceAnnotation("train", step_num=i):
                state, metrics = step_fn(state, batch_at(start + i))
        jax.block_until_ready((state, metrics))
    return state, profile_summary(trace_dir, hlo_text, steps)
