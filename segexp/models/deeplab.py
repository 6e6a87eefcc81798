"""torchvision's DeepLabV3 (ResNet-50 or MobileNetV3-Large backbone), optionally with its
auxiliary FCN head, for any number of input channels."""

from torch import nn

from segexp.errors import SegexpError
from segexp.models.weights import load_weights, torchvision_imagenet

BACKBONES = ("resnet50", "mobilenet_v3_large")


def _first_conv(model: nn.Module, backbone: str) -> tuple[nn.Module, str]:
    if backbone == "resnet50":
        return model.backbone, "conv1"
    return model.backbone["0"], "0"  # Conv2dNormActivation: [conv, bn, act]


def deeplabv3(
    in_channels: int,
    num_classes: int,
    backbone: str = "resnet50",
    weights: str | None = None,
    aux_loss: bool = False,
    allow_download: bool = False,
) -> nn.Module:
    """``weights`` fills the backbone: null, 'imagenet' (torch hub cache) or a file path."""
    from torchvision.models import (
        MobileNet_V3_Large_Weights,
        ResNet50_Weights,
        segmentation,
    )

    if backbone not in BACKBONES:
        raise SegexpError(f"model.net.backbone={backbone}: choose one of {', '.join(BACKBONES)}")
    build = getattr(segmentation, f"deeplabv3_{backbone}")
    model = build(weights=None, weights_backbone=None, num_classes=num_classes, aux_loss=aux_loss)
    if in_channels != 3:
        parent, name = _first_conv(model, backbone)
        old = parent[0] if name == "0" else getattr(parent, name)
        new = nn.Conv2d(
            in_channels,
            old.out_channels,
            old.kernel_size,
            old.stride,
            old.padding,
            bias=old.bias is not None,
        )
        if name == "0":
            parent[0] = new
        else:
            setattr(parent, name, new)
    enum = {"resnet50": ResNet50_Weights, "mobilenet_v3_large": MobileNet_V3_Large_Weights}
    imagenet = torchvision_imagenet(enum[backbone].IMAGENET1K_V1, allow_download)
    load_weights(model.backbone, weights, imagenet)
    return model
