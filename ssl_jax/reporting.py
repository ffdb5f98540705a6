"""What a user sees of a run: metrics.jsonl, TensorBoard events, the progress bar and the PNG curves.

Only process 0 writes; other processes get a writer that does nothing.
"""

from __future__ import annotations

import json
import math
import os
import sys
import time
from typing import Any

import numpy as np

METRICS_FILE = "metrics.jsonl"
CURVES_FILE = "curves.png"


def _scalar(v: Any) -> float:
    return float(np.asarray(v))


class MetricsWriter:
    """Writes one JSON object per logged step to WORKDIR/metrics.jsonl and mirrors it to TensorBoard.

    Every step appears once: values logged for a step the file already holds (an evaluation at a
    logged step, the final evaluation of a rerun or resumed run) are merged into that step's line,
    the newer value of a key replacing the older. A new step is appended; a merge rewrites the file
    through a temporary one, so a kill at any moment leaves the old file or the new one.
    """

    def __init__(self, workdir: str, *, enabled: bool = True):
        self._enabled = enabled
        self._workdir = workdir
        self._path = os.path.join(workdir, METRICS_FILE)
        self._tb = None
        self._last_step: int | None = None  # the highest step in the file
        if enabled:
            os.makedirs(workdir, exist_ok=True)
            self._last_step = max((r["step"] for r in read_metrics(workdir)), default=None)
            try:
                from tensorboardX import SummaryWriter

                self._tb = SummaryWriter(os.path.join(workdir, "tensorboard"))
            except ImportError:  # TensorBoard events are a convenience; the JSON log is the record
                self._tb = None

    def write(self, step: int, metrics: dict[str, Any]) -> None:
        if not self._enabled:
            return
        record = {"step": int(step), **{k: _scalar(v) for k, v in metrics.items()}}
        if self._last_step is not None and record["step"] <= self._last_step:
            _rewrite(self._path, merge_steps([*read_metrics(self._workdir), record]))
        else:
            with open(self._path, "a") as f:
                f.write(json.dumps(record) + "\n")
            self._last_step = record["step"]
        if self._tb is not None:
            for k, v in record.items():
                if k != "step" and math.isfinite(v):
                    self._tb.add_scalar(k, v, int(step))
            self._tb.flush()

    def close(self) -> None:
        if self._tb is not None:
            self._tb.close()


def read_metrics(workdir: str) -> list[dict]:
    path = os.path.join(workdir, METRICS_FILE)
    if not os.path.isfile(path):
        return []
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


def merge_steps(records: list[dict]) -> list[dict]:
    """One record per step, in step order: the records of a step logged more than once are merged,
    a later record's value of a key replacing an earlier one's."""
    by_step: dict[int, dict] = {}
    for record in records:
        by_step.setdefault(int(record["step"]), {}).update(record)
    return [by_step[step] for step in sorted(by_step)]


def _rewrite(path: str, records: list[dict]) -> None:
    temporary = f"{path}.tmp"
    with open(temporary, "w") as f:
        f.writelines(json.dumps(r) + "\n" for r in records)
    os.replace(temporary, path)


def truncate_metrics(workdir: str, last_step: int) -> None:
    """Drops records after `last_step` (logged by a run that died after its last checkpoint), and
    merges the lines of any step logged twice (by versions before each step appeared once)."""
    records = read_metrics(workdir)
    kept = merge_steps([r for r in records if r["step"] <= last_step])
    if kept != records:
        _rewrite(os.path.join(workdir, METRICS_FILE), kept)


def plot_curves(workdir: str) -> str | None:
    """Loss (and any accuracy and collapse metric logged) against step, as WORKDIR/curves.png."""
    records = read_metrics(workdir)
    if not records:
        return None
    # Imported here: the backend must be chosen before pyplot is first imported, and pyplot costs
    # ~0.7 s, paid only by the runs that write the plot.
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    def series(key):
        pts = [(r["step"], r[key]) for r in records if key in r]
        return ([p[0] for p in pts], [p[1] for p in pts]) if pts else None

    acc_keys = [k for k in ("knn_top1", "linear_top1") if series(k)]
    panels = [
        ("loss", ["loss"]),
        ("top-1 accuracy", acc_keys),
        ("embedding std", ["embedding_std"]),
    ]
    panels = [(t, [k for k in ks if series(k)]) for t, ks in panels]
    panels = [p for p in panels if p[1]]
    fig, axes = plt.subplots(1, len(panels), figsize=(5 * len(panels), 3.6), squeeze=False)
    for ax, (title, keys) in zip(axes[0], panels, strict=True):
        for key in keys:
            xs, ys = series(key)
            ax.plot(xs, ys, marker="o" if len(xs) < 30 else None, label=key)
        ax.set_title(title)
        ax.set_xlabel("step")
        ax.grid(alpha=0.3)
        if len(keys) > 1:
            ax.legend()
    fig.tight_layout()
    path = os.path.join(workdir, CURVES_FILE)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


class Progress:
    """A tqdm bar with steps/s, images/s, loss and ETA; quiet (rare lines) when stderr is not a terminal."""

    def __init__(self, *, total: int, initial: int, images_per_step: int, enabled: bool = True):
        from tqdm import tqdm

        tty = sys.stderr.isatty()
        self._bar = tqdm(
            total=total,
            initial=initial,
            disable=not enabled,
            mininterval=0.5 if tty else 30.0,
            unit="step",
            dynamic_ncols=True,
        )
        self._images_per_step = images_per_step
        self._last_time = time.perf_counter()
        self._last_step = initial

    def update(self, step: int, loss: float | None = None) -> None:
        self._bar.update(step - self._bar.n)
        if loss is not None:
            now = time.perf_counter()
            rate = (step - self._last_step) / max(now - self._last_time, 1e-9)
            self._last_time, self._last_step = now, step
            self._bar.set_postfix(
                loss=f"{loss:.4f}",
                img_s=f"{rate * self._images_per_step:,.0f}",
                refresh=False,
            )

    def write(self, text: str) -> None:
        self._bar.write(text)

    def close(self) -> None:
        self._bar.close()
