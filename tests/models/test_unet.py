"""The U-Net: output at the input's size, a gradient for every parameter, depth and width."""

import pytest
import torch

from segexp.models.unet import UNet


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
