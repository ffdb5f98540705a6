"""What methods need from data and from other runs, read here, above them: the one hook by which a
method gets it.

A method is model code (ARCHITECTURE.md): it reads no dataset, file or checkpoint. When it needs
something from them (colorization the ab histogram of its training images, word2vec the corpus's
vocabulary, BART the tokenizer, future prediction phi from another workdir) it names it in
`Method.data_inputs()`. `build_method` builds the method, computes each named input with the provider
registered under that name below, from the config, and hands them over by `method.bind`. Training,
evaluation and the benchmarks build every method they run with `build_method`
(tests/test_architecture.py checks that nothing else in the package or benchmarks calls `get_method`),
so none can forget an input; a method used without one fails naming it.

A new input: a function fn(config) -> value decorated with `@provides("name")` here; the method lists
"name" in `data_inputs()` and reads the value with `self.data_input("name")`.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import ml_collections
import numpy as np

from ssl_jax import checkpoint, config_util, data
from ssl_jax.augment import pretext
from ssl_jax.methods import Method, get_method, method_class

# input name -> fn(config) -> value
PROVIDERS: dict[str, Callable[[ml_collections.ConfigDict], Any]] = {}


def provides(name: str) -> Callable:
    """Decorator: `fn(config)` computes the data input `name`."""

    def add(fn: Callable[[ml_collections.ConfigDict], Any]) -> Callable:
        PROVIDERS[name] = fn
        return fn

    return add


def build_method(
    config: ml_collections.ConfigDict,
    *,
    num_steps: int | None = None,
    steps_per_epoch: int | None = None,
) -> Method:
    """`methods.get_method(config, ...)` with the data inputs it names computed and bound: the way to
    build a method to train (num_steps, steps_per_epoch given) or to evaluate."""
    method = get_method(config, num_steps=num_steps, steps_per_epoch=steps_per_epoch)
    return method.bind({name: PROVIDERS[name](config) for name in method.data_inputs()})


# ---- colorization


@provides("ab_counts")
def ab_counts(config: ml_collections.ConfigDict) -> np.ndarray:
    """Pixel counts per ab bin [Q] (config.colorization.grid_size) of up to
    config.colorization.prior_examples training images, rows drawn with config.seed."""
    cfg = config.colorization
    grid = pretext.ab_grid(float(cfg.grid_size))
    source = data.get_source(config.data, "train")
    n = min(len(source), int(cfg.prior_examples))
    rows = np.sort(np.random.default_rng(config.seed).choice(len(source), n, replace=False))
    counts = np.zeros(grid.num_bins)
    for start in range(0, n, 256):
        images = source.get(rows[start : start + 256])["image"]
        if images.shape[-1] != 3:
            raise ValueError(
                f"Colorization needs RGB images; {source.name!r} has {images.shape[-1]} channel(s)."
            )
        counts += pretext.ab_histogram(images, grid)
    return counts


# ---- word2vec


def _skipgram_source(config: ml_collections.ConfigDict) -> Any:
    source = data.get_source(config.data, "train")
    if not hasattr(source, "vocab"):
        raise ValueError(
            f"word2vec trains on a skip-gram source (config.data.name='skipgram_text'), "
            f"not {source.name!r}."
        )
    return source


@provides("vocab")
def vocab(config: ml_collections.ConfigDict) -> Any:
    """The skip-gram source's vocabulary (words, counts), built from the train split."""
    return _skipgram_source(config).vocab


@provides("window")
def window(config: ml_collections.ConfigDict) -> int:
    """The skip-gram source's window: a row holds 2 * window context ids."""
    return _skipgram_source(config).window


# ---- text


@provides("tokenizer")
def tokenizer(config: ml_collections.ConfigDict) -> Any:
    """The training source's tokenizer."""
    return data.get_source(config.data, "train").tokenizer


# ---- future prediction: phi, from config.future.phi_workdir


@provides("phi_method")
def phi_method(config: ml_collections.ConfigDict) -> Callable[[int], Method]:
    """image_size -> the method saved in phi_workdir, set to encode images of that size."""
    workdir = config.future.phi_workdir
    saved = config_util.load_saved(workdir)
    key = method_class(saved.method).batch_keys[0]
    if key != "image":
        raise ValueError(
            f"phi must be an image encoder; {workdir!r} holds a {saved.method!r} run on {key!r}."
        )

    @functools.lru_cache(maxsize=4)  # a handful of sizes per run
    def at_size(image_size: int) -> Method:
        phi_config = ml_collections.ConfigDict(saved.to_dict())
        phi_config.data.image_size = image_size
        # Only `encode` is used, and an image method encodes with no data input of its own.
        return get_method(phi_config)

    return at_size


def _phi_step(config: ml_collections.ConfigDict) -> int | None:
    return int(config.future.get("phi_step", 0)) or None


@provides("phi_variables")
def phi_variables(config: ml_collections.ConfigDict) -> Any:
    """phi's variables (numpy), the encoder item of phi_workdir's checkpoint (config.future.phi_step,
    or the latest). Read here, outside any jit: `init` runs traced, where Orbax cannot build arrays."""
    encoder, _ = checkpoint.load_encoder(config.future.phi_workdir, _phi_step(config))
    return encoder


@provides("phi_shapes")
def phi_shapes(config: ml_collections.ConfigDict) -> Any:
    """What `phi_variables` would return, as `jax.ShapeDtypeStruct`s from the checkpoint's metadata."""
    return checkpoint.encoder_shapes(config.future.phi_workdir, _phi_step(config))
