"""Tests of the FERPlus data layer: vote processing, readers, cache, synthetic data, data-info."""
from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
import warnings
import zlib
from pathlib import Path

import cv2
import numpy as np
import pytest

from ferjax import cli
from ferjax.classes import CLASS_NAMES, VOTE_COLUMNS
from ferjax.data import cache
from ferjax.data import ferplus
from ferjax.data.ferplus import DataError, load_dataset, read_ferplus_folders, read_kaggle_csv
from ferjax.data.info import data_info, format_data_info
from ferjax.data.records import RawSplit
from ferjax.data.faces import draw_face, sample_looks
from ferjax.data.synthetic import PROTOTYPES, make_synthetic
from ferjax.config import LABEL_MODE_NAMES
from ferjax.data.votes import label_split, process_votes

REPO = Path(__file__).resolve().parents[1]


# ----------------------------------------------------------------------------- helpers

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
def small_ferplus_dir(tmp_path) -> Path:
    root = tmp_path / "ferplus"
    write_split(root, "FER2013Train", TRAIN_ROWS)
    write_split(root, "FER2013Valid", VALID_ROWS)
    return root


@pytest.fixture(autouse=True)
def _private_cache(tmp_path, monkeypatch):
    """Never touch the user's ~/.cache from tests."""
    monkeypatch.setenv(cache.CACHE_ENV, str(tmp_path / "default-cache"))


def pixels_text(image: np.ndarray) -> str:
    return " ".join(str(int(v)) for v in image.reshape(-1))


def write_kaggle(root: Path, rows: list[tuple[str, str, np.ndarray, list]]) -> tuple[Path, Path]:
    """fer2013.csv + fer2013new.csv; rows are (usage, image name, image, votes)."""
    root.mkdir(parents=True, exist_ok=True)
    pix, new = root / "fer2013.csv", root / "fer2013new.csv"
    with open(pix, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["emotion", "pixels", "Usage"])
        for usage, _, image, _ in rows:
            w.writerow([0, pixels_text(image) if isinstance(image, np.ndarray) else image, usage])
    with open(new, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["Usage", "Image name", *VOTE_COLUMNS])
        for usage, name, _, votes in rows:
            w.writerow([usage, name, *votes])
    return pix, new


KAGGLE_ROWS = [("Training", "fer0000000.png", face(1), [0, 10, 0, 0, 0, 0, 0, 0, 0, 0]),
               ("Training", "", face(2), [0, 0, 0, 0, 0, 0, 0, 0, 0, 10]),        # no name: skipped
               ("Training", "fer0000002.png", face(3), [2, 0, 0, 8, 0, 0, 0, 0, 0, 0]),
               ("PublicTest", "fer0028638.png", face(4), [0, 0, 0, 0, 7, 3, 0, 0, 0, 0]),
               ("PrivateTest", "fer0032220.png", face(5), [0, 0, 0, 0, 0, 0, 0, 9, 1, 0])]


def raise_data_error(match: str):
    return pytest.raises(DataError, match=match)


# ----------------------------------------------------------------------------- votes

def one_row(votes, mode):
    keep, targets = process_votes(np.array([votes], np.float32), mode)
    return bool(keep[0]), targets[0]


def onehot(i: int) -> np.ndarray:
    t = np.zeros(8, np.float32)
    t[i] = 1.0
    return t


def test_single_votes_are_outliers():
    # 5 of 10 is no majority, but the five single votes are removed first: 5 of 5.
    keep, target = one_row([5, 1, 1, 1, 1, 1, 0, 0, 0, 0], "majority")
    assert keep and np.array_equal(target, onehot(0))
    # All single votes: nothing left, no division by zero, dropped in every mode.
    for mode in LABEL_MODE_NAMES:
        assert not one_row([1] * 10, mode)[0]
        assert not one_row([0] * 10, mode)[0]


