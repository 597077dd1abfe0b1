"""Built-in synthetic FERPlus stand-in: drawn 48x48 faces with plausible crowd votes.

Lets every part of the pipeline run (and be tested) without the real data. The expression
lives in the same places as in real faces (mouth curvature/openness/asymmetry, eye
openness, brow height/slope, nose wrinkle), each class is a prototype of those parameters,
and a per-face *intensity* blends it with neutral: weak expressions look (and are voted)
close to neutral or to a confusable class, so the task is learnable but not trivial.
Pose, scale, face shape, hair, glasses, lighting, blur and noise vary as nuisances
(drawn by data/faces.py).
"""
from __future__ import annotations

import cv2
import numpy as np

from ferjax.classes import CLASS_NAMES, IMAGE_SIDE, NUM_CLASSES, NUM_VOTES, SPLITS
from ferjax.data.faces import draw_face, photometric, sample_looks
from ferjax.data.records import Dataset, RawSplit

VOTERS = 10                           # annotators per FERPlus image

# Expression parameters, in the order of the PROTOTYPES columns.
PARAMS = ("eye_open", "brow_raise", "brow_slope", "mouth_curve", "mouth_open", "mouth_width",
          "mouth_asym", "nose_wrinkle")
PROTOTYPES = np.array([
    # eye   brow  slope curve open  width asym  wrinkle
    [0.55, 0.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0],        # neutral
    [0.35, 0.1, 0.0, 0.9, 0.35, 1.25, 0.0, 0.1],      # happiness
    [1.0, 1.0, -0.2, 0.0, 0.95, 0.7, 0.0, 0.0],       # surprise
    [0.4, -0.1, -0.8, -0.7, 0.0, 0.9, 0.0, 0.0],      # sadness
    [0.35, -0.8, 0.9, -0.3, 0.15, 0.95, 0.0, 0.2],    # anger
    [0.3, -0.5, 0.5, -0.6, 0.3, 1.0, 0.3, 1.1],       # disgust: anger-like brows, wrinkled nose
    [0.9, 0.7, -0.6, -0.25, 0.55, 1.2, 0.0, 0.0],     # fear: surprise-like eyes, stretched mouth
    [0.5, 0.0, 0.1, 0.1, 0.0, 1.0, 1.0, 0.0],         # contempt: one-sided smirk
], dtype=np.float64)
# How far an expression moves from neutral (at intensity 1), and the weakest intensity drawn:
# caricatures, so that a deep network leaves chance within the quick profile's ~300 steps
# (issue #16: at 1.5 and 0.5, batch-norm VGG13 took ~125 steps to leave chance, at 3.0 and 0.8
# about 60, at equal steps without augmentation).
GAIN = 3.0
INTENSITY_MIN = 0.8
JITTER = np.array([0.12, 0.25, 0.25, 0.22, 0.12, 0.1, 0.15, 0.2])

# Where annotators' non-majority votes go: each class's most confusable classes.
CONFUSIONS = {
    "neutral": {"sadness": .35, "contempt": .25, "happiness": .15, "anger": .1, "surprise": .15},
    "happiness": {"neutral": .6, "contempt": .2, "surprise": .2},
    "surprise": {"fear": .5, "happiness": .25, "neutral": .25},
    "sadness": {"neutral": .5, "fear": .15, "anger": .1, "disgust": .15, "contempt": .1},
    "anger": {"disgust": .45, "sadness": .2, "neutral": .2, "contempt": .15},
    "disgust": {"anger": .5, "sadness": .2, "contempt": .15, "neutral": .15},
    "fear": {"surprise": .55, "sadness": .25, "anger": .1, "disgust": .1},
    "contempt": {"neutral": .5, "happiness": .2, "disgust": .2, "anger": .1},
}


