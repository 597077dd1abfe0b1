"""tf.data input pipeline: FERPlus reference augmentation and preprocessing, on batches.

Follows microsoft/FERPlus (src/img_util.py, src/ferplus.py) image by image, but every op
is vectorised over a batch (the dataset is batched first, then mapped), which is what
makes it fast on a CPU:

1. `warp`: one affine warp per image that also resizes 48 -> 64 (`crop_img`): output pixel
   p = (row, col) samples the input at p @ T + offset, with
   T = R(angle) @ [[1, skew_y], [0, 1]] @ [[1, 0], [skew_x, 1]] @ diag(s_y, s_x),
   s = scale * (48 - 1) / (64 - 1), offset = ctr_in - ctr_out @ T, ctr_in = (24, 24) (the
   reference's Rect centre of the full 48x48 face, not the pixel centre 23.5) and
   ctr_out = (32 + shift_y, 32 + shift_x); bilinear, reflect border. The random horizontal
   flip that follows the warp is folded into the same transform (x -> W-1-x). Evaluation is
   the same warp with zero shift/angle/skew, scale 1 and no flip: a plain resize.
2. `round_to_uint8`: the reference warps a uint8 image, so it rounds (half up) to 0..255.
3. `equalize_histogram`, `subtract_plane`, `unit_std`: `preproc_img`.
4. `add_features`: the O/S/L channels of `ferjax.features`.

Augmentation draws (shift, angle, skew, scale, flip) from tf.random.stateless_uniform with a
seed folded from (seed, epoch, batch index), and the epoch's order is
np.random.default_rng((seed, epoch)).permutation: regenerating an epoch reproduces its
batches exactly, whatever the map parallelism (this is how resume replays a run).

Border convention: TF's REFLECT fill with bilinear interpolation and scipy.ndimage's
mode="reflect" (order=1) both extend the image half-sample symmetrically (d c b a | a b c d);
the test suite checks the warp against scipy.ndimage.affine_transform on every pixel.
"""
from __future__ import annotations

import functools
from typing import Callable, Iterator

import numpy as np
import tensorflow as tf

from ferjax import features
from ferjax.classes import IMAGE_SIDE
from ferjax.data.records import LabeledSplit
from ferjax.devices import usable_cores

Batch = dict[str, tf.Tensor]
Op = Callable[[Batch], Batch]

# Reference augmentation ranges (ferplus.py, non-deterministic reader).
MAX_SHIFT = 0.08     # fraction of the output side
MAX_ANGLE = 20.0     # degrees
MAX_SKEW = 0.05
MAX_SCALE = 1.05
WARP_PARAMS = ("shift_y", "shift_x", "angle", "skew_y", "skew_x", "scale_y", "scale_x", "flip")


# ---------------------------------------------------------------- warp parameters

def identity_warp_params(batch: int) -> dict[str, tf.Tensor]:
    """The evaluation warp: no shift/rotation/skew, scale 1, no flip (a pure resize)."""
    zeros, ones = tf.zeros([batch]), tf.ones([batch])
    return {"shift_y": zeros, "shift_x": zeros, "angle": zeros, "skew_y": zeros,
            "skew_x": zeros, "scale_y": ones, "scale_x": ones, "flip": zeros}


def random_warp_params(seed: tf.Tensor, batch: int, out_size: int) -> dict[str, tf.Tensor]:
    """`distort_img`'s draws for a batch, from one stateless uniform (B, 10) tensor."""
    u = tf.random.stateless_uniform([batch, 10], seed=seed)
    sym = 2.0 * u - 1.0                      # U(-1, 1)

    def scale(draw, invert):                 # U(1, max_scale), inverted with p 0.5
        s = 1.0 + (MAX_SCALE - 1.0) * draw
        return tf.where(invert < 0.5, 1.0 / s, s)

    return {
        "shift_y": out_size * MAX_SHIFT * sym[:, 0],
        "shift_x": out_size * MAX_SHIFT * sym[:, 1],
        "angle": MAX_ANGLE * sym[:, 2],
        "skew_y": MAX_SKEW * sym[:, 3],
        "skew_x": MAX_SKEW * sym[:, 4],
        "scale_y": scale(u[:, 5], u[:, 6]),
        "scale_x": scale(u[:, 7], u[:, 8]),
        "flip": tf.cast(u[:, 9] < 0.5, tf.float32),
    }


