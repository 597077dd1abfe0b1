"""Runs trained together: K TrainStates stacked on a leading axis, one vmapped step, and
that axis (and, where devices remain, the batch) spread over a device mesh.

Every configuration in a group shares model, feature set, data and optimiser schedule; they
differ in lambda, alpha and seed. They see the same batches.
On a CPU host the training loop steps each run apart instead (ferjax.train.apart).
"""
from __future__ import annotations

import dataclasses
import functools
import math

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

from ferjax.classes import NUM_CLASSES
from ferjax.config import RunConfig
from ferjax.data.augment import augment, evaluation_inputs
from ferjax.features import num_channels
from ferjax.models import feature_dim, inference_model, init_variables, model_of
from ferjax.train.state import TrainState, make_optimizer
from ferjax.train.step import eval_step, train_step


EVAL_INPUT_CHUNK = 256     # faces preprocessed at a time for `put_eval_data`


def check_group(cfgs: list[RunConfig]) -> None:
    if not cfgs:
        raise ValueError("a run group needs at least one configuration")
    shared = lambda c: (c.data, c.model, c.optim, c.epochs, c.data_seed_or_seed,  # noqa: E731
                        c.loss.warmup_fraction, c.loss.center_reduction)
    for c in cfgs[1:]:
        if shared(c) != shared(cfgs[0]):
            raise ValueError("configurations trained together must share data, model, optimiser, "
                             f"epochs, data seed and the center loss's ramp and reduction; "
                             f"{c} differs from {cfgs[0]}")


def create_states(cfgs: list[RunConfig], steps_per_epoch: int) -> TrainState:
    """K stacked TrainStates, one per config, built by one vmapped init (so they share tx)."""
    check_group(cfgs)
    base = cfgs[0]
    model = model_of(base.model)
    tx = make_optimizer(base.optim, steps_per_epoch, base.epochs)
    channels, size = num_channels(base.data.features), base.data.image_size
    dim = feature_dim(model, channels, size)

    def init_one(key, lam, alpha):
        init_key, rng = jax.random.split(key)
        variables = init_variables(model, init_key, channels, size)
        return TrainState.create(apply_fn=model.apply, params=variables["params"], tx=tx,
                                 batch_stats=variables.get("batch_stats", {}),
                                 centers=jnp.zeros((NUM_CLASSES, dim), jnp.float32),
                                 rng=rng, lam=lam, alpha=alpha)

    keys = jnp.stack([jax.random.PRNGKey(c.seed) for c in cfgs])
    lams = jnp.asarray([c.loss.lam for c in cfgs], jnp.float32)
    alphas = jnp.asarray([c.loss.alpha for c in cfgs], jnp.float32)
    # One compiled init: bitwise the parameters of eager op-by-op init, which compiles every op
    # on its own and leaves their buffers behind (higher peak memory).
    return jax.jit(jax.vmap(init_one))(keys, lams, alphas)


def member(stacked, k: int):
    return jax.tree.map(lambda x: x[k], stacked)


