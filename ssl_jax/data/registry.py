"""The source registry: config.data.name -> a function (data_cfg, split) -> Source.

Each source module registers its names when it is imported (`@register("npz")`), and
`ssl_jax/data/__init__.py` imports every source module, so `get_source` knows all of them as soon as
any part of ssl_jax.data is imported. This module imports no source module.

  >>> from ssl_jax.data import get_source
  >>> get_source({"name": "embedded_fashion_mnist"}, "test").image_shape
  (28, 28, 1)
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol, runtime_checkable

import numpy as np

from ssl_jax.data.common import config_field


@runtime_checkable
class Source(Protocol):
    """What the loaders need from a dataset."""

    name: str
    image_shape: tuple[int, int, int]
    num_classes: int | None

    def __len__(self) -> int: ...

    def get(self, indices: np.ndarray) -> dict[str, np.ndarray]: ...


SourceFactory = Callable[[Any, str], Source]

#: config.data.name -> factory(data_cfg, split). Filled by the source modules' `register` calls.
SOURCES: dict[str, SourceFactory] = {}


def register(name: str) -> Callable[[SourceFactory], SourceFactory]:
    """A decorator that makes `factory(data_cfg, split)` the source `config.data.name = name`."""

    def decorate(factory: SourceFactory) -> SourceFactory:
        if name in SOURCES and SOURCES[name] is not factory:
            raise ValueError(f"a data source named {name!r} is already registered")
        SOURCES[name] = factory
        return factory

    return decorate


def get_source(data_cfg: Any, split: str) -> Source:
    """The source named by `data_cfg.name` (a key of SOURCES) for `split` ("train" or "test")."""
    name = config_field(data_cfg, "name")
    if name not in SOURCES:
        raise ValueError(f"unknown data.name {name!r}; valid names: {', '.join(sorted(SOURCES))}")
    return SOURCES[name](data_cfg, split)


def example_shape(source: Source, key: str = "image") -> tuple[int, ...]:
    """The shape of one example's `key` field ([H, W, C] for "image", [L] for "tokens")."""
    return tuple(np.asarray(source.get(np.zeros(1, np.int64))[key]).shape[1:])
