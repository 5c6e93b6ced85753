"""ResNet with BatchNorm for small images, CIFAR-style: a 3x3 stride-1 stem and no max-pool,
so 32x32 inputs keep their resolution into the first stage (He et al. 2016, section 4.2, with
the ImageNet BasicBlock stages). The defaults are ResNet18: stages of (2, 2, 2, 2) BasicBlocks
of widths (64, 128, 256, 512), the layout of the common PyTorch CIFAR ResNet18 (11,173,962
parameters with 10 classes).
"""

from collections.abc import Sequence

import flax.linen as nn
import jax

from research.errors import UserError
from research.models.layers import batch_norm

PAD_1 = ((1, 1), (1, 1))  # PyTorch's padding=1: a stride-2 3x3 conv sees the same pixels.


class BasicBlock(nn.Module):
    """Two 3x3 convs with a residual connection; a 1x1 conv projects the shortcut when the
    stride or width changes."""

    features: int
    strides: int = 1

    @nn.compact
    def __call__(self, x_BxHxWxC: jax.Array, *, train: bool) -> jax.Array:
        strides = (self.strides, self.strides)
        y = nn.Conv(self.features, (3, 3), strides, padding=PAD_1, use_bias=False, name="conv_0")(x_BxHxWxC)
        y = nn.relu(batch_norm(train, name="norm_0")(y))
        y = nn.Conv(self.features, (3, 3), padding=PAD_1, use_bias=False, name="conv_1")(y)
        y = batch_norm(train, name="norm_1")(y)
        shortcut = x_BxHxWxC
        if shortcut.shape != y.shape:
            shortcut = nn.Conv(self.features, (1, 1), strides, use_bias=False, name="shortcut_conv")(shortcut)
            shortcut = batch_norm(train, name="shortcut_norm")(shortcut)
        return nn.relu(y + shortcut)


class ResNet(nn.Module):
    num_classes: int
    stage_sizes: Sequence[int] = (2, 2, 2, 2)  # BasicBlocks a stage; (2, 2, 2, 2) is ResNet18.
    widths: Sequence[int] = (64, 128, 256, 512)  # Channels a stage; stages after the first halve H, W.

    @nn.compact
    def __call__(self, x_BxHxWxC: jax.Array, *, train: bool) -> jax.Array:
        if len(self.stage_sizes) != len(self.widths):
            raise UserError(f"resnet: stage_sizes {tuple(self.stage_sizes)} and widths "
                            f"{tuple(self.widths)} need one entry a stage each; give both the same length")
        x = nn.Conv(self.widths[0], (3, 3), padding=PAD_1, use_bias=False, name="stem_conv")(x_BxHxWxC)
        x = nn.relu(batch_norm(train, name="stem_norm")(x))
        for stage, (blocks, width) in enumerate(zip(self.stage_sizes, self.widths, strict=True)):
            for block in range(blocks):
                strides = 2 if stage > 0 and block == 0 else 1
                x = BasicBlock(width, strides, name=f"stage{stage}_block{block}")(x, train=train)
        x_BxD = x.mean(axis=(1, 2))
        return nn.Dense(self.num_classes, name="head")(x_BxD)
