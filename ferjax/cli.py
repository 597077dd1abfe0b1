"""The `ferjax` command: thin argparse layers over Python functions."""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from ferjax.config import (CENTER_REDUCTION_NAMES, CONV_NAMES, FEATURE_SET_NAMES, LABEL_MODE_NAMES,
                           MODEL_NAMES, add_light_layers_argument)
from ferjax.configs import PROFILE_NAMES
from ferjax.devices import add_argument as add_device_argument, restart_with_huge_pages, share_malloc_arena
from ferjax.distributed import add_arguments as add_distributed_arguments


def _cmd_data_info(args) -> int:
    from ferjax.data.info import data_info, format_data_info
    info = data_info(args.data, label_mode=args.label_mode)
    print(json.dumps(info, indent=2) if args.json else format_data_info(info))
    return 0


def _cmd_train(args) -> int:
    from ferjax.distributed import setup
    setup(args)          # host CPU devices, then jax.distributed when several processes
    import dataclasses
    from ferjax.configs import get_config
    from ferjax.train.loop import train
    if args.loss == "TL" and args.lam <= 0:
        raise ValueError("--loss TL needs --lam > 0 (lambda = 0 is SL)")
    cfg = get_config(args.model, args.profile)
    given = lambda value, default: default if value is None else value  # noqa: E731
    cfg = cfg.replace(
        data=dataclasses.replace(cfg.data, data=args.data, features=args.features,
                                 label_mode=given(args.label_mode, cfg.data.label_mode),
                                 batch_size=given(args.batch_size, cfg.data.batch_size),
                                 train_subset=args.train_subset,
                                 synthetic_per_class=given(args.synthetic_per_class,
                                                           cfg.data.synthetic_per_class)),
        model=dataclasses.replace(cfg.model, conv=args.conv, dropout=given(args.dropout, cfg.model.dropout),
                                  light_layers=given(args.light_layers, cfg.model.light_layers)),
        loss=dataclasses.replace(cfg.loss, lam=args.lam if args.loss == "TL" else 0.0,
                                 alpha=given(args.alpha, cfg.loss.alpha),
                                 center_reduction=given(args.center_reduction, cfg.loss.center_reduction)),
        optim=dataclasses.replace(cfg.optim, learning_rate=given(args.lr, cfg.optim.learning_rate),
                                  weight_decay=given(args.weight_decay, cfg.optim.weight_decay)),
        epochs=given(args.epochs, cfg.epochs), seed=args.seed)
    summary = train(cfg, args.workdir, progress=not args.no_progress)
    from ferjax.distributed import is_primary
    if not is_primary():
        return 0
    print(json.dumps({k: summary[k] for k in ("name", "data", "reduced", "epochs", "best_epoch",
                                              "valid_accuracy", "test_accuracy", "checkpoint")}, indent=2))
    return 0


def _cmd_evaluate(args) -> int:
    from ferjax.evaluate import evaluate
    result = evaluate(args.checkpoint, args.data, args.split, batch_size=args.batch_size,
                      use_class_bias=not args.no_class_bias)
    if args.json:
        print(json.dumps(result.to_json(), indent=2))
    else:
        print(f"{result.split} accuracy {result.scores.accuracy:.2f}% on {result.scores.num_images} "
              f"images ({result.data})")
        if result.class_bias:
            print("  with the kept class bias (--no-class-bias: without): " + ", ".join(
                f"{c} {b:+g}" for c, b in result.class_bias.items() if b))
        for name, acc in result.scores.per_class.items():
            print(f"  {name:<10} {'-' if acc is None else f'{acc:6.2f}%'}")
    return 0


def _cmd_calibrate(args) -> int:
    from ferjax.evaluate import calibrate
    cb = calibrate(args.checkpoint, args.data, args.split, args.max_accuracy_drop)
    print(f"class bias fitted on {cb.data} {cb.fitted_on} (kept checkpoint step {cb.step}): "
          + (", ".join(f"{c} {b:+g}" for c, b in cb.bias.items() if b) or "none helps"))
    print(f"  accuracy {cb.before['accuracy']:.2f}% -> {cb.after['accuracy']:.2f}%")
    for c in cb.bias:
        before, after = cb.before["per_class"][c], cb.after["per_class"][c]
        print(f"  {c:<10} " + ("-" if before is None else f"{before:6.2f}% -> {after:6.2f}%"))
    return 0


def _cmd_ship(args) -> int:
    from ferjax.ship import per_class_table, ship
    cb = ship(args.checkpoint, args.data, args.split, args.out, args.max_accuracy_drop)
    print(f"shipped {args.checkpoint} (kept step {cb.step}) to {args.out}; class bias fitted on "
          f"{cb.data} {cb.fitted_on}: " + (", ".join(f"{c} {b:+g}" for c, b in cb.bias.items() if b)
                                            or "none helps"))
    print(per_class_table(cb))
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


