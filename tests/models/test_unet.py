"""The U-Net: output at the input's size, a gradient for every parameter, depth and width."""

import pytest
import torch

from segexp.errors import SegexpError
from segexp.models.unet import UNet, auto_depth, resolve_auto_depth


@pytest.mark.parametrize("bilinear", [False, True])
@pytest.mark.parametrize(("height", "width"), [(32, 32), (45, 61), (7, 9)])
def test_output_has_input_size(bilinear, height, width):
    model = UNet(in_channels=1, num_classes=3, depth=3, base_channels=4, bilinear=bilinear)
    out = model(torch.rand(2, 1, height, width))
    assert out.shape == (2, 3, height, width)


def test_every_parameter_gets_a_gradient():
    model = UNet(in_channels=3, num_classes=4, depth=2, base_channels=4)
    model(torch.rand(2, 3, 45, 61)).sum().backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in model.parameters())


def test_depth_and_width_shape_the_network():
    model = UNet(in_channels=3, num_classes=2, depth=4, base_channels=8)
    assert len(model.down) == 4 and len(model.up) == 4
    assert model.down[-1][1][0].out_channels == 8 * 2**4


def test_rejects_nonsense_sizes():
    with pytest.raises(ValueError, match="depth"):
        UNet(3, 2, depth=0)


def test_depth_auto_pools_while_the_bottleneck_keeps_four_pixels(tiny_config):
    assert [auto_depth(c) for c in [(32, 32), (64, 64), (64, 96), (360, 480), (8, 8)]] == [
        3,
        4,
        4,
        6,
        1,
    ]  # 32 -> 4 px after 3 poolings; 360 -> 5.6 px after 6; never fewer than one
    cfg = tiny_config("model.net.depth=auto")  # TINY's crop: 32x32
    resolved = resolve_auto_depth(cfg)
    assert resolved.model.net.depth == 3 and cfg.model.net.depth == "auto"  # a new config
    with pytest.raises(SegexpError, match=r"model\.net\.depth=auto follows the training crop"):
        resolve_auto_depth(tiny_config("model.net.depth=auto", "dataset.image_size=null"))
