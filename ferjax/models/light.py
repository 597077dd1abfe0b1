"""The light model: 0.36M parameters (1/25 of VGG13).

The study uses "the models proposed by Pandey et al." (0.36M parameters) without a layer
table; none is public. This one keeps the budget and VGG's shape (3x3 convolutions, ReLU,
2x2 max pooling, dropout before each dense layer) and was chosen by measurement on FERPlus
(experiments/light_model_search/). Its layer table, "pooled" (candidate v12 of the search):

  input 64x64xC
  space-to-depth 2x2 -> 32x32x4C   (with the first conv: a 6x6, stride-2 receptive field)
  conv3x3 4C->24, BN, ReLU | pool -> 16x16
  conv3x3 24->48, 48->48, BN, ReLU after each | pool -> 8x8
  conv3x3 48->96, 96->96, BN, ReLU after each | pool -> 4x4
  conv3x3 96->192, BN, ReLU | global average pooling -> 192
  dropout .25 | fc 192->128 (the center loss's features), ReLU | dropout .5 | fc 8

It spends little compute at full resolution, where a CPU is slowest per FLOP, and, pooling
the last map instead of flattening it, spends the parameters a flattened 4x4 map would take
in its dense layer on convolutions instead. The first table, "flat" (until 2026-12-07: one
convolution per stage, 24-48-96 and 128 at 4x4, the 4x4x128 map flattened into fc 96), stays
so that the runs trained with it load; a saved config without `light_layers` is one of them.

Departures from the study's description: batch norm (the study names none), the
space-to-depth stem, global average pooling, and the center loss taken on the fc layer's
output before its ReLU (after the ReLU, a center loss with the study's lambda 0.5-1 drove
every feature to zero on FERPlus: dead units, and the run stuck at the majority class). The
fast profile trains it with its dropout layers off (it underfits with them; configs/fast.py).
`fold_batch_norm` (models/batch_norm.py) turns a trained model into the same network without
batch norm (each BN folded into its convolution) for inference.
"""
from __future__ import annotations

import flax.linen as nn
import jax

from ferjax.classes import NUM_CLASSES
from ferjax.config import LIGHT_LAYERS, ModelConfig
from ferjax.models.batch_norm import batch_norm
from ferjax.models.conv import KERNEL_INIT, conv3x3, max_pool2
from ferjax.models.dense import Dense
from ferjax.models.dropout import Dropout


DEFAULT_LIGHT_LAYERS = ModelConfig.light_layers


def space_to_depth2(x: jax.Array) -> jax.Array:
    b, h, w, c = x.shape
    x = x.reshape(b, h // 2, 2, w // 2, 2, c).transpose(0, 1, 3, 2, 4, 5)
    return x.reshape(b, h // 2, w // 2, 4 * c)


class LightNet(nn.Module):
    conv: str = "xla"
    num_classes: int = NUM_CLASSES
    batch_norm: bool = True      # False: the inference twin that `fold_batch_norm` fills
    dropout: bool = True
    layers: str = DEFAULT_LIGHT_LAYERS

    @nn.compact
    def __call__(self, x: jax.Array, train: bool = False):
        table = LIGHT_LAYERS[self.layers]
        x = space_to_depth2(x)
        for i, width in enumerate(table.widths):
            name = f"conv{i + 1}"
            x = conv3x3(width, self.conv, name=name)(x)
            if self.batch_norm:
                x = batch_norm(name, train)(x)
            x = nn.relu(x)
            if i + 1 in table.pool_after:
                x = max_pool2(x, self.conv)
        x = x.mean(axis=(1, 2)) if table.pooled else x.reshape(x.shape[0], -1)
        x = Dropout(0.25, deterministic=not (train and self.dropout))(x)
        features = Dense(table.fc, kernel_init=KERNEL_INIT, name="fc")(x)
        x = Dropout(0.5, deterministic=not (train and self.dropout))(nn.relu(features))
        logits = Dense(self.num_classes, kernel_init=KERNEL_INIT, name="output")(x)
        return logits, features