@pytest.mark.parametrize("votes, kept, label", [
    ([6, 0, 0, 0, 0, 0, 0, 0, 0, 4], True, 0),        # 6 > 5
    ([4, 4, 2, 0, 0, 0, 0, 0, 0, 0], False, None),    # tie, no majority
    ([5, 3, 2, 0, 0, 0, 0, 0, 0, 0], False, None),    # exactly half is not a majority
    ([0, 0, 0, 0, 0, 0, 0, 0, 6, 4], False, None),    # unknown wins
    ([0, 0, 0, 0, 0, 0, 0, 0, 3, 7], False, None),    # not a face
    ([0, 0, 0, 0, 0, 0, 0, 5, 4, 0], True, 7),        # sums to 9 (a real quirk): 5 > 4.5
])
def test_majority(votes, kept, label):
    keep, target = one_row(votes, "majority")
    assert keep == kept
    if kept:
        assert np.array_equal(target, onehot(label))


@pytest.mark.parametrize("mode", ["probability", "crossentropy"])
@pytest.mark.parametrize("votes, expected", [
    ([5, 3, 2, 0, 0, 0, 0, 0, 0, 0], [5 / 8, 3 / 8]),           # stops once >= 75% covered
    ([4, 3, 1, 1, 1, 0, 0, 0, 0, 0], [4 / 7, 3 / 7]),           # outliers gone, 7 votes left
    ([4, 4, 2, 0, 0, 0, 0, 0, 0, 0], [0.5, 0.5]),               # a tie is taken in one step
    ([4, 3, 3, 0, 0, 0, 0, 0, 0, 0], [0.4, 0.3, 0.3]),          # third emotion via a tie
    ([6, 0, 0, 0, 0, 0, 0, 0, 2, 2], [1.0]),                    # unknown after an emotion: ignored
    ([4, 0, 0, 0, 0, 0, 0, 0, 4, 2], None),                     # emotion ties unknown: 4 <= 5, dropped
    ([2, 0, 0, 0, 0, 0, 0, 0, 6, 2], None),                     # unknown first: dropped
    ([2, 2, 2, 2, 2, 0, 0, 0, 0, 0], None),                     # > 3 emotions: dropped
    ([0, 0, 0, 0, 0, 0, 0, 0, 0, 10], None),
])
def test_probability_and_crossentropy(mode, votes, expected):
    keep, target = one_row(votes, mode)
    assert keep == (expected is not None)
    if expected is not None:
        np.testing.assert_allclose(target, np.pad(expected, (0, 8 - len(expected))), rtol=1e-6)


def test_multi_target():
    keep, target = one_row([5, 3, 2, 0, 0, 0, 0, 0, 0, 0], "multi_target")   # >= 30%: 5 and 3
    assert keep
    np.testing.assert_allclose(target, [1, 1] + [0.001] * 6, rtol=1e-6)      # (1-eps)*t + eps
    keep, target = one_row([4, 0, 0, 0, 0, 0, 0, 0, 3, 3], "multi_target")   # unknown/NF cut off
    assert keep
    np.testing.assert_allclose(target, [1] + [0.001] * 7, rtol=1e-6)
    assert not one_row([3, 0, 0, 0, 0, 0, 0, 0, 4, 3], "multi_target")[0]   # unknown is the top
    assert not one_row([2, 2, 2, 2, 2, 0, 0, 0, 0, 0], "multi_target")[0]   # nothing reaches 30%


def test_multi_target_label_is_the_top_voted_class():
    raw = RawSplit(images=np.zeros((1, 48, 48), np.uint8),
                   votes=np.array([[3, 4, 3, 0, 0, 0, 0, 0, 0, 0]], np.float32), names=np.array(["a"]))
    labeled = label_split(raw, "multi_target")
    np.testing.assert_allclose(labeled.targets[0], [1, 1, 1] + [0.001] * 5, rtol=1e-6)
    assert labeled.labels.tolist() == [1]


