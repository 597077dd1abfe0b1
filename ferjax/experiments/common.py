"""Shared machinery of the study's experiments: profiles, grouping rows into vmapped run
groups (one per feature set, so the pipeline and step are shared), and aggregation."""
from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time
from collections import defaultdict
from pathlib import Path

import numpy as np

from ferjax.classes import CLASS_NAMES
from ferjax.config import CONV_NAMES, RunConfig
from ferjax.configs import get_config
from ferjax.devices import add_argument as add_device_argument, use_cpu_cores
from ferjax.experiments.paper import PARAMETERS, TABLE1, TABLE2, Row
from ferjax.train.loop import train_group


@dataclasses.dataclass(frozen=True)
class Profile:
    name: str
    epochs: int
    seeds: int
    train_subset: int = 0          # > 0: a reduced run on that many training images
    valid_subset: int = 0          # > 0: best epoch chosen on that many validation images
    synthetic_per_class: int = 400


PROFILES = {
    # quick: under 10 minutes on a 2-core CPU, on the built-in data; labelled "quick" everywhere.
    "quick": {"light": Profile("quick", epochs=4, seeds=2, synthetic_per_class=200),
              "vgg13": Profile("quick", epochs=1, seeds=1, synthetic_per_class=48)},
    # paper: the study's schedule (the FERPlus reference trainer: up to 100 epochs, best on valid).
    "paper": {"light": Profile("paper", epochs=100, seeds=3),
              "vgg13": Profile("paper", epochs=100, seeds=3)},
}


def add_arguments(p: argparse.ArgumentParser, default_out: str) -> None:
    p.add_argument("--data", default="synthetic", help="FERPlus folder, Kaggle-CSV folder, or 'synthetic'")
    p.add_argument("--profile", default=None, choices=sorted(PROFILES),
                   help="quick (default on synthetic data) or paper (default on real data)")
    p.add_argument("--seeds", type=int, default=None, help="runs per row (overrides the profile)")
    p.add_argument("--epochs", type=int, default=None, help="epochs per run (overrides the profile)")
    p.add_argument("--train-subset", type=int, default=None, help="train on N images only (reduced)")
    p.add_argument("--valid-subset", type=int, default=None, help="validate on N images only (reduced)")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--synthetic-per-class", type=int, default=None,
                   help="size of the built-in data (training faces per class)")
    p.add_argument("--conv", default="auto", choices=CONV_NAMES,
                   help="convolution implementation; auto: xla on CPU, lax on GPU/TPU")
    add_device_argument(p)
    p.add_argument("--out", default=default_out)
    p.add_argument("--no-progress", action="store_true")
    p.add_argument("--distributed", action="store_true",
                   help="multi-host: call jax.distributed.initialize() (coordinator from the environment)")


def setup_devices(args) -> None:
    """Before JAX's first operation: host CPU devices, then multi-host initialisation."""
    use_cpu_cores(args.cpu_devices)
    if args.distributed:
        import jax
        jax.distributed.initialize()


def resolve_profile(args, model: str) -> Profile:
    base = PROFILES[args.profile or ("quick" if args.data == "synthetic" else "paper")][model]
    changes = {k: v for k, v in (("epochs", args.epochs), ("seeds", args.seeds),
                                 ("train_subset", args.train_subset),
                                 ("valid_subset", args.valid_subset),
                                 ("synthetic_per_class", args.synthetic_per_class)) if v is not None}
    if changes:
        base = dataclasses.replace(base, **changes)
        if base.name == "paper" and (base.epochs < PROFILES["paper"][model].epochs
                                       or base.train_subset or base.valid_subset):
            base = dataclasses.replace(base, name="paper-reduced")
    return base


def row_configs(row: Row, model: str, profile: Profile, args, seed: int) -> RunConfig:
    base = get_config(model)
    return base.replace(
        data=dataclasses.replace(base.data, data=args.data, features=row.features,
                                 batch_size=args.batch_size, train_subset=profile.train_subset,
                                 valid_subset=profile.valid_subset,
                                 synthetic_per_class=profile.synthetic_per_class),
        model=dataclasses.replace(base.model, conv=args.conv),
        loss=dataclasses.replace(base.loss, lam=row.lam),
        epochs=profile.epochs, seed=seed, data_seed=0)