def _mat2(a: tf.Tensor, b: tf.Tensor, c: tf.Tensor, d: tf.Tensor) -> tf.Tensor:
    """Batched [[a, b], [c, d]] -> (B, 2, 2)."""
    return tf.reshape(tf.stack([a, b, c, d], axis=-1), [-1, 2, 2])


def crop_matrix(params: dict[str, tf.Tensor], in_size: int,
                out_size: int) -> tuple[tf.Tensor, tf.Tensor]:
    """`crop_img`'s (T (B,2,2), offset (B,2)) in (row, col) order: input = p @ T + offset."""
    p = {k: tf.cast(params[k], tf.float64) for k in WARP_PARAMS}
    zero, one = tf.zeros_like(p["angle"]), tf.ones_like(p["angle"])
    ang = p["angle"] * (np.pi / 180.0)
    cos, sin = tf.cos(ang), tf.sin(ang)
    ratio = (in_size - 1) / (out_size - 1)
    t = _mat2(cos, -sin, sin, cos)
    t = t @ _mat2(one, p["skew_y"], zero, one)
    t = t @ _mat2(one, zero, p["skew_x"], one)
    t = t @ _mat2(p["scale_y"] * ratio, zero, zero, p["scale_x"] * ratio)
    ctr_in = tf.constant([in_size / 2.0, in_size / 2.0], tf.float64)
    ctr_out = tf.stack([out_size / 2.0 + p["shift_y"], out_size / 2.0 + p["shift_x"]], axis=-1)
    offset = ctr_in - tf.einsum("bi,bij->bj", ctr_out, t)
    return t, offset


def projective_transforms(params: dict[str, tf.Tensor], in_size: int,
                          out_size: int) -> tf.Tensor:
    """(B, 8) ImageProjectiveTransformV3 rows for `crop_img` followed by the optional fliplr.

    TF maps output (x, y) to input (a0 x + a1 y + a2, b0 x + b1 y + b2) = (col, row), while
    the reference's row vector gives row = y T00 + x T10 + o0, col = y T01 + x T11 + o1.
    A flip after the warp reads output column W-1-x instead of x.
    """
    t, offset = crop_matrix(params, in_size, out_size)
    flip = tf.cast(params["flip"], tf.float64) > 0.5
    a0, a1, a2 = t[:, 1, 1], t[:, 0, 1], offset[:, 1]
    b0, b1, b2 = t[:, 1, 0], t[:, 0, 0], offset[:, 0]
    last = float(out_size - 1)
    a2 = tf.where(flip, a2 + a0 * last, a2)
    b2 = tf.where(flip, b2 + b0 * last, b2)
    a0 = tf.where(flip, -a0, a0)
    b0 = tf.where(flip, -b0, b0)
    zero = tf.zeros_like(a0)
    return tf.cast(tf.stack([a0, a1, a2, b0, b1, b2, zero, zero], axis=-1), tf.float32)


def warp_images(images: tf.Tensor, transforms: tf.Tensor, out_size: int) -> tf.Tensor:
    """(B, H, W) images -> (B, out, out) float32, bilinear with REFLECT fill."""
    out = tf.raw_ops.ImageProjectiveTransformV3(
        images=tf.cast(images, tf.float32)[..., None], transforms=transforms,
        output_shape=tf.constant([out_size, out_size], tf.int32), fill_value=0.0,
        interpolation="BILINEAR", fill_mode="REFLECT")
    return out[..., 0]


# ---------------------------------------------------------------- preprocessing ops

def compose(*ops: Op) -> Op:
    def run(data: Batch) -> Batch:
        for op in ops:
            data = op(data)
        return data
    return run


def warp(out_size: int, augment: bool) -> Op:
    """Random (needs data["seed"]) or evaluation warp of data["image"] to out_size."""
    def op(data: Batch) -> Batch:
        images = data["image"]
        batch, in_size = tf.shape(images)[0], images.shape[-1]
        if images.shape[-2] != in_size:   # the reference roi is the whole (square) face
            raise ValueError(f"expected square faces, got {images.shape}")
        params = (random_warp_params(data["seed"], batch, out_size) if augment
                  else identity_warp_params(batch))
        transforms = projective_transforms(params, in_size, out_size)
        return {**data, "image": warp_images(images, transforms, out_size)}
    return op


