"""Typed, frozen configuration. Plain-Python presets live in `ferjax/configs/`."""
from __future__ import annotations

import dataclasses
from typing import Literal, get_args

FeatureSet = Literal["O", "O-S", "O-L", "O-S-L"]
LabelMode = Literal["majority", "probability", "crossentropy", "multi_target"]
ModelName = Literal["vgg13", "light"]
ConvImpl = Literal["auto", "xla", "matmul", "lax"]
CONV_NAMES: tuple[str, ...] = get_args(ConvImpl)

FEATURE_SET_NAMES: tuple[str, ...] = ("O", "O-S", "O-L", "O-S-L")
LABEL_MODE_NAMES: tuple[str, ...] = ("majority", "probability", "crossentropy", "multi_target")
MODEL_NAMES: tuple[str, ...] = ("vgg13", "light")


@dataclasses.dataclass(frozen=True)
class LightLayers:
    stages: tuple[tuple[int, ...], ...]   # conv widths of each stage; each ends with 2x2 max pooling
    top: tuple[int, ...]                  # the convolutions at 4x4
    fc: int                               # the center loss's feature layer
    pooled: bool                          # global average pooling; False: the map flattened

    @property
    def widths(self) -> tuple[int, ...]:
        return tuple(w for stage in self.stages for w in stage) + self.top

    @property
    def pool_after(self) -> frozenset[int]:
        """The convolutions (counted from 1) that a 2x2 max pooling follows."""
        return frozenset(sum(len(s) for s in self.stages[:k + 1]) for k in range(len(self.stages)))


# The light model's layer tables (ferjax/models/light.py builds them), JAX-free so that the
# benchmark's peers build the same network.
LIGHT_LAYERS = {
    "pooled": LightLayers(stages=((24,), (48, 48), (96, 96)), top=(192,), fc=128, pooled=True),
    "flat": LightLayers(stages=((24,), (48,), (96,)), top=(128,), fc=96, pooled=False),
}
LightLayerName = Literal["pooled", "flat"]
LIGHT_LAYER_NAMES: tuple[str, ...] = get_args(LightLayerName)
CenterReduction = Literal["mean", "sum"]
CENTER_REDUCTION_NAMES: tuple[str, ...] = get_args(CenterReduction)


def add_light_layers_argument(parser) -> None:
    parser.add_argument("--light-layers", default=None, choices=LIGHT_LAYER_NAMES,
                        help=f"the light model's layer table (default {ModelConfig.light_layers}; "
                             "flat: the table of runs before 2026-12-07; ferjax/models/light.py)")


def _check(value, allowed, what):
    if value not in allowed:
        raise ValueError(f"unknown {what} {value!r}; choose one of {', '.join(allowed)}")


def check_light_layers(name: str) -> str:
    """name, if it is a light-model layer table; else a ValueError naming the choices."""
    _check(name, LIGHT_LAYER_NAMES, "light-model layer table")
    return name


@dataclasses.dataclass(frozen=True)
class DataConfig:
    data: str = "synthetic"          # "synthetic", a FERPlus folder, or a folder with the Kaggle CSVs
    label_mode: LabelMode = "majority"   # training targets; accuracy is always on majority-vote images
    features: FeatureSet = "O"
    image_size: int = 64
    batch_size: int = 64
    synthetic_per_class: int = 400   # train images per class of the built-in data
    train_subset: int = 0            # >0: use only this many training images (labelled reduced)
    valid_subset: int = 0            # >0: select on only this many validation images (reduced)
    augment: bool = True             # the reference's random warps of training images

    def __post_init__(self):
        _check(self.features, FEATURE_SET_NAMES, "feature set")
        _check(self.label_mode, LABEL_MODE_NAMES, "label mode")
        if self.batch_size <= 0:
            raise ValueError(f"batch_size must be positive, got {self.batch_size}")


@dataclasses.dataclass(frozen=True)
class ModelConfig:
    name: ModelName = "light"
    conv: ConvImpl = "auto"          # see ferjax/models/conv.py; all share one parameter tree
    batch_norm: bool | None = None   # None: the model's own (light: yes; VGG13: no, as the reference)
    dropout: bool = True             # False: trained without the model's dropout layers
    light_layers: LightLayerName = "pooled"   # the light model's layer table (VGG13 has one)

    def __post_init__(self):
        _check(self.name, MODEL_NAMES, "model")
        _check(self.conv, CONV_NAMES, "conv implementation")
        check_light_layers(self.light_layers)


