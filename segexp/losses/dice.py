"""Soft multi-class Dice loss on softmax probabilities.

Not ``segmentation_models_pytorch.losses.DiceLoss``: in multiclass mode it zeroes the term of
every class absent from the batch's ground truth but still divides by the number of channels,
so the loss is scaled by (classes present / C) and its magnitude, and its balance against the
other terms of a combined loss, shifts from batch to batch. Here the mean runs over the
present classes only. Its ignore_index handling (masking both probabilities and one-hot
targets) is correct and is reproduced below.
"""

import torch
from torch import Tensor, nn


def soft_dice_per_class(
    probabilities: Tensor,
    target: Tensor,
    ignore_index: int = 255,
    smooth: float = 0.0,
    eps: float = 1e-7,
) -> tuple[Tensor, Tensor]:
    """Per-class soft Dice over the whole batch, ignoring ``ignore_index`` pixels.

    ``dice_c = (2 * sum(p_c * g_c) + smooth) / (sum(p_c) + sum(g_c) + smooth)`` with ``p`` the
    (N, C, H, W) probabilities and ``g`` the one-hot target. Returns ``(dice, present)``, both
    of shape (C,); ``present[c]`` says whether class ``c`` occurs in the non-ignored target.
    """
    num_classes = probabilities.shape[1]
    valid = target != ignore_index
    classes = torch.arange(num_classes, device=target.device)
    classes = classes.view(1, num_classes, *([1] * (target.dim() - 1)))
    # A bool one-hot (1 byte per pixel and class, not F.one_hot's int64: 8x less memory).
    one_hot = (target.unsqueeze(1) == classes) & valid.unsqueeze(1)
    probabilities = probabilities * valid.unsqueeze(1)

    summed_dims = [0, *range(2, probabilities.dim())]
    intersection = (probabilities * one_hot).sum(summed_dims)
    target_total = one_hot.sum(summed_dims)
    cardinality = probabilities.sum(summed_dims) + target_total
    dice = (2 * intersection + smooth) / (cardinality + smooth).clamp_min(eps)
    return dice, target_total > 0


class SoftDiceLoss(nn.Module):
    """Mean of ``1 - dice_c`` over the classes present in the batch's (non-ignored) target.

    Classes absent from the target are left out: their Dice is undefined (0/0 without
    smoothing), and false positives on them are still penalised through the present classes,
    whose probabilities they take away. A batch that is entirely ignored gives 0.
    """

    def __init__(
        self, num_classes: int, ignore_index: int = 255, smooth: float = 0.0, eps: float = 1e-7
    ) -> None:
        super().__init__()
        self.num_classes = num_classes
        self.ignore_index = ignore_index
        self.smooth = smooth
        self.eps = eps

    def forward(self, logits: Tensor, target: Tensor) -> Tensor:
        if logits.shape[1] != self.num_classes:
            raise ValueError(
                f"logits have {logits.shape[1]} channels, the loss expects {self.num_classes}"
            )
        dice, present = soft_dice_per_class(
            logits.softmax(dim=1), target, self.ignore_index, self.smooth, self.eps
        )
        present = present.to(dice.dtype)
        return ((1 - dice) * present).sum() / present.sum().clamp_min(1)
