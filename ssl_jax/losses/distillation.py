"""Self-distillation losses: DINO (Caron et al. 2021, "Emerging Properties in Self-Supervised Vision
Transformers", Algorithm 1 and Sec. 3.1).

The teacher's outputs over K prototypes are centred (a running mean over the global batch is subtracted)
and sharpened (a low temperature), the student's are softened (a higher temperature), and the student
predicts the teacher's distribution of every other view: H(P_t(x_g), P_s(x_v)) for each teacher (global)
crop g and each student crop v != g. Centring alone would flatten, sharpening alone would collapse to one
prototype; together they avoid both.
"""

from __future__ import annotations

from collections.abc import Sequence

import jax
import jax.numpy as jnp

from ssl_jax.losses._checks import as_float32, check_rank


def _stack(logits: jax.Array | Sequence[jax.Array], name: str) -> jax.Array:
    if not isinstance(logits, jax.Array) and isinstance(logits, Sequence):
        logits = [as_float32(x, name) for x in logits]
        logits = jnp.stack(logits) if logits else jnp.zeros((0,), jnp.float32)
    x = as_float32(logits, name)
    check_rank(x, 3, name, "[crops, batch, K]")
    return x


def _teacher_probs(teacher: jax.Array, center: jax.Array, teacher_temp) -> jax.Array:
    # softmax subtracts the row max before exponentiating; no gradient reaches the teacher or the centre.
    probs = jax.nn.softmax((teacher - center) / teacher_temp, axis=-1)
    return jax.lax.stop_gradient(probs)


def _check(student: jax.Array, teacher: jax.Array, center: jax.Array) -> None:
    n_crops, batch, k = student.shape
    n_global = teacher.shape[0]
    if teacher.shape[1:] != (batch, k):
        raise ValueError(
            f"teacher_logits {teacher.shape} must be [n_global, {batch}, {k}] like student_logits "
            f"{student.shape}."
        )
    if not 1 <= n_global <= n_crops:
        raise ValueError(
            f"The student's first {n_global} crops must be the teacher's global crops; got "
            f"{n_crops} student crops."
        )
    if n_crops * n_global - n_global == 0:
        raise ValueError(
            "DINO needs at least two crops (one teacher crop and another student crop)."
        )
    if center.shape != (k,):
        raise ValueError(f"center must be [{k}], got {center.shape}.")


def _pairwise(
    student: jax.Array, teacher: jax.Array, center: jax.Array, student_temp, teacher_temp
) -> tuple[jax.Array, jax.Array, jax.Array]:
    """Cross-entropies [G, V, b] of every (teacher crop g, student crop v), the pair mask [G, V] (v != g)
    and the teacher probabilities [G, b, K]."""
    q = _teacher_probs(teacher, center, teacher_temp)
    log_p = jax.nn.log_softmax(student / student_temp, axis=-1)
    cross_entropy = -jnp.einsum("gbk,vbk->gvb", q, log_p)
    n_global, n_crops = teacher.shape[0], student.shape[0]
    # Student crop v < n_global is the same view as teacher crop g = v: that pair is skipped.
    mask = jnp.arange(n_global)[:, None] != jnp.arange(n_crops)[None, :]
    return cross_entropy, mask, q