@dataclasses.dataclass(frozen=True)
class Placement:
    """How a group of K runs sits on the devices: mesh axes ('runs', 'data')."""
    mesh: Mesh

    @classmethod
    def create(cls, num_runs: int, batch_size: int, devices=None) -> "Placement":
        """Runs spread over the devices first, then the batch over the devices left
        (`over_runs` keeps each run's step on its own devices)."""
        devices = list(devices if devices is not None else jax.devices())
        runs_axis = math.gcd(num_runs, len(devices))
        data_axis = math.gcd(len(devices) // runs_axis, batch_size)
        grid = np.asarray(devices[: runs_axis * data_axis]).reshape(runs_axis, data_axis)
        return cls(Mesh(grid, ("runs", "data")))

    @property
    def state(self) -> NamedSharding:
        return NamedSharding(self.mesh, P("runs"))

    @property
    def batch(self) -> NamedSharding:
        return NamedSharding(self.mesh, P("data"))

    def put_state(self, state):
        return jax.device_put(state, self.state)

    @property
    def replicated(self) -> NamedSharding:
        return NamedSharding(self.mesh, P())

    def put_data(self, split) -> dict:
        """A labelled split as arrays resident on every device: the step gathers its batches."""
        return jax.device_put(_with_labels(np.asarray(split.images), split), self.replicated)

    def put_eval_data(self, split, cfg: RunConfig) -> dict:
        """A labelled split for evaluation, resident on every device, its images already turned
        into the model's inputs: a pure function of each image, computed once per run instead
        of every epoch (float32: 4C bytes a pixel against the uint8 face's one)."""
        prepare = _jitted_evaluation_inputs(cfg.data.features, cfg.data.image_size)
        images = np.asarray(split.images)
        n, chunk = len(images), EVAL_INPUT_CHUNK
        pad = (-n) % chunk if n else chunk          # an empty split still gets its shape
        padded = np.concatenate([images, np.zeros((pad, *images.shape[1:]), images.dtype)])
        inputs = np.concatenate([np.asarray(prepare(padded[i:i + chunk]))
                                 for i in range(0, len(padded), chunk)])[:n]
        return jax.device_put(_with_labels(inputs, split), self.replicated)

    def put_indices(self, idx: np.ndarray) -> jax.Array:
        return jax.make_array_from_callback(idx.shape, self.batch, lambda i: idx[i])

    def train_step(self, cfg: RunConfig, steps_per_epoch: int = 0):
        """(state, data, idx, epoch, step) -> (state, metrics): gathers the batch `idx` of the
        resident data, augments it once (keyed by data seed, epoch and step; unless the config
        turns augmentation off) and runs every run's step on it."""
        steps = steps_per_epoch * cfg.epochs
        return _jitted_train_step(self, cfg.data.features, cfg.data.image_size, cfg.data.augment,
                                  cfg.data.label_mode == "probability", cfg.optim.label_smoothing,
                                  int(cfg.loss.warmup_fraction * steps), cfg.loss.center_reduction)

    def batch_train_step(self, sample_targets: bool = False, label_smoothing: float = 0.0):
        """(state, batch) -> (state, metrics) on an already preprocessed batch: the step alone,
        for benchmarks and tests (`put_batch` places the batch)."""
        return _jitted_batch_train_step(self, sample_targets, label_smoothing)

    def put_batch(self, batch: dict) -> dict:
        """Host numpy batch -> global arrays; works multi-host when every host holds the batch."""
        return {k: jax.make_array_from_callback(v.shape, self.batch, lambda idx, v=v: v[idx])
                for k, v in batch.items()}

    def eval_step(self, cfg: RunConfig):
        """(state, data, idx, mask) -> summed metrics per run, on `put_eval_data`'s inputs."""
        return _jitted_eval_step(self, cfg.model.name, cfg.model.conv, cfg.model.light_layers,
                                 cfg.eval_flip)


def _with_labels(images: np.ndarray, split) -> dict:
    return {"image": images, "target": np.asarray(split.targets, np.float32),
            "label": np.asarray(split.labels, np.int32)}


def over_runs(placement: Placement, one):
    """`one(state, batch)` vmapped over the stacked runs. Where the runs are spread over
    devices, each device steps its own runs (shard_map over 'runs'; the batch axis stays
    XLA's to split): runs never meet in a collective, and the "xla" conv's
    one-convolution-per-run rule never gathers a run from another device."""
    stacked = jax.vmap(one, in_axes=(0, None))
    if placement.mesh.shape["runs"] == 1:
        return stacked
    return jax.shard_map(stacked, mesh=placement.mesh, in_specs=(P("runs"), P()),
                         out_specs=P("runs"), axis_names={"runs"}, check_vma=False)


# Cached per placement, so runs with the same mesh reuse one compiled step.
@functools.lru_cache(maxsize=None)
def _jitted_train_step(placement: Placement, feature_set: str, image_size: int, augmented: bool,
                       sample_targets: bool, label_smoothing: float, lam_ramp_steps: int,
                       center_reduction: str):
    one = functools.partial(train_step, sample_targets=sample_targets, label_smoothing=label_smoothing,
                            lam_ramp_steps=lam_ramp_steps, center_reduction=center_reduction)

    def step(state, data, idx, data_key, epoch, step_in_epoch):
        key = jax.random.fold_in(jax.random.fold_in(data_key, epoch), step_in_epoch)
        images = data["image"][idx]
        images = (augment(key, images, feature_set, image_size) if augmented else
                  evaluation_inputs(images, feature_set, image_size))
        batch = {"image": images,
                 "target": data["target"][idx], "label": data["label"][idx]}
        batch = jax.lax.with_sharding_constraint(batch, placement.batch)
        return over_runs(placement, one)(state, batch)

    return jax.jit(step, in_shardings=(placement.state, placement.replicated, placement.batch,
                                       placement.replicated, placement.replicated, placement.replicated),
                   out_shardings=(placement.state, placement.state), donate_argnums=0)


@functools.lru_cache(maxsize=None)
def _jitted_batch_train_step(placement: Placement, sample_targets: bool, label_smoothing: float):
    one = functools.partial(train_step, sample_targets=sample_targets, label_smoothing=label_smoothing)
    return jax.jit(over_runs(placement, one), in_shardings=(placement.state, placement.batch),
                   out_shardings=(placement.state, placement.state), donate_argnums=0)


@functools.lru_cache(maxsize=None)
def _jitted_eval_step(placement: Placement, model_name: str, conv: str, light_layers: str,
                      flip: bool):
    def one(state, batch):
        # the network evaluate and predict apply, batch norm folded into the convolutions
        model, params = inference_model(model_name, state.params, state.batch_stats, conv,
                                        light_layers)
        return eval_step(model.apply, {"params": params}, batch, flip)

    def step(state, data, idx, mask):
        batch = {"image": data["image"][idx], "target": data["target"][idx],
                 "label": data["label"][idx], "mask": mask}
        batch = jax.lax.with_sharding_constraint(batch, placement.batch)
        return over_runs(placement, one)(state, batch)

    return jax.jit(step, in_shardings=(placement.state, placement.replicated, placement.batch,
                                       placement.batch), out_shardings=placement.state)



@functools.lru_cache(maxsize=None)
def _jitted_evaluation_inputs(feature_set: str, image_size: int):
    return jax.jit(lambda images: evaluation_inputs(images, feature_set, image_size))
