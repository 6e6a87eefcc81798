"""The one conversion every dataset shares: numpy sample -> (optionally augmented) tensors."""

import numpy as np
import torch

Sample = tuple[np.ndarray, np.ndarray]  # uint8 image (H, W, C), integer class map (H, W)


def to_tensors(
    image: np.ndarray, mask: np.ndarray, transform=None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Apply an albumentations transform jointly, then return uint8 (C, H, W) and (H, W) tensors.

    Images stay uint8 until they reach the device, where they are converted and normalised: that
    moves four times fewer bytes through the DataLoader and the host-to-device copy.
    """
    if image.ndim == 2:
        image = image[:, :, None]
    if transform is not None:
        out = transform(image=image, mask=mask)
        image, mask = out["image"], out["mask"]
    # Copies: decoded arrays may be read-only or shared with a dataset's cache.
    return torch.tensor(image.transpose(2, 0, 1)), torch.tensor(mask)
