"""What an experiment produces: a table of rows (Tables I and II) or lambda curves (Figure 3),
with the provenance every table and figure prints. Written as strict JSON (no NaN tokens)."""
from __future__ import annotations

import dataclasses
import json
from typing import Any

import numpy as np


@dataclasses.dataclass(frozen=True)
class Provenance:
    """Which runs a result summarises: enough to repeat them (`command`) and to read them."""
    title: str
    model: str
    profile: str
    epochs: int
    seeds_per_row: int | str          # "2-3" when rows have different numbers of runs
    data: str
    train_images: int
    reduced: bool
    accuracy_split: str               # "test" when the data has a test split, else "valid"
    command: str
    valid_images: int | None = None
    image_size: int = 64              # the network's input side (the study's 64)
    batch_size: int | None = None
    batch_norm: bool | None = None    # None: the model's own
    augment: bool = True              # the reference's random warps of training images
    dropout: bool = True              # the model's dropout layers in training
    learning_rate: float | None = None  # None: the recipe's
    center_reduction: str = "sum"     # the center loss over the feature units (results written
                                      # before it was stated used the sum)
    light_layers: str = "flat"        # the light model's layer table (results written before
                                      # it was stated used "flat"); "" for VGG13
    code: str = ""                    # the code the runs came from: "ferjax 0.1.0 at git <commit>"


class Spread:
    """The paper's avg/min/max over the seeds of a configuration (`accuracies`)."""
    accuracies: tuple[float, ...]

    @property
    def avg(self) -> float:
        return float(np.mean(self.accuracies))

    @property
    def min(self) -> float:
        return float(np.min(self.accuracies))

    @property
    def max(self) -> float:
        return float(np.max(self.accuracies))


@dataclasses.dataclass(frozen=True)
class RowResult(Spread):
    """One configuration of a table over its seeds (the paper's avg/min/max)."""
    row: str
    features: str
    loss: str
    lam: float
    accuracies: tuple[float, ...]
    split: str
    best_epochs: tuple[int, ...]
    seeds: tuple[int, ...]
    checkpoints: tuple[str, ...]
    parameters: str
    paper_accuracy: float
    per_class: dict[str, float | None]      # None: no run had images of that class

    @property
    def runs(self) -> int:
        return len(self.accuracies)

    def to_json(self) -> dict:
        out = dataclasses.asdict(self)
        out.update(avg=self.avg, min=self.min, max=self.max, runs=self.runs)
        return out

    @classmethod
    def from_json(cls, d: dict) -> "RowResult":
        return _from_json(cls, d)


@dataclasses.dataclass(frozen=True)
class TableResult:
    provenance: Provenance
    rows: tuple[RowResult, ...]

    @property
    def seeds(self) -> list[int]:
        return sorted({s for r in self.rows for s in r.seeds})

    def to_json(self) -> dict:
        return {**dataclasses.asdict(self.provenance), "rows": [r.to_json() for r in self.rows]}

    @classmethod
    def from_json(cls, d: dict) -> "TableResult":
        return cls(_from_json(Provenance, d), tuple(RowResult.from_json(r) for r in d["rows"]))


@dataclasses.dataclass(frozen=True)
class CurvePoint(Spread):
    """One lambda of one feature set in Figure 3, over its seeds."""
    lam: float
    accuracies: tuple[float, ...]
    seeds: tuple[int, ...] = ()       # () in sweeps written before seeds were stored per point

    def to_json(self) -> dict:
        return {**dataclasses.asdict(self), "avg": self.avg, "min": self.min, "max": self.max}


@dataclasses.dataclass(frozen=True)
class SweepResult:
    provenance: Provenance
    curves: dict[str, tuple[CurvePoint, ...]]    # feature set -> points in lambda order

    @property
    def seeds(self) -> list[int]:
        return sorted({s for pts in self.curves.values() for p in pts for s in p.seeds})

    def to_json(self) -> dict:
        return {**dataclasses.asdict(self.provenance),
                "curves": {fs: [p.to_json() for p in pts] for fs, pts in self.curves.items()}}

    @classmethod
    def from_json(cls, d: dict) -> "SweepResult":
        curves = {fs: tuple(_from_json(CurvePoint, p) for p in pts) for fs, pts in d["curves"].items()}
        return cls(_from_json(Provenance, d), curves)


def _from_json(cls, d: dict):
    """The dataclass's own fields of a JSON object (derived keys such as avg are recomputed;
    a field added later takes its default); lists become tuples."""
    kw: dict[str, Any] = {}
    for f in dataclasses.fields(cls):
        if f.name in d:
            v = d[f.name]
            kw[f.name] = tuple(v) if isinstance(v, list) else v
        elif f.default is dataclasses.MISSING:
            raise ValueError(f"result JSON has no {f.name!r} (not a {cls.__name__})")
    return cls(**kw)


def json_text(result: TableResult | SweepResult | dict) -> str:
    """Strict JSON (no NaN/Infinity tokens): non-finite floats are written as null."""
    def clean(x):
        if isinstance(x, float) and not np.isfinite(x):
            return None
        if isinstance(x, dict):
            return {k: clean(v) for k, v in x.items()}
        if isinstance(x, (list, tuple)):
            return [clean(v) for v in x]
        return x
    data = result if isinstance(result, dict) else result.to_json()
    return json.dumps(clean(data), indent=2, allow_nan=False)
