"""The in-memory record structures that every data source produces.

A source (FERPlus folders, Kaggle CSVs, the synthetic generator) yields `RawSplit`s:
48x48 uint8 faces with their ten raw FERPlus vote counts. `votes.py` turns those into a
`LabeledSplit` (targets per label mode), which is all the input pipeline sees.
"""
from __future__ import annotations

import dataclasses

import numpy as np

from ferjax.classes import IMAGE_SIDE, NUM_CLASSES, NUM_VOTES


@dataclasses.dataclass(frozen=True)
class RawSplit:
    images: np.ndarray   # uint8 (N, 48, 48)
    votes: np.ndarray    # float32 (N, 10): neutral..contempt, unknown, NF
    names: np.ndarray    # str (N,): image file names (for error messages and tracing)

    def __post_init__(self):
        n = len(self.images)
        if self.images.dtype != np.uint8 or self.images.shape[1:] != (IMAGE_SIDE, IMAGE_SIDE):
            raise ValueError(f"images must be uint8 (N, {IMAGE_SIDE}, {IMAGE_SIDE}), got "
                             f"{self.images.dtype} {self.images.shape}")
        if self.votes.shape != (n, NUM_VOTES):
            raise ValueError(f"votes must be (N={n}, {NUM_VOTES}), got {self.votes.shape}")
        if len(self.names) != n:
            raise ValueError(f"names must have {n} entries, got {len(self.names)}")

    def __len__(self) -> int:
        return len(self.images)


@dataclasses.dataclass(frozen=True)
class LabeledSplit:
    images: np.ndarray   # uint8 (N, 48, 48)
    targets: np.ndarray  # float32 (N, 8): the label mode's target distribution
    labels: np.ndarray   # int32 (N,): argmax class, used for accuracy

    def __post_init__(self):
        n = len(self.images)
        if self.targets.shape != (n, NUM_CLASSES) or self.labels.shape != (n,):
            raise ValueError(f"targets/labels shapes {self.targets.shape}/{self.labels.shape} "
                             f"do not match {n} images")

    def __len__(self) -> int:
        return len(self.images)

    def class_counts(self) -> np.ndarray:
        return np.bincount(self.labels, minlength=NUM_CLASSES)


@dataclasses.dataclass(frozen=True)
class Dataset:
    """All splits a source holds; absent splits are simply missing from `splits`."""
    splits: dict[str, RawSplit]
    source: str          # "synthetic" or the path read, shown in every report

    def has(self, split: str) -> bool:
        return split in self.splits
