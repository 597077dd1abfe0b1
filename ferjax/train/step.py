"""The pure, jittable train and eval steps of one run, on preprocessed batches. A group of
runs vmaps these over stacked states (ferjax.train.group), after augmenting the batch once."""
from __future__ import annotations

import jax
import jax.numpy as jnp

from ferjax.classes import NUM_CLASSES
from ferjax.losses import center_loss_weight, total_loss, update_centers
from ferjax.train.state import TrainState


def sample_one_hot(key: jax.Array, targets: jax.Array) -> jax.Array:
    """The FERPlus 'probability' mode: draw one class per image from its vote distribution."""
    draws = jax.random.categorical(key, jnp.log(jnp.maximum(targets, 1e-12)))
    return jax.nn.one_hot(draws, targets.shape[-1], dtype=targets.dtype)


def smooth(targets: jax.Array, amount: float) -> jax.Array:
    return targets * (1.0 - amount) + amount / targets.shape[-1] if amount else targets


def train_step(state: TrainState, batch: dict, sample_targets: bool = False,
               label_smoothing: float = 0.0, lam_ramp_steps: int = 0, center_reduction: str = "mean"):
    """One optimiser step on softmax CE + lam x center loss, and Wen's center update.
    The center-loss weight grows linearly from 0 to lam over the first lam_ramp_steps."""
    dropout_key, sample_key = jax.random.split(jax.random.fold_in(state.rng, state.step))
    targets = sample_one_hot(sample_key, batch["target"]) if sample_targets else batch["target"]
    targets = smooth(targets, label_smoothing)
    labels = batch["label"]
    lam = center_loss_weight(state.lam, state.step, lam_ramp_steps)

    def loss_fn(params):
        (logits, features), updates = state.apply_fn(
            {"params": params, "batch_stats": state.batch_stats}, batch["image"], train=True,
            rngs={"dropout": dropout_key}, mutable=["batch_stats"])
        loss, (ce, cl) = total_loss(logits, features, targets, labels, state.centers, lam,
                                     center_reduction)
        return loss, (logits, features, ce, cl, updates.get("batch_stats", state.batch_stats))

    grads, (logits, features, ce, cl, batch_stats) = jax.grad(loss_fn, has_aux=True)(state.params)
    new_state = state.apply_gradients(grads=grads).replace(
        batch_stats=batch_stats,
        centers=update_centers(state.centers, features, labels, state.alpha))
    metrics = {"loss": ce + lam * cl, "ce": ce, "center": cl,
               "correct": jnp.sum(jnp.argmax(logits, -1) == labels).astype(jnp.float32),
               "count": jnp.asarray(labels.shape[0], jnp.float32)}
    return new_state, metrics


def predict_probs(apply_fn, variables: dict, images: jax.Array, flip: bool = False,
                  class_bias: jax.Array | None = None) -> jax.Array:
    """Softmax of the model at inference; flip: the mean with the mirrored faces' softmax;
    class_bias: per-class log offsets (ferjax/class_bias.py), applied last."""
    if flip:
        # One forward of each face beside its mirror: two forwards in one program took 3x as
        # long as one on XLA:CPU, not 2x (benchmarks/README.md, "The training loop and its
        # augmentation").
        # Interleaved, so that each face's mirror sits in the same batch shard as the face.
        b = images.shape[0]
        both = jnp.stack([images, images[:, :, ::-1]], axis=1).reshape(2 * b, *images.shape[1:])
        probs = jax.nn.softmax(apply_fn(variables, both, train=False)[0], axis=-1)
        probs = probs.reshape(b, 2, -1).mean(axis=1)
    else:
        probs = jax.nn.softmax(apply_fn(variables, images, train=False)[0], axis=-1)
    if class_bias is not None:
        probs = probs * jnp.exp(class_bias)
        probs = probs / jnp.sum(probs, axis=-1, keepdims=True)
    return probs


def eval_step(apply_fn, variables: dict, batch: dict, flip: bool = False,
              class_bias: jax.Array | None = None) -> dict:
    """Sums over the batch (padding masked out): correct, count, loss and the confusion matrix."""
    probs = predict_probs(apply_fn, variables, batch["image"], flip, class_bias)
    mask = batch.get("mask", jnp.ones(batch["label"].shape, jnp.float32))
    pred = jnp.argmax(probs, -1)
    nll = -jnp.sum(batch["target"] * jnp.log(jnp.maximum(probs, 1e-12)), axis=-1)
    confusion = jnp.zeros((NUM_CLASSES, NUM_CLASSES), jnp.float32).at[batch["label"], pred].add(mask)
    return {"correct": jnp.sum(mask * (pred == batch["label"])), "count": jnp.sum(mask),
            "loss": jnp.sum(mask * nll), "confusion": confusion}
