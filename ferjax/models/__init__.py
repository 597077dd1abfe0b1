"""The study's two models, built by name."""
from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np

from ferjax.models.light import LightNet
from ferjax.models.vgg13 import VGG13

MODELS = {"vgg13": VGG13, "light": LightNet}


def resolve_conv(conv: str = "auto") -> str:
    """"auto": XLA's convolution with sweep-aware vmap rules ("xla") on CPU, where it measured
    fastest (benchmarks/README.md), and the library convolution ("lax") on GPU/TPU."""
    if conv != "auto":
        return conv
    return "xla" if jax.default_backend() == "cpu" else "lax"


def build_model(name: str, conv: str = "auto"):
    return _build_model(name, resolve_conv(conv))


@functools.lru_cache(maxsize=None)   # one instance per (name, conv): jitted steps are reused
def _build_model(name: str, conv: str):
    if name not in MODELS:
        raise ValueError(f"unknown model {name!r}; choose one of {', '.join(MODELS)}")
    return MODELS[name](conv=conv)


def count_params(params) -> int:
    return int(sum(np.prod(p.shape) for p in jax.tree_util.tree_leaves(params)))


def init_params(model, key, channels: int, image_size: int = 64):
    x = jnp.zeros((1, image_size, image_size, channels), jnp.float32)
    return model.init({"params": key}, x, train=False)["params"]


def flops_per_image(model, channels: int, image_size: int = 64) -> float:
    """Forward FLOPs of one image, from XLA's cost analysis of the compiled model."""
    params = jax.eval_shape(lambda: init_params(model, jax.random.key(0), channels, image_size))
    x = jax.ShapeDtypeStruct((1, image_size, image_size, channels), jnp.float32)
    fwd = jax.jit(lambda p, x: model.apply({"params": p}, x)[0])
    cost = fwd.lower(params, x).compile().cost_analysis()
    cost = cost[0] if isinstance(cost, (list, tuple)) else cost
    return float(cost["flops"])
