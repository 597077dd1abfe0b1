"""Files that ship inside the package: the trained light model used by `ferjax predict`.

`model/` is a checkpoint directory from `ferjax train` (the run directory holding best/, or
the best/ directory itself). It is added to the package at release time and is absent from
a source checkout until then.
"""
from __future__ import annotations

from pathlib import Path

MODEL_DIR = Path(__file__).resolve().parent / "model"


class NoShippedModelError(FileNotFoundError):
    pass


def shipped_checkpoint() -> Path:
    """The checkpoint directory of the model shipped with this install."""
    if not MODEL_DIR.is_dir() or not any(MODEL_DIR.iterdir()):
        raise NoShippedModelError(f"no model ships with this install ({MODEL_DIR} is absent); "
                                  f"pass --checkpoint")
    return MODEL_DIR
