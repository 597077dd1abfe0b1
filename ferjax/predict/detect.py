"""Face detection with OpenCV's bundled Haar cascades, and FER2013-style 48x48 face crops.

Nothing is downloaded: the cascades ship inside opencv-python (`cv2.data.haarcascades`).

Default cascade: `haarcascade_frontalface_alt2`, which found as many faces as the default
cascade with about half its false detections; `MARGIN`: FER2013's crops are cut about where
a Haar cascade puts its box, so the box is widened only slightly. Both were measured on
real photos and FER2013 faces (README, "Face detection").

A 48x48 input is already a FER2013-style face crop (the training data are tight 48x48
crops) and is used as is, without detection: see `is_face_crop`.
"""
from __future__ import annotations

import functools
from pathlib import Path

import cv2
import numpy as np

from ferjax.classes import IMAGE_SIDE

CASCADES: dict[str, str] = {
    "alt2": "haarcascade_frontalface_alt2.xml",
    "default": "haarcascade_frontalface_default.xml",
    "alt": "haarcascade_frontalface_alt.xml",
}
DEFAULT_CASCADE = "alt2"
SCALE_FACTOR = 1.1
MIN_NEIGHBORS = 5
MIN_SIZE = 24          # pixels; a smaller face has too little detail to upscale to 48x48
MAX_SIDE = 1600        # larger images are searched at this size
MARGIN = 0.02          # per side, of the box side: FER2013 crops are ~1.04x the Haar box

Box = tuple[int, int, int, int]   # x, y, w, h in pixels


@functools.lru_cache(maxsize=None)
def _classifier(name: str) -> cv2.CascadeClassifier:
    if name not in CASCADES:
        raise ValueError(f"unknown cascade {name!r}; choose one of {', '.join(CASCADES)}")
    path = Path(cv2.data.haarcascades) / CASCADES[name]
    classifier = cv2.CascadeClassifier(str(path))
    if classifier.empty():
        raise RuntimeError(f"could not load OpenCV's bundled cascade {path}")
    return classifier


def to_gray(image: np.ndarray) -> np.ndarray:
    """Any cv2-style image (gray, BGR, BGRA; uint8, uint16 or float in [0, 1]) -> gray uint8."""
    image = np.asarray(image)
    if image.ndim == 3 and image.shape[2] == 1:
        image = image[..., 0]
    if image.ndim == 3 and image.shape[2] in (3, 4):
        code = cv2.COLOR_BGR2GRAY if image.shape[2] == 3 else cv2.COLOR_BGRA2GRAY
        image = cv2.cvtColor(image if image.dtype != np.float64 else image.astype(np.float32), code)
    if image.ndim != 2:
        raise ValueError(f"expected a grayscale (H, W) or colour (H, W, 3|4) image, got shape "
                         f"{image.shape}")
    if image.dtype == np.uint8:
        return image
    if image.dtype == np.uint16:
        return (image >> 8).astype(np.uint8)
    if np.issubdtype(image.dtype, np.floating):
        scale = 255.0 if image.size and float(np.nanmax(image)) <= 1.0 else 1.0
        return np.clip(np.rint(np.nan_to_num(image) * scale), 0, 255).astype(np.uint8)
    if np.issubdtype(image.dtype, np.integer) or image.dtype == bool:
        return np.clip(image, 0, 255).astype(np.uint8)
    raise ValueError(f"unsupported image dtype {image.dtype}")


def is_face_crop(image: np.ndarray) -> bool:
    """A 48x48 image is taken to be a FER2013-style face crop already."""
    return tuple(np.shape(image)[:2]) == (IMAGE_SIDE, IMAGE_SIDE)


def _overlap(a: Box, b: Box) -> float:
    """Intersection over the smaller box's area: catches nested as well as shifted duplicates."""
    ix = max(0, min(a[0] + a[2], b[0] + b[2]) - max(a[0], b[0]))
    iy = max(0, min(a[1] + a[3], b[1] + b[3]) - max(a[1], b[1]))
    return ix * iy / max(1, min(a[2] * a[3], b[2] * b[3]))


