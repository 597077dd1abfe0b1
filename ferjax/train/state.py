"""The TrainState: params, optimiser state, batch-norm statistics, class centers, PRNG key
and the loss weights.

lam and alpha live in the state (not in a closure) so that a sweep can stack states with
different lambdas and vmap one step over them.
"""
from __future__ import annotations

import functools
from typing import Any

import jax
import optax
from flax.training import train_state

from ferjax.config import OptimConfig

ONECYCLE_FINAL_FRACTION = 0.01    # onecycle ends at 1% of the peak rate


class TrainState(train_state.TrainState):
    batch_stats: Any            # batch-norm running statistics ({} for a model without BN)
    centers: jax.Array          # (num_classes, feature_dim), updated by Wen's rule
    rng: jax.Array              # dropout / target-sampling key; folded with step each step
    lam: jax.Array              # center-loss weight (0 = SL)
    alpha: jax.Array            # center update rate


def learning_rate_schedule(optim: OptimConfig, steps_per_epoch: int, epochs: int) -> optax.Schedule:
    """"step": lr x decay_rate every `decay_every_epochs` epochs (the study: 3e-4 x 0.97 / 2
    epochs; it does not depend on the run's length, so a run can be extended). "onecycle":
    linear warm-up to lr, then cosine decay to 1% of lr at the last step of epoch `epochs`."""
    if optim.schedule == "step":
        return optax.exponential_decay(optim.learning_rate,
                                       transition_steps=optim.decay_every_epochs * steps_per_epoch,
                                       decay_rate=optim.decay_rate, staircase=True)
    total = max(1, steps_per_epoch * epochs)
    return optax.warmup_cosine_decay_schedule(
        0.0, optim.learning_rate, max(1, int(optim.warmup_fraction * total)), total,
        optim.learning_rate * ONECYCLE_FINAL_FRACTION)


@functools.lru_cache(maxsize=None)   # one object per schedule, so states share a treedef
def make_optimizer(optim: OptimConfig, steps_per_epoch: int, epochs: int) -> optax.GradientTransformation:
    lr = learning_rate_schedule(optim, steps_per_epoch, epochs)
    if optim.optimizer == "adamw":
        return optax.adamw(lr, weight_decay=optim.weight_decay)
    if optim.optimizer == "sgd":
        return optax.chain(optax.add_decayed_weights(optim.weight_decay),
                           optax.sgd(lr, momentum=0.9, nesterov=True))
    if optim.weight_decay:
        return optax.chain(optax.add_decayed_weights(optim.weight_decay), optax.adam(lr))
    return optax.adam(lr)


def state_arrays(state: TrainState) -> dict:
    """The state's arrays, as saved in a checkpoint (apply_fn and tx are rebuilt from config)."""
    return {"step": state.step, "params": state.params, "opt_state": state.opt_state,
            "batch_stats": state.batch_stats, "centers": state.centers, "rng": state.rng,
            "lam": state.lam, "alpha": state.alpha}


def with_arrays(state: TrainState, arrays: dict) -> TrainState:
    return state.replace(**arrays)
