"""Loading FERPlus: ferjax's own .npz cache against a TFDS dataset builder of the same folders.

Issue 15, item 7: should TFDS's prepared records replace the hand-made cache of
ferjax/data/cache.py? Four measurements, each in a fresh process (so that its peak RSS is
its own and nothing stays warm in memory between them), the rounds interleaved so that a busy
machine weighs on every target alike. Imports are timed apart: every worker first imports
what a training process has (the tf.data pipeline, hence TensorFlow), TFDS workers TFDS too.

  cold  ferjax: load_dataset with an empty cache dir (decode the PNGs, write the .npz);
        TFDS: download_and_prepare into an empty data_dir, the FERPlus folders as manual dir
  warm  ferjax: load_dataset from its .npz;
        TFDS: every split as in-memory numpy arrays (as_dataset(batch_size=-1)), made into
        the RawSplits the training loop takes

The builder reuses ferjax's readers and has two configs: `png` stores the faces as
tfds.features.Image (the TFDS convention), `raw` as uint8 bytes (nothing to decode on read).
tensorflow-datasets is optional: without it the TFDS targets are skipped with a message.

    python benchmarks/data_load.py --data ../shared/data/ferplus [--repeats 3] [--out FILE.json]
"""
from __future__ import annotations

import argparse
import datetime
import functools
import importlib.util
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Iterator

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.common import cores, cpu_model, load_average, peak_rss_mb  # noqa: E402

TFDS_CONFIGS = ("png", "raw")
TFDS_MISSING = ("tensorflow-datasets is not installed: the TFDS targets are skipped "
                "(pip install tensorflow-datasets to measure them)")


# ----------------------------------------------------------------------------- the TFDS builder

def tfds_installed() -> bool:
    return importlib.util.find_spec("tensorflow_datasets") is not None


def load_tfds():
    """The tensorflow_datasets module, or None when it is not installed."""
    try:
        import tensorflow_datasets as tfds
    except ImportError:
        return None
    return tfds


@functools.cache
def ferplus_builder(tfds):
    """A TFDS builder class for the FERPlus reference folders (FER2013Train/Valid/Test)."""
    import numpy as np

    from ferjax.classes import IMAGE_SIDE, NUM_VOTES
    from ferjax.data.ferplus import present_split_folders, read_split_folder

    shape = (IMAGE_SIDE, IMAGE_SIDE, 1)

    class FerPlus(tfds.core.GeneratorBasedBuilder):
        VERSION = tfds.core.Version("1.0.0")
        BUILDER_CONFIGS = [
            tfds.core.BuilderConfig(name="png", description="faces as PNG (tfds.features.Image)"),
            tfds.core.BuilderConfig(name="raw", description="faces as raw uint8 bytes"),
        ]
        MANUAL_DOWNLOAD_INSTRUCTIONS = (
            "A folder holding the FERPlus reference folders (FER2013Train, FER2013Valid, "
            "FER2013Test), each with its 48x48 PNGs and label.csv.")

        def _info(self):
            image = (tfds.features.Image(shape=shape) if self.builder_config.name == "png" else
                     tfds.features.Tensor(shape=shape, dtype=np.uint8, encoding="bytes"))
            return tfds.core.DatasetInfo(builder=self, features=tfds.features.FeaturesDict({
                "image": image,
                "votes": tfds.features.Tensor(shape=(NUM_VOTES,), dtype=np.float32),
                "name": tfds.features.Text(),
            }))

        def _split_generators(self, dl_manager):
            folders = present_split_folders(Path(dl_manager.manual_dir))
            return {split: self._generate_examples(folder) for split, folder in folders.items()}

        def _generate_examples(self, folder):
            raw = read_split_folder(folder)
            for image, votes, name in zip(raw.images, raw.votes, raw.names.tolist()):
                yield name, {"image": image[..., None], "votes": votes, "name": name}

    return FerPlus


def tfds_splits(tfds, data_dir: str, config: str) -> tuple[dict, dict]:
    """({split: RawSplit}, {split: seconds}) from a prepared data_dir, as the loop would load it."""
    from ferjax.data.records import RawSplit

    builder = ferplus_builder(tfds)(data_dir=data_dir, config=config)
    splits, seconds = {}, {}
    for split in builder.info.splits:
        t = time.perf_counter()
        arrays = tfds.as_numpy(builder.as_dataset(split=split, batch_size=-1))
        splits[split] = RawSplit(images=arrays["image"][..., 0], votes=arrays["votes"],
                                 names=arrays["name"].astype(bytes).astype(str))
        seconds[split] = time.perf_counter() - t
    return splits, seconds


# ----------------------------------------------------------------------------- one measurement

def _current_rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def _timed(fn) -> tuple[object, float]:
    t = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - t


def import_for(kind: str):
    """What a training process has imported before it loads data (the tf.data pipeline, hence
    TensorFlow), plus tensorflow_datasets for the TFDS kinds; returns that module or None."""
    importlib.import_module("ferjax.data.pipeline")
    importlib.import_module("ferjax.data.ferplus")
    return None if kind == "ferjax" else load_tfds()


