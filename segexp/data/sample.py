"""The conversions every dataset shares: a decoded numpy sample -> (optionally transformed)
tensors, for training (joint transform) and for inference (the image alone).

Images stay uint8 until they reach the device, where the model's input stage normalises them:
that moves four times fewer bytes through the DataLoader and the host-to-device copy.
"""

import numpy as np
import torch
from torch.utils.data import Dataset

Sample = tuple[np.ndarray, np.ndarray]  # uint8 image (H, W, C), integer class map (H, W)


def _hwc(image: np.ndarray) -> np.ndarray:
    return image[:, :, None] if image.ndim == 2 else image


def _chw_tensor(image: np.ndarray) -> torch.Tensor:
    """(C, H, W) view of an (H, W, C) copy: channels-last strides, as decoded. A copy because
    decoded arrays may be read-only or shared with a dataset's cache; in HWC order because
    that is a plain memcpy, where a transposing copy would gather strided values."""
    return torch.tensor(_hwc(image)).permute(2, 0, 1)


def to_tensors(
    image: np.ndarray, mask: np.ndarray, transform=None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Apply an albumentations transform to image and mask jointly; uint8 (C, H, W), (H, W)."""
    if transform is not None:
        out = transform(image=_hwc(image), mask=mask)
        image, mask = out["image"], out["mask"]
    return _chw_tensor(image), torch.tensor(mask)


def image_tensor(image: np.ndarray, transform=None) -> torch.Tensor:
    """uint8 (C, H, W) of a decoded image after an image-only pass of ``transform``: what the
    model sees of an image at inference time (evaluation samples and predict alike)."""
    if transform is not None:
        image = transform(image=_hwc(image))["image"]
    return _chw_tensor(image)


class EvaluationSamples(Dataset):
    """A dataset's samples for scoring at the labels' own resolution: the image goes through the
    evaluation transform (which may resize it), the mask stays as stored."""

    def __init__(self, dataset: Dataset, transform=None) -> None:
        self.dataset = dataset
        self.transform = transform

    def __len__(self) -> int:
        return len(self.dataset)

    @property
    def names(self) -> list[str]:
        return list(self.dataset.names)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        image, mask = self.dataset.load(index)
        return image_tensor(image, self.transform), torch.tensor(mask)