def _add_calibration_arguments(p: argparse.ArgumentParser) -> None:
    from ferjax.class_bias import DEFAULT_MAX_ACCURACY_DROP
    p.add_argument("--checkpoint", required=True, help="a run directory from `ferjax train`")
    p.add_argument("--data", default=None, help="defaults to the data the run was trained on")
    p.add_argument("--split", default="valid", choices=["train", "valid"],
                   help="where the class bias is fitted; never the test split: it scores the result")
    p.add_argument("--max-accuracy-drop", type=float, default=DEFAULT_MAX_ACCURACY_DROP,
                   help="points of overall accuracy the offsets may cost (default %(default)s)")


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
    t.add_argument("--alpha", type=float, default=None, help="center update rate (default: the profile's)")
    t.add_argument("--center-reduction", default=None, choices=CENTER_REDUCTION_NAMES,
                   help="center loss over the feature units: mean (the default) or sum (Wen et al.'s; "
                        "lambda x there = lambda x D here, D the feature layer's width)")
    t.add_argument("--data", default="synthetic")
    t.add_argument("--profile", default="paper", choices=PROFILE_NAMES,
                   help="paper: the study's recipe; fast: the time-to-accuracy recipe (ferjax/configs/)")
    t.add_argument("--label-mode", default=None, choices=LABEL_MODE_NAMES,
                   help="training targets (default: the profile's); accuracy is on majority votes")
    t.add_argument("--epochs", type=int, default=None, help="default: the profile's")
    t.add_argument("--lr", type=float, default=None, help="(peak) learning rate; default: the profile's")
    t.add_argument("--weight-decay", type=float, default=None,
                   help="default: the profile's (AdamW's is decoupled: each step shrinks weights by lr x this)")
    t.add_argument("--dropout", default=None, action=argparse.BooleanOptionalAction,
                   help="the model's dropout layers in training (default: the profile's)")
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--batch-size", type=int, default=None, help="default: the profile's")
    t.add_argument("--train-subset", type=int, default=0, help="use only N training images (a reduced run)")
    t.add_argument("--synthetic-per-class", type=int, default=None, metavar="N",
                   help="size of the built-in data: training faces per class (default 400)")
    t.add_argument("--conv", default="auto", choices=CONV_NAMES,
                   help="convolution implementation (same parameters); auto: xla on CPU, lax on GPU/TPU")
    add_light_layers_argument(t)
    add_device_argument(t)
    add_distributed_arguments(t)
    t.add_argument("--workdir", required=True)
    t.add_argument("--no-progress", action="store_true")
    t.set_defaults(func=_cmd_train)

    e = sub.add_parser("evaluate", help="score a kept checkpoint on a split")
    e.add_argument("--checkpoint", required=True, help="a run directory from `ferjax train`")
    e.add_argument("--data", default=None, help="defaults to the data the run was trained on")
    e.add_argument("--split", default="test", choices=["train", "valid", "test"])
    e.add_argument("--batch-size", type=int, default=256)
    e.add_argument("--json", action="store_true")
    e.add_argument("--no-class-bias", action="store_true",
                   help="ignore the class bias kept beside the checkpoint (ferjax calibrate)")
    e.set_defaults(func=_cmd_evaluate)

    c = sub.add_parser("calibrate", help="fit per-class offsets on a split so rare classes are "
                                         "predicted (kept beside the checkpoint)")
    _add_calibration_arguments(c)
    c.set_defaults(func=_cmd_calibrate)

    from ferjax.assets import MODEL_DIR
    sh = sub.add_parser("ship", help="make a run's kept checkpoint the model `ferjax predict` uses, "
                                     "with its class bias calibrated")
    _add_calibration_arguments(sh)
    sh.add_argument("--out", type=Path, default=MODEL_DIR,
                    help="default: the shipped model's folder in this install (%(default)s)")
    sh.set_defaults(func=_cmd_ship)
    _add_predict_export(sub)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command in ("evaluate", "predict", "export"):
        share_malloc_arena()   # inference only, before JAX starts its threads
    try:
        return args.func(args)
    except (ValueError, FileNotFoundError, ArithmeticError) as e:   # a clear message, no traceback
        print(f"ferjax {args.command}: error: {e}", file=sys.stderr)
        _leave_now_if_one_of_several(2)
        return 2


def _leave_now_if_one_of_several(code: int) -> None:
    """One process of several that failed leaves at once, not through JAX's exit-time barrier
    (where it would wait for processes that wait for it)."""
    jax = sys.modules.get("jax")
    if jax is not None and jax.distributed.is_initialized() and jax.process_count() > 1:
        from ferjax.distributed import fail_fast
        fail_fast(code)


def entry() -> None:
    """The `ferjax` program (console script, `python -m ferjax`)."""
    restart_with_huge_pages()
    sys.exit(main())


if __name__ == "__main__":
    entry()
