"""Scoring a kept checkpoint on a split: the path by which the held-out test split is scored.

Accuracy is always counted on the split's majority-vote images (the study's measure),
whatever label mode the run trained on, with the run's own evaluation (`eval_flip`)."""
from __future__ import annotations

import dataclasses
from pathlib import Path

import jax
import numpy as np

from ferjax.classes import CLASS_NAMES
from ferjax.data.augment import evaluation_inputs
from ferjax.data.ferplus import load_dataset
from ferjax.data.votes import EVAL_LABEL_MODE, label_split
from ferjax.metrics import Scores, summarize
from ferjax.models import inference_model
from ferjax import class_bias as cbias
from ferjax.train.checkpoint import best_dir, load_run
from ferjax.train.step import eval_step, predict_probs


@dataclasses.dataclass(frozen=True)
class Evaluation:
    """A kept checkpoint's scores on a split, and what was scored."""
    scores: Scores
    split: str
    data: str
    checkpoint: str
    model: str
    features: str
    trained_label_mode: str
    eval_flip: bool
    loss: str
    lam: float
    epoch: int | None
    trained_on_reduced_data: bool
    class_bias: dict[str, float] | None = None   # the kept offsets applied (class_bias.py)
    label_mode: str = EVAL_LABEL_MODE        # accuracy counts majority-vote images only

    def to_json(self) -> dict:
        out = dataclasses.asdict(self)
        return {**out.pop("scores"), **out}


def evaluate(path: str | Path, data: str | None = None, split: str = "valid",
             batch_size: int = 256, use_class_bias: bool = True) -> Evaluation:
    """Scores the kept checkpoint; with the class bias kept beside it, unless use_class_bias
    is False."""
    cfg, model, params, meta, labeled, source = _scoring_inputs(path, data, split)
    cb = cbias.load(best_dir(path), meta["epoch"]) if use_class_bias else None
    sums = score(model, params, labeled, cfg.data.features, cfg.data.image_size, cfg.eval_flip,
                 batch_size, None if cb is None else cb.vector)
    return Evaluation(scores=summarize(sums), split=split, data=source, checkpoint=str(path),
                      model=cfg.model.name, features=cfg.data.features,
                      trained_label_mode=cfg.data.label_mode, eval_flip=cfg.eval_flip,
                      loss=cfg.loss.name, lam=cfg.loss.lam, epoch=meta.get("epoch"),
                      trained_on_reduced_data=meta.get("reduced", False),
                      class_bias=None if cb is None else cb.bias)


def calibrate(path: str | Path, data: str | None = None, split: str = "valid",
              max_accuracy_drop: float = cbias.DEFAULT_MAX_ACCURACY_DROP,
              batch_size: int = 256) -> cbias.ClassBias:
    """Fits the class bias of a kept checkpoint on `split` and keeps it beside best/."""
    cfg, model, params, meta, labeled, source = _scoring_inputs(path, data, split)
    probs = probabilities(model, params, labeled.images, cfg.data.features, cfg.data.image_size,
                          cfg.eval_flip, batch_size)
    bias = cbias.fit(probs, labeled.labels, max_accuracy_drop)
    cb = cbias.ClassBias(bias={c: float(b) for c, b in zip(CLASS_NAMES, bias)}, step=meta["epoch"],
                         fitted_on=split, data=source, max_accuracy_drop=max_accuracy_drop,
                         before=cbias.summary(probs, labeled.labels, np.zeros_like(bias)),
                         after=cbias.summary(probs, labeled.labels, bias))
    cbias.save(best_dir(path), cb)
    return cb


def _scoring_inputs(path, data, split):
    cfg, arrays, meta = load_run(path)
    ds = load_dataset(data or cfg.data.data, synthetic_per_class=cfg.data.synthetic_per_class)
    if split not in ds.splits:
        raise ValueError(f"{ds.source} has no {split} split (it has: {', '.join(sorted(ds.splits))})")
    labeled = label_split(ds.splits[split], EVAL_LABEL_MODE)
    if not len(labeled):
        raise ValueError(f"nothing to score: the {split} split has no majority-vote images")
    model, params = inference_model(cfg.model.name, arrays["params"], arrays.get("batch_stats"),
                                    light_layers=cfg.model.light_layers)
    return cfg, model, params, meta, labeled, ds.source


def _padded_batches(arrays: list[np.ndarray], batch_size: int):
    """(n, padded arrays) per batch: a fixed batch shape, so the jitted step compiles once."""
    for start in range(0, len(arrays[0]), batch_size):
        chunk = [a[start:start + batch_size] for a in arrays]
        n = len(chunk[0])
        yield n, [np.concatenate([a, np.zeros((batch_size - n,) + a.shape[1:], a.dtype)]) for a in chunk]


def probabilities(model, params, images: np.ndarray, feature_set: str, image_size: int,
                  flip: bool, batch_size: int = 256) -> np.ndarray:
    """(N, classes) probabilities of a plain (BN-free) model for uint8 (N, 48, 48) faces."""
    forward = jax.jit(lambda p, im: predict_probs(
        model.apply, {"params": p}, evaluation_inputs(im, feature_set, image_size), flip))
    return np.concatenate([np.asarray(forward(params, im))[:n]
                           for n, (im,) in _padded_batches([images], batch_size)])


def score(model, params, split, feature_set: str, image_size: int, flip: bool,
          batch_size: int = 256, class_bias: np.ndarray | None = None) -> dict:
    """Summed eval-step outputs of a plain (BN-free) model over a labelled split."""
    @jax.jit
    def step(params, images, target, label, mask):
        batch = {"image": evaluation_inputs(images, feature_set, image_size), "target": target,
                 "label": label, "mask": mask}
        return eval_step(model.apply, {"params": params}, batch, flip, class_bias)

    sums = None
    arrays = [split.images, split.targets.astype(np.float32), split.labels.astype(np.int32),
              np.ones(len(split), np.float32)]
    for _, batch in _padded_batches(arrays, batch_size):
        out = step(params, *batch)
        sums = out if sums is None else jax.tree.map(lambda a, b: a + b, sums, out)
    return jax.device_get(sums)
