"""The registry of method-specific evaluation protocols.

A protocol that only makes sense for some methods (a language model's perplexity, BERT's masked
accuracy, fine-tuning a whole text model) is registered here against the method class it needs:

    @protocols.register(GPT, "perplexity")
    def gpt_perplexity(config, encoder_variables, *, mesh=None, method, split="validation"): ...

`for_method(method)` gives every protocol registered on the method's class or a base of it (the most
derived class wins a name), each bound to `method`; ssl_jax.transfer.evaluate selects them by name
(config.eval.protocols, `ssl-jax evaluate --protocol`) beside the generic ones (kNN, linear, ...).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

from ssl_jax.methods.online_probe import OnlineProbe

# method class -> protocol name -> (fn, keyword arguments bound with it)
_REGISTRY: dict[type, dict[str, tuple[Callable[..., dict[str, Any]], dict[str, Any]]]] = {}


def register(method_class: type, name: str, **bound: Any) -> Callable:
    """Decorator: `fn(config, encoder_variables, *, mesh, method, **bound)` is protocol `name` of
    `method_class` and its subclasses. Returns fn unchanged, so one fn can be registered twice."""

    def add(fn: Callable[..., dict[str, Any]]) -> Callable[..., dict[str, Any]]:
        _REGISTRY.setdefault(method_class, {})[name] = (fn, bound)
        return fn

    return add


def for_method(method: Any) -> dict[str, Callable[..., dict[str, Any]]]:
    """name -> fn(config, encoder_variables, *, mesh) for every protocol registered on a class of
    `method` (a wrapper such as OnlineProbe is looked through to the method it wraps)."""
    if isinstance(method, OnlineProbe):
        method = method.method
    found: dict[str, Callable[..., dict[str, Any]]] = {}
    for cls in reversed(type(method).__mro__):  # base classes first: a subclass overrides a name
        for name, (fn, bound) in _REGISTRY.get(cls, {}).items():
            found[name] = functools.partial(fn, method=method, **bound)
    return found
