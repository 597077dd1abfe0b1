"""Copy an experiment's results into the repository's experiments/ folder: the table (JSON,
markdown, figures); per row, the kept checkpoint of its best seed, listed in
experiments/checkpoints.json so that `ferjax evaluate --checkpoint DIR` can score each row; and
every run's record (summary.json, metrics.jsonl) under runs/ in the layout of the experiment's
own runs/ folder, so that the table can be made again from the repository alone
(`--report-only --out DEST`), and more seeds trained onto it after a copy of runs/ to --out.
A lambda sweep (Figure 3) publishes its table, figure and run records, and the kept
checkpoints of the runs named with --keep (say the one shipped).

    python -m ferjax.experiments.publish results/table2/table2.json experiments/table2_light_real
    python -m ferjax.experiments.publish results/lambda_sweep/lambda_sweep.json experiments/NAME \
        --keep O-L-lam10-seed0
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
from pathlib import Path

from ferjax.experiments.results import TableResult
from ferjax.train.checkpoint import make_markers_portable


def publish(result_json: Path, dest: Path, index: Path, repo_root: Path,
            checkpoints: bool = True, keep: tuple[str, ...] = ()) -> dict:
    """The entries of experiments/checkpoints.json, after this result's rows are added."""
    data = json.loads(result_json.read_text())
    if "curves" in data:
        publish_sweep(result_json, dest, keep)
        return json.loads(index.read_text()) if index.exists() else {}
    result = TableResult.from_json(data)
    prov = result.provenance
    best_runs = {row.row: max(range(row.runs), key=lambda i: row.accuracies[i]) for row in result.rows}
    missing = [f"{row.row}: {Path(row.checkpoints[best_runs[row.row]]) / 'best'}"
               for row in result.rows if checkpoints
               and not (Path(row.checkpoints[best_runs[row.row]]) / "best").is_dir()]
    records = [run_record(run, result_json.parent / "runs", dest)
               for row in result.rows for run in row.checkpoints]
    missing += [f"{src}: summary.json" for src, target in records if not has_record(src, target)]
    if missing:      # before anything under dest is replaced
        raise FileNotFoundError("missing (no kept checkpoint of a best run, or no run record): "
                                + "; ".join(missing))
    dest.mkdir(parents=True, exist_ok=True)
    for f in result_json.parent.glob(result_json.stem + "*"):
        shutil.copy2(f, dest / f.name)
    entries = json.loads(index.read_text()) if index.exists() else {}
    for row in result.rows if checkpoints else ():
        best = best_runs[row.row]
        target = dest / "checkpoints" / row.row
        keep_checkpoint(Path(row.checkpoints[best]), target)
        entries[row.row] = {
            "checkpoint": str(target.resolve().relative_to(repo_root.resolve())),
            "model": prov.model, **({"light_layers": prov.light_layers} if prov.light_layers else {}),
            "features": row.features, "lam": row.lam,
            "seed": row.seeds[best], "best_epoch": row.best_epochs[best],
            f"{row.split}_accuracy": row.accuracies[best], "profile": prov.profile,
            "epochs": prov.epochs, "data": prov.data, "reduced": prov.reduced,
            "command": prov.command}
    index.write_text(json.dumps(entries, indent=2) + "\n")
    for src, target in records:
        copy_record(src, target)
    return entries


RECORD = ("summary.json", "metrics.jsonl")


def keep_checkpoint(src: Path, target: Path) -> None:
    """A run's kept checkpoint (best/, orbax's markers made portable) and its record, staged
    whole beside target before it replaces it."""
    staged = target.with_name(target.name + ".publishing")
    if staged.exists():
        shutil.rmtree(staged)
    shutil.copytree(src / "best", staged / "best")
    make_markers_portable(staged / "best")
    for name in RECORD:
        if (src / name).exists():
            shutil.copy2(src / name, staged / name)
    if target.exists():
        shutil.rmtree(target)
    staged.rename(target)


def publish_sweep(result_json: Path, dest: Path, keep: tuple[str, ...] = ()) -> None:
    """A lambda sweep's table and figure, the record of every finished run of its runs/, also
    of runs linked in there (say a table's runs as its lambda-0 points), and the kept
    checkpoint of each run named in `keep` (a run's name: `O-L-lam10-seed0`)."""
    runs = result_json.parent / "runs"
    folders = sorted(Path(d) for d, _, files in os.walk(runs, followlinks=True) if "summary.json" in files)
    if not folders:
        raise FileNotFoundError(f"no run records (summary.json) under {runs}")
    named = {json.loads((f / "summary.json").read_text()).get("name", f.name): f for f in folders}
    kept = {name: named.get(name) or next((f for f in folders if f.name == name), None) for name in keep}
    missing = [n for n, f in kept.items() if f is None or not (f / "best").is_dir()]
    if missing:      # before anything under dest is replaced
        raise FileNotFoundError(f"--keep: no finished run with a kept checkpoint named {', '.join(missing)} "
                                f"under {runs}")
    dest.mkdir(parents=True, exist_ok=True)
    for f in result_json.parent.glob(result_json.stem + "*"):
        shutil.copy2(f, dest / f.name)
    for folder in folders:
        copy_record(folder, dest / "runs" / folder.relative_to(runs))
    for name, folder in kept.items():
        keep_checkpoint(folder, dest / "checkpoints" / name)


def run_record(run: str, runs: Path, dest: Path) -> tuple[Path, Path]:
    """(source, target) of a run's record: its folder below the experiment's runs/
    (`light-O-seed0-base+SL`, or `light-O-seed0/runs/base+SL-seed0` in a whole group's)."""
    try:
        below = Path(run).resolve().relative_to(runs.resolve())
    except ValueError:
        raise ValueError(f"run {run} is not under the experiment's runs folder {runs}") from None
    return Path(run), dest / "runs" / below


def has_record(src: Path, target: Path) -> bool:
    """Its folder holds it, or its folder is gone and the record is already published."""
    return (src / "summary.json").exists() or (target / "summary.json").exists()


def copy_record(src: Path, target: Path) -> None:
    if not (src / "summary.json").exists():
        return
    target.mkdir(parents=True, exist_ok=True)
    for name in RECORD:
        if (src / name).exists():
            shutil.copy2(src / name, target / name)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m ferjax.experiments.publish", description=__doc__)
    p.add_argument("result", type=Path, help="the table JSON an experiment wrote")
    p.add_argument("dest", type=Path, help="a folder under experiments/")
    p.add_argument("--index", type=Path, default=Path("experiments/checkpoints.json"))
    p.add_argument("--repo-root", type=Path, default=Path("."))
    p.add_argument("--no-checkpoints", action="store_true", help="copy the table and figures only")
    p.add_argument("--keep", nargs="+", default=(), metavar="RUN",
                   help="a lambda sweep: also the kept checkpoints of these runs (names like O-L-lam10-seed0)")
    args = p.parse_args(argv)
    entries = publish(args.result, args.dest, args.index, args.repo_root, not args.no_checkpoints,
                      tuple(args.keep))
    print(json.dumps(entries, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
