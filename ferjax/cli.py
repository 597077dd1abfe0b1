"""The `ferjax` command: thin argparse layers over Python functions."""
from __future__ import annotations

import argparse
import json
import sys


def _cmd_data_info(args) -> int:
    from ferjax.data.info import data_info, format_data_info
    info = data_info(args.data, label_mode=args.label_mode)
    print(json.dumps(info, indent=2) if args.json else format_data_info(info))
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="ferjax", description=__doc__)
    sub = p.add_subparsers(dest="command", required=True)

    d = sub.add_parser("data-info", help="read a dataset and print its splits and class counts")
    d.add_argument("--data", default="synthetic", help="FERPlus folder, Kaggle-CSV folder, or 'synthetic'")
    d.add_argument("--label-mode", default="majority",
                   choices=["majority", "probability", "crossentropy", "multi_target"])
    d.add_argument("--json", action="store_true")
    d.set_defaults(func=_cmd_data_info)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except (ValueError, FileNotFoundError) as e:   # bad input: a clear message, no traceback
        print(f"ferjax {args.command}: error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
