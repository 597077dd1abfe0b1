"""The light model: 0.36M parameters (1/24 of VGG13), fast enough to train a full FERPlus
epoch (25,045 images) in well under 90 s on a 2-core CPU.

The study's light network is not public. This one keeps VGG's shape (3x3 convs, ReLU, 2x2
max pooling, dropout) but spends little compute at full resolution, where a CPU is slowest
per FLOP, and puts its parameters late, where they are cheap:

  input 64x64xC
  space-to-depth 2x2 -> 32x32x4C   (with the first conv: a 6x6, stride-2 receptive field)
  conv3x3 4C->24  | pool -> 16x16    1.8 MFLOP x C
  conv3x3 24->48  | pool -> 8x8      5.3 MFLOP
  conv3x3 48->96  | pool -> 4x4      5.3 MFLOP
  conv3x3 96->128                    3.5 MFLOP
  dropout .25 | fc 2048->96 (penultimate features, for the center loss) | dropout .5 | fc 8

Parameters: 361,072 with one input channel, 864 more per extra channel (O-S-L: 362,800).
Forward: 14.0 MFLOP per image for O (XLA's count of the plain convolution; a multiply-add
counts 2). Measured here (training loop, defaults, 2 cores): a 24 s FERPlus epoch, 1,025 images/s.
"""
from __future__ import annotations

import flax.linen as nn
import jax

from ferjax.classes import NUM_CLASSES
from ferjax.models.conv import KERNEL_INIT, conv3x3, max_pool2

CONV_WIDTHS = (24, 48, 96)
TOP_WIDTH = 128
FEATURE_DIM = 96


def space_to_depth2(x: jax.Array) -> jax.Array:
    b, h, w, c = x.shape
    x = x.reshape(b, h // 2, 2, w // 2, 2, c).transpose(0, 1, 3, 2, 4, 5)
    return x.reshape(b, h // 2, w // 2, 4 * c)


class LightNet(nn.Module):
    conv: str = "matmul"
    num_classes: int = NUM_CLASSES

    @nn.compact
    def __call__(self, x: jax.Array, train: bool = False):
        x = space_to_depth2(x)
        for i, width in enumerate(CONV_WIDTHS):
            x = nn.relu(conv3x3(width, self.conv, name=f"conv{i + 1}")(x))
            x = max_pool2(x, self.conv)
        x = nn.relu(conv3x3(TOP_WIDTH, self.conv, name=f"conv{len(CONV_WIDTHS) + 1}")(x))
        x = nn.Dropout(0.25, deterministic=not train)(x.reshape(x.shape[0], -1))
        features = nn.relu(nn.Dense(FEATURE_DIM, kernel_init=KERNEL_INIT, name="fc")(x))
        x = nn.Dropout(0.5, deterministic=not train)(features)
        logits = nn.Dense(self.num_classes, kernel_init=KERNEL_INIT, name="output")(x)
        return logits, features
