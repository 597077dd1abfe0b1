"""Training profiles as plain Python: `get_config(model, profile)` returns a frozen RunConfig.

* paper: the study's recipe (Adam 3e-4, x0.97 every 2 epochs, majority-vote targets, the
  reference augmentation), for as many epochs as the FERPlus reference trainer allows.
* fast: this project's best time-to-accuracy recipe for the same models (configs/fast.py
  names every departure from the paper profile).

`ferjax train --profile` and the experiments read the same presets.
"""
from __future__ import annotations

import importlib

from ferjax.config import MODEL_NAMES, RunConfig

PROFILE_NAMES = ("paper", "fast")


def get_config(model: str = "light", profile: str = "paper") -> RunConfig:
    if profile not in PROFILE_NAMES:
        raise ValueError(f"unknown profile {profile!r}; choose one of {', '.join(PROFILE_NAMES)}")
    if model not in MODEL_NAMES:
        raise ValueError(f"unknown model {model!r}; choose one of {', '.join(MODEL_NAMES)}")
    return importlib.import_module(f"ferjax.configs.{profile}").get_config(model)
