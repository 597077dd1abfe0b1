"""VGG13 of the FERPlus reference (Barsoum et al. 2016), 64x64xC input.

conv3x3 64,64 | pool | drop .25 | conv 128,128 | pool | drop .25 | conv 256 x3 | pool |
drop .25 | conv 256 x3 | pool | drop .25 | fc 1024 | drop .5 | fc 1024 | drop .5 | fc 8.
8,757,704 parameters with one input channel, 576 more per extra channel.
Forward-pass cost: `flops_per_image`.
"""
from __future__ import annotations

import flax.linen as nn
import jax

from ferjax.classes import NUM_CLASSES
from ferjax.models.conv import KERNEL_INIT, conv3x3, max_pool2

BLOCKS = ((64, 64), (128, 128), (256, 256, 256), (256, 256, 256))
FC = (1024, 1024)


class VGG13(nn.Module):
    conv: str = "matmul"
    num_classes: int = NUM_CLASSES

    @nn.compact
    def __call__(self, x: jax.Array, train: bool = False):
        for b, widths in enumerate(BLOCKS):
            for i, width in enumerate(widths):
                x = nn.relu(conv3x3(width, self.conv, name=f"conv{b + 1}_{i + 1}")(x))
            x = max_pool2(x, self.conv)
            x = nn.Dropout(0.25, deterministic=not train)(x)
        x = x.reshape(x.shape[0], -1)
        features = x
        for i, width in enumerate(FC):
            features = nn.Dense(width, kernel_init=KERNEL_INIT, name=f"fc{i + 5}")(x)
            x = nn.Dropout(0.5, deterministic=not train)(nn.relu(features))
        logits = nn.Dense(self.num_classes, kernel_init=KERNEL_INIT, name="output")(x)
        return logits, features