def measure_ferjax(tfds, data: str, store: str) -> dict:
    """load_dataset into/from the cache dir `store`: cold when it is empty, warm when not."""
    from ferjax.data.ferplus import load_dataset

    dataset, seconds = _timed(lambda: load_dataset(data, cache_dir=store))
    return {"seconds": seconds, "images": {s: len(r) for s, r in dataset.splits.items()}}


def measure_tfds_prepare(tfds, data: str, store: str, config: str) -> dict:
    tfds.disable_progress_bar()

    def prepare():
        builder = ferplus_builder(tfds)(data_dir=store, config=config)
        builder.download_and_prepare(download_config=tfds.download.DownloadConfig(manual_dir=data))
        return builder
    builder, seconds = _timed(prepare)
    return {"seconds": seconds,
            "images": {s: info.num_examples for s, info in builder.info.splits.items()}}


def measure_tfds_load(tfds, store: str, config: str) -> dict:
    (splits, per_split), seconds = _timed(lambda: tfds_splits(tfds, store, config))
    return {"seconds": seconds, "split_s": per_split,
            "images": {s: len(r) for s, r in splits.items()}}


def check_same(tfds, data: str, ferjax_store: str, tfds_store: str, config: str) -> dict:
    """Whether the TFDS records hold the faces, votes and names of ferjax's cache, per split
    (TFDS stores examples in its own shuffled order, so both are sorted by name first)."""
    import numpy as np

    from ferjax.data.ferplus import load_dataset

    ours = load_dataset(data, cache_dir=ferjax_store).splits
    theirs, _ = tfds_splits(tfds, tfds_store, config)

    def same(a, b) -> bool:
        i, j = np.argsort(a.names), np.argsort(b.names)
        return bool((a.names[i] == b.names[j]).all() and (a.images[i] == b.images[j]).all()
                    and (a.votes[i] == b.votes[j]).all())
    return {"same": set(ours) == set(theirs) and all(same(ours[s], theirs[s]) for s in ours)}


WORKERS = {"ferjax": measure_ferjax, "tfds-prepare": measure_tfds_prepare,
           "tfds-load": measure_tfds_load, "check": check_same}


def worker(argv: list[str]) -> dict:
    """One measurement; imports are timed apart, and RSS is taken after them and at the end."""
    kind, *args = argv
    tfds, import_s = _timed(lambda: import_for(kind))
    rss_imported = _current_rss_mb()
    result = WORKERS[kind](tfds, *args)
    return {**result, "import_s": import_s, "rss_after_imports_mb": rss_imported,
            "peak_rss_mb": peak_rss_mb()}


# ----------------------------------------------------------------------------- the driver