def run_rows(rows, model: str, profile: Profile, args) -> dict[str, list[dict]]:
    """Trains every (row, seed), one vmapped group per feature set; returns summaries by row name."""
    def log(msg: str) -> None:
        print(msg, flush=True)

    groups: dict[str, list[tuple[Row, int]]] = defaultdict(list)
    for row in rows:
        for seed in range(profile.seeds):
            groups[row.features].append((row, seed))
    out: dict[str, list[dict]] = defaultdict(list)
    for features, members in groups.items():
        cfgs = [row_configs(r, model, profile, args, s) for r, s in members]
        names = [f"{r.name}-seed{s}" for r, s in members]
        t0 = time.time()
        log(f"== group {features}: {len(cfgs)} runs trained together ({', '.join(names)})")
        summaries = train_group(cfgs, Path(args.out) / "runs" / f"{model}-{features}", names=names,
                                progress=not args.no_progress, log=log)
        log(f"== group {features} done in {time.time() - t0:.0f}s")
        for (row, _), s in zip(members, summaries):
            out[row.name].append(s)
    return out


def reported(summary: dict) -> tuple[float, str]:
    """Test accuracy at the best-validation epoch when a test split exists, else validation."""
    if summary.get("test_accuracy") is not None:
        return summary["test_accuracy"], "test"
    return summary["valid_accuracy"], "valid"


def aggregate(rows, summaries: dict[str, list[dict]], model: str, profile: Profile, args,
              title: str, command: str) -> dict:
    table = []
    for row in rows:
        runs = summaries[row.name]
        accs = [reported(s)[0] for s in runs]
        split = reported(runs[0])[1]
        per_class = {c: float(np.nanmean([np.nan if (s[split] or {}).get("per_class", {}).get(c) is None
                                          else s[split]["per_class"][c] for s in runs]))
                     for c in CLASS_NAMES}
        table.append({"row": row.name, "features": row.features, "loss": row.loss, "lam": row.lam,
                      "avg": float(np.mean(accs)), "min": float(np.min(accs)), "max": float(np.max(accs)),
                      "runs": len(accs), "accuracies": accs, "split": split,
                      "best_epochs": [s["best_epoch"] for s in runs],
                      "seeds": [s["config"]["seed"] for s in runs],
                      "checkpoints": [s["checkpoint"] for s in runs],
                      "parameters": PARAMETERS[model], "paper_accuracy": row.paper_accuracy,
                      "per_class": per_class})
    first = next(iter(summaries.values()))[0]
    return {"title": title, "model": model, "profile": profile.name, "epochs": profile.epochs,
            "seeds_per_row": profile.seeds, "data": first["data"],
            "train_images": first["train_images"], "valid_images": first.get("valid_images"),
            "reduced": bool(first["reduced"]),
            "accuracy_split": table[0]["split"], "command": command, "rows": table}


def write_outputs(result: dict, out: Path, stem: str) -> None:
    from ferjax.report import figure_bars, figure_per_class, markdown_table
    out.mkdir(parents=True, exist_ok=True)
    (out / f"{stem}.json").write_text(json.dumps(result, indent=2))
    (out / f"{stem}.md").write_text(markdown_table(result))
    figure_bars(result, out / f"{stem}_fig2_configurations.png")
    figure_per_class(result, out / f"{stem}_fig4_per_class.png")


TABLES = {"table1": ("vgg13", TABLE1, "Table I: VGG13"),
          "table2": ("light", TABLE2, "Table II: light model")}


def table_main(table: str, argv: list[str] | None = None) -> int:
    from ferjax.report import markdown_table
    model, rows, title = TABLES[table]
    p = argparse.ArgumentParser(prog=f"python -m ferjax.experiments.{table}", description=title)
    add_arguments(p, default_out=f"results/{table}")
    p.add_argument("--feature-sets", nargs="+", default=None, choices=["O", "O-S", "O-L"],
                   help="train and report only the rows of these feature sets (a partial table)")
    argv = sys.argv[1:] if argv is None else argv
    args = p.parse_args(argv)
    if args.feature_sets:
        rows = tuple(r for r in rows if r.features in args.feature_sets)
        title += " (partial: " + ", ".join(r.name for r in rows) + ")"
    profile = resolve_profile(args, model)
    setup_devices(args)
    summaries = run_rows(rows, model, profile, args)
    result = aggregate(rows, summaries, model, profile, args, title,
                       " ".join([f"python -m ferjax.experiments.{table}", *argv]))
    write_outputs(result, Path(args.out), table)
    print(markdown_table(result))
    return 0
