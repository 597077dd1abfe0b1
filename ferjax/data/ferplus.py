"""Readers for real FERPlus data, and `load_dataset`, the one entry point for every source.

Two on-disk layouts are understood:
- the folders that the FERPlus reference tooling exports (FER2013Train/Valid/Test, each with
  48x48 PNGs and a header-less label.csv), which is what the reference trainer reads;
- the Kaggle `fer2013.csv` pixel table next to the FERPlus `fer2013new.csv` vote table.
Every malformed input raises `DataError` naming the file and line, never a bare traceback.
"""
from __future__ import annotations

import csv
import dataclasses
import math
import os
import re
import warnings
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import cv2
import numpy as np

from ferjax.classes import IMAGE_SIDE, NUM_VOTES, SPLIT_FOLDERS, SPLIT_USAGE, SPLITS, VOTE_COLUMNS
from ferjax.data.records import Dataset, RawSplit

LABEL_FILE = "label.csv"
KAGGLE_PIXELS = "fer2013.csv"
KAGGLE_VOTES = "fer2013new.csv"
LABEL_FIELDS = 2 + NUM_VOTES          # name, face box "(0, 0, 48, 48)", ten vote counts
NUM_PIXELS = IMAGE_SIDE * IMAGE_SIDE
_INTEGER = re.compile(r"[+-]?[0-9]+")
USAGE_SPLIT = {usage: split for split, usage in SPLIT_USAGE.items()}
EXPECTED_LAYOUT = (f"'synthetic', a FERPlus folder holding any of "
                   f"{', '.join(SPLIT_FOLDERS.values())} (PNGs + {LABEL_FILE}), "
                   f"or a folder holding {KAGGLE_PIXELS} and {KAGGLE_VOTES}")


class DataError(ValueError):
    """Unusable data on disk; the message names the file (and line) at fault."""


# ----------------------------------------------------------------------------- vote fields

def parse_votes(fields: list[str], where: str) -> list[float]:
    """Ten non-negative finite vote counts, or a DataError located at `where`."""
    try:
        votes = [float(text) for text in fields]
        if min(votes) >= 0 and all(map(math.isfinite, votes)):
            return votes
    except ValueError:
        pass
    for column, text in zip(VOTE_COLUMNS, fields):     # slow path: name the culprit
        try:
            value = float(text)
        except ValueError:
            raise DataError(f"{where}: vote count {column}={text!r} is not a number") from None
        if not math.isfinite(value) or value < 0:
            raise DataError(f"{where}: vote count {column}={text!r} must be a non-negative number")
    raise AssertionError("unreachable")


# ----------------------------------------------------------------------------- folders

def read_label_csv(path: Path) -> tuple[list[str], np.ndarray, list[int]]:
    """(image names, float32 votes (N, 10), line numbers) of one header-less FERPlus label.csv."""
    if not path.is_file():
        raise DataError(f"{path}: missing (every FERPlus split folder needs its {LABEL_FILE})")
    names, votes, lines = [], [], []
    with open(path, newline="") as f:
        reader = csv.reader(f)
        for row in reader:
            if not row:                              # blank line, e.g. a trailing newline
                continue
            where = f"{path}, line {reader.line_num}"
            if len(row) != LABEL_FIELDS:
                raise DataError(f"{where}: expected {LABEL_FIELDS} fields (name, face box, "
                                f"{NUM_VOTES} votes), found {len(row)}")
            if not row[0].strip():
                raise DataError(f"{where}: empty image name")
            names.append(row[0].strip())
            lines.append(reader.line_num)
            votes.append(parse_votes(row[2:], where))
    if not names:
        raise DataError(f"{path}: no rows")
    return names, np.asarray(votes, dtype=np.float32), lines


def _decode_into(out: np.ndarray, paths: list[str], start: int, stop: int) -> list[tuple[int, str]]:
    """Decode paths[start:stop] into out; return (index, reason) of the failures."""
    bad = []
    for i in range(start, stop):
        image = cv2.imread(paths[i], cv2.IMREAD_GRAYSCALE)
        if image is None:
            bad.append((i, "missing" if not os.path.exists(paths[i]) else "not decodable"))
        elif image.shape != (IMAGE_SIDE, IMAGE_SIDE):
            bad.append((i, f"size {image.shape[1]}x{image.shape[0]}, expected "
                           f"{IMAGE_SIDE}x{IMAGE_SIDE}"))
        else:
            out[i] = image
    return bad


