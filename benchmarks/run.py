"""ferjax's benchmark suite: ferjax vs PyTorch and Keras 3, same models and batches, on CPU.

ferjax against PyTorch and Keras 3 (TensorFlow) on the same models, batches and input
shapes, on this machine's CPU. The entry point; the suite lives beside it: plan.py (what is
measured), jobs.py (one measurement per process), suite.py (the jobs of each workload),
comparison.py and summary.py (records to ratios and targets), report.py (results.md).

    python benchmarks/run.py --out DIR            # the full suite
    python benchmarks/run.py --quick --out DIR    # fewer workloads and steps (a few minutes)

Writes DIR/results.json and DIR/results.md. Run it on an otherwise idle machine: every
number is a wall-clock rate, and the report records the load average before each job.

Each measurement runs in its own process (this script re-invoked with --worker), so peak
RSS is per process and a crash or a missing peer costs only that entry. Peers are optional
(`pip install -e .[bench]` adds PyTorch); a peer that cannot be imported is reported as
missing and the suite carries on.

What is measured (see results.md for the numbers and the notes):
* training: images/s of ferjax's production step (the vmapped, donated step of
  ferjax.train.group with center loss and center update; K=1) for each conv implementation,
  PyTorch (channels_last and NCHW, the faster kept) and Keras (jit_compile True and False,
  the faster kept); Adam + softmax cross-entropy, the same resident random batch every step;
* inference: the jitted forward pass (ferjax), inference_mode (PyTorch), predict_on_batch (Keras);
* the sweep: K configurations stepped as the training loop steps a group (on a CPU host, each
  run its own program; elsewhere one vmapped step) vs the same K run one after another;
* the float32 matmul ceiling through jax, and achieved GFLOP/s from a stated FLOP count;
* the tf.data input pipeline (O and O-S-L) against the step's consumption rate, and the step
  fed by the pipeline (share of wall time spent waiting for a batch);
* for every missed target, a per-op profile of ferjax's step (jax.profiler trace).
Each kept rate is measured in several rounds (`--rounds`), the systems taking turns (the
median reported, the spread beside it; a ratio is the median of the per-round ratios).
Within a measurement, the
median of the timed steps after warm-up is reported (at least `steps` of them, more
until they add up to 10 s (full) or 3 s (--quick)); the first step (compilation) apart.
ferjax runs each step on one XLA CPU device and, as "<conv>+<n>dev", on the host split into
one device per core (the batch, or a sweep's runs, sharded by ferjax's Placement).
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.common import load_average  # noqa: E402
from benchmarks.jobs import jsonable, worker  # noqa: E402
from benchmarks.plan import MODES, WORKLOADS  # noqa: E402
from benchmarks.report import markdown, target_lines  # noqa: E402
from benchmarks.suite import Suite  # noqa: E402


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, help="directory for results.json and results.md")
    parser.add_argument("--quick", action="store_true", help="fewer workloads and steps")
    parser.add_argument("--smoke", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--rounds", type=int, default=None,
                        help="measurements of each kept rate, the median reported (default: "
                             f"{MODES['quick']['rounds']})")
    parser.add_argument("--only", nargs="+", choices=sorted(WORKLOADS), help="just these workloads")
    parser.add_argument("--profile", choices=("missed", "all", "none"), default="missed",
                        help="per-op profile of ferjax for workloads that miss their target (default)")
    parser.add_argument("--worker", nargs=2, metavar=("MODULE", "FUNC"), help=argparse.SUPPRESS)
    parser.add_argument("--kwargs", default="{}", help=argparse.SUPPRESS)
    parser.add_argument("--result", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        worker(args.worker[0], args.worker[1], json.loads(args.kwargs), args.result)
    if not args.out:
        parser.error("--out is required")
    mode = "smoke" if args.smoke else "quick" if args.quick else "full"
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "jobs.jsonl").unlink(missing_ok=True)
    print(f"ferjax benchmark suite, {mode} mode -> {args.out}; load average {load_average()}",
          flush=True)
    results = Suite(mode, args.out, profile=args.profile, only=args.only,
                    rounds=args.rounds).run()
    (args.out / "results.json").write_text(json.dumps(results, indent=1, default=jsonable))
    (args.out / "results.md").write_text(markdown(results))
    print(f"\nwrote {args.out / 'results.json'} and {args.out / 'results.md'}")
    print("\n".join(target_lines(results)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