def _vectorised_majority_and_multi_target(votes: np.ndarray, mode: str):
    """An independent, vectorised statement of the two simple modes, to cross-check the port."""
    v = np.where(votes <= 1, 0.0, votes.astype(np.float64))          # single votes are outliers
    total = v.sum(1, keepdims=True)
    if mode == "majority":
        top = v.argmax(1)
        ok = v.max(1) > 0.5 * total[:, 0]
        dist = np.zeros_like(v)
        dist[np.arange(len(v)), top] = 1.0
    else:
        dist = np.where(v >= 0.3 * total, v, 0.0)
        ok = dist.sum(1) > 0.5 * total[:, 0]
    keep = ok & (np.where(ok[:, None], dist, 0).argmax(1) < 8)
    head = dist[:, :8] / np.maximum(dist[:, :8].sum(1, keepdims=True), 1e-12)
    if mode == "multi_target":
        head = (1 - 0.001) * (head > 0) + 0.001
    return keep, head


@pytest.mark.parametrize("mode", ["majority", "multi_target"])
def test_matches_an_independent_vectorised_statement(mode):
    rng = np.random.default_rng(0)
    p = rng.dirichlet(np.full(10, 0.4), 3000)
    votes = np.array([rng.multinomial(int(rng.choice([9, 10])), q) for q in p], np.float32)
    keep, targets = process_votes(votes, mode)
    ref_keep, ref_targets = _vectorised_majority_and_multi_target(votes, mode)
    assert np.array_equal(keep, ref_keep)
    assert 0 < keep.sum() < len(keep)
    np.testing.assert_allclose(targets[keep], ref_targets[keep], rtol=1e-6)
    assert targets.dtype == np.float32


def test_label_split_and_unknown_mode():
    raw = RawSplit(images=np.stack([face(i) for i in range(3)]),
                   votes=np.array([r[1] for r in TRAIN_ROWS], np.float32),
                   names=np.array([r[0] for r in TRAIN_ROWS]))
    labeled = label_split(raw, "majority")
    assert len(labeled) == 2 and labeled.labels.dtype == np.int32
    assert labeled.labels.tolist() == [0, 1]
    assert np.array_equal(labeled.images, raw.images[1:])
    with pytest.raises(ValueError, match="unknown label mode 'vote'"):
        process_votes(raw.votes, "vote")
    with pytest.raises(ValueError, match="unknown label mode"):
        label_split(raw, "Majority")


# ----------------------------------------------------------------------------- folders

def test_read_ferplus_folders(small_ferplus_dir):
    ds = read_ferplus_folders(small_ferplus_dir)
    assert ds.source == str(small_ferplus_dir.absolute())
    assert set(ds.splits) == {"train", "valid"} and not ds.has("test")
    train = ds.splits["train"]
    assert train.images.shape == (3, 48, 48) and train.images.dtype == np.uint8
    assert train.names.tolist() == [r[0] for r in TRAIN_ROWS]
    assert np.array_equal(train.votes, np.array([r[1] for r in TRAIN_ROWS], np.float32))
    assert np.array_equal(train.images[2], face(zlib.crc32(b"fer0000002.png")))


def _corrupt(kind: str, d: Path) -> str:
    """Break split folder d in one way; returns a regex the error must match."""
    label = d / "label.csv"
    lines = label.read_text().splitlines()
    if kind == "missing label.csv":
        label.unlink()
        return r"FER2013Train/label\.csv: missing"
    if kind == "wrong field count":
        lines[1] = lines[1].rsplit(",", 1)[0]
        label.write_text("\n".join(lines) + "\n")
        return r"label\.csv, line 2: expected 12 fields .* found 11"
    if kind == "non-numeric vote":
        lines[2] = lines[2].replace(",0,0,0,0,0,0,0,1", ",0,0,0,0,x,0,0,1")
        label.write_text("\n".join(lines) + "\n")
        return r"label\.csv, line 3: vote count fear='x' is not a number"
    if kind == "negative vote":
        lines[0] = lines[0].replace('",4,', '",-4,')
        label.write_text("\n".join(lines) + "\n")
        return r"label\.csv, line 1: vote count neutral='-4' must be a non-negative"
    if kind == "missing image":
        (d / "fer0000001.png").unlink()
        return r"fer0000001\.png: image missing, listed in .*label\.csv, line 2"
    if kind == "undecodable image":
        (d / "fer0000002.png").write_bytes(b"not a png")
        return r"fer0000002\.png: image not decodable, listed in .*label\.csv, line 3"
    if kind == "wrong image size":
        cv2.imwrite(str(d / "fer0000000.png"), face(0, side=40))
        return r"fer0000000\.png: image size 40x40, expected 48x48, .*line 1"
    if kind == "no rows":
        label.write_text("")
        return r"label\.csv: no rows"
    raise AssertionError(kind)


