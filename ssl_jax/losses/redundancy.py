"""Redundancy-reduction losses (Barlow Twins, VICReg): statistics of the embeddings over the global batch.

Unlike the contrastive losses, these are not sums of per-example terms: each is a function of the batch's
per-dimension means, variances and (cross-)covariances, so each returns one float32 scalar for the whole
global batch. Under `jax.shard_map` (`axis_name` given) every statistic is a `psum` of per-device sums,
never a per-device estimate, so the returned value is that of one device holding the global batch, and it
is identical on every device (the training loop's `pmean` over devices leaves it unchanged).

Why psum and not all_gather: the psums move O(dim) numbers for the moments and O(dim^2) for the
(cross-)covariance matrix, whatever the batch, and each device multiplies only its own rows (Barlow Twins'
code all-reduces C the same way). Gathering the embeddings (VICReg's code) moves O(batch * dim) and makes
every device redo the whole batch's [dim, batch] x [batch, dim] product; it moves fewer bytes only when
dim exceeds the global batch. JAX differentiates through `psum`, so with the gradient taken outside the
shard_map it equals the one-device gradient; tests prove both.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from ssl_jax import parallel
from ssl_jax.losses._checks import as_float32, check_rank, check_same_shape

# The (cross-)covariance entries are compared with 1 (diagonal) and 0 (off-diagonal) and summed over
# dim^2 entries: TF32 / bf16 matmul passes (the accelerator default for float32) would cost ~1e-3 in
# each. The matmul is [batch, dim] x [dim, dim], small next to the backbone, so full float32 is cheap.
_PRECISION = jax.lax.Precision.HIGHEST


def _check_pair(z1: jax.Array, z2: jax.Array) -> tuple[jax.Array, jax.Array]:
    check_rank(z1, 2, "z1", "[batch, dim]")
    check_same_shape(z1, z2, "z1 and z2")
    return as_float32(z1, "z1"), as_float32(z2, "z2")  # fp32 whatever the activations were


def _global_batch(local_batch: int, axis_name: str | None) -> int:
    """Rows in the global batch: the local rows times the number of devices (a static int)."""
    return local_batch if axis_name is None else local_batch * jax.lax.axis_size(axis_name)


def _global_mean(z: jax.Array, n_global: int, axis_name: str | None) -> jax.Array:
    """Per-dimension mean over the global batch [dim]."""
    return parallel.psum(jnp.sum(z, axis=0), axis_name) / n_global


def _centered_sum_squares(z: jax.Array, axis_name: str | None) -> tuple[jax.Array, jax.Array]:
    """(z - global mean, per-dimension sum over the global batch of its squares).

    Two passes (centre with the global mean, then sum the squares) rather than E[z^2] - E[z]^2, which
    cancels catastrophically in float32 when the mean is large next to the spread.
    """
    n_global = _global_batch(z.shape[0], axis_name)
    centered = z - _global_mean(z, n_global, axis_name)
    return centered, parallel.psum(jnp.sum(jnp.square(centered), axis=0), axis_name)


def _sum_off_diagonal_squares(c: jax.Array) -> jax.Array:
    """sum_{i != j} c_ij^2, with the diagonal removed exactly (not subtracted from the full sum)."""
    off = c - jnp.diag(jnp.diagonal(c))
    return jnp.sum(jnp.square(off))


def barlow_twins_terms(
    z1: jax.Array,
    z2: jax.Array,
    *,
    lambda_offdiag: float = 5e-3,
    eps: float = 1e-5,
    axis_name: str | None = None,
) -> dict[str, jax.Array]:
    """Barlow Twins' loss and its two terms (Zbontar et al. 2021, eqs. 1-2), over the global batch.

    z1, z2: [batch, dim] embeddings of two views of the same examples (this device's rows when
    `axis_name` is given). Each dimension is standardized over the global batch (mean and biased
    variance, as the authors' affine-free BatchNorm in training mode; `eps` is added to the variance
    as that BatchNorm does, 1e-5, and keeps a constant dimension finite), then
    C = z1n^T z2n / N is the cross-correlation matrix of eq. 2 over the N rows of the global batch.
    Returns float32 scalars, identical on every device:
      "on_diag" = sum_i (1 - C_ii)^2 (invariance), "off_diag" = sum_{i != j} C_ij^2 (redundancy
      reduction), "loss" = on_diag + lambda_offdiag * off_diag (eq. 1).
    """
    z1, z2 = _check_pair(z1, z2)
    if lambda_offdiag < 0:
        raise ValueError(f"lambda_offdiag must be non-negative, got {lambda_offdiag}.")
    if eps < 0:
        raise ValueError(f"eps must be non-negative, got {eps}.")
    n_global = _global_batch(z1.shape[0], axis_name)

    def standardize(z):
        centered, sum_sq = _centered_sum_squares(z, axis_name)
        return centered * jax.lax.rsqrt(sum_sq / n_global + eps)

    # Each device multiplies its own rows; the psum adds the per-device products into the global
    # C (the authors' all_reduce of c). [dim, dim], equal on every device.
    local = jnp.matmul(standardize(z1).T, standardize(z2), precision=_PRECISION)
    c = parallel.psum(local, axis_name) / n_global
    on_diag = jnp.sum(jnp.square(1.0 - jnp.diagonal(c)))
    off_diag = _sum_off_diagonal_squares(c)
    return {"loss": on_diag + lambda_offdiag * off_diag, "on_diag": on_diag, "off_diag": off_diag}


def barlow_twins_loss(
    z1: jax.Array,
    z2: jax.Array,
    *,
    lambda_offdiag: float = 5e-3,
    eps: float = 1e-5,
    axis_name: str | None = None,
) -> jax.Array:
    """Barlow Twins (Zbontar et al. 2021, eq. 1): sum_i (1 - C_ii)^2 + lambda * sum_{i != j} C_ij^2.

    z1, z2: [batch, dim] embeddings of two views (this device's rows under `axis_name`); C is their
    cross-correlation over the global batch (see `barlow_twins_terms`). Not a per-example loss:
    returns a float32 scalar for the global batch, identical on every device.
    """
    terms = barlow_twins_terms(z1, z2, lambda_offdiag=lambda_offdiag, eps=eps, axis_name=axis_name)
    return terms["loss"]


def vicreg_terms(
    z1: jax.Array,
    z2: jax.Array,
    *,
    sim_coeff: float = 25.0,
    std_coeff: float = 25.0,
    cov_coeff: float = 1.0,
    eps: float = 1e-4,
    axis_name: str | None = None,
) -> dict[str, jax.Array]:
    """VICReg's loss and its three terms (Bardes et al. 2022, eqs. 1-6 and Algorithm 1), global batch.

    z1, z2: [batch, dim] embeddings of two views (this device's rows under `axis_name`); N rows and
    d dimensions in the global batch. With Algorithm 1's normalizations:
      "invariance" s = 1/(N d) sum_b ||z1_b - z2_b||^2 (the mean squared error of Algorithm 1 and the
        authors' code; eq. 5 as printed sums over the d dimensions, the published coefficients go with
        the mean);
      "variance" v(z1) + v(z2), v(Z) = 1/d sum_j max(0, 1 - sqrt(Var(Z_:j) + eps)) (eq. 1, gamma = 1,
        unbiased variance over the global batch);
      "covariance" c(z1) + c(z2), c(Z) = 1/d sum_{i != j} Cov(Z)_ij^2 (eqs. 3-4, Cov over the global
        batch with 1/(N - 1));
      "loss" = sim_coeff * s + std_coeff * variance + cov_coeff * covariance (eq. 6).
    The authors' repository halves the variance term (mean over the two branches), i.e. std_coeff / 2
    here. Returns float32 scalars, identical on every device.
    """
    z1, z2 = _check_pair(z1, z2)
    for name, value in (
        ("sim_coeff", sim_coeff),
        ("std_coeff", std_coeff),
        ("cov_coeff", cov_coeff),
    ):
        if value < 0:
            raise ValueError(f"{name} must be non-negative, got {value}.")
    if eps <= 0:
        raise ValueError(f"eps must be positive (it keeps sqrt differentiable at 0), got {eps}.")
    n_local, dim = z1.shape
    n_global = _global_batch(n_local, axis_name)
    if n_global < 2:
        raise ValueError(
            f"VICReg's variance needs at least 2 rows in the global batch, got {n_global}."
        )

    sq_diff = parallel.psum(jnp.sum(jnp.square(z1 - z2)), axis_name)
    invariance = sq_diff / (n_global * dim)

    def variance_and_covariance(z):
        centered, sum_sq = _centered_sum_squares(z, axis_name)
        std = jnp.sqrt(sum_sq / (n_global - 1) + eps)
        variance = jnp.mean(jax.nn.relu(1.0 - std))
        cov = parallel.psum(jnp.matmul(centered.T, centered, precision=_PRECISION), axis_name) / (
            n_global - 1
        )
        return variance, _sum_off_diagonal_squares(cov) / dim

    v1, c1 = variance_and_covariance(z1)
    v2, c2 = variance_and_covariance(z2)
    variance, covariance = v1 + v2, c1 + c2
    loss = sim_coeff * invariance + std_coeff * variance + cov_coeff * covariance
    return {
        "loss": loss,
        "invariance": invariance,
        "variance": variance,
        "covariance": covariance,
    }


def vicreg_loss(
    z1: jax.Array,
    z2: jax.Array,
    *,
    sim_coeff: float = 25.0,
    std_coeff: float = 25.0,
    cov_coeff: float = 1.0,
    eps: float = 1e-4,
    axis_name: str | None = None,
) -> jax.Array:
    """VICReg (Bardes et al. 2022, eq. 6): lambda s(z1, z2) + mu [v(z1) + v(z2)] + nu [c(z1) + c(z2)].

    z1, z2: [batch, dim] embeddings of two views (this device's rows under `axis_name`); the variance
    and covariance are taken over the global batch (see `vicreg_terms`). Not a per-example loss:
    returns a float32 scalar for the global batch, identical on every device.
    """
    terms = vicreg_terms(
        z1,
        z2,
        sim_coeff=sim_coeff,
        std_coeff=std_coeff,
        cov_coeff=cov_coeff,
        eps=eps,
        axis_name=axis_name,
    )
    return terms["loss"]
