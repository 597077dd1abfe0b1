"""Throughput of the tf.data input pipeline (images/s), per feature set, train and eval.

    python benchmarks/pipeline.py [--images 10240] [--batch 64]
"""
from __future__ import annotations

import argparse
import os
import time

import numpy as np

from ferjax.classes import IMAGE_SIDE, NUM_CLASSES
from ferjax.data.pipeline import eval_batches, train_batches
from ferjax.data.records import LabeledSplit
from ferjax.features import FEATURE_SETS

TARGET_TRAIN_O_S_L = 2000.0   # images/s on a 2-core CPU


def random_split(n_images: int, seed: int = 0) -> LabeledSplit:
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, NUM_CLASSES, n_images).astype(np.int32)
    return LabeledSplit(
        images=rng.integers(0, 256, (n_images, IMAGE_SIDE, IMAGE_SIDE), dtype=np.uint8),
        targets=np.eye(NUM_CLASSES, dtype=np.float32)[labels], labels=labels)


def _epoch(split: LabeledSplit, feature_set: str, batch_size: int, train: bool,
           epoch: int) -> int:
    if train:
        batches = train_batches(split, feature_set=feature_set, batch_size=batch_size,
                                seed=0, epoch=epoch)
    else:
        batches = eval_batches(split, feature_set=feature_set, batch_size=batch_size)
    return sum(len(b["image"]) for b in batches)


def _timed(feature_set: str, n_images: int, batch_size: int, train: bool) -> tuple[float, float]:
    """(images per wall second, images per CPU second of this process) after a warm-up."""
    split = random_split(n_images)
    warm = 4 * batch_size
    _epoch(LabeledSplit(split.images[:warm], split.targets[:warm], split.labels[:warm]),
           feature_set, batch_size, train, 0)
    wall, cpu = time.perf_counter(), time.process_time()
    count = _epoch(split, feature_set, batch_size, train, 1)
    return count / (time.perf_counter() - wall), count / (time.process_time() - cpu)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=10240)
    parser.add_argument("--batch", type=int, default=64)
    args = parser.parse_args()
    print(f"{args.images} random 48x48 images -> 64x64, batch {args.batch}; "
          f"load average before: {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
    # images per CPU-second does not depend on what else the machine runs; times the core
    # count it bounds the wall rate of an otherwise idle machine.
    for feature_set in FEATURE_SETS:
        train, train_cpu = _timed(feature_set, args.images, args.batch, train=True)
        evaluation, eval_cpu = _timed(feature_set, args.images, args.batch, train=False)
        print(f"{feature_set:6s} train {train:6.0f} images/s ({train_cpu:5.0f}/CPU-s)   "
              f"eval {evaluation:6.0f} images/s ({eval_cpu:5.0f}/CPU-s)")
        if feature_set == "O-S-L":
            verdict = "OK" if train >= TARGET_TRAIN_O_S_L else "BELOW TARGET"
            print(f"O-S-L train target {TARGET_TRAIN_O_S_L:.0f} images/s: {verdict}")

if __name__ == "__main__":
    main()
