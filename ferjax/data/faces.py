"""Drawing the built-in faces: a 48x48 gray face for given expression parameters (the
columns of synthetic.PROTOTYPES) and a sampled look (identity, pose, lighting, noise)."""
from __future__ import annotations

import cv2
import numpy as np

from ferjax.classes import IMAGE_SIDE

SUPERSAMPLE = 2                       # draw at 96x96, then area-downsample: smooth 48x48 faces
CANVAS = IMAGE_SIDE * SUPERSAMPLE
SHIFT = 4                             # cv2 fixed-point bits: sub-pixel feature positions
ZOOM = 1.3                            # FER2013 crops are tight: the face fills the frame

# Feature coordinates below are in the 96x96 canvas, face centred at (48, 54).

def _p(x: float, y: float) -> tuple[int, int]:
    return int(round(x * (1 << SHIFT))), int(round(y * (1 << SHIFT)))


def _ellipse(img, cx, cy, ax, ay, color, thickness=-1, angle=0.0, start=0, end=360) -> None:
    cv2.ellipse(img, _p(cx, cy), _p(max(ax, 0.3), max(ay, 0.3)), angle, start, end, color,
                thickness, cv2.LINE_AA, SHIFT)


_T = np.linspace(0.0, 1.0, 10)[:, None]
_BEZIER_W = ((1 - _T) ** 2, 2 * (1 - _T) * _T, _T ** 2)


def _clamp(x: float, lo: float, hi: float) -> float:
    return min(max(float(x), lo), hi)


def _bezier(p0, c, p1) -> np.ndarray:
    """10 points of the quadratic Bezier curve from p0 to p1 pulled towards c."""
    return _BEZIER_W[0] * np.asarray(p0) + _BEZIER_W[1] * np.asarray(c) + _BEZIER_W[2] * np.asarray(p1)


def _fixed(points: np.ndarray) -> np.ndarray:
    return np.round(points * (1 << SHIFT)).astype(np.int32)


def _draw_eyes(img, e: np.ndarray, skin: float, dark: float, gaze: float, glasses: bool) -> None:
    h = _clamp(0.5 + 4.4 * e[0], 0.5, 6.0)
    for side in (-1, 1):
        cx, cy = 48 + side * 12.5, 47.0
        _ellipse(img, cx, cy, 6.2, h, min(255.0, skin + 55))
        r = min(2.9, h)
        _ellipse(img, cx + gaze, cy, r, r, dark)
        _ellipse(img, cx, cy, 6.4, h + 0.3, dark * 1.3, thickness=2, start=180, end=360)
        if glasses:
            _ellipse(img, cx, cy + 0.5, 9.5, 7.5, dark, thickness=2)
    if glasses:
        cv2.line(img, _p(44.5, 46.5), _p(51.5, 46.5), dark, 2, cv2.LINE_AA, SHIFT)


def _draw_brows(img, e: np.ndarray, color: float, thickness: int) -> None:
    base = 37.0 - 3.8 * e[1]
    for side in (-1, 1):
        inner_x = 48 + side * (5.5 - 1.2 * max(e[2], 0.0))     # frowning pulls brows together
        inner = (inner_x, base + 4.5 * e[2])
        outer = (48 + side * 19.0, base - 1.5 * e[2] + 1.0)
        cv2.line(img, _p(*inner), _p(*outer), color, thickness, cv2.LINE_AA, SHIFT)


def _mouth_corners(e: np.ndarray, y0: float, asym_side: int) -> tuple[tuple, tuple]:
    w = 12.0 * e[5]
    yc = y0 - 5.0 * e[3]
    lift = 5.0 * e[6]
    left = (48 - w, yc - (lift if asym_side < 0 else -0.2 * lift))
    right = (48 + w, yc - (lift if asym_side > 0 else -0.2 * lift))
    return left, right


def _draw_nose_and_folds(img, e: np.ndarray, skin: float, corners: tuple) -> None:
    cv2.line(img, _p(48, 50), _p(48.6, 59), skin * 0.82, 2, cv2.LINE_AA, SHIFT)
    for side in (-1, 1):
        _ellipse(img, 48 + side * 3.6, 61.0, 2.0, 1.1, skin * 0.55)
    wrinkle = _clamp(e[7], 0.0, 1.2)
    if wrinkle > 0.25:
        for k in range(2):
            y = 50.5 + 2.2 * k
            cv2.line(img, _p(45, y), _p(51, y - 0.6), skin * (1 - 0.3 * wrinkle), 1, cv2.LINE_AA, SHIFT)
    fold = _clamp(0.6 * wrinkle + 0.6 * max(e[3], 0.0), 0.0, 1.0)
    if fold > 0.15:
        for side, corner in ((-1, corners[0]), (1, corners[1])):
            pts = _bezier((48 + side * 6.5, 59.5), (48 + side * 10.5, 64.0),
                          (corner[0] + side * 1.5, corner[1]))
            cv2.polylines(img, [_fixed(pts)], False, skin * (1 - 0.35 * fold), 1, cv2.LINE_AA, SHIFT)