@pytest.mark.parametrize("kind", ["missing label.csv", "wrong field count", "non-numeric vote",
                                  "negative vote", "missing image", "undecodable image",
                                  "wrong image size", "no rows"])
def test_folder_errors_name_file_and_line(small_ferplus_dir, kind):
    pattern = _corrupt(kind, small_ferplus_dir / "FER2013Train")
    with raise_data_error(pattern):
        read_ferplus_folders(small_ferplus_dir)


def test_no_split_folder(tmp_path):
    with raise_data_error(f"{tmp_path}: no FERPlus split folder"):
        read_ferplus_folders(tmp_path)


def test_blank_trailing_line_is_fine(small_ferplus_dir):
    label = small_ferplus_dir / "FER2013Valid" / "label.csv"
    label.write_text(label.read_text() + "\n")
    assert len(read_ferplus_folders(small_ferplus_dir).splits["valid"]) == 2


# ----------------------------------------------------------------------------- Kaggle CSVs

def test_read_kaggle_csv(tmp_path):
    pix, new = write_kaggle(tmp_path / "kaggle", KAGGLE_ROWS)
    ds = read_kaggle_csv(pix, new)
    assert ds.source == str((tmp_path / "kaggle").absolute())
    assert {s: len(v) for s, v in ds.splits.items()} == {"train": 2, "valid": 1, "test": 1}
    train = ds.splits["train"]
    assert train.names.tolist() == ["fer0000000.png", "fer0000002.png"]
    assert np.array_equal(train.images[1], face(3))
    assert np.array_equal(ds.splits["test"].votes[0], [0, 0, 0, 0, 0, 0, 0, 9, 1, 0])


def _kaggle_case(kind: str):
    rows = list(KAGGLE_ROWS)
    if kind == "row counts":
        return rows, lambda pix, new: new.write_text("\n".join(new.read_text().splitlines()[:-1]) + "\n"), \
            r"fer2013\.csv has 5 data rows but .*fer2013new\.csv has 4"
    if kind == "pixel count":
        rows[2] = (*rows[2][:2], pixels_text(face(3))[:-4], rows[2][3])
        return rows, None, r"fer2013\.csv, line 4: 2303 pixel values, expected 2304"
    if kind == "bad pixel text":
        rows[0] = (*rows[0][:2], "abc " + pixels_text(face(1)[1:]), rows[0][3])
        return rows, None, r"fer2013\.csv, line 2: pixel value 'abc' is not an integer"
    if kind == "usage mismatch":
        return rows, lambda pix, new: new.write_text(
            new.read_text().replace("PublicTest,fer0028638", "PrivateTest,fer0028638")), \
            r"line 5: Usage 'PublicTest' in .*fer2013\.csv but 'PrivateTest' in .*fer2013new\.csv"
    if kind == "column count":
        return rows, lambda pix, new: new.write_text(
            new.read_text().replace("fer0028638.png,", "fer0028638.png,0,")), \
            r"fer2013new\.csv, line 5: expected 12 fields like the header, found 13"
    if kind == "unknown usage":
        rows[0] = ("Train", *rows[0][1:])
        return rows, None, r"fer2013\.csv, line 2: unknown Usage 'Train'"
    if kind == "bad vote":
        rows[0] = (*rows[0][:3], [0, "ten", 0, 0, 0, 0, 0, 0, 0, 0])
        return rows, None, r"fer2013new\.csv, line 2: vote count happiness='ten'"
    raise AssertionError(kind)


