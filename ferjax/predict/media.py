"""Reading the inputs of `ferjax predict`: images (EXIF orientation applied) and sampled
video frames, with errors that name the file."""
from __future__ import annotations

import math
from pathlib import Path
from typing import Iterator

import cv2
import numpy as np

IMAGE_EXTENSIONS = frozenset({".jpg", ".jpeg", ".jpe", ".png", ".bmp", ".dib", ".tif", ".tiff",
                              ".webp", ".pgm", ".ppm", ".pbm", ".pnm", ".jp2", ".sr", ".ras"})
VIDEO_EXTENSIONS = frozenset({".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v", ".mpg", ".mpeg",
                              ".wmv"})
VIDEO_EVERY_SECONDS = 1.0


class InputError(ValueError):
    """An input that is not a readable image or video."""


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


