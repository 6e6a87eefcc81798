"""Batching images of different sizes: pad to the largest in the batch, as MMSegmentation does."""

import torch
import torch.nn.functional as F


def pad_collate(
    batch: list[tuple[torch.Tensor, torch.Tensor]], ignore_index: int = 255
) -> tuple[torch.Tensor, torch.Tensor]:
    """Stack (image, mask) pairs; smaller ones are padded bottom/right, masks with ignore_index.

    Padded pixels are ignored by the loss and the metrics, so batching never changes a score.
    """
    height = max(image.shape[-2] for image, _ in batch)
    width = max(image.shape[-1] for image, _ in batch)
    images, masks = [], []
    for image, mask in batch:
        pad = (0, width - image.shape[-1], 0, height - image.shape[-2])
        images.append(F.pad(image, pad, value=0))
        masks.append(F.pad(mask, pad, value=ignore_index))
    return torch.stack(images), torch.stack(masks)
