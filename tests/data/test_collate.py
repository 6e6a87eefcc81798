"""pad_collate: equal sizes stacked as they are, smaller ones padded with ignore_index."""

import torch

from segexp.data.collate import pad_collate


def test_pad_collate_fills_masks_with_ignore_index():
    a = (torch.ones(3, 2, 3, dtype=torch.uint8), torch.zeros(2, 3, dtype=torch.uint8))
    b = (torch.ones(3, 4, 2, dtype=torch.uint8), torch.ones(4, 2, dtype=torch.uint8))
    images, masks = pad_collate([a, b], ignore_index=255)
    assert images.shape == (2, 3, 4, 3) and masks.shape == (2, 4, 3)
    assert (masks[0, 2:] == 255).all() and (masks[1, :, 2] == 255).all()
    assert (images[0, :, 2:] == 0).all() and (masks[0, :2, :3] == 0).all()


def test_collate_stacks_equal_sizes_and_pads_only_smaller_ones():
    same = [(torch.ones(3, 4, 4, dtype=torch.uint8), torch.zeros(4, 4)) for _ in range(2)]
    images, masks = pad_collate(same)
    assert images.shape == (2, 3, 4, 4) and (masks == 0).all()
    mixed = [same[0], (torch.ones(3, 2, 4, dtype=torch.uint8), torch.zeros(2, 4))]
    _, masks = pad_collate(mixed, ignore_index=9)
    assert (masks[1, 2:] == 9).all() and (masks[1, :2] == 0).all()
