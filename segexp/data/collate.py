"""Batching samples: stacked training batches, and evaluation batches kept as lists."""

import torch

from segexp.ops.padding import pad_to_size


def pad_collate(
    batch: list[tuple[torch.Tensor, torch.Tensor]], ignore_index: int = 255
) -> tuple[torch.Tensor, torch.Tensor]:
    """Stack (image, mask) pairs; smaller ones are padded bottom/right, masks with ignore_index
    (as MMSegmentation does), so padded pixels never count in the loss or the metrics."""
    height = max(image.shape[-2] for image, _ in batch)
    width = max(image.shape[-1] for image, _ in batch)
    images, masks = [], []
    for image, mask in batch:  # pad_to_size: no copy for a sample that is already that size
        images.append(pad_to_size(image, height, width))
        masks.append(pad_to_size(mask, height, width, value=ignore_index))
    # Stacked as (N, H, W, C) and viewed as (N, C, H, W): a channels-last batch made by plain
    # copies, which reaches the (channels-last) model without another reordering copy.
    stacked = torch.stack([image.permute(1, 2, 0) for image in images]).permute(0, 3, 1, 2)
    return stacked, torch.stack(masks)


def list_collate(
    batch: list[tuple[torch.Tensor, torch.Tensor]],
) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    """(images, masks) as lists: evaluation never pads, so an image's prediction does not depend
    on the other images in its batch (the loop stacks images of equal size itself)."""
    return [image for image, _ in batch], [mask for _, mask in batch]
