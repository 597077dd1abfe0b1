"""The FERPlus reference preprocessing and augmentation as pure JAX functions, run inside the
jitted train and eval steps (on the device, as the fastest CIFAR trainers do), so the
training loop is never waiting on a host input pipeline.

Same chain, same ranges and same conventions as the tf.data ops of `ferjax.data.pipeline`
(which stays the host-side path of predict and export, and the reference the tests compare
this module against):

  uint8 (B, 48, 48) faces
  -> `warp`: one affine warp that resizes 48 -> 64 and applies the random shift, rotation,
     skew, scale and horizontal flip (bilinear, TF's REFLECT coordinate mapping)
  -> `round_to_uint8` -> `equalize_histogram` -> `subtract_plane` -> `unit_std`
  -> O[, S][, L] channels (`ferjax.features.add_features_jax`)

Each op is a small function of arrays; `preprocess` composes them.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp

from ferjax import features
from ferjax.data.warp import MAX_ANGLE, MAX_SCALE, MAX_SHIFT, MAX_SKEW, crop_transform, plane_basis


def random_warp_params(key: jax.Array, batch: int, out_size: int) -> dict[str, jax.Array]:
    """The reference `distort_img` draws for a batch (see pipeline.random_warp_params)."""
    u = jax.random.uniform(key, (batch, 10))
    sym = 2.0 * u - 1.0

    def scale(draw, invert):
        s = 1.0 + (MAX_SCALE - 1.0) * draw
        return jnp.where(invert < 0.5, 1.0 / s, s)

    return {"shift_y": out_size * MAX_SHIFT * sym[:, 0], "shift_x": out_size * MAX_SHIFT * sym[:, 1],
            "angle": MAX_ANGLE * sym[:, 2], "skew_y": MAX_SKEW * sym[:, 3],
            "skew_x": MAX_SKEW * sym[:, 4], "scale_y": scale(u[:, 5], u[:, 6]),
            "scale_x": scale(u[:, 7], u[:, 8]), "flip": (u[:, 9] < 0.5).astype(jnp.float32)}


def identity_warp_params(batch: int) -> dict[str, jax.Array]:
    zeros, ones = jnp.zeros((batch,)), jnp.ones((batch,))
    return {"shift_y": zeros, "shift_x": zeros, "angle": zeros, "skew_y": zeros,
            "skew_x": zeros, "scale_y": ones, "scale_x": ones, "flip": zeros}


def sampling_grid(params: dict[str, jax.Array], in_size: int, out_size: int) -> tuple[jax.Array, jax.Array]:
    """Input (row, col) coordinates (B, out, out) sampled by each output pixel: the
    reference `crop_img` transform p @ T + offset, then the flip (output column W-1-x)."""
    t, offset = crop_transform(params, in_size, out_size, jnp.cos, jnp.sin, jnp.stack, jnp.einsum)
    r = jnp.arange(out_size, dtype=jnp.float32)
    c = jnp.where(params["flip"][:, None] > 0.5, (out_size - 1) - r, r)        # (B, out)
    rows = (r[None, :, None] * t[:, None, None, 0, 0] + c[:, None, :] * t[:, None, None, 1, 0]
            + offset[:, None, None, 0])
    cols = (r[None, :, None] * t[:, None, None, 0, 1] + c[:, None, :] * t[:, None, None, 1, 1]
            + offset[:, None, None, 1])
    return rows, cols


def reflect_coordinate(x: jax.Array, size: int) -> jax.Array:
    """TF's REFLECT fill for a continuous coordinate ([dcba|abcd|dcba]), clamped to [0, size-1]."""
    period = 2 * size
    x = jnp.where(x < 0, -x - 1.0, x)
    x = jnp.mod(x, period)
    x = jnp.where(x > size - 1, period - x - 1.0, x)
    return jnp.clip(x, 0.0, size - 1.0)


