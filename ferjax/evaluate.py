"""Scoring a kept checkpoint on a split: the path by which the held-out test split is scored.

Accuracy is always counted on the split's majority-vote images (the study's measure),
whatever label mode the run trained on, with the run's own evaluation (`eval_flip`)."""
from __future__ import annotations

from pathlib import Path

import jax
import numpy as np

from ferjax.data.augment import evaluation_inputs
from ferjax.data.ferplus import load_dataset
from ferjax.data.votes import EVAL_LABEL_MODE, label_split
from ferjax.metrics import summarize
from ferjax.models import inference_model
from ferjax.train.checkpoint import load_run
from ferjax.train.step import eval_step


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
