"""Dropout whose mask is a counter-based hash of one random word per call.

flax's `nn.Dropout` draws one threefry output per element; XLA:CPU runs threefry as a rolled
loop and then reorders its bits with the activation they mask (for the weight gradient's
layout), which cost VGG13's training step more than its dropout is worth. Here a single
32-bit seed is drawn per call from the same 'dropout' stream, and each element's bit comes
from a murmur3 finaliser of its index mixed with that seed: a few integer ops that XLA
fuses into whatever consumes the mask."""
from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

_GOLDEN = np.uint32(0x9E3779B9)


def _fmix32(h: jax.Array) -> jax.Array:
    h = h ^ (h >> 16)
    h = h * np.uint32(0x85EBCA6B)
    h = h ^ (h >> 13)
    h = h * np.uint32(0xC2B2AE35)
    return h ^ (h >> 16)


def hashed_bits(seed: jax.Array, shape: tuple[int, ...]) -> jax.Array:
    """uint32 bits of `shape`, one per element, from a uint32 seed of shape (2,)."""
    size = int(np.prod(shape))
    if size >= 2 ** 32:
        raise ValueError(f"hashed_bits: {size} elements do not fit a 32-bit counter")
    index = jax.lax.iota(jnp.uint32, size).reshape(shape)
    return _fmix32(_fmix32(index * _GOLDEN + seed[0]) ^ seed[1])


def keep_mask(key: jax.Array, rate: float, shape: tuple[int, ...]) -> jax.Array:
    """True where an element is kept, each with probability 1 - rate (to 2**-32)."""
    seed = jax.random.bits(key, (2,), jnp.uint32)
    threshold = np.uint32(min(round((1.0 - rate) * 2 ** 32), 2 ** 32 - 1))
    return hashed_bits(seed, shape) < threshold


class Dropout(nn.Module):
    """`nn.Dropout(rate, deterministic)` with the hashed mask."""
    rate: float
    deterministic: bool = False

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        if self.deterministic or self.rate == 0.0:
            return x
        if self.rate >= 1.0:
            return jnp.zeros_like(x)
        keep = keep_mask(self.make_rng("dropout"), self.rate, x.shape)
        return jnp.where(keep, x / (1.0 - self.rate), jnp.zeros_like(x))