def decode_images(paths: list[str]) -> tuple[np.ndarray, list[tuple[int, str]]]:
    """uint8 (N, 48, 48) grey faces plus the failures; threads help since cv2 drops the GIL."""
    out = np.zeros((len(paths), IMAGE_SIDE, IMAGE_SIDE), np.uint8)
    workers = max(1, min(8, 2 * (os.cpu_count() or 1)))
    bounds = np.linspace(0, len(paths), 4 * workers + 1).astype(int)
    with ThreadPoolExecutor(workers) as pool:
        parts = pool.map(lambda b: _decode_into(out, paths, b[0], b[1]), zip(bounds[:-1], bounds[1:]))
        bad = [failure for part in parts for failure in part]
    return out, bad


def read_split_folder(folder: Path) -> RawSplit:
    label_path = folder / LABEL_FILE
    names, votes, lines = read_label_csv(label_path)
    images, bad = decode_images([str(folder / n) for n in names])
    if bad:
        index, reason = bad[0]
        more = f" (and {len(bad) - 1} more)" if len(bad) > 1 else ""
        raise DataError(f"{folder / names[index]}: image {reason}, listed in {label_path}, "
                        f"line {lines[index]}{more}")
    return RawSplit(images=images, votes=votes, names=np.asarray(names))


def present_split_folders(root: Path) -> dict[str, Path]:
    return {split: root / SPLIT_FOLDERS[split] for split in SPLITS
            if (root / SPLIT_FOLDERS[split]).is_dir()}


def read_ferplus_folders(root: str | os.PathLike) -> Dataset:
    """All split folders present under root; absent ones are simply missing from `splits`."""
    root = Path(root).resolve()
    folders = present_split_folders(root)
    if not folders:
        raise DataError(f"{root}: no FERPlus split folder "
                        f"({', '.join(SPLIT_FOLDERS.values())}) found")
    return Dataset(splits={s: read_split_folder(f) for s, f in folders.items()}, source=str(root))


# ----------------------------------------------------------------------------- Kaggle CSVs

def _read_csv(path: Path) -> tuple[list[str], list[list[str]]]:
    if not path.is_file():
        raise DataError(f"{path}: missing")
    with open(path, newline="") as f:
        rows = list(csv.reader(f))
    while rows and not rows[-1]:
        rows.pop()
    if not rows:
        raise DataError(f"{path}: empty file (expected a header line)")
    return [h.strip() for h in rows[0]], rows[1:]


def _column(header: list[str], name: str, path: Path) -> int:
    lowered = [h.lower() for h in header]
    if name.lower() not in lowered:
        raise DataError(f"{path}: header {','.join(header)!r} lacks column {name!r}")
    return lowered.index(name.lower())


def _check_width(rows: list[list[str]], width: int, path: Path) -> None:
    for i, row in enumerate(rows):
        if len(row) != width:
            raise DataError(f"{path}, line {i + 2}: expected {width} fields like the header, "
                            f"found {len(row)}")


def _parse_pixels(text: str, where: str) -> np.ndarray:
    with warnings.catch_warnings():
        warnings.simplefilter("error")           # numpy only warns on unparsable text
        try:
            values = np.fromstring(text, dtype=np.int64, sep=" ")
        except (DeprecationWarning, ValueError):
            bad = next((t for t in text.split() if not _INTEGER.fullmatch(t)), None)
            if bad is not None:
                raise DataError(f"{where}: pixel value {bad!r} is not an integer 0..255") from None
            values = np.array([int(t) for t in text.split()], dtype=np.int64)
    if values.size != NUM_PIXELS:
        raise DataError(f"{where}: {values.size} pixel values, expected {NUM_PIXELS} "
                        f"({IMAGE_SIDE}x{IMAGE_SIDE})")
    out_of_range = (values < 0) | (values > 255)
    if out_of_range.any():
        raise DataError(f"{where}: pixel value {values[out_of_range][0]} is outside 0..255")
    return values.astype(np.uint8)


