"""Emotion prediction on photos, folders and videos with a trained ferjax checkpoint.

Each face is found with a Haar cascade (`ferjax.predict.detect`), cut out as a 48x48 grayscale crop
like the FER2013 training faces, put through the evaluation preprocessing the checkpoint
was trained with (its own feature set and image size) and classified. All faces of a batch
of images go through one jitted forward pass, padded to a bucket size (32, 64, 128, ...) so
that the jit compiles once per bucket, not once per face count.

    from ferjax import Predictor
    p = Predictor.from_checkpoint("runs/light")        # None: the model shipped in the package
    for face in p.predict("photo.jpg"):
        print(face.box, face.top, face.probabilities[face.top])
"""
from __future__ import annotations

import dataclasses
import math
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np

from ferjax.classes import CLASS_NAMES, IMAGE_SIDE, NUM_CLASSES
from ferjax.predict.detect import DEFAULT_CASCADE, MARGIN, Box, find_faces
from ferjax.predict.media import VIDEO_EVERY_SECONDS, read_image, video_frames

MIN_BUCKET = 32          # smallest padded batch
MAX_BATCH = 512          # largest batch of one forward call (memory bound); more: several calls
CHUNK_IMAGES = 64        # images (or video frames) read and detected before one forward call


@dataclasses.dataclass(frozen=True)
class Face:
    box: Box                                                   # x, y, w, h in input pixels
    probabilities: dict[str, float] = dataclasses.field(hash=False)   # top class first

    @property
    def top(self) -> str:
        return next(iter(self.probabilities))

    @property
    def confidence(self) -> float:
        return self.probabilities[self.top]

    def to_json(self) -> dict:
        return {"box": list(self.box),
                "probabilities": {k: round(v, 6) for k, v in self.probabilities.items()}}


def _face(box: Box, probs: np.ndarray) -> Face:
    order = np.argsort(-probs, kind="stable")
    return Face(box=tuple(int(v) for v in box),
                probabilities={CLASS_NAMES[i]: float(probs[i]) for i in order})


def bucket_size(n: int, max_batch: int = MAX_BATCH) -> int:
    """The padded batch for n faces: 32, 64, 128, ... up to max_batch."""
    if n <= MIN_BUCKET:
        return MIN_BUCKET
    return min(max_batch, MIN_BUCKET * 2 ** math.ceil(math.log2(n / MIN_BUCKET)))


