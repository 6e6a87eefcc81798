"""Weighted sum of named losses, e.g. ``{"ce": ..., "dice": ...}``."""

from collections.abc import Mapping

import torch
from torch import Tensor, nn


class CombinedLoss(nn.Module):
    """``sum(weights[name] * loss(logits, target))``; a loss without a weight gets 1.0."""

    def __init__(
        self, losses: Mapping[str, nn.Module], weights: Mapping[str, float] | None = None
    ) -> None:
        super().__init__()
        if not losses:
            raise ValueError("CombinedLoss needs at least one loss")
        self.losses = nn.ModuleDict(dict(losses))
        weights = dict(weights or {})
        unknown = sorted(set(weights) - set(self.losses))
        if unknown:
            raise ValueError(
                f"weights name unknown losses {unknown}; valid names: {sorted(self.losses)}"
            )
        self.weights = {name: float(weights.get(name, 1.0)) for name in self.losses}

    def terms(self, logits: Tensor, target: Tensor) -> dict[str, Tensor]:
        """Each loss, unweighted, by name (for logging)."""
        return {name: loss(logits, target) for name, loss in self.losses.items()}

    def forward(self, logits: Tensor, target: Tensor) -> Tensor:
        terms = self.terms(logits, target)
        return torch.stack([self.weights[name] * term for name, term in terms.items()]).sum()
