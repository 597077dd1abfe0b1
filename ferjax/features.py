"""The paper's input feature channels: O (original), S (Sobel magnitude), L (Laplacian).

Operator, for a preprocessed float image O of shape (H, W):

* pad O by 1 pixel with the reflect-101 border (``d c b | a b c d | c b a``; cv2's default
  BORDER_REFLECT_101, numpy/``tf.pad``/``jnp.pad`` mode ``"reflect"``);
* correlate (not convolve) the padded image with 3x3 kernels, output (H, W):
    Gx with SOBEL_X = [[-1,0,1],[-2,0,2],[-1,0,1]]    == cv2.Sobel(O, CV_32F, 1, 0, ksize=3)
    Gy with SOBEL_Y = SOBEL_X.T                        == cv2.Sobel(O, CV_32F, 0, 1, ksize=3)
    S  = sqrt(Gx**2 + Gy**2)
    L  with LAPLACE = [[0,1,0],[1,-4,1],[0,1,0]]       == cv2.Laplacian(O, CV_32F, ksize=1)
* standardise each derived channel per image: (c - mean(c)) / (std(c) + 1e-6), so its scale
  matches O, which preprocessing already brought to unit std. O itself is passed through.

Channel order is always O, then S, then L. The kernels are defined once, here, as numpy
constants, and so is the correlation (`_correlate`: a sum of shifted slices of the padded
batch, plain array arithmetic). `add_features_tf` (tf.data), `add_features_jax` (usable
inside a jitted step) and the raw, unstandardised numpy references `sobel_magnitude_np` /
`laplacian_np` all run that one function on their own arrays.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:  # the front-ends import their framework lazily: JAX code never loads TF
    import jax
    import tensorflow as tf

SOBEL_X = np.array([[-1, 0, 1], [-2, 0, 2], [-1, 0, 1]], np.float32)
SOBEL_Y = np.ascontiguousarray(SOBEL_X.T)
LAPLACE = np.array([[0, 1, 0], [1, -4, 1], [0, 1, 0]], np.float32)
STD_EPS = 1e-6

FEATURE_SETS: dict[str, tuple[str, ...]] = {
    "O": (), "O-S": ("S",), "O-L": ("L",), "O-S-L": ("S", "L"),
}


def derived_channels(feature_set: str) -> tuple[str, ...]:
    """The channels added to O, in order; raises ValueError for an unknown feature set."""
    try:
        return FEATURE_SETS[feature_set]
    except KeyError:
        raise ValueError(f"unknown feature set {feature_set!r}; choose one of "
                         f"{', '.join(FEATURE_SETS)}") from None


def num_channels(feature_set: str) -> int:
    return 1 + len(derived_channels(feature_set))


def _correlate(padded, kernel: np.ndarray, h: int, w: int):
    """Correlate a (B, H+2, W+2) padded batch with a 3x3 kernel as a sum of shifted slices.

    Plain slicing and arithmetic, so the same code runs on numpy, TF and JAX arrays.
    """
    out = None
    for (i, j), k in np.ndenumerate(kernel):
        if k:
            term = padded[:, i:i + h, j:j + w]
            term = term if k == 1 else -term if k == -1 else float(k) * term
            out = term if out is None else out + term
    return out


def _channels(images, padded, feature_set: str, sqrt, standardize) -> list:
    """[O, S?, L?] for a (B, H, W) batch and its reflect-101 padded copy."""
    h, w = images.shape[1], images.shape[2]
    channels = [images]
    for name in derived_channels(feature_set):
        if name == "S":
            gx = _correlate(padded, SOBEL_X, h, w)
            gy = _correlate(padded, SOBEL_Y, h, w)
            channels.append(standardize(sqrt(gx * gx + gy * gy)))
        else:
            channels.append(standardize(_correlate(padded, LAPLACE, h, w)))
    return channels


# ---------------------------------------------------------------- numpy reference (raw)

def _pad_np(image: np.ndarray) -> np.ndarray:
    return np.pad(image.astype(np.float32)[None], ((0, 0), (1, 1), (1, 1)), mode="reflect")


def sobel_magnitude_np(image: np.ndarray) -> np.ndarray:
    """Raw S of one (H, W) image: sqrt(Gx^2 + Gy^2), float32."""
    h, w = image.shape
    padded = _pad_np(image)
    gx, gy = _correlate(padded, SOBEL_X, h, w), _correlate(padded, SOBEL_Y, h, w)
    return np.sqrt(gx * gx + gy * gy)[0]


def laplacian_np(image: np.ndarray) -> np.ndarray:
    """Raw L of one (H, W) image, float32."""
    h, w = image.shape
    return _correlate(_pad_np(image), LAPLACE, h, w)[0]


# ---------------------------------------------------------------- TensorFlow front-end

def _standardize_tf(x: "tf.Tensor") -> "tf.Tensor":
    import tensorflow as tf
    centred = x - tf.reduce_mean(x, axis=[1, 2], keepdims=True)
    std = tf.sqrt(tf.reduce_mean(tf.square(centred), axis=[1, 2], keepdims=True))
    return centred * tf.math.reciprocal(std + STD_EPS)


def add_features_tf(images: "tf.Tensor", feature_set: str) -> "tf.Tensor":
    """(B, H, W) float32 preprocessed images -> (B, H, W, C) with channels O[, S][, L].

    Shifted slices on (B, H, W): measured faster on CPU than a conv2d with 1 input channel.
    """
    import tensorflow as tf
    derived_channels(feature_set)
    images = tf.convert_to_tensor(images, tf.float32)
    padded = tf.pad(images, [[0, 0], [1, 1], [1, 1]], mode="REFLECT")
    return tf.stack(_channels(images, padded, feature_set, tf.sqrt, _standardize_tf), axis=-1)


# ---------------------------------------------------------------- JAX front-end

def _standardize_jax(x: "jax.Array") -> "jax.Array":
    import jax.numpy as jnp
    centred = x - jnp.mean(x, axis=(1, 2), keepdims=True)
    std = jnp.sqrt(jnp.mean(jnp.square(centred), axis=(1, 2), keepdims=True))
    return centred / (std + STD_EPS)


def add_features_jax(images: "jax.Array", feature_set: str) -> "jax.Array":
    """(B, H, W) or (B, H, W, 1) float images -> (B, H, W, C) with channels O[, S][, L]."""
    import jax.numpy as jnp
    derived_channels(feature_set)
    images = jnp.asarray(images, jnp.float32)
    if images.ndim == 4:
        if images.shape[-1] != 1:
            raise ValueError(f"expected one channel (O), got shape {images.shape}")
        images = images[..., 0]
    padded = jnp.pad(images, ((0, 0), (1, 1), (1, 1)), mode="reflect")
    return jnp.stack(_channels(images, padded, feature_set, jnp.sqrt, _standardize_jax), axis=-1)
