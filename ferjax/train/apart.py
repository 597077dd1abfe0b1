"""How a group's runs are stepped: together, in one vmapped step on the group's placement, or,
on a CPU host, apart: each run its own program on one device, the runs dealt round the
host's devices, every run's step dispatched before any finishes.

XLA:CPU keeps about one core busy on these small convolutions; independent programs in
flight side by side fill the cores that one vmapped step leaves idle, on one device as on
several, and runs on different devices never meet in a collective (benchmarks/README.md, "A
group of runs on a CPU"). Where the group is one run, or spans processes, or the devices are
accelerators (where one vmapped step is the fast form), the runs step together.
"""
from __future__ import annotations

import dataclasses

import jax
import numpy as np

from ferjax.train.group import Placement


def steps_apart(num_runs: int) -> bool:
    return num_runs > 1 and jax.process_count() == 1 and jax.default_backend() == "cpu"


@dataclasses.dataclass(frozen=True)
class Layout:
    """The group's placement (evaluation, checkpoints) and the placement of each stepped
    piece: one piece of every run (together), or one piece per run (apart)."""
    group: Placement
    pieces: tuple[Placement, ...]

    @classmethod
    def create(cls, num_runs: int, batch_size: int, together: bool = False) -> "Layout":
        """`together`: one vmapped step whatever the host (to measure against)."""
        group = Placement.create(num_runs, batch_size)
        if together or not steps_apart(num_runs):
            return cls(group, (group,))
        devices = jax.local_devices()
        return cls(group, tuple(Placement.create(1, batch_size, [devices[k % len(devices)]])
                                for k in range(num_runs)))

    @property
    def apart(self) -> bool:
        return len(self.pieces) > 1

    def split(self, state) -> list:
        """The group's stacked state as one stacked state per piece, each on its devices."""
        if not self.apart:
            return [state]
        host = jax.device_get(state)
        return [p.put_state(jax.tree.map(lambda x, k=k: x[k:k + 1], host))
                for k, p in enumerate(self.pieces)]

    def join(self, states: list):
        """The pieces' states stacked again on the group's placement."""
        if not self.apart:
            return states[0]
        return self.group.put_state(jax.tree.map(lambda *xs: np.concatenate(xs),
                                                 *jax.device_get(states)))

    def per_piece(self, make) -> list:
        """make(placement) for each piece, made once per distinct placement (resident data)."""
        made: dict[Placement, object] = {}
        for p in self.pieces:
            if p not in made:
                made[p] = make(p)
        return [made[p] for p in self.pieces]
