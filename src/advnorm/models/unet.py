"""The 3-D U-Net used for both G (normalizer) and S (segmenter), paper Fig. 2.

Blocks are conv3 -> BatchNorm -> ReLU twice, max-pool down, upsample + concatenation
up, a 1x1x1 output conv (as the authors configured it). BatchNorm, not instance or
group norm, on purpose: in eval mode BatchNorm uses running statistics, so the
output for a voxel does not depend on the window it is computed in, and a net
trained on 32^3 patches can be applied to a whole volume at once (see
docs/architecture.md; instance norm drops whole-volume Dice to ~0.3 here).
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from advnorm.config import total_stride
from advnorm.models.conv3d import Conv3d


class DoubleConv(nn.Sequential):
    def __init__(self, in_ch: int, out_ch: int) -> None:
        super().__init__(
            Conv3d(in_ch, out_ch, 3, padding=1, bias=False),
            nn.BatchNorm3d(out_ch),
            nn.ReLU(inplace=True),
            Conv3d(out_ch, out_ch, 3, padding=1, bias=False),
            nn.BatchNorm3d(out_ch),
            nn.ReLU(inplace=True),
        )


class UNet3D(nn.Module):
    """A fully convolutional 3-D U-Net; inputs must be divisible by ``2 ** (len(widths) - 1)``.

    ``output``: ``"logits"`` for S (softmax is applied by the loss and at inference); for G
    ``"sigmoid"`` (the image is ``top * sigmoid(u)``) or ``"residual"`` (``top * sigmoid(logit(x / top) + u)``,
    the network's output ``u`` a correction in logit space, so G is the identity when ``u = 0``). Either way
    the normalized image is defined in (0, ``top``) in training and inference alike (the authors applied a
    ReLU in training only). docs/method.md has the measurement that chose the default. ``"additive"``
    (``x + u``, unbounded) is G's form for an unbounded input such as the z-scored image: the identity when
    ``u = 0``, otherwise a correction at each voxel that depends on its neighbourhood, not only on its intensity.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        widths: tuple[int, ...],
        output: Literal["logits", "sigmoid", "residual", "additive"] = "logits",
        top: float = 1.0,
    ) -> None:
        super().__init__()
        self.widths = tuple(widths)
        self.output = output
        self.top = float(top)
        self.down = nn.ModuleList()
        ch = in_channels
        for w in widths:
            self.down.append(DoubleConv(ch, w))
            ch = w
        self.up = nn.ModuleList(
            DoubleConv(widths[i] + widths[i + 1], widths[i]) for i in reversed(range(len(widths) - 1))
        )
        self.head = Conv3d(widths[0], out_channels, 1)

    @property
    def stride(self) -> int:
        """Inputs must be divisible by this (the config checks patch sizes against it too)."""
        return total_stride(self.widths)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x_in = x
        skips = []
        for i, block in enumerate(self.down):
            if i:
                x = F.max_pool3d(x, 2)
            x = block(x)
            skips.append(x)
        skips.pop()
        for block in self.up:
            skip = skips.pop()
            x = F.interpolate(x, size=skip.shape[2:], mode="nearest")
            x = block(torch.cat([skip, x], dim=1))
        return output_transform(self.head(x), x_in, self.output, self.top)


class StridedStemUNet3D(nn.Module):
    """S with a strided stem (``model.segmenter_stem = "strided"``): a stride-2 convolution, then a
    :class:`UNet3D` at half resolution, then its features up-sampled (trilinear) to the input's resolution,
    concatenated with the input image and fused by one convolution before the 1x1x1 head.

    The full-resolution double convolutions of the plain U-Net are most of its time at narrow widths (memory-bound
    convolutions of 8 channels over every voxel); here one convolution remains there, and the input image keeps the
    boundaries sharp. BatchNorm everywhere, so whole-volume inference works as for :class:`UNet3D`.
    """

    def __init__(self, in_channels: int, out_channels: int, widths: tuple[int, ...]) -> None:
        super().__init__()
        self.widths = tuple(widths)
        w0 = self.widths[0]
        self.stem = nn.Sequential(
            Conv3d(in_channels, w0, 3, stride=2, padding=1, bias=False), nn.BatchNorm3d(w0), nn.ReLU(inplace=True)
        )
        self.body = UNet3D(w0, w0, self.widths, output="logits")  # its 1x1x1 head gives w0 features, not classes
        self.fuse = nn.Sequential(
            Conv3d(w0 + in_channels, w0, 3, padding=1, bias=False), nn.BatchNorm3d(w0), nn.ReLU(inplace=True)
        )
        self.head = Conv3d(w0, out_channels, 1)

    @property
    def stride(self) -> int:
        return 2 * total_stride(self.widths)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.body(self.stem(x))
        h = F.interpolate(h, size=x.shape[2:], mode="trilinear", align_corners=False)
        return self.head(self.fuse(torch.cat([x, h], dim=1)))


RESIDUAL_EPS = 1e-3
"""``logit`` clamps ``x / top`` to [eps, 1 - eps]: an input of 0 enters as logit(1e-3) = -6.9, not -inf."""


def output_transform(u: torch.Tensor, x: torch.Tensor, output: str, top: float) -> torch.Tensor:
    """The U-Net's last step: head output ``u`` (network input ``x``) -> logits, or G's image in (0, top)."""
    if output == "sigmoid":
        return top * torch.sigmoid(u)
    if output == "residual":
        return top * torch.sigmoid(torch.logit(x / top, eps=RESIDUAL_EPS) + u)
    if output == "additive":
        return x + u
    return u


def kaiming_init(module: nn.Module) -> None:
    """Kaiming (He) initialization of every conv and linear layer (paper sec. 3.3)."""
    for m in module.modules():
        if isinstance(m, (nn.Conv3d, nn.Linear)):
            nn.init.kaiming_normal_(m.weight, nonlinearity="relu")
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, (nn.BatchNorm3d, nn.GroupNorm)):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
