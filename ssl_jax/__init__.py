"""ssl_jax: self-supervised pre-training and transfer in JAX/Flax."""

__version__ = "0.1.0"
