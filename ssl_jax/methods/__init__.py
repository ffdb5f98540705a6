"""Method registry: config names -> `Method` classes. Methods are looked up here by name through
`ssl_jax.method_inputs.build_method`, which also hands each the data inputs it names."""

from __future__ import annotations

import ml_collections

from ssl_jax.methods.barlow_twins import BarlowTwins
from ssl_jax.methods.bart import BART
from ssl_jax.methods.base import LossAux, Method, TrainState, Variables
from ssl_jax.methods.bases import TwoViewMethod
from ssl_jax.methods.bert import BERT
from ssl_jax.methods.byol import BYOL
from ssl_jax.methods.clip import CLIP
from ssl_jax.methods.colorization import Colorization
from ssl_jax.methods.composite import SimCLRPlusVICReg
from ssl_jax.methods.context_prediction import ContextPrediction
from ssl_jax.methods.cpc import CPC
from ssl_jax.methods.dino import DINO
from ssl_jax.methods.elmo import ELMo
from ssl_jax.methods.future_prediction import FuturePrediction
from ssl_jax.methods.gpt import GPT
from ssl_jax.methods.inpainting import Inpainting
from ssl_jax.methods.mae import MAE
from ssl_jax.methods.moco import MoCoV2, MoCoV3
from ssl_jax.methods.online_probe import OnlineProbe
from ssl_jax.methods.simclr import SimCLR
from ssl_jax.methods.simsiam import SimSiam
from ssl_jax.methods.supervised import Supervised
from ssl_jax.methods.vicreg import VICReg
from ssl_jax.methods.word2vec import Word2Vec

METHODS: dict[str, type[Method]] = {
    "barlow_twins": BarlowTwins,
    "bart": BART,
    "bert": BERT,
    "byol": BYOL,
    "clip": CLIP,
    "cpc": CPC,
    "dino": DINO,
    "elmo": ELMo,
    "future_prediction": FuturePrediction,
    "gpt": GPT,
    "mae": MAE,
    "moco_v2": MoCoV2,
    "moco_v3": MoCoV3,
    "simclr": SimCLR,
    "simclr_vicreg": SimCLRPlusVICReg,
    "simsiam": SimSiam,
    "supervised": Supervised,
    "vicreg": VICReg,
    "word2vec": Word2Vec,
    "colorization": Colorization,
    "context_prediction": ContextPrediction,
    "inpainting": Inpainting,
}


def get_method(
    config: ml_collections.ConfigDict,
    *,
    num_steps: int | None = None,
    steps_per_epoch: int | None = None,
) -> Method:
    """The method named by `config.method`, bound to `config` (and to the run's length when training);
    wrapped in an `OnlineProbe` when config.online_probe.enabled. Without its data inputs: to run a
    method, build it with `ssl_jax.method_inputs.build_method`."""
    method_cls = method_class(config.method)
    method = method_cls(config, num_steps=num_steps, steps_per_epoch=steps_per_epoch)
    if config.get("online_probe") is not None and config.online_probe.get("enabled", False):
        method = OnlineProbe(method)
    return method


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
