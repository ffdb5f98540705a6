"""The results page of benchmarks/throughput.py: rows (dicts from `runner.run_case`) as markdown tables."""

from __future__ import annotations

import jax

from . import flops


def rate(x: float) -> str:
    """A rate as the tables print it: thousands separated above 100, three digits below."""
    return f"{x:,.0f}" if x >= 100 else f"{x:.3g}"


def table(header: list[str], body: list[list[str]]) -> list[str]:
    """A markdown table's lines."""
    return [
        "| " + " | ".join(header) + " |",
        "| " + " | ".join("---" for _ in header) + " |",
        *("| " + " | ".join(cells) + " |" for cells in body),
    ]


def to_markdown(rows: list[dict], env: dict, command: str) -> str:
    """The whole page: the environment, the main table, and the real-data, checkpoint and profile tables
    of the rows that have them."""
    peak = flops.peak_tflops(jax.devices()[0].device_kind)
    lines = [
        "# Pre-training step throughput",
        "",
        f"Command: `{command}`",
        "",
        "Environment: " + ", ".join(f"{k} {v}" for k, v in env.items()),
        "",
        "Peak used for MFU: "
        + (f"{peak:g} dense bf16 TFLOP/s per device" if peak else "unknown device (MFU n/a)"),
        "",
    ]
    main = []
    for r in rows:
        gflop = f"{r['flops_per_item'] / 1e9:.3f}" if r.get("flops_per_item") else "n/a"
        tflops = f"{r['tflops']:.2f}" if r["tflops"] is not None else "n/a"
        mfu = f"{100 * r['mfu']:.1f}%" if r["mfu"] is not None else "n/a"
        main.append(
            [
                r["case"],
                r["model"],
                r["input"],
                f"{r['batch']} {r['unit']}",
                f"{rate(r['items_per_s'])} {r['unit']}/s",
                f"{r['step_ms']:.2f}",
                f"{r['compile_s']:.1f}",
                gflop,
                tflops,
                mfu,
            ]
        )
    lines += table(
        ["case", "model", "input", "batch", "throughput", "step (ms)", "compile (s)"]
        + ["train GFLOP / item", "TFLOP/s", "MFU"],
        main,
    )
    real = [r for r in rows if "real_data" in r]
    if real:
        lines += [
            "",
            "Real data: the same step fed by the training input (`ssl_jax.data.pipeline.Pipeline`: "
            "grain, shuffled reads of the files, a prefetch thread) instead of batches already in "
            "memory; "
            "and the loader alone, delivering batches to the devices with no step running (what this "
            "host can feed at most, counted in the same units).",
            "",
        ]
        lines += table(
            ["case", "data", "synthetic", "real data", "real / synthetic", "loader alone"],
            [
                [
                    r["case"],
                    r["real_data"],
                    f"{rate(r['items_per_s'])} {r['unit']}/s",
                    f"{rate(r['real_items_per_s'])} {r['unit']}/s",
                    f"{100 * r['real_vs_synthetic']:.1f}%",
                    f"{rate(r['loader_items_per_s'])} {r['unit']}/s",
                ]
                for r in real
            ],
        )
    saved = [r for r in rows if "checkpoint_every" in r]
    if saved:
        lines += [
            "",
            "Checkpointing: each step blocked on and clocked alone, an asynchronous Orbax save of the "
            "whole state after every N-th step; the save step and the two after it against the rest.",
            "",
        ]
        lines += table(
            ["case", "save every", "near a save (ms)", "other steps (ms)", "slowdown"],
            [
                [
                    r["case"],
                    f"{r['checkpoint_every']} steps",
                    f"{r['near_save_ms']:.2f}",
                    f"{r['other_ms']:.2f}",
                    f"{100 * (r['near_save_ms'] / r['other_ms'] - 1):+.1f}%",
                ]
                for r in saved
            ],
        )
    for r in (r for r in rows if "profile" in r):
        prof = r["profile"]
        lines += [
            "",
            f"Profile of {r['case']} (jax.profiler, {prof['source']}): {prof['ms_per_step']:.2f} ms "
            f"of op time per step; trace and optimized HLO in `{prof['trace']}`. By kind: "
            + ", ".join(f"{c} {100 * share:.1f}%" for c, share in prof["categories"]),
            "",
        ]
        lines += table(
            ["HLO instruction", "kind", "ms / step", "share"],
            [[n, c, f"{ms:.3f}", f"{100 * sh:.1f}%"] for n, c, ms, sh in prof["top"]],
        )
    lines.append("")
    for r in rows:
        lines.append(f"- {r['case']}: {r['note']}.")
    lines.append(
        "- Images/s counts augmented views (two per example for SimCLR, BYOL, MoCo v3; every crop "
        "for DINO); tokens/s counts input tokens. FLOPs are analytic model FLOPs (formulas in "
        "benchmarks/throughput_lib/flops.py's docstring: 3 x forward for trained networks, 1 x for EMA "
        "targets)."
    )
    return "\n".join(lines) + "\n"
