"""Shared test set-up: JAX started once, and a tiny FERPlus folder fixture with its helpers."""
import csv
import os
import zlib
from pathlib import Path

import cv2
import numpy as np
import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import jax  # noqa: E402

# Start JAX now, with the devices the environment gives (one CPU device by default), so that a
# test calling an entry point (which would split the host into one device per core if JAX had
# not started) cannot change the device count for the tests after it.
jax.devices()


# A tiny FERPlus folder (two splits) and its helpers, shared by the data tests.

def face(seed: int, side: int = 48) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (side, side), dtype=np.uint8)


def write_split(root: Path, folder: str, rows: list[tuple[str, list]], images: dict | None = None) -> Path:
    """A FERPlus split folder: label.csv (name, box, votes) plus one PNG per row."""
    d = root / folder
    d.mkdir(parents=True, exist_ok=True)
    with open(d / "label.csv", "w", newline="") as f:
        w = csv.writer(f)
        for name, votes in rows:
            w.writerow([name, "(0, 0, 48, 48)", *votes])
    for name, _ in rows:
        image = (images or {}).get(name, face(zlib.crc32(name.encode())))
        if image is not None:
            cv2.imwrite(str(d / name), image)
    return d


TRAIN_ROWS = [("fer0000000.png", [4, 0, 0, 1, 3, 2, 0, 0, 0, 0]),   # anger 3... not > 5: dropped
              ("fer0000001.png", [6, 0, 1, 1, 0, 0, 0, 0, 2, 0]),   # neutral
              ("fer0000002.png", [0, 9, 0, 0, 0, 0, 0, 0, 0, 1])]   # happiness
VALID_ROWS = [("fer0028638.png", [0, 0, 7, 0, 0, 0, 3, 0, 0, 0]),   # surprise
              ("fer0028639.png", [0, 0, 0, 0, 0, 0, 0, 0, 2, 8])]   # not a face: dropped


@pytest.fixture
def ferplus_dir(tmp_path) -> Path:
    root = tmp_path / "ferplus"
    write_split(root, "FER2013Train", TRAIN_ROWS)
    write_split(root, "FER2013Valid", VALID_ROWS)
    return root
