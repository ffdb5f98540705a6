"""Method registry: config names -> `Method` classes. train.py looks methods up here by name."""

from __future__ import annotations

import ml_collections

from ssl_jax.methods.base import LossAux, Method, TrainState, Variables
from ssl_jax.methods.simclr import SimCLR

METHODS: dict[str, type[Method]] = {
    "simclr": SimCLR,
}


def get_method(
    config: ml_collections.ConfigDict,
    *,
    num_steps: int | None = None,
    steps_per_epoch: int | None = None,
) -> Method:
    """The method named by `config.method`, bound to `config` (and to the run's length when training)."""
    name = config.method
    if name not in METHODS:
        raise ValueError(f"Unknown method {name!r}; valid methods: {', '.join(sorted(METHODS))}.")
    return METHODS[name](config, num_steps=num_steps, steps_per_epoch=steps_per_epoch)


__all__ = ["METHODS", "LossAux", "Method", "TrainState", "Variables", "get_method"]
