"""`ferjax data-info`: what a data spec holds, before and after label-mode filtering."""
from __future__ import annotations

from ferjax.classes import CLASS_NAMES, SPLITS
from ferjax.data.ferplus import load_dataset
from ferjax.data.votes import check_mode, label_split

SYNTHETIC_NOTE = ("built-in SYNTHETIC data (drawn faces with simulated votes), not FERPlus: "
                  "pass --data DIR to use real data")


def data_info(spec: str, label_mode: str = "majority", cache_dir: str | None = None) -> dict:
    """JSON-ready summary: source, present/missing splits, raw/kept/per-class counts per split."""
    check_mode(label_mode)
    dataset = load_dataset(spec, cache_dir=cache_dir)
    splits = {}
    for name, raw in dataset.splits.items():
        labeled = label_split(raw, label_mode)
        splits[name] = {
            "images": len(raw),
            "kept": len(labeled),
            "dropped": len(raw) - len(labeled),
            "classes": dict(zip(CLASS_NAMES, (int(c) for c in labeled.class_counts()))),
        }
    synthetic = dataset.source == "synthetic"
    return {
        "source": dataset.source,
        "synthetic": synthetic,
        "note": SYNTHETIC_NOTE if synthetic else "",
        "label_mode": label_mode,
        "splits_present": [s for s in SPLITS if s in splits],
        "splits_missing": [s for s in SPLITS if s not in splits],
        "splits": splits,
    }


def format_data_info(info: dict) -> str:
    """Human-readable table: one column per present split, one row per class."""
    present = info["splits_present"]
    lines = []
    if info["synthetic"]:
        lines.append(f"NOTE: {info['note']}")
    lines.append(f"source:     {info['source']}")
    lines.append(f"label mode: {info['label_mode']} (kept = images this mode trains/evaluates on)")
    lines.append(f"splits:     present {', '.join(present) or 'none'}; "
                 f"missing {', '.join(info['splits_missing']) or 'none'}")
    width = max(len(n) for n in CLASS_NAMES + ("images (raw)",)) + 2
    lines.append("")
    lines.append("".ljust(width) + "".join(s.rjust(10) for s in present))
    rows = [("images (raw)", "images"), ("dropped", "dropped"), ("kept", "kept")]
    for label, key in rows:
        lines.append(label.ljust(width) + "".join(str(info["splits"][s][key]).rjust(10) for s in present))
    lines.append("-" * (width + 10 * len(present)))
    for name in CLASS_NAMES:
        lines.append(f"  {name}".ljust(width)
                     + "".join(str(info["splits"][s]["classes"][name]).rjust(10) for s in present))
    return "\n".join(lines)
