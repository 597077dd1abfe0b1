"""Orbax checkpoints that survive a kill: each save is committed atomically by orbax's
CheckpointManager, the previous one is removed only after the new one is complete, and the
run's config travels inside the checkpoint (as JSON beside the arrays)."""
from __future__ import annotations

import os
from pathlib import Path

import jax
import numpy as np
import orbax.checkpoint as ocp

from ferjax.config import RunConfig
from ferjax.features import num_channels
from ferjax.classes import NUM_CLASSES
from ferjax.models import build_model, feature_dim, init_variables


class CheckpointError(ValueError):
    pass


KEEP = 2     # the newest complete checkpoint survives while the next one is written


def _manager(directory: Path, create: bool) -> ocp.CheckpointManager:
    return ocp.CheckpointManager(
        os.path.abspath(directory),
        options=ocp.CheckpointManagerOptions(max_to_keep=KEEP, create=create))


def drop_steps_after(directory: Path, step: int) -> None:
    """Deletes the checkpoints of `directory` newer than `step` (stale after a kill)."""
    if not Path(directory).is_dir():
        return
    mngr = _manager(directory, create=False)
    try:
        for s in mngr.all_steps():
            if s > step:
                mngr.delete(s)
    finally:
        mngr.close()


def save(directory: Path, step: int, arrays, meta: dict) -> None:
    # No directory check here (a step left by a kill is dropped when the run resumes): with
    # several processes, one would see the directory another has just created and enter
    # orbax's barriers out of step with it.
    mngr = _manager(directory, create=True)
    mngr.save(step, args=ocp.args.Composite(state=ocp.args.StandardSave(arrays),
                                            meta=ocp.args.JsonSave(meta)), force=True)
    mngr.wait_until_finished()
    mngr.close()


def make_markers_portable(directory: Path) -> None:
    """Orbax writes the absolute path of the run into each commit_success.txt; a copy that is
    committed or shipped keeps the marker, not the path of the machine that wrote it."""
    for marker in Path(directory).rglob("commit_success.txt"):
        marker.write_text("Checkpoint commit was successful.")


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


def _here(x) -> jax.ShapeDtypeStruct:
    """The restore target of one array: its shape and dtype in this process's layout (the
    array's own sharding, else the first local device), never the layout it was saved from,
    so a checkpoint written on N devices or another host restores on one, and back."""
    sharding = getattr(x, "sharding", None)
    if not isinstance(sharding, jax.sharding.Sharding):
        sharding = jax.sharding.SingleDeviceSharding(jax.local_devices()[0])
    return jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=sharding)


def restore(directory: Path, like) -> tuple[object, dict]:
    """Restores the newest checkpoint in `directory` into the structure and shapes of `like`."""
    step = latest_step(directory)
    if step is None:
        raise CheckpointError(f"no checkpoint found in {directory}")
    abstract = jax.tree.map(_here, like)
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


# ---------------------------------------------------------------- a run's kept checkpoint

def best_dir(path: str | Path) -> Path:
    """Accepts a run directory (holding best/) or the best/ directory itself."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"checkpoint directory {path} does not exist")
    for candidate in (path / "best", path):
        if latest_step(candidate) is not None:
            return candidate
    raise CheckpointError(f"no kept checkpoint in {path} (expected {path}/best from `ferjax train`)")


def kept_arrays_like(cfg: RunConfig, batch_norm: bool) -> dict:
    """Shapes of a kept checkpoint's arrays: params, batch_stats (with BN) and centers."""
    model = build_model(cfg.model.name, batch_norm=batch_norm, light_layers=cfg.model.light_layers)
    channels, size = num_channels(cfg.data.features), cfg.data.image_size
    variables = jax.eval_shape(lambda: init_variables(model, jax.random.PRNGKey(0), channels, size))
    centers = jax.ShapeDtypeStruct((NUM_CLASSES, feature_dim(model, channels, size)), np.float32)
    like = {"params": variables["params"], "centers": centers}
    if "batch_stats" in variables:
        like["batch_stats"] = variables["batch_stats"]
    return like


def load_run(path: str | Path) -> tuple[RunConfig, dict, dict]:
    """(config, {'params', 'centers'[, 'batch_stats']}, meta) of the kept checkpoint; the config
    travels inside. Checkpoints from before batch norm (no "batch_norm" in meta) load too."""
    d = best_dir(path)
    meta = read_meta(d)
    if "config" not in meta:
        raise CheckpointError(f"{d} has no stored config; was it written by ferjax train?")
    cfg = RunConfig.from_dict(meta["config"])
    arrays, meta = restore(d, kept_arrays_like(cfg, meta.get("batch_norm", False)))
    return cfg, arrays, meta
