"""Data: random-access image sources (arrays, IDX, image folders, .npz, tfds ArrayRecord, the
embedded Fashion-MNIST subset) and the host-side loaders the training and evaluation loops pull from.
"""

from ssl_jax.data.loader import BatchLoader, eval_batches
from ssl_jax.data.sources import (
    EMBEDDED_PATH,
    FASHION_MNIST_CLASSES,
    SOURCES,
    ArraySource,
    DatasetNotFoundError,
    ImageFolderSource,
    NpzSource,
    Source,
    TfdsSource,
    embedded_fashion_mnist,
    example_shape,
    fashion_mnist,
    get_source,
    load_idx,
)

__all__ = [
    "EMBEDDED_PATH",
    "FASHION_MNIST_CLASSES",
    "SOURCES",
    "ArraySource",
    "BatchLoader",
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
