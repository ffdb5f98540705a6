"""Data: random-access image sources (arrays, IDX, image folders, .npz, tfds ArrayRecord, the
embedded Fashion-MNIST subset), text, caption, clip, signal and skip-gram sources, and the host-side
loaders the training and evaluation loops pull from.

`get_source(data_cfg, split)` picks a source by `data_cfg.name` from `SOURCES`
(ssl_jax.data.registry), which each source module fills when it is imported; the imports below bring
in every source module, so every name is registered once ssl_jax.data is imported.
"""

from ssl_jax.data import (  # noqa: F401  (imported to register their sources)
    captions,
    color_samples,
    sequences,
    signals,
    skipgram,
    subsets,
    text,
)
from ssl_jax.data.common import DatasetNotFoundError
from ssl_jax.data.loader import eval_batches
from ssl_jax.data.registry import SOURCES, Source, example_shape, get_source
from ssl_jax.data.sources import (
    EMBEDDED_PATH,
    FASHION_MNIST_CLASSES,
    ArraySource,
    ImageFolderSource,
    NpzSource,
    TfdsSource,
    embedded_fashion_mnist,
    fashion_mnist,
    load_idx,
)

__all__ = [
    "EMBEDDED_PATH",
    "FASHION_MNIST_CLASSES",
    "SOURCES",
    "ArraySource",
    "DatasetNotFoundError",
    "ImageFolderSource",
    "NpzSource",
    "Source",
    "TfdsSource",
    "embedded_fashion_mnist",
    "eval_batches",
    "example_shape",
    "fashion_mnist",
    "get_source",
    "load_idx",
]
