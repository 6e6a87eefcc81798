"""A loss for models with an auxiliary head: loss(out) + aux_loss_weight * loss(aux)."""

import torch
from torch import nn


class WithAuxiliary(nn.Module):
    """Passes plain logits straight through; a ``{"out", "aux"}`` dict gets the weighted sum."""

    def __init__(self, loss: nn.Module, aux_weight: float = 0.0) -> None:
        super().__init__()
        self.loss = loss
        self.aux_weight = float(aux_weight)

    def forward(self, logits: torch.Tensor | dict[str, torch.Tensor], target: torch.Tensor):
        if not isinstance(logits, dict):
            return self.loss(logits, target)
        total = self.loss(logits["out"], target)
        if self.aux_weight and logits.get("aux") is not None:
            total = total + self.aux_weight * self.loss(logits["aux"], target)
        return total
