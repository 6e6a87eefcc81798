"""Photometric augmentation on the device: seeded, resumable, uint8 and channels-last."""

import torch

from segexp.data.device_aug import DevicePhotometric


def _batch(seed: int = 0) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    images = torch.randint(0, 256, (4, 3, 16, 16), generator=generator, dtype=torch.uint8)
    return images.contiguous(memory_format=torch.channels_last)


def test_device_augmentation_is_seeded_resumable_and_keeps_uint8_channels_last():
    aug = DevicePhotometric(jitter_p=1.0, blur_p=1.0, noise_p=1.0)
    aug.seed(3, torch.device("cpu"))
    images = _batch()
    first = aug(images)
    assert first.dtype == torch.uint8 and first.shape == images.shape
    assert first.is_contiguous(memory_format=torch.channels_last)
    assert not torch.equal(first, images)
    state = aug.state()
    second = aug(images)
    assert not torch.equal(first, second)  # a new draw each batch
    aug.set_state(state)
    assert torch.equal(aug(images), second)  # resumed: the same draw
    again = DevicePhotometric(jitter_p=1.0, blur_p=1.0, noise_p=1.0)
    again.seed(3, torch.device("cpu"))
    assert torch.equal(again(images), first)


def test_device_augmentation_with_zero_probabilities_is_the_identity():
    aug = DevicePhotometric(jitter_p=0.0, blur_p=0.0, noise_p=0.0)
    aug.seed(0, torch.device("cpu"))
    images = _batch()
    assert torch.equal(aug(images), images)


def test_device_blur_keeps_a_flat_image_flat_and_smooths_an_edge():
    aug = DevicePhotometric(jitter_p=0.0, blur_p=1.0, noise_p=0.0, blur_sigma=(1.0, 1.0))
    aug.seed(0, torch.device("cpu"))
    flat = torch.full((1, 3, 12, 12), 100, dtype=torch.uint8)
    assert torch.equal(aug(flat), flat)
    edge = torch.zeros(1, 1, 12, 12, dtype=torch.uint8)
    edge[..., 6:] = 255
    row = aug(edge)[0, 0, 0].tolist()
    assert row[0] == 0 and row[-1] == 255 and 0 < row[5] < row[6] < 255