def run_worker(*args: str) -> dict:
    """One measurement in a fresh process; its JSON is the last line of its stdout."""
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
    proc = subprocess.run([sys.executable, __file__, "--worker", *args], env=env,
                          capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"worker {args[0]} failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def disk_mb(path: Path) -> float:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file()) / 2**20


def spread(values: list[float]) -> dict:
    return {"median": statistics.median(values), "min": min(values), "max": max(values),
            "values": values}


def measure_target(cold, warm, root: Path, rounds: int, cold_rounds: int) -> Iterator[tuple]:
    """`rounds` warm loads; the first `cold_rounds` rounds each prepare a fresh store first."""
    runs = {"cold": [], "warm": [], "disk_mb": []}
    store = None
    for r in range(rounds):
        if r < cold_rounds:
            store = root / f"store-{r}"
            runs["cold"].append(cold(str(store)))
            runs["disk_mb"].append(disk_mb(store))
        runs["warm"].append(warm(str(store)))
        yield r, runs, store


def summarise(runs: dict) -> dict:
    out = {"disk_mb": runs["disk_mb"][0], "images": runs["warm"][0]["images"]}
    for phase in ("cold", "warm"):
        out[phase] = {"seconds": spread([m["seconds"] for m in runs[phase]]),
                      "import_s": spread([m["import_s"] for m in runs[phase]]),
                      "peak_rss_mb": max(m["peak_rss_mb"] for m in runs[phase]),
                      "rss_after_imports_mb": max(m["rss_after_imports_mb"] for m in runs[phase])}
    if "split_s" in runs["warm"][0]:
        out["warm"]["split_s"] = {s: spread([m["split_s"][s] for m in runs["warm"]])
                                  for s in runs["warm"][0]["split_s"]}
    return out


def versus_ferjax(summaries: dict) -> dict:
    """Each TFDS target's seconds over ferjax's, round by round (a round's measurements run
    one after the other, so each pair saw about the same load on the machine), and its disk."""
    base = summaries["ferjax"]
    out = {}
    for name, t in summaries.items():
        if name == "ferjax":
            continue
        out[name] = {phase: spread([a / b for a, b in zip(t[phase]["seconds"]["values"],
                                                          base[phase]["seconds"]["values"])])
                     for phase in ("cold", "warm")}
        out[name]["disk"] = t["disk_mb"] / base["disk_mb"]
    return out


def targets(data: str, tfds_ok: bool) -> dict:
    """Target name -> (cold(store), warm(store)) measurement functions."""
    ferjax = functools.partial(run_worker, "ferjax", data)    # cold or warm: the same call
    out = {"ferjax": (ferjax, ferjax)}
    if tfds_ok:
        for config in TFDS_CONFIGS:
            out[f"tfds-{config}"] = (
                functools.partial(lambda s, c: run_worker("tfds-prepare", data, s, c), c=config),
                functools.partial(lambda s, c: run_worker("tfds-load", s, c), c=config))
    return out


def run_rounds(measures: dict, tmp: Path, repeats: int, cold_repeats: int) -> tuple[dict, dict]:
    """({target: its runs}, {target: its last store}), the targets taking turns round by round."""
    gens = {name: measure_target(cold, warm, tmp / name, repeats, cold_repeats)
            for name, (cold, warm) in measures.items()}
    results, stores = {}, {}
    for _ in range(repeats):
        for name, gen in gens.items():
            r, results[name], stores[name] = next(gen)
            warm_s = results[name]["warm"][-1]["seconds"]
            print(f"round {r + 1}/{repeats} {name}: warm {warm_s:.2f} s", file=sys.stderr)
    return results, stores


def run(data: str, repeats: int, cold_repeats: int) -> dict:
    tfds_ok = tfds_installed()
    if not tfds_ok:
        print(TFDS_MISSING, file=sys.stderr)
    cold_repeats = min(cold_repeats, repeats)
    started, load_start = datetime.datetime.now(datetime.timezone.utc), load_average()
    with tempfile.TemporaryDirectory(prefix="ferjax-data-load-") as tmp:
        results, stores = run_rounds(targets(data, tfds_ok), Path(tmp), repeats, cold_repeats)
        checks = {name: run_worker("check", data, str(stores["ferjax"]), str(stores[name]),
                                   name.removeprefix("tfds-"))["same"]
                  for name in results if name.startswith("tfds-")}
    summaries = {name: summarise(runs) for name, runs in results.items()}
    duration = datetime.datetime.now(datetime.timezone.utc) - started
    return {
        "benchmark": "data_load", "issue": "15.7",
        "started": started.isoformat(), "duration_s": duration.total_seconds(),
        "data": Path(data).name, "repeats": repeats, "cold_repeats": cold_repeats,
        "machine": {"cpu": cpu_model(), "cores": cores(), "nice": os.nice(0),
                    "load_average_start": load_start, "load_average_end": load_average()},
        "versions": versions(tfds_ok),
        "tfds": {"available": tfds_ok, **({} if tfds_ok else {"skipped": TFDS_MISSING})},
        "targets": summaries,
        "tfds_over_ferjax": versus_ferjax(summaries),
        "tfds_same_content_as_ferjax": checks,
    }


def versions(tfds_ok: bool) -> dict:
    from importlib.metadata import PackageNotFoundError, version
    out = {}
    for pkg in ("numpy", "opencv-python-headless", "tensorflow-cpu", "tensorflow",
                *(("tensorflow-datasets",) if tfds_ok else ())):
        try:
            out[pkg] = version(pkg)
        except PackageNotFoundError:
            pass
    out["python"] = sys.version.split()[0]
    return out


def table(report: dict) -> str:
    """Medians (min-max) of each target; the ratios are the medians of the per-round ratios."""
    rows = ["target     cold s (min-max)      x ferjax  warm s (min-max)      x ferjax  disk MB"
            "  peak RSS MB cold/warm"]
    for name, t in report["targets"].items():
        c, w = t["cold"]["seconds"], t["warm"]["seconds"]
        ratio = report["tfds_over_ferjax"].get(name)
        cx, wx = ((f"{ratio['cold']['median']:.1f}", f"{ratio['warm']['median']:.1f}") if ratio
                  else ("", ""))
        rows.append(f"{name:9s}  {c['median']:6.2f} ({c['min']:.2f}-{c['max']:.2f})  {cx:>8s}  "
                    f"{w['median']:6.2f} ({w['min']:.2f}-{w['max']:.2f})  {wx:>8s}  "
                    f"{t['disk_mb']:7.1f}  {t['cold']['peak_rss_mb']:6.0f} / "
                    f"{t['warm']['peak_rss_mb']:.0f}")
    return "\n".join(rows)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["--worker"]:
        print(json.dumps(worker(argv[1:])))
        return 0
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", required=True, help="a folder holding the FERPlus reference folders")
    p.add_argument("--repeats", type=int, default=3, help="rounds of warm loads (default 3)")
    p.add_argument("--cold-repeats", type=int, default=None,
                   help="how many of those rounds start cold (default: all)")
    p.add_argument("--out", help="write the report as JSON here")
    args = p.parse_args(argv)
    cold_repeats = args.repeats if args.cold_repeats is None else args.cold_repeats
    report = run(args.data, args.repeats, cold_repeats)
    print(table(report))
    if args.out:
        Path(args.out).write_text(json.dumps(report, indent=1, allow_nan=False) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
