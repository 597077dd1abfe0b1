"""The pure, jittable train and eval steps of one run. A run group vmaps these over stacked
states (train) or stacked parameters (eval)."""
from __future__ import annotations

from typing import Callable

import jax
import jax.numpy as jnp

from ferjax.classes import NUM_CLASSES
from ferjax.losses import total_loss, update_centers
from ferjax.train.state import TrainState


def sample_one_hot(key: jax.Array, targets: jax.Array) -> jax.Array:
    """The FERPlus 'probability' mode: draw one class per image from its vote distribution."""
    draws = jax.random.categorical(key, jnp.log(jnp.maximum(targets, 1e-12)))
    return jax.nn.one_hot(draws, targets.shape[-1], dtype=targets.dtype)


def train_step(state: TrainState, batch: dict, sample_targets: bool = False):
    """One Adam step on softmax CE + lam x center loss, and Wen's center update."""
    dropout_key, sample_key = jax.random.split(jax.random.fold_in(state.rng, state.step))
    targets = sample_one_hot(sample_key, batch["target"]) if sample_targets else batch["target"]
    labels = batch["label"]

    def loss_fn(params):
        logits, features = state.apply_fn({"params": params}, batch["image"], train=True,
                                          rngs={"dropout": dropout_key})
        loss, (ce, cl) = total_loss(logits, features, targets, labels, state.centers, state.lam)
        return loss, (logits, features, ce, cl)

    grads, (logits, features, ce, cl) = jax.grad(loss_fn, has_aux=True)(state.params)
    new_state = state.apply_gradients(grads=grads).replace(
        centers=update_centers(state.centers, features, labels, state.alpha))
    metrics = {"loss": ce + state.lam * cl, "ce": ce, "center": cl,
               "correct": jnp.sum(jnp.argmax(logits, -1) == labels).astype(jnp.float32),
               "count": jnp.asarray(labels.shape[0], jnp.float32)}
    return new_state, metrics


def eval_step(apply_fn: Callable, params, batch: dict) -> dict:
    """Sums over the batch (padding masked out): correct, count, loss and the confusion matrix.
    Needs only the model's apply function and parameters, no optimiser state."""
    logits, _ = apply_fn({"params": params}, batch["image"], train=False)
    mask = batch.get("mask", jnp.ones(batch["label"].shape, jnp.float32))
    pred = jnp.argmax(logits, -1)
    nll = -jnp.sum(batch["target"] * jax.nn.log_softmax(logits), axis=-1)
    confusion = jnp.zeros((NUM_CLASSES, NUM_CLASSES), jnp.float32).at[batch["label"], pred].add(mask)
    return {"correct": jnp.sum(mask * (pred == batch["label"])), "count": jnp.sum(mask),
            "loss": jnp.sum(mask * nll), "confusion": confusion}