def dino_loss(
    student_logits: jax.Array | Sequence[jax.Array],
    teacher_logits: jax.Array | Sequence[jax.Array],
    center: jax.Array,
    *,
    student_temp: float = 0.1,
    teacher_temp: float | jax.Array,
) -> jax.Array:
    """DINO's loss (Caron et al. 2021, Algorithm 1 and Eq. 3), per example.

    student_logits: [n_crops, b, K] (or a list of [b, K]), the global crops first, in the teacher's order.
    teacher_logits: [n_global, b, K] (or a list), the teacher's outputs on the global crops.
    center: [K], the running mean of the teacher's outputs (see `update_center`).
    teacher_temp may be a traced scalar (DINO warms it up). Returns [b] float32: the mean over the
    n_global * n_crops - n_global pairs (g, v != g) of -sum_k P_t(g)_k log P_s(v)_k, with
    P_t = softmax((t - center) / teacher_temp) (no gradient) and P_s = softmax(s / student_temp).
    """
    student = _stack(student_logits, "student_logits")
    teacher = _stack(teacher_logits, "teacher_logits")
    center = as_float32(center, "center")
    _check(student, teacher, center)
    cross_entropy, mask, _ = _pairwise(student, teacher, center, student_temp, teacher_temp)
    n_pairs = teacher.shape[0] * student.shape[0] - teacher.shape[0]
    return jnp.sum(jnp.where(mask[:, :, None], cross_entropy, 0.0), axis=(0, 1)) / n_pairs


def dino_statistics(
    student_logits: jax.Array | Sequence[jax.Array],
    teacher_logits: jax.Array | Sequence[jax.Array],
    center: jax.Array,
    *,
    student_temp: float = 0.1,
    teacher_temp: float | jax.Array,
) -> dict[str, jax.Array]:
    """DINO's collapse indicators (Caron et al. 2021, Sec. 5.3 / Fig. 7), per example ([b] each).

    "teacher_entropy": entropy of the centred, sharpened teacher distribution, averaged over global crops
    (0 when one prototype dominates, log K when uniform); "kl": KL(P_t || P_s) averaged over the loss's
    pairs (0 at either collapse, since the student then matches the teacher trivially). The loss is their
    sum. No gradient is meant to flow through these (they are for logging).
    """
    student = _stack(student_logits, "student_logits")
    teacher = _stack(teacher_logits, "teacher_logits")
    center = as_float32(center, "center")
    _check(student, teacher, center)
    cross_entropy, mask, q = _pairwise(student, teacher, center, student_temp, teacher_temp)
    # q log q with 0 log 0 = 0: a sharpened softmax underflows to exact zeros.
    entropy = -jnp.sum(jnp.where(q > 0, q * jnp.log(jnp.where(q > 0, q, 1.0)), 0.0), axis=-1)
    kl = jnp.where(mask[:, :, None], cross_entropy - entropy[:, None, :], 0.0)
    n_pairs = teacher.shape[0] * student.shape[0] - teacher.shape[0]
    return {
        "teacher_entropy": jnp.mean(entropy, axis=0),
        "kl": jnp.sum(kl, axis=(0, 1)) / n_pairs,
    }


def teacher_batch_center(teacher_logits: jax.Array, axis_name: str | None = None) -> jax.Array:
    """The mean of the teacher's outputs [..., K] over every leading axis and, with `axis_name`, over the
    devices: the mean over the global batch (every device holds the same number of rows). Returns [K]."""
    t = as_float32(teacher_logits, "teacher_logits")
    if t.ndim < 1:
        raise ValueError(f"teacher_logits must be [..., K], got shape {t.shape}.")
    mean = jnp.mean(t.reshape(-1, t.shape[-1]), axis=0)
    return mean if axis_name is None else jax.lax.pmean(mean, axis_name)


def update_center(
    center: jax.Array,
    teacher_logits: jax.Array,
    momentum: float | jax.Array,
    axis_name: str | None = None,
) -> jax.Array:
    """DINO's centre update (Eq. 4): c <- m c + (1 - m) mean(teacher outputs over the global batch).

    teacher_logits: [..., K] (e.g. [n_global, b, K]; a [K] batch mean is its own mean), this device's rows
    when `axis_name` is given. Returns the new centre [K] float32 (identical on every device).
    """
    center = as_float32(center, "center")
    batch_center = jax.lax.stop_gradient(teacher_batch_center(teacher_logits, axis_name))
    if batch_center.shape != center.shape:
        raise ValueError(
            f"center {center.shape} and teacher outputs [..., {batch_center.shape[0]}]."
        )
    return momentum * center + (1.0 - momentum) * batch_center
