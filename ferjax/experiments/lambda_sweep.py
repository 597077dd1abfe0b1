"""Figure 3: accuracy against the center-loss weight lambda (log axis), per feature set.

All lambdas of one feature set and seed train together as one vmapped group, spread over
the available devices. Lambda 0 (softmax alone, the SL row) is the baseline: a dashed line
in the figure, since a log axis has no 0.

    python -m ferjax.experiments.lambda_sweep --model light --lams 0 0.01 0.1 1 10 --seeds 2

A subset of the default lambdas (say `--feature-sets O --lams 1`) trains just those points; the
whole sweep's command then finds them (`--report-only` tabulates what is finished).
"""
from __future__ import annotations

if __name__ == "__main__":   # first: the imports below load JAX
    from ferjax.devices import restart_with_huge_pages
    restart_with_huge_pages()

import argparse  # noqa: E402
import json  # noqa: E402
import sys  # noqa: E402
from pathlib import Path  # noqa: E402

from ferjax.experiments import common  # noqa: E402
from ferjax.experiments.paper import Row  # noqa: E402
from ferjax.experiments.results import CurvePoint, SweepResult, json_text  # noqa: E402


# The study's TL lambdas (0.01-1) and a decade past them: the 10-epoch sweep (center loss summed
# over the 96 units, so 96x today's per-unit lambda) was neutral up to a per-unit 0.1 and fell from 5.
LAMS = (0.0, 0.01, 0.1, 0.5, 1.0, 5.0, 10.0)
QUICK_LAMS = (0.01, 0.1, 1.0)


def sweep_rows(feature_sets, lams) -> list[Row]:
    return [Row(f"{fs}-lam{lam:g}", fs, lam, float("nan")) for fs in feature_sets for lam in lams]


def write_outputs(result: SweepResult, out: Path) -> None:
    from ferjax.experiments.report import figure_lambda, markdown_lambda
    out.mkdir(parents=True, exist_ok=True)
    (out / "lambda_sweep.json").write_text(json_text(result))
    (out / "lambda_sweep.md").write_text(markdown_lambda(result))
    figure_lambda(result, out / "lambda_sweep_fig3.png")


def main(argv: list[str] | None = None) -> int:
    from ferjax.experiments.report import markdown_lambda
    p = argparse.ArgumentParser(prog="python -m ferjax.experiments.lambda_sweep", description=__doc__)
    common.add_arguments(p, default_out="results/lambda_sweep")
    p.add_argument("--model", default="light", choices=["light", "vgg13"])
    p.add_argument("--lams", type=float, nargs="+", default=None,
                   help=f"default: {' '.join(map(str, LAMS))}; the quick profile: "
                        f"{' '.join(map(str, QUICK_LAMS))}")
    p.add_argument("--feature-sets", nargs="+", default=["O", "O-S", "O-L"],
                   choices=["O", "O-S", "O-L", "O-S-L"])
    p.add_argument("--replot", type=Path, metavar="JSON",
                   help="redraw the table and figure of a finished sweep's lambda_sweep.json, no training")
    argv = sys.argv[1:] if argv is None else argv
    args = p.parse_args(argv)
    if args.replot:
        result = SweepResult.from_json(json.loads(args.replot.read_text()))
        write_outputs(result, args.replot.parent)
        print(markdown_lambda(result))
        return 0
    profile = common.resolve_profile(args, args.model)
    grid = QUICK_LAMS if profile.name == "quick" else LAMS   # quick: a few minutes by default
    if args.lams is None:
        args.lams = grid
    if any(not lam >= 0 for lam in args.lams):
        p.error(f"--lams must be 0 (the softmax baseline) or positive, got {args.lams}")
    command = common.command_line("lambda_sweep", argv, args.model, profile)
    common.announce(args, command)
    common.setup_devices(args)
    rows = sweep_rows(args.feature_sets, args.lams)
    # lambdas picked from the default grid are a selection of it: they train in a folder named
    # after them, so that points trained one command at a time add up to the whole sweep
    whole = sweep_rows(args.feature_sets, grid) if set(args.lams) <= set(grid) else rows
    summaries = common.run_rows(rows, args.model, profile, args, all_rows=whole)
    curves = {fs: tuple(CurvePoint(lam=row.lam,
                                   accuracies=tuple(common.reported(s)[0] for s in summaries[row.name]),
                                   seeds=tuple(s["config"]["seed"] for s in summaries[row.name]))
                        for row in rows if row.features == fs and summaries.get(row.name))
              for fs in args.feature_sets}
    prov = common.provenance(summaries, args.model, profile, f"Figure 3: accuracy vs lambda ({args.model})",
                             command, common.seed_plan(rows, profile))
    result = SweepResult(prov, curves)
    if common.is_primary():    # one process of several writes the table and figure
        write_outputs(result, Path(args.out))
        print(markdown_lambda(result))
        common.announce(args, command)
    return 0


if __name__ == "__main__":
    sys.exit(main())
