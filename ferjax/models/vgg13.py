"""VGG13 of the FERPlus reference (Barsoum et al. 2016), 64x64xC input.

conv3x3 64,64 | pool | drop .25 | conv 128,128 | pool | drop .25 | conv 256 x3 | pool |
drop .25 | conv 256 x3 | pool | drop .25 | fc 1024 | drop .5 | fc 1024 | drop .5 | fc 8.
8,757,704 parameters with one input channel, 576 more per extra channel.
Forward-pass cost: `flops_per_image`.

batch_norm=True adds batch norm after every convolution (3,840 more parameters), which the
reference does not have; the quick profile uses it because the plain network takes far more
steps to leave chance than a few minutes on a CPU give (issue #16). `fold_batch_norm`
(models/batch_norm.py) removes it again for inference. dropout=False trains without the
dropout layers: the quick profile's few hundred steps are too few for the noise they add, and
a center loss on features computed from dropped-out inputs can remove that noise only by
shrinking the features (at lambda 1 the quick run collapsed to chance).
"""
from __future__ import annotations

import flax.linen as nn
import jax

from ferjax.classes import NUM_CLASSES
from ferjax.models.batch_norm import batch_norm
from ferjax.models.conv import KERNEL_INIT, conv3x3, max_pool2
from ferjax.models.dense import Dense
from ferjax.models.dropout import Dropout

BLOCKS = ((64, 64), (128, 128), (256, 256, 256), (256, 256, 256))
FC = (1024, 1024)


class VGG13(nn.Module):
    conv: str = "matmul"
    num_classes: int = NUM_CLASSES
    batch_norm: bool = False
    dropout: bool = True           # False: trained without dropout (the quick profile)

    @nn.compact
    def __call__(self, x: jax.Array, train: bool = False):
        for b, widths in enumerate(BLOCKS):
            for i, width in enumerate(widths):
                name = f"conv{b + 1}_{i + 1}"
                x = conv3x3(width, self.conv, name=name)(x)
                if self.batch_norm:
                    x = batch_norm(name, train)(x)
                x = nn.relu(x)
            x = max_pool2(x, self.conv)
            x = Dropout(0.25, deterministic=not (train and self.dropout))(x)
        x = x.reshape(x.shape[0], -1)
        features = x
        for i, width in enumerate(FC):
            features = Dense(width, kernel_init=KERNEL_INIT, name=f"fc{i + 5}")(x)
            x = Dropout(0.5, deterministic=not (train and self.dropout))(nn.relu(features))
        logits = Dense(self.num_classes, kernel_init=KERNEL_INIT, name="output")(x)
        return logits, features
