"""Copy an experiment's results into the repository's experiments/ folder: the table (JSON,
markdown, figures) and, per row, the kept checkpoint of its best seed, listed in
experiments/checkpoints.json so that `ferjax evaluate --checkpoint DIR` can score each row.

    python -m ferjax.experiments.publish results/table2/table2.json experiments/table2_light_real
"""
from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path

from ferjax.experiments.results import TableResult


def publish(result_json: Path, dest: Path, index: Path, repo_root: Path,
            checkpoints: bool = True) -> dict:
    result = TableResult.from_json(json.loads(result_json.read_text()))
    prov = result.provenance
    best_runs = {row.row: max(range(row.runs), key=lambda i: row.accuracies[i]) for row in result.rows}
    missing = [f"{row.row}: {Path(row.checkpoints[best_runs[row.row]]) / 'best'}"
               for row in result.rows if checkpoints
               and not (Path(row.checkpoints[best_runs[row.row]]) / "best").is_dir()]
    if missing:      # before anything under dest is replaced
        raise FileNotFoundError("no kept checkpoint for the best run of " + "; ".join(missing))
    dest.mkdir(parents=True, exist_ok=True)
    for f in result_json.parent.glob(result_json.stem + "*"):
        shutil.copy2(f, dest / f.name)
    entries = json.loads(index.read_text()) if index.exists() else {}
    for row in result.rows if checkpoints else ():
        best = best_runs[row.row]
        src = Path(row.checkpoints[best])
        target = dest / "checkpoints" / row.row
        staged = target.with_name(target.name + ".publishing")   # whole before it replaces target
        if staged.exists():
            shutil.rmtree(staged)
        shutil.copytree(src / "best", staged / "best")
        for marker in (staged / "best").rglob("commit_success.txt"):   # orbax names the
            marker.write_text("Checkpoint commit was successful.")      # machine's path here
        for name in ("summary.json", "metrics.jsonl"):
            if (src / name).exists():
                shutil.copy2(src / name, staged / name)
        if target.exists():
            shutil.rmtree(target)
        staged.rename(target)
        entries[row.row] = {
            "checkpoint": str(target.resolve().relative_to(repo_root.resolve())),
            "model": prov.model, "features": row.features, "lam": row.lam,
            "seed": row.seeds[best], "best_epoch": row.best_epochs[best],
            f"{row.split}_accuracy": row.accuracies[best], "profile": prov.profile,
            "epochs": prov.epochs, "data": prov.data, "reduced": prov.reduced,
            "command": prov.command}
    index.write_text(json.dumps(entries, indent=2) + "\n")
    return entries


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m ferjax.experiments.publish", description=__doc__)
    p.add_argument("result", type=Path, help="the table JSON an experiment wrote")
    p.add_argument("dest", type=Path, help="a folder under experiments/")
    p.add_argument("--index", type=Path, default=Path("experiments/checkpoints.json"))
    p.add_argument("--repo-root", type=Path, default=Path("."))
    p.add_argument("--no-checkpoints", action="store_true", help="copy the table and figures only")
    args = p.parse_args(argv)
    entries = publish(args.result, args.dest, args.index, args.repo_root, not args.no_checkpoints)
    print(json.dumps(entries, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