@pytest.mark.parametrize("kind", ["row counts", "pixel count", "bad pixel text", "usage mismatch",
                                  "column count", "unknown usage", "bad vote"])
def test_kaggle_errors_name_file_and_line(tmp_path, kind):
    rows, mutate, pattern = _kaggle_case(kind)
    pix, new = write_kaggle(tmp_path, rows)
    if mutate:
        mutate(pix, new)
    with raise_data_error(pattern):
        read_kaggle_csv(pix, new)


def test_kaggle_pixel_out_of_range(tmp_path):
    image = face(4).astype(np.int64).reshape(-1)
    text = " ".join(["256"] + [str(v) for v in image[1:]])
    rows = [KAGGLE_ROWS[0], ("PublicTest", "x.png", text, KAGGLE_ROWS[3][3])]
    pix, new = write_kaggle(tmp_path, rows)
    with raise_data_error(r"fer2013\.csv, line 3: pixel value 256 is outside 0\.\.255"):
        read_kaggle_csv(pix, new)


# ----------------------------------------------------------------------------- load_dataset + cache

def test_load_dataset_layouts(tmp_path, small_ferplus_dir):
    cache_dir = tmp_path / "cache"
    assert set(load_dataset(str(small_ferplus_dir), cache_dir=str(cache_dir)).splits) == {"train", "valid"}
    write_kaggle(tmp_path / "kaggle", KAGGLE_ROWS)
    ds = load_dataset(str(tmp_path / "kaggle"), cache_dir=str(cache_dir))
    assert set(ds.splits) == {"train", "valid", "test"}
    assert len(list(cache_dir.glob("ferplus-*.npz"))) == 2
    ds = load_dataset("synthetic", synthetic_per_class=3, synthetic_seed=1)
    assert ds.source == "synthetic" and len(ds.splits["train"]) == 24


def test_load_dataset_bad_specs(tmp_path):
    with raise_data_error(f"data path '{tmp_path / 'nope'}' does not exist"):
        load_dataset(str(tmp_path / "nope"))
    (tmp_path / "file.txt").write_text("x")
    with raise_data_error("is a file; expected"):
        load_dataset(str(tmp_path / "file.txt"))
    with raise_data_error(f"{tmp_path}: not a dataset folder; expected .*FER2013Train.*fer2013.csv"):
        load_dataset(str(tmp_path))
    (tmp_path / "fer2013new.csv").write_text("Usage,Image name\n")
    with raise_data_error("has fer2013new.csv but not fer2013.csv"):
        load_dataset(str(tmp_path))


def _same(a, b) -> None:
    assert a.source == b.source and set(a.splits) == set(b.splits)
    for name in a.splits:
        for field in ("images", "votes", "names"):
            x, y = getattr(a.splits[name], field), getattr(b.splits[name], field)
            assert x.dtype == y.dtype and np.array_equal(x, y), (name, field)


