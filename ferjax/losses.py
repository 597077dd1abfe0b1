"""Softmax cross-entropy (SL) and the center loss of Wen et al. 2016 (TL = SL + lambda x CL),
by default per feature unit (`reduction="mean"`; see LossConfig.center_reduction).

The class centers are not trained by the optimiser: the loss sees them as constants and
`update_centers` moves them by Wen's rule inside the same jitted step.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp


def softmax_cross_entropy(logits: jax.Array, targets: jax.Array) -> jax.Array:
    """Mean over the batch of -sum_k t_k log softmax(z)_k, for any target distribution t."""
    return -jnp.mean(jnp.sum(targets * jax.nn.log_softmax(logits), axis=-1))


def center_loss(features: jax.Array, labels: jax.Array, centers: jax.Array,
                reduction: str = "mean") -> jax.Array:
    """0.5 x mean over the batch of ||f_i - c_{y_i}||^2 ("sum", Wen et al.'s), or of its mean
    over the feature units ("mean"); centers held constant."""
    diff = features - jax.lax.stop_gradient(centers)[labels]
    per_image = jnp.sum(diff * diff, axis=-1)
    if reduction == "mean":
        per_image = per_image / features.shape[-1]
    return 0.5 * jnp.mean(per_image)


def update_centers(centers: jax.Array, features: jax.Array, labels: jax.Array,
                   alpha: jax.Array, weights: jax.Array | None = None) -> jax.Array:
    """Wen et al. (2016), eq. 4: c_j <- c_j - alpha * sum_{i:y_i=j}(c_j - f_i) / (1 + n_j)."""
    one_hot = jax.nn.one_hot(labels, centers.shape[0], dtype=features.dtype)
    if weights is not None:
        one_hot = one_hot * weights[:, None]
    counts = one_hot.sum(axis=0)                                   # n_j
    sums = one_hot.T @ jax.lax.stop_gradient(features)             # sum_{i:y_i=j} f_i
    delta = (counts[:, None] * centers - sums) / (1.0 + counts[:, None])
    return centers - alpha * delta


def center_loss_weight(lam: jax.Array, step: jax.Array, ramp_steps: int = 0) -> jax.Array:
    """lam after the schedule: linear from 0 up to lam over the first ramp_steps."""
    if not ramp_steps:
        return lam
    progress = jnp.asarray(step, jnp.float32) / ramp_steps
    return lam * jnp.clip(progress, 0.0, 1.0)


def total_loss(logits, features, targets, labels, centers, lam, reduction: str = "mean"):
    ce = softmax_cross_entropy(logits, targets)
    cl = center_loss(features, labels, centers, reduction)
    return ce + lam * cl, (ce, cl)
