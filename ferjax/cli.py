"""The `ferjax` command: thin argparse layers over Python functions."""
from __future__ import annotations

import argparse
import json
import sys

from ferjax.config import CONV_NAMES, FEATURE_SET_NAMES, LABEL_MODE_NAMES, MODEL_NAMES
from ferjax.devices import add_argument as add_device_argument


def _cmd_data_info(args) -> int:
    from ferjax.data.info import data_info, format_data_info
    info = data_info(args.data, label_mode=args.label_mode)
    print(json.dumps(info, indent=2) if args.json else format_data_info(info))
    return 0


def _cmd_train(args) -> int:
    from ferjax.devices import use_cpu_cores
    use_cpu_cores(args.cpu_devices)
    from ferjax.config import DataConfig, LossConfig, ModelConfig, RunConfig
    from ferjax.train.loop import train
    if args.loss == "TL" and args.lam <= 0:
        raise ValueError("--loss TL needs --lam > 0 (lambda = 0 is SL)")
    cfg = RunConfig(
        data=DataConfig(data=args.data, label_mode=args.label_mode, features=args.features,
                        batch_size=args.batch_size, train_subset=args.train_subset),
        model=ModelConfig(name=args.model, conv=args.conv),
        loss=LossConfig(lam=args.lam if args.loss == "TL" else 0.0, alpha=args.alpha),
        epochs=args.epochs, seed=args.seed)
    summary = train(cfg, args.workdir, progress=not args.no_progress)
    print(json.dumps({k: summary[k] for k in ("name", "data", "reduced", "epochs", "best_epoch",
                                              "valid_accuracy", "test_accuracy", "checkpoint")}, indent=2))
    return 0


def _cmd_evaluate(args) -> int:
    from ferjax.evaluate import evaluate
    result = evaluate(args.checkpoint, args.data, args.split, batch_size=args.batch_size)
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        print(f"{result['split']} accuracy {result['accuracy']:.2f}% on {result['num_images']} images "
              f"({result['data']})")
        for name, acc in result["per_class"].items():
            print(f"  {name:<10} {'-' if acc is None else f'{acc:6.2f}%'}")
    return 0


# ---- predict / export (ferjax.predict, ferjax.export) ----
def _cmd_predict(args) -> int:
    from ferjax.predict import run_predict
    return run_predict(args.paths, args.checkpoint, args.json, args.annotate, cascade=args.cascade)


def _cmd_export(args) -> int:
    from ferjax.export import export
    out = export(args.checkpoint, args.out, args.format)
    print(f"wrote {args.format} to {out}", file=sys.stderr)
    return 0


def _add_predict_export(sub) -> None:
    r = sub.add_parser("predict", help="detect faces in images, folders or videos and predict emotions")
    r.add_argument("paths", nargs="+", metavar="PATH", help="image files, folders (recursive) or videos")
    r.add_argument("--checkpoint", default=None, help="a run directory from `ferjax train` "
                   "(default: the model shipped with the package)")
    r.add_argument("--json", action="store_true",
                   help="one JSON object per image (per video frame) per line")
    r.add_argument("--annotate", metavar="OUT", default=None, help="write copies with boxes and labels to OUT")
    r.add_argument("--cascade", default="alt2", choices=["alt2", "default"], help="OpenCV Haar face cascade")
    r.set_defaults(func=_cmd_predict)

    x = sub.add_parser("export", help="export a checkpoint as a TensorFlow SavedModel or TFLite model")
    x.add_argument("--checkpoint", default=None, help="a run directory (default: the shipped model)")
    x.add_argument("--format", default="savedmodel", choices=["savedmodel", "tflite"])
    x.add_argument("out", metavar="OUT", help="output directory (must not exist or be empty)")
    x.set_defaults(func=_cmd_export)
# ---- end predict / export ----


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="ferjax", description=__doc__)
    sub = p.add_subparsers(dest="command", required=True)

    d = sub.add_parser("data-info", help="read a dataset and print its splits and class counts")
    d.add_argument("--data", default="synthetic", help="FERPlus folder, Kaggle-CSV folder, or 'synthetic'")
    d.add_argument("--label-mode", default="majority", choices=LABEL_MODE_NAMES)
    d.add_argument("--json", action="store_true")
    d.set_defaults(func=_cmd_data_info)

    t = sub.add_parser("train", help="train one configuration (resumes when --workdir holds a run)")
    t.add_argument("--model", default="light", choices=MODEL_NAMES)
    t.add_argument("--features", default="O", choices=FEATURE_SET_NAMES)
    t.add_argument("--loss", default="SL", choices=["SL", "TL"], help="SL: softmax; TL: + lambda x center loss")
    t.add_argument("--lam", type=float, default=0.1, help="center-loss weight for --loss TL")
    t.add_argument("--alpha", type=float, default=0.5, help="center update rate")
    t.add_argument("--data", default="synthetic")
    t.add_argument("--label-mode", default="majority", choices=LABEL_MODE_NAMES)
    t.add_argument("--epochs", type=int, default=10)
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--batch-size", type=int, default=64)
    t.add_argument("--train-subset", type=int, default=0, help="use only N training images (a reduced run)")
    t.add_argument("--conv", default="auto", choices=CONV_NAMES,
                   help="convolution implementation (same parameters); auto: xla on CPU, lax on GPU/TPU")
    add_device_argument(t)
    t.add_argument("--workdir", required=True)
    t.add_argument("--no-progress", action="store_true")
    t.set_defaults(func=_cmd_train)

    e = sub.add_parser("evaluate", help="score a kept checkpoint on a split")
    e.add_argument("--checkpoint", required=True, help="a run directory from `ferjax train`")
    e.add_argument("--data", default=None, help="defaults to the data the run was trained on")
    e.add_argument("--split", default="test", choices=["train", "valid", "test"])
    e.add_argument("--batch-size", type=int, default=256)
    e.add_argument("--json", action="store_true")
    e.set_defaults(func=_cmd_evaluate)
    _add_predict_export(sub)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except (ValueError, FileNotFoundError, ArithmeticError) as e:   # a clear message, no traceback
        print(f"ferjax {args.command}: error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