def detect_faces(gray_uint8: np.ndarray, *, cascade: str = DEFAULT_CASCADE,
                 min_size: int = MIN_SIZE, scale_factor: float = SCALE_FACTOR,
                 min_neighbors: int = MIN_NEIGHBORS, max_side: int | None = MAX_SIDE) -> list[Box]:
    """Face boxes (x, y, w, h), largest first; duplicates nested in a larger box are dropped.

    An image larger than `max_side` is searched at that size (boxes are mapped back to the
    input's pixels; `min_size` then applies to the reduced image): a 12-megapixel photo
    takes seconds at full size for faces that are large anyway.
    """
    gray = to_gray(gray_uint8)
    scale = 1.0
    if max_side and max(gray.shape) > max_side:
        scale = max_side / max(gray.shape)
        size = (max(1, round(gray.shape[1] * scale)), max(1, round(gray.shape[0] * scale)))
        gray = cv2.resize(gray, size, interpolation=cv2.INTER_AREA)
    if min(gray.shape) < min_size:
        return []
    found = _classifier(cascade).detectMultiScale(
        gray, scaleFactor=scale_factor, minNeighbors=min_neighbors, minSize=(min_size, min_size))
    boxes = sorted((tuple(int(round(v / scale)) for v in b) for b in np.reshape(found, (-1, 4))),
                   key=lambda b: (-b[2] * b[3], b[1], b[0]))
    kept: list[Box] = []
    for b in boxes:
        if all(_overlap(b, k) < 0.5 for k in kept):
            kept.append(b)
    return kept


def square_box(box: Box, shape: tuple[int, ...], margin: float = MARGIN) -> Box:
    """The square around `box` grown by `margin` of its side per side, clamped to the image.

    Clamping keeps the crop square: at a border the square shrinks (about the box centre)
    rather than being padded or stretched.
    """
    x, y, w, h = box
    img_h, img_w = shape[:2]
    side = max(w, h) * (1.0 + 2.0 * margin)
    cx, cy = x + w / 2.0, y + h / 2.0
    half = min(side / 2.0, cx, cy, img_w - cx, img_h - cy)
    half = max(half, 0.5)
    x0, y0 = int(round(cx - half)), int(round(cy - half))
    s = max(1, int(round(2 * half)))
    x0, y0 = min(max(x0, 0), max(img_w - s, 0)), min(max(y0, 0), max(img_h - s, 0))
    s = min(s, img_w - x0, img_h - y0)
    return x0, y0, s, s


def crop_face(gray: np.ndarray, box: Box, margin: float = MARGIN) -> np.ndarray:
    """A 48x48 uint8 grayscale face like the training data: square crop with margin, area resize."""
    gray = to_gray(gray)
    x, y, s, _ = square_box(box, gray.shape, margin)
    patch = gray[y:y + s, x:x + s]
    if patch.size == 0:
        raise ValueError(f"face box {box} lies outside the {gray.shape[1]}x{gray.shape[0]} image")
    interp = cv2.INTER_AREA if s >= IMAGE_SIDE else cv2.INTER_LINEAR
    return cv2.resize(patch, (IMAGE_SIDE, IMAGE_SIDE), interpolation=interp)


def find_faces(image: np.ndarray, *, cascade: str = DEFAULT_CASCADE, margin: float = MARGIN,
               **detect_kw) -> tuple[list[Box], np.ndarray]:
    """(boxes, crops uint8 (N, 48, 48)) of one image; a 48x48 image is its own single face."""
    gray = to_gray(image)
    if is_face_crop(gray):
        return [(0, 0, IMAGE_SIDE, IMAGE_SIDE)], gray[None].copy()
    boxes = detect_faces(gray, cascade=cascade, **detect_kw)
    crops = np.stack([crop_face(gray, b, margin) for b in boxes]) if boxes else \
        np.zeros((0, IMAGE_SIDE, IMAGE_SIDE), np.uint8)
    return boxes, crops
