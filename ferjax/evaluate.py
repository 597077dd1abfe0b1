"""Scoring a kept checkpoint on a split: the path by which the held-out test split is scored.

Accuracy is always counted on the split's majority-vote images (the study's measure),
whatever label mode the run trained on, with the run's own evaluation (`eval_flip`)."""
from __future__ import annotations

from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from ferjax.config import RunConfig
from ferjax.data.augment import evaluation_inputs
from ferjax.data.ferplus import load_dataset
from ferjax.data.votes import EVAL_LABEL_MODE, label_split
from ferjax.features import num_channels
from ferjax.metrics import summarize
from ferjax.models import build_model, inference_model, init_variables
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


def kept_arrays_like(cfg: RunConfig, batch_norm: bool) -> dict:
    """Shapes of a kept checkpoint's arrays: params, batch_stats (with BN) and centers."""
    model = build_model(cfg.model.name, batch_norm=batch_norm)
    channels, size = num_channels(cfg.data.features), cfg.data.image_size
    variables = jax.eval_shape(lambda: init_variables(model, jax.random.PRNGKey(0), channels, size))
    feature_dim = jax.eval_shape(lambda v: model.apply(v, jnp.zeros((1, size, size, channels)))[1],
                                 variables).shape[-1]
    like = {"params": variables["params"], "centers": jax.ShapeDtypeStruct((8, feature_dim), np.float32)}
    if "batch_stats" in variables:
        like["batch_stats"] = variables["batch_stats"]
    return like


def load_run(path: str | Path) -> tuple[RunConfig, dict, dict]:
    """(config, {'params', 'centers'[, 'batch_stats']}, meta) of the kept checkpoint; the config
    travels inside. Checkpoints from before batch norm (no "batch_norm" in meta) load too."""
    d = best_dir(path)
    meta = checkpoint.read_meta(d)
    if "config" not in meta:
        raise checkpoint.CheckpointError(f"{d} has no stored config; was it written by ferjax train?")
    cfg = RunConfig.from_dict(meta["config"])
    arrays, meta = checkpoint.restore(d, kept_arrays_like(cfg, meta.get("batch_norm", False)))
    return cfg, arrays, meta


def evaluate(path: str | Path, data: str | None = None, split: str = "valid",
             batch_size: int = 256) -> dict:
    cfg, arrays, meta = load_run(path)
    ds = load_dataset(data or cfg.data.data, synthetic_per_class=cfg.data.synthetic_per_class)
    if split not in ds.splits:
        raise ValueError(f"{ds.source} has no {split} split (it has: {', '.join(sorted(ds.splits))})")
    labeled = label_split(ds.splits[split], EVAL_LABEL_MODE)
    model, params = inference_model(cfg.model.name, arrays["params"], arrays.get("batch_stats"))
    sums = score(model, params, labeled, cfg.data.features, cfg.data.image_size, cfg.eval_flip,
                 batch_size)
    result = summarize(sums)
    result.update({"split": split, "data": ds.source, "checkpoint": str(path),
                   "model": cfg.model.name, "features": cfg.data.features,
                   "label_mode": EVAL_LABEL_MODE, "trained_label_mode": cfg.data.label_mode,
                   "eval_flip": cfg.eval_flip, "loss": cfg.loss.name, "lam": cfg.loss.lam,
                   "epoch": meta.get("epoch"), "trained_on_reduced_data": meta.get("reduced", False)})
    return result


def score(model, params, split, feature_set: str, image_size: int, flip: bool,
          batch_size: int = 256) -> dict:
    """Summed eval-step outputs of a plain (BN-free) model over a labelled split."""
    @jax.jit
    def step(params, images, target, label, mask):
        batch = {"image": evaluation_inputs(images, feature_set, image_size), "target": target,
                 "label": label, "mask": mask}
        return eval_step(model.apply, {"params": params}, batch, flip)

    if not len(split):
        raise ValueError("nothing to evaluate: the split has no majority-vote images")
    sums = None
    for start in range(0, len(split), batch_size):
        sl = slice(start, start + batch_size)
        n = len(split.labels[sl])
        pad = lambda a: np.concatenate([a, np.zeros((batch_size - n,) + a.shape[1:], a.dtype)])  # noqa: E731
        out = step(params, pad(split.images[sl]), pad(split.targets[sl].astype(np.float32)),
                   pad(split.labels[sl].astype(np.int32)), pad(np.ones(n, np.float32)))
        sums = out if sums is None else jax.tree.map(lambda a, b: a + b, sums, out)
    return jax.device_get(sums)