def bilinear(images: jax.Array, rows: jax.Array, cols: jax.Array) -> jax.Array:
    """Samples (B, H, W) images at (B, h, w) coordinates, bilinear, REFLECT border."""
    b, h, w = images.shape
    y, x = reflect_coordinate(rows, h), reflect_coordinate(cols, w)
    y0, x0 = jnp.floor(y), jnp.floor(x)
    wy, wx = y - y0, x - x0
    y0, x0 = y0.astype(jnp.int32), x0.astype(jnp.int32)
    y1, x1 = jnp.minimum(y0 + 1, h - 1), jnp.minimum(x0 + 1, w - 1)
    flat = images.reshape(b, h * w).astype(jnp.float32)

    def at(yy, xx):
        return jnp.take_along_axis(flat, (yy * w + xx).reshape(b, -1), axis=1).reshape(yy.shape)

    top = (1.0 - wx) * at(y0, x0) + wx * at(y0, x1)
    bottom = (1.0 - wx) * at(y1, x0) + wx * at(y1, x1)
    return (1.0 - wy) * top + wy * bottom


def warp(images: jax.Array, params: dict[str, jax.Array], out_size: int) -> jax.Array:
    rows, cols = sampling_grid(params, images.shape[-1], out_size)
    return bilinear(images, rows, cols)


def round_to_uint8(images: jax.Array) -> jax.Array:
    return jnp.clip(jnp.floor(images + 0.5), 0, 255).astype(jnp.uint8)


def equalize_histogram(images: jax.Array) -> jax.Array:
    """uint8 (B, H, W) -> float32 in [-1, 1]: each image's own 256-bin cdf at each pixel."""
    b = images.shape[0]
    # Each pixel's bin in one flat (B x 256) vector: XLA:CPU scatters into and gathers from a
    # flat vector faster than along a batch dimension (benchmarks/README.md, "The training
    # loop and its augmentation").
    bins = (images.reshape(b, -1).astype(jnp.int32)
            + 256 * jnp.arange(b, dtype=jnp.int32)[:, None]).reshape(-1)
    hist = jnp.zeros((b * 256,), jnp.float32).at[bins].add(1.0, mode="promise_in_bounds")
    cdf = jnp.cumsum(hist.reshape(b, 256), axis=-1)
    cdf = cdf * (2.0 / cdf[:, -1:]) - 1.0
    return jnp.take(cdf.reshape(-1), bins, mode="clip").reshape(images.shape)


def subtract_plane(images: jax.Array) -> jax.Array:
    b, h, w = images.shape
    a, a_pinv = plane_basis(h, w)
    flat = images.reshape(b, h * w)
    return (flat - (flat @ a_pinv.T) @ a.T).reshape(images.shape)


def unit_std(images: jax.Array) -> jax.Array:
    std = jnp.sqrt(jnp.mean(jnp.square(images), axis=(1, 2), keepdims=True))
    return jnp.where(std > 1e-6, images / jnp.maximum(std, 1e-6), images)


def preprocess(images: jax.Array, params: dict[str, jax.Array], feature_set: str,
               image_size: int) -> jax.Array:
    """uint8 (B, 48, 48) faces -> float32 (B, size, size, C): the whole reference chain."""
    x = round_to_uint8(warp(images, params, image_size))
    x = unit_std(subtract_plane(equalize_histogram(x)))
    return features.add_features_jax(x, feature_set)


def augment(key: jax.Array, images: jax.Array, feature_set: str, image_size: int) -> jax.Array:
    """A training batch: random reference augmentation, then preprocessing."""
    return preprocess(images, random_warp_params(key, images.shape[0], image_size),
                      feature_set, image_size)


def evaluation_inputs(images: jax.Array, feature_set: str, image_size: int) -> jax.Array:
    """An evaluation batch: a plain resize, then preprocessing."""
    return preprocess(images, identity_warp_params(images.shape[0]), feature_set, image_size)
