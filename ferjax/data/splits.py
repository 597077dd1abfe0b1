"""A run's labeled splits: a dataset read, its votes turned into the label mode's targets,
and, for a reduced run, fixed random subsets of train and valid."""
from __future__ import annotations

import numpy as np

from ferjax.config import RunConfig
from ferjax.data.ferplus import load_dataset
from ferjax.data.records import Dataset, LabeledSplit
from ferjax.data.votes import label_split


def labeled_splits(cfg: RunConfig, dataset: Dataset | None = None) -> tuple[dict[str, LabeledSplit], str]:
    """The label mode's splits; `train_subset`/`valid_subset` take fixed random subsets (a reduced run)."""
    ds = dataset if dataset is not None else load_dataset(
        cfg.data.data, synthetic_per_class=cfg.data.synthetic_per_class)
    splits = {name: label_split(raw, cfg.data.label_mode) for name, raw in ds.splits.items()}
    if "train" not in splits or "valid" not in splits:
        raise ValueError(f"{ds.source}: training needs a train and a valid split, found "
                         f"{sorted(splits) or 'none'}")
    for name, n in (("train", cfg.data.train_subset), ("valid", cfg.data.valid_subset)):
        if 0 < n < len(splits[name]):
            t = splits[name]
            idx = np.sort(np.random.default_rng(0).permutation(len(t))[:n])
            splits[name] = LabeledSplit(t.images[idx], t.targets[idx], t.labels[idx])
    return splits, ds.source
