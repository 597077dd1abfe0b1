"""Orbax checkpoints that survive a kill: each save is committed atomically by orbax's
CheckpointManager, the previous one is removed only after the new one is complete, and the
run's config travels inside the checkpoint (as JSON beside the arrays). `load_run` reads a
kept run back (config, parameters, centers) for evaluate, predict and export."""
from __future__ import annotations

import os
from pathlib import Path

import jax
import numpy as np
import orbax.checkpoint as ocp

from ferjax.classes import NUM_CLASSES
from ferjax.config import RunConfig
from ferjax.features import num_channels
from ferjax.models import build_model, init_params


class CheckpointError(ValueError):
    pass


def _manager(directory: Path, create: bool) -> ocp.CheckpointManager:
    return ocp.CheckpointManager(
        os.path.abspath(directory),
        options=ocp.CheckpointManagerOptions(max_to_keep=1, create=create))


def save(directory: Path, step: int, arrays, meta: dict) -> None:
    mngr = _manager(directory, create=True)
    mngr.save(step, args=ocp.args.Composite(state=ocp.args.StandardSave(arrays),
                                            meta=ocp.args.JsonSave(meta)), force=True)
    mngr.wait_until_finished()
    mngr.close()


def latest_step(directory: Path) -> int | None:
    if not Path(directory).is_dir():
        return None
    mngr = _manager(directory, create=False)
    step = mngr.latest_step()
    mngr.close()
    return step


def read_meta(directory: Path) -> dict:
    step = latest_step(directory)
    if step is None:
        raise CheckpointError(f"no checkpoint found in {directory}")
    mngr = _manager(directory, create=False)
    try:
        return mngr.restore(step, args=ocp.args.Composite(meta=ocp.args.JsonRestore()))["meta"]
    except Exception as e:
        raise CheckpointError(f"checkpoint {directory}/{step} is unreadable or corrupt: {e}") from e
    finally:
        mngr.close()


def restore(directory: Path, like) -> tuple[object, dict]:
    """Restores the newest checkpoint in `directory` into the structure and shapes of `like`."""
    step = latest_step(directory)
    if step is None:
        raise CheckpointError(f"no checkpoint found in {directory}")
    abstract = jax.tree.map(ocp.utils.to_shape_dtype_struct, like)
    mngr = _manager(directory, create=False)
    try:
        out = mngr.restore(step, args=ocp.args.Composite(state=ocp.args.StandardRestore(abstract),
                                                         meta=ocp.args.JsonRestore()))
    except Exception as e:
        raise CheckpointError(
            f"checkpoint {directory}/{step} does not match this model/feature set or is corrupt: "
            f"{str(e).splitlines()[0][:300]}") from e
    finally:
        mngr.close()
    return out["state"], out["meta"]


def best_dir(path: str | Path) -> Path:
    """Accepts a run directory (holding best/) or the best/ directory itself."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"checkpoint directory {path} does not exist")
    for candidate in (path / "best", path):
        if latest_step(candidate) is not None:
            return candidate
    raise CheckpointError(f"no kept checkpoint in {path} (expected {path}/best from `ferjax train`)")


def load_run(path: str | Path) -> tuple[RunConfig, dict, dict]:
    """(config, {'params', 'centers'}, meta) of the kept checkpoint; the config travels inside."""
    d = best_dir(path)
    meta = read_meta(d)
    if "config" not in meta:
        raise CheckpointError(f"{d} has no stored config; was it written by ferjax train?")
    cfg = RunConfig.from_dict(meta["config"])
    model = build_model(cfg.model.name)
    params = jax.eval_shape(lambda: init_params(model, jax.random.PRNGKey(0),
                                                num_channels(cfg.data.features), cfg.data.image_size))
    feature_dim = jax.eval_shape(lambda p: model.apply(
        {"params": p}, jax.numpy.zeros((1, cfg.data.image_size, cfg.data.image_size,
                                        num_channels(cfg.data.features))))[1], params).shape[-1]
    like = {"params": params, "centers": jax.ShapeDtypeStruct((NUM_CLASSES, feature_dim), np.float32)}
    arrays, meta = restore(d, like)
    return cfg, arrays, meta
