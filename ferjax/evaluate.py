"""Scoring a kept checkpoint on a split: the path by which the held-out test split is scored."""
from __future__ import annotations

from pathlib import Path

import jax
import numpy as np

from ferjax.config import RunConfig
from ferjax.data.ferplus import load_dataset
from ferjax.data.pipeline import eval_batches
from ferjax.data.votes import label_split
from ferjax.features import num_channels
from ferjax.metrics import summarize
from ferjax.models import build_model, init_params
from ferjax.train import checkpoint
from ferjax.train.step import eval_step


def best_dir(path: str | Path) -> Path:
    """Accepts a run directory (holding best/) or the best/ directory itself."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"checkpoint directory {path} does not exist")
    for candidate in (path / "best", path):
        if checkpoint.latest_step(candidate) is not None:
            return candidate
    raise checkpoint.CheckpointError(f"no kept checkpoint in {path} (expected {path}/best from `ferjax train`)")


def load_run(path: str | Path) -> tuple[RunConfig, dict, dict]:
    """(config, {'params', 'centers'}, meta) of the kept checkpoint; the config travels inside."""
    d = best_dir(path)
    meta = checkpoint.read_meta(d)
    if "config" not in meta:
        raise checkpoint.CheckpointError(f"{d} has no stored config; was it written by ferjax train?")
    cfg = RunConfig.from_dict(meta["config"])
    model = build_model(cfg.model.name)
    params = jax.eval_shape(lambda: init_params(model, jax.random.PRNGKey(0),
                                                num_channels(cfg.data.features), cfg.data.image_size))
    feature_dim = jax.eval_shape(lambda p: model.apply(
        {"params": p}, jax.numpy.zeros((1, cfg.data.image_size, cfg.data.image_size,
                                        num_channels(cfg.data.features))))[1], params).shape[-1]
    like = {"params": params, "centers": jax.ShapeDtypeStruct((8, feature_dim), np.float32)}
    arrays, meta = checkpoint.restore(d, like)
    return cfg, arrays, meta


def evaluate(path: str | Path, data: str | None = None, split: str = "valid",
             batch_size: int = 256) -> dict:
    cfg, arrays, meta = load_run(path)
    ds = load_dataset(data or cfg.data.data, synthetic_per_class=cfg.data.synthetic_per_class)
    if split not in ds.splits:
        raise ValueError(f"{ds.source} has no {split} split (it has: {', '.join(sorted(ds.splits))})")
    labeled = label_split(ds.splits[split], cfg.data.label_mode)
    model = build_model(cfg.model.name)   # this machine's fastest conv: the parameters are the same

    step = jax.jit(lambda p, b: eval_step(_with_params(model, p), b))
    sums = None
    for batch in eval_batches(labeled, feature_set=cfg.data.features, batch_size=batch_size,
                              image_size=cfg.data.image_size):
        out = step(arrays["params"], batch)
        sums = out if sums is None else jax.tree.map(lambda a, b: a + b, sums, out)
    result = summarize(jax.device_get(sums))
    result.update({"split": split, "data": ds.source, "checkpoint": str(path),
                   "model": cfg.model.name, "features": cfg.data.features,
                   "label_mode": cfg.data.label_mode, "loss": cfg.loss.name, "lam": cfg.loss.lam,
                   "epoch": meta.get("epoch"), "trained_on_reduced_data": meta.get("reduced", False)})
    return result


class _ParamsOnly:
    def __init__(self, apply_fn, params):
        self.apply_fn, self.params = apply_fn, params


def _with_params(model, params):
    return _ParamsOnly(model.apply, params)
