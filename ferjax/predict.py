"""Emotion prediction on photos, folders and videos with a trained ferjax checkpoint.

Each face is found with a Haar cascade (`ferjax.detect`), cut out as a 48x48 grayscale crop
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
import json
import math
import sys
import time
from pathlib import Path
from typing import Iterable, Iterator, Sequence

import cv2
import numpy as np

from ferjax.classes import CLASS_NAMES, IMAGE_SIDE, NUM_CLASSES
from ferjax.detect import DEFAULT_CASCADE, MARGIN, Box, find_faces

IMAGE_EXTENSIONS = frozenset({".jpg", ".jpeg", ".jpe", ".png", ".bmp", ".dib", ".tif", ".tiff",
                              ".webp", ".pgm", ".ppm", ".pbm", ".pnm", ".jp2", ".sr", ".ras"})
VIDEO_EXTENSIONS = frozenset({".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v", ".mpg", ".mpeg",
                              ".wmv"})
MIN_BUCKET = 32          # smallest padded batch
MAX_BATCH = 512          # largest batch of one forward call (memory bound); more: several calls
CHUNK_IMAGES = 64        # images (or video frames) read and detected before one forward call
VIDEO_EVERY_SECONDS = 1.0


class InputError(ValueError):
    """An input that is not a readable image or video."""


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


def read_image(path: str | Path) -> np.ndarray:
    """A BGR uint8 image (EXIF orientation applied); InputError naming the file if unreadable."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path} does not exist")
    if path.is_dir():
        raise InputError(f"{path} is a directory, not an image")
    try:
        data = np.fromfile(path, np.uint8)
    except OSError as e:
        raise InputError(f"cannot read {path}: {e}") from e
    image = cv2.imdecode(data, cv2.IMREAD_COLOR) if data.size else None
    if image is None:
        raise InputError(f"cannot read {path}: not an image OpenCV can decode"
                         + (" (empty file)" if not data.size else ""))
    return image


def video_frames(path: str | Path, every_seconds: float = VIDEO_EVERY_SECONDS,
                 every_frames: int | None = None) -> Iterator[tuple[int, float, np.ndarray]]:
    """(frame index, time in s, BGR frame) of every Nth frame: N = every_frames, or the
    frame rate times every_seconds (one frame per second by default; 30 fps if unknown)."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path} does not exist")
    cap = cv2.VideoCapture(str(path))
    try:
        if not cap.isOpened():
            raise InputError(f"cannot read {path}: not a video OpenCV can open")
        fps = cap.get(cv2.CAP_PROP_FPS)
        fps = fps if fps and math.isfinite(fps) and fps > 0 else 30.0
        step = every_frames or max(1, int(round(fps * every_seconds)))
        index = 0
        while cap.grab():                      # grab without decoding the skipped frames
            if index % step == 0:
                ok, frame = cap.retrieve()
                if ok and frame is not None:
                    yield index, index / fps, frame
            index += 1
        if index == 0:
            raise InputError(f"cannot read {path}: no video frame could be decoded")
    finally:
        cap.release()


class Predictor:
    """A trained model plus the face detector and the checkpoint's own preprocessing."""

    def __init__(self, model, params, *, feature_set: str, image_size: int = 64,
                 cascade: str = DEFAULT_CASCADE, margin: float = MARGIN,
                 max_batch: int = MAX_BATCH, detect_kw: dict | None = None, source: str | None = None):
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
        self._forward = jax.jit(
            lambda p, x: jax.nn.softmax(model.apply({"params": p}, x, train=False)[0], axis=-1))
        from ferjax.detect import _classifier
        _classifier(cascade)                 # fail early on an unknown cascade name

    @classmethod
    def from_checkpoint(cls, path: str | Path | None = None, **kw) -> "Predictor":
        """A run directory from `ferjax train` (or its best/); None: the shipped model."""
        from ferjax.train.checkpoint import load_run
        from ferjax.models import build_model
        if path is None:
            from ferjax.assets import shipped_checkpoint
            path = shipped_checkpoint()
        cfg, arrays, _ = load_run(path)
        return cls(build_model(cfg.model.name), arrays["params"],
                   feature_set=cfg.data.features, image_size=cfg.data.image_size,
                   source=str(path), **kw)

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


