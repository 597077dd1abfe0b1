"""The study's rows and reference figures: the one place they are written down."""
from __future__ import annotations

import dataclasses


@dataclasses.dataclass(frozen=True)
class Row:
    name: str          # as the paper names it
    features: str      # O, O-S, O-L
    lam: float         # 0: SL (softmax only); > 0: TL (softmax + lam x center loss)
    paper_accuracy: float

    @property
    def loss(self) -> str:
        return "TL" if self.lam > 0 else "SL"


TABLE1 = (  # VGG13 (Table I)
    Row("O-SL", "O", 0.0, 83.85), Row("O-S-SL", "O-S", 0.0, 86.42), Row("O-L-SL", "O-L", 0.0, 86.22),
    Row("O-TL", "O", 0.05, 85.70), Row("O-S-TL", "O-S", 0.1, 86.86), Row("O-L-TL", "O-L", 1.0, 86.95),
)
TABLE2 = (  # the light model (Table II)
    Row("base+SL", "O", 0.0, 81.95), Row("base+S+SL", "O-S", 0.0, 84.47),
    Row("base+L+SL", "O-L", 0.0, 84.26), Row("base+TL", "O", 0.5, 82.37),
    Row("base+S+TL", "O-S", 0.01, 84.80), Row("base+L+TL", "O-L", 1.0, 83.70),
)
PARAMETERS = {"vgg13": "8.757M", "light": "0.36M"}