def test_cache_roundtrip_and_invalidation(tmp_path, small_ferplus_dir, monkeypatch):
    cache_dir = tmp_path / "cache"
    first = load_dataset(str(small_ferplus_dir), cache_dir=str(cache_dir))
    [cached_file] = cache_dir.glob("ferplus-folders-*.npz")
    assert not list(cache_dir.glob(".*tmp"))                      # no temp file left behind

    def no_reading(root):
        raise AssertionError("should have been served from the cache")
    monkeypatch.setattr(ferplus, "read_ferplus_folders", no_reading)
    _same(first, load_dataset(str(small_ferplus_dir), cache_dir=str(cache_dir)))
    monkeypatch.undo()

    # A changed label file is a different source: re-read, new cache entry.
    label = small_ferplus_dir / "FER2013Train" / "label.csv"
    label.write_text(label.read_text().replace('",4,0,0,1,3,2', '",9,0,0,1,0,0'))
    changed = load_dataset(str(small_ferplus_dir), cache_dir=str(cache_dir))
    assert changed.splits["train"].votes[0, 0] == 9
    assert len(list(cache_dir.glob("ferplus-folders-*.npz"))) == 2
    # ...and so is an added image file.
    cv2.imwrite(str(small_ferplus_dir / "FER2013Train" / "extra.png"), face(9))
    load_dataset(str(small_ferplus_dir), cache_dir=str(cache_dir))
    assert len(list(cache_dir.glob("ferplus-folders-*.npz"))) == 3
    assert cached_file.exists()