def read_kaggle_csv(fer2013_csv: str | os.PathLike, fer2013new_csv: str | os.PathLike) -> Dataset:
    """Kaggle pixels + FERPlus votes, aligned row by row; rows without an image name are skipped."""
    pix_path, vote_path = Path(fer2013_csv).absolute(), Path(fer2013new_csv).absolute()
    pix_header, pix_rows = _read_csv(pix_path)
    vote_header, vote_rows = _read_csv(vote_path)
    if len(pix_rows) != len(vote_rows):
        raise DataError(f"{pix_path} has {len(pix_rows)} data rows but {vote_path} has "
                        f"{len(vote_rows)}; their rows must correspond one to one")
    pixels_col = _column(pix_header, "pixels", pix_path)
    pix_usage_col = _column(pix_header, "Usage", pix_path)
    usage_col = _column(vote_header, "Usage", vote_path)
    name_col = _column(vote_header, "Image name", vote_path)
    vote_cols = [_column(vote_header, c, vote_path) for c in VOTE_COLUMNS]
    _check_width(pix_rows, len(pix_header), pix_path)
    _check_width(vote_rows, len(vote_header), vote_path)

    by_split: dict[str, tuple[list, list, list]] = {}
    for i, (prow, vrow) in enumerate(zip(pix_rows, vote_rows)):
        line = i + 2
        usage, vote_usage = prow[pix_usage_col].strip(), vrow[usage_col].strip()
        if usage != vote_usage:
            raise DataError(f"line {line}: Usage {usage!r} in {pix_path} but {vote_usage!r} in "
                            f"{vote_path}; the files are not aligned")
        if usage not in USAGE_SPLIT:
            raise DataError(f"{pix_path}, line {line}: unknown Usage {usage!r} (expected "
                            f"{', '.join(USAGE_SPLIT)})")
        name = vrow[name_col].strip()
        if not name:                              # FERPlus dropped these faces
            continue
        votes = parse_votes([vrow[c] for c in vote_cols], f"{vote_path}, line {line}")
        image = _parse_pixels(prow[pixels_col], f"{pix_path}, line {line}")
        images, all_votes, names = by_split.setdefault(USAGE_SPLIT[usage], ([], [], []))
        images.append(image)
        all_votes.append(votes)
        names.append(name)
    if not by_split:
        raise DataError(f"{vote_path}: no rows with an image name")
    splits = {s: RawSplit(images=np.stack(by_split[s][0]).reshape(-1, IMAGE_SIDE, IMAGE_SIDE),
                          votes=np.asarray(by_split[s][1], np.float32),
                          names=np.asarray(by_split[s][2]))
              for s in SPLITS if s in by_split}
    source = str(pix_path.parent) if pix_path.parent == vote_path.parent else f"{pix_path} + {vote_path}"
    return Dataset(splits=splits, source=source)


# ----------------------------------------------------------------------------- entry point

def detect_layout(root: Path) -> str:
    """'folders' or 'kaggle'; folders win because the reference trainer reads them."""
    if present_split_folders(root):
        return "folders"
    if (root / KAGGLE_PIXELS).is_file() and (root / KAGGLE_VOTES).is_file():
        return "kaggle"
    if (root / KAGGLE_VOTES).is_file():
        raise DataError(f"{root}: has {KAGGLE_VOTES} but not {KAGGLE_PIXELS} (the Kaggle pixel "
                        f"table it annotates) nor any FERPlus split folder; expected {EXPECTED_LAYOUT}")
    raise DataError(f"{root}: not a dataset folder; expected {EXPECTED_LAYOUT}")


def load_dataset(spec: str, *, cache_dir: str | None = None, synthetic_seed: int = 0,
                 synthetic_per_class: int = 400) -> Dataset:
    """'synthetic' or a data folder -> Dataset; real data is decoded once, then cached."""
    if spec == "synthetic":
        from ferjax.data.synthetic import make_synthetic
        return make_synthetic(per_class=synthetic_per_class, seed=synthetic_seed)
    from ferjax.data import cache

    root = Path(spec).expanduser().resolve()
    if not root.exists():
        raise DataError(f"data path {spec!r} does not exist; expected {EXPECTED_LAYOUT}")
    if not root.is_dir():
        raise DataError(f"data path {spec!r} is a file; expected {EXPECTED_LAYOUT}")
    if detect_layout(root) == "folders":
        folders = present_split_folders(root)
        key = cache.fingerprint("folders", root, files=[f / LABEL_FILE for f in folders.values()],
                                listed_dirs=list(folders.values()))
        dataset = cache.cached(key, lambda: read_ferplus_folders(root), cache_dir)
    else:
        pixels, votes = root / KAGGLE_PIXELS, root / KAGGLE_VOTES
        key = cache.fingerprint("kaggle", root, files=[pixels, votes], listed_dirs=[])
        dataset = cache.cached(key, lambda: read_kaggle_csv(pixels, votes), cache_dir)
    # the data as the user named it: results and checkpoints travel to other machines
    return dataclasses.replace(dataset, source=str(spec))
