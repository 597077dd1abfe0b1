"""Scoring a kept checkpoint on a split: the path by which the held-out test split is scored."""
from __future__ import annotations

from pathlib import Path

import jax

from ferjax.data.ferplus import load_dataset
from ferjax.data.pipeline import eval_batches
from ferjax.data.votes import label_split
from ferjax.metrics import summarize
from ferjax.models import build_model
from ferjax.train.checkpoint import load_run
from ferjax.train.step import eval_step


def evaluate(path: str | Path, data: str | None = None, split: str = "valid",
             batch_size: int = 256) -> dict:
    cfg, arrays, meta = load_run(path)
    ds = load_dataset(data or cfg.data.data, synthetic_per_class=cfg.data.synthetic_per_class)
    if split not in ds.splits:
        raise ValueError(f"{ds.source} has no {split} split (it has: {', '.join(sorted(ds.splits))})")
    labeled = label_split(ds.splits[split], cfg.data.label_mode)
    model = build_model(cfg.model.name)   # this machine's fastest conv: the parameters are the same

    step = jax.jit(lambda p, b: eval_step(model.apply, p, b))
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