def _confusion_matrix() -> np.ndarray:
    m = np.zeros((NUM_CLASSES, NUM_CLASSES))
    for c, row in CONFUSIONS.items():
        for other, w in row.items():
            m[CLASS_NAMES.index(c), CLASS_NAMES.index(other)] = w
    return m / m.sum(axis=1, keepdims=True)


def sample_votes(rng: np.random.Generator, classes: np.ndarray, intensity: np.ndarray) -> np.ndarray:
    """float32 (N, 10) counts from 10 simulated annotators; weak expressions split the vote."""
    n = len(classes)
    p_true = np.where(classes == 0, rng.uniform(0.6, 0.95, n), 0.25 + 0.6 * intensity)
    rest = 1.0 - p_true
    probs = np.zeros((n, NUM_VOTES))
    probs[:, :NUM_CLASSES] = 0.9 * rest[:, None] * _confusion_matrix()[classes]
    probs[np.arange(n), classes] += p_true
    probs[:, NUM_CLASSES] = 0.07 * rest          # unknown
    probs[:, NUM_CLASSES + 1] = 0.03 * rest      # not a face
    return rng.multinomial(VOTERS, probs).astype(np.float32)


def sample_expressions(rng: np.random.Generator, classes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(parameters (N, P), intensity (N,)): each class prototype blended with neutral."""
    intensity = INTENSITY_MIN + (1.0 - INTENSITY_MIN) * rng.beta(2.0, 1.3, len(classes))
    neutral = PROTOTYPES[0]
    params = neutral + (GAIN * intensity)[:, None] * (PROTOTYPES[classes] - neutral)
    params += rng.normal(0, 1, params.shape) * JITTER
    return params, intensity


def make_split(rng: np.random.Generator, per_class: int, prefix: str) -> RawSplit:
    """per_class >= 1 faces of every class, shuffled, with their votes."""
    classes = np.repeat(np.arange(NUM_CLASSES), per_class)
    classes = classes[rng.permutation(len(classes))]
    params, intensity = sample_expressions(rng, classes)
    faces = np.zeros((len(classes), IMAGE_SIDE, IMAGE_SIDE), np.uint8)
    for i, (e, look) in enumerate(zip(params, sample_looks(rng, len(classes)))):
        faces[i] = draw_face(e, look)
    # Chunks keep the float temporaries in cache (faster than one pass over all faces).
    images = np.concatenate([photometric(rng, faces[i:i + 128]) for i in range(0, len(faces), 128)])
    return RawSplit(images=images, votes=sample_votes(rng, classes, intensity),
                    names=np.array([f"{prefix}{i:05d}.png" for i in range(len(classes))]))


def make_synthetic(per_class: int = 400, seed: int = 0, valid_fraction: float = 0.15,
                   test_fraction: float = 0.15) -> Dataset:
    """Train has per_class faces per class; valid/test are those fractions of the whole.

    Each split draws from its own stream, seeded by (seed, split index).
    """
    if per_class < 1:
        raise ValueError(f"per_class must be >= 1, got {per_class}")
    if not (0 <= valid_fraction and 0 <= test_fraction and valid_fraction + test_fraction < 1):
        raise ValueError(f"need 0 <= valid_fraction, test_fraction and their sum < 1, got "
                         f"{valid_fraction}, {test_fraction}")
    train_fraction = 1.0 - valid_fraction - test_fraction
    counts = {"train": per_class,
              "valid": int(round(per_class * valid_fraction / train_fraction)),
              "test": int(round(per_class * test_fraction / train_fraction))}
    splits = {}
    threads = cv2.getNumThreads()
    cv2.setNumThreads(1)                 # thread start-up per call dwarfs work on 96x96 images
    try:
        for k, split in enumerate(SPLITS):
            if counts[split] > 0:
                rng = np.random.default_rng([seed, k])
                splits[split] = make_split(rng, counts[split], f"synthetic_{split}_")
    finally:
        cv2.setNumThreads(threads)
    return Dataset(splits=splits, source="synthetic")