@dataclasses.dataclass(frozen=True)
class LossConfig:
    lam: float = 0.0                 # center-loss weight; 0 is plain softmax (SL)
    alpha: float = 0.5               # center update rate of Wen et al. 2016
    warmup_fraction: float = 0.0     # lambda ramps linearly from 0 over this share of all steps
    # Wen's 1/2 ||f - c||^2 over the D feature units: "mean" (1/D of the sum, so that lambda does
    # not depend on the feature layer's width, which the study does not give; the usual TF/Keras
    # form) or "sum" (Wen et al.'s; lambda x there = lambda x D here)
    center_reduction: CenterReduction = "mean"

    def __post_init__(self):
        _check(self.center_reduction, CENTER_REDUCTION_NAMES, "center-loss reduction")

    @property
    def name(self) -> str:
        return "TL" if self.lam > 0 else "SL"


OptimizerName = Literal["adam", "adamw", "sgd"]
ScheduleName = Literal["step", "onecycle"]
OPTIMIZER_NAMES: tuple[str, ...] = get_args(OptimizerName)
SCHEDULE_NAMES: tuple[str, ...] = get_args(ScheduleName)


@dataclasses.dataclass(frozen=True)
class OptimConfig:
    optimizer: OptimizerName = "adam"
    learning_rate: float = 3e-4      # the peak rate for "onecycle"
    schedule: ScheduleName = "step"  # step: x decay_rate every decay_every_epochs (the study);
    decay_rate: float = 0.97         # onecycle: linear warm-up, then cosine to 1% at the last epoch
    decay_every_epochs: int = 2
    warmup_fraction: float = 0.1     # onecycle only: share of all steps spent warming up
    weight_decay: float = 0.0        # decoupled (adamw) or added to the gradient (sgd)
    label_smoothing: float = 0.0

    def __post_init__(self):
        _check(self.optimizer, OPTIMIZER_NAMES, "optimizer")
        _check(self.schedule, SCHEDULE_NAMES, "learning-rate schedule")
        if not self.learning_rate > 0:
            raise ValueError(f"learning_rate must be positive, got {self.learning_rate}")


@dataclasses.dataclass(frozen=True)
class RunConfig:
    data: DataConfig = DataConfig()
    model: ModelConfig = ModelConfig()
    loss: LossConfig = LossConfig()
    optim: OptimConfig = OptimConfig()
    epochs: int = 10
    seed: int = 0                    # initialisation and dropout
    data_seed: int | None = None     # shuffling and augmentation; None: the same as seed
    eval_flip: bool = False          # evaluate on the mean of the face's and its mirror's softmax

    @property
    def data_seed_or_seed(self) -> int:
        return self.seed if self.data_seed is None else self.data_seed

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "RunConfig":
        return cls(data=DataConfig(**d["data"]), model=ModelConfig(**_current("model", d["model"])),
                   loss=LossConfig(**_current("loss", d["loss"])), optim=OptimConfig(**d["optim"]),
                   epochs=d["epochs"], seed=d["seed"], data_seed=d.get("data_seed"),
                   eval_flip=d.get("eval_flip", False))

    def replace(self, **kw) -> "RunConfig":
        return dataclasses.replace(self, **kw)

    def canonical(self) -> "RunConfig":
        """The same training, with the fields that cannot change it set to one value: the data
        seed that defaults to the seed, the light model's layer table for VGG13, and the center
        loss's reduction when lambda is 0 (softmax alone)."""
        same = self.replace(data_seed=self.data_seed_or_seed)
        if self.model.name != "light":
            same = same.replace(model=dataclasses.replace(self.model,
                                                          light_layers=ModelConfig.light_layers))
        if self.loss.lam:
            return same
        return same.replace(loss=dataclasses.replace(self.loss, center_reduction="mean"))


# Fields that configs saved by earlier versions may hold, with the value that meant what the
# current code does: a saved config holding another value cannot be reproduced any more.
RETIRED = {("loss", "delay_fraction"): 0.0}
# Fields added since, with the value that reproduces a config saved without them.
ADDED = {("loss", "center_reduction"): "sum", ("model", "light_layers"): "flat"}


def _current(section: str, fields: dict) -> dict:
    kept = dict(fields)
    for (sec, name), same in RETIRED.items():
        if sec == section and name in kept:
            value = kept.pop(name)
            if value != same:
                raise ValueError(f"this run was saved with {section}.{name}={value}, which this "
                                 f"version of ferjax no longer supports (only {same})")
    for (sec, name), before in ADDED.items():
        if sec == section:
            kept.setdefault(name, before)
    return kept
