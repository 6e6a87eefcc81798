"""U-Net (Ronneberger et al. 2015) as the course teaches it, with same-padded convolutions."""

import copy
import math

import torch
from omegaconf import DictConfig, OmegaConf
from torch import nn

from segexp.errors import SegexpError


def double_conv(in_channels: int, out_channels: int) -> nn.Sequential:
    """(3x3 conv -> BatchNorm -> ReLU) twice; bias is redundant before BatchNorm."""
    return nn.Sequential(
        nn.Conv2d(in_channels, out_channels, 3, padding=1, bias=False),
        nn.BatchNorm2d(out_channels),
        nn.ReLU(inplace=True),
        nn.Conv2d(out_channels, out_channels, 3, padding=1, bias=False),
        nn.BatchNorm2d(out_channels),
        nn.ReLU(inplace=True),
    )


class Up(nn.Module):
    """Upsample, match the skip's size (odd sizes round up when pooled), concat, convolve."""

    def __init__(self, in_channels: int, out_channels: int, bilinear: bool) -> None:
        super().__init__()
        if bilinear:
            self.up = nn.Sequential(
                nn.Upsample(scale_factor=2, mode="bilinear", align_corners=False),
                nn.Conv2d(in_channels, in_channels // 2, 1),
            )
        else:
            self.up = nn.ConvTranspose2d(in_channels, in_channels // 2, 2, stride=2)
        self.conv = double_conv(in_channels // 2 + out_channels, out_channels)

    def forward(self, x: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        x = self.up(x)
        # Pooling rounds odd sizes up, so the upsampled map is as large as the skip or larger:
        # crop it to the skip, the odd pixel from the top/left. Slicing, not `if` or negative
        # padding, so a traced or exported (ONNX) graph aligns correctly at every input size.
        height, width = skip.shape[-2], skip.shape[-1]
        top, left = (x.shape[-2] - height + 1) // 2, (x.shape[-1] - width + 1) // 2
        x = x[..., top : top + height, left : left + width]
        return self.conv(torch.cat([skip, x], dim=1))


class UNet(nn.Module):
    """Encoder of ``depth`` poolings, widths ``base_channels * 2**level``; any H and W work."""

    def __init__(
        self,
        in_channels: int,
        num_classes: int,
        depth: int = 4,
        base_channels: int = 32,
        bilinear: bool = False,
    ) -> None:
        super().__init__()
        if depth == "auto":
            raise SegexpError(
                "model.net.depth=auto is decided from dataset.image_size when a run starts "
                "(segexp.models.unet.resolve_auto_depth): build the model from that config"
            )
        if depth < 1 or base_channels < 1:
            raise ValueError(f"depth and base_channels must be >= 1, got {depth}, {base_channels}")
        widths = [base_channels * 2**level for level in range(depth + 1)]
        self.stem = double_conv(in_channels, widths[0])
        self.down = nn.ModuleList(
            nn.Sequential(nn.MaxPool2d(2, ceil_mode=True), double_conv(widths[i], widths[i + 1]))
            for i in range(depth)
        )
        self.up = nn.ModuleList(
            Up(widths[i + 1], widths[i], bilinear) for i in reversed(range(depth))
        )
        self.head = nn.Conv2d(widths[0], num_classes, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        skips = [self.stem(x)]
        for down in self.down:
            skips.append(down(skips[-1]))
        x = skips.pop()
        for up in self.up:
            x = up(x, skips.pop())
        return self.head(x)


MIN_BOTTLENECK_EDGE = 4  # nnU-Net's rule: pool while the smallest feature map keeps this edge


def auto_depth(crop: tuple[int, int]) -> int:
    """Poolings for a training crop of (height, width): as many as keep the smallest feature map
    at least MIN_BOTTLENECK_EDGE pixels on its shorter edge (at least one)."""
    return max(1, int(math.log2(min(crop) / MIN_BOTTLENECK_EDGE)))


def resolve_auto_depth(cfg: DictConfig) -> DictConfig:
    """``cfg``, or a copy in which ``model.net.depth: auto`` is the number ``auto_depth`` gives for
    the training crop (``dataset.image_size``), so that the run's record holds it."""
    if OmegaConf.select(cfg, "model.net.depth") != "auto":
        return cfg
    size = cfg.dataset.get("image_size")
    if size is None:
        raise SegexpError(
            "model.net.depth=auto follows the training crop, and dataset.image_size is null "
            "(whole images): give dataset.image_size=[height,width] or a number for depth"
        )
    resolved = copy.deepcopy(cfg)
    resolved.model.net.depth = auto_depth((int(size[0]), int(size[1])))
    return resolved
