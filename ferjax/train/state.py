"""The TrainState: params, optimiser state, class centers, PRNG key and the loss weights.

lam and alpha live in the state (not in a closure) so that a sweep can stack states with
different lambdas and vmap one step over them.
"""
from __future__ import annotations

import functools

import jax
import optax
from flax.training import train_state

from ferjax.config import OptimConfig


class TrainState(train_state.TrainState):
    centers: jax.Array          # (num_classes, feature_dim), updated by Wen's rule
    rng: jax.Array              # dropout / target-sampling key; folded with step each step
    lam: jax.Array              # center-loss weight (0 = SL)
    alpha: jax.Array            # center update rate


def learning_rate_schedule(optim: OptimConfig, steps_per_epoch: int) -> optax.Schedule:
    """lr x decay_rate every `decay_every_epochs` epochs (the study: 3e-4 x 0.97 / 2 epochs)."""
    return optax.exponential_decay(optim.learning_rate,
                                   transition_steps=optim.decay_every_epochs * steps_per_epoch,
                                   decay_rate=optim.decay_rate, staircase=True)


@functools.lru_cache(maxsize=None)   # one object per schedule, so states share a treedef
def make_optimizer(optim: OptimConfig, steps_per_epoch: int) -> optax.GradientTransformation:
    return optax.adam(learning_rate_schedule(optim, steps_per_epoch))


def state_arrays(state: TrainState) -> dict:
    """The state's arrays, as saved in a checkpoint (apply_fn and tx are rebuilt from config)."""
    return {"step": state.step, "params": state.params, "opt_state": state.opt_state,
            "centers": state.centers, "rng": state.rng, "lam": state.lam, "alpha": state.alpha}


def with_arrays(state: TrainState, arrays: dict) -> TrainState:
    return state.replace(**arrays)
