"""Softmax multi-class focal loss (Lin et al., 2017)."""

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn


# Hand-written: smp's multiclass FocalLoss is a per-channel sigmoid (one-vs-rest), not softmax.
class FocalLoss(nn.Module):
    """``-alpha_t * (1 - p_t)^gamma * log(p_t)``, averaged over the non-ignored pixels.

    ``p_t`` is the softmax probability of the true class. ``alpha`` is None (no weighting), a
    float (scales every pixel alike) or one weight per class (``alpha_t = alpha[target]``).
    Unlike weighted cross-entropy, the mean divides by the pixel count, not by the sum of
    ``alpha_t``. With ``gamma=0`` and ``alpha=None`` this is cross-entropy.
    """

    def __init__(
        self,
        gamma: float = 2.0,
        alpha: float | list[float] | None = None,
        ignore_index: int = 255,
    ) -> None:
        super().__init__()
        if gamma < 0:
            raise ValueError(f"gamma must be >= 0, got {gamma}")
        self.gamma = gamma
        self.ignore_index = ignore_index
        self.scalar_alpha: float | None = None
        class_alpha = None
        if isinstance(alpha, Sequence):  # a list, tuple or Hydra ListConfig
            class_alpha = torch.tensor([float(a) for a in alpha], dtype=torch.float32)
            if (class_alpha < 0).any():
                raise ValueError(f"alpha must be >= 0, got {list(alpha)}")
        elif alpha is not None:
            if alpha < 0:
                raise ValueError(f"alpha must be >= 0, got {alpha}")
            self.scalar_alpha = float(alpha)
        self.register_buffer("class_alpha", class_alpha)

    def forward(self, logits: Tensor, target: Tensor) -> Tensor:
        if self.class_alpha is not None and logits.shape[1] != self.class_alpha.numel():
            raise ValueError(
                f"alpha has {self.class_alpha.numel()} entries but logits have "
                f"{logits.shape[1]} classes"
            )
        # -log(p_t), and exactly 0 at ignored pixels.
        neg_log_pt = F.cross_entropy(
            logits, target, reduction="none", ignore_index=self.ignore_index
        )
        # expm1 keeps 1 - p_t accurate for confident pixels; the clamp keeps the gradient of
        # (1 - p_t)^gamma finite for 0 < gamma < 1 when p_t rounds to exactly 1.
        one_minus_pt = (-torch.expm1(-neg_log_pt)).clamp_min(torch.finfo(neg_log_pt.dtype).tiny)
        loss = one_minus_pt.pow(self.gamma) * neg_log_pt

        valid = target != self.ignore_index
        if self.class_alpha is not None:
            loss = loss * self.class_alpha.to(loss.dtype)[torch.where(valid, target, 0)]
        elif self.scalar_alpha is not None:
            loss = loss * self.scalar_alpha
        return loss.sum() / valid.sum().clamp_min(1)