def round_to_uint8(data: Batch) -> Batch:
    """scipy writes a uint8 warp result rounding half up; bilinear output is in 0..255."""
    return {**data, "image": tf.cast(tf.floor(data["image"] + 0.5), tf.uint8)}


def equalize_histogram(data: Batch) -> Batch:
    """uint8 (B,H,W) -> float32 in [-1, 1]: cdf of the image's own 256-bin histogram."""
    images = data["image"]
    batch = tf.shape(images)[0]
    # Bin index = value + 256 * image: one segment sum and one flat gather for the batch
    # (faster than bincount(axis=-1) plus a batch_dims gather).
    bins = (tf.cast(tf.reshape(images, [batch, -1]), tf.int32)
            + 256 * tf.range(batch)[:, None])
    hist = tf.math.unsorted_segment_sum(tf.ones_like(bins), bins, batch * 256)
    cdf = tf.cast(tf.cumsum(tf.reshape(hist, [batch, 256]), axis=-1), tf.float32)
    cdf = cdf * (2.0 / cdf[:, -1:]) - 1.0
    eq = tf.gather(tf.reshape(cdf, [-1]), bins)
    return {**data, "image": tf.reshape(eq, tf.shape(images))}


def plane_basis(height: int, width: int) -> tuple[np.ndarray, np.ndarray]:
    """A = [1, X, Y] over the row-major pixel grid (HW, 3) and its pseudo-inverse (3, HW)."""
    y, x = np.mgrid[:height, :width]
    a = np.stack([np.ones(height * width), x.ravel(), y.ravel()], axis=1)
    return a.astype(np.float32), np.linalg.pinv(a).astype(np.float32)


def subtract_plane(data: Batch) -> Batch:
    """Remove the least-squares plane a + b*x + c*y from each image."""
    images = data["image"]
    h, w = images.shape[1], images.shape[2]
    a, a_pinv = plane_basis(h, w)
    flat = tf.reshape(images, [-1, h * w])
    coef = tf.matmul(flat, a_pinv, transpose_b=True)           # (B, 3)
    plane = tf.matmul(coef, a, transpose_b=True)               # (B, HW)
    return {**data, "image": tf.reshape(flat - plane, tf.shape(images))}


def unit_std(data: Batch) -> Batch:
    """Divide by the RMS (the plane fit already zeroed the mean) unless it is ~0."""
    images = data["image"]
    std = tf.sqrt(tf.reduce_mean(tf.square(images), axis=[1, 2], keepdims=True))
    return {**data, "image": tf.where(std > 1e-6, images / std, images)}


def add_features(feature_set: str) -> Op:
    features.derived_channels(feature_set)  # fail early on a bad name
    def op(data: Batch) -> Batch:
        return {**data, "image": features.add_features_tf(data["image"], feature_set)}
    return op


def preprocess_op(feature_set: str, image_size: int, augment: bool) -> Op:
    """uint8 (B, 48, 48) faces -> float32 (B, size, size, C), the whole reference chain."""
    return compose(warp(image_size, augment), round_to_uint8, equalize_histogram,
                   subtract_plane, unit_std, add_features(feature_set))


# ---------------------------------------------------------------- datasets

def steps_per_epoch(n: int, batch_size: int) -> int:
    """Training steps per epoch (the remainder is dropped)."""
    if batch_size <= 0:
        raise ValueError(f"batch_size must be positive, got {batch_size}")
    if batch_size > n:
        raise ValueError(f"batch size {batch_size} is larger than the split ({n} images); "
                         f"training drops the remainder, so no batch could be formed")
    return n // batch_size


def _options() -> tf.data.Options:
    # Parallelism comes from mapping several batches at once; one thread per op avoids
    # oversubscribing the cores (and leaves them to the training step).
    cores = usable_cores()
    options = tf.data.Options()
    options.deterministic = True
    options.threading.private_threadpool_size = cores
    options.threading.max_intra_op_parallelism = 1
    options.autotune.cpu_budget = cores
    return options


