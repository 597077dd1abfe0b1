"""Batch norm after a convolution, and its folding into that convolution for inference.

A convolution named `conv...` is normalised by the BatchNorm named `bn...` (conv3 -> bn3,
conv2_1 -> bn2_1), so one fold serves both models.
"""
from __future__ import annotations

import flax.linen as nn
import jax

BN_MOMENTUM = 0.9
BN_EPSILON = 1e-5


def batch_norm(conv_name: str, train: bool) -> nn.BatchNorm:
    return nn.BatchNorm(use_running_average=not train, momentum=BN_MOMENTUM, epsilon=BN_EPSILON,
                        name=conv_name.replace("conv", "bn", 1))


def has_batch_norm(params: dict) -> bool:
    return any(k.startswith("bn") for k in params)


def fold_batch_norm(params: dict, batch_stats: dict) -> dict:
    """Parameters of the same model built with batch_norm=False computing what the BN model
    computes at inference: BN(conv(x) + b) = conv(x) * s + (b - mean) * s + beta,
    s = gamma / sqrt(var + eps)."""
    out = {k: v for k, v in params.items() if not k.startswith("bn")}
    for bn_name, bn in params.items():
        if not bn_name.startswith("bn"):
            continue
        name, stats = bn_name.replace("bn", "conv", 1), batch_stats[bn_name]
        scale = bn["scale"] * jax.lax.rsqrt(stats["var"] + BN_EPSILON)
        conv = params[name]
        out[name] = {"kernel": conv["kernel"] * scale,
                     "bias": (conv["bias"] - stats["mean"]) * scale + bn["bias"]}
    return out
