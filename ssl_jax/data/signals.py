"""Synthetic labelled 1-D signals for CPC's sequence mode: deterministic, any size, no download.

Example i of a split is a sum of sinusoids whose fundamental frequency is set by its class, with random
phases, amplitudes, a class-independent distractor tone and Gaussian noise:

    x(t) = a1 sin(2 pi f_c t + p1) + a2 sin(2 pi 2 f_c t + p2) + a3 sin(2 pi f_d t + p3) + sigma e(t)

f_c = f_min (f_max / f_min)^(c / (C - 1)) cycles per sample (log-spaced over the classes), jittered by
+-`jitter` (relative) per example; the distractor f_d is drawn uniformly over the same band for every
example whatever its class, so a single window's spectrum is ambiguous and predicting the future needs
the slow features (the fundamental and its harmonic) that CPC is meant to find. Everything about
example i comes from `np.random.default_rng([seed, split, i])`, so a row is a pure function of
(seed, split, i) and the loader's resumability holds. Labels are i % C (balanced).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ssl_jax.data.common import config_field
from ssl_jax.data.registry import register

SPLIT_CODES = {"train": 0, "test": 1}


class SyntheticSignalSource:
    """Rows {"signal": float32 [length], "label": int32}. `get` builds rows on demand (cheap numpy)."""

    def __init__(
        self,
        split: str,
        *,
        num_examples: int,
        length: int = 1024,
        num_classes: int = 10,
        noise_std: float = 0.5,
        f_min: float = 0.01,
        f_max: float = 0.08,
        jitter: float = 0.03,
        seed: int = 0,
    ):
        if split not in SPLIT_CODES:
            raise ValueError(
                f"synthetic_signals split must be one of {sorted(SPLIT_CODES)}, got {split!r}"
            )
        if num_classes < 2 or num_examples < 1 or length < 1:
            raise ValueError(
                "synthetic_signals needs num_classes >= 2, num_examples >= 1 and length >= 1; got "
                f"{num_classes}, {num_examples}, {length}."
            )
        if not 0 < f_min < f_max < 0.25:  # the harmonic 2 f_c must stay below Nyquist (0.5)
            raise ValueError(f"need 0 < f_min < f_max < 0.25 cycles/sample, got {f_min}, {f_max}")
        self.name = f"synthetic_signals[{split}]"
        self.split = split
        self.num_examples = int(num_examples)
        self.length = int(length)
        self.num_classes = int(num_classes)
        self.noise_std = float(noise_std)
        self.jitter = float(jitter)
        self.seed = int(seed)
        self.f_min, self.f_max = float(f_min), float(f_max)
        self.class_frequencies = f_min * (f_max / f_min) ** (
            np.arange(num_classes) / (num_classes - 1)
        )
        self.image_shape = None  # not an image source

    def __len__(self) -> int:
        return self.num_examples

    def example(self, index: int) -> tuple[np.ndarray, int]:
        """The signal and label of row `index` (a pure function of seed, split and index)."""
        label = index % self.num_classes
        rng = np.random.default_rng([self.seed, SPLIT_CODES[self.split], index])
        f = self.class_frequencies[label] * (1.0 + rng.uniform(-self.jitter, self.jitter))
        f_distractor = rng.uniform(self.f_min, self.f_max)
        amplitudes = rng.uniform(0.5, 1.0, size=3)
        phases = rng.uniform(0.0, 2.0 * np.pi, size=3)
        t = np.arange(self.length)
        x = (
            amplitudes[0] * np.sin(2 * np.pi * f * t + phases[0])
            + amplitudes[1] * np.sin(2 * np.pi * 2 * f * t + phases[1])
            + amplitudes[2] * np.sin(2 * np.pi * f_distractor * t + phases[2])
            + self.noise_std * rng.standard_normal(self.length)
        )
        return x.astype(np.float32), label

    def get(self, indices: np.ndarray) -> dict[str, np.ndarray]:
        indices = np.asarray(indices)
        if indices.ndim != 1 or not np.issubdtype(indices.dtype, np.integer):
            raise IndexError(
                f"indices must be a 1-D integer array; got {indices.dtype} {indices.shape}"
            )
        if indices.size and (indices.min() < 0 or indices.max() >= len(self)):
            raise IndexError(
                f"indices must lie in [0, {len(self)}); got [{indices.min()}, {indices.max()}]"
            )
        rows = [self.example(int(i)) for i in indices]
        signals = np.stack([r[0] for r in rows]) if rows else np.zeros((0, self.length), np.float32)
        return {"signal": signals, "label": np.asarray([r[1] for r in rows], np.int32)}


@register("synthetic_signals")
def synthetic_signals_from_cfg(cfg: Any, split: str) -> SyntheticSignalSource:
    """SOURCES entry "synthetic_signals": config.data.{num_train, num_test, signal_length, num_classes,
    noise_std, f_min, f_max, jitter, signal_seed} (defaults: 10,000 / 2,000 rows of 1,024 samples, 10 classes)."""

    return SyntheticSignalSource(
        split,
        num_examples=config_field(
            cfg,
            "num_train" if split == "train" else "num_test",
            10_000 if split == "train" else 2_000,
        ),
        length=config_field(cfg, "signal_length", 1024),
        num_classes=config_field(cfg, "num_classes", 10),
        noise_std=config_field(cfg, "noise_std", 0.5),
        f_min=config_field(cfg, "f_min", 0.01),
        f_max=config_field(cfg, "f_max", 0.08),
        jitter=config_field(cfg, "jitter", 0.03),
        seed=config_field(cfg, "signal_seed", 0),
    )
