"""Accuracy, per-class accuracy and confusion matrices from summed eval-step outputs."""
from __future__ import annotations

import numpy as np

from ferjax.classes import CLASS_NAMES


def summarize(sums: dict) -> dict:
    """`sums`: eval_step outputs summed over batches (numpy). Accuracies in percent."""
    confusion = np.asarray(sums["confusion"], np.float64)
    per_class_n = confusion.sum(axis=1)
    per_class = np.where(per_class_n > 0, np.diag(confusion) / np.maximum(per_class_n, 1), np.nan)
    count = float(sums["count"])
    return {
        "accuracy": 100.0 * float(sums["correct"]) / max(count, 1.0),
        "loss": float(sums["loss"]) / max(count, 1.0),
        "num_images": int(round(count)),
        "per_class": {name: (None if np.isnan(a) else 100.0 * float(a))
                      for name, a in zip(CLASS_NAMES, per_class)},
        "confusion": confusion.astype(np.int64).tolist(),
    }