@pytest.mark.parametrize("damage", ["truncate", "garbage", "empty"])
def test_corrupt_cache_is_rebuilt(tmp_path, small_ferplus_dir, damage):
    cache_dir = tmp_path / "cache"
    first = load_dataset(str(small_ferplus_dir), cache_dir=str(cache_dir))
    [path] = cache_dir.glob("ferplus-*.npz")
    data = path.read_bytes()
    path.write_bytes({"truncate": data[: len(data) // 2], "garbage": b"\x00junk" * 100,
                      "empty": b""}[damage])
    with pytest.warns(RuntimeWarning, match="ignoring unreadable data cache"):
        again = load_dataset(str(small_ferplus_dir), cache_dir=str(cache_dir))
    _same(first, again)
    with warnings.catch_warnings():
        warnings.simplefilter("error")                             # the rebuilt cache is sound
        _same(first, load_dataset(str(small_ferplus_dir), cache_dir=str(cache_dir)))


def test_interrupted_cache_write_leaves_nothing(tmp_path, small_ferplus_dir, monkeypatch):
    cache_dir = tmp_path / "cache"

    def crash(f, **arrays):
        f.write(b"PK\x03\x04 half a zip")
        raise KeyboardInterrupt
    monkeypatch.setattr(cache.np, "savez", crash)
    with pytest.raises(KeyboardInterrupt):
        load_dataset(str(small_ferplus_dir), cache_dir=str(cache_dir))
    assert list(cache_dir.iterdir()) == []


def test_unwritable_cache_only_warns(tmp_path, small_ferplus_dir):
    blocker = tmp_path / "blocker"
    blocker.write_text("a file where the cache folder should be")
    with pytest.warns(RuntimeWarning, match="could not write data cache"):
        ds = load_dataset(str(small_ferplus_dir), cache_dir=str(blocker / "cache"))
    assert len(ds.splits["train"]) == 3


def test_default_cache_dir_from_env(tmp_path, small_ferplus_dir, monkeypatch):
    monkeypatch.setenv(cache.CACHE_ENV, str(tmp_path / "env-cache"))
    load_dataset(str(small_ferplus_dir))
    assert len(list((tmp_path / "env-cache").glob("ferplus-*.npz"))) == 1


# ----------------------------------------------------------------------------- synthetic

@pytest.fixture(scope="module")
def synthetic_small():
    return make_synthetic(per_class=40, seed=3)


def test_synthetic_shapes_and_classes(synthetic_small):
    ds = synthetic_small
    assert ds.source == "synthetic"
    assert {s: len(v) for s, v in ds.splits.items()} == {"train": 320, "valid": 72, "test": 72}
    train = ds.splits["train"]
    assert train.images.dtype == np.uint8 and train.images.shape == (320, 48, 48)
    assert set(np.unique(train.votes.sum(axis=1))) == {10.0}
    assert len(set(train.names.tolist())) == 320
    labeled = label_split(train, "majority")
    assert 0.75 * 320 < len(labeled) < 320                  # some ambiguous faces are dropped
    assert (labeled.class_counts() >= 25).all()             # every class is well represented
    assert train.images.std() > 30                          # not blank


def test_synthetic_is_deterministic(synthetic_small):
    again = make_synthetic(per_class=40, seed=3)
    _same(synthetic_small, again)
    other = make_synthetic(per_class=40, seed=4)
    assert not np.array_equal(other.splits["train"].images, again.splits["train"].images)


def test_synthetic_expression_changes_the_face():
    """With identity, pose and lighting fixed, every pair of class prototypes looks different."""
    for seed in range(3):
        look = sample_looks(np.random.default_rng(seed), 1)[0]
        faces = np.stack([draw_face(p, look) for p in PROTOTYPES]).astype(np.float32)
        diffs = np.abs(faces[:, None] - faces[None]).mean(axis=(2, 3))
        assert diffs[~np.eye(8, dtype=bool)].min() > 0.5


def test_synthetic_arguments():
    ds = make_synthetic(per_class=2, valid_fraction=0.0, test_fraction=0.0)
    assert set(ds.splits) == {"train"}
    with pytest.raises(ValueError, match="per_class"):
        make_synthetic(per_class=0)
    with pytest.raises(ValueError, match="fraction"):
        make_synthetic(valid_fraction=0.6, test_fraction=0.5)


# ----------------------------------------------------------------------------- data-info

def test_data_info_folders(tmp_path, small_ferplus_dir):
    info = data_info(str(small_ferplus_dir), cache_dir=str(tmp_path / "c"))
    assert info["synthetic"] is False
    assert info["splits_present"] == ["train", "valid"] and info["splits_missing"] == ["test"]
    assert info["splits"]["train"]["images"] == 3 and info["splits"]["train"]["kept"] == 2
    assert info["splits"]["train"]["classes"]["happiness"] == 1
    assert info["splits"]["valid"]["classes"] == dict.fromkeys(CLASS_NAMES, 0) | {"surprise": 1}
    assert data_info(str(small_ferplus_dir), "probability", str(tmp_path / "c"))["splits"]["train"]["kept"] == 3
    text = format_data_info(info)
    assert "missing test" in text and "surprise" in text and "SYNTHETIC" not in text


def test_data_info_synthetic_says_so():
    info = data_info("synthetic")
    assert info["synthetic"] and info["source"] == "synthetic"
    assert "synthetic" in info["note"].lower()
    assert format_data_info(info).startswith("NOTE: built-in SYNTHETIC data")


def test_cli_data_info_json(tmp_path, small_ferplus_dir, capsys):
    assert cli.main(["data-info", "--data", str(small_ferplus_dir), "--json", "--label-mode", "multi_target"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["label_mode"] == "multi_target" and info["splits_missing"] == ["test"]
    assert cli.main(["data-info", "--data", str(tmp_path / "missing")]) == 2
    assert "does not exist" in capsys.readouterr().err


def test_cli_subprocess(tmp_path, small_ferplus_dir):
    env = dict(os.environ, FERJAX_CACHE=str(tmp_path / "c"), PYTHONPATH=str(REPO))
    out = subprocess.run([sys.executable, "-m", "ferjax", "data-info", "--data", str(small_ferplus_dir), "--json"],
                         capture_output=True, text=True, env=env, cwd=tmp_path, timeout=120)
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["splits"]["valid"]["kept"] == 1


# ----------------------------------------------------------------------------- real data

@pytest.mark.realdata
def test_real_ferplus_counts(tmp_path, real_ferplus):
    info = data_info(str(real_ferplus), "majority", cache_dir=str(tmp_path / "cache"))
    assert info["splits_missing"] == ["test"]
    assert info["splits"]["train"]["images"] == 28558 and info["splits"]["valid"]["images"] == 3579
    assert info["splits"]["train"]["kept"] == 25045
    assert info["splits"]["valid"]["kept"] == 3191
    assert info["splits"]["valid"]["classes"]["neutral"] == 1180
