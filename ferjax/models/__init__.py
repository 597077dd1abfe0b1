"""The study's two models, built by name."""
from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np

from ferjax.config import check_light_layers
from ferjax.models.batch_norm import fold_batch_norm, has_batch_norm
from ferjax.models.light import DEFAULT_LIGHT_LAYERS, LightNet
from ferjax.models.vgg13 import VGG13

MODELS = {"vgg13": VGG13, "light": LightNet}


def resolve_conv(conv: str = "auto") -> str:
    """"auto": XLA's convolution with sweep-aware vmap rules ("xla") on CPU (the fastest
    there, benchmarks/README.md), and the library convolution ("lax") on GPU/TPU."""
    if conv != "auto":
        return conv
    return "xla" if jax.default_backend() == "cpu" else "lax"


def default_batch_norm(name: str) -> bool:
    """Whether the model is trained with batch norm unless told otherwise (light: yes)."""
    _check_name(name)
    return MODELS[name].batch_norm


def build_model(name: str, conv: str = "auto", batch_norm: bool | None = None,
                dropout: bool = True, light_layers: str = DEFAULT_LIGHT_LAYERS):
    """batch_norm None: the model's default; False also builds the inference twin of a
    batch-norm model, which `fold_batch_norm` fills. dropout: used in training only.
    light_layers: the light model's layer table (ferjax/config.py); VGG13 ignores it."""
    _check_name(name)
    check_light_layers(light_layers)
    return _build_model(name, resolve_conv(conv),
                        default_batch_norm(name) if batch_norm is None else batch_norm, dropout,
                        light_layers if name == "light" else None)


def model_of(cfg):
    """The training network of a run's ModelConfig."""
    return build_model(cfg.name, cfg.conv, cfg.batch_norm, cfg.dropout, cfg.light_layers)


@functools.lru_cache(maxsize=None)   # one instance per configuration: jitted steps are reused
def _build_model(name: str, conv: str, batch_norm: bool, dropout: bool, light_layers: str | None):
    extra = {} if light_layers is None else {"layers": light_layers}
    return MODELS[name](conv=conv, batch_norm=batch_norm, dropout=dropout, **extra)


def _check_name(name: str) -> None:
    if name not in MODELS:
        raise ValueError(f"unknown model {name!r}; choose one of {', '.join(MODELS)}")


def inference_model(name: str, params: dict, batch_stats: dict | None = None, conv: str = "auto",
                    light_layers: str = DEFAULT_LIGHT_LAYERS):
    """(model, params) for inference, with batch norm folded into the convolutions, so that
    evaluate, predict and export apply one plain network: `model.apply({"params": p}, x)`."""
    model = build_model(name, conv, batch_norm=False, light_layers=light_layers)
    if batch_stats and has_batch_norm(params):
        return model, fold_batch_norm(params, batch_stats)
    return model, params


def count_params(params) -> int:
    return int(sum(np.prod(p.shape) for p in jax.tree_util.tree_leaves(params)))


def init_variables(model, key, channels: int, image_size: int = 64) -> dict:
    """{"params": ...} and, for a model with batch norm, {"batch_stats": ...}. Compiled as one
    function: the same values as op-by-op init, which compiles each op alone (more memory)."""
    x = jnp.zeros((1, image_size, image_size, channels), jnp.float32)
    return dict(jax.jit(lambda k: model.init({"params": k}, x, train=False))(key))


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
