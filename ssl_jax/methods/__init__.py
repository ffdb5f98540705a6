"""Method registry: config names -> `Method` classes. train.py looks methods up here by name."""

from __future__ import annotations

import ml_collections

from ssl_jax.methods.barlow_twins import BarlowTwins
from ssl_jax.methods.base import LossAux, Method, TrainState, Variables
from ssl_jax.methods.byol import BYOL
from ssl_jax.methods.composite import SimCLRPlusVICReg
from ssl_jax.methods.dino import DINO
from ssl_jax.methods.moco import MoCoV2, MoCoV3
from ssl_jax.methods.simclr import SimCLR, TwoViewMethod
from ssl_jax.methods.simsiam import SimSiam
from ssl_jax.methods.vicreg import VICReg

METHODS: dict[str, type[Method]] = {
    "barlow_twins": BarlowTwins,
    "byol": BYOL,
    "dino": DINO,
    "moco_v2": MoCoV2,
    "moco_v3": MoCoV3,
    "simclr": SimCLR,
    "simclr_vicreg": SimCLRPlusVICReg,
    "simsiam": SimSiam,
    "vicreg": VICReg,
}


def get_method(
    config: ml_collections.ConfigDict,
    *,
    num_steps: int | None = None,
    steps_per_epoch: int | None = None,
) -> Method:
    """The method named by `config.method`, bound to `config` (and to the run's length when training)."""
    method_cls = method_class(config.method)
    return method_cls(config, num_steps=num_steps, steps_per_epoch=steps_per_epoch)


def method_class(name: str) -> type[Method]:
    """The class registered as `name`; an unknown name is an error listing the valid ones."""
    if name not in METHODS:
        raise ValueError(f"Unknown method {name!r}; valid methods: {', '.join(sorted(METHODS))}.")
    return METHODS[name]


def register(name: str, method_cls: type[Method]) -> None:
    """Makes `method_cls` available as `config.method = name` (e.g. a composition of objectives)."""
    if name in METHODS and METHODS[name] is not method_cls:
        raise ValueError(
            f"A method named {name!r} is already registered: {METHODS[name].__name__}."
        )
    METHODS[name] = method_cls


__all__ = [
    "METHODS",
    "LossAux",
    "Method",
    "TrainState",
    "TwoViewMethod",
    "Variables",
    "get_method",
    "method_class",
    "register",
]
