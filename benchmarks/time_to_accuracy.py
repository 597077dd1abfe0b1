"""Time to accuracy of a training run, from its metrics.jsonl: the wall time (start-up,
data loading and compiles included) at which valid accuracy first reached each threshold;
and the loop's overhead: each epoch's wall time (evaluation, checkpoints and logging
included) over the time of its training steps, median and max over the epochs after the
first (which holds the compiles).

    python benchmarks/time_to_accuracy.py W [W ...] [--thresholds 80 82 84]

W is a run directory of `ferjax train` (or a group run's runs/NAME). A run resumed after a
kill restarts wall_seconds; its times are the sum over its calls (the time between a kill and
the resume left out), and the report says how many calls there were.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path


def time_to_accuracy(metrics_file: Path, thresholds: list[float]) -> dict:
    lines = [json.loads(x) for x in Path(metrics_file).read_text().splitlines() if x.strip()]
    if not lines:
        raise ValueError(f"{metrics_file} holds no epochs")
    if "wall_seconds" not in lines[0]:
        raise ValueError(f"{metrics_file} was written before wall_seconds was logged")
    wall = summed_wall_seconds(lines)
    reached = {}
    for t in thresholds:
        hit = next((i for i, x in enumerate(lines) if x["valid_accuracy"] >= t), None)
        reached[f"{t:g}"] = None if hit is None else {"epoch": lines[hit]["epoch"], "minutes": wall[hit] / 60}
    best = max(lines, key=lambda x: x["valid_accuracy"])
    return {"run": str(Path(metrics_file).parent), "epochs": len(lines),
            "minutes": wall[-1] / 60, "calls": 1 + _resumes(lines),
            "best_valid": best["valid_accuracy"], "best_epoch": best["epoch"], "reached": reached,
            "loop_over_steps": loop_over_steps(lines)}


def _resumed(before: dict, after: dict) -> bool:
    """`after` was logged by a later call than `before`: wall_seconds went back."""
    return after["wall_seconds"] <= before["wall_seconds"]


def _resumes(lines: list[dict]) -> int:
    return sum(_resumed(a, b) for a, b in zip(lines, lines[1:]))


def summed_wall_seconds(lines: list[dict]) -> list[float]:
    """Each epoch's wall time since the run first started, summed over the calls that logged
    the epochs (each resumed call restarts wall_seconds)."""
    out, offset = [], 0.0
    for i, x in enumerate(lines):
        if i and _resumed(lines[i - 1], x):
            offset = out[-1]
        out.append(offset + x["wall_seconds"])
    return out


def loop_over_steps(lines: list[dict]) -> dict | None:
    """Epoch wall time / training-step time of epochs 2+ logged by one uninterrupted call
    (a resumed call restarts wall_seconds, so epochs whose wall time went back are skipped)."""
    ratios = [(b["wall_seconds"] - a["wall_seconds"]) / b["train_seconds"]
              for a, b in zip(lines, lines[1:])
              if not _resumed(a, b) and b.get("train_seconds")]
    if not ratios:
        return None
    ratios.sort()
    return {"median": ratios[len(ratios) // 2], "max": ratios[-1], "epochs": len(ratios)}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("runs", nargs="+", type=Path)
    p.add_argument("--thresholds", nargs="+", type=float, default=[80.0, 82.0, 84.0])
    p.add_argument("--json", action="store_true")
    args = p.parse_args(argv)
    results = [time_to_accuracy(r / "metrics.jsonl" if r.is_dir() else r, args.thresholds) for r in args.runs]
    if args.json:
        print(json.dumps(results, indent=2))
        return 0
    for r in results:
        hits = ", ".join(f"{t}%: " + ("not reached" if v is None else f"{v['minutes']:.1f} min (epoch {v['epoch']})")
                         for t, v in r["reached"].items())
        loop = r["loop_over_steps"]
        loop = ("" if loop is None else f"; epoch wall / step time {loop['median']:.3f} median, "
                f"{loop['max']:.3f} max over {loop['epochs']} epochs")
        calls = "" if r["calls"] == 1 else f", summed over {r['calls']} calls (resumed)"
        print(f"{r['run']}: best {r['best_valid']:.2f}% valid at epoch {r['best_epoch']} of "
              f"{r['epochs']} ({r['minutes']:.1f} min{calls}); {hits}{loop}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
