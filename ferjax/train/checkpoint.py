"""Orbax checkpoints that survive a kill: each save is committed atomically by orbax's
CheckpointManager, the previous one is removed only after the new one is complete, and the
run's config travels inside the checkpoint (as JSON beside the arrays)."""
from __future__ import annotations

import os
from pathlib import Path

import jax
import orbax.checkpoint as ocp


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
