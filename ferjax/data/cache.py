"""On-disk cache of decoded datasets, so 32k PNGs (or a 300 MB CSV) are decoded only once.

One uncompressed .npz per source fingerprint. Files are written to a temporary name and
renamed into place, so an interrupted load never leaves a cache that looks complete; a
cache that still fails to read (disk trouble, foreign file) is ignored and rebuilt.
"""
from __future__ import annotations

import hashlib
import os
import tempfile
import warnings
from pathlib import Path
from typing import Callable

import numpy as np

from ferjax.data.records import Dataset, RawSplit

CACHE_VERSION = 1        # bump when the stored layout or the readers' output changes
CACHE_ENV = "FERJAX_CACHE"


def default_cache_dir() -> Path:
    env = os.environ.get(CACHE_ENV)
    return Path(env).expanduser() if env else Path.home() / ".cache" / "ferjax"


def fingerprint(kind: str, root: Path, files: list[Path], listed_dirs: list[Path]) -> str:
    """Hash of what decides a source's content: its path, its label files, its image names."""
    h = hashlib.sha256(f"v{CACHE_VERSION}\0{kind}\0{Path(root).absolute()}\0".encode())
    for path in files:
        try:
            st = path.stat()
            h.update(f"{path}\0{st.st_size}\0{st.st_mtime_ns}\0".encode())
        except OSError:
            h.update(f"{path}\0absent\0".encode())
    for folder in listed_dirs:
        h.update(f"{folder}\0".encode())
        h.update("\0".join(sorted(os.listdir(folder))).encode())
    return f"{kind}-{h.hexdigest()[:24]}"


def cache_file(cache_dir: str | os.PathLike | None, key: str) -> Path:
    return Path(cache_dir if cache_dir is not None else default_cache_dir()) / f"ferplus-{key}.npz"


def save(path: Path, dataset: Dataset, key: str) -> None:
    """Write atomically: temp file in the same folder, fsync, then rename over the target."""
    arrays = {"key": np.array(key), "source": np.array(dataset.source),
              "splits": np.array(list(dataset.splits), dtype=str)}
    for name, split in dataset.splits.items():
        arrays[f"{name}_images"], arrays[f"{name}_votes"] = split.images, split.votes
        arrays[f"{name}_names"] = split.names.astype(str)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.stem}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            np.savez(f, **arrays)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def load(path: Path, key: str) -> Dataset:
    """Read a cache file; raises on any damage or key mismatch."""
    with np.load(path, allow_pickle=False) as z:
        if str(z["key"]) != key:
            raise ValueError(f"cache key {str(z['key'])!r} != {key!r}")
        splits = {str(name): RawSplit(images=z[f"{name}_images"], votes=z[f"{name}_votes"],
                                      names=z[f"{name}_names"])
                  for name in z["splits"]}
        return Dataset(splits=splits, source=str(z["source"]))


def cached(key: str, build: Callable[[], Dataset], cache_dir: str | os.PathLike | None = None) -> Dataset:
    """The cached Dataset for key, else build() and store it (a failed store only warns)."""
    path = cache_file(cache_dir, key)
    if path.exists():
        try:
            return load(path, key)
        except Exception as e:                   # noqa: BLE001 - any damage means "rebuild"
            warnings.warn(f"ignoring unreadable data cache {path} ({type(e).__name__}: {e}); "
                          f"rebuilding it", RuntimeWarning, stacklevel=2)
    dataset = build()
    try:
        save(path, dataset, key)
    except OSError as e:
        warnings.warn(f"could not write data cache {path}: {e}", RuntimeWarning, stacklevel=2)
    return dataset
