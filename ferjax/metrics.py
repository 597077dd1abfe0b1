"""Accuracy, per-class accuracy and confusion matrices from summed eval-step outputs."""
from __future__ import annotations

import dataclasses

import numpy as np

from ferjax.classes import CLASS_NAMES


@dataclasses.dataclass(frozen=True)
class Scores:
    """A model scored on one split's majority-vote images. Accuracies in percent."""
    accuracy: float
    loss: float
    num_images: int
    per_class: dict[str, float | None]      # None: the split has no image of that class
    confusion: list[list[int]]              # [true class][predicted class]

    def to_json(self) -> dict:
        return dataclasses.asdict(self)


def summarize(sums: dict) -> Scores:
    """`sums`: eval_step outputs summed over batches (numpy)."""
    confusion = np.asarray(sums["confusion"], np.float64)
    per_class_n = confusion.sum(axis=1)
    per_class = np.where(per_class_n > 0, np.diag(confusion) / np.maximum(per_class_n, 1), np.nan)
    count = float(sums["count"])
    return Scores(
        accuracy=100.0 * float(sums["correct"]) / max(count, 1.0),
        loss=float(sums["loss"]) / max(count, 1.0),
        num_images=int(round(count)),
        per_class={name: (None if np.isnan(a) else 100.0 * float(a))
                   for name, a in zip(CLASS_NAMES, per_class)},
        confusion=confusion.astype(np.int64).tolist())
