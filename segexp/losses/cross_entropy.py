"""Pixel-wise cross-entropy with optional class weights and label smoothing."""

import torch
from torch import nn


def cross_entropy(
    ignore_index: int = 255,
    class_weights: list[float] | None = None,
    label_smoothing: float = 0.0,
) -> nn.CrossEntropyLoss:
    """Build ``nn.CrossEntropyLoss``.

    With class weights the mean is weighted by each pixel's target-class weight. The weights
    become a registered buffer of the loss, so ``.to(device)`` moves them.
    """
    weight = None
    if class_weights is not None:
        if not all(w > 0 for w in class_weights):
            raise ValueError(f"class_weights must all be positive, got {list(class_weights)}")
        weight = torch.tensor([float(w) for w in class_weights], dtype=torch.float32)
    return nn.CrossEntropyLoss(
        weight=weight, ignore_index=ignore_index, label_smoothing=label_smoothing
    )