def _draw_mouth(img, e: np.ndarray, skin: float, corners: tuple, y0: float) -> None:
    left, right = corners
    upper_c = (48.0, y0 + 5.0 * e[3] - 2.0 * max(e[4], 0.0))
    opening = _clamp(e[4], 0.0, 1.3)
    lip = skin * 0.55
    upper = _bezier(left, upper_c, right)
    if opening > 0.12:
        lower = _bezier(left, (48, upper_c[1] + 22.0 * opening + 1.0), right)
        cavity = np.concatenate([upper, lower[::-1]])
        cv2.fillPoly(img, [_fixed(cavity)], skin * 0.2, cv2.LINE_AA, SHIFT)
        teeth = _clamp(1.2 * e[3] + 0.7 * e[7] - 0.15, 0.0, 1.0)
        if teeth > 0.05:
            band = upper + np.array([0.0, 1.0 + 4.5 * opening * teeth])
            cv2.fillPoly(img, [_fixed(np.concatenate([upper, band[::-1]]))], min(255.0, skin + 60),
                         cv2.LINE_AA, SHIFT)
        cv2.polylines(img, [_fixed(lower)], False, lip, 2, cv2.LINE_AA, SHIFT)
    cv2.polylines(img, [_fixed(upper)], False, lip, 3 if opening <= 0.12 else 2, cv2.LINE_AA, SHIFT)


_YY, _XX = np.mgrid[0:CANVAS, 0:CANVAS].astype(np.float32)


def _shade(img: np.ndarray, fw: float, fh: float, depth: float) -> np.ndarray:
    """A rounded face: brightness falls off by `depth` from the centre to the rim (and stays
    there outside it). Without it the skin is one flat tone, and histogram equalisation
    spreads that tone's sensor noise over much of the grey range, burying the features."""
    r2 = np.minimum(((_XX - 48.0) / fw) ** 2 + ((_YY - 54.0) / fh) ** 2, 1.0)
    return np.clip(img * (1.0 - depth * r2), 0, 255).astype(np.uint8)


def draw_face(e: np.ndarray, look: dict) -> np.ndarray:
    """One face (uint8 48x48, before photometric effects) for expression parameters e."""
    img = np.full((CANVAS, CANVAS), look["background"], np.uint8)
    skin, dark = float(look["skin"]), float(look["skin"] * look["darkness"])
    fw, fh = 29.0 * look["face_w"], 37.0 * look["face_h"]
    if look["has_hair"]:
        _ellipse(img, 48, 47, fw + 4, fh + 2, look["hair"])
    _ellipse(img, 48, 54, fw, fh, skin)
    if look["has_hair"]:
        _ellipse(img, 48, 54 - fh + 1, fw * 0.85, 3 + 10.0 * look["fringe"], look["hair"])
    _draw_brows(img, e, float(look["brow"]), int(look["brow_px"]))
    _draw_eyes(img, e, skin, dark, float(look["gaze"]), bool(look["glasses"]))
    y0 = 72.0 + look["mouth_y"]
    corners = _mouth_corners(e, y0, int(look["asym_side"]))
    _draw_nose_and_folds(img, e, skin, corners)
    _draw_mouth(img, e, skin, corners, y0)
    img = _shade(img, fw, fh, float(look["shading"]))
    m = cv2.getRotationMatrix2D((48.0, 54.0), float(look["angle"]), float(ZOOM * look["scale"]))
    m[:, 2] += look["shift"] + np.array([0.0, -6.0])   # face centre (48, 54) -> canvas centre
    img = cv2.warpAffine(img, m, (CANVAS, CANVAS), flags=cv2.INTER_LINEAR,
                         borderMode=cv2.BORDER_REPLICATE)
    return cv2.resize(img, (IMAGE_SIDE, IMAGE_SIDE), interpolation=cv2.INTER_AREA)


def sample_looks(rng: np.random.Generator, n: int) -> list[dict]:
    """Per-face nuisance: identity (skin, face shape, hair, glasses), pose and scale."""
    skin = rng.uniform(95, 205, n)
    looks = {
        "skin": skin, "background": rng.uniform(15, 240, n), "darkness": rng.uniform(0.15, 0.4, n),
        "brow": skin * rng.uniform(0.2, 0.5, n), "brow_px": rng.integers(3, 6, n),
        "has_hair": rng.random(n) < 0.8, "hair": rng.uniform(10, 110, n), "fringe": rng.uniform(0, 0.5, n),
        "face_w": rng.uniform(0.9, 1.1, n), "face_h": rng.uniform(0.92, 1.06, n),
        "gaze": rng.uniform(-1.3, 1.3, n), "glasses": rng.random(n) < 0.08,
        "mouth_y": rng.normal(0, 1.0, n), "asym_side": rng.choice((-1, 1), n),
        "angle": np.clip(rng.normal(0, 6, n), -15, 15), "scale": rng.uniform(0.88, 1.1, n),
        "shift": rng.uniform(-6, 6, (n, 2)), "shading": rng.uniform(0.3, 0.5, n),
    }
    return [{k: v[i] for k, v in looks.items()} for i in range(n)]


def photometric(rng: np.random.Generator, faces: np.ndarray) -> np.ndarray:
    """Contrast, a lighting gradient, occasional blur and sensor noise, then back to uint8."""
    n = len(faces)
    faces = faces.astype(np.float32)
    coords = np.linspace(-1.0, 1.0, IMAGE_SIDE, dtype=np.float32)
    theta = rng.uniform(0, 2 * np.pi, (n, 1, 1)).astype(np.float32)
    gradient = np.cos(theta) * coords[None, None, :] + np.sin(theta) * coords[None, :, None]
    mean = faces.mean(axis=(1, 2), keepdims=True)
    contrast = rng.uniform(0.7, 1.2, (n, 1, 1)).astype(np.float32)
    light = rng.uniform(0, 55, (n, 1, 1)).astype(np.float32)
    out = (faces - mean) * contrast + mean + light * gradient
    for i in np.flatnonzero(rng.random(n) < 0.3):
        out[i] = cv2.GaussianBlur(out[i], (0, 0), rng.uniform(0.4, 1.0))
    noise = rng.standard_normal(out.shape, dtype=np.float32)
    out += noise * rng.uniform(2, 9, (n, 1, 1)).astype(np.float32)
    return np.clip(np.rint(out), 0, 255).astype(np.uint8)