# ---------------------------------------------------------------------- the CLI's driver

@dataclasses.dataclass
class _Input:
    shown: str                     # the path as reported
    path: Path | None
    kind: str                      # "image", "video" or "error"
    rel: Path | None = None        # output name under --annotate
    error: str | None = None


def expand_inputs(paths: Iterable[str | Path], exclude: Path | None = None) -> list[_Input]:
    """Files as given; folders recursively (sorted, image/video extensions only; hidden
    entries and `exclude` skipped); errors for missing paths and folders with nothing in them."""
    items: list[_Input] = []
    exclude = exclude.resolve() if exclude is not None else None
    for arg in paths:
        p = Path(arg)
        if not p.exists():
            items.append(_Input(str(arg), p, "error", error=f"{arg} does not exist"))
        elif p.is_dir():
            found = []
            for f in sorted(p.rglob("*")):
                rel = f.relative_to(p)
                if any(part.startswith(".") for part in rel.parts) or not f.is_file():
                    continue
                if exclude is not None and (f.resolve() == exclude or exclude in f.resolve().parents):
                    continue
                ext = f.suffix.lower()
                if ext in IMAGE_EXTENSIONS or ext in VIDEO_EXTENSIONS:
                    kind = "video" if ext in VIDEO_EXTENSIONS else "image"
                    found.append(_Input(str(f), f, kind, rel=Path(p.resolve().name or "root") / rel))
            if not found:
                items.append(_Input(str(arg), p, "error",
                                    error=f"folder {arg} holds no image or video files"))
            items.extend(found)
        else:
            kind = "video" if p.suffix.lower() in VIDEO_EXTENSIONS else "image"
            items.append(_Input(str(arg), p, kind, rel=Path(p.name)))
    return items


class _Annotator:
    COLOR = (40, 220, 40)

    def __init__(self, out_dir: Path):
        self.out_dir = Path(out_dir)
        self.out_dir.mkdir(parents=True, exist_ok=True)
        self.used: set[Path] = set()

    def _target(self, rel: Path) -> Path:
        target = self.out_dir / rel
        stem, k = target.with_suffix(""), 1
        while target in self.used:
            target = Path(f"{stem}_{k}{target.suffix}")
            k += 1
        self.used.add(target)
        return target

    def write(self, image: np.ndarray, faces: list[Face], rel: Path) -> Path:
        img = image if image.ndim == 3 else cv2.cvtColor(image, cv2.COLOR_GRAY2BGR)
        zoom = max(1, math.ceil(192 / min(img.shape[:2])))     # legible labels on tiny images
        img = cv2.resize(img, None, fx=zoom, fy=zoom, interpolation=cv2.INTER_NEAREST) \
            if zoom > 1 else img.copy()
        thick = max(1, round(min(img.shape[:2]) / 300))
        for f in faces:
            x, y, w, h = (v * zoom for v in f.box)
            cv2.rectangle(img, (x, y), (x + w - 1, y + h - 1), self.COLOR, thick)
            label = f"{f.top} {100 * f.confidence:.0f}%"
            scale = max(0.4, w / 250)
            (tw, th), base = cv2.getTextSize(label, cv2.FONT_HERSHEY_SIMPLEX, scale, thick)
            ty = y - 4 if y - th - base - 4 >= 0 else min(y + h + th + 4, img.shape[0] - base)
            cv2.rectangle(img, (x, ty - th - base), (x + tw + 2, ty + base), self.COLOR, -1)
            cv2.putText(img, label, (x + 1, ty), cv2.FONT_HERSHEY_SIMPLEX, scale, (0, 0, 0),
                        thick, cv2.LINE_AA)
        target = self._target(rel)
        target.parent.mkdir(parents=True, exist_ok=True)
        if not cv2.imwrite(str(target), img):                  # an extension cv2 cannot write
            target = self._target(rel.with_suffix(rel.suffix + ".png"))
            cv2.imwrite(str(target), img)
        return target


def _format_faces(faces: list[Face]) -> list[str]:
    lines = []
    for f in faces:
        rest = ", ".join(f"{k} {v:.2f}" for k, v in list(f.probabilities.items())[1:3])
        lines.append(f"  box {list(f.box)}: {f.top} {f.confidence:.2f} ({rest})")
    return lines


