"""One workload's comparison record: ferjax against its peers, or a sweep against its sequential baseline."""
from __future__ import annotations

from dataclasses import dataclass, field, fields

# Which comparisons carry a field (its JSON key is its name): every one (no mark), only
# ferjax-vs-peers workloads ("peers": train, infer), only sweeps ("sweep"), or only once set.
_PEERS, _SWEEP, _SET = "peers", "sweep", "set"


def _only(kind: str):
    return field(default=None, metadata={"only": kind})


@dataclass(frozen=True)
class Target:
    ratio: str          # the Comparison field the target is judged on
    against: str
    min: float

    def to_json(self) -> dict:
        return {"ratio": self.ratio, "against": self.against, "min": self.min}


@dataclass(frozen=True)
class Comparison:
    workload: str
    task: str           # "train", "infer" or "sweep"
    model: str
    batch: int
    features: str
    channels: int
    ferjax_default_conv: str | None = _only(_PEERS)
    conv: str | None = _only(_SWEEP)
    ks: list[int] | None = _only(_SWEEP)
    per_k: list[dict] | None = _only(_SWEEP)
    images_per_s: dict = field(default_factory=dict)      # framework (or "sequential") -> kept rate
    unit: str | None = _only(_SWEEP)
    variant_images_per_s: dict | None = _only(_PEERS)     # framework -> variant -> rate
    best_variant: dict | None = _only(_PEERS)             # framework -> its fastest variant
    rounds: int | None = None                             # measurements of each kept rate
    images_per_s_spread: dict | None = None               # framework -> [min, max] of its rounds
    best_peer: str | None = None
    ratio_vs_best_peer: float | None = None               # the median of the per-round ratios
    ratio_vs_best_peer_spread: list | None = None         # their [min, max]
    ratio_vs_torch: float | None = _only(_PEERS)
    ratio_vs_torch_spread: list | None = _only(_PEERS)
    ferjax_best_variant_ratio_vs_best_peer: float | None = _only(_PEERS)
    peak_rss_mb: dict = field(default_factory=dict)
    missing_peers: dict | None = _only(_PEERS)
    errors: dict | None = _only(_PEERS)
    flops: dict | None = _only(_PEERS)
    target: Target | None = None
    target_met: bool | None = None
    target_met_all_k: bool | None = _only(_SWEEP)
    achieved_gflops: dict | None = _only(_SET)
    achieved_gflops_variants: dict | None = _only(_SET)
    fraction_of_ceiling: dict | None = _only(_SET)
    profile: dict | None = _only(_SET)

    @property
    def ratio(self) -> float | None:
        """The ratio its target is judged on."""
        return getattr(self, self.target.ratio) if self.target else None

    def to_json(self) -> dict:
        out = {}
        for f in fields(self):
            value, only = getattr(self, f.name), f.metadata.get("only")
            if (only == _PEERS and self.task == "sweep") or (only == _SWEEP and self.task != "sweep") \
                    or (only == _SET and value is None):
                continue
            out[f.name] = value.to_json() if isinstance(value, Target) else value
        return out
