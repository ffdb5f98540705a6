"""Self-supervised losses: pure functions of arrays (no Flax, no config, no I/O), one module per family.

Each returns per-example values and lets the caller reduce; each takes `axis_name` where it spans devices.
"""

from ssl_jax.losses.contrastive import nt_xent

__all__ = ["nt_xent"]
