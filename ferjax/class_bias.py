"""Class bias: per-class offsets added to a kept model's log-probabilities, fitted on the
validation split, so that the rare classes (disgust and contempt hold under 1% of FERPlus's
training votes each) are predicted when the model leans towards them, at a bounded cost in
overall accuracy. The offsets live beside the kept checkpoint (best/class_bias.json) with
what they were fitted on; `ferjax evaluate` and the Predictor apply them, the table rows
(the study's measurements) never do.
"""
from __future__ import annotations

import dataclasses
import json
import warnings
from pathlib import Path

import numpy as np

from ferjax.classes import CLASS_NAMES, NUM_CLASSES

FILE = "class_bias.json"
GRID = tuple(np.round(np.arange(0.0, 4.01, 0.25), 2))    # offsets tried per class (log space)
DEFAULT_MAX_ACCURACY_DROP = 0.5                          # points of overall accuracy


def per_class_recall(pred: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Recall of every class in percent; NaN for a class without images."""
    return np.array([100.0 * np.mean(pred[labels == c] == c) if np.any(labels == c) else np.nan
                     for c in range(NUM_CLASSES)])


def fit(probs: np.ndarray, labels: np.ndarray,
        max_accuracy_drop: float = DEFAULT_MAX_ACCURACY_DROP, passes: int = 2) -> np.ndarray:
    """Offsets (NUM_CLASSES,) that maximise the mean per-class recall while overall accuracy
    stays within `max_accuracy_drop` points of the unbiased model's: coordinate ascent over
    GRID, class by class; ties keep the smaller offset."""
    logp = np.log(np.maximum(probs, 1e-12))
    floor = 100.0 * np.mean(probs.argmax(1) == labels) - max_accuracy_drop

    def score(bias):
        pred = (logp + bias).argmax(1)
        accuracy = 100.0 * np.mean(pred == labels)
        return np.nanmean(per_class_recall(pred, labels)) if accuracy >= floor else -np.inf

    bias = np.zeros(NUM_CLASSES)
    best = score(bias)
    for _ in range(passes):
        for c in range(NUM_CLASSES):
            for value in GRID:
                trial = bias.copy()
                trial[c] = value
                s = score(trial)
                if s > best + 1e-9:
                    bias, best = trial, s
    return bias


@dataclasses.dataclass(frozen=True)
class ClassBias:
    bias: dict[str, float]
    step: int                       # the kept checkpoint's step it was fitted for
    fitted_on: str                  # split
    data: str
    max_accuracy_drop: float
    before: dict                    # {"accuracy", "per_class"} without and with the offsets
    after: dict

    @property
    def vector(self) -> np.ndarray:
        return np.array([self.bias[c] for c in CLASS_NAMES], np.float32)

    def to_json(self) -> dict:
        return dataclasses.asdict(self)


def summary(probs: np.ndarray, labels: np.ndarray, bias: np.ndarray) -> dict:
    pred = (np.log(np.maximum(probs, 1e-12)) + bias).argmax(1)
    recall = per_class_recall(pred, labels)
    return {"accuracy": 100.0 * float(np.mean(pred == labels)),
            "per_class": {c: None if np.isnan(r) else float(r) for c, r in zip(CLASS_NAMES, recall)}}


def save(best: Path, cb: ClassBias) -> Path:
    path = Path(best) / FILE
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(cb.to_json(), indent=2, allow_nan=False) + "\n")
    tmp.replace(path)
    return path


def load(best: Path, step: int) -> ClassBias | None:
    """The offsets kept beside best/ for this step; None when there are none. Offsets fitted for
    another step (a newer best was kept since) are ignored, with a warning."""
    path = Path(best) / FILE
    if not path.exists():
        return None
    try:
        cb = ClassBias(**json.loads(path.read_text()))
    except (ValueError, TypeError) as e:
        raise ValueError(f"{path} is not a class-bias file ({e}); delete it or run "
                         f"`ferjax calibrate` again") from None
    if set(cb.bias) != set(CLASS_NAMES):
        raise ValueError(f"{path} names classes {sorted(cb.bias)}, not {sorted(CLASS_NAMES)}")
    if cb.step != step:
        warnings.warn(f"ignoring {path}: fitted for step {cb.step}, the kept checkpoint is step "
                      f"{step}; run `ferjax calibrate` again", RuntimeWarning, stacklevel=2)
        return None
    return cb