def _run(ds: tf.data.Dataset, op: Op) -> Iterator[dict[str, np.ndarray]]:
    ds = ds.map(op, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    return ds.prefetch(2).with_options(_options()).as_numpy_iterator()


def _batched(array: np.ndarray, steps: int, batch_size: int) -> np.ndarray:
    return array.reshape((steps, batch_size) + array.shape[1:])


def train_batches(split: LabeledSplit, *, feature_set: str, batch_size: int, seed: int,
                  epoch: int, image_size: int = 64,
                  augment: bool = True) -> Iterator[dict[str, np.ndarray]]:
    """One shuffled, augmented epoch: {"image" (B,S,S,C) f32, "target" (B,8), "label" (B,)}."""
    features.derived_channels(feature_set)
    steps = steps_per_epoch(len(split), batch_size)
    order = np.random.default_rng((seed, epoch)).permutation(len(split))[:steps * batch_size]
    ds = tf.data.Dataset.from_tensor_slices({
        "image": _batched(split.images[order], steps, batch_size),
        "target": _batched(split.targets[order].astype(np.float32), steps, batch_size),
        "label": _batched(split.labels[order].astype(np.int32), steps, batch_size),
        "step": np.arange(steps, dtype=np.int64),
    })
    base_seed = tf.constant([seed, epoch], tf.int64)
    preprocess = preprocess_op(feature_set, image_size, augment)

    def op(data: Batch) -> Batch:
        step = data.pop("step")
        data["seed"] = tf.random.experimental.stateless_fold_in(base_seed, step)
        data = preprocess(data)
        data.pop("seed")
        return data

    return _run(ds, op)


def eval_batches(split: LabeledSplit, *, feature_set: str, batch_size: int,
                 image_size: int = 64) -> Iterator[dict[str, np.ndarray]]:
    """All images in order, deterministic; the last batch is padded with "mask" 0."""
    features.derived_channels(feature_set)
    if batch_size <= 0:
        raise ValueError(f"batch_size must be positive, got {batch_size}")
    n = len(split)
    steps = -(-n // batch_size)
    pad = steps * batch_size - n

    def padded(array: np.ndarray, dtype) -> np.ndarray:
        array = np.asarray(array, dtype)
        filler = np.zeros((pad,) + array.shape[1:], dtype)
        return _batched(np.concatenate([array, filler]), steps, batch_size)

    ds = tf.data.Dataset.from_tensor_slices({
        "image": padded(split.images, np.uint8),
        "target": padded(split.targets, np.float32),
        "label": padded(split.labels, np.int32),
        "mask": padded(np.ones(n), np.float32),
    })
    return _run(ds, preprocess_op(feature_set, image_size, augment=False))


@functools.lru_cache(maxsize=None)
def eval_preprocessor(feature_set: str, image_size: int = 64):
    """The evaluation chain traced once for any N: uint8 (N, 48, 48) -> float32 (N, S, S, C)."""
    op = preprocess_op(feature_set, image_size, augment=False)
    fn = tf.function(lambda x: op({"image": x})["image"], autograph=False,
                     input_signature=[tf.TensorSpec([None, IMAGE_SIDE, IMAGE_SIDE], tf.uint8)])
    return lambda images: fn(tf.constant(images)).numpy()


def preprocess_numpy(images_uint8: np.ndarray, feature_set: str, image_size: int = 64,
                     chunk: int = 256) -> np.ndarray:
    """The evaluation path as a function: uint8 (N, 48, 48) -> float32 (N, S, S, C)."""
    images_uint8 = np.asarray(images_uint8)
    if images_uint8.dtype != np.uint8 or images_uint8.shape[1:] != (IMAGE_SIDE, IMAGE_SIDE):
        raise ValueError(f"expected uint8 (N, {IMAGE_SIDE}, {IMAGE_SIDE}) images, got "
                         f"{images_uint8.dtype} {images_uint8.shape}")
    if not len(images_uint8):
        return np.zeros((0, image_size, image_size, features.num_channels(feature_set)),
                        np.float32)
    run = eval_preprocessor(feature_set, image_size)
    return np.concatenate([run(images_uint8[i:i + chunk]) for i in range(0, len(images_uint8), chunk)])
