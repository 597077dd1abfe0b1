"""The FERPlus reference augmentation's geometry, once for both front-ends (the tf.data ops
of pipeline.py and the on-device JAX ops of augment.py): its ranges, the affine transform of
`crop_img`, and the plane basis of the reference's plane removal. Array functions are passed
in, so the same arithmetic runs on TensorFlow and JAX arrays."""
from __future__ import annotations

import numpy as np

# Reference augmentation ranges (ferplus.py, non-deterministic reader).
MAX_SHIFT = 0.08     # fraction of the output side
MAX_ANGLE = 20.0     # degrees
MAX_SKEW = 0.05
MAX_SCALE = 1.05
WARP_PARAMS = ("shift_y", "shift_x", "angle", "skew_y", "skew_x", "scale_y", "scale_x", "flip")


def crop_transform(p: dict, in_size: int, out_size: int, cos, sin, stack, einsum):
    """`crop_img`'s (T (B,2,2), offset (B,2)) in (row, col) order: input = p @ T + offset, with
    T = R(angle) @ [[1, skew_y], [0, 1]] @ [[1, 0], [skew_x, 1]] @ diag(s_y, s_x),
    s = scale * (in - 1) / (out - 1), offset = ctr_in - ctr_out @ T."""
    ang = p["angle"] * (np.pi / 180.0)
    c, s = cos(ang), sin(ang)
    zero = ang * 0.0
    one = zero + 1.0

    def mat2(a, b, cc, d):
        return stack([stack([a, b], -1), stack([cc, d], -1)], -2)

    ratio = (in_size - 1) / (out_size - 1)
    t = mat2(c, -s, s, c)
    t = t @ mat2(one, p["skew_y"], zero, one)
    t = t @ mat2(one, zero, p["skew_x"], one)
    t = t @ mat2(p["scale_y"] * ratio, zero, zero, p["scale_x"] * ratio)
    ctr_out = stack([out_size / 2.0 + p["shift_y"], out_size / 2.0 + p["shift_x"]], -1)
    offset = in_size / 2.0 - einsum("bi,bij->bj", ctr_out, t)
    return t, offset


def plane_basis(height: int, width: int) -> tuple[np.ndarray, np.ndarray]:
    """A = [1, X, Y] over the row-major pixel grid (HW, 3) and its pseudo-inverse (3, HW)."""
    y, x = np.mgrid[:height, :width]
    a = np.stack([np.ones(height * width), x.ravel(), y.ravel()], axis=1)
    return a.astype(np.float32), np.linalg.pinv(a).astype(np.float32)


