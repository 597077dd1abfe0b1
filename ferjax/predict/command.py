"""`ferjax predict`: files, folders and videos in, one result per image or sampled frame
out (text or JSON lines), optional annotated copies; a failed input does not stop the rest."""
from __future__ import annotations

import dataclasses
import json
import math
import sys
import time
from pathlib import Path
from typing import Iterable, Sequence, TextIO

import cv2
import numpy as np

from ferjax.predict.detect import DEFAULT_CASCADE
from ferjax.predict.media import IMAGE_EXTENSIONS, VIDEO_EXTENSIONS, VIDEO_EVERY_SECONDS, read_image, video_frames
from ferjax.predict.predictor import CHUNK_IMAGES, Face, Predictor, _take


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
                video_every_seconds: float = VIDEO_EVERY_SECONDS, predictor: Predictor | None = None,
                out: TextIO | None = None, err: TextIO | None = None) -> int:
    """`ferjax predict`: one result per image (per sampled frame for videos), in input order.

    An input that fails is reported (its "error") and the others are still processed.
    Returns 0, or 1 when any input failed. A summary line goes to stderr.
    """
    out, err = out or sys.stdout, err or sys.stderr
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
            frames = video_frames(item.path, video_every_seconds)
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
