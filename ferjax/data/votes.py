"""FERPlus vote counts -> per-label-mode training targets.

A literal port of `_process_data` / `load_folders` / `_process_target` of the FERPlus
reference (microsoft/FERPlus src/ferplus.py), so that kept-image counts and targets match
the paper's. The per-row rule is plain Python on purpose (ties and early `break`s are easy
to get subtly wrong when vectorised); speed comes from running it once per *distinct* vote
row: 35k FERPlus rows hold only a few thousand distinct count vectors.
"""
from __future__ import annotations

import sys

import numpy as np

from ferjax.classes import NUM_CLASSES, NUM_VOTES
from ferjax.config import LABEL_MODE_NAMES
from ferjax.data.records import LabeledSplit, RawSplit

UNKNOWN = NUM_VOTES - 2                 # index of the "unknown" vote column
MULTI_TARGET_EPSILON = 0.001            # reference: avoids log(0) in the multi-target loss


def check_mode(mode: str) -> None:
    if mode not in LABEL_MODE_NAMES:
        raise ValueError(f"unknown label mode {mode!r}; choose one of {', '.join(LABEL_MODE_NAMES)}")


def _emotion_row(raw: list[float], mode: str) -> list[float]:
    """Reference `_process_data` for one row of 10 counts (mutates `raw`): a 10-way distribution."""
    size = len(raw)
    unknown = [0.0] * size
    unknown[UNKNOWN] = 1.0
    for i in range(size):                        # a single vote is treated as an outlier
        if raw[i] < 1.0 + sys.float_info.epsilon:
            raw[i] = 0.0
    total = sum(raw)
    emotion = [0.0] * size
    if mode == "majority":
        maxval = max(raw)
        if maxval > 0.5 * total:
            emotion[raw.index(maxval)] = maxval
        else:
            emotion = unknown
    elif mode in ("probability", "crossentropy"):
        sum_part, count, valid = 0.0, 0, True
        while sum_part < 0.75 * total and count < 3 and valid:
            maxval = max(raw)
            for i in range(size):
                if raw[i] == maxval:
                    emotion[i] = maxval
                    raw[i] = 0.0
                    sum_part += emotion[i]
                    count += 1
                    if i >= UNKNOWN:             # unknown/NF tie with the current top votes
                        valid = False
                        if sum(emotion) > maxval:    # real emotions came first: drop unknown/NF
                            emotion[i] = 0.0
                            count -= 1
                        break
        if sum(emotion) <= 0.5 * total or count > 3:
            emotion = unknown
    elif mode == "multi_target":
        for i in range(size):
            if raw[i] >= 0.3 * total:
                emotion[i] = raw[i]
        if sum(emotion) <= 0.5 * total:
            emotion = unknown
    else:
        check_mode(mode)
    s = sum(emotion)
    return [e / s for e in emotion]


def _distribution_row(votes: tuple[float, ...], mode: str) -> tuple[bool, list[float]]:
    """Reference `load_folders` filter: keep iff argmax is a real emotion; renormalise its 8 classes."""
    emotion = _emotion_row(list(votes), mode)
    idx = int(np.argmax(emotion))
    if idx >= NUM_CLASSES:
        return False, [0.0] * NUM_CLASSES
    head = emotion[:NUM_CLASSES]
    s = sum(head)
    return True, [e / s for e in head]


def vote_distributions(votes: np.ndarray, mode: str) -> tuple[np.ndarray, np.ndarray]:
    """(keep bool (N,), distribution float64 (N, 8)); dropped rows have all-zero distributions."""
    check_mode(mode)
    votes = np.asarray(votes, dtype=np.float64)
    if votes.ndim != 2 or votes.shape[1] != NUM_VOTES:
        raise ValueError(f"votes must be (N, {NUM_VOTES}), got {votes.shape}")
    if len(votes) == 0:
        return np.zeros(0, bool), np.zeros((0, NUM_CLASSES))
    uniq, inverse = np.unique(votes, axis=0, return_inverse=True)
    rows = [_distribution_row(tuple(float(v) for v in u), mode) for u in uniq]
    keep = np.array([k for k, _ in rows], dtype=bool)
    dist = np.array([d for _, d in rows], dtype=np.float64)
    inverse = inverse.reshape(-1)
    return keep[inverse], dist[inverse]


def training_targets(dist: np.ndarray, mode: str) -> np.ndarray:
    """Reference `_process_target`, minus probability mode's per-sample one-hot draw (trainer's job)."""
    check_mode(mode)
    if mode == "multi_target":
        hot = (dist > 0).astype(np.float64)
        return ((1.0 - MULTI_TARGET_EPSILON) * hot + MULTI_TARGET_EPSILON).astype(np.float32)
    return dist.astype(np.float32)


def process_votes(votes: np.ndarray, mode: str) -> tuple[np.ndarray, np.ndarray]:
    """(keep bool (N,), targets float32 (N, 8)); targets of dropped rows are meaningless zeros/eps."""
    keep, dist = vote_distributions(votes, mode)
    return keep, training_targets(dist, mode)


def label_split(raw: RawSplit, mode: str) -> LabeledSplit:
    """Keep the images the label mode accepts, with their targets and argmax labels.

    Labels are the argmax of the vote distribution (the reference's per-emotion count index),
    not of the multi-target 0/1 vector, whose argmax would just be its first positive class.
    """
    keep, dist = vote_distributions(raw.votes, mode)
    dist = dist[keep]
    return LabeledSplit(images=raw.images[keep], targets=training_targets(dist, mode),
                        labels=np.argmax(dist, axis=1).astype(np.int32) if len(dist)
                        else np.zeros(0, np.int32))
