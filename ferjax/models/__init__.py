"""The study's two models, built by name."""
from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np

from ferjax.models.light import LightNet, fold_batch_norm, has_batch_norm
from ferjax.models.vgg13 import VGG13

MODELS = {"vgg13": VGG13, "light": LightNet}


def resolve_conv(conv: str = "auto") -> str:
    """"auto": XLA's convolution with sweep-aware vmap rules ("xla") on CPU (the fastest
    there, benchmarks/README.md), and the library convolution ("lax") on GPU/TPU."""
    if conv != "auto":
        return conv
    return "xla" if jax.default_backend() == "cpu" else "lax"


def build_model(name: str, conv: str = "auto", batch_norm: bool = True):
    return _build_model(name, resolve_conv(conv), batch_norm)


@functools.lru_cache(maxsize=None)   # one instance per (name, conv): jitted steps are reused
def _build_model(name: str, conv: str, batch_norm: bool):
    if name not in MODELS:
        raise ValueError(f"unknown model {name!r}; choose one of {', '.join(MODELS)}")
    if name == "light":
        return LightNet(conv=conv, batch_norm=batch_norm)
    return MODELS[name](conv=conv)


def inference_model(name: str, params: dict, batch_stats: dict | None = None, conv: str = "auto"):
    """(model, params) for inference, with batch norm folded into the convolutions, so that
    evaluate, predict and export apply one plain network: `model.apply({"params": p}, x)`."""
    if batch_stats and has_batch_norm(params):
        return build_model(name, conv, batch_norm=False), fold_batch_norm(params, batch_stats)
    return build_model(name, conv), params


def count_params(params) -> int:
    return int(sum(np.prod(p.shape) for p in jax.tree_util.tree_leaves(params)))


def init_variables(model, key, channels: int, image_size: int = 64) -> dict:
    """{"params": ...} and, for a model with batch norm, {"batch_stats": ...}."""
    x = jnp.zeros((1, image_size, image_size, channels), jnp.float32)
    return dict(model.init({"params": key}, x, train=False))


def feature_dim(model, channels: int, image_size: int = 64) -> int:
    """Width of the features the center loss sees (the model's second output)."""
    def f():
        variables = init_variables(model, jax.random.PRNGKey(0), channels, image_size)
        return model.apply(variables, jnp.zeros((1, image_size, image_size, channels)))[1]
    return jax.eval_shape(f).shape[-1]


def init_params(model, key, channels: int, image_size: int = 64):
    return init_variables(model, key, channels, image_size)["params"]


def flops_per_image(model, channels: int, image_size: int = 64) -> float:
    """Forward FLOPs of one image, from XLA's cost analysis of the compiled model."""
    params = jax.eval_shape(lambda: init_variables(model, jax.random.key(0), channels, image_size))
    x = jax.ShapeDtypeStruct((1, image_size, image_size, channels), jnp.float32)
    fwd = jax.jit(lambda p, x: model.apply(p, x)[0])
    cost = fwd.lower(params, x).compile().cost_analysis()
    cost = cost[0] if isinstance(cost, (list, tuple)) else cost
    return float(cost["flops"])
