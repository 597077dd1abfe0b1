"""Configuration presets as plain Python: `get_config(name)` returns a frozen RunConfig."""
from __future__ import annotations

import importlib

from ferjax.config import RunConfig

PRESETS = ("light", "vgg13")


def get_config(name: str) -> RunConfig:
    if name not in PRESETS:
        raise ValueError(f"unknown preset {name!r}; choose one of {', '.join(PRESETS)}")
    return importlib.import_module(f"ferjax.configs.{name}").get_config()
