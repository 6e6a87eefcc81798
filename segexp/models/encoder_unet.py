"""A U-Net decoder with skip connections on a pretrained classification backbone.

``encoder`` is ``resnet18`` or ``resnet34`` (torchvision) or any timm model name that supports
``features_only`` (e.g. ``efficientnet_lite0``, ``mobilenetv3_large_100``, ``resnet50``).
The encoder yields features at strides 2, 4, 8, 16 and 32; the decoder upsamples the deepest one
step by step, concatenating the skip at each scale, then once more to the input's resolution.
Any height and width run; the model wrapper pads inputs to a multiple of 32 all the same, so that
every encoder sees the sizes it was trained on.
"""

import torch
import torch.nn.functional as F
from torch import nn

from segexp.errors import SegexpError
from segexp.models.unet import double_conv
from segexp.models.weights import load_weights, timm_imagenet, torchvision_imagenet

TORCHVISION_RESNETS = ("resnet18", "resnet34")


class TorchvisionResNetEncoder(nn.Module):
    """torchvision's ResNet without its classifier, returning the five feature maps."""

    def __init__(self, name: str, in_channels: int) -> None:
        super().__init__()
        import torchvision

        net = getattr(torchvision.models, name)(weights=None)
        if in_channels != 3:
            net.conv1 = nn.Conv2d(in_channels, 64, 7, stride=2, padding=3, bias=False)
        self.conv1, self.bn1, self.relu, self.maxpool = net.conv1, net.bn1, net.relu, net.maxpool
        self.layer1, self.layer2, self.layer3, self.layer4 = (
            net.layer1,
            net.layer2,
            net.layer3,
            net.layer4,
        )
        self.channels = [64, 64, 128, 256, 512]

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        f1 = self.relu(self.bn1(self.conv1(x)))
        f2 = self.layer1(self.maxpool(f1))
        f3 = self.layer2(f2)
        f4 = self.layer3(f3)
        return [f1, f2, f3, f4, self.layer4(f4)]


def _timm_encoder(name: str, in_channels: int) -> nn.Module:
    import timm

    try:
        net = timm.create_model(
            name, pretrained=False, features_only=True, in_chans=in_channels, out_indices=range(5)
        )
    except (RuntimeError, ValueError, TypeError, IndexError) as err:
        raise SegexpError(
            f"model.net.encoder={name}: timm cannot build it as a 5-level feature extractor "
            f"({err}); "
            "try resnet18, resnet34, efficientnet_lite0 or mobilenetv3_large_100"
        ) from None
    if net.feature_info.reduction() != [2, 4, 8, 16, 32]:
        raise SegexpError(
            f"model.net.encoder={name} has feature strides {net.feature_info.reduction()}, "
            "not 2, 4, 8, 16, 32: choose a convolutional encoder"
        )
    net.channels = net.feature_info.channels()
    return net


class DecoderBlock(nn.Module):
    def __init__(self, in_channels: int, skip_channels: int, out_channels: int) -> None:
        super().__init__()
        self.conv = double_conv(in_channels + skip_channels, out_channels)

    def forward(self, x: torch.Tensor, skip: torch.Tensor | None, size=None) -> torch.Tensor:
        # to the skip's size rather than x2: odd sizes round differently in different encoders
        x = F.interpolate(x, size=size if skip is None else skip.shape[-2:], mode="nearest")
        if skip is not None:
            x = torch.cat([x, skip], dim=1)
        return self.conv(x)


class EncoderUNet(nn.Module):
    """``encoder`` (pretrained or not) + a five-step U-Net decoder + a 1x1 classifier."""

    def __init__(
        self,
        in_channels: int,
        num_classes: int,
        encoder: str = "resnet18",
        weights: str | None = None,
        allow_download: bool = False,
        decoder_channels: tuple[int, ...] = (256, 128, 64, 32, 16),
    ) -> None:
        super().__init__()
        if len(decoder_channels) != 5:
            raise SegexpError(
                f"model.net.decoder_channels has {len(decoder_channels)} widths: give 5, one per "
                "scale"
            )
        if encoder in TORCHVISION_RESNETS:
            import torchvision

            self.encoder = TorchvisionResNetEncoder(encoder, in_channels)
            enum = getattr(torchvision.models, f"ResNet{encoder[6:]}_Weights").IMAGENET1K_V1
            imagenet = torchvision_imagenet(enum, allow_download)
        else:
            self.encoder = _timm_encoder(encoder, in_channels)
            imagenet = timm_imagenet(encoder, allow_download)
        load_weights(self.encoder, weights, imagenet)
        channels = list(self.encoder.channels)  # strides 2, 4, 8, 16, 32
        skips = [*channels[-2::-1], 0]  # strides 16, 8, 4, 2, then the input's (no skip)
        ins = [channels[-1], *decoder_channels[:-1]]
        self.decoder = nn.ModuleList(
            DecoderBlock(i, s, o) for i, s, o in zip(ins, skips, decoder_channels, strict=True)
        )
        self.head = nn.Conv2d(decoder_channels[-1], num_classes, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        features = self.encoder(x)
        y = features[-1]
        skips = [*features[-2::-1], None]
        for block, skip in zip(self.decoder, skips, strict=True):
            y = block(y, skip, size=x.shape[-2:])
        return self.head(y)