def run_predict(paths: Sequence[str], checkpoint: str | None = None, as_json: bool = False,
                annotate_dir: str | None = None, *, cascade: str = DEFAULT_CASCADE,
                predictor: Predictor | None = None) -> int:
    """`ferjax predict`: one result per image (per sampled frame for videos), in input order.

    An input that fails is reported (its "error") and the others are still processed.
    Returns 0, or 1 when any input failed. A summary line goes to stderr.
    """
    out, err = sys.stdout, sys.stderr
    predictor = predictor or Predictor.from_checkpoint(checkpoint, cascade=cascade)
    annotator = _Annotator(Path(annotate_dir)) if annotate_dir else None
    items = expand_inputs(paths, exclude=Path(annotate_dir) if annotate_dir else None)
    counts = {"images": 0, "frames": 0, "faces": 0, "errors": 0}
    predictor.warmup()                       # the rate below leaves out one-time compilation
    start = time.perf_counter()

    def emit(item: _Input, faces: list[Face] | None, error: str | None = None,
             frame: tuple[int, float] | None = None) -> None:
        if error is not None:
            counts["errors"] += 1
        else:
            counts["faces"] += len(faces)
            counts["frames" if frame else "images"] += 1
        if as_json:
            rec: dict = {"input": item.shown}
            if frame:
                rec["frame"], rec["time"] = frame[0], round(frame[1], 3)
            rec["faces"] = [f.to_json() for f in faces or []]
            if error is not None:
                rec["error"] = error
            print(json.dumps(rec), file=out, flush=True)
        elif error is not None:
            print(f"{item.shown}: error: {error}", file=out, flush=True)
        else:
            where = f"{item.shown} frame {frame[0]} ({frame[1]:.1f} s)" if frame else item.shown
            n = len(faces)
            print(f"{where}: {'no face found' if n == 0 else f'{n} face' + ('s' if n > 1 else '')}",
                  file=out)
            for line in _format_faces(faces):
                print(line, file=out)
            out.flush()

    def run_images(batch: list[_Input]) -> None:
        loaded = []
        for item in batch:
            try:
                image = read_image(item.path)
                loaded.append((item, image, predictor.detect(image), None))
            except (OSError, ValueError, cv2.error) as e:
                loaded.append((item, None, None, str(e)))
        ok = [x for x in loaded if x[3] is None]
        results = iter(predictor._classify_detections([d for _, _, d, _ in ok]))
        for item, image, _, error in loaded:
            if error is not None:
                emit(item, None, error)
                continue
            faces = next(results)
            emit(item, faces)
            if annotator:
                annotator.write(image, faces, item.rel)

    def run_video(item: _Input) -> None:
        try:
            frames = video_frames(item.path)
            while True:
                chunk = [(i, t, f, predictor.detect(f)) for i, t, f in _take(frames, CHUNK_IMAGES)]
                if not chunk:
                    return
                results = predictor._classify_detections([d for *_, d in chunk])
                for (i, t, frame, _), faces in zip(chunk, results):
                    emit(item, faces, frame=(i, t))
                    if annotator:
                        rel = item.rel.with_name(f"{item.rel.stem}_frame{i:06d}.jpg")
                        annotator.write(frame, faces, rel)
        except (OSError, ValueError, cv2.error) as e:
            emit(item, None, str(e))

    pending: list[_Input] = []
    for item in items:
        if item.kind == "image":
            pending.append(item)
            if len(pending) == CHUNK_IMAGES:
                run_images(pending)
                pending = []
            continue
        if pending:
            run_images(pending)
            pending = []
        if item.kind == "video":
            run_video(item)
        else:
            emit(item, None, item.error)
    if pending:
        run_images(pending)

    seconds = time.perf_counter() - start
    n = counts["images"] + counts["frames"]
    summary = f"{counts['images']} images"
    if counts["frames"]:
        summary += f" + {counts['frames']} video frames"
    summary += f", {counts['faces']} faces, {n / max(seconds, 1e-9):.1f} images/s"
    if counts["errors"]:
        summary += f", {counts['errors']} failed input(s)"
    print(summary, file=err, flush=True)
    return 1 if counts["errors"] else 0
