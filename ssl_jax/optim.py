"""Optimizer factory: LARS / SGD / AdamW / LAMB chosen by name, warm-up + cosine schedules, decay masks.

`make_optimizer(config.optim, total_steps)` is the only entry point the training loop needs. Weight decay
and LARS/LAMB trust-ratio adaptation skip biases and normalisation parameters, as SimCLR and BYOL train.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Collection, Mapping
from typing import Any

import jax
import optax

# Leaf names that are never decayed nor trust-ratio adapted, whatever their rank: flax names every bias
# and every norm scale this way, and attention projections have 2-D biases that `ndim > 1` alone misses.
NO_DECAY_NAMES = ("bias", "scale")

LR_SCALING_RULES: dict[str, Callable[[float, int], float]] = {
    "linear": lambda base_lr, batch_size: base_lr * batch_size / 256,  # SimCLR / BYOL with LARS
    "sqrt": lambda base_lr, batch_size: (
        base_lr * math.sqrt(batch_size)
    ),  # SimCLR's small-batch rule
    "none": lambda base_lr, batch_size: base_lr,
}


def warmup_cosine_schedule(
    peak_lr: float, total_steps: int, warmup_steps: int, end_lr: float = 0.0
) -> optax.Schedule:
    """Linear warm-up from 0 to `peak_lr` over `warmup_steps`, then cosine decay to `end_lr` at
    `total_steps` (held there after)."""
    if total_steps <= 0 or not 0 <= warmup_steps < total_steps:
        raise ValueError(
            f"Need 0 <= warmup_steps < total_steps; got warmup_steps={warmup_steps}, "
            f"total_steps={total_steps}."
        )
    # optax's cosine takes the floor as a fraction of the peak; a zero peak has no decay to scale.
    alpha = end_lr / peak_lr if peak_lr else 0.0
    cosine = optax.cosine_decay_schedule(peak_lr, total_steps - warmup_steps, alpha=alpha)
    if warmup_steps == 0:
        return cosine
    warmup = optax.linear_schedule(0.0, peak_lr, warmup_steps)
    return optax.join_schedules([warmup, cosine], [warmup_steps])


def scaled_learning_rate(base_lr: float, batch_size: int, rule: str) -> float:
    """The peak learning rate for `batch_size` under `rule`: "linear" (base * B / 256), "sqrt"
    (base * sqrt(B)) or "none"."""
    try:
        scale_fn = LR_SCALING_RULES[rule]
    except KeyError:
        raise ValueError(
            f"Unknown lr_scaling {rule!r}; valid rules: {', '.join(LR_SCALING_RULES)}."
        ) from None
    return scale_fn(base_lr, batch_size)


def decay_mask(params: Any, *, exclude: Collection[str] = ()) -> Any:
    """A tree of bools like `params`: True for weights (kernels, embeddings: ndim > 1), False for biases
    and normalisation scales/biases, and for leaves whose name is in `exclude` (e.g. a ViT's "cls_token").
    """
    excluded = set(NO_DECAY_NAMES) | set(exclude)

    def is_decayed(path: tuple, leaf: Any) -> bool:
        last = path[-1] if path else None
        name = getattr(last, "key", getattr(last, "name", None))
        return leaf.ndim > 1 and name not in excluded

    return jax.tree_util.tree_map_with_path(is_decayed, params)


def _get(cfg: Any, key: str, default: Any = None) -> Any:
    # ConfigDict and dict both have .get; reading through it lets configs omit optional fields.
    value = cfg.get(key, default)
    return default if value is None else value


def _lars(cfg: Any, lr: optax.Schedule, mask: Callable[[Any], Any]) -> optax.GradientTransformation:
    return optax.lars(
        lr,
        weight_decay=_get(cfg, "weight_decay", 0.0),
        weight_decay_mask=mask,
        trust_coefficient=_get(cfg, "trust_coefficient", 0.001),
        trust_ratio_mask=mask,
        momentum=_get(cfg, "momentum", 0.9),
        nesterov=_get(cfg, "nesterov", False),
    )


def _sgd(cfg: Any, lr: optax.Schedule, mask: Callable[[Any], Any]) -> optax.GradientTransformation:
    # L2 added to the gradient before momentum, as torch.optim.SGD's weight_decay (MoCo, supervised
    # ResNets), but only on the masked-in weights.
    return optax.chain(
        optax.add_decayed_weights(_get(cfg, "weight_decay", 0.0), mask=mask),
        optax.sgd(lr, momentum=_get(cfg, "momentum", 0.9), nesterov=_get(cfg, "nesterov", False)),
    )


def _adamw(
    cfg: Any, lr: optax.Schedule, mask: Callable[[Any], Any]
) -> optax.GradientTransformation:
    return optax.adamw(
        lr,
        b1=_get(cfg, "b1", 0.9),
        b2=_get(cfg, "b2", 0.999),
        eps=_get(cfg, "eps", 1e-8),
        weight_decay=_get(cfg, "weight_decay", 0.0),
        mask=mask,
    )


def _lamb(cfg: Any, lr: optax.Schedule, mask: Callable[[Any], Any]) -> optax.GradientTransformation:
    # optax.lamb masks only the decay; BERT's LAMB also exempts biases and norms from layer adaptation
    # (exclude_from_layer_adaptation), so the chain is spelled out with the trust ratio masked too.
    return optax.chain(
        optax.scale_by_adam(
            b1=_get(cfg, "b1", 0.9), b2=_get(cfg, "b2", 0.999), eps=_get(cfg, "eps", 1e-6)
        ),
        optax.add_decayed_weights(_get(cfg, "weight_decay", 0.0), mask=mask),
        optax.masked(optax.scale_by_trust_ratio(), mask),
        optax.scale_by_learning_rate(lr),
    )


OPTIMIZERS: dict[str, Callable[..., optax.GradientTransformation]] = {
    "lars": _lars,
    "sgd": _sgd,
    "adamw": _adamw,
    "lamb": _lamb,
}


def make_optimizer(
    optim_cfg: Mapping[str, Any] | Any, total_steps: int
) -> tuple[optax.GradientTransformation, optax.Schedule]:
    """The optimizer named by `optim_cfg.name` on a warm-up + cosine schedule, and that schedule.

    Fields: name, learning_rate (base), lr_scaling ("linear" | "sqrt" | "none", default "none"),
    batch_size (global; needed unless lr_scaling is "none"), warmup_steps, end_lr, weight_decay,
    momentum, nesterov (lars, sgd), trust_coefficient (lars), b1, b2, eps (adamw, lamb),
    grad_clip_norm (global-norm clipping before everything else), no_decay_names (extra leaf names
    kept out of decay and trust ratio).
    """
    name = _get(optim_cfg, "name")
    if name not in OPTIMIZERS:
        raise ValueError(f"Unknown optimizer {name!r}; valid names: {', '.join(OPTIMIZERS)}.")
    rule = _get(optim_cfg, "lr_scaling", "none")
    batch_size = _get(optim_cfg, "batch_size")
    if rule != "none" and batch_size is None:
        raise ValueError(f"lr_scaling={rule!r} needs optim batch_size (the global batch size).")
    peak_lr = scaled_learning_rate(optim_cfg["learning_rate"], batch_size or 0, rule)
    schedule = warmup_cosine_schedule(
        peak_lr, total_steps, _get(optim_cfg, "warmup_steps", 0), _get(optim_cfg, "end_lr", 0.0)
    )
    exclude = tuple(_get(optim_cfg, "no_decay_names", ()))

    def mask_fn(params: Any) -> Any:
        return decay_mask(params, exclude=exclude)

    tx = OPTIMIZERS[name](optim_cfg, schedule, mask_fn)
    clip = _get(optim_cfg, "grad_clip_norm")
    if clip:
        tx = optax.chain(optax.clip_by_global_norm(clip), tx)
    return tx, schedule