class Predictor:
    """A trained model plus the face detector and the checkpoint's own preprocessing."""

    def __init__(self, model, params, *, feature_set: str, image_size: int = 64, flip: bool = False,
                 cascade: str = DEFAULT_CASCADE, margin: float = MARGIN,
                 max_batch: int = MAX_BATCH, detect_kw: dict | None = None, source: str | None = None,
                 class_bias: np.ndarray | None = None):
        import jax
        if max_batch < MIN_BUCKET or max_batch & (max_batch - 1):
            raise ValueError(f"max_batch must be a power of two >= {MIN_BUCKET}, got {max_batch}")
        self.feature_set, self.image_size = feature_set, image_size
        self.cascade, self.margin, self.max_batch = cascade, margin, max_batch
        self.detect_kw = dict(detect_kw or {})
        self.source = source
        self.forward_calls = 0               # jitted forward calls made (one per bucket chunk)
        self._params = jax.device_put(params)
        from ferjax.data.pipeline import eval_preprocessor
        self._preprocess = eval_preprocessor(feature_set, image_size)
        from ferjax.train.step import predict_probs
        self.class_bias = None if class_bias is None else np.asarray(class_bias, np.float32)
        self._forward = jax.jit(lambda p, x: predict_probs(model.apply, {"params": p}, x, flip,
                                                           self.class_bias))
        from ferjax.predict.detect import _classifier
        _classifier(cascade)                 # fail early on an unknown cascade name

    @classmethod
    def from_checkpoint(cls, path: str | Path | None = None, use_class_bias: bool = True,
                        **kw) -> "Predictor":
        """A run directory from `ferjax train` (or its best/); None: the shipped model. The
        class bias kept beside the checkpoint (`ferjax calibrate`) is applied unless
        use_class_bias is False."""
        from ferjax import class_bias
        from ferjax.train.checkpoint import best_dir, load_run
        from ferjax.models import inference_model
        if path is None:
            from ferjax.assets import shipped_checkpoint
            path = shipped_checkpoint()
        cfg, arrays, meta = load_run(path)
        model, params = inference_model(cfg.model.name, arrays["params"], arrays.get("batch_stats"),
                                        light_layers=cfg.model.light_layers)
        cb = class_bias.load(best_dir(path), meta["epoch"]) if use_class_bias else None
        return cls(model, params, feature_set=cfg.data.features, image_size=cfg.data.image_size,
                   flip=cfg.eval_flip, source=str(path),
                   class_bias=None if cb is None else cb.vector, **kw)

    @property
    def compilations(self) -> int:
        """Distinct input shapes the forward pass has been compiled for."""
        return self._forward._cache_size()

    # ------------------------------------------------------------------ the stages

    def detect(self, image: np.ndarray) -> tuple[list[Box], np.ndarray]:
        """(boxes, uint8 (N, 48, 48) crops) of one image array (BGR or gray)."""
        return find_faces(image, cascade=self.cascade, margin=self.margin, **self.detect_kw)

    def classify(self, faces: np.ndarray) -> np.ndarray:
        """uint8 (N, 48, 48) face crops -> float32 (N, 8) class probabilities.

        One jitted call for up to max_batch faces, padded to the bucket size."""
        faces = np.asarray(faces)
        if faces.ndim != 3 or faces.shape[1:] != (IMAGE_SIDE, IMAGE_SIDE) or faces.dtype != np.uint8:
            raise ValueError(f"expected uint8 (N, 48, 48) faces, got {faces.dtype} {faces.shape}")
        out = []
        for start in range(0, len(faces), self.max_batch):
            chunk = faces[start:start + self.max_batch]
            x = self._preprocess(chunk)
            pad = bucket_size(len(chunk), self.max_batch) - len(chunk)
            x = np.concatenate([x, np.zeros((pad,) + x.shape[1:], x.dtype)])
            probs = self._forward(self._params, x)
            self.forward_calls += 1
            out.append(np.asarray(probs)[:len(chunk)])
        return np.concatenate(out) if out else np.zeros((0, NUM_CLASSES), np.float32)

    def _classify_detections(self, detections: list[tuple[list[Box], np.ndarray]]) -> list[list[Face]]:
        """Faces of several images' detections, all classified in one batch."""
        crops = [c for _, c in detections]
        probs = self.classify(np.concatenate(crops) if crops else
                              np.zeros((0, IMAGE_SIDE, IMAGE_SIDE), np.uint8))
        result, k = [], 0
        for boxes, _ in detections:
            result.append([_face(b, probs[k + i]) for i, b in enumerate(boxes)])
            k += len(boxes)
        return result

    def warmup(self) -> None:
        """Compile the smallest bucket and trace the preprocessing (before timing anything)."""
        self.classify(np.zeros((1, IMAGE_SIDE, IMAGE_SIDE), np.uint8))

    # ------------------------------------------------------------------ public API

    def predict(self, image: str | Path | np.ndarray) -> list[Face]:
        """Faces of one image (a path, or a BGR/grayscale array); [] when none is found.

        A 48x48 image is taken as an already cropped FER2013-style face."""
        return self.predict_many([image])[0]

    def predict_many(self, images: Sequence[str | Path | np.ndarray]) -> list[list[Face]]:
        """Faces of each image; all faces go through one jitted call (several only past
        max_batch faces). Raises on the first unreadable image (naming it)."""
        detections = [self.detect(read_image(im) if isinstance(im, (str, Path)) else im)
                      for im in images]
        return self._classify_detections(detections)

    def predict_video(self, path: str | Path, every_seconds: float = VIDEO_EVERY_SECONDS,
                      every_frames: int | None = None) -> Iterator[tuple[int, float, list[Face]]]:
        """(frame index, time in s, faces) of the sampled frames, CHUNK_IMAGES frames per call."""
        frames = video_frames(path, every_seconds, every_frames)
        while True:
            chunk = [(i, t, self.detect(f)) for i, t, f in _take(frames, CHUNK_IMAGES)]
            if not chunk:
                return
            for (i, t, _), faces in zip(chunk, self._classify_detections([d for *_, d in chunk])):
                yield i, t, faces


def _take(it: Iterator, n: int) -> list:
    out = []
    for item in it:
        out.append(item)
        if len(out) == n:
            break
    return out


